"""Generator and discriminator builders for the GAN variants, behind one name -> builder registry.

As ``models/registry.py`` (after timm): a network is one registered function, a variant in
``params.yaml`` names it and its keyword arguments; ``create_gan_net(name, **kwargs)`` builds it.
The decorator's arguments (literals) say what the rest of the pipeline needs to know:

- ``kind``: "generator" or "discriminator";
- ``pixels``: the pixel range the network emits (generator) or expects (discriminator), with the
  classifiers' normalisation names: "half" = [-1, 1] (tanh; uint8 / 127.5 - 1), "unit" = [0, 1]
  (sigmoid; uint8 / 255);
- ``default_size``: the report's image side;
- ``weights``: a ``models.weights.WEIGHTS`` key for builders that can start from ImageNet weights
  (they take ``weights_file``, resolved by ``models.weights.resolve_weights``), else None.

Every generator maps latent vectors (N, z_dim) to images (N, 3, size, size) and has ``z_dim``;
every discriminator maps images to (N, 1) logits. No discriminator ends in a sigmoid: where a
report says "sigmoid out", the sigmoid is applied inside the loss (``gan.losses``, BCE with
logits: the log-sum-exp form stays finite where log(sigmoid(x)) underflows) and at scoring time.

The networks (what each report states, and what we chose where it states nothing):

- ``dcgan64_generator`` / ``dcgan64_discriminator``: seed 002, after the TensorFlow DCGAN tutorial.
  G: Dense(z -> 8*8*128) -> BN-ReLU -> ConvT 5x5 s2 128->64 -> BN-ReLU -> ConvT 5x5 s2 64->32 ->
  BN-ReLU -> ConvT 5x5 s2 32->3 -> tanh (8 -> 16 -> 32 -> 64). The report gives only the Dense
  size; the ConvT filters halve per layer as in the tutorial (which goes 256 -> 128 -> 64 -> out),
  with no biases (the tutorial's ``use_bias=False``; BN's shift replaces them). D: 4 Conv k4 s2
  (64-128-256-512, a DCGAN's usual doubling; the report gives no counts) + 1 Conv k4 s1 -> 1,
  BN on 2-4, LeakyReLU(0.2) on 1-4 (Radford et al.'s slope).
- ``dcgan224_generator`` / ``dcgan224_discriminator``: seed 000 (its listing 9), PyTorch DCGAN
  style: ConvT k_base s1 to 16w@base, then ConvT k4 s2 p1 halving channels to w@size/2, then
  3@size, tanh; D mirrors it with k4 s2 p1 convs 3-w-2w-...-16w, BN except first and last,
  LeakyReLU 0.2, and a last conv over the whole base map to one logit. ``width`` = 64 and
  ``size`` = 224 (base 7) are the report's; a demo may shrink both (``size`` = base * 2^k with
  base 7 or 4, e.g. 56 or 64: the number of up/down blocks follows).
- ``hybrid_resnet34_discriminator`` / ``hybrid_generator``: seed 004, which states ResNet-34
  (ImageNet), channel attention, "additional convolution layers", dropout, batch norm, 64x64
  pixels in [0, 1] and a weighted BCE, but no layer sizes; ours are written at each builder.

Weight init: DCGAN's N(0, 0.02) for the seed-000 nets (the PyTorch DCGAN recipe it follows),
Keras' glorot-uniform/zero-bias for the seed-002 nets (the tutorial is Keras), torch's default for
the hybrid heads (the backbone has ImageNet or random torchvision init).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import torch
from torch import nn

from ..models.blocks import SqueezeExcitation
from ..models.registry import with_weights_file

Builder = Callable[..., nn.Module]
KINDS = ("generator", "discriminator")
GAN_PIXELS = ("half", "unit")             # [-1, 1] (tanh) | [0, 1] (sigmoid); names from model_specs.NORMALIZATIONS
INITS = ("dcgan", "glorot", "torch")
IMAGENET_MEAN, IMAGENET_STD = (0.485, 0.456, 0.406), (0.229, 0.224, 0.225)
_GAN_NETS: dict[str, tuple[Builder, "GanNetInfo"]] = {}


@dataclass(frozen=True)
class GanNetInfo:
    """What a GAN builder declares (see the module docstring)."""

    name: str
    kind: str
    pixels: str
    default_size: int
    weights: str | None = None


def register_gan_net(*, kind: str, pixels: str, default_size: int,
                     weights: str | None = None) -> Callable[[Builder], Builder]:
    """Decorator factory: register ``fn`` under its name with this metadata (literals only)."""

    def register(fn: Builder) -> Builder:
        where = f"@register_gan_net of {fn.__name__!r}"
        if fn.__name__ in _GAN_NETS:
            raise ValueError(f"GAN net builder {fn.__name__!r} registered twice")
        if kind not in KINDS:
            raise ValueError(f"{where}: kind {kind!r} is not one of {KINDS}")
        if pixels not in GAN_PIXELS:
            raise ValueError(f"{where}: pixels {pixels!r} is not one of {GAN_PIXELS}")
        _GAN_NETS[fn.__name__] = (fn, GanNetInfo(fn.__name__, kind, pixels, default_size, weights))
        return fn

    return register


def list_gan_nets(kind: str | None = None) -> list[str]:
    """Registered builder names, all or of one ``kind``."""
    if kind is not None and kind not in KINDS:
        raise ValueError(f"kind {kind!r} is not one of {KINDS}")
    return sorted(n for n, (_, info) in _GAN_NETS.items() if kind is None or info.kind == kind)


def gan_net_info(name: str) -> GanNetInfo:
    if name not in _GAN_NETS:
        raise ValueError(f"unknown GAN net builder {name!r}; registered: {sorted(_GAN_NETS)}")
    return _GAN_NETS[name][1]


def create_gan_net(name: str, weights_file: str | Path | None = None, **kwargs) -> nn.Module:
    """Build the registered GAN net ``name`` with ``kwargs``; ``weights_file`` only for builders declaring weights."""
    kwargs = with_weights_file(f"GAN net builder {name!r}", gan_net_info(name).weights, weights_file, kwargs)
    try:
        return _GAN_NETS[name][0](**kwargs)
    except TypeError as exc:
        raise ValueError(f"GAN net builder {name!r}: bad kwargs {sorted(kwargs)}: {exc}") from exc


# ------------------------------------------------------------------ pixels in and out


def to_net_pixels(images: torch.Tensor, pixels: str) -> torch.Tensor:
    """uint8 images -> float in the range a net with ``pixels`` expects: "half" [-1, 1], "unit" [0, 1]."""
    if images.dtype != torch.uint8:
        raise ValueError(f"to_net_pixels: expected uint8 images, got {images.dtype}")
    if pixels not in GAN_PIXELS:
        raise ValueError(f"pixels {pixels!r} is not one of {GAN_PIXELS}")
    x = images.float() / 255.0
    return x * 2 - 1 if pixels == "half" else x


def to_uint8(images: torch.Tensor, pixels: str) -> torch.Tensor:
    """A generator's output in ``pixels`` range -> uint8 (rounded, clamped), for FID and sample grids."""
    if pixels not in GAN_PIXELS:
        raise ValueError(f"pixels {pixels!r} is not one of {GAN_PIXELS}")
    x = (images.detach().float() + 1) / 2 if pixels == "half" else images.detach().float()
    return (x.clamp(0, 1) * 255).round().to(torch.uint8)


