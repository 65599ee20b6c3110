"""Decode every face once into one uint8 array so training never decodes JPEGs.

``prepare`` writes ``images.npy`` (N, S, S, 3, uint8; memory-mapped by readers) and
``index.csv`` (the manifest rows in array order). :class:`.batches.BatchReader` serves whole
batches from it.
"""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import pandas as pd

from ..io import atomic_path, read_image_rgb, resize_square


def _decode(path: str, size: int) -> np.ndarray:
    return resize_square(read_image_rgb(path), size)


def prepare_arrays(manifest: pd.DataFrame, size: int, out_dir: Path, workers: int = 4) -> None:
    """Write ``out_dir/{images.npy,index.csv}`` atomically (the whole folder appears at once)."""
    paths = manifest["path"].tolist()
    with atomic_path(out_dir, is_dir=True) as tmp:
        arr = np.lib.format.open_memmap(tmp / "images.npy", mode="w+", dtype=np.uint8,
                                        shape=(len(paths), size, size, 3))
        with ThreadPoolExecutor(workers) as pool:   # cv2 releases the GIL while decoding
            for i, img in enumerate(pool.map(lambda p: _decode(p, size), paths)):
                arr[i] = img
        arr.flush()
        del arr
        manifest.reset_index(drop=True).assign(row=np.arange(len(paths))).to_csv(
            tmp / "index.csv", index=False, lineterminator="\n")


def load_prepared(prepared_dir: Path) -> tuple[np.ndarray, pd.DataFrame]:
    """The memory-mapped image array and its index table."""
    images = np.load(Path(prepared_dir) / "images.npy", mmap_mode="r")
    index = pd.read_csv(Path(prepared_dir) / "index.csv", keep_default_na=False,
                        dtype={"official_split": str, "generator": str, "split": str})
    if len(index) != len(images):
        raise ValueError(f"{prepared_dir}: index.csv has {len(index)} rows but images.npy {len(images)}")
    return images, index


def select_rows(index: pd.DataFrame, datasets: list[str], split: str) -> np.ndarray:
    """Array rows of the given datasets and split."""
    mask = index["source"].isin(datasets) & (index["split"] == split)
    return index.loc[mask, "row"].to_numpy()
