"""Train/eval augmentation of whole uint8 batches, each image with its own parameters.

Every image gets its own parameters (crop box, flip, jitter factors and order, angle, zoom,
AutoAugment sub-policy); the same seed gives the same bytes. Every random draw happens inside
``torch.random.fork_rng`` seeded from :func:`batch_seed` (seed, epoch, step), so a rerun or a
resume replays a batch and the caller's global RNG state is left untouched.

Two paths, one recipe:

* **uint8 on CPU** (resize / random crop / flip / ColorJitter, the common recipes): each image
  stays uint8 until the end and goes through OpenCV, which runs SIMD kernels and releases the
  GIL, so a thread pool of ``torch.get_num_threads()`` threads shares the batch. ColorJitter
  follows torchvision's ColorJitter on PIL images, the reports' loop, step by step
  (:func:`jitter_uint8`): brightness and contrast are PIL's ``Image.blend`` written as 256-entry
  lookup tables (bit-exact), saturation is the blend with the luma image via ``cv2.addWeighted``
  (within 1 grey level of PIL), hue is a shift of the H channel of OpenCV's full-range HSV
  (within 8 levels of PIL, mean difference under 0.5 level: PIL's and OpenCV's uint8 HSV round
  trips round differently, and PIL's own round trip moves pixels by ~0.3 level on average).
  The order of the four steps is drawn per image, as torchvision draws it per call. The float
  conversion and normalisation is one more lookup table per channel (uint8 -> normalised
  float32), into which a trailing brightness/contrast table is folded.
* **float on any device** (CUDA, or when RandomResizedCrop, rotation, zoom or AutoAugment need
  floats): Kornia (``kornia.augmentation``) does RandomResizedCrop, rotation, zoom and
  AutoAugment; :class:`BatchColorJitter` is torchvision's tensor formulas with per-image factors
  (the step order drawn per batch, as Kornia draws it), written out because Kornia's hue
  round trip is several times slower. ``TrainAugment(compile=True)`` fuses these float steps
  with ``torch.compile``.

AutoAugment (ImageNet policy): Kornia's ``auto.AutoAugment`` draws one sub-policy per call;
:class:`PerSampleAutoAugment` draws one per image, as torchvision's per-image transform does,
and runs each drawn sub-policy once on its group of images.

CutMix / MixUp: torchvision v2 ``CutMix`` / ``MixUp`` (one lambda per batch, the partner is the
batch rolled by one), the recipe the reports follow; the labels become P(fake) soft targets,
which ``training.engine.loss_fn`` takes as they are. Both are linear, so the uint8 path mixes
after normalising (the same result up to float rounding). Kornia's ``RandomCutMixV2`` /
``RandomMixUpV2`` draw a lambda per sample and return (N, 3) label triples instead.

The output is float32, normalised like :func:`.transforms.to_float_batch`.
``benchmarks/bench_loading.py`` measures both paths against the reports' loop.
"""

from __future__ import annotations

import sys
from concurrent.futures import ThreadPoolExecutor

import cv2
import numpy as np
import torch
import torch.nn.functional as F
from kornia import augmentation as K
from kornia.augmentation.auto.autoaugment.autoaugment import imagenet_policy
from torch import nn
from torchvision.transforms import v2

from .transforms import NORMALIZE, eval_resize


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


def draw_crop_flip(n: int, h: int, w: int, crop: int, hflip: float) -> tuple[list, list, list, int, int]:
    """Per-image crop corners and flips from the global (forked) generator: (tops, lefts, flips, ch, cw)."""
    size_h, size_w = (crop, crop) if crop else (h, w)
    if size_h > h or size_w > w:
        raise ValueError(f"random crop {crop} is larger than the {h}x{w} images; lower augment.crop")
    tops = torch.randint(h - size_h + 1, (n,)).tolist()
    lefts = torch.randint(w - size_w + 1, (n,)).tolist()
    flips = (torch.rand(n) < hflip).tolist()
    return tops, lefts, flips, size_h, size_w


def random_crop_flip(x: torch.Tensor, crop: int, hflip: float) -> torch.Tensor:
    """Per-sample random ``crop`` window and horizontal flip of an (N, C, H, W) batch (any dtype).

    Each image gets its own top-left corner (uniform, as RandomCrop draws it) and its own flip
    (probability ``hflip``). A loop of slice copies: on CPU it beats one advanced-index gather 4x.
    """
    n, c, h, w = x.shape
    tops, lefts, flips, size_h, size_w = draw_crop_flip(n, h, w, crop, hflip)
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


