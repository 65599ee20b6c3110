"""Whole batches read straight from the prepared uint8 array, without a per-sample Dataset.

A batch is one pass over the memory-mapped ``images.npy`` (N, S, S, 3): its rows are visited in
ascending row order (locality on disk) and each is copied once, straight to its place in the
shuffled order, into a (pinned, on CUDA) buffer. The batch leaves as a uint8 (B, 3, S, S) tensor whose memory is
channels_last, 4x fewer bytes to move than float; :mod:`.batch_augment` turns it into floats on
the device. The epoch order comes from a ``torch.Generator`` seeded by (seed, epoch) alone, so a
resumed run replays it, and nothing here reads or changes the global RNGs.
"""

from __future__ import annotations

from collections.abc import Iterator

import numpy as np
import torch


def epoch_seed(seed: int, epoch: int) -> int:
    """The shuffle seed of one epoch, a function of (seed, epoch) only (a resumed run replays it)."""
    return seed * 100_003 + epoch


def epoch_order(n: int, seed: int, epoch: int, shuffle: bool) -> np.ndarray:
    """Positions 0..n-1 in the order epoch ``epoch`` visits them."""
    if not shuffle:
        return np.arange(n)
    gen = torch.Generator().manual_seed(epoch_seed(seed, epoch))
    return torch.randperm(n, generator=gen).numpy()


def batch_slices(n: int, batch_size: int, drop_last: bool) -> list[slice]:
    """Consecutive slices of ``batch_size`` over ``n`` items (the short last one kept unless dropped)."""
    stop = n - n % batch_size if drop_last else n
    return [slice(i, min(i + batch_size, stop)) for i in range(0, stop, batch_size)]


def read_rows(images: np.ndarray, rows: np.ndarray, pin: bool = False) -> torch.Tensor:
    """``images[rows]`` as a uint8 (B, S, S, 3) tensor, read once in sorted row order.

    Each row is read in ascending row order (locality on disk) and copied straight to its
    place in the output buffer (one copy), which is pinned when ``pin`` so a ``non_blocking``
    copy to CUDA overlaps compute.
    """
    rows = np.asarray(rows, dtype=np.int64)
    out = torch.empty((len(rows), *images.shape[1:]), dtype=torch.uint8, pin_memory=pin)
    dst = out.numpy()
    for k in np.argsort(rows, kind="stable").tolist():
        dst[k] = images[rows[k]]
    return out


class BatchReader:
    """Batches ``(x, y)`` of the selected ``rows``: x uint8 (B, 3, S, S), y int64 (B,), on ``device``.

    ``epoch(e)`` depends only on (seed, e), so any epoch can be replayed, in any order, by any
    reader built with the same arguments.
    """

    def __init__(self, images: np.ndarray, labels: np.ndarray, rows: np.ndarray, batch_size: int, *,
                 shuffle: bool, seed: int = 0, drop_last: bool = False, device: str | torch.device = "cpu"):
        if images.ndim != 4 or images.shape[3] != 3 or images.dtype != np.uint8:
            raise ValueError(f"BatchReader: images must be uint8 (N, S, S, 3) as prepare writes them, "
                             f"got {images.dtype} {images.shape}")
        if batch_size < 1:
            raise ValueError(f"BatchReader: batch_size must be >= 1, got {batch_size}")
        if len(labels) != len(images):
            raise ValueError(f"BatchReader: {len(labels)} labels for {len(images)} images; pass the "
                             f"prepared index.csv's label column whole")
        rows = np.asarray(rows, dtype=np.int64)
        if len(rows) and (rows.min() < 0 or rows.max() >= len(images)):
            raise ValueError(f"BatchReader: rows must lie in [0, {len(images)}), got "
                             f"[{rows.min()}, {rows.max()}]; select them from this prepared index.csv")
        self.images, self.rows, self.batch_size = images, rows, batch_size
        self.labels = torch.as_tensor(np.asarray(labels)[rows], dtype=torch.int64)
        self.shuffle, self.seed, self.drop_last = shuffle, seed, drop_last
        self.device = torch.device(device)

    def __len__(self) -> int:
        return len(batch_slices(len(self.rows), self.batch_size, self.drop_last))

    def epoch(self, epoch: int, start_batch: int = 0) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
        """The batches of epoch ``epoch``, from batch ``start_batch`` on (to resume mid-epoch)."""
        order = epoch_order(len(self.rows), self.seed, epoch, self.shuffle)
        cuda = self.device.type == "cuda"
        for sl in batch_slices(len(self.rows), self.batch_size, self.drop_last)[start_batch:]:
            pos = order[sl]
            x = read_rows(self.images, self.rows[pos], pin=cuda).permute(0, 3, 1, 2)   # NCHW, channels_last
            y = self.labels[torch.from_numpy(pos)]
            if cuda:
                x, y = x.to(self.device, non_blocking=True), y.pin_memory().to(self.device, non_blocking=True)
            yield x, y
