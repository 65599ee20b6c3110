"""Float64 image operations whose results do not depend on the CPU they run on.

The demo generator must write the same bytes on every x86-64 machine. OpenCV's float paths,
torch's CPU kernels, BLAS and numpy's transcendental ufuncs (``exp``, ``power``, ``cbrt``, ``tanh``)
all pick an implementation at run time by instruction set (SSE/AVX2/AVX-512, FMA or not), and
their float results differ in the last bits, which then flips uint8 pixels. Everything here
uses only IEEE-exact elementwise arithmetic (``+ - * /``, ``sqrt``, ``rint``, ``floor``) in a fixed
order, ``scipy.ndimage.correlate1d`` (no run-time dispatch), and BLAS only on operands quantised so
that every partial sum is exact (then any summation order or FMA gives the same bits).

The one exception is the Lanczos taps' ``sin`` (libm; glibc picks an FMA variant by CPU): a
last-bit change there moves a smooth weight by 1e-16, which can flip a byte of the single final
uint8 quantisation only with probability about 1e-12 per pixel.

A library does not cover this: Pillow and OpenCV's bit-exact paths are 8-bit only, and
scikit-image's colour conversions go through ``@`` and ``np.power``.
"""

from __future__ import annotations

import numpy as np
from scipy import ndimage

KERNEL_SUPPORT = {"box": 0.5, "triangle": 1.0, "cubic": 2.0, "lanczos": 3.0}
_EXP_HALVINGS = 12


# --------------------------------------------------------------------------- elementary functions


def exp(x) -> np.ndarray:
    """``e**x`` by scaling and squaring a Taylor series: only multiplies and adds.

    Relative error about 1e-12 for |x| <= 100 (each squaring doubles the error of the last),
    far below one grey level; what matters is that it is the same on every CPU.
    """
    r = np.asarray(x, dtype=np.float64) / 2.0 ** _EXP_HALVINGS      # exact power-of-two scaling
    s = np.ones_like(r)
    for k in range(10, 0, -1):                                      # Horner: 1 + r(1 + r/2(...))
        s = 1.0 + r / k * s
    for _ in range(_EXP_HALVINGS):
        s = s * s
    return s


def tanh(x) -> np.ndarray:
    """``tanh`` through :func:`exp` of a non-positive argument (no overflow)."""
    x = np.clip(np.asarray(x, dtype=np.float64), -40.0, 40.0)
    e = exp(-2.0 * np.abs(x))
    return np.sign(x) * (1.0 - e) / (1.0 + e)


def _ipow(y: np.ndarray, n: int) -> np.ndarray:
    out = y
    for _ in range(n - 1):
        out = out * y
    return out


