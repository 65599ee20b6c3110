"""Benchmark: peak memory (RSS) of the ``prepare`` stage, streamed vs the old in-memory writer.

Synthetic input: ``--distinct`` small JPEG faces (``--jpeg-size`` px, so every face is resized
to ``--size``) generated into a temporary folder, and manifests of 30k/100k/300k rows that
repeat them (each row has the manifest's full set of columns, so the table itself is as large as
a real one). Each run is a fresh child process; its peak RSS is the kernel's high-water mark
(``VmHWM`` in /proc/self/status) read at its end, so imports count as well.

* ``streamed``: :func:`deepfake_detection.data.prepared.prepare_arrays` (npy header, then chunks
  written with plain file writes; a few chunks in flight; the manifest streamed through csv).
* ``old``: the previous code (pandas table, writable ``open_memmap``, ``ThreadPoolExecutor.map``
  over every path at once). Its dirty memmap pages count in RSS, so it is only run up to
  ``--old-max-rows``.

    python benchmarks/bench_prepare.py                       # 30k, 100k, 300k rows at 64 px (~5 min, 2 cores)
    python benchmarks/bench_prepare.py --old-max-rows 100000 # the old writer at 100k rows too
    python benchmarks/bench_prepare.py --rows 3000 30000     # quicker

Temporary files are deleted at the end.
"""

from __future__ import annotations

import argparse
import csv
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parent.parent
COLUMNS = ["face_id", "path", "label", "source", "generator", "group", "official_split", "src_path",
           "box_x", "box_y", "box_w", "box_h", "img_w", "img_h", "split"]


def make_faces(root: Path, n: int, side: int) -> list[str]:
    """``n`` distinct smooth-noise JPEG faces of ``side`` px."""
    from PIL import Image

    rng = np.random.default_rng(0)
    paths = []
    for i in range(n):
        base = Image.fromarray(rng.integers(0, 256, (8, 8, 3), dtype=np.uint8)).resize((side, side), Image.BICUBIC)
        noisy = np.clip(np.asarray(base, np.int16) + rng.integers(-12, 12, (side, side, 3)), 0, 255)
        path = root / f"face_{i:04d}.jpg"
        Image.fromarray(noisy.astype(np.uint8)).save(path, quality=90)
        paths.append(str(path))
    return paths


def write_manifest(path: Path, faces: list[str], rows: int) -> None:
    """A manifest of ``rows`` rows cycling over ``faces``, every column filled like a real one."""
    with open(path, "w", newline="") as f:
        out = csv.writer(f, lineterminator="\n")
        out.writerow(COLUMNS)
        for i in range(rows):
            face = faces[i % len(faces)]
            out.writerow([f"synthetic/scene_{i // 3:07d}_face_{i % 3}", face, i % 2, "synthetic",
                          "" if i % 2 == 0 else "stylegan2", f"scene_{i // 3:07d}", "Train",
                          f"data/raw/synthetic/images/scene_{i // 3:07d}.jpg", 10 + i % 50, 12 + i % 40,
                          64 + i % 30, 64 + i % 30, 256, 256, ["train", "val", "test"][i % 3]])


def old_prepare(manifest: Path, size: int, out: Path, workers: int = 4) -> None:
    """The pre-streaming prepare: the whole table in pandas, a writable memmap, map over all paths."""
    from concurrent.futures import ThreadPoolExecutor

    import pandas as pd

    from deepfake_detection.io import read_image_rgb, resize_square

    frame = pd.read_csv(manifest, keep_default_na=False, dtype={"official_split": str, "generator": str, "split": str})
    paths = frame["path"].tolist()
    out.mkdir()
    arr = np.lib.format.open_memmap(out / "images.npy", mode="w+", dtype=np.uint8, shape=(len(paths), size, size, 3))
    with ThreadPoolExecutor(workers) as pool:
        for i, img in enumerate(pool.map(lambda p: resize_square(read_image_rgb(p), size), paths)):
            arr[i] = img
    arr.flush()
    del arr
    frame.reset_index(drop=True).assign(row=np.arange(len(paths))).to_csv(out / "index.csv", index=False,
                                                                          lineterminator="\n")


def peak_rss_mib() -> float:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    import resource

    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def child(kind: str, manifest: Path, size: int, out: Path) -> None:
    sys.path.insert(0, str(REPO))
    start = time.perf_counter()
    if kind == "streamed":
        from deepfake_detection.data.prepared import prepare_arrays

        prepare_arrays(manifest, size, out)
    else:
        old_prepare(manifest, size, out)
    print(f"{peak_rss_mib():.1f} {time.perf_counter() - start:.2f}")


def measure(kind: str, manifest: Path, size: int, out: Path) -> tuple[float, float]:
    """(peak RSS MiB, seconds) of one prepare run in a fresh process."""
    res = subprocess.run([sys.executable, __file__, "--child", kind, str(manifest), str(size), str(out)],
                         capture_output=True, text=True, check=True)
    rss, seconds = res.stdout.split()
    return float(rss), float(seconds)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--rows", type=int, nargs="+", default=[30_000, 100_000, 300_000])
    ap.add_argument("--size", type=int, default=64)
    ap.add_argument("--distinct", type=int, default=300, help="distinct JPEG files the rows repeat")
    ap.add_argument("--jpeg-size", type=int, default=80)
    ap.add_argument("--old-max-rows", type=int, default=30_000,
                    help="largest manifest the old writer gets (100000 adds ~1.5 min on 2 cores)")
    ap.add_argument("--child", nargs=4, help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.child:
        kind, manifest, size, out = args.child
        return child(kind, Path(manifest), int(size), Path(out))
    with tempfile.TemporaryDirectory(prefix="bench_prepare.") as tmp:
        tmp = Path(tmp)
        (tmp / "faces").mkdir()
        faces = make_faces(tmp / "faces", args.distinct, args.jpeg_size)
        print(f"prepare at {args.size} px; {args.distinct} distinct {args.jpeg_size} px JPEGs repeated; "
              f"peak RSS = VmHWM of a fresh process (imports included)")
        print(f"| rows | array MiB | manifest MiB | streamed RSS MiB | s | old RSS MiB | s |")
        print(f"|---:|---:|---:|---:|---:|---:|---:|")
        for rows in args.rows:
            manifest = tmp / f"manifest_{rows}.csv"
            write_manifest(manifest, faces, rows)
            new_rss, new_s = measure("streamed", manifest, args.size, tmp / f"new_{rows}")
            old = ("-", "-")
            if rows <= args.old_max_rows:
                old_rss, old_s = measure("old", manifest, args.size, tmp / f"old_{rows}")
                same = all((tmp / f"new_{rows}" / n).read_bytes() == (tmp / f"old_{rows}" / n).read_bytes()
                           for n in ("images.npy", "index.csv"))
                assert same, f"{rows} rows: the streamed output differs from the old writer's"
                old = (f"{old_rss:.0f}", f"{old_s:.1f}")
                for name in ("images.npy", "index.csv"):
                    (tmp / f"old_{rows}" / name).unlink()
            array_mib = rows * args.size ** 2 * 3 / 2**20
            print(f"| {rows:,} | {array_mib:.0f} | {manifest.stat().st_size / 2**20:.0f} | {new_rss:.0f} | "
                  f"{new_s:.1f} | {old[0]} | {old[1]} |", flush=True)
            for name in ("images.npy", "index.csv"):
                (tmp / f"new_{rows}" / name).unlink()
            manifest.unlink()


if __name__ == "__main__":
    main()