# ---- uint8 CPU path: torchvision's ColorJitter on PIL images, per image, in OpenCV -----------

MIN_PIXELS_PER_THREAD = 112 * 112   # below it threads cost more than they give (measured: 64 px 0.6x, 224 px 1.7x)
PIL_LUMA = (19595 / 65536, 38470 / 65536, 7471 / 65536)   # PIL's RGB -> L weights (16-bit fixed point)
_LEVELS = np.arange(256, dtype=np.float32)


def blend_lut(base: float, factor: float) -> np.ndarray:
    """PIL's ``Image.blend(constant base, img, factor)`` as a uint8 lookup table (bit-exact).

    PIL computes ``base + factor * (v - base)`` in float32 and truncates, clipping to [0, 255];
    brightness blends with black (base 0), contrast with the rounded mean luma.
    """
    t = _LEVELS - np.float32(base)
    t *= np.float32(factor)
    t += np.float32(base)
    np.maximum(t, 0.0, out=t)
    np.minimum(t, 255.0, out=t)
    return t.astype(np.uint8)            # truncates, as PIL's (UINT8) cast (ufuncs: np.clip's wrapper costs more)


def pil_mean_luma(img: np.ndarray) -> int:
    """The grey level ``ImageEnhance.Contrast`` blends with: the mean of the luma image, rounded.

    OpenCV's luma rounds the same ITU-R 601 weights at 14 bits where PIL's rounds at 16; the
    mean moves by far less than a level, so the rounded mean differs only next to a half.
    """
    return int(cv2.mean(cv2.cvtColor(img, cv2.COLOR_RGB2GRAY))[0] + 0.5)


def saturation_uint8(img: np.ndarray, factor: float) -> np.ndarray:
    """``ImageEnhance.Color``: blend with the luma image; OpenCV rounds where PIL truncates (-0.5)."""
    grey = cv2.cvtColor(cv2.cvtColor(img, cv2.COLOR_RGB2GRAY), cv2.COLOR_GRAY2RGB)
    return cv2.addWeighted(img, factor, grey, 1.0 - factor, -0.5)


def hue_uint8(img: np.ndarray, shift: float) -> np.ndarray:
    """torchvision's PIL ``adjust_hue``: H += int(shift * 255) / 255 of a turn, in OpenCV's 0-255 HSV."""
    hsv = cv2.cvtColor(img, cv2.COLOR_RGB2HSV_FULL)
    h = hsv[..., 0]
    np.add(h, np.uint8(round(int(shift * 255) * 256 / 255) % 256), out=h, casting="unsafe")   # wraps, as PIL's
    return cv2.cvtColor(hsv, cv2.COLOR_HSV2RGB_FULL)


def jitter_steps_uint8(img: np.ndarray, factors, order) -> tuple[np.ndarray, np.ndarray | None]:
    """:func:`jitter_uint8` less a trailing brightness/contrast table, returned instead (or None)."""
    lut = None
    for step in order:
        f = float(factors[step])
        if (step < 3 and f == 1.0) or (step == 3 and f == 0.0):
            continue
        if lut is not None and step != 0:   # contrast, saturation and hue need the pixels
            img, lut = cv2.LUT(img, lut), None
        if step == 0:
            lut = blend_lut(0.0, f) if lut is None else blend_lut(0.0, f)[lut]
        elif step == 1:
            lut = blend_lut(pil_mean_luma(img), f)
        elif step == 2:
            img = saturation_uint8(img, f)
        else:
            img = hue_uint8(img, f)
    return img, lut


def jitter_uint8(img: np.ndarray, factors, order) -> np.ndarray:
    """torchvision ``ColorJitter`` on one uint8 (H, W, 3) RGB image, as its PIL path computes it.

    ``factors``: brightness, contrast, saturation factors and the hue shift; ``order``: the
    steps (0-3) in the order to run them; a factor of 1 (shift 0) is skipped. Contrast
    followed by brightness is one composed lookup table (exact: tables compose).
    """
    img, lut = jitter_steps_uint8(img, factors, order)
    return img if lut is None else cv2.LUT(img, lut)


