"""Benchmark: training-time image loading, decode-every-epoch vs the ``prepare`` stage's arrays.

The straightforward approach (torchvision ImageFolder style) opens and decodes every JPEG with
PIL on every epoch, resizes, and converts + normalises each sample to float. The pipeline's
way: ``prepare`` decodes once into a uint8 memmap; an epoch reads whole batches from it
(``BatchReader``) and normalises each batch at once (on the GPU when there is one). We report
images/s delivered as normalised float batches, and the ratio.

    python benchmarks/bench_loading.py                 # 2,000 synthetic 256 px JPEG faces
    python benchmarks/bench_loading.py --n 5000 --size 224 --workers 2
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import numpy as np
import pandas as pd
import torch
from PIL import Image
from torch.utils.data import DataLoader, Dataset
from torchvision.transforms import v2

from deepfake_detection.data.batch_augment import EvalAugment
from deepfake_detection.data.batches import BatchReader
from deepfake_detection.data.prepared import load_prepared, prepare_arrays
from deepfake_detection.params import AugmentParams


class JpegFaces(Dataset):
    """The straightforward loader: decode the JPEG on every access."""

    def __init__(self, paths, labels, size, transform):
        self.paths, self.labels, self.size, self.transform = paths, labels, size, transform

    def __len__(self):
        return len(self.paths)

    def __getitem__(self, i):
        img = Image.open(self.paths[i]).convert("RGB").resize((self.size, self.size), Image.BILINEAR)
        x = torch.from_numpy(np.asarray(img).copy()).permute(2, 0, 1)
        return self.transform(x), int(self.labels[i])


def make_jpegs(root: Path, n: int, side: int) -> pd.DataFrame:
    rng = np.random.default_rng(0)
    base = rng.integers(0, 255, (8, 8, 3), dtype=np.uint8)
    rows = []
    for i in range(n):
        img = Image.fromarray(base).resize((side, side), Image.BICUBIC)
        arr = np.clip(np.asarray(img).astype(int) + rng.integers(-20, 20, (side, side, 3)), 0, 255).astype(np.uint8)
        path = root / f"{i:06d}.jpg"
        Image.fromarray(arr).save(path, quality=90)
        rows.append({"path": str(path), "label": i % 2})
    return pd.DataFrame(rows)


def images_per_s(loader, epochs: int, batch_fn=None) -> float:
    """``loader``: an iterable, or a callable epoch -> iterable of (x, y) batches."""
    n, start = 0, time.perf_counter()
    for epoch in range(epochs):
        for x, _ in (loader(epoch + 1) if callable(loader) else loader):
            if batch_fn is not None:
                x = batch_fn(x)
            n += len(x)
    return n / (time.perf_counter() - start)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--n", type=int, default=2000)
    ap.add_argument("--jpeg-size", type=int, default=256, help="side of the stored JPEG faces")
    ap.add_argument("--size", type=int, default=224, help="training resolution")
    ap.add_argument("--epochs", type=int, default=2)
    ap.add_argument("--workers", type=int, default=0)
    ap.add_argument("--batch-size", type=int, default=64)
    args = ap.parse_args()
    torch.set_num_threads(2)
    tf = v2.Compose([v2.ToDtype(torch.float32, scale=True), v2.Normalize([0.5] * 3, [0.5] * 3)])
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        (tmp / "jpg").mkdir()
        manifest = make_jpegs(tmp / "jpg", args.n, args.jpeg_size)
        kw = {"batch_size": args.batch_size, "num_workers": args.workers, "shuffle": True,
              "generator": torch.Generator().manual_seed(0)}
        baseline = images_per_s(DataLoader(JpegFaces(manifest["path"], manifest["label"], args.size, tf), **kw),
                                args.epochs)
        t0 = time.perf_counter()
        manifest.to_csv(tmp / "manifest.csv", index=False)
        prepare_arrays(tmp / "manifest.csv", args.size, tmp / "prepared")
        prep_s = time.perf_counter() - t0
        images, index = load_prepared(tmp / "prepared")
        reader = BatchReader(images, index["label"].to_numpy(), index["row"].to_numpy(), args.batch_size,
                             shuffle=True, seed=0)
        ours = images_per_s(reader.epoch, args.epochs, EvalAugment(AugmentParams(), "half"))
    print(f"{args.n} faces, JPEG {args.jpeg_size} px -> {args.size} px, {args.epochs} epochs, workers={args.workers}")
    print(f"decode every epoch (PIL):  {baseline:8.0f} images/s")
    print(f"prepared uint8 memmap:     {ours:8.0f} images/s  (one-off prepare: {prep_s:.1f} s)")
    print(f"ratio: {ours / baseline:.1f}x")


if __name__ == "__main__":
    main()
