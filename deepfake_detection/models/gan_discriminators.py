"""GAN discriminators as classifiers, so the evaluate stage scores them like every other model.

A ``train_gan@<variant>`` stage of kind ``anomaly`` or ``hybrid`` saves its discriminator in
the classifiers' model-file format under one of these builders (head ``logit``: one fake logit),
and ``registry.load_trained_model`` rebuilds it:

- ``dcgan_realness`` (seed 000's anomaly detector): the 224-px DCGAN discriminator trained on
  real faces only outputs a *realness* logit; the fake logit is its negation, so
  P(fake) = 1 - sigmoid(D(x)) = sigmoid(-D(x)). Pixels in [-1, 1] (the GAN's tanh range).
- ``hybrid_resnet34`` (seed 004): the ResNet-34 discriminator-classifier already outputs the
  fake logit (it is trained with fake = 1). Pixels in [0, 1]; ImageNet normalisation is inside.

The state dicts are the GAN nets' own (``net.`` prefixed for the realness wrapper).
"""

from __future__ import annotations

from pathlib import Path

import torch
from torch import nn

from .registry import register_model


class NegatedLogit(nn.Module):
    """``-net(x)``: turns a realness logit into a fake logit."""

    def __init__(self, net: nn.Module):
        super().__init__()
        self.net = net

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return -self.net(x)


def _one_output(name: str, num_outputs: int) -> None:
    if num_outputs != 1:
        raise ValueError(f"{name}: a GAN discriminator has one logit, got num_outputs {num_outputs}")


# net.-3: the last LeakyReLU, the (base x base) map the final conv reduces to one logit
@register_model(head="logit", normalize="half", gradcam_layer="net.-3", default_size=224)
def dcgan_realness(input_size: int, num_outputs: int = 1, width: int = 64, init: str = "dcgan") -> nn.Module:
    """Seed 000's DCGAN discriminator (``gan.nets.dcgan224_discriminator``) scoring P(fake) = sigmoid(-D(x))."""
    from ..gan.nets import create_gan_net

    _one_output("dcgan_realness", num_outputs)
    return NegatedLogit(create_gan_net("dcgan224_discriminator", width=width, size=input_size, init=init))


@register_model(head="logit", normalize="unit", gradcam_layer="extra", default_size=64, weights="resnet34")
def hybrid_resnet34(input_size: int, num_outputs: int = 1, weights_file: Path | None = None,
                    dropout: float = 0.5, reduction: int = 16) -> nn.Module:
    """Seed 004's discriminator-classifier (``gan.nets.hybrid_resnet34_discriminator``): the fake logit."""
    from ..gan.nets import create_gan_net

    _one_output("hybrid_resnet34", num_outputs)
    return create_gan_net("hybrid_resnet34_discriminator", weights_file=weights_file, dropout=dropout,
                          reduction=reduction)