def normalize_affine(normalize: str) -> tuple[np.ndarray, np.ndarray]:
    """(scale, shift), float64 (3,) each, with ``normalised = level * scale + shift`` for uint8 levels."""
    if normalize not in NORMALIZE:
        raise ValueError(f"normalize {normalize!r} is not one of {sorted(NORMALIZE)}")
    mean, std = (np.asarray(v, dtype=np.float64) for v in NORMALIZE[normalize])
    return 1.0 / (255.0 * std), -mean / std


def augment_image_uint8(src: np.ndarray, box: tuple[int, int, int, int], flip: bool, factors, order,
                        affine, out: np.ndarray) -> None:
    """Crop ``box`` (top, left, height, width) of one (H, W, 3) uint8 image, flip, jitter, and
    write it into ``out`` (3, h, w) float32 normalised by ``affine`` (:func:`normalize_affine`).

    The last step is one pass per channel plane: a SIMD ``addWeighted`` (level * scale + shift
    in float32, within 1 ulp of the float path's ``(level / 255 - mean) / std``), or, when the
    jitter ends on brightness/contrast, that step's table folded into a uint8 -> float32 table.
    """
    top, left, h, w = box
    img = src[top:top + h, left:left + w]
    img = cv2.flip(img, 1) if flip else np.ascontiguousarray(img)
    tail = None
    if factors is not None:
        img, tail = jitter_steps_uint8(img, factors, order)
    scale, shift = affine
    for c, plane in enumerate(cv2.split(img)):
        if tail is None:
            cv2.addWeighted(plane, scale[c], plane, 0.0, shift[c], dst=out[c], dtype=cv2.CV_32F)
        else:
            cv2.LUT(plane, (tail * scale[c] + shift[c]).astype(np.float32), dst=out[c])


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


def jitter_draws(values, n: int) -> tuple[np.ndarray, np.ndarray]:
    """ColorJitter's per-image draws: factors (N, 4) as torchvision's ranges, step order (N, 4)."""
    lo = torch.tensor([max(0.0, 1.0 - v) for v in values[:3]] + [-values[3]], dtype=torch.float64)
    hi = torch.tensor([1.0 + v for v in values[:3]] + [values[3]], dtype=torch.float64)
    factors = lo + (hi - lo) * torch.rand(n, 4, dtype=torch.float64)
    return factors.numpy(), torch.rand(n, 4).argsort(dim=1).numpy()


def unshared(buf: torch.Tensor) -> bool:
    """True when only the caller's one local name holds ``buf`` (no other reference, no view).

    Counts are compared with a fresh tensor's, measured the same way, so the test does not
    hang on how this Python version counts references. Uses PyTorch's private storage use
    count; without it, nothing is ever reused.
    """
    use_count = getattr(torch._C, "_storage_Use_Count", None)
    if use_count is None:
        return False
    probe = torch.empty(1)
    return (sys.getrefcount(buf) == sys.getrefcount(probe) + 1     # + the caller's name
            and use_count(buf.untyped_storage()._cdata) == use_count(probe.untyped_storage()._cdata))


