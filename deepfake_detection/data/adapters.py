"""Layout adapters: turn a downloaded dataset folder into face records (manifest.RECORD_COLUMNS).

One function per published layout, registered in ``ADAPTERS`` by the ``layout`` name used in
params.yaml. Labels are mapped explicitly from names (never from folder order: ImageFolder would
make Fake=0). Every file of a dataset folder ends as a record or a reject row with its reason
(``not_an_image`` for a stray ``.txt``, ``unknown_label``, ``outside_dataset``), never dropped.
Hidden files and folders (``.archives``, ``.sources`` markers, ``._*`` resource forks) and
``__MACOSX`` are not inputs: they are skipped, not rejected.

Links: the dataset folder itself may be a link (the ``local`` source kind makes one; it is
resolved once and trusted). Links *below* it are user data and are judged by where they lead:
a link to a file or folder outside the dataset folder is rejected as ``outside_dataset`` and
never opened; a link to a file inside is read like the file; a link to a folder inside is not
descended (its files are listed where they really lie).

A folder whose images all lack a label while a sibling folder is a class folder (``Rael/`` next
to ``Fake/``) is a :class:`DatasetError`, not a pile of rejects: it is almost always a typo that
would silently drop a whole class.

Layouts: ``real_fake_folders`` (Kaggle real/fake folder sets), ``video_frames`` (flat frames named
``<video>_<frame>_<label>``), ``deepfakeface`` (DeepFakeFace's per-zip folders). OpenForensics'
COCO files are read by the faces stage (``faces.crop``), not here. :func:`source_counts`
summarises records.
"""

from __future__ import annotations

import os
import re
from pathlib import Path
from typing import Callable

import pandas as pd

from .manifest import LABELS, RECORD_COLUMNS, REJECT_COLUMNS, check_columns, empty, normalise_split

IMAGE_SUFFIXES = {".jpg", ".jpeg", ".png", ".bmp", ".webp"}
SKIP_DIRS = {"__MACOSX"}

Adapter = Callable[[Path, str], tuple[pd.DataFrame, pd.DataFrame]]
ADAPTERS: dict[str, Adapter] = {}


class DatasetError(ValueError):
    """A dataset folder that cannot be ingested at all; the message is one line naming the
    folder or file and what to fix."""


def register(name: str):
    def deco(fn: Adapter) -> Adapter:
        ADAPTERS[name] = fn
        return fn
    return deco


def _skipped(name: str) -> bool:
    return name.startswith(".") or name in SKIP_DIRS


def is_inside(root_real: Path, path: Path) -> bool:
    """Whether ``path`` (following every link, existing or not) lies in ``root_real``
    (an already resolved folder). Never opens ``path``."""
    return Path(os.path.realpath(path)).is_relative_to(root_real)


def scan(root: Path) -> tuple[list[str], list[tuple[str, str]]]:
    """Every input file below ``root`` and the entries that cannot be inputs.

    Returns (image paths, [(path, reason)]), paths relative to ``root`` in POSIX form, sorted.
    Reasons: ``not_an_image`` (a file without an image suffix), ``outside_dataset`` (a link
    leading out of ``root``). Hidden entries and ``__MACOSX`` are skipped; links are treated as
    the module docstring says. Nothing is opened.
    """
    root = Path(root)
    root_real = Path(os.path.realpath(root))
    images, rejected = [], []
    for dirpath, dirnames, filenames in os.walk(root):     # followlinks=False
        here = Path(dirpath)
        rel_dir = here.relative_to(root)
        keep = []
        for d in sorted(dirnames):
            if _skipped(d):
                continue
            if (here / d).is_symlink():
                if not is_inside(root_real, here / d):
                    rejected.append(((rel_dir / d).as_posix(), "outside_dataset"))
                continue
            keep.append(d)
        dirnames[:] = keep
        for f in sorted(filenames):
            if _skipped(f):
                continue
            rel = (rel_dir / f).as_posix()
            if (here / f).is_symlink() and not is_inside(root_real, here / f):
                rejected.append((rel, "outside_dataset"))
            elif Path(f).suffix.lower() not in IMAGE_SUFFIXES:
                rejected.append((rel, "not_an_image"))
            else:
                images.append(rel)
    return sorted(images), sorted(rejected)


def _frames(rows: list[dict], rejects: list[dict]) -> tuple[pd.DataFrame, pd.DataFrame]:
    records = pd.DataFrame(rows, columns=RECORD_COLUMNS) if rows else empty(RECORD_COLUMNS)
    rej = pd.DataFrame(rejects, columns=REJECT_COLUMNS) if rejects else empty(REJECT_COLUMNS)
    return records, rej