# ------------------------------------------------------------------ shared pieces


def init_weights(model: nn.Module, scheme: str) -> nn.Module:
    """"dcgan": conv/linear N(0, 0.02), BN weight N(1, 0.02), biases 0 (Radford et al.);
    "glorot": Keras' default, glorot-uniform weights, zero biases, BN 1/0; "torch": unchanged."""
    if scheme not in INITS:
        raise ValueError(f"init {scheme!r} is not one of {INITS}")
    if scheme == "torch":
        return model
    for m in model.modules():
        if isinstance(m, (nn.Conv2d, nn.ConvTranspose2d, nn.Linear)):
            if scheme == "dcgan":
                nn.init.normal_(m.weight, 0.0, 0.02)
            else:
                nn.init.xavier_uniform_(m.weight)
            if m.bias is not None:
                nn.init.zeros_(m.bias)
        elif isinstance(m, (nn.BatchNorm1d, nn.BatchNorm2d)):
            if scheme == "dcgan":
                nn.init.normal_(m.weight, 1.0, 0.02)
            else:
                nn.init.ones_(m.weight)
            nn.init.zeros_(m.bias)
    return model


class Generator(nn.Module):
    """``body(z)`` with z of shape (N, z_dim); ``z_dim`` is what callers sample."""

    def __init__(self, z_dim: int, body: nn.Module):
        super().__init__()
        self.z_dim = z_dim
        self.body = body

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        if z.ndim != 2 or z.shape[1] != self.z_dim:
            raise ValueError(f"generator expects latents of shape (N, {self.z_dim}), got {tuple(z.shape)}")
        return self.body(z)


