"""Leakage guard: link near-duplicate faces across (and within) sources so they share a split.

``deepfake_and_real_images`` was cut from OpenForensics faces, so the same face can arrive twice
under two source names. Every face gets a 64-bit perceptual hash (pHash: the signs of the 8x8
lowest DCT frequencies of a 32x32 grayscale resize, against their median), and faces whose hashes
differ in at most ``max_distance`` bits are linked; linked faces' groups are merged (union-find),
so the split stage keeps them on one side.

Finding the pairs uses multi-index hashing instead of comparing all pairs: split the 64 bits into
``max_distance + 1`` bands; two hashes within ``max_distance`` bits must agree exactly on at least
one band (pigeonhole), so only hashes sharing a band value are compared. On real faces this is a
few candidates per face instead of n. ``benchmarks/bench_dedup.py`` compares it with all pairs.

Only near-identical crops link: the same face cropped with a different margin or box hashes
differently, so run this on crops made the same way (the faces stage's output).
"""

from __future__ import annotations

import os
import warnings
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import cv2
import numpy as np
import pandas as pd

from ..io import read_image_rgb

HASH_BITS = 64
REPORT_COLUMNS = ["face_id_a", "face_id_b", "source_a", "source_b", "distance"]


def perceptual_hash(rgb: np.ndarray) -> int:
    """64-bit pHash of an RGB (or grayscale) uint8 image, as a Python int in [0, 2**64).

    Bit 63 is the DC term, then row-major through the 8x8 low-frequency DCT block; a bit is set
    where the coefficient exceeds the block's median. Robust to re-encoding, small shifts and
    resizing; two different faces differ in about half of the bits.
    """
    img = np.asarray(rgb)
    if img.ndim == 3:
        img = cv2.cvtColor(img[..., :3].astype(np.uint8), cv2.COLOR_RGB2GRAY)
    if img.ndim != 2 or min(img.shape) < 1:
        raise ValueError(f"perceptual_hash: expected an HxW or HxWx3 image, got shape {np.shape(rgb)}")
    small = cv2.resize(img.astype(np.float32), (32, 32), interpolation=cv2.INTER_AREA)
    low = cv2.dct(small)[:8, :8]
    bits = (low > np.median(low)).ravel()
    return int.from_bytes(np.packbits(bits).tobytes(), "big")