def _reject(dataset: str, rel: str, reason: str) -> dict:
    return {"source": dataset, "path": rel, "annotation": "", "reason": reason}


def _scanned(root: Path, dataset: str) -> tuple[list[str], list[dict]]:
    images, rejected = scan(root)
    return images, [_reject(dataset, rel, reason) for rel, reason in rejected]


def unknown_class_folders(labelled: list[str], unlabelled: list[str],
                          is_class: Callable[[str], bool]) -> dict[str, int]:
    """Folders that look like misnamed class folders: {folder: number of its images}.

    A folder qualifies when none of the images below it has a label, at least one has none,
    its own name is not a class name, and a sibling folder's name is (``Rael/`` beside
    ``Fake/``). Only the shallowest such folder of a branch is reported.
    """
    def folders(rel: str) -> list[str]:
        parts = rel.split("/")[:-1]
        return ["/".join(parts[:i + 1]) for i in range(len(parts))]

    has_label = {f for rel in labelled for f in folders(rel)}
    children: dict[str, set[str]] = {}
    for rel in labelled + unlabelled:
        for f in folders(rel):
            parent, _, name = f.rpartition("/")
            children.setdefault(parent, set()).add(name)
    found: dict[str, int] = {}
    for rel in unlabelled:
        for f in folders(rel):
            parent, _, name = f.rpartition("/")
            if f in has_label or is_class(name):
                continue
            if any(is_class(sib) for sib in children[parent] if sib != name):
                found[f] = found.get(f, 0) + 1
                break
    return dict(sorted(found.items()))


def _check_class_folders(root: Path, dataset: str, rows: list[dict], rejects: list[dict],
                         is_class: Callable[[str], bool], known: str) -> None:
    unlabelled = [r["path"] for r in rejects if r["reason"] == "unknown_label"]
    bad = unknown_class_folders([r["path"] for r in rows], unlabelled, is_class)
    if bad:
        listed = ", ".join(f"{f!r} ({n} images)" for f, n in bad.items())
        raise DatasetError(f"dataset {dataset!r} in {root}: folder(s) {listed} sit beside class "
                           f"folders but have no class name; rename them to one of {known} or "
                           "move them out of the dataset folder")


def _label_word(folder: str) -> int | None:
    """0/1 when a folder name has the word real or fake (not both), else None."""
    words = set(re.split(r"[^a-z0-9]+", folder.lower()))
    found = [LABELS[w] for w in LABELS if w in words]
    return found[0] if len(found) == 1 else None


def _folder_label(name: str) -> int | None:
    return LABELS[name.lower()] if name.lower() in LABELS else _label_word(name)


@register("real_fake_folders")
def real_fake_folders(root: Path, dataset: str) -> tuple[pd.DataFrame, pd.DataFrame]:
    """``[Dataset/]{Train,Validation,Test}/{Real,Fake}/*.jpg`` or plain ``{real,fake}/*.jpg``.

    The label comes from the nearest ancestor folder named real/fake (any case) or, failing that,
    whose name has exactly one of the words real/fake (``training_real``, ``Fake Images``; not
    ``real_vs_fake``); a split from an ancestor folder named like a split (Train, Validation,
    Test, ...), else empty. Each file is its own group (these Kaggle sets publish no source-image
    ids). A folder of unlabelled images beside a class folder is a :class:`DatasetError`.
    """
    images, rejects = _scanned(root, dataset)
    rows = []
    for rel in images:
        parts = [p.lower() for p in Path(rel).parts[:-1]]
        label = next((LABELS[p] for p in reversed(parts) if p in LABELS), None)
        if label is None:
            label = next((lab for lab in map(_label_word, reversed(parts)) if lab is not None), None)
        split = ""
        for p in parts:
            try:
                split = normalise_split(p)
            except ValueError:
                continue
        if label is None:
            rejects.append(_reject(dataset, rel, "unknown_label"))
            continue
        rows.append({"dataset": dataset, "path": rel, "label": label, "generator": "",
                     "group": f"{dataset}:{Path(rel).with_suffix('').as_posix()}",
                     "official_split": split})
    _check_class_folders(root, dataset, rows, rejects, lambda n: _folder_label(n) is not None,
                         "Real or Fake (any case, or a name with exactly one of the words real, fake)")
    return _frames(rows, rejects)


# <video>_<frame>_<label>: the video id may itself contain underscores (the regex is greedy).
FRAME_NAME = re.compile(r"^(?P<video>.+)_(?P<frame>[^_]+)_(?P<label>[01])$")


