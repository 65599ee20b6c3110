"""Zenodo records through the REST API (OpenForensics is record 5528418).

``GET {endpoint}/api/records/{record}`` lists ``files[]`` with ``key``, ``size``, ``checksum``
(``md5:<hex>``) and ``links.self`` (the download URL); the InvenioRDM shape (``files.entries``
with ``links.content``) and the legacy one (``filename``, ``filesize``, ``links.download``) are
read too. Every file is verified against its size
and md5. Image archives named after a split (``Train.zip``, ``Test-Dev_part_2.zip``) are extracted
so their images land in ``Images/<Split>/`` whatever their own top folder is, next to the COCO
files ``<Split>_poly.json`` whose ``images[].file_name`` read ``Images/<Split>/<name>.jpg``.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path
from typing import Callable
from urllib.parse import urljoin

from ...params import check
from ..manifest import normalise_split
from .archive import archive_stem, is_archive_name
from .common import CommonOptions, install, summary
from .http import DownloadError, download, get_json

DEFAULT_ENDPOINT = "https://zenodo.org"
OPENFORENSICS_RECORD = 5528418


@dataclass(kw_only=True)
class ZenodoOptions(CommonOptions):
    record: int = OPENFORENSICS_RECORD
    endpoint: str = DEFAULT_ENDPOINT
    files: list[str] | None = None      # file keys to fetch; None: every file of the record

    def validate(self, where: str) -> None:
        super().validate(where)
        check(self.record >= 1, f"{where}.record", f"must be a record number, got {self.record}")
        check(self.endpoint.startswith(("http://", "https://")), f"{where}.endpoint",
              f"must be an http(s) URL, got {self.endpoint!r}")
        check(self.files is None or len(self.files) > 0, f"{where}.files",
              "list at least one file, or leave it out for all")


def record_files(record: dict, base_url: str) -> list[dict]:
    """``[{key, size, md5, url}]`` from a record in either API shape."""
    files = record.get("files")
    if isinstance(files, dict):
        files = list((files.get("entries") or {}).values())
    out = []
    for f in files or []:
        links = f.get("links") or {}
        # RDM entries: links.self is metadata, links.content the bytes; legacy: links.self/download.
        url = links.get("content") or links.get("download") or links.get("self")
        key = f.get("key") or f.get("filename")
        size = f.get("size", f.get("filesize"))
        checksum = str(f.get("checksum") or "")
        algo, _, digest = checksum.partition(":") if ":" in checksum else ("md5", "", checksum)
        if not key or not url:
            raise DownloadError(f"zenodo: record file entry without key or link: {sorted(f)}")
        out.append({"key": key, "size": int(size) if size is not None else None,
                    "url": urljoin(base_url, url), "md5": digest.lower() if algo == "md5" and digest else None})
    return out


def images_folder(key: str) -> str | None:
    """Where an archive's images belong: ``Train_part_1.zip`` -> ``Images/Train``."""
    if not is_archive_name(key):
        return None
    base = re.sub(r"[_.-]?part[_-]?\d+$", "", archive_stem(key), flags=re.IGNORECASE)
    try:
        normalise_split(base)
        return f"Images/{base}"
    except ValueError:
        return "Images" if base.lower() == "images" else ""


def fetch(source: str, opts: ZenodoOptions, dest: Path, archive_dir: Path,
          log: Callable[[str], None]) -> dict:
    url = f"{opts.endpoint.rstrip('/')}/api/records/{opts.record}"
    record = get_json(url, timeout=opts.timeout, retries=opts.retries,
                      status_hints={404: f"no record {opts.record}: check sources.{source}.options.record",
                                    410: f"record {opts.record} was removed"})
    files = record_files(record, url)
    if opts.files is not None:
        known = {f["key"] for f in files}
        unknown = [k for k in opts.files if k not in known]
        if unknown:
            raise DownloadError(f"zenodo: record {opts.record} has no file(s) {unknown} "
                                f"(sources.{source}.options.files); it has {sorted(known)}")
        files = [f for f in files if f["key"] in set(opts.files)]
    entries = []
    for f in sorted(files, key=lambda f: f["key"]):
        def get(path: Path, f=f) -> dict:
            return download(f["url"], path, size=f["size"], md5=f["md5"], timeout=opts.timeout,
                            retries=opts.retries, log=log, name=f["key"])

        entries.append(install(f["key"], dest=dest, archive_dir=archive_dir, fetch=get,
                               published=f"md5:{f['md5']}" if f["md5"] else None,
                               want=images_folder(f["key"]), options=opts, log=log))
    metadata = record.get("metadata") or {}
    return summary(source, "zenodo", entries, record=opts.record, doi=record.get("doi"),
                   version=metadata.get("version"))