def root(x, n: int, max_iter: int = 60) -> np.ndarray:
    """``x ** (1/n)`` for ``x >= 0`` by Newton's method from above, to about 1e-14.

    The start is the power of two ``2**ceil(e/n)`` above the root (``x < 2**e``, exact via
    ``frexp``/``ldexp``). The loop stops on a test of exactly computed values, so the result is
    the same wherever it runs.
    """
    x = np.maximum(np.asarray(x, dtype=np.float64), 1e-300)
    _, e = np.frexp(x)
    y = np.ldexp(1.0, -((-e) // n))                      # 2**ceil(e/n)
    for _ in range(max_iter):
        y_n1 = _ipow(y, n - 1)
        step = (y_n1 * y - x) / (n * y_n1)
        y = y - step
        if np.all(np.abs(step) <= 1e-14 * y):
            break
    return y


# --------------------------------------------------------------------------- resampling


def _kernel(name: str, x: np.ndarray) -> np.ndarray:
    ax = np.abs(x)
    if name == "triangle":
        return np.maximum(0.0, 1.0 - ax)
    if name == "cubic":                      # Keys, a = -0.5 (Pillow's bicubic)
        a = -0.5
        near = ((a + 2.0) * ax - (a + 3.0)) * ax * ax + 1.0
        far = ((a * ax - 5.0 * a) * ax + 8.0 * a) * ax - 4.0 * a
        return np.where(ax < 1.0, near, np.where(ax < 2.0, far, 0.0))
    if name == "lanczos":                    # a = 3; sinc's sin is libm's: see the module note
        return np.where(ax < 3.0, np.sinc(x) * np.sinc(x / 3.0), 0.0)
    raise AssertionError(name)                # resize() checked the name


def _resample_axis0(img: np.ndarray, n_out: int, kernel: str) -> np.ndarray:
    """Resample along axis 0 (Pillow's scheme: the kernel widens when shrinking = antialiasing)."""
    n_in = img.shape[0]
    scale = n_in / n_out
    if kernel == "box":                      # area: overlap of output and input pixel spans
        lo = np.arange(n_out) * scale
        taps = int(np.ceil(scale)) + 1
        idx = np.floor(lo).astype(np.int64)[:, None] + np.arange(taps)[None, :]
        w = np.clip(np.minimum(lo[:, None] + scale, idx + 1.0) - np.maximum(lo[:, None], idx), 0.0, None)
    else:
        widen = max(scale, 1.0)
        support = KERNEL_SUPPORT[kernel] * widen
        centre = (np.arange(n_out) + 0.5) * scale
        taps = int(np.ceil(2 * support)) + 1
        idx = np.floor(centre - support).astype(np.int64)[:, None] + np.arange(taps)[None, :]
        w = _kernel(kernel, (idx + 0.5 - centre[:, None]) / widen)
    w = w / w.sum(axis=1, keepdims=True)
    idx = np.clip(idx, 0, n_in - 1)                      # edges replicate
    shape = (n_out,) + (1,) * (img.ndim - 1)
    out = np.zeros((n_out,) + img.shape[1:])
    for k in range(taps):                                # fixed order: exact on every CPU
        out = out + w[:, k].reshape(shape) * img[idx[:, k]]
    return out


def resize(img: np.ndarray, height: int, width: int, kernel: str) -> np.ndarray:
    """Separable float64 resize of an (H, W[, C]) array; antialiased when shrinking.

    ``box`` weights input pixels by their overlap with each output pixel (OpenCV's INTER_AREA:
    an average when shrinking, blocks with one-pixel blends when enlarging); ``triangle`` is
    bilinear, ``cubic`` bicubic, ``lanczos`` Lanczos-3.
    """
    if kernel not in KERNEL_SUPPORT:
        raise ValueError(f"unknown resampling kernel {kernel!r}; use one of {sorted(KERNEL_SUPPORT)}")
    img = np.asarray(img, dtype=np.float64)
    if img.shape[0] != height:
        img = _resample_axis0(img, height, kernel)
    if img.shape[1] != width:
        img = _resample_axis0(img.swapaxes(0, 1), width, kernel).swapaxes(0, 1)
    return np.ascontiguousarray(img)


def gaussian_blur(img: np.ndarray, sigma: float) -> np.ndarray:
    """Gaussian blur over the first two axes, radius 4 sigma, mirrored edges (OpenCV's default)."""
    radius = max(1, int(4.0 * sigma + 0.5))
    x = np.arange(-radius, radius + 1, dtype=np.float64)
    w = exp(-0.5 * (x / sigma) * (x / sigma))
    w = w / w.sum()
    out = np.asarray(img, dtype=np.float64)
    for axis in (0, 1):
        out = ndimage.correlate1d(out, w, axis=axis, mode="mirror")
    return out


# --------------------------------------------------------------------------- masks


def soft_ellipse(height: int, width: int, centre: tuple[float, float], axes: tuple[float, float]) -> np.ndarray:
    """An antialiased filled ellipse (1 inside, 0 outside, about one pixel of ramp) in float64.

    The ramp is the first-order signed distance to the boundary; pixel centres sit on integers.
    """
    ax, ay = float(axes[0]), float(axes[1])
    yy, xx = np.mgrid[0:height, 0:width].astype(np.float64)
    dx, dy = (xx - centre[0]) / ax, (yy - centre[1]) / ay
    q = dx * dx + dy * dy
    gx, gy = dx / ax, dy / ay
    grad = 2.0 * np.sqrt(gx * gx + gy * gy)
    dist = (1.0 - q) / np.maximum(grad, 1e-9)
    return np.clip(dist + 0.5, 0.0, 1.0)


# --------------------------------------------------------------------------- colour


# sRGB D65 primaries, the same constants as OpenCV's RGB<->Lab
_RGB2XYZ = ((0.412453, 0.357580, 0.180423),
            (0.212671, 0.715160, 0.072169),
            (0.019334, 0.119193, 0.950227))
_XYZ2RGB = ((3.240479, -1.53715, -0.498535),
            (-0.969256, 1.875991, 0.041556),
            (0.055648, -0.204043, 1.057311))
_WHITE = (0.950456, 1.0, 1.088754)
_D = 6.0 / 29.0


def _mix(m, c: np.ndarray) -> np.ndarray:
    """3x3 matrix times every pixel, written out (no BLAS)."""
    return np.stack([row[0] * c[..., 0] + row[1] * c[..., 1] + row[2] * c[..., 2] for row in m], -1)


def _srgb_to_linear(c: np.ndarray) -> np.ndarray:
    t = np.maximum(c + 0.055, 0.0) / 1.055
    r5 = root(t, 5)
    return np.where(c <= 0.04045, c / 12.92, t * t * r5 * r5)           # t**2.4


def _linear_to_srgb(v: np.ndarray) -> np.ndarray:
    s = np.sqrt(np.maximum(v, 0.0))                                   # sqrt is exact in IEEE
    r = np.sqrt(s) * root(s, 3)                                       # v**(1/4 + 1/6) = v**(5/12)
    return np.where(v <= 0.0031308, 12.92 * v, 1.055 * r - 0.055)


def rgb_to_lab(rgb: np.ndarray) -> np.ndarray:
    """sRGB in [0, 1] (..., 3) to CIE L*a*b* (L in [0, 100])."""
    xyz = _mix(_RGB2XYZ, _srgb_to_linear(np.asarray(rgb, dtype=np.float64)))
    t = xyz / np.asarray(_WHITE)
    f = np.where(t > _D ** 3, root(t, 3), t / (3 * _D * _D) + 4.0 / 29.0)
    return np.stack([116.0 * f[..., 1] - 16.0, 500.0 * (f[..., 0] - f[..., 1]),
                     200.0 * (f[..., 1] - f[..., 2])], -1)


def lab_to_rgb(lab: np.ndarray) -> np.ndarray:
    """Inverse of :func:`rgb_to_lab` (out-of-gamut values are not clipped)."""
    fy = (lab[..., 0] + 16.0) / 116.0
    f = np.stack([fy + lab[..., 1] / 500.0, fy, fy - lab[..., 2] / 200.0], -1)
    t = np.where(f > _D, f * f * f, 3 * _D * _D * (f - 4.0 / 29.0))
    return _linear_to_srgb(_mix(_XYZ2RGB, t * np.asarray(_WHITE)))


# --------------------------------------------------------------------------- exact matrix products


def quantise(x: np.ndarray, bits: int) -> np.ndarray:
    """Round to the grid 2**-bits (exact: power-of-two scaling and rint)."""
    return np.rint(np.asarray(x, dtype=np.float64) * 2.0 ** bits) / 2.0 ** bits


def exact_matmul(a: np.ndarray, b: np.ndarray, a_bits: int, b_bits: int, headroom: float = 1.0,
                 b_abs_colsum: float | None = None) -> np.ndarray:
    """``a @ b`` for operands already on the grids 2**-a_bits and 2**-b_bits, exactly.

    Every product is a multiple of 2**-(a_bits + b_bits); if every partial sum (times
    ``headroom``, for later additions of the result) stays below 2**53 of those units, each is
    exact in float64, so BLAS's blocking, summation order and FMA use cannot change a bit.
    ``b_abs_colsum`` (the largest column sum of ``|b|``) may be passed when ``b`` is reused.
    Any BLAS will do, at any thread count; torch's is used because it is the faster one here.
    """
    if b_abs_colsum is None:
        b_abs_colsum = float(np.abs(b).sum(axis=0).max(initial=0.0))
    bound = float(np.abs(a).max(initial=0.0)) * b_abs_colsum * headroom
    if bound * 2.0 ** (a_bits + b_bits) >= 2.0 ** 53:
        raise ValueError(f"exact_matmul: partial sums up to {bound:.3g} do not fit "
                         f"53 bits at grids 2^-{a_bits} x 2^-{b_bits}; use coarser grids")
    import torch                              # MKL's dgemm: about twice numpy's OpenBLAS here

    return (torch.from_numpy(np.ascontiguousarray(a)) @ torch.from_numpy(np.ascontiguousarray(b))).numpy()
