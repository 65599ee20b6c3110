"""Layout adapters: turn a downloaded dataset folder into face records (manifest.RECORD_COLUMNS).

One function per published layout, registered in ``ADAPTERS`` by the ``layout`` name used in
params.yaml. Labels are mapped explicitly from names (never from folder order: ImageFolder would
make Fake=0). Inputs that cannot be labelled are returned as rejects, never dropped. Hidden files
and folders (``.archives``, ``.sources`` markers, ``._*`` resource forks) and ``__MACOSX`` are not
inputs: they are skipped, not rejected.

Layouts: ``real_fake_folders`` (Kaggle real/fake folder sets), ``video_frames`` (flat frames named
``<video>_<frame>_<label>``), ``deepfakeface`` (DeepFakeFace's per-zip folders). OpenForensics'
COCO files are read by the faces stage, not here. :func:`source_counts` summarises records.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Callable

import pandas as pd

from .manifest import LABELS, RECORD_COLUMNS, REJECT_COLUMNS, check_columns, empty, normalise_split

IMAGE_SUFFIXES = {".jpg", ".jpeg", ".png", ".bmp", ".webp"}
SKIP_DIRS = {"__MACOSX"}

Adapter = Callable[[Path, str], tuple[pd.DataFrame, pd.DataFrame]]
ADAPTERS: dict[str, Adapter] = {}


def register(name: str):
    def deco(fn: Adapter) -> Adapter:
        ADAPTERS[name] = fn
        return fn
    return deco


def images_under(root: Path) -> list[Path]:
    """Every image file below ``root``, sorted for deterministic output.

    Hidden entries (a part starting with ``.``) and ``__MACOSX`` folders are skipped: they are
    download bookkeeping or archive junk (``._x.jpg`` resource forks), never dataset images.
    """
    out = []
    for p in root.rglob("*"):
        parts = p.relative_to(root).parts
        if any(part.startswith(".") or part in SKIP_DIRS for part in parts):
            continue
        if p.suffix.lower() in IMAGE_SUFFIXES and p.is_file():
            out.append(p)
    return sorted(out)


def _frames(rows: list[dict], rejects: list[dict]) -> tuple[pd.DataFrame, pd.DataFrame]:
    records = pd.DataFrame(rows, columns=RECORD_COLUMNS) if rows else empty(RECORD_COLUMNS)
    rej = pd.DataFrame(rejects, columns=REJECT_COLUMNS) if rejects else empty(REJECT_COLUMNS)
    return records, rej


def _reject(dataset: str, rel: str, reason: str) -> dict:
    return {"source": dataset, "path": rel, "annotation": "", "reason": reason}


def _label_word(folder: str) -> int | None:
    """0/1 when a folder name has the word real or fake (not both), else None."""
    words = set(re.split(r"[^a-z0-9]+", folder.lower()))
    found = [LABELS[w] for w in LABELS if w in words]
    return found[0] if len(found) == 1 else None


@register("real_fake_folders")
def real_fake_folders(root: Path, dataset: str) -> tuple[pd.DataFrame, pd.DataFrame]:
    """``[Dataset/]{Train,Validation,Test}/{Real,Fake}/*.jpg`` or plain ``{real,fake}/*.jpg``.

    The label comes from the nearest ancestor folder named real/fake (any case) or, failing that,
    whose name has exactly one of the words real/fake (``training_real``, ``Fake Images``; not
    ``real_vs_fake``); a split from an ancestor folder named like a split (Train, Validation,
    Test, ...), else empty. Each file is its own group (these Kaggle sets publish no source-image
    ids).
    """
    rows, rejects = [], []
    for path in images_under(root):
        parts = [p.lower() for p in path.relative_to(root).parts[:-1]]
        label = next((LABELS[p] for p in reversed(parts) if p in LABELS), None)
        if label is None:
            label = next((lab for lab in map(_label_word, reversed(parts)) if lab is not None), None)
        split = ""
        for p in parts:
            try:
                split = normalise_split(p)
            except ValueError:
                continue
        rel = path.relative_to(root).as_posix()
        if label is None:
            rejects.append(_reject(dataset, rel, "unknown_label"))
            continue
        rows.append({"dataset": dataset, "path": rel, "label": label, "generator": "",
                     "group": f"{dataset}:{Path(rel).with_suffix('').as_posix()}",
                     "official_split": split})
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
    rows, rejects = [], []
    for path in images_under(root):
        rel = path.relative_to(root).as_posix()
        m = FRAME_NAME.match(path.stem)
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
    Images outside the four folders are rejected as ``unknown_label``.
    """
    rows, rejects = [], []
    for path in images_under(root):
        rel_path = path.relative_to(root)
        rel = rel_path.as_posix()
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
    return _frames(rows, rejects)


def adapt(layout: str, root: Path, dataset: str) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Run the adapter registered for ``layout`` on ``root``."""
    if layout not in ADAPTERS:
        raise ValueError(f"no adapter for layout {layout!r}; registered: {sorted(ADAPTERS)}")
    if not root.is_dir():
        raise FileNotFoundError(f"{root}: dataset folder not found (did the download stage run?)")
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
