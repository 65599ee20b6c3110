"""Atomic file output and safe image reading shared by every stage.

Every output is written to a temporary sibling and renamed into place, so an interrupted stage
never leaves a half-written file (or folder) that looks complete.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import tempfile
from pathlib import Path
from typing import Iterator

import numpy as np


@contextlib.contextmanager
def atomic_path(path: str | Path, is_dir: bool = False) -> Iterator[Path]:
    """Yield a temporary path next to ``path``; on success rename it over ``path``.

    On an exception the temporary is removed and ``path`` is left as it was.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    if is_dir:
        tmp = Path(tempfile.mkdtemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent))
        os.chmod(tmp, 0o755)   # mkdtemp makes 0700; outputs should read like any other folder
    else:
        fd, name = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
        os.close(fd)
        tmp = Path(name)
    try:
        yield tmp
        if is_dir:
            if path.exists():
                old = path.with_name(f".{path.name}.old")
                shutil.rmtree(old, ignore_errors=True)
                path.rename(old)
                tmp.rename(path)
                shutil.rmtree(old, ignore_errors=True)
            else:
                tmp.rename(path)
        else:
            os.chmod(tmp, 0o644)
            os.replace(tmp, path)
    except BaseException:
        if tmp.is_dir():
            shutil.rmtree(tmp, ignore_errors=True)
        else:
            tmp.unlink(missing_ok=True)
        raise


def write_text(path: str | Path, text: str) -> None:
    with atomic_path(path) as tmp:
        tmp.write_text(text)


def write_json(path: str | Path, obj) -> None:
    """Stable JSON (sorted keys, 2-space indent, trailing newline) written atomically."""
    write_text(path, json.dumps(obj, indent=2, sort_keys=True, default=_json_default) + "\n")


def _json_default(obj):
    if isinstance(obj, np.generic):
        return obj.item()
    if isinstance(obj, Path):
        return obj.as_posix()
    raise TypeError(f"not JSON serialisable: {type(obj).__name__}")


def write_bytes(path: str | Path, data: bytes) -> None:
    with atomic_path(path) as tmp:
        tmp.write_bytes(data)


def save_torch(path: str | Path, obj) -> None:
    """``torch.save`` atomically and byte-reproducibly.

    torch.save names the zip's inner folder after the file it writes to; saving through a
    buffer keeps that name fixed, so identical weights give identical bytes (and DVC hashes).
    """
    import io as _io

    import torch

    buf = _io.BytesIO()
    torch.save(obj, buf)
    write_bytes(path, buf.getvalue())


def write_csv(path: str | Path, frame) -> None:
    """Write a pandas DataFrame as CSV (no index) atomically."""
    with atomic_path(path) as tmp:
        frame.to_csv(tmp, index=False, lineterminator="\n")


def read_image_rgb(path: str | Path) -> np.ndarray:
    """Decode an image file to an RGB uint8 array (H, W, 3).

    Raises FileNotFoundError for a missing file and ValueError('unreadable: ...') when the
    bytes do not decode, so callers can list the file in a rejects table with its reason.
    """
    import cv2

    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(str(path))
    data = np.fromfile(path, dtype=np.uint8)
    img = cv2.imdecode(data, cv2.IMREAD_COLOR) if data.size else None
    if img is None:
        raise ValueError(f"unreadable: {path} does not decode as an image")
    return cv2.cvtColor(img, cv2.COLOR_BGR2RGB)


def resize_square(rgb: np.ndarray, size: int) -> np.ndarray:
    """Resize uint8 RGB to ``size`` x ``size``: area filter when shrinking, bicubic when enlarging.

    Pillow's resampling is fixed-point integer arithmetic with no run-time CPU dispatch, so the
    bytes are the same on every machine (OpenCV's resize picks SIMD paths by CPU). Shrinking
    averages every covered pixel (antialiased); ``reducing_gap=None`` keeps it one exact pass.
    """
    from PIL import Image

    if rgb.shape[0] == size and rgb.shape[1] == size:
        return rgb
    if rgb.dtype != np.uint8 or rgb.ndim != 3 or rgb.shape[2] != 3:
        raise ValueError(f"resize_square: expected uint8 (H, W, 3), got {rgb.dtype} {rgb.shape}")
    shrink = min(rgb.shape[:2]) >= size
    method = Image.Resampling.BOX if shrink else Image.Resampling.BICUBIC
    img = Image.fromarray(np.ascontiguousarray(rgb), mode="RGB")
    return np.asarray(img.resize((size, size), method, reducing_gap=None))


def write_image_rgb(path: str | Path, rgb: np.ndarray, jpeg_quality: int = 95) -> None:
    """Encode an RGB uint8 array to ``path`` (format from the suffix) atomically."""
    import cv2

    path = Path(path)
    ext = path.suffix.lower() or ".png"
    params = [cv2.IMWRITE_JPEG_QUALITY, int(jpeg_quality)] if ext in (".jpg", ".jpeg") else []
    ok, buf = cv2.imencode(ext, cv2.cvtColor(np.ascontiguousarray(rgb), cv2.COLOR_RGB2BGR), params)
    if not ok:
        raise ValueError(f"could not encode {path}")
    with atomic_path(path) as tmp:
        buf.tofile(tmp)


class UnsafeFileError(ValueError):
    """A torch file holding more than tensors and plain data: refused, never unpickled."""


def load_torch(path: str | Path, what: str = "file"):
    """``torch.load(path, weights_only=True)`` on the CPU; a crafted pickle is refused.

    Models and checkpoints hold only tensors and plain dicts, lists, strings and numbers, so the
    restricted unpickler reads them all; anything else (a class, a function such as
    ``os.system``) raises :class:`UnsafeFileError`, one line naming the file and the object.
    """
    import pickle
    import re

    import torch

    path = Path(path)
    try:
        return torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as exc:
        found = re.search(r"GLOBAL (\S+)", str(exc))
        detail = f"it references {found.group(1)}" if found else "it holds objects other than plain data"
        raise UnsafeFileError(
            f"{path}: refused to load this {what}: {detail}, and only tensors and plain data are "
            f"accepted (weights_only); re-create it with this pipeline, never load an untrusted pickle"
        ) from None
