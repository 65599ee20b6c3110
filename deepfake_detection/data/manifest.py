"""The contracts between stages: face records, rejects and the manifest (DESIGN.md).

A *record* is one input face before cropping (an adapter's output); a *face* row is one crop on
disk (the faces stage's output); the *manifest* is every face with its split (the split stage's
output). Reasons in the rejects table are short stable words so they can be counted and diffed.
"""

from __future__ import annotations

import pandas as pd

LABELS = {"real": 0, "fake": 1}

# Columns an adapter returns, one row per input face (before cropping).
RECORD_COLUMNS = ["dataset", "path", "label", "generator", "group", "official_split"]
# Columns of data/faces/<source>/faces.csv: the records plus where the crop came from.
FACE_COLUMNS = ["face_id", "path", "label", "source", "generator", "group", "official_split",
                "src_path", "box_x", "box_y", "box_w", "box_h", "img_w", "img_h"]
MANIFEST_COLUMNS = FACE_COLUMNS + ["split"]
REJECT_COLUMNS = ["source", "path", "annotation", "reason"]

REJECT_REASONS = ("unreadable", "missing_file", "box_outside", "zero_area", "no_face",
                  "too_small", "unknown_label",
                  "not_an_image",      # a file in a dataset folder without an image suffix
                  "not_annotated",     # an image in a COCO dataset folder that no COCO file lists
                  "bad_annotation",    # a malformed COCO record (no image_id, bbox not 4 numbers...)
                  "outside_dataset")   # a path or link that leads outside the dataset folder

OFFICIAL_SPLITS = {
    # OpenForensics COCO files / image folders
    "train": "train", "val": "val", "validation": "val", "test": "test",
    "test-dev": "test_dev", "test_dev": "test_dev",
    "test-challenge": "test_challenge", "test_challenge": "test_challenge",
}


def normalise_split(name: str) -> str:
    """Map a dataset's own split name (``Validation``, ``Test-Dev``, ...) to ours."""
    key = name.strip().lower()
    if key not in OFFICIAL_SPLITS:
        raise ValueError(f"unknown split name {name!r}; known: {sorted(set(OFFICIAL_SPLITS))}")
    return OFFICIAL_SPLITS[key]


def empty(columns: list[str]) -> pd.DataFrame:
    return pd.DataFrame({c: pd.Series(dtype="object") for c in columns})


def check_columns(frame: pd.DataFrame, columns: list[str], what: str) -> None:
    missing = [c for c in columns if c not in frame.columns]
    if missing:
        raise ValueError(f"{what}: missing column(s) {missing}; expected {columns}")
