"""What every fetcher shares: common options, per-file markers, download-then-extract.

Each remote file leaves a marker ``<dest>/.sources/<file>.json`` (size, checksums, how it was
verified, what was extracted where). A re-run skips a file whose marker records the checksum the
server publishes now, so an interrupted multi-file download only fetches what is missing. The
summary that :func:`fetch_source` returns is built from these markers: it is the same whether a
file was downloaded in this run or an earlier one.
"""

from __future__ import annotations

import json
import os
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

from ...io import write_json
from ...params import check
from .archive import Limits, extract, is_archive_name, list_members, placement
from .http import DownloadError

MARKER_DIR = ".sources"
STRONG = ("md5", "sha256", "git-sha1")


@dataclass(kw_only=True)
class CommonOptions:
    """Options every download kind accepts (all optional)."""

    keep_archives: bool = False     # keep downloaded archives after extraction (default: delete)
    timeout: float = 60.0           # seconds without a byte before a connection counts as dropped
    retries: int = 5                # attempts in a row without progress before giving up
    max_extract_gb: float = 200.0   # refuse an archive that expands to more than this
    max_ratio: float = 100.0        # refuse members/archives that expand more than this (bombs)

    def validate(self, where: str) -> None:
        check(self.timeout > 0, f"{where}.timeout", f"must be > 0, got {self.timeout}")
        check(self.retries >= 0, f"{where}.retries", f"must be >= 0, got {self.retries}")
        check(self.max_extract_gb > 0, f"{where}.max_extract_gb", f"must be > 0, got {self.max_extract_gb}")
        check(self.max_ratio >= 1, f"{where}.max_ratio", f"must be >= 1, got {self.max_ratio}")

    @property
    def limits(self) -> Limits:
        return Limits(max_bytes=int(self.max_extract_gb * 1024 ** 3), max_ratio=self.max_ratio)


def marker_path(dest: Path, name: str) -> Path:
    return dest / MARKER_DIR / f"{name}.json"


def read_marker(dest: Path, name: str) -> dict | None:
    try:
        return json.loads(marker_path(dest, name).read_text())
    except (FileNotFoundError, ValueError):
        return None


def install(name: str, *, dest: Path, archive_dir: Path, fetch: Callable[[Path], dict],
            published: str | None, want: str | None, options: CommonOptions,
            log: Callable[[str], None]) -> dict:
    """Fetch remote file ``name`` (unless its marker says it is in place) and install it.

    ``fetch(path)`` downloads and verifies the file at ``path`` and returns
    ``{"bytes", "md5", "sha256", "verified"}``. ``published`` is the checksum the server
    publishes (None when it publishes none). Archives (by name) are extracted so their files end
    up under ``want`` (see :func:`archive.placement`); other files are moved to ``dest/name``.
    """
    marker = read_marker(dest, name)
    if marker and (published is None or marker.get("published") == published) and (
            marker.get("extracted") or (dest / name).is_file()):
        log(f"{name}: already in place ({MARKER_DIR}/{name}.json); skipping")
        return marker
    target = archive_dir / name
    info = fetch(target)
    entry = {"name": name, "bytes": info["bytes"], "md5": info["md5"], "sha256": info.get("sha256"),
             "verified": info["verified"], "published": published, "extracted": None}
    if want is not None and is_archive_name(name):
        try:
            subdir = placement(list_members(target), want)
            entry["extracted"] = extract(target, dest, subdir=subdir, limits=options.limits, log=log)
        except DownloadError as exc:
            # A refused or corrupt archive must not be reused by the next run: fetch it afresh.
            target.unlink(missing_ok=True)
            raise DownloadError(f"{exc} (deleted the archive; a re-run downloads it again)") from None
        if not options.keep_archives:
            target.unlink()
    else:
        final = dest / name
        final.parent.mkdir(parents=True, exist_ok=True)
        if options.keep_archives:
            shutil.copy2(target, final)
        else:
            shutil.move(target, final)
    write_json(marker_path(dest, name), entry)
    return entry


def summary(source: str, kind: str, entries: list[dict], **extra) -> dict:
    """The JSON-able record of one fetch (no timestamps, no absolute paths)."""
    entries = sorted(entries, key=lambda e: e["name"])
    return {"source": source, "kind": kind, **extra, "n_files": len(entries),
            "bytes": sum(int(e["bytes"]) for e in entries),
            "all_verified": all(e["verified"] in STRONG for e in entries), "files": entries}


def env_flag(name: str) -> bool:
    return os.environ.get(name, "").strip().lower() in {"1", "true", "yes", "on"}
