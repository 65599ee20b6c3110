"""Source kind ``local``: a dataset already on disk, linked (or copied) into ``data/raw/<name>``.

::

    sources:
      openforensics:
        kind: local
        options: {path: /data/openforensics, mode: symlink, sha256: ""}
        datasets:
          openforensics: {layout: coco, dir: ., crop: boxes}

:func:`link_local` checks the folder (it exists, is a readable folder, holds every dataset's
``dir``), optionally checks the SHA-256 of its *file listing* (every path with its size, and
every link with its target, sorted: cheap on 100k images, and it changes when a file is added,
removed, truncated or re-linked; it does not read file contents), and then makes
``data/raw/<name>`` show the data without downloading anything:

- ``mode: symlink`` (default): ``data/raw/<name>`` itself becomes one link to ``path``. Not one
  link per dataset dir: DVC does not descend into links *inside* an output folder (it would
  hash ``data/raw/<name>`` as 0 files, so an edit to the data would never rerun ``faces``),
  while it follows an output that is itself a link and hashes every file behind it.
- ``mode: copy``: each dataset's dir is copied (links inside it are copied as links).

Trust: the link made here (``data/raw/<name>``, at the root of every dataset folder) is
resolved once by the faces stage and trusted. Links *inside* the user's data are not trusted:
the faces stage rejects any that lead outside the dataset folder (``outside_dataset``) and never
opens them. That is also why ``copy`` keeps them as links rather than copying what they point to.

Note for DVC users: with the download output cached (the default), DVC copies what it hashes
into ``.dvc/cache``; for a large local folder declare that output ``cache: false``.

Nothing is written inside ``path``: no request stamp, no markers (the download stage writes
none for this kind). The summary holds counts and the listing hash, no absolute paths.
"""

from __future__ import annotations

import hashlib
import os
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Iterable, Literal

from ...params import check
from .http import DownloadError


@dataclass(kw_only=True)
class LocalOptions:
    """``sources.<name>.options`` for ``kind: local``."""

    path: str                                   # the folder that holds the datasets' dirs
    mode: Literal["symlink", "copy"] = "symlink"
    sha256: str = ""                            # optional SHA-256 of the file listing

    def validate(self, where: str) -> None:
        check(bool(self.path.strip()), f"{where}.path", "must name the folder that holds the data")
        check(self.sha256 == "" or (len(self.sha256) == 64 and
                                    all(c in "0123456789abcdef" for c in self.sha256.lower())),
              f"{where}.sha256", "must be empty or 64 hex digits (the listing_sha256 of a download summary)")


def top_dirs(dirs: Iterable[str]) -> list[str]:
    """The dataset dirs to link: normalised, deduplicated, and none inside another one
    (``.`` covers everything)."""
    norm = sorted({Path(os.path.normpath(d)).as_posix() for d in dirs})
    out: list[str] = []
    for d in norm:
        if not any(d == o or o == "." or d.startswith(o + "/") for o in out):
            out.append(d)
    return ["."] if "." in out else out


def check_folder(name: str, root: Path, dirs: list[str]) -> None:
    """DownloadError (one line) unless ``root`` is a readable folder holding every dir."""
    where = f"sources.{name}.options.path"
    if not root.exists():
        raise DownloadError(f"local: {where}: {root} does not exist; set it to the folder that holds "
                            f"{dirs}")
    if not root.is_dir():
        raise DownloadError(f"local: {where}: {root} is not a folder; set it to the folder that holds {dirs}")
    for d in dirs:
        if os.path.isabs(d) or os.path.normpath(d).split(os.sep)[0] == "..":
            raise DownloadError(f"local: sources.{name}.datasets: dir {d!r} leads out of {root}; "
                                "use a folder inside it")
        folder = root / d
        if not folder.is_dir():
            raise DownloadError(f"local: {where}: {root} has no folder {d!r} (a dataset's dir); fix "
                                f"the path or sources.{name}.datasets")
        if not os.access(folder, os.R_OK | os.X_OK):
            raise DownloadError(f"local: {where}: {folder} is not readable; fix its permissions")


