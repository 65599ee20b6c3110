"""Train/eval augmentation of whole uint8 batches on the device, each image with its own parameters.

Every image gets its own parameters (crop box, flip, jitter factors, angle, zoom, AutoAugment
sub-policy), applied to the whole batch in a few tensor ops, on CPU or CUDA alike; torchvision
v2 would draw one set per call, i.e. per batch. Kornia (``kornia.augmentation``) does
RandomResizedCrop, rotation, zoom and AutoAugment; the hot path of the common recipes (resize,
random crop, flip, colour jitter) is written out here with torchvision's formulas, in uint8
where it can be, because Kornia's float versions cost ~5x more CPU time per batch (the
benchmark ``benchmarks/bench_input_pipeline.py`` measures it); ``TrainAugment(compile=True)``
fuses the float steps further with ``torch.compile``. Every random draw happens inside
``torch.random.fork_rng`` seeded from :func:`batch_seed` (seed, epoch, step), so the same batch
gets the same bytes on a rerun or a resume and the caller's global RNG state is left untouched.

AutoAugment (ImageNet policy): Kornia's ``auto.AutoAugment`` draws one sub-policy per call;
:class:`PerSampleAutoAugment` draws one per image, as torchvision's per-image transform does,
and runs each drawn sub-policy once on its group of images.

CutMix / MixUp: torchvision v2 ``CutMix`` / ``MixUp`` (one lambda per batch, the partner is the
batch rolled by one), the recipe the reports follow; the labels become P(fake) soft targets,
which ``training.engine.loss_fn`` takes as they are. Kornia's ``RandomCutMixV2`` /
``RandomMixUpV2`` draw a lambda per sample and return (N, 3) label triples instead.

The output is float32, normalised like :func:`.transforms.to_float_batch`.
"""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F
from kornia import augmentation as K
from kornia.augmentation.auto.autoaugment.autoaugment import imagenet_policy
from torch import nn
from torchvision.transforms import v2

from .transforms import NORMALIZE


def batch_seed(seed: int, epoch: int, step: int) -> int:
    """A 63-bit seed for one batch, a pure function of (seed, epoch, step)."""
    return int(np.random.SeedSequence([seed, epoch, step]).generate_state(2, dtype=np.uint64)[0] >> np.uint64(1))


def to_unit_float(x: torch.Tensor) -> torch.Tensor:
    """uint8 (N, C, H, W) -> contiguous float32 in [0, 1]."""
    return x.contiguous().float().div_(255.0)


def normalize_float(x: torch.Tensor, normalize: str) -> torch.Tensor:
    """Float (N, 3, H, W) in [0, 1] -> normalised like ``to_float_batch`` does for uint8."""
    if normalize not in NORMALIZE:
        raise ValueError(f"normalize {normalize!r} is not one of {sorted(NORMALIZE)}")
    mean, std = NORMALIZE[normalize]
    mean_t = torch.tensor(mean, device=x.device, dtype=x.dtype).view(1, -1, 1, 1)
    std_t = torch.tensor(std, device=x.device, dtype=x.dtype).view(1, -1, 1, 1)
    return (x - mean_t) / std_t


def resize_uint8(x: torch.Tensor, size: int) -> torch.Tensor:
    """Bilinear antialiased resize to ``size`` x ``size`` that keeps uint8, as torchvision v2's Resize.

    On CPU, PyTorch's uint8 channels_last kernel (torchvision's fast path); elsewhere in float,
    rounded back to uint8 as torchvision does there.
    """
    if size == 0 or tuple(x.shape[-2:]) == (size, size):
        return x
    if x.device.type != "cpu":
        out = F.interpolate(x.float(), size=(size, size), mode="bilinear", align_corners=False, antialias=True)
        return out.round_().clamp_(0, 255).to(torch.uint8)
    return F.interpolate(x.contiguous(memory_format=torch.channels_last), size=(size, size),
                         mode="bilinear", align_corners=False, antialias=True)


def center_crop_batch(x: torch.Tensor, size: int) -> torch.Tensor:
    """The central ``size`` x ``size`` window (torchvision's CenterCrop rounding)."""
    h, w = x.shape[-2:]
    if size == 0 or (h, w) == (size, size):
        return x
    if size > h or size > w:
        raise ValueError(f"center crop {size} is larger than the {h}x{w} images; lower augment.crop")
    top, left = int(round((h - size) / 2.0)), int(round((w - size) / 2.0))
    return x[..., top:top + size, left:left + size]