class ToMap(nn.Module):
    """(N, C*H*W) -> (N, C, H, W), or (N, C) -> (N, C, 1, 1) with ``side`` 1."""

    def __init__(self, channels: int, side: int):
        super().__init__()
        self.channels, self.side = channels, side

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x.view(x.shape[0], self.channels, self.side, self.side)


def _check_z(z_dim: int) -> None:
    if not isinstance(z_dim, int) or z_dim < 1:
        raise ValueError(f"z_dim must be a positive int, got {z_dim!r}")


def _pyramid(size: int) -> tuple[int, int]:
    """(base side, number of x2 steps) with size = base * 2**steps, base 7 (224-family) or 4 (64-family)."""
    for base in (7, 4):
        steps = math.log2(size / base) if size % base == 0 else -1
        if steps >= 1 and steps == int(steps):
            return base, int(steps)
    raise ValueError(f"size {size!r} must be 7 * 2^k or 4 * 2^k with k >= 1 (e.g. 224, 112, 56, 64, 32)")


# ------------------------------------------------------------------ seed 002: 64x64 DCGAN / WGAN-GP


@register_gan_net(kind="generator", pixels="half", default_size=64)
def dcgan64_generator(z_dim: int = 100, init: str = "glorot") -> nn.Module:
    """Seed 002's generator: Dense(z -> 8*8*128), BN-ReLU, ConvT 5x5 s2 x2 (BN-ReLU), ConvT 5x5 s2, tanh."""
    _check_z(z_dim)

    def up(cin: int, cout: int) -> nn.ConvTranspose2d:
        # k5 s2 "same": padding 2 and output_padding 1 give exactly twice the side
        return nn.ConvTranspose2d(cin, cout, 5, stride=2, padding=2, output_padding=1, bias=False)

    body = nn.Sequential(
        nn.Linear(z_dim, 8 * 8 * 128, bias=False), nn.BatchNorm1d(8 * 8 * 128), nn.ReLU(inplace=True),
        ToMap(128, 8),
        up(128, 64), nn.BatchNorm2d(64), nn.ReLU(inplace=True),      # 16
        up(64, 32), nn.BatchNorm2d(32), nn.ReLU(inplace=True),       # 32
        up(32, 3), nn.Tanh(),                                        # 64
    )
    return init_weights(Generator(z_dim, body), init)