def listing(root: Path, dirs: list[str]) -> tuple[str, dict]:
    """(SHA-256 of the file listing, {dir: {"n_files", "bytes"}}) of ``dirs`` under ``root``.

    One line per entry, sorted: ``<path>\\t<size>`` for a file, ``<path>\\t-> <target>`` for a
    link (never followed). Paths are relative to ``root``.
    """
    lines, counts = [], {}
    for d in dirs:
        n = size = 0
        for dirpath, dirnames, filenames in os.walk(root / d):
            here = Path(dirpath)
            entries = filenames + [x for x in dirnames if (here / x).is_symlink()]
            for f in entries:
                p = here / f
                rel = p.relative_to(root).as_posix()
                if p.is_symlink():
                    lines.append(f"{rel}\t-> {os.readlink(p)}")
                else:
                    st = p.stat()
                    lines.append(f"{rel}\t{st.st_size}")
                    size += st.st_size
                n += 1
        counts[d] = {"n_files": n, "bytes": size}
    digest = hashlib.sha256("".join(f"{line}\n" for line in sorted(lines)).encode()).hexdigest()
    return digest, counts


def _remove(path: Path) -> None:
    """Remove our own output: a link is unlinked (never what it points to), a folder deleted
    (links inside it are removed, not followed)."""
    if path.is_symlink() or path.is_file():
        path.unlink()
    elif path.is_dir():
        shutil.rmtree(path)


def _build(root: Path, dirs: list[str], tmp: Path, mode: str) -> None:
    if mode == "symlink":
        tmp.symlink_to(root, target_is_directory=True)
    elif dirs == ["."]:
        shutil.copytree(root, tmp, symlinks=True)
    else:
        tmp.mkdir()
        for d in dirs:
            (tmp / d).parent.mkdir(parents=True, exist_ok=True)
            shutil.copytree(root / d, tmp / d, symlinks=True)


def link_local(name: str, opts: LocalOptions, dest: Path, dirs: Iterable[str], *,
               log: Callable[[str], None] = print) -> dict:
    """Make ``dest`` (``data/raw/<name>``) show the local folder; return the JSON summary."""
    root = Path(os.path.realpath(Path(opts.path).expanduser()))
    dirs = top_dirs(dirs)
    check_folder(name, root, dirs)
    dest = Path(dest)
    # where dest lives (not where an earlier run's link points)
    dest_place = Path(os.path.realpath(dest.parent)) / dest.name
    if root.is_relative_to(dest_place) or dest_place.is_relative_to(root):
        raise DownloadError(f"local: sources.{name}.options.path: {root} overlaps the output {dest}; "
                            "point it at a folder outside data/raw")
    digest, counts = listing(root, dirs)
    if opts.sha256 and digest != opts.sha256.lower():
        raise DownloadError(f"local: {root}: file listing sha256 is {digest}, expected {opts.sha256} "
                            f"(sources.{name}.options.sha256): files were added, removed or changed; "
                            "check the folder or update the hash")
    dest.parent.mkdir(parents=True, exist_ok=True)
    tmp = dest.with_name(f".{dest.name}.local.tmp")
    _remove(tmp)
    _build(root, dirs, tmp, opts.mode)
    _remove(dest)
    tmp.rename(dest)
    n_files = sum(c["n_files"] for c in counts.values())
    total = sum(c["bytes"] for c in counts.values())
    log(f"local: {name}: {opts.mode} {n_files} files ({total / 1e9:.2f} GB) in {dirs} -> {dest}")
    return {"source": name, "kind": "local", "mode": opts.mode, "n_files": n_files, "bytes": total,
            "listing_sha256": digest, "verified": bool(opts.sha256), "dirs": counts}
