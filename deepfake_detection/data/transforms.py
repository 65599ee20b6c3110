"""Input normalisation constants, the model's input size, and torchvision's per-image eval transform.

Training and evaluation augment whole batches (:mod:`.batch_augment`); :func:`eval_transform`
(torchvision v2 on one uint8 CHW image) and :func:`to_float_batch` are the per-image reference
that :class:`.batch_augment.EvalAugment` is tested against and that the benchmarks use.
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


def eval_resize(aug) -> int:
    """The side eval resizes to before its centre crop: ``eval_resize``, else training's ``resize``."""
    return aug.eval_resize or aug.resize


def eval_transform(aug) -> v2.Compose:
    ops: list = []
    if eval_resize(aug):
        ops.append(v2.Resize(eval_resize(aug), antialias=True))
    if aug.crop:
        ops.append(v2.CenterCrop(aug.crop))
    return v2.Compose(ops) if ops else v2.Identity()


def input_size(aug, prepared_size: int) -> int:
    """Side of the tensors the model sees."""
    return aug.crop or aug.resize or prepared_size
