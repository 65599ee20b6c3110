"""Train/eval transforms on uint8 CHW tensors (torchvision v2), built from AugmentParams."""

from __future__ import annotations

import torch
from torchvision.transforms import v2

NORMALIZE = {
    "half": ((0.5, 0.5, 0.5), (0.5, 0.5, 0.5)),            # seed 000 scratch models
    "imagenet": ((0.485, 0.456, 0.406), (0.229, 0.224, 0.225)),
    "unit": ((0.0, 0.0, 0.0), (1.0, 1.0, 1.0)),             # Keras-style pixels in [0, 1]
}


def _to_float(normalize: str) -> list:
    mean, std = NORMALIZE[normalize]
    return [v2.ToDtype(torch.float32, scale=True), v2.Normalize(mean, std)]


def train_transform(aug, normalize: str) -> v2.Compose:
    ops: list = []
    if aug.resize:
        ops.append(v2.Resize(aug.resize, antialias=True))
    if tuple(aug.random_resized_crop_scale) != (1.0, 1.0):
        ops.append(v2.RandomResizedCrop(aug.crop or aug.resize, scale=tuple(aug.random_resized_crop_scale),
                                        antialias=True))
    elif aug.crop:
        ops.append(v2.RandomCrop(aug.crop))
    if aug.hflip > 0:
        ops.append(v2.RandomHorizontalFlip(aug.hflip))
    if any(aug.color_jitter):
        b, c, s, h = aug.color_jitter
        ops.append(v2.ColorJitter(brightness=b, contrast=c, saturation=s, hue=h))
    if aug.autoaugment:
        ops.append(v2.AutoAugment(v2.AutoAugmentPolicy.IMAGENET))
    return v2.Compose(ops + _to_float(normalize))


def eval_transform(aug, normalize: str) -> v2.Compose:
    ops: list = []
    if aug.resize:
        ops.append(v2.Resize(aug.resize, antialias=True))
    if aug.crop:
        ops.append(v2.CenterCrop(aug.crop))
    return v2.Compose(ops + _to_float(normalize))


def input_size(aug, prepared_size: int) -> int:
    """Side of the tensors the model sees."""
    return aug.crop or aug.resize or prepared_size
