"""Benchmark the leakage guard: multi-index crop/view search against all pairs, and view cost.

    python benchmarks/bench_dedup.py                       # 2,000 crops x 24,000 views, distance 4
    python benchmarks/bench_dedup.py --scale 300000        # also the search at 300k faces

What the guard does per run (deepfake_detection/data/dedup.py): hash every face's crop, cut and
hash box-aligned views of every boxed face (25 margins x 3 placements once, for the margin
estimate), search the crops (each whole and inset: 2 hashes per crop) against the views at the
estimated margins (about 12 views per boxed face when one margin dominates), verify the
candidates by NCC. Both the view hashing and the
verification are linear in the faces; the search is what the all-pairs approach makes quadratic.

1. Search: random 64-bit hashes stand in for pHashes; every tenth query has a twin view planted
   at 0..max_distance+2 bits. Both methods must return the same pairs; the script prints both
   times and the speed ratio.
2. Views: synthetic 256 px scenes with 4 face boxes each; time per boxed face to cut and hash all
   75 grid views (integral image + integer box means + integer DCT), single thread.
3. ``--scale N``: N faces, half of them boxed (an OpenForensics + Kaggle-copy mix): times the
   band search of N/2 crops (2 probe hashes each) against N/2 * views-per-face views and extrapolates the all-pairs
   time (it grows as the product of the two counts), plus the linear view cost.
"""

from __future__ import annotations

import argparse
import time

import numpy as np

from deepfake_detection.data.dedup import (MARGINS, PLACEMENTS, PROBES, cross_pairs, grey, integral, naive_cross_pairs,
                                           region_thumbs, thumb_hashes, view_regions)


def make_hashes(n_queries: int, n_views: int, max_distance: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """(query hashes, view hashes): uniform random, a tenth of the queries with a planted twin."""
    rng = np.random.default_rng(seed)

    def rand(n):
        return rng.integers(0, 2 ** 63, n, dtype=np.int64).astype(np.uint64) * np.uint64(2) + rng.integers(
            0, 2, n, dtype=np.int64).astype(np.uint64)

    views, queries = rand(n_views), rand(n_queries)
    twins = rng.choice(n_queries, n_queries // 10, replace=False)
    targets = rng.choice(n_views, len(twins), replace=False)
    for k, (q, v) in enumerate(zip(twins, targets)):
        flips = rng.choice(64, k % (max_distance + 3), replace=False)
        queries[q] = views[v] ^ np.uint64(sum(1 << int(f) for f in flips))
    return queries, views


def best_time(fn, repeat: int) -> tuple[float, tuple]:
    best, out = float("inf"), None
    for _ in range(repeat):
        start = time.perf_counter()
        out = fn()
        best = min(best, time.perf_counter() - start)
    return best, out


def view_seconds_per_face(n_scenes: int, seed: int) -> float:
    """Seconds to cut and hash every grid view of one boxed face (scenes decoded already)."""
    rng = np.random.default_rng(seed)
    scenes = [rng.integers(0, 256, (256, 256, 3), dtype=np.uint8) for _ in range(n_scenes)]
    boxes = rng.uniform([0, 0, 40, 40], [200, 200, 88, 88], (n_scenes, 4, 4))
    start = time.perf_counter()
    for scene, bx in zip(scenes, boxes):
        ii = integral(grey(scene))
        reg = view_regions(bx, np.full((4, 2), 256), MARGINS)
        thumb_hashes(region_thumbs(ii, reg.reshape(-1, 4)))
    return (time.perf_counter() - start) / (4 * n_scenes)


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--queries", type=int, default=2000)
    ap.add_argument("--views-per-face", type=int, default=12, help="views searched per boxed face")
    ap.add_argument("--max-distance", type=int, default=4)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--scale", type=int, default=0, help="also time the band search for this many faces")
    args = ap.parse_args(argv)

    n_views = args.queries * args.views_per_face
    queries, views = make_hashes(args.queries, n_views, args.max_distance, args.seed)
    t_naive, slow = best_time(lambda: naive_cross_pairs(queries, views, args.max_distance), args.repeat)
    t_fast, fast = best_time(lambda: cross_pairs(queries, views, args.max_distance), args.repeat)
    same = all(np.array_equal(a, b) for a, b in zip(fast, slow))
    print(f"{args.queries} crops x {n_views} views, max_distance={args.max_distance}: pairs={len(fast[0])} "
          f"identical_results={same}")
    print(f"all pairs (numpy per crop):  {t_naive * 1000:9.1f} ms")
    print(f"band search (multi-index):   {t_fast * 1000:9.1f} ms")
    print(f"speed ratio: {t_naive / t_fast:.1f}x")
    if not same:
        raise SystemExit("the two methods disagree")
    per_face = view_seconds_per_face(40, args.seed)
    print(f"views: {len(MARGINS) * len(PLACEMENTS)} per boxed face cut and hashed in {per_face * 1e3:.2f} ms")
    if args.scale:
        half = args.scale // 2
        q, v = make_hashes(half * (1 + len(PROBES)), half * args.views_per_face, args.max_distance, args.seed + 1)
        t_big, pairs = best_time(lambda: cross_pairs(q, v, args.max_distance), 1)
        t_naive_big = t_naive * (len(q) / args.queries) * (len(v) / n_views)
        print(f"{args.scale} faces ({len(q)} crop hashes x {len(v)} views): band search {t_big:.1f} s "
              f"({len(pairs[0])} pairs); all pairs would take about {t_naive_big:.0f} s "
              f"(n x m extrapolation), ratio about {t_naive_big / t_big:.0f}x; "
              f"views {per_face * half:.0f} s single-threaded (linear)")


if __name__ == "__main__":
    main()