@register("video_frames")
def video_frames(root: Path, dataset: str) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Flat ``images/`` of video frames named ``<videoid>_<frame>_<label>.jpg`` (label 0 real, 1 fake).

    The label is the last ``_0``/``_1`` before the extension; all frames of one video share the
    group ``<dataset>:<videoid>`` so they stay in one split. No official split. A name that does
    not parse is rejected as ``unknown_label``. Any folder depth is accepted; only the file name
    is read.
    """
    images, rejects = _scanned(root, dataset)
    rows = []
    for rel in images:
        m = FRAME_NAME.match(Path(rel).stem)
        if m is None:
            rejects.append(_reject(dataset, rel, "unknown_label"))
            continue
        rows.append({"dataset": dataset, "path": rel, "label": int(m.group("label")), "generator": "",
                     "group": f"{dataset}:{m.group('video')}", "official_split": ""})
    return _frames(rows, rejects)


# DeepFakeFace: one zip per source, extracted into a folder of the zip's name.
DEEPFAKEFACE_FOLDERS = {"wiki": "", "inpainting": "inpainting", "insight": "insight", "text2img": "text2img"}


@register("deepfakeface")
def deepfakeface(root: Path, dataset: str) -> tuple[pd.DataFrame, pd.DataFrame]:
    """``wiki/`` (real, IMDB-WIKI) and ``inpainting/``, ``insight/``, ``text2img/`` (fake).

    ``generator`` is the folder (zip) name, empty for real images. The group is the path below
    the generator folder without its suffix (``wiki/00/1.jpg`` and ``insight/00/1.png`` are both
    ``<dataset>:00/1``), so the fakes made from one real face share its split. The generator
    folder may sit below other folders, and a repeated one (``insight/insight/``) is collapsed.
    Images outside the four folders are rejected as ``unknown_label``; a whole folder of them
    beside the four (a misspelt ``insigth/``) is a :class:`DatasetError`.
    """
    images, rejects = _scanned(root, dataset)
    rows = []
    for rel in images:
        rel_path = Path(rel)
        parts = [p.lower() for p in rel_path.parts[:-1]]
        at = next((i for i, p in enumerate(parts) if p in DEEPFAKEFACE_FOLDERS), None)
        if at is None:
            rejects.append(_reject(dataset, rel, "unknown_label"))
            continue
        folder = parts[at]
        rest = list(rel_path.parts[at + 1:])
        while len(rest) > 1 and rest[0].lower() == folder:
            rest.pop(0)
        stem = Path(*rest).with_suffix("").as_posix()
        generator = DEEPFAKEFACE_FOLDERS[folder]
        rows.append({"dataset": dataset, "path": rel, "label": LABELS["fake" if generator else "real"],
                     "generator": generator, "group": f"{dataset}:{stem}", "official_split": ""})
    _check_class_folders(root, dataset, rows, rejects, lambda n: n.lower() in DEEPFAKEFACE_FOLDERS,
                         str(sorted(DEEPFAKEFACE_FOLDERS)))
    return _frames(rows, rejects)


def adapt(layout: str, root: Path, dataset: str) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Run the adapter registered for ``layout`` on ``root``."""
    if layout not in ADAPTERS:
        raise ValueError(f"no adapter for layout {layout!r}; registered: {sorted(ADAPTERS)}")
    if not root.is_dir():
        raise DatasetError(f"dataset {dataset!r}: folder {root} not found; run the download stage or "
                           "fix the dataset's dir in params.yaml")
    records, rejects = ADAPTERS[layout](root, dataset)
    check_columns(records, RECORD_COLUMNS, f"adapter {layout!r} records")
    check_columns(rejects, REJECT_COLUMNS, f"adapter {layout!r} rejects")
    return records[RECORD_COLUMNS], rejects[REJECT_COLUMNS]


def _real_fake(labels: pd.Series) -> dict[str, int]:
    return {"total": len(labels), "real": int((labels == LABELS["real"]).sum()),
            "fake": int((labels == LABELS["fake"]).sum())}


def source_counts(records: pd.DataFrame) -> dict:
    """Counts per dataset: total/real/fake, overall and per official split and per generator.

    ``{dataset: {"total", "real", "fake", "by_official_split": {split: {"total", "real",
    "fake"}}, "by_generator": {...}}}``; an empty split or generator is counted under ``"none"``.
    Plain ints and sorted keys, so it can be written as JSON and diffed in review.
    """
    check_columns(records, RECORD_COLUMNS, "source_counts")
    out = {}
    for ds in sorted(records["dataset"].astype(str).unique()):
        frame = records[records["dataset"].astype(str) == ds]
        labels = frame["label"].astype(int)
        entry = _real_fake(labels)
        for column, key in (("official_split", "by_official_split"), ("generator", "by_generator")):
            values = frame[column].fillna("").astype(str)
            entry[key] = {(name or "none"): _real_fake(labels[values == name])
                          for name in sorted(values.unique())}
        out[ds] = entry
    return out
