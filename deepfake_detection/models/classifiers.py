"""Classifier builders from the reports, registered by name (see SPEC.md, classifier variants).

Each builder takes the input side and the number of outputs so the same variant runs at demo
resolution (64 px) and at the reports' resolution (224 px).
"""

from __future__ import annotations

from torch import nn

from .blocks import CBAM
from .registry import register_model


def _imagenet_weights_error(name: str, exc: Exception) -> RuntimeError:
    return RuntimeError(
        f"{name}: ImageNet weights are not available offline ({exc.__class__.__name__}). Put the "
        f"torchvision checkpoint into $TORCH_HOME/hub/checkpoints/ or set "
        f"variants.<name>.model.kwargs.pretrained: false")


@register_model
def resnet18(input_size: int, num_outputs: int = 2, pretrained: bool = False, cbam: bool = False,
             dropout: float = 0.0) -> nn.Module:
    """torchvision ResNet-18; optional CBAM after layer4 (seed 000 V3/V5) and head dropout (V5)."""
    from torchvision.models import ResNet18_Weights
    from torchvision.models import resnet18 as tv_resnet18

    try:
        model = tv_resnet18(weights=ResNet18_Weights.IMAGENET1K_V1 if pretrained else None)
    except Exception as exc:  # offline download failure surfaces as URLError/OSError/RuntimeError
        raise _imagenet_weights_error("resnet18", exc) from exc
    if cbam:
        model.layer4 = nn.Sequential(*model.layer4, CBAM(512, reduction=16, kernel_size=7))
    head: list[nn.Module] = [nn.Dropout(dropout)] if dropout > 0 else []
    model.fc = nn.Sequential(*head, nn.Linear(model.fc.in_features, num_outputs)) if head \
        else nn.Linear(model.fc.in_features, num_outputs)
    return model


@register_model
def custom_cnn(input_size: int, num_outputs: int = 2, widths: tuple = (32, 64, 128),
               hidden: int = 512, dropout: float = 0.5) -> nn.Module:
    """Seed 003's CNN: 3x[Conv3x3-BN-ReLU-MaxPool2] -> FC512-ReLU-Dropout -> FC.

    At 224 px the flattened size is 128*28*28 as in the report; it follows the input size.
    """
    layers: list[nn.Module] = []
    c_in = 3
    for c_out in widths:
        layers += [nn.Conv2d(c_in, c_out, 3, padding=1), nn.BatchNorm2d(c_out), nn.ReLU(inplace=True),
                   nn.MaxPool2d(2)]
        c_in = c_out
    side = input_size // 2 ** len(widths)
    if side < 1:
        raise ValueError(f"custom_cnn: input size {input_size} is too small for {len(widths)} poolings")
    return nn.Sequential(*layers, nn.Flatten(), nn.Linear(c_in * side * side, hidden), nn.ReLU(inplace=True),
                         nn.Dropout(dropout), nn.Linear(hidden, num_outputs))
