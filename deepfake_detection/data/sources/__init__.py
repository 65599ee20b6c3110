"""Download clients for the real datasets: Kaggle, Zenodo and the Hugging Face Hub.

The ``local`` kind (:mod:`.local`) downloads nothing: it links a folder already on disk into
``data/raw/<name>``; the download stage calls :func:`.local.link_local` for it.

:func:`fetch_source` is the one entry point the ``download`` stage calls. It validates the
``sources.<name>.options`` mapping of params.yaml with the option dataclass of its kind, downloads
(with resume and checksum verification), extracts archives safely into ``dest`` in the layout the
dataset is published with, and returns a JSON-able summary. Every failure is a
:class:`DownloadError` whose one-line message says what to set or do.
"""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Callable

from ...params import ParamsError, from_dict
from . import huggingface, kaggle, zenodo
from .archive import Limits, extract
from .common import CommonOptions
from .http import DownloadError, download
from .huggingface import HuggingFaceOptions
from .kaggle import KaggleOptions
from .local import LocalOptions, link_local
from .zenodo import ZenodoOptions

FETCHERS = {
    "kaggle": (KaggleOptions, kaggle.fetch),
    "zenodo": (ZenodoOptions, zenodo.fetch),
    "huggingface": (HuggingFaceOptions, huggingface.fetch),
}

# every kind's options class: the remote fetchers' and the local kind's
OPTIONS = {**{kind: cls for kind, (cls, _) in FETCHERS.items()}, "local": LocalOptions}

__all__ = ["fetch_source", "parse_options", "DownloadError", "FETCHERS", "OPTIONS", "CommonOptions",
           "KaggleOptions", "ZenodoOptions", "HuggingFaceOptions", "LocalOptions", "link_local",
           "download", "extract", "Limits"]


def parse_options(name: str, kind: str, options: dict | None):
    """Validate ``sources.<name>.options`` for ``kind``; ParamsError names the bad key."""
    if kind not in OPTIONS:
        raise ParamsError(f"sources.{name}.kind: {kind!r} has no download client here; "
                          f"use one of {sorted(OPTIONS)} (demo data is made by the demo stage)")
    return from_dict(OPTIONS[kind], options or {}, f"sources.{name}.options")


def fetch_source(name: str, kind: str, options: dict, dest: Path, *,
                 log: Callable[[str], None] = print, archive_dir: Path | None = None) -> dict:
    """Download source ``name`` of ``kind`` into ``dest`` (``data/raw/<name>``); return a summary.

    Archives and partial ``.part`` files live in ``archive_dir`` (default ``dest/.archives``,
    removed at the end unless ``keep_archives``); pass a folder outside the stage's outputs to
    keep partial downloads across runs that wipe ``dest``. The summary lists every file with its
    size, md5, sha256 (when published) and how it was verified.
    """
    if kind not in FETCHERS:
        raise DownloadError(f"sources.{name}.kind: {kind!r} is not downloaded; use one of {sorted(FETCHERS)}")
    opts = parse_options(name, kind, options)
    dest = Path(dest)
    dest.mkdir(parents=True, exist_ok=True)
    default_dir = archive_dir is None
    archive_dir = dest / ".archives" if default_dir else Path(archive_dir)
    result = FETCHERS[kind][1](name, opts, dest, archive_dir, log)
    if default_dir and not opts.keep_archives:
        shutil.rmtree(archive_dir, ignore_errors=True)
    return result