class TrainAugment:
    """uint8 (N, 3, S, S) + int labels -> (normalised float32 batch, labels), every image its own draws.

    Order (the reports' order): resize (uint8, antialiased; nothing to do when the prepared
    array is already at ``aug.resize``), then either a per-sample crop + flip or Kornia's
    RandomResizedCrop + flip, rotation, zoom, colour jitter, AutoAugment, normalisation, CutMix /
    MixUp. Labels stay int64 unless a mix is set; then they are float P(fake) soft targets.

    ``backend``: ``"auto"`` takes the uint8 OpenCV path (module docstring) for CPU batches whose
    recipe it covers (no RandomResizedCrop, rotation, zoom or AutoAugment), else the float path;
    ``"float"`` forces the float path. ``compile=True`` fuses the float path's conversion, each
    colour-jitter step and the normalisation with ``torch.compile``: the same draws, pixels equal
    to eager within 1e-5 but not bit for bit. The uint8 path splits the batch over ``threads``
    threads (default: ``torch.get_num_threads()``, read at each call) for outputs of at least
    112 x 112 px; the bytes do not depend on it.
    """

    def __init__(self, aug, normalize: str = "half", mix=None, compile: bool = False, backend: str = "auto",
                 threads: int | None = None):
        if normalize not in NORMALIZE:
            raise ValueError(f"normalize {normalize!r} is not one of {sorted(NORMALIZE)}")
        if backend not in ("auto", "float"):
            raise ValueError(f"backend {backend!r} is not one of auto, float")
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
        self.uint8_ok = backend == "auto" and self.kornia is None and self.autoaugment is None
        self.affine = normalize_affine(normalize)
        self.threads = threads
        self._pool: ThreadPoolExecutor | None = None
        self._outs: list[torch.Tensor] = []

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
            if self.uint8_ok and x.device.type == "cpu":
                out = self._uint8_path(x)
            else:
                out = self._float_path(x)
            if self.mix is not None:
                out, soft = self.mix(out, y)
                y = soft[:, 1].contiguous()
        return out, y

    def _float_path(self, x: torch.Tensor) -> torch.Tensor:
        if self.crop_flip is not None:
            x = random_crop_flip(x, *self.crop_flip)
        out = self.to_unit(x)
        if self.kornia is not None:
            out = self.kornia(out).clamp_(0.0, 1.0)
        if self.jitter is not None:
            out = self.jitter(out)
        if self.autoaugment is not None:
            out = self.autoaugment(out).clamp_(0.0, 1.0)
        return self.finish(out, self.normalize).contiguous()

    def _output_buffer(self, shape: tuple[int, ...]) -> torch.Tensor:
        """An earlier output the caller has let go of (no reference, no view), else a new tensor.

        A fresh 38 MB batch (64 x 3 x 224 x 224 float32) costs more in page faults than the
        whole colour jitter. Up to three are kept: ``for x, y in loader`` still holds the last
        batch while the next one is made.
        """
        kept, found = [], None
        while self._outs:
            buf = self._outs.pop()
            if found is None and tuple(buf.shape) == shape and unshared(buf):
                found = buf
            else:
                kept.append(buf)
            del buf
        found = torch.empty(shape, dtype=torch.float32) if found is None else found
        self._outs = kept[:2] + [found]
        return found

    def _uint8_path(self, x: torch.Tensor) -> torch.Tensor:
        """Crop, flip, jitter and normalise image by image in OpenCV, the batch split over threads."""
        n, _, h, w = x.shape
        if self.crop_flip is not None:   # draw nothing otherwise, as the float path does
            tops, lefts, flips, ch, cw = draw_crop_flip(n, h, w, *self.crop_flip)
        else:
            tops, lefts, flips, ch, cw = [0] * n, [0] * n, [False] * n, h, w
        factors, orders = jitter_draws(self.jitter.values, n) if self.jitter is not None else (None, None)
        src = x.permute(0, 2, 3, 1).contiguous().numpy()            # NHWC: a view for channels_last batches
        out = self._output_buffer((n, 3, ch, cw))
        dst = out.numpy()

        def work(idx: range) -> None:
            for i in idx:
                augment_image_uint8(src[i], (tops[i], lefts[i], ch, cw), flips[i],
                                    None if factors is None else factors[i], None if orders is None else orders[i],
                                    self.affine, dst[i])

        threads = max(1, min(self.threads or torch.get_num_threads(), n))
        if ch * cw < MIN_PIXELS_PER_THREAD:   # small images: the GIL-held Python part dominates
            threads = 1
        if threads == 1:
            work(range(n))
        else:
            if self._pool is None or self._pool._max_workers != threads:
                self._pool = ThreadPoolExecutor(threads, thread_name_prefix="augment")
            list(self._pool.map(work, [range(k, n, threads) for k in range(threads)]))
        return out


class EvalAugment:
    """Deterministic: resize, centre crop, normalise (the eval side of ``transforms.eval_transform``).

    The resize side is ``aug.eval_resize`` when set, else ``aug.resize`` (as training's).
    """

    def __init__(self, aug, normalize: str = "half"):
        if normalize not in NORMALIZE:
            raise ValueError(f"normalize {normalize!r} is not one of {sorted(NORMALIZE)}")
        self.resize, self.crop, self.normalize = eval_resize(aug), aug.crop, normalize

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        if x.dtype != torch.uint8 or x.ndim != 4:
            raise ValueError(f"EvalAugment takes a uint8 (N, C, H, W) batch, got {x.dtype} {tuple(x.shape)}")
        out = center_crop_batch(resize_uint8(x, self.resize), self.crop).float().div_(255.0)
        return normalize_float(out, self.normalize).contiguous()
