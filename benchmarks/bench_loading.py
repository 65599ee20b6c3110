"""Benchmark: the reports' input pipeline against ours, side by side at 64 and 224 px, from one run.

Reports' loop: torchvision ``ImageFolder`` over the face JPEGs (stored at the training size, as
the datasets ship them), PIL decode and per-image transforms (Resize, RandomCrop,
RandomHorizontalFlip, ColorJitter, ToTensor, Normalize) in a ``DataLoader`` with 0 and with 2
workers. Ours (``ours``: torch's thread count; ``ours_2t``: 2 threads, when that differs):
the ``prepare`` stage's uint8 array (decoded once, at the recipe's resize side,
so the hot path has no resize), :class:`BatchReader` (one read per batch) and
:class:`TrainAugment` (per-image draws; on CPU the uint8 OpenCV path). Both use the
``resnet18_scratch`` augment list (resize 72 / crop 64 at 64 px; resize 256 / crop 224 at
224 px; hflip; ColorJitter(0.1, 0.1, 0.1, 0.05)), batch 64. Measured: the loader alone over one
epoch (worker start-up included, as an epoch pays it), and loader + a ResNet-18 training step
(SGD; AMP + channels_last on CUDA; one untimed warm-up step): measured step by step on CUDA,
composed on CPU from each loader's time per batch and one ResNet-18 step timed once per size
(tens of seconds at 224 px on CPU, the same for every loader). The table gives images/s, the
ratio to the reports' 0-worker loop and the share of each step spent waiting for the loader. ``--compile`` adds
a row for the float path with ``TrainAugment(compile=True)`` (compiled before the timings).
The faces are crops of scikit-image's photos, written as JPEGs to a temporary folder and
deleted afterwards. On a CPU shared with other jobs, ``--threads 1`` keeps OpenMP threads from
spinning against each other; the ``ours_2t`` row then shows our augmentation on 2 threads.

    python benchmarks/bench_loading.py --threads 1            # 768 faces, ~3 min on 2 CPU cores
    python benchmarks/bench_loading.py --threads 1 --quick    # 256 faces, one step each, < 1 min
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import numpy as np
import pandas as pd
import torch
import torchvision
from PIL import Image
from skimage import data as skdata
from torch.utils.data import DataLoader
from torchvision import transforms as T

from deepfake_detection.data.batch_augment import TrainAugment, batch_seed
from deepfake_detection.data.batches import BatchReader
from deepfake_detection.data.prepared import load_prepared, prepare_arrays
from deepfake_detection.params import AugmentParams

JITTER = (0.1, 0.1, 0.1, 0.05)
AUGMENT = {64: AugmentParams(resize=72, crop=64, hflip=0.5, color_jitter=JITTER),
           224: AugmentParams(resize=256, crop=224, hflip=0.5, color_jitter=JITTER)}
BATCH = 64
PIPELINES = ("reports", "reports_2w", "ours", "ours_2t", "compiled")


def synthetic_faces(n: int, size: int, seed: int = 0) -> list[np.ndarray]:
    """``n`` structured RGB ``size`` px images: random square crops of scikit-image's colour photos."""
    photos = [skdata.astronaut(), skdata.chelsea(), skdata.coffee(), skdata.rocket()]
    rng = np.random.default_rng(seed)
    out = []
    for i in range(n):
        photo = photos[i % len(photos)]
        side = int(rng.integers(min(photo.shape[:2]) // 4, min(photo.shape[:2])))
        top = int(rng.integers(0, photo.shape[0] - side + 1))
        left = int(rng.integers(0, photo.shape[1] - side + 1))
        crop = Image.fromarray(photo[top:top + side, left:left + side]).resize((size, size), Image.BILINEAR)
        out.append(np.asarray(crop))
    return out


def write_image_folder(faces: list[np.ndarray], root: Path) -> pd.DataFrame:
    """JPEGs in ``root/{real,fake}/`` (ImageFolder's layout); the manifest (path, label) in ``faces`` order."""
    rows = []
    for cls in ("real", "fake"):
        (root / cls).mkdir(parents=True, exist_ok=True)
    for i, img in enumerate(faces):
        label = i % 2
        path = root / ("fake" if label else "real") / f"{i:05d}.jpg"
        Image.fromarray(img).save(path, quality=90)
        rows.append({"path": str(path), "label": label})
    return pd.DataFrame(rows)


def reports_loader(root: Path, aug: AugmentParams, device: torch.device, workers: int):
    b, c, s, h = aug.color_jitter
    tf = T.Compose([T.Resize(aug.resize), T.RandomCrop(aug.crop), T.RandomHorizontalFlip(aug.hflip),
                    T.ColorJitter(b, c, s, h), T.ToTensor(), T.Normalize((0.5,) * 3, (0.5,) * 3)])
    loader = DataLoader(torchvision.datasets.ImageFolder(str(root), transform=tf), batch_size=BATCH,
                        shuffle=True, num_workers=workers, pin_memory=device.type == "cuda",
                        generator=torch.Generator().manual_seed(0))

    def batches(epoch: int):
        for x, y in loader:
            yield x.to(device, non_blocking=True), y.to(device, non_blocking=True)
    return batches


def our_loader(images: np.ndarray, labels: np.ndarray, aug: AugmentParams, device: torch.device,
               compile: bool = False, threads: int | None = None):
    reader = BatchReader(images, labels, np.arange(len(images)), BATCH, shuffle=True, seed=0, device=device)
    augment = TrainAugment(aug, normalize="half", compile=compile, backend="float" if compile else "auto",
                           threads=threads).to(device)
    if compile:   # compile outside the timings, once per batch shape the epoch will see
        for x, y in reader.epoch(0):
            augment(x, y, 0)

    def batches(epoch: int):
        for step, (x, y) in enumerate(reader.epoch(epoch)):
            yield augment(x, y, batch_seed(0, epoch, step))
    return batches


def sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def time_loader(batches, device: torch.device) -> tuple[float, float]:
    """(images/s, seconds per batch) of one full epoch, loader alone."""
    sync(device)
    start, seen, n_batches = time.perf_counter(), 0, 0
    for x, _ in batches(1):
        seen, n_batches = seen + len(x), n_batches + 1
    sync(device)
    elapsed = time.perf_counter() - start
    return seen / elapsed, elapsed / n_batches


def make_step(device: torch.device):
    """One ResNet-18 SGD step on a batch (AMP + channels_last on CUDA); returns the step function."""
    cuda = device.type == "cuda"
    model = torchvision.models.resnet18(num_classes=2).to(device)
    if cuda:
        model = model.to(memory_format=torch.channels_last)
    opt = torch.optim.SGD(model.parameters(), lr=0.01, momentum=0.9)
    scaler = torch.amp.GradScaler(device.type, enabled=cuda)

    def step(x: torch.Tensor, y: torch.Tensor) -> None:
        if cuda:
            x = x.contiguous(memory_format=torch.channels_last)
        with torch.autocast(device.type, dtype=torch.float16, enabled=cuda):
            loss = torch.nn.functional.cross_entropy(model(x), y)
        opt.zero_grad(set_to_none=True)
        scaler.scale(loss).backward()
        scaler.step(opt)
        scaler.update()
    return step


def time_step(batches, device: torch.device, steps: int) -> float:
    """Seconds per ResNet-18 training step on the loader's batches (loading not timed; a warm-up step on CUDA)."""
    step, it, total = make_step(device), iter(batches(2)), 0.0
    warmup = 1 if device.type == "cuda" else 0
    for i in range(steps + warmup):
        x, y = next(it)
        sync(device)
        t0 = time.perf_counter()
        step(x, y)
        sync(device)
        total += (time.perf_counter() - t0) if i >= warmup else 0.0
    return total / steps


def time_training(batches, device: torch.device, steps: int) -> tuple[float, float]:
    """(images/s of loader + ResNet-18 step, fraction of the time spent waiting for the loader).

    Measured as it runs: each step waits for its batch, then trains; one untimed warm-up step
    (CUDA kernels and allocator, DataLoader workers' start-up).
    """
    step, it = make_step(device), iter(batches(2))
    t_load = t_step = 0.0
    seen = 0
    for i in range(steps + 1):
        sync(device)
        t0 = time.perf_counter()
        x, y = next(it)
        sync(device)
        t1 = time.perf_counter()
        step(x, y)
        sync(device)
        t2 = time.perf_counter()
        if i >= 1:
            t_load, t_step, seen = t_load + t1 - t0, t_step + t2 - t1, seen + len(x)
    return seen / (t_load + t_step), t_load / (t_load + t_step)


def composed_training(name: str, t_batch: float, t_step: float) -> tuple[float, float]:
    """(images/s, loader share) of loader + step from the loader's epoch time per batch and one step.

    0 workers: the loop loads, then trains (sequential sum). 2 workers: they prepare the next
    batches while the step runs, so a step waits only for what loading exceeds the step.
    """
    wait = max(0.0, t_batch - t_step) if name.endswith("_2w") else t_batch
    return BATCH / (wait + t_step), wait / (wait + t_step)


def run(n: int, sizes: list[int], steps: dict[int, int], device: torch.device, compile: bool) -> list[dict]:
    """Per size: every pipeline's loader alone; loader + step measured on CUDA, composed on CPU.

    On CPU a ResNet-18 step at 224 px takes tens of seconds, the same for every pipeline (the
    batches have one shape), so it is timed once per size on our batches and added to each
    loader's measured time per batch (:func:`composed_training`).
    """
    rows = []
    for size in sizes:
        aug = AUGMENT[size]
        with tempfile.TemporaryDirectory(prefix="bench_loading_") as tmp:
            root = Path(tmp) / "faces"
            manifest = write_image_folder(synthetic_faces(n, size), root)
            manifest.to_csv(Path(tmp) / "manifest.csv", index=False)
            prepare_arrays(Path(tmp) / "manifest.csv", aug.resize, Path(tmp) / "prepared")   # decode once, at the recipe's resize
            images, index = load_prepared(Path(tmp) / "prepared")
            labels = index["label"].to_numpy()
            pipes = {"reports": reports_loader(root, aug, device, 0),
                     "reports_2w": reports_loader(root, aug, device, 2),
                     "ours": our_loader(images, labels, aug, device)}
            if device.type == "cpu" and torch.get_num_threads() != 2:   # the uint8 path on 2 threads
                pipes["ours_2t"] = our_loader(images, labels, aug, device, threads=2)
            if compile:
                t0 = time.perf_counter()
                pipes["compiled"] = our_loader(images, labels, aug, device, compile=True)
                print(f"{size} px: torch.compile of the float path took {time.perf_counter() - t0:.0f} s")
            loader = {name: time_loader(b, device) for name, b in pipes.items()}
            if device.type == "cuda":
                train = {name: time_training(b, device, steps[size]) for name, b in pipes.items()}
            else:
                t_step = time_step(pipes["ours"], device, steps[size])
                train = {name: composed_training(name, loader[name][1], t_step) for name in pipes}
            del images
        rows.append({"size": size, **{f"{k}_{name}": v for name in pipes
                                      for k, v in zip(("loader", "train", "load_share"),
                                                      (loader[name][0], *train[name]))}})
    return rows


def table(rows: list[dict]) -> str:
    """One row per size and pipeline; ratios against the reports' 0-worker loop of the same size."""
    head = (f"{'px':>4} {'pipeline':<11} | {'loader img/s':>12} {'x reports':>9} | "
            f"{'loader+ResNet-18 img/s':>22} {'x reports':>9} | {'loader share of step':>20}")
    lines = [head, "-" * len(head)]
    for r in rows:
        for name in PIPELINES:
            if f"loader_{name}" not in r:
                continue
            lines.append(f"{r['size']:>4} {name:<11} | {r[f'loader_{name}']:>12.0f} "
                         f"{r[f'loader_{name}'] / r['loader_reports']:>8.1f}x | "
                         f"{r[f'train_{name}']:>22.1f} {r[f'train_{name}'] / r['train_reports']:>8.2f}x | "
                         f"{r[f'load_share_{name}']:>20.1%}")
    return "\n".join(lines)


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="256 faces, one timed training step per pipeline (< 1 min)")
    ap.add_argument("--n", type=int, default=0, help="faces per size (default 768 = 12 batches, 256 with --quick)")
    ap.add_argument("--compile", action="store_true", help="add the torch.compile'd float path as a row")
    ap.add_argument("--sizes", type=int, nargs="+", default=[64, 224], choices=sorted(AUGMENT))
    ap.add_argument("--threads", type=int, default=0, help="torch intra-op threads (0: torch's default)")
    ap.add_argument("--device", default="auto", help="auto (CUDA when present), cpu or cuda")
    args = ap.parse_args(argv)
    if args.threads > 0:
        torch.set_num_threads(args.threads)
    device = torch.device(("cuda" if torch.cuda.is_available() else "cpu") if args.device == "auto" else args.device)
    n = args.n or (256 if args.quick else 768)
    steps = {64: 1 if args.quick else 2, 224: 1} if device.type == "cpu" else {64: 20, 224: 10}
    how = "measured per pipeline" if device.type == "cuda" else "composed: loader time per batch + one measured step"
    print(f"device {device}, torch threads {torch.get_num_threads()}, {n} faces, batch {BATCH}, "
          f"timed training steps {steps}; loader + ResNet-18: {how}")
    print(table(run(n, args.sizes, steps, device, args.compile)))


if __name__ == "__main__":
    main()
