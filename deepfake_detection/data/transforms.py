"""Train/eval transforms on uint8 CHW tensors (torchvision v2), built from AugmentParams.

Transforms keep uint8: the float conversion and normalisation run once per batch on the
device (:func:`to_float_batch`), which moves 4x fewer bytes to the GPU and is several times
faster on CPU than normalising sample by sample.
"""

from __future__ import annotations

import torch
from torchvision.transforms import v2

NORMALIZE = {
    "half": ((0.5, 0.5, 0.5), (0.5, 0.5, 0.5)),            # seed 000 scratch models
    "imagenet": ((0.485, 0.456, 0.406), (0.229, 0.224, 0.225)),
    "unit": ((0.0, 0.0, 0.0), (1.0, 1.0, 1.0)),             # Keras-style pixels in [0, 1]
}


def to_float_batch(x: torch.Tensor, normalize: str) -> torch.Tensor:
    """uint8 (N, C, H, W) batch -> normalised float32, on whatever device ``x`` is on."""
    mean, std = NORMALIZE[normalize]
    mean_t = torch.tensor(mean, device=x.device).view(1, -1, 1, 1)
    std_t = torch.tensor(std, device=x.device).view(1, -1, 1, 1)
    return (x.float().div_(255.0) - mean_t) / std_t


def train_transform(aug) -> v2.Compose:
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
    return v2.Compose(ops) if ops else v2.Identity()


def eval_transform(aug) -> v2.Compose:
    ops: list = []
    if aug.resize:
        ops.append(v2.Resize(aug.resize, antialias=True))
    if aug.crop:
        ops.append(v2.CenterCrop(aug.crop))
    return v2.Compose(ops) if ops else v2.Identity()


def input_size(aug, prepared_size: int) -> int:
    """Side of the tensors the model sees."""
    return aug.crop or aug.resize or prepared_size
