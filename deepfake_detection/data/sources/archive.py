"""Safe, atomic extraction of zip and tar archives.

Every member is checked before anything reaches the target folder: entries that would escape it
(``../``, absolute or drive paths), links (symbolic or hard), device files, encrypted zip entries,
a total size over the limit and compression-ratio bombs are refused with :class:`DownloadError`.
Members are extracted into a temporary folder inside the destination and renamed into place only
when the whole archive came out, so a refused or corrupt archive leaves nothing behind. (The
marker that lets a re-run skip a finished extraction is written afterwards by ``common.install``;
a run killed during the final renames has no marker and simply extracts again.)
"""

from __future__ import annotations

import os
import re
import shutil
import stat
import sys
import tarfile
import zipfile
import zlib
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Iterable

from .http import DownloadError

ARCHIVE_SUFFIXES = (".zip", ".tar", ".tar.gz", ".tgz", ".tar.bz2", ".tbz2", ".tar.xz", ".txz")
JUNK_DIRS = {"__MACOSX"}
JUNK_FILES = {".DS_Store", "Thumbs.db"}
RATIO_MIN_BYTES = 1 << 20     # members smaller than this are never ratio bombs worth refusing
COPY_CHUNK = 1 << 20


@dataclass(frozen=True)
class Limits:
    """What an archive may expand to."""

    max_bytes: int = 200 * 1024 ** 3    # total uncompressed bytes of one archive
    max_ratio: float = 100.0            # uncompressed / compressed, per large member and overall


def is_archive_name(name: str) -> bool:
    return name.lower().endswith(ARCHIVE_SUFFIXES)


def archive_stem(name: str) -> str:
    """``Train_part_1.zip`` -> ``Train_part_1``; ``x.tar.gz`` -> ``x``."""
    lower = name.lower()
    for suffix in sorted(ARCHIVE_SUFFIXES, key=len, reverse=True):
        if lower.endswith(suffix):
            return name[: -len(suffix)]
    return Path(name).stem


def member_parts(name: str, archive: str) -> list[str] | None:
    """Validated path components of an archive member (None for junk); raise if it escapes."""
    norm = name.replace("\\", "/")
    if "\x00" in norm:
        raise DownloadError(f"{archive}: refusing entry {name!r}: NUL byte in its name")
    if norm.startswith("/") or re.match(r"^[A-Za-z]:", norm):
        raise DownloadError(f"{archive}: refusing entry {name!r}: absolute path")
    parts = [p for p in norm.split("/") if p not in ("", ".")]
    if ".." in parts:
        raise DownloadError(f"{archive}: refusing entry {name!r}: it escapes the target folder")
    if not parts or parts[0] in JUNK_DIRS or parts[-1] in JUNK_FILES:
        return None
    return parts


def placement(members: Iterable[tuple[list[str], bool]], want: str) -> str:
    """Sub-folder of the destination to extract into so that files end up under ``want``.

    ``members`` are (path components, is_dir). If every member already starts with ``want``
    (say ``Images/Train/``) it is extracted at the root; if they start with a tail of it
    (``Train/``) into the missing head (``Images``); otherwise into ``want`` itself.
    """
    want_parts = [p for p in want.split("/") if p]
    members = list(members)
    for k in range(len(want_parts)):
        tail = want_parts[k:]

        def fits(parts: list[str], is_dir: bool) -> bool:
            return parts[: len(tail)] == tail or (is_dir and tail[: len(parts)] == parts)

        if members and all(fits(p, d) for p, d in members):
            return "/".join(want_parts[:k])
    return "/".join(want_parts)


def list_members(path: Path) -> list[tuple[list[str], bool]]:
    """Validated (components, is_dir) of every non-junk member; raises on unsafe names."""
    kind = archive_kind(path)
    out = []
    if kind == "zip":
        with zipfile.ZipFile(path) as zf:
            for info in zf.infolist():
                parts = member_parts(info.filename, path.name)
                if parts is not None:
                    out.append((parts, info.is_dir()))
    else:
        with tarfile.open(path, "r:*") as tf:
            for m in tf:
                parts = member_parts(m.name, path.name)
                if parts is not None:
                    out.append((parts, m.isdir()))
    return out


def archive_kind(path: Path) -> str:
    if zipfile.is_zipfile(path):
        return "zip"
    try:
        if tarfile.is_tarfile(path):
            return "tar"
    except (OSError, tarfile.TarError):
        pass
    raise DownloadError(f"{path.name}: not a zip or tar archive (is the download complete?)")


def _check_zip(zf: zipfile.ZipFile, name: str, archive_bytes: int, limits: Limits) -> int:
    total = 0
    for info in zf.infolist():
        if member_parts(info.filename, name) is None:
            continue
        mode = info.external_attr >> 16
        if stat.S_ISLNK(mode):
            raise DownloadError(f"{name}: refusing entry {info.filename!r}: symbolic link")
        if mode and stat.S_IFMT(mode) not in (0, stat.S_IFREG, stat.S_IFDIR):
            raise DownloadError(f"{name}: refusing entry {info.filename!r}: not a regular file")
        if info.flag_bits & 0x1:
            raise DownloadError(f"{name}: refusing entry {info.filename!r}: encrypted")
        if info.file_size > RATIO_MIN_BYTES and info.file_size > limits.max_ratio * max(info.compress_size, 1):
            raise DownloadError(f"{name}: refusing entry {info.filename!r}: compression ratio "
                                f"{info.file_size / max(info.compress_size, 1):.0f} exceeds max_ratio "
                                f"{limits.max_ratio:g} (a zip bomb?)")
        total += info.file_size
    _check_total(name, total, archive_bytes, limits)
    return total