@register_gan_net(kind="discriminator", pixels="half", default_size=64)
def dcgan64_discriminator(norm: str = "batch", slope: float = 0.2, init: str = "glorot") -> nn.Module:
    """Seed 002's discriminator: 4 Conv k4 s2 (64-128-256-512) + Conv k4 s1 -> 1 logit; LeakyReLU on 1-4.

    ``norm`` "batch": BN on convs 2-4 (the report's DCGAN). "none": the WGAN-GP critic: the
    gradient penalty constrains the gradient norm of the critic per input sample, and batch
    norm makes each output depend on the whole batch, so Gulrajani et al. drop it from the
    critic. Under the WGAN loss the last conv's bias cancels (E[f(fake)] - E[f(real)] and the
    penalty's input gradient do not depend on it), so it stays at its initial value. The sigmoid
    of "sigmoid out" is in the BCE loss (module docstring).
    """
    if norm not in ("batch", "none"):
        raise ValueError(f"dcgan64_discriminator: norm {norm!r} is not 'batch' or 'none'")
    layers: list[nn.Module] = []
    chans = [3, 64, 128, 256, 512]
    for i in range(4):
        bn = norm == "batch" and i > 0
        layers.append(nn.Conv2d(chans[i], chans[i + 1], 4, stride=2, padding=1, bias=not bn))
        if bn:
            layers.append(nn.BatchNorm2d(chans[i + 1]))
        layers.append(nn.LeakyReLU(slope, inplace=True))
    layers += [nn.Conv2d(512, 1, 4, stride=1, padding=0), nn.Flatten()]      # 4x4 -> 1x1 -> (N, 1)
    return init_weights(nn.Sequential(*layers), init)


# ------------------------------------------------------------------ seed 000: 224-px DCGAN anomaly detector


@register_gan_net(kind="generator", pixels="half", default_size=224)
def dcgan224_generator(z_dim: int = 100, width: int = 64, size: int = 224, init: str = "dcgan") -> nn.Module:
    """Seed 000's generator: z -> ConvT to 16w@base -> ... -> w@size/2 -> 3@size, tanh.

    ``width`` 64 and ``size`` 224 are the report's (1024@7 -> 512@14 -> ... -> 64@112 -> 3@224).
    """
    _check_z(z_dim)
    base, steps = _pyramid(size)
    chans = [width * 2 ** (steps - 1 - i) for i in range(steps)]     # 224: 1024, 512, 256, 128, 64
    layers: list[nn.Module] = [ToMap(z_dim, 1), nn.ConvTranspose2d(z_dim, chans[0], base, 1, 0, bias=False),
                               nn.BatchNorm2d(chans[0]), nn.ReLU(inplace=True)]
    for cin, cout in zip(chans, chans[1:]):
        layers += [nn.ConvTranspose2d(cin, cout, 4, 2, 1, bias=False), nn.BatchNorm2d(cout), nn.ReLU(inplace=True)]
    layers += [nn.ConvTranspose2d(chans[-1], 3, 4, 2, 1, bias=False), nn.Tanh()]
    return init_weights(Generator(z_dim, nn.Sequential(*layers)), init)


@register_gan_net(kind="discriminator", pixels="half", default_size=224)
def dcgan224_discriminator(width: int = 64, size: int = 224, init: str = "dcgan") -> nn.Module:
    """Seed 000's discriminator: convs 3-w-2w-...-16w k4 s2 p1, BN except first/last, LeakyReLU 0.2, one logit."""
    base, steps = _pyramid(size)
    chans = [3] + [width * 2 ** i for i in range(steps)]            # 224: 3, 64, 128, 256, 512, 1024
    layers: list[nn.Module] = []
    for i, (cin, cout) in enumerate(zip(chans, chans[1:])):
        layers.append(nn.Conv2d(cin, cout, 4, 2, 1, bias=False))
        if i > 0:
            layers.append(nn.BatchNorm2d(cout))
        layers.append(nn.LeakyReLU(0.2, inplace=True))
    layers += [nn.Conv2d(chans[-1], 1, base, 1, 0, bias=False), nn.Flatten()]   # base x base -> (N, 1)
    return init_weights(nn.Sequential(*layers), init)


# ------------------------------------------------------------------ seed 004: hybrid ResNet-34 GAN


