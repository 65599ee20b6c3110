"""Layout adapters: turn a downloaded dataset folder into face records (manifest.RECORD_COLUMNS).

One function per published layout, registered in ``ADAPTERS`` by the ``layout`` name used in
params.yaml. Labels are mapped explicitly from names (never from folder order: ImageFolder would
make Fake=0). Inputs that cannot be labelled are returned as rejects, never dropped.
"""

from __future__ import annotations

from pathlib import Path
from typing import Callable

import pandas as pd

from .manifest import LABELS, RECORD_COLUMNS, REJECT_COLUMNS, empty, normalise_split

IMAGE_SUFFIXES = {".jpg", ".jpeg", ".png", ".bmp", ".webp"}

Adapter = Callable[[Path, str], tuple[pd.DataFrame, pd.DataFrame]]
ADAPTERS: dict[str, Adapter] = {}


def register(name: str):
    def deco(fn: Adapter) -> Adapter:
        ADAPTERS[name] = fn
        return fn
    return deco


def images_under(root: Path) -> list[Path]:
    """Every image file below ``root``, sorted for deterministic output."""
    return sorted(p for p in root.rglob("*") if p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES)


@register("real_fake_folders")
def real_fake_folders(root: Path, dataset: str) -> tuple[pd.DataFrame, pd.DataFrame]:
    """``[Dataset/]{Train,Validation,Test}/{Real,Fake}/*.jpg`` or plain ``{real,fake}/*.jpg``.

    The label comes from the nearest ancestor folder named real/fake (any case); a split from an
    ancestor folder named like a split (Train, Validation, Test, ...), else empty. Each file is
    its own group (these Kaggle sets publish no source-image ids).
    """
    rows, rejects = [], []
    for path in images_under(root):
        parts = [p.lower() for p in path.relative_to(root).parts[:-1]]
        label = next((LABELS[p] for p in reversed(parts) if p in LABELS), None)
        split = ""
        for p in parts:
            try:
                split = normalise_split(p)
            except ValueError:
                continue
        rel = path.relative_to(root).as_posix()
        if label is None:
            rejects.append({"source": dataset, "path": rel, "annotation": "", "reason": "unknown_label"})
            continue
        rows.append({"dataset": dataset, "path": rel, "label": label, "generator": "",
                     "group": f"{dataset}:{Path(rel).with_suffix('').as_posix()}",
                     "official_split": split})
    records = pd.DataFrame(rows, columns=RECORD_COLUMNS) if rows else empty(RECORD_COLUMNS)
    rej = pd.DataFrame(rejects, columns=REJECT_COLUMNS) if rejects else empty(REJECT_COLUMNS)
    return records, rej


def adapt(layout: str, root: Path, dataset: str) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Run the adapter registered for ``layout`` on ``root``."""
    if layout not in ADAPTERS:
        raise ValueError(f"no adapter for layout {layout!r}; registered: {sorted(ADAPTERS)}")
    if not root.is_dir():
        raise FileNotFoundError(f"{root}: dataset folder not found (did the download stage run?)")
    return ADAPTERS[layout](root, dataset)