def seed_generators(seed: int, device: torch.device) -> None:
    """Seed the CPU generator (Kornia draws its parameters there) and ``device``'s, no other GPU's."""
    torch.default_generator.manual_seed(seed)
    if device.type == "cuda":
        with torch.cuda.device(device):
            torch.cuda.manual_seed(seed)


class PerSampleAutoAugment(nn.Module):
    """AutoAugment (ImageNet policy) with a sub-policy drawn per image, run once per drawn sub-policy."""

    def __init__(self):
        super().__init__()
        aa = K.auto.AutoAugment(policy="imagenet")
        self.subpolicies = nn.ModuleList(aa.compose_subpolicy_sequential(sp) for sp in imagenet_policy)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        choice = torch.randint(len(self.subpolicies), (x.shape[0],))
        out = x.clone()
        for k in torch.unique(choice).tolist():
            idx = (choice == k).nonzero()[:, 0].to(x.device)
            out[idx] = self.subpolicies[k](x[idx]).to(x.dtype)
        return out


def random_crop_flip(x: torch.Tensor, crop: int, hflip: float) -> torch.Tensor:
    """Per-sample random ``crop`` window and horizontal flip of an (N, C, H, W) batch (any dtype).

    Each image gets its own top-left corner (uniform, as RandomCrop draws it) and its own flip
    (probability ``hflip``). A loop of slice copies: on CPU it beats one advanced-index gather 4x.
    """
    n, c, h, w = x.shape
    size_h, size_w = (crop, crop) if crop else (h, w)
    if size_h > h or size_w > w:
        raise ValueError(f"random crop {crop} is larger than the {h}x{w} images; lower augment.crop")
    tops = torch.randint(h - size_h + 1, (n,)).tolist()
    lefts = torch.randint(w - size_w + 1, (n,)).tolist()
    flips = (torch.rand(n) < hflip).tolist()
    x = x.contiguous()
    out = torch.empty((n, c, size_h, size_w), dtype=x.dtype, device=x.device)
    for i, (top, left, flip) in enumerate(zip(tops, lefts, flips)):
        window = x[i, :, top:top + size_h, left:left + size_w]
        out[i] = window.flip(-1) if flip else window
    return out


def _gray(x: torch.Tensor) -> torch.Tensor:
    """Luma with torchvision's ``rgb_to_grayscale`` weights (0.2989, 0.587, 0.114); (N, 1, H, W)."""
    r, g, b = x.unbind(1)
    return torch.mul(r, 0.2989).add_(g, alpha=0.587).add_(b, alpha=0.114).unsqueeze(1)   # 10x einsum's speed


def adjust_hue(x: torch.Tensor, shift: torch.Tensor) -> torch.Tensor:
    """torchvision's ``adjust_hue`` on a float [0, 1] batch, one shift per image (N,) in [-0.5, 0.5].

    RGB -> hue as torchvision's ``_rgb2hsv`` computes it; back to RGB with the closed form
    ``c_n = v - (v - min) clamp(2 - |k - 2|, 0, 1)``, ``k = (n + 6 h) mod 6`` for n = 5, 3, 1
    (with ``v - min = v s``), which needs no six-way sector select.
    """
    r, g, b = x.unbind(1)
    maxc = torch.maximum(torch.maximum(r, g), b)          # elementwise: 5x a reduction over dim 1
    cr = maxc - torch.minimum(torch.minimum(r, g), b)
    # torchvision: h6 = (g - b) / cr if max is r, else 2 + (b - r) / cr if g, else 4 + (r - g) / cr
    num = torch.where(maxc == r, g - b,
                      torch.where(maxc == g, (b - r).add_(cr, alpha=2.0), (r - g).add_(cr, alpha=4.0)))
    h = num.div_(cr.clamp(min=1e-12)).div_(6.0).add_(1.0 + shift.view(-1, 1, 1).to(x))   # cr == 0: num == 0
    h = h.sub_(h.floor())                                                               # mod 1
    n = torch.tensor([5.0, 3.0, 1.0], device=x.device, dtype=x.dtype).view(1, 3, 1, 1)
    k = torch.add(n, h.unsqueeze(1), alpha=6.0).fmod_(6.0)
    sector = k.sub_(2.0).abs_().neg_().add_(2.0).clamp_(0.0, 1.0)
    return maxc.unsqueeze(1) - sector.mul_(cr.unsqueeze(1))


