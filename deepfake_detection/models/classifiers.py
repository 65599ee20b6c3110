"""Classifier builders from the reports, registered by name with their metadata (SPEC.md, classifier variants).

Each builder takes the input side and the number of outputs (from its declared head) so the same
variant runs at demo resolution (64 px) and at the reports' resolution (200/224 px). Builders with
pretrained weights take ``weights_file`` (resolved by ``models.weights``) and load it into the
backbone before replacing the head: torchvision models with ``load_state_dict`` (strict), timm
models through timm's own file loader. timm is imported inside its builders (it costs seconds).
"""

from __future__ import annotations

from collections import OrderedDict
from pathlib import Path

import torch
from torch import nn

from .blocks import CBAM, BackboneHead
from .registry import register_model


def _load_torchvision(model: nn.Module, weights_file: Path | None) -> nn.Module:
    """Load a torchvision checkpoint strictly (a wrong file fails loudly instead of training random weights)."""
    if weights_file is not None:
        model.load_state_dict(torch.load(weights_file, map_location="cpu", weights_only=True))
    return model


def _timm_model(arch: str, num_classes: int, weights_file: Path | None) -> nn.Module:
    """timm ``arch`` with ``num_classes`` outputs (0: pooled features), its weights from ``weights_file``.

    With weights, the model is built with the checkpoint's own classifier and the head replaced
    afterwards: timm loads non-strictly when ``num_classes`` differs from the checkpoint's, so a
    wrong file would otherwise leave a silently random backbone.
    """
    import timm

    if weights_file is None:
        return timm.create_model(arch, pretrained=False, num_classes=num_classes)
    model = timm.create_model(arch, pretrained=True, pretrained_cfg_overlay=dict(file=str(weights_file)))
    model.reset_classifier(num_classes)
    return model


@register_model(head="softmax2", normalize="half", gradcam_layer="layer4.1.conv2", default_size=224,
                weights="resnet18")
def resnet18(input_size: int, num_outputs: int, weights_file: Path | None = None, cbam: bool = False,
             dropout: float = 0.0) -> nn.Module:
    """torchvision ResNet-18; optional CBAM after layer4 (seed 000 V3/V5) and head dropout (V5).

    Grad-CAM looks at layer4's last block's conv2 (seed 000), before the CBAM gate.
    """
    from torchvision.models import resnet18 as tv_resnet18

    model = _load_torchvision(tv_resnet18(weights=None), weights_file)
    if cbam:
        model.layer4 = nn.Sequential(*model.layer4, CBAM(512, reduction=16, kernel_size=7))
    linear = nn.Linear(model.fc.in_features, num_outputs)
    model.fc = nn.Sequential(nn.Dropout(dropout), linear) if dropout > 0 else linear
    return model


