"""Decode every face once into one uint8 array per input size so training never decodes JPEGs.

``prepare`` writes ``<out>/images.npy`` (N, S, S, 3, uint8; memory-mapped by readers) and
``<out>/index.csv`` (the manifest rows in array order plus their ``row``), one folder per size
(``data/prepared/<S>``). Both are STREAMED: the manifest is read row by row with :mod:`csv`, the
``.npy`` header is written first and then chunks of decoded images with plain file writes (a
writable memmap would keep its dirty pages in the process's RSS), decoded by a thread pool
with at most a few chunks in flight, so peak memory does not grow with the number of faces.
``index.csv`` carries each manifest field through as the text the split stage wrote (a pandas
read-and-write gave the same bytes, at memory that grew with N).
:class:`.batches.BatchReader` serves whole batches from the array.

No torch here: the prepare stage imports this module and should not pay torch's import time.
"""

from __future__ import annotations

import csv
from collections import deque
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from itertools import islice
from pathlib import Path

import numpy as np

from ..io import atomic_path, read_image_rgb, resize_square

CHUNK_BYTES = 4 << 20   # decoded bytes per chunk (~340 faces at 64 px); a few chunks are in flight


class PrepareError(ValueError):
    """A manifest that cannot be prepared; the message names the file and the fix."""


def decode_face(path: str, size: int) -> np.ndarray:
    """One manifest face as a uint8 (size, size, 3) array (antialiased resize)."""
    try:
        return resize_square(read_image_rgb(path), size)
    except FileNotFoundError:
        raise PrepareError(f"{path}: missing file listed in the manifest; re-run the faces and split "
                           f"stages (dvc repro split)") from None
    except ValueError:
        raise PrepareError(f"{path}: does not decode as an image; re-run the faces stage that "
                           f"wrote it") from None


def _decode_into(buffer: np.ndarray, paths: list[str], size: int) -> np.ndarray:
    """Decode ``paths`` into the first rows of ``buffer``; return those rows."""
    for i, path in enumerate(paths):
        buffer[i] = decode_face(path, size)
    return buffer[:len(paths)]


def _manifest_rows(manifest: Path) -> Iterator[list[str]]:
    with open(manifest, newline="", encoding="utf-8") as f:
        yield from csv.reader(f)


def count_rows(manifest: Path) -> int:
    """Data rows of a CSV (quoted newlines counted right), without holding them."""
    return max(sum(1 for _ in _manifest_rows(manifest)) - 1, 0)


def chunk_rows(size: int, chunk_bytes: int = CHUNK_BYTES) -> int:
    return max(1, chunk_bytes // (size * size * 3))


def npy_header(shape: tuple[int, ...]) -> bytes:
    """The ``.npy`` (version 1.0) header numpy writes for a C-order uint8 array of ``shape``."""
    import io

    buf = io.BytesIO()
    np.lib.format.write_array_header_1_0(
        buf, {"descr": np.lib.format.dtype_to_descr(np.dtype(np.uint8)), "fortran_order": False,
              "shape": tuple(shape)})
    return buf.getvalue()


def prepare_arrays(manifest: str | Path, size: int, out_dir: Path, workers: int = 4,
                   rows_per_chunk: int | None = None) -> int:
    """Write ``out_dir/{images.npy,index.csv}`` for the manifest CSV at ``manifest``; return N.

    The folder appears at once (atomic) and only when every face decoded; a missing or
    undecodable face raises :class:`PrepareError` naming it. Memory: ``workers + 2`` reused
    buffers of ``rows_per_chunk`` faces (default: about 4 MiB each), whatever N is.
    """
    manifest = Path(manifest)
    n = count_rows(manifest)
    rows = _manifest_rows(manifest)
    header = next(rows, None)
    if header is None or "path" not in header:
        raise PrepareError(f"{manifest}: no 'path' column (columns: {header}); pass the split "
                           f"stage's manifest.csv")
    if "row" in header:
        raise PrepareError(f"{manifest}: already has a 'row' column; pass the split stage's manifest.csv")
    at = header.index("path")
    step = min(rows_per_chunk or chunk_rows(size), max(n, 1))
    with atomic_path(out_dir, is_dir=True) as tmp, \
            open(tmp / "images.npy", "wb") as images, \
            open(tmp / "index.csv", "w", newline="", encoding="utf-8") as index, \
            ThreadPoolExecutor(workers) as pool:   # cv2 and Pillow release the GIL while decoding
        images.write(npy_header((n, size, size, 3)))
        table = csv.writer(index, lineterminator="\n")
        table.writerow([*header, "row"])
        # A fixed set of chunk buffers, reused: at most len(free) chunks exist at any time, and
        # the allocator never sees a large block freed and asked for again (glibc's heap then
        # creeps up with the number of chunks).
        free = deque(np.empty((step, size, size, 3), np.uint8) for _ in range(workers + 2))
        pending: deque = deque()
        done = 0
        try:
            while chunk := list(islice(rows, step)):
                table.writerows([*r, str(done + i)] for i, r in enumerate(chunk))
                if not free:
                    free.append(_write_next(pending, images))
                pending.append(pool.submit(_decode_into, free.popleft(), [r[at] for r in chunk], size))
                done += len(chunk)
            while pending:
                _write_next(pending, images)
        except BaseException:
            pool.shutdown(wait=True, cancel_futures=True)
            raise
        if done != n:
            raise PrepareError(f"{manifest}: changed while it was read ({n} rows, then {done})")
    return n


def _write_next(pending: deque, images) -> np.ndarray:
    """Write the oldest pending chunk once decoded; return its buffer for reuse."""
    rows = pending.popleft().result()
    images.write(rows.data)
    return rows.base if rows.base is not None else rows


def load_prepared(prepared_dir: Path):
    """The memory-mapped image array and its index table."""
    import pandas as pd

    images = np.load(Path(prepared_dir) / "images.npy", mmap_mode="r")
    index = pd.read_csv(Path(prepared_dir) / "index.csv", keep_default_na=False,
                        dtype={"official_split": str, "generator": str, "split": str})
    if len(index) != len(images):
        raise ValueError(f"{prepared_dir}: index.csv has {len(index)} rows but images.npy {len(images)}")
    return images, index


def select_rows(index, datasets: list[str], split: str) -> np.ndarray:
    """Array rows of the given datasets and split."""
    mask = index["source"].isin(datasets) & (index["split"] == split)
    return index.loc[mask, "row"].to_numpy()