def adjust_brightness(x: torch.Tensor, factor: torch.Tensor) -> torch.Tensor:
    """torchvision's ``adjust_brightness`` with one factor per image (N,)."""
    return (x * factor.view(-1, 1, 1, 1)).clamp_(0.0, 1.0)


def adjust_contrast(x: torch.Tensor, factor: torch.Tensor) -> torch.Tensor:
    """torchvision's ``adjust_contrast``: blend with the image's mean luma, one factor per image (N,)."""
    return torch.lerp(_gray(x).mean(dim=(1, 2, 3), keepdim=True), x, factor.view(-1, 1, 1, 1)).clamp_(0.0, 1.0)


def adjust_saturation(x: torch.Tensor, factor: torch.Tensor) -> torch.Tensor:
    """torchvision's ``adjust_saturation``: blend with the luma image, one factor per image (N,)."""
    return torch.lerp(_gray(x), x, factor.view(-1, 1, 1, 1)).clamp_(0.0, 1.0)


STEPS = (adjust_brightness, adjust_contrast, adjust_saturation, adjust_hue)


class BatchColorJitter(nn.Module):
    """torchvision's ColorJitter with factors drawn per image, on a float [0, 1] batch.

    brightness, contrast, saturation: factor ~ U(max(0, 1 - v), 1 + v); hue: shift ~ U(-v, v);
    the four steps use torchvision's formulas (each clamped to [0, 1]) in an order drawn per
    batch, as Kornia's ColorJitter does. Written out because Kornia's hue step (a general
    RGB<->HSV round trip) is several times slower on CPU than this closed form.
    ``compile()`` fuses each step into one kernel with ``torch.compile`` (a one-off compile per
    batch shape, cached by PyTorch under the system temp folder): ~9x faster hue on CPU.
    """

    def __init__(self, brightness: float, contrast: float, saturation: float, hue: float):
        super().__init__()
        for key, v, top in (("brightness", brightness, float("inf")), ("contrast", contrast, float("inf")),
                            ("saturation", saturation, float("inf")), ("hue", hue, 0.5)):
            if not 0 <= v <= top:
                raise ValueError(f"augment.color_jitter {key} must be in [0, {top}], got {v}")
        self.values = (brightness, contrast, saturation, hue)
        self.steps = STEPS

    def compile(self) -> "BatchColorJitter":
        self.steps = tuple(torch.compile(fn, dynamic=False) for fn in STEPS)
        return self

    def draw(self, n: int) -> tuple[torch.Tensor, torch.Tensor]:
        """(factors (4, N): b, c, s, hue shift; order (4,)), from the global (forked) CPU generator."""
        lo = torch.tensor([max(0.0, 1.0 - v) for v in self.values[:3]] + [-self.values[3]])
        hi = torch.tensor([1.0 + v for v in self.values[:3]] + [self.values[3]])
        factors = lo[:, None] + (hi - lo)[:, None] * torch.rand(4, n)
        return factors, torch.randperm(4)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        factors, order = self.draw(x.shape[0])
        factors = factors.to(x.device, x.dtype)
        for step in order.tolist():
            if self.values[step]:
                x = self.steps[step](x, factors[step])
        return x


def kornia_ops(aug) -> list[nn.Module]:
    """Kornia's per-sample float ops for what the uint8 crop/flip fast path does not cover, in order.

    RandomResizedCrop (with the flip after it), rotation and zoom; empty when ``aug`` needs
    only resize / crop / flip / colour jitter.
    """
    ops: list[nn.Module] = []
    scale = tuple(aug.random_resized_crop_scale)
    if scale != (1.0, 1.0):
        size = aug.crop or aug.resize
        ops.append(K.RandomResizedCrop((size, size), scale=scale, cropping_mode="resample", p=1.0))
        if aug.hflip > 0:
            ops.append(K.RandomHorizontalFlip(p=aug.hflip))
    if aug.rotation:
        ops.append(K.RandomRotation(degrees=aug.rotation, p=1.0))
    if aug.zoom:
        ops.append(K.RandomAffine(degrees=0.0, scale=(1.0 - aug.zoom, 1.0 + aug.zoom), p=1.0))
    return ops