def _check_total(name: str, total: int, archive_bytes: int, limits: Limits) -> None:
    if total > limits.max_bytes:
        raise DownloadError(f"{name}: expands to {total} bytes, over the limit of {limits.max_bytes} "
                            "(raise max_extract_gb in the source options if this is expected)")
    if total > RATIO_MIN_BYTES and total > limits.max_ratio * max(archive_bytes, 1):
        raise DownloadError(f"{name}: expands {total / max(archive_bytes, 1):.0f}x, over max_ratio "
                            f"{limits.max_ratio:g} (an archive bomb?)")


def _copy(src, dst_path: Path, name: str, member: str, budget: int) -> int:
    """Stream one member to disk; never write more than ``budget`` bytes."""
    written = 0
    with open(dst_path, "wb") as dst:
        while chunk := src.read(COPY_CHUNK):
            written += len(chunk)
            if written > budget:
                raise DownloadError(f"{name}: entry {member!r} is larger than its header says; refusing")
            dst.write(chunk)
    return written


def _extract_zip(path: Path, tmp: Path, limits: Limits, tick: Callable[[int], None]) -> tuple[int, int]:
    with zipfile.ZipFile(path) as zf:
        _check_zip(zf, path.name, path.stat().st_size, limits)
        files = nbytes = 0
        for info in zf.infolist():
            parts = member_parts(info.filename, path.name)
            if parts is None:
                continue
            target = tmp.joinpath(*parts)
            if info.is_dir():
                target.mkdir(parents=True, exist_ok=True)
                continue
            target.parent.mkdir(parents=True, exist_ok=True)
            with zf.open(info) as src:
                nbytes += _copy(src, target, path.name, info.filename, info.file_size)
            files += 1
            tick(1)
    return files, nbytes


def _extract_tar(path: Path, tmp: Path, limits: Limits, tick: Callable[[int], None]) -> tuple[int, int]:
    # One streaming pass (no getmembers(): that would decompress a .tar.gz twice). A refused
    # member aborts the whole extraction; the temporary folder is then removed.
    archive_bytes = path.stat().st_size
    files = nbytes = 0
    with tarfile.open(path, "r:*") as tf:
        for m in tf:
            parts = member_parts(m.name, path.name)
            if parts is None:
                continue
            if m.issym() or m.islnk():
                kind = "symbolic link" if m.issym() else "hard link"
                raise DownloadError(f"{path.name}: refusing entry {m.name!r}: {kind}")
            target = tmp.joinpath(*parts)
            if m.isdir():
                target.mkdir(parents=True, exist_ok=True)
                continue
            if not m.isfile():
                raise DownloadError(f"{path.name}: refusing entry {m.name!r}: not a regular file")
            _check_total(path.name, nbytes + m.size, archive_bytes, limits)
            target.parent.mkdir(parents=True, exist_ok=True)
            src = tf.extractfile(m)
            nbytes += _copy(src, target, path.name, m.name, m.size)
            files += 1
            tick(1)
    return files, nbytes


def _merge(src: Path, dst: Path) -> None:
    """Move the tree ``src`` into ``dst`` (renames; folders already there are merged)."""
    dst.mkdir(parents=True, exist_ok=True)
    for child in sorted(src.iterdir()):
        target = dst / child.name
        if child.is_dir() and target.is_dir():
            _merge(child, target)
            continue
        if target.is_dir() and not target.is_symlink():
            shutil.rmtree(target)
        elif target.exists() or target.is_symlink():
            target.unlink()
        os.replace(child, target)


def extract(path: Path, dest: Path, *, subdir: str = "", limits: Limits = Limits(),
            log: Callable[[str], None] = print) -> dict:
    """Safely extract ``path`` into ``dest/subdir``; return ``{"files", "bytes", "into"}``.

    Members are written to ``dest/.extract-<archive>.tmp`` first and moved into place only when
    the whole archive has been extracted and checked.
    """
    from tqdm import tqdm

    dest.mkdir(parents=True, exist_ok=True)
    kind = archive_kind(path)
    if kind == "zip":
        with zipfile.ZipFile(path) as zf:
            need = _check_zip(zf, path.name, path.stat().st_size, limits)
        free = shutil.disk_usage(dest).free
        if need > free:
            raise DownloadError(f"{path.name}: needs {need / 1e9:.1f} GB to extract but only "
                                f"{free / 1e9:.1f} GB are free under {dest}")
    tmp = dest / f".extract-{path.name}.tmp"
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir()
    try:
        with tqdm(unit="file", desc=f"extract {path.name}", file=sys.stderr, disable=None,
                  leave=False, mininterval=1.0) as bar:
            extractor = _extract_zip if kind == "zip" else _extract_tar
            try:
                files, nbytes = extractor(path, tmp, limits, bar.update)
            except (zipfile.BadZipFile, tarfile.TarError, EOFError, zlib.error) as exc:
                raise DownloadError(f"{path.name}: corrupt archive ({exc})") from None
        _merge(tmp, dest / subdir if subdir else dest)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    log(f"{path.name}: extracted {files} files ({nbytes} bytes) into {subdir or '.'}")
    return {"files": files, "bytes": nbytes, "into": subdir or "."}