@register_model(head="softmax2", normalize="half", gradcam_layer="last_conv", default_size=224)
def custom_cnn(input_size: int, num_outputs: int, widths: tuple = (32, 64, 128),
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


@register_model(head="logit", normalize="imagenet", gradcam_layer="backbone.conv_head", default_size=224,
                weights="tf_efficientnetv2_s")
def efficientnetv2_s(input_size: int, num_outputs: int, weights_file: Path | None = None, hidden: int = 512,
                     dropout: float = 0.3) -> nn.Module:
    """Seed 001: timm ``tf_efficientnetv2_s`` as a pooled feature extractor (num_classes=0), then
    Linear(n, 512)-ReLU-Dropout(0.3)-Linear(512, 1)."""
    backbone = _timm_model("tf_efficientnetv2_s", 0, weights_file)
    head = nn.Sequential(nn.Linear(backbone.num_features, hidden), nn.ReLU(inplace=True), nn.Dropout(dropout),
                         nn.Linear(hidden, num_outputs))
    return BackboneHead(backbone, head)


def _keras_side(input_size: int, blocks: int) -> int:
    """The feature-map side after ``blocks`` x [3x3 'valid' conv (-2), 2x2 max-pool (floor /2)]."""
    side = input_size
    for i in range(blocks):
        side = (side - 2) // 2
        if side < 1:
            raise ValueError(f"keras_cnn: input size {input_size} is too small for {blocks} conv blocks "
                             f"(nothing left after block {i + 1}); use at least {_keras_min_size(blocks)} px")
    return side


def _keras_min_size(blocks: int) -> int:
    side = 1
    for _ in range(blocks):
        side = side * 2 + 2
    return side


@register_model(head="logit", normalize="unit", gradcam_layer="last_conv", default_size=200)
def keras_cnn(input_size: int, num_outputs: int, widths: tuple = (32, 64), dense: tuple = (128,),
              conv_dropout: float = 0.0, dropout: float = 0.5) -> nn.Module:
    """Seed 002's Keras CNNs M1-M5 with Keras semantics.

    Per width: Conv2D 3x3 'valid' (Keras' default padding) -> ReLU -> BatchNormalization (Keras'
    eps 1e-3 and momentum 0.99, which is torch's momentum 0.01) -> MaxPooling2D(2); then
    Dropout(conv_dropout) if > 0, Flatten, Dense-ReLU per ``dense`` width, Dropout(dropout), one
    logit. M1: widths (32, 64), dense (128,); M2: M1 + conv_dropout 0.25; M3-M5: widths
    (32, 64, 128), dense (128, 64), conv_dropout 0.25 (M5's L2 penalty is a training setting).
    """
    side = _keras_side(input_size, len(widths))
    layers: list[nn.Module] = []
    c_in = 3
    for c_out in widths:
        layers += [nn.Conv2d(c_in, c_out, 3), nn.ReLU(inplace=True), nn.BatchNorm2d(c_out, eps=1e-3, momentum=0.01),
                   nn.MaxPool2d(2)]
        c_in = c_out
    if conv_dropout > 0:
        layers.append(nn.Dropout(conv_dropout))
    layers.append(nn.Flatten())
    n_in = c_in * side * side
    for n_out in dense:
        layers += [nn.Linear(n_in, n_out), nn.ReLU(inplace=True)]
        n_in = n_out
    return nn.Sequential(*layers, nn.Dropout(dropout), nn.Linear(n_in, num_outputs))


@register_model(head="logit", normalize="imagenet", gradcam_layer="backbone.layer4.-1.conv3", default_size=224,
                frozen=("backbone",), weights="resnet50")
def resnet50_frozen(input_size: int, num_outputs: int, weights_file: Path | None = None, hidden: int = 256,
                    dropout: float = 0.5) -> nn.Module:
    """Seed 002 M6: ImageNet ResNet-50 up to layer4, frozen (its BatchNorm in inference mode, as
    Keras ``trainable=False``), global average pooling, Dense256-ReLU-Dropout(0.5), one logit."""
    from torchvision.models import resnet50 as tv_resnet50

    resnet = _load_torchvision(tv_resnet50(weights=None), weights_file)
    backbone = nn.Sequential(OrderedDict(list(resnet.named_children())[:-2]))   # drop avgpool and fc
    pool = nn.Sequential(nn.AdaptiveAvgPool2d(1), nn.Flatten())
    head = nn.Sequential(nn.Linear(resnet.fc.in_features, hidden), nn.ReLU(inplace=True), nn.Dropout(dropout),
                         nn.Linear(hidden, num_outputs))
    return BackboneHead(backbone, head, pool)


@register_model(head="softmax2", normalize="imagenet", gradcam_layer="features.-1", default_size=224,
                weights="mobilenet_v2")
def mobilenet_v2(input_size: int, num_outputs: int, weights_file: Path | None = None) -> nn.Module:
    """Seed 003: torchvision MobileNetV2, classifier[1] -> Linear(1280, 2), every layer trains."""
    from torchvision.models import mobilenet_v2 as tv_mobilenet_v2

    model = _load_torchvision(tv_mobilenet_v2(weights=None), weights_file)
    model.classifier[1] = nn.Linear(model.classifier[1].in_features, num_outputs)
    return model


@register_model(head="softmax2", normalize="half", gradcam_layer="act4", default_size=224,
                weights="legacy_xception")
def xception(input_size: int, num_outputs: int, weights_file: Path | None = None) -> nn.Module:
    """Seed 003: timm ``legacy_xception`` with fc -> Linear(2048, 2); normalised with its own
    mean = std = 0.5. Grad-CAM looks at ``act4``, the ReLU after the last separable conv (timm's
    last feature level)."""
    return _timm_model("legacy_xception", num_outputs, weights_file)