class HybridDiscriminator(nn.Module):
    """ImageNet-normalise, ResNet-34 features, SE channel attention, extra convs, pool, dropout, one logit."""

    def __init__(self, backbone: nn.Module, attention: nn.Module, extra: nn.Module, head: nn.Module):
        super().__init__()
        self.register_buffer("mean", torch.tensor(IMAGENET_MEAN).view(1, 3, 1, 1), persistent=False)
        self.register_buffer("std", torch.tensor(IMAGENET_STD).view(1, 3, 1, 1), persistent=False)
        self.backbone, self.attention, self.extra, self.head = backbone, attention, extra, head

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        # the pixels are in [0, 1] for reals and fakes alike (seed 004); the backbone wants ImageNet statistics
        return self.head(self.extra(self.attention(self.backbone((x - self.mean) / self.std))))


@register_gan_net(kind="discriminator", pixels="unit", default_size=64, weights="resnet34")
def hybrid_resnet34_discriminator(weights_file: Path | None = None, dropout: float = 0.5,
                                  reduction: int = 16) -> nn.Module:
    """Seed 004's discriminator-classifier: ResNet-34 (conv1..layer4) -> SE(512) -> extra convs -> logit.

    The report states ResNet-34 with ImageNet weights, channel-wise attention on its features,
    "additional convolution layers", dropout and batch norm, and no sizes. Ours: torchvision's
    ResNet-34 up to layer4 (ImageNet weights from ``weights_file`` when given), a squeeze-excitation
    gate on layer4's 512 maps (reduction 16), Conv3x3 512->256 BN ReLU, Conv3x3 256->128 BN ReLU,
    global average pool, Dropout(``dropout``), Linear(128 -> 1). Its input is [0, 1] pixels; the
    ImageNet normalisation is inside, so generated images need no conversion.
    """
    from torchvision.models import resnet34

    from ..io import load_torch

    resnet = resnet34(weights=None)
    if weights_file is not None:
        resnet.load_state_dict(load_torch(weights_file, "ResNet-34 weights file"))
    backbone = nn.Sequential(*list(resnet.children())[:-2])      # drop avgpool and fc
    extra = nn.Sequential(
        nn.Conv2d(512, 256, 3, padding=1, bias=False), nn.BatchNorm2d(256), nn.ReLU(inplace=True),
        nn.Conv2d(256, 128, 3, padding=1, bias=False), nn.BatchNorm2d(128), nn.ReLU(inplace=True),
    )
    head = nn.Sequential(nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Dropout(dropout), nn.Linear(128, 1))
    return HybridDiscriminator(backbone, SqueezeExcitation(512, reduction), extra, head)


@register_gan_net(kind="generator", pixels="unit", default_size=64)
def hybrid_generator(z_dim: int = 100, width: int = 64, size: int = 64) -> nn.Module:
    """Seed 004's generator (its architecture is not stated): a DCGAN generator, sigmoid out.

    At the report's ``size`` 64: ConvT k4 s1 to 8w@4x4, then ConvT k4 s2 p1 with BN-ReLU to 4w@8,
    2w@16, w@32, then 3@64 and a sigmoid, because the report's pixels are in [0, 1]. Another
    ``size`` = 4 * 2^k changes the number of x2 steps (32: 4w@4 -> 2w@8 -> w@16 -> 3@32).
    """
    _check_z(z_dim)
    base, steps = _pyramid(size)
    if base != 4:
        raise ValueError(f"hybrid_generator: size {size} must be 4 * 2^k (e.g. 32, 64, 128)")
    chans = [width * 2 ** (steps - 1 - i) for i in range(steps)]     # 64: 8w, 4w, 2w, w
    layers: list[nn.Module] = [ToMap(z_dim, 1), nn.ConvTranspose2d(z_dim, chans[0], 4, 1, 0, bias=False),
                               nn.BatchNorm2d(chans[0]), nn.ReLU(inplace=True)]
    for cin, cout in zip(chans, chans[1:]):
        layers += [nn.ConvTranspose2d(cin, cout, 4, 2, 1, bias=False), nn.BatchNorm2d(cout), nn.ReLU(inplace=True)]
    layers += [nn.ConvTranspose2d(chans[-1], 3, 4, 2, 1, bias=False), nn.Sigmoid()]
    return Generator(z_dim, nn.Sequential(*layers))