def hamming(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Bitwise Hamming distance between uint64 arrays (broadcasting)."""
    return np.bitwise_count(np.bitwise_xor(a, b)).astype(np.int64)


def _band_masks(max_distance: int) -> list[tuple[int, np.uint64]]:
    """(shift, mask) of ``max_distance + 1`` bands covering all 64 bits as evenly as possible."""
    n = max_distance + 1
    widths = [HASH_BITS // n + (1 if i < HASH_BITS % n else 0) for i in range(n)]
    out, shift = [], 0
    for w in widths:
        out.append((shift, np.uint64((1 << w) - 1)))
        shift += w
    return out


def near_duplicate_pairs(hashes: np.ndarray, max_distance: int = 4) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """All index pairs ``i < j`` with ``hamming(h[i], h[j]) <= max_distance``: (i, j, distance).

    Multi-index hashing over unique hash values; identical hashes are expanded afterwards. The
    result is sorted by (i, j) and equals :func:`naive_pairs` exactly.
    """
    if not 0 <= max_distance < HASH_BITS:
        raise ValueError(f"max_distance must be in [0, {HASH_BITS - 1}], got {max_distance}")
    hashes = np.ascontiguousarray(hashes, dtype=np.uint64)
    uniq, inverse = np.unique(hashes, return_inverse=True)
    ua, ub, ud = _unique_pairs(uniq, max_distance)
    return _expand(inverse.ravel(), len(uniq), ua, ub, ud)


def _unique_pairs(uniq: np.ndarray, max_distance: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Pairs of distinct hash values within ``max_distance`` (indices into ``uniq``, a < b)."""
    found = []
    n = len(uniq)
    for shift, mask in _band_masks(max_distance):
        key = (uniq >> np.uint64(shift)) & mask
        order = np.argsort(key, kind="stable")
        skey = key[order]
        # run_left[p]: how many later positions share p's key (within its bucket).
        boundaries = np.flatnonzero(np.diff(skey)) + 1
        starts = np.concatenate(([0], boundaries))
        ends = np.concatenate((boundaries, [n]))
        run_end = np.repeat(ends, ends - starts)
        run_left = run_end - np.arange(n) - 1
        active = np.flatnonzero(run_left > 0)
        offset = 1
        # Compare each position with the one `offset` further in its bucket; positions drop out
        # when their bucket is exhausted, so the work is the number of candidate pairs.
        while active.size:
            a, b = order[active], order[active + offset]
            d = hamming(uniq[a], uniq[b])
            keep = d <= max_distance
            if keep.any():
                lo, hi = np.minimum(a[keep], b[keep]), np.maximum(a[keep], b[keep])
                found.append((lo, hi, d[keep]))
            active = active[run_left[active] > offset]
            offset += 1
    if not found:
        empty = np.empty(0, dtype=np.int64)
        return empty, empty, empty
    lo = np.concatenate([f[0] for f in found]).astype(np.int64)
    hi = np.concatenate([f[1] for f in found]).astype(np.int64)
    d = np.concatenate([f[2] for f in found])
    _, first = np.unique(lo * n + hi, return_index=True)   # a pair may share several bands
    return lo[first], hi[first], d[first]


def _expand(inverse: np.ndarray, n_uniq: int, ua: np.ndarray, ub: np.ndarray, ud: np.ndarray):
    """Unique-value pairs -> row pairs, plus the pairs of rows with identical hashes."""
    order = np.argsort(inverse, kind="stable")
    counts = np.bincount(inverse, minlength=n_uniq)
    starts = np.concatenate(([0], np.cumsum(counts)[:-1]))
    rows_i, rows_j, dists = [], [], []
    single = (counts[ua] == 1) & (counts[ub] == 1)
    rows_i.append(order[starts[ua[single]]])
    rows_j.append(order[starts[ub[single]]])
    dists.append(ud[single])
    for a, b, d in zip(ua[~single], ub[~single], ud[~single]):
        ra = order[starts[a]:starts[a] + counts[a]]
        rb = order[starts[b]:starts[b] + counts[b]]
        ga, gb = np.meshgrid(ra, rb, indexing="ij")
        rows_i.append(ga.ravel())
        rows_j.append(gb.ravel())
        dists.append(np.full(ga.size, d))
    for u in np.flatnonzero(counts > 1):
        r = order[starts[u]:starts[u] + counts[u]]
        ti, tj = np.triu_indices(len(r), 1)
        rows_i.append(r[ti])
        rows_j.append(r[tj])
        dists.append(np.zeros(len(ti), dtype=np.int64))
    i = np.concatenate(rows_i).astype(np.int64)
    j = np.concatenate(rows_j).astype(np.int64)
    d = np.concatenate(dists).astype(np.int64)
    i, j = np.minimum(i, j), np.maximum(i, j)
    order = np.lexsort((j, i))
    return i[order], j[order], d[order]


def naive_pairs(hashes: np.ndarray, max_distance: int = 4) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The all-pairs reference (O(n^2), vectorised per row): same output as near_duplicate_pairs."""
    hashes = np.ascontiguousarray(hashes, dtype=np.uint64)
    out_i, out_j, out_d = [], [], []
    for i in range(len(hashes) - 1):
        d = hamming(hashes[i], hashes[i + 1:])
        hit = np.flatnonzero(d <= max_distance)
        if hit.size:
            out_i.append(np.full(hit.size, i))
            out_j.append(hit + i + 1)
            out_d.append(d[hit])
    if not out_i:
        empty = np.empty(0, dtype=np.int64)
        return empty, empty, empty
    return (np.concatenate(out_i).astype(np.int64), np.concatenate(out_j).astype(np.int64),
            np.concatenate(out_d).astype(np.int64))


def hash_images(paths: list[Path], workers: int | None = None) -> tuple[np.ndarray, np.ndarray]:
    """(uint64 hashes, readable mask) of image files; OpenCV decodes in parallel threads."""
    def one(path):
        try:
            return perceptual_hash(read_image_rgb(path))
        except (FileNotFoundError, ValueError):
            return None

    workers = workers or min(8, os.cpu_count() or 1)
    with ThreadPoolExecutor(max_workers=workers) as pool:
        values = list(pool.map(one, paths, chunksize=256))
    ok = np.array([v is not None for v in values], dtype=bool)
    hashes = np.array([v if v is not None else 0 for v in values], dtype=np.uint64)
    return hashes, ok


def link_duplicates(faces: pd.DataFrame, root: Path, max_distance: int = 4, *,
                    hashes: np.ndarray | None = None, workers: int | None = None
                    ) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Merge the groups of near-duplicate faces; return (faces with ``group`` rewritten, links).

    ``faces`` needs ``face_id``, ``path`` (relative to ``root``), ``source`` and ``group``. Faces
    whose hashes differ in at most ``max_distance`` bits are linked, across sources or within
    one; every group connected through links becomes one group, named after its
    lexicographically smallest member, so the output does not depend on row order. Other columns
    and the row order are kept. The report has one row per linked pair of faces
    (``face_id_a < face_id_b``): face ids, sources and the distance. Unreadable images are
    skipped with a warning (they keep their group). ``hashes`` (uint64 per row) skips decoding.
    """
    from scipy.sparse import coo_matrix
    from scipy.sparse.csgraph import connected_components

    missing = [c for c in ("face_id", "path", "source", "group") if c not in faces.columns]
    if missing:
        raise ValueError(f"link_duplicates: faces lacks column(s) {missing}")
    if hashes is None:
        hashes, ok = hash_images([Path(root) / p for p in faces["path"].astype(str)], workers)
        if not ok.all():
            warnings.warn(f"link_duplicates: {int((~ok).sum())} unreadable image(s) skipped, "
                          f"e.g. {faces['path'].iloc[int(np.flatnonzero(~ok)[0])]}", stacklevel=2)
    else:
        hashes = np.asarray(hashes, dtype=np.uint64)
        ok = np.ones(len(faces), dtype=bool)
    rows = np.flatnonzero(ok)
    pi, pj, pd_ = near_duplicate_pairs(hashes[rows], max_distance)
    pi, pj = rows[pi], rows[pj]

    codes, names = pd.factorize(faces["group"].astype(str), sort=True)
    n_groups = len(names)
    graph = coo_matrix((np.ones(len(pi), dtype=np.int8), (codes[pi], codes[pj])), shape=(n_groups, n_groups))
    _, component = connected_components(graph, directed=False)
    smallest = np.full(component.max() + 1 if n_groups else 0, n_groups, dtype=np.int64)
    np.minimum.at(smallest, component, np.arange(n_groups))   # codes are in name order
    out = faces.copy()
    out["group"] = np.asarray(names)[smallest[component[codes]]] if n_groups else out["group"]

    ids = faces["face_id"].astype(str).to_numpy()
    src = faces["source"].astype(str).to_numpy()
    swap = ids[pi] > ids[pj]
    a, b = np.where(swap, pj, pi), np.where(swap, pi, pj)
    report = pd.DataFrame({"face_id_a": ids[a], "face_id_b": ids[b], "source_a": src[a],
                           "source_b": src[b], "distance": pd_.astype(int)}, columns=REPORT_COLUMNS)
    report = report.sort_values(["face_id_a", "face_id_b"], kind="stable").reset_index(drop=True)
    return out, report