def make_mix(mix, num_classes: int = 2) -> v2.Transform | None:
    """torchvision v2 CutMix / MixUp from ``MixParams`` (None when off)."""
    if mix is None or mix.name == "none" or mix.alpha <= 0:
        return None
    if mix.name == "cutmix":
        return v2.CutMix(alpha=mix.alpha, num_classes=num_classes)
    if mix.name == "mixup":
        return v2.MixUp(alpha=mix.alpha, num_classes=num_classes)
    raise ValueError(f"train.mix.name {mix.name!r} is not one of none, cutmix, mixup")


class TrainAugment:
    """uint8 (N, 3, S, S) + int labels -> (normalised float32 batch, labels), every image its own draws.

    Order (the reports' order): resize (uint8, antialiased), then either a per-sample crop +
    flip gather in uint8 or Kornia's RandomResizedCrop + flip on floats, rotation, zoom, colour
    jitter, AutoAugment, CutMix / MixUp, normalisation. Labels stay int64 unless a mix is set;
    then they are float P(fake) soft targets. ``compile=True`` fuses the float conversion, each
    colour-jitter step and the normalisation with ``torch.compile`` (see
    :class:`BatchColorJitter`): ~1.6-2x the eager speed on CPU, the same draws, pixels equal to
    eager within 1e-5 but not bit for bit.
    """

    def __init__(self, aug, normalize: str = "half", mix=None, compile: bool = False):
        if normalize not in NORMALIZE:
            raise ValueError(f"normalize {normalize!r} is not one of {sorted(NORMALIZE)}")
        self.resize, self.normalize = aug.resize, normalize
        kops = kornia_ops(aug)
        rrc = tuple(aug.random_resized_crop_scale) != (1.0, 1.0)
        self.crop_flip = None if rrc or not (aug.crop or aug.hflip) else (aug.crop, aug.hflip)
        self.kornia = K.AugmentationSequential(*kops) if kops else None
        self.jitter = BatchColorJitter(*aug.color_jitter) if any(aug.color_jitter) else None
        self.to_unit, self.finish = to_unit_float, normalize_float
        if compile:
            self.to_unit = torch.compile(to_unit_float, dynamic=False)
            self.finish = torch.compile(normalize_float, dynamic=False)
            if self.jitter is not None:
                self.jitter.compile()
        self.autoaugment = PerSampleAutoAugment() if aug.autoaugment else None
        self.mix = make_mix(mix)

    def to(self, device) -> "TrainAugment":
        for m in (self.kornia, self.autoaugment):
            if m is not None:
                m.to(device)
        return self

    def __call__(self, x: torch.Tensor, y: torch.Tensor, seed: int) -> tuple[torch.Tensor, torch.Tensor]:
        if x.dtype != torch.uint8 or x.ndim != 4 or x.shape[1] != 3:
            raise ValueError(f"TrainAugment takes a uint8 (N, 3, H, W) batch, got {x.dtype} {tuple(x.shape)}")
        devices = [x.device] if x.device.type == "cuda" else []
        with torch.random.fork_rng(devices=devices), torch.no_grad():
            seed_generators(seed, x.device)
            x = resize_uint8(x, self.resize)
            if self.crop_flip is not None:
                x = random_crop_flip(x, *self.crop_flip)
            out = self.to_unit(x)
            if self.kornia is not None:
                out = self.kornia(out).clamp_(0.0, 1.0)
            if self.jitter is not None:
                out = self.jitter(out)
            if self.autoaugment is not None:
                out = self.autoaugment(out).clamp_(0.0, 1.0)
            if self.mix is not None:
                out, soft = self.mix(out, y)
                y = soft[:, 1].contiguous()
        return self.finish(out, self.normalize).contiguous(), y


class EvalAugment:
    """Deterministic: resize, centre crop, normalise (the eval side of ``transforms.eval_transform``)."""

    def __init__(self, aug, normalize: str = "half"):
        if normalize not in NORMALIZE:
            raise ValueError(f"normalize {normalize!r} is not one of {sorted(NORMALIZE)}")
        self.resize, self.crop, self.normalize = aug.resize, aug.crop, normalize

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        if x.dtype != torch.uint8 or x.ndim != 4:
            raise ValueError(f"EvalAugment takes a uint8 (N, C, H, W) batch, got {x.dtype} {tuple(x.shape)}")
        out = center_crop_batch(resize_uint8(x, self.resize), self.crop).float().div_(255.0)
        return normalize_float(out, self.normalize).contiguous()
