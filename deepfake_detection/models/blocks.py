"""Blocks for classifier builders: CBAM (seed 000, used by ``resnet18(cbam=True)``),
squeeze-excitation (seed 004's hybrid ResNet-34 discriminator, ``gan/nets.py``), and
backbone + head modules whose named parts can be frozen (seed 002's frozen ResNet-50).
"""

from __future__ import annotations

import torch
from torch import nn


class ChannelAttention(nn.Module):
    """CBAM channel gate: a shared MLP over global average- and max-pooled features."""

    def __init__(self, channels: int, reduction: int = 16):
        super().__init__()
        hidden = max(channels // reduction, 1)
        self.mlp = nn.Sequential(nn.Conv2d(channels, hidden, 1, bias=False), nn.ReLU(inplace=True),
                                 nn.Conv2d(hidden, channels, 1, bias=False))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        avg = self.mlp(torch.mean(x, dim=(2, 3), keepdim=True))
        mx = self.mlp(torch.amax(x, dim=(2, 3), keepdim=True))
        return x * torch.sigmoid(avg + mx)


class SpatialAttention(nn.Module):
    """CBAM spatial gate: a 7x7 conv over the channel-wise mean and max maps."""

    def __init__(self, kernel_size: int = 7):
        super().__init__()
        self.conv = nn.Conv2d(2, 1, kernel_size, padding=kernel_size // 2, bias=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        maps = torch.cat([x.mean(dim=1, keepdim=True), x.amax(dim=1, keepdim=True)], dim=1)
        return x * torch.sigmoid(self.conv(maps))


class CBAM(nn.Module):
    def __init__(self, channels: int, reduction: int = 16, kernel_size: int = 7):
        super().__init__()
        self.channel = ChannelAttention(channels, reduction)
        self.spatial = SpatialAttention(kernel_size)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.spatial(self.channel(x))


class SqueezeExcitation(nn.Module):
    def __init__(self, channels: int, reduction: int = 16):
        super().__init__()
        hidden = max(channels // reduction, 1)
        self.fc = nn.Sequential(nn.Linear(channels, hidden), nn.ReLU(inplace=True),
                                nn.Linear(hidden, channels), nn.Sigmoid())

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        w = self.fc(x.mean(dim=(2, 3)))
        return x * w[:, :, None, None]


class PartlyFrozen(nn.Module):
    """A module some of whose submodules (dotted paths) never train, as Keras ``trainable=False``.

    :meth:`freeze` (called by ``registry.create_model`` with the builder's declared ``frozen``
    paths) turns off their gradients; :meth:`train` keeps them in eval mode, so their BatchNorm
    layers normalise with the running statistics and never update them, as Keras runs a
    non-trainable BatchNorm in inference mode.
    """

    frozen: tuple[str, ...] = ()

    def freeze(self, paths: tuple[str, ...]) -> "PartlyFrozen":
        for path in paths:
            self.get_submodule(path).requires_grad_(False)
        self.frozen = tuple(paths)
        return self.train(self.training)

    def train(self, mode: bool = True) -> "PartlyFrozen":
        super().train(mode)
        for path in self.frozen:
            self.get_submodule(path).eval()
        return self


class BackboneHead(PartlyFrozen):
    """``head(pool(backbone(x)))``: a feature extractor, an optional pooling, a new classifier head."""

    def __init__(self, backbone: nn.Module, head: nn.Module, pool: nn.Module | None = None):
        super().__init__()
        self.backbone = backbone
        self.pool = pool if pool is not None else nn.Identity()
        self.head = head

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.pool(self.backbone(x)))
