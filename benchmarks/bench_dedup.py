"""Benchmark the near-duplicate pair search: multi-index hashing against all pairs.

    python benchmarks/bench_dedup.py                 # 5,000 hashes, max distance 4
    python benchmarks/bench_dedup.py --n 20000 --scale 300000

Hashes are random 64-bit values with planted neighbours (bit flips up to max_distance + 2) and
exact duplicates, like a real face set where a minority of faces has near copies. Both methods
must return the same pairs; the script prints both times and the speed ratio. ``--scale N``
also times the band search alone on N hashes and extrapolates the all-pairs time (it grows as
n^2), the size of a full OpenForensics + deepfake_and_real_images run.
"""

from __future__ import annotations

import argparse
import time

import numpy as np

from deepfake_detection.data.dedup import naive_pairs, near_duplicate_pairs


def make_hashes(n: int, max_distance: int, seed: int, near_fraction: float = 0.1) -> np.ndarray:
    rng = np.random.default_rng(seed)
    base = rng.integers(0, 2 ** 63, n, dtype=np.int64).astype(np.uint64) * np.uint64(2) + rng.integers(
        0, 2, n, dtype=np.int64).astype(np.uint64)
    k = int(n * near_fraction)
    picks = rng.choice(n, k, replace=False)
    near = [base[p] ^ np.uint64(sum(1 << int(f) for f in rng.choice(64, i % (max_distance + 3), replace=False)))
            for i, p in enumerate(picks)]
    hashes = np.concatenate([base[: n - k], np.array(near, dtype=np.uint64)])
    rng.shuffle(hashes)
    return hashes


def best_time(fn, repeat: int) -> tuple[float, tuple]:
    best, out = float("inf"), None
    for _ in range(repeat):
        start = time.perf_counter()
        out = fn()
        best = min(best, time.perf_counter() - start)
    return best, out


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--n", type=int, default=5000)
    ap.add_argument("--max-distance", type=int, default=4)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--scale", type=int, default=0, help="also time the band search on this many hashes")
    args = ap.parse_args(argv)

    hashes = make_hashes(args.n, args.max_distance, args.seed)
    t_naive, slow = best_time(lambda: naive_pairs(hashes, args.max_distance), args.repeat)
    t_fast, fast = best_time(lambda: near_duplicate_pairs(hashes, args.max_distance), args.repeat)
    same = all(np.array_equal(a, b) for a, b in zip(fast, slow))
    print(f"n={args.n} max_distance={args.max_distance} pairs={len(fast[0])} identical_results={same}")
    print(f"all pairs (numpy per row): {t_naive * 1000:9.1f} ms")
    print(f"band search (multi-index): {t_fast * 1000:9.1f} ms")
    print(f"speed ratio: {t_naive / t_fast:.1f}x")
    if not same:
        raise SystemExit("the two methods disagree")
    if args.scale:
        big = make_hashes(args.scale, args.max_distance, args.seed + 1)
        t_big, pairs = best_time(lambda: near_duplicate_pairs(big, args.max_distance), 1)
        t_naive_big = t_naive * (args.scale / args.n) ** 2
        print(f"n={args.scale}: band search {t_big:.2f} s ({len(pairs[0])} pairs); all pairs would take "
              f"about {t_naive_big:.0f} s (n^2 extrapolation), ratio about {t_naive_big / t_big:.0f}x")


if __name__ == "__main__":
    main()
