"""Leakage guard: link faces that show the same source pixels so they share a split.

``deepfake_and_real_images`` was cut from OpenForensics faces, so the same face arrives twice
under two dataset names, cut with a different margin (about 1.8x the box there, 1.3x here),
shifted or clamped at the image border, resized twice and re-encoded as JPEG. A hash of the two
stored crops cannot link them: they show different amounts of context (on the demo the two
crops of one face differ in 22-34 of 64 pHash bits, more than most unrelated faces). What makes the guard work:

1. **Box-aligned views.** Where a face was cut from a known box in a known source image
   (``faces.csv``: ``src_path``, ``box_*``, ``img_*``), the guard re-cuts the source image around
   the box at a grid of margins (:data:`MARGINS`, 1.0-2.5x in 25 geometric steps of 3.9%) and
   three placements (:data:`PLACEMENTS`: a square shifted to stay inside the image, a square
   clamped at the border, the box itself scaled and clamped, not square). One of these views is
   cut like the other dataset's crop, whatever its margin was. Faces without a box (folder
   sets) are represented by their stored crop alone.
2. **Margin estimate per dataset pair.** Comparing every crop with 25 x 3 views of every boxed
   face would multiply the search by 75, so a sample of each dataset's crops (:data:`SAMPLE`
   faces, evenly spaced by face id) is searched against all views of each boxed dataset first;
   the margins its matches vote for (and their grid neighbours) are the only ones searched in
   full. A dataset cut with one margin costs 3 views per boxed face; mixed margins cost more.
3. **Candidates, then verification.** Candidates are crop/view pairs whose 64-bit pHash differ
   in at most ``max_distance`` bits, found by multi-index hashing (split the hash into
   ``max_distance + 1`` bands; a match shares at least one band exactly, so only bucket mates
   are compared: a few candidates per face instead of n, see ``benchmarks/bench_dedup.py``).
   Each crop is searched twice, whole and inset by 1/64 of its side (:data:`PROBES`): JPEG and
   resampling noise flip bits near the median, and a second, slightly different sample of the
   same pixels halves the twins lost at 4 bits (demo recall 0.955 -> 0.985). Crop/crop pairs
   (the same crop stored twice) are searched the same way. Each candidate is then verified by
   the normalised cross-correlation of the two 32x32 grey images, refined over margins a third
   of a grid step either side; a link needs ``ncc >= min_ncc`` (per mille). On the demo, true
   twins verify at 0.95-0.99 and the best unrelated view at 0.67-0.93.

Why not a network embedding (the MobileNetV2 weights ship offline): it would not tell a re-crop
of the same pixels from a similar face any better than aligned pixels do, it costs far more per
view, and float inference differs across machines. Why not all pairs: 150k crops against 150k
boxed faces times 75 views is 1.7e12 comparisons.

Determinism: every number that decides a link is an integer computed exactly. Grey levels are
``(77 R + 150 G + 29 B + 128) >> 8``; thumbnails are integer box means over integral images (no
OpenCV resampling); the pHash DCT uses a basis rounded to integers and runs in float64 on
integer values small enough (< 2**53) that every sum is exact; the median split compares
integers; NCC is computed with Python integers and floored to per mille. Images are decoded by
:func:`deepfake_detection.io.read_image_rgb` (libjpeg's integer IDCT).

Not caught: crops padded with a colour instead of shifted or clamped, flipped or rotated
copies, colour-graded copies whose grey structure changed, and two folder sets whose faces both
lack a box and were cut with different margins (only their identical crops link).
"""

from __future__ import annotations

import math
import os
import warnings
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from ..io import read_image_rgb

HASH_BITS = 64
THUMB = 32
MARGIN_MIN, MARGIN_MAX, MARGIN_STEPS = 1.0, 2.5, 25
MARGINS = tuple(MARGIN_MIN * (MARGIN_MAX / MARGIN_MIN) ** (k / (MARGIN_STEPS - 1)) for k in range(MARGIN_STEPS))
PLACEMENTS = ("square", "clamp", "box")
REFINE = (-1 / 3, 0.0, 1 / 3)           # verification margins, in grid steps around a candidate
PROBES = (1,)                           # crop insets (64ths of a side) searched too
SAMPLE = 256                            # crops per dataset used to estimate the margins
MIN_VOTES = 3                           # fewer sample matches than this: the pair is not searched
REPORT_COLUMNS = ["face_id_a", "face_id_b", "source_a", "source_b", "distance", "ncc", "view"]

# Integer DCT-II basis (8 lowest frequencies of 32 samples, scaled by 4096): products of grey
# levels (< 256) with it summed over 32 x 32 pixels stay below 2**53, so float64 is exact.
_DCT = np.round(4096 * np.cos(np.pi * np.outer(np.arange(8), 2 * np.arange(THUMB) + 1) / (2 * THUMB)))


# --------------------------------------------------------------------------- integer features


def grey(rgb: np.ndarray) -> np.ndarray:
    """uint8 luma of an RGB (or already grey) uint8 image, in integer arithmetic."""
    img = np.asarray(rgb)
    if img.ndim == 2:
        return img.astype(np.uint8)
    if img.ndim != 3 or img.shape[2] < 3:
        raise ValueError(f"grey: expected an HxW or HxWx3 image, got shape {img.shape}")
    c = img[..., :3].astype(np.int32)
    return ((77 * c[..., 0] + 150 * c[..., 1] + 29 * c[..., 2] + 128) >> 8).astype(np.uint8)


def integral(g: np.ndarray) -> np.ndarray:
    """Summed-area table with a zero first row and column (int64)."""
    ii = np.zeros((g.shape[0] + 1, g.shape[1] + 1), dtype=np.int64)
    ii[1:, 1:] = g.astype(np.int64).cumsum(0).cumsum(1)
    return ii


def region_thumbs(ii: np.ndarray, regions: np.ndarray, size: int = THUMB) -> np.ndarray:
    """``size`` x ``size`` uint8 box means of integer regions ``(x0, y0, x1, y1)`` of an image.

    Cell ``k`` spans pixels ``[x0 + k w // size, x0 + (k + 1) w // size)`` (at least one pixel,
    so regions smaller than ``size`` are sampled, not averaged); means round half up.
    """
    regions = np.asarray(regions, dtype=np.int64).reshape(-1, 4)
    x0, y0, x1, y1 = regions.T
    k = np.arange(size + 1)
    xs = x0[:, None] + (k * (x1 - x0)[:, None]) // size
    ys = y0[:, None] + (k * (y1 - y0)[:, None]) // size
    xa, ya = xs[:, :-1], ys[:, :-1]
    xb, yb = np.maximum(xs[:, 1:], xa + 1), np.maximum(ys[:, 1:], ya + 1)
    ya_, yb_, xa_, xb_ = ya[:, :, None], yb[:, :, None], xa[:, None, :], xb[:, None, :]
    s = ii[yb_, xb_] - ii[ya_, xb_] - ii[yb_, xa_] + ii[ya_, xa_]
    n = (yb - ya)[:, :, None] * (xb - xa)[:, None, :]
    return ((2 * s + n) // (2 * n)).astype(np.uint8)


def image_thumb(rgb: np.ndarray, size: int = THUMB) -> np.ndarray:
    """The whole image as a ``size`` x ``size`` grey thumbnail."""
    g = grey(rgb)
    if min(g.shape) < 1:
        raise ValueError(f"image_thumb: empty image of shape {g.shape}")
    return region_thumbs(integral(g), np.array([[0, 0, g.shape[1], g.shape[0]]]), size)[0]


def thumb_hashes(thumbs: np.ndarray) -> np.ndarray:
    """64-bit pHash of 32x32 grey thumbnails (uint64 per thumbnail).

    The 8x8 lowest frequencies of an integer DCT; a bit is set where a coefficient exceeds the
    median of the 64 (``2 c > s[31] + s[32]``, all integers). Bit 63 is the DC term, then
    row-major. Two unrelated faces differ in about half of the bits.
    """
    t = np.asarray(thumbs, dtype=np.float64).reshape(-1, THUMB, THUMB)
    if len(t) == 0:
        return np.empty(0, dtype=np.uint64)
    low = np.matmul(np.matmul(_DCT, t), _DCT.T).reshape(len(t), 64)
    srt = np.sort(low, axis=1)
    bits = 2 * low > (srt[:, 31] + srt[:, 32])[:, None]
    return np.packbits(bits, axis=1).view(">u8").ravel().astype(np.uint64)


def perceptual_hash(rgb: np.ndarray) -> int:
    """64-bit pHash of an RGB (or grey) uint8 image as a Python int in ``[0, 2**64)``."""
    return int(thumb_hashes(image_thumb(rgb)[None])[0])


def ncc_permille(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """floor(1000 * normalised cross-correlation) of paired thumbnails, exactly (int64 per pair).

    Negative correlations and flat images score 0.
    """
    a = np.asarray(a, dtype=np.int64).reshape(len(a), THUMB * THUMB if len(a) == 0 else -1)
    b = np.asarray(b, dtype=np.int64).reshape(len(b), THUMB * THUMB if len(b) == 0 else -1)
    n = a.shape[1]
    sa, sb = a.sum(1), b.sum(1)
    # n * sum(x y) fits int64 (1024 * 1024 * 65025); the products below need Python ints.
    cov, va, vb = n * (a * b).sum(1) - sa * sb, n * (a * a).sum(1) - sa * sa, n * (b * b).sum(1) - sb * sb
    out = np.zeros(len(a), dtype=np.int64)
    for i, (c, x, y) in enumerate(zip(cov.tolist(), va.tolist(), vb.tolist())):
        if c > 0 and x > 0 and y > 0:
            out[i] = math.isqrt(1_000_000 * c * c // (x * y))
    return out


# --------------------------------------------------------------------------- box-aligned views


def view_regions(box: np.ndarray, img: np.ndarray, margins, placements=PLACEMENTS) -> np.ndarray:
    """Integer regions ``(n_faces, len(margins), len(placements), 4)`` around face boxes.

    ``box`` is ``(n, 4)`` ``x, y, w, h`` and ``img`` ``(n, 2)`` width, height. ``square``: a
    square of side ``margin * max(w, h)`` (at most the image) shifted to stay inside the image;
    ``clamp``: the same square clamped at the border; ``box``: the box scaled by ``margin`` on
    each axis and clamped. Coordinates round half up; every region holds at least one pixel.
    """
    box = np.asarray(box, dtype=np.float64).reshape(-1, 4)
    img = np.asarray(img, dtype=np.float64).reshape(-1, 2)
    m = np.asarray(margins, dtype=np.float64)[None, :]
    x, y, w, h = (box[:, i:i + 1] for i in range(4))
    W, H = img[:, 0:1], img[:, 1:2]
    cx, cy = x + w / 2, y + h / 2
    side = np.minimum(np.maximum(w, h) * m, np.minimum(W, H))
    out = []
    for placement in placements:
        if placement == "square":
            x0 = np.clip(cx - side / 2, 0, W - side)
            y0 = np.clip(cy - side / 2, 0, H - side)
            r = (x0, y0, x0 + side, y0 + side)
        elif placement == "clamp":
            r = (np.maximum(cx - side / 2, 0), np.maximum(cy - side / 2, 0),
                 np.minimum(cx + side / 2, W), np.minimum(cy + side / 2, H))
        elif placement == "box":
            r = (np.maximum(cx - w * m / 2, 0), np.maximum(cy - h * m / 2, 0),
                 np.minimum(cx + w * m / 2, W), np.minimum(cy + h * m / 2, H))
        else:
            raise ValueError(f"view_regions: unknown placement {placement!r}; known: {PLACEMENTS}")
        out.append(np.stack([np.floor(v + 0.5) for v in r], axis=-1))
    reg = np.stack(out, axis=2).astype(np.int64)
    reg[..., 2] = np.maximum(reg[..., 2], reg[..., 0] + 1)
    reg[..., 3] = np.maximum(reg[..., 3], reg[..., 1] + 1)
    return reg


# --------------------------------------------------------------------------- pair search


def hamming(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Bitwise Hamming distance between uint64 arrays (broadcasting)."""
    return np.bitwise_count(np.bitwise_xor(a, b)).astype(np.int64)


def _band_masks(max_distance: int) -> list[tuple[np.uint64, np.uint64]]:
    """(shift, mask) of ``max_distance + 1`` bands covering all 64 bits as evenly as possible."""
    if not 0 <= max_distance < HASH_BITS:
        raise ValueError(f"max_distance must be in [0, {HASH_BITS - 1}], got {max_distance}")
    n = max_distance + 1
    widths = [HASH_BITS // n + (1 if i < HASH_BITS % n else 0) for i in range(n)]
    out, shift = [], 0
    for w in widths:
        out.append((np.uint64(shift), np.uint64((1 << w) - 1)))
        shift += w
    return out


def cross_pairs(queries: np.ndarray, base: np.ndarray, max_distance: int,
                chunk: int = 1 << 22) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """All ``(i, j, distance)`` with ``hamming(queries[i], base[j]) <= max_distance``.

    Multi-index hashing: for each band, the base is sorted by band value and every query is
    compared with the run of base entries sharing its value (work = candidates, not n * m).
    Sorted by (i, j); equals :func:`naive_cross_pairs` exactly.
    """
    q = np.ascontiguousarray(queries, dtype=np.uint64)
    b = np.ascontiguousarray(base, dtype=np.uint64)
    found = []
    for shift, mask in _band_masks(max_distance):
        kb = (b >> shift) & mask
        order = np.argsort(kb, kind="stable")
        skb = kb[order]
        kq = (q >> shift) & mask
        lo, hi = np.searchsorted(skb, kq, "left"), np.searchsorted(skb, kq, "right")
        count = hi - lo
        qi = np.flatnonzero(count)
        # expand in chunks so the candidate arrays stay bounded
        cum = np.cumsum(count[qi])
        start = 0
        while start < len(qi):
            stop = int(np.searchsorted(cum, (cum[start - 1] if start else 0) + chunk, "right"))
            stop = max(stop, start + 1)
            part = qi[start:stop]
            reps = count[part]
            ii = np.repeat(part, reps)
            first = np.repeat(lo[part] - np.concatenate(([0], np.cumsum(reps)[:-1])), reps)
            jj = order[first + np.arange(len(ii))]
            d = hamming(q[ii], b[jj])
            keep = d <= max_distance
            found.append((ii[keep], jj[keep], d[keep]))
            start = stop
    return _unique_sorted(found, len(b))


def naive_cross_pairs(queries: np.ndarray, base: np.ndarray, max_distance: int):
    """The all-pairs reference for :func:`cross_pairs` (O(n m), vectorised per query)."""
    q = np.ascontiguousarray(queries, dtype=np.uint64)
    b = np.ascontiguousarray(base, dtype=np.uint64)
    found = []
    for i in range(len(q)):
        d = hamming(q[i], b)
        hit = np.flatnonzero(d <= max_distance)
        found.append((np.full(hit.size, i), hit, d[hit]))
    return _unique_sorted(found, len(b))


def near_duplicate_pairs(hashes: np.ndarray, max_distance: int = 4):
    """All index pairs ``i < j`` of one set within ``max_distance`` bits: (i, j, distance)."""
    h = np.ascontiguousarray(hashes, dtype=np.uint64)
    i, j, d = cross_pairs(h, h, max_distance)
    keep = i < j
    return i[keep], j[keep], d[keep]


def naive_pairs(hashes: np.ndarray, max_distance: int = 4):
    """The all-pairs reference for :func:`near_duplicate_pairs`."""
    h = np.ascontiguousarray(hashes, dtype=np.uint64)
    found = []
    for i in range(len(h) - 1):
        d = hamming(h[i], h[i + 1:])
        hit = np.flatnonzero(d <= max_distance)
        found.append((np.full(hit.size, i), hit + i + 1, d[hit]))
    return _unique_sorted(found, len(h))


def _unique_sorted(found, n_base: int):
    """Concatenate (i, j, d) parts, drop repeats (a pair may share several bands), sort by (i, j)."""
    if not found:
        empty = np.empty(0, dtype=np.int64)
        return empty, empty, empty
    i = np.concatenate([f[0] for f in found]).astype(np.int64)
    j = np.concatenate([f[1] for f in found]).astype(np.int64)
    d = np.concatenate([f[2] for f in found]).astype(np.int64)
    _, first = np.unique(i * max(n_base, 1) + j, return_index=True)   # sorted by (i, j)
    return i[first], j[first], d[first]


# --------------------------------------------------------------------------- the guard


@dataclass
class _Views:
    """pHashes of the box-aligned views of the boxed faces (thumbnails are not kept)."""

    face: np.ndarray        # row of the face (int64)
    margin: np.ndarray      # index into MARGINS
    placement: np.ndarray   # index into PLACEMENTS
    hash: np.ndarray        # uint64


def _boxed(faces: pd.DataFrame) -> np.ndarray:
    """Rows whose crop came from a box strictly inside a known source image."""
    cols = ["box_x", "box_y", "box_w", "box_h", "img_w", "img_h"]
    if "src_path" not in faces.columns or any(c not in faces.columns for c in cols):
        return np.zeros(len(faces), dtype=bool)
    v = faces[cols].apply(pd.to_numeric, errors="coerce").to_numpy(dtype=np.float64)
    ok = np.isfinite(v).all(1) & (v[:, 2] > 0) & (v[:, 3] > 0) & (v[:, 4] > 0) & (v[:, 5] > 0)
    whole = (v[:, 2] >= v[:, 4]) & (v[:, 3] >= v[:, 5])
    return ok & ~whole & (faces["src_path"].astype(str) != "").to_numpy()


def _map_images(paths: list[str], fn, workers: int | None):
    """``fn(rgb)`` for each readable image path (None where unreadable), decoded in threads."""
    return _map_images_each(paths, lambda _path: fn, workers)


def _unique_views(reg: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(margin index, placement index, region) of the distinct regions of one face, in grid order."""
    m, p = np.meshgrid(np.arange(reg.shape[0]), np.arange(reg.shape[1]), indexing="ij")
    flat = reg.reshape(-1, 4)
    _, first = np.unique(flat, axis=0, return_index=True)
    first = np.sort(first)
    return m.ravel()[first], p.ravel()[first], flat[first]


def _view_hashes(faces: pd.DataFrame, rows: np.ndarray, workers: int | None) -> tuple[_Views, np.ndarray]:
    """Views at every margin and placement of the boxed ``rows``; also which rows were readable."""
    readable = np.zeros(len(faces), dtype=bool)
    if len(rows) == 0:
        e = np.empty(0, dtype=np.int64)
        return _Views(e, e, e, np.empty(0, dtype=np.uint64)), readable
    box = faces[["box_x", "box_y", "box_w", "box_h"]].to_numpy(dtype=np.float64)
    img = faces[["img_w", "img_h"]].to_numpy(dtype=np.float64)
    src = faces["src_path"].astype(str).to_numpy()
    by_src: dict[str, list[int]] = {}
    for r in rows:
        by_src.setdefault(src[r], []).append(int(r))
    paths = sorted(by_src)

    def per_image(path):
        def fn(rgb):
            ii = integral(grey(rgb))
            parts = []
            for r in by_src[path]:
                size = np.array([[rgb.shape[1], rgb.shape[0]]], dtype=np.float64)
                m, p, reg = _unique_views(view_regions(box[r:r + 1], size, MARGINS)[0])
                parts.append((np.full(len(m), r), m, p, thumb_hashes(region_thumbs(ii, reg))))
            return parts
        return fn

    results = _map_images_each(paths, per_image, workers)
    parts = [p for res in results if res is not None for p in res]
    for path, res in zip(paths, results):
        if res is not None:
            readable[by_src[path]] = True
    if not parts:
        e = np.empty(0, dtype=np.int64)
        return _Views(e, e, e, np.empty(0, dtype=np.uint64)), readable
    cat = [np.concatenate([p[k] for p in parts]) for k in range(4)]
    return _Views(cat[0].astype(np.int64), cat[1].astype(np.int64), cat[2].astype(np.int64),
                  cat[3].astype(np.uint64)), readable


def _map_images_each(paths: list[str], make_fn, workers: int | None):
    """Like :func:`_map_images` with a per-path function ``make_fn(path)(rgb)``."""
    def one(path):
        try:
            return make_fn(path)(read_image_rgb(path))
        except (FileNotFoundError, ValueError):
            return None

    workers = workers or min(8, os.cpu_count() or 1)
    with ThreadPoolExecutor(max_workers=workers) as pool:
        return list(pool.map(one, paths))


def _sample_rows(face_ids: np.ndarray, rows: np.ndarray, k: int = SAMPLE) -> np.ndarray:
    """``k`` rows evenly spaced in face-id order (all when fewer): independent of row order."""
    rows = rows[np.argsort(face_ids[rows], kind="stable")]
    if len(rows) <= k:
        return rows
    return rows[np.linspace(0, len(rows) - 1, k).round().astype(np.int64)]


def estimate_margins(q_hash: np.ndarray, q_group: np.ndarray, v_hash: np.ndarray, v_group: np.ndarray,
                     v_margin: np.ndarray, max_distance: int) -> list[int]:
    """Margin indices worth searching for one pair of datasets, from a sample of query crops.

    Each sampled crop votes for the margin of its closest view (within ``max_distance`` bits,
    another group; ties go to the smaller margin). Margins with at least ``MIN_VOTES`` and 5% of
    the votes are kept with their two grid neighbours; no margin when fewer than ``MIN_VOTES``
    crops matched at all.
    """
    qi, vj, d = cross_pairs(q_hash, v_hash, max_distance)
    keep = q_group[qi] != v_group[vj]
    qi, vj, d = qi[keep], vj[keep], d[keep]
    if len(qi) < 1:
        return []
    order = np.lexsort((v_margin[vj], d, qi))
    qi, vj = qi[order], vj[order]
    first = np.concatenate(([True], qi[1:] != qi[:-1]))
    votes = np.bincount(v_margin[vj[first]], minlength=len(MARGINS))
    total = int(votes.sum())
    if total < MIN_VOTES:
        return []
    strong = np.flatnonzero((votes >= MIN_VOTES) & (20 * votes >= total))
    return sorted({int(k) for s in strong for k in (s - 1, s, s + 1) if 0 <= k < len(MARGINS)})


def probe_thumbs(rgb: np.ndarray) -> np.ndarray:
    """Thumbnails of a crop: whole, then inset by each of :data:`PROBES` (64ths of its side)."""
    g = grey(rgb)
    h, w = g.shape
    reg = np.array([[(k * w) // 64, (k * h) // 64, w - (k * w) // 64, h - (k * h) // 64] for k in (0,) + PROBES])
    return region_thumbs(integral(g), reg)


def _crop_thumbs(faces: pd.DataFrame, root: Path, workers: int | None
                 ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(whole-crop thumbnails (n, 32, 32), probe hashes (n, 1 + len(PROBES)), readable mask)."""
    paths = [Path(root) / p for p in faces["path"].astype(str)]
    thumbs = _map_images([str(p) for p in paths], probe_thumbs, workers)
    ok = np.array([t is not None for t in thumbs], dtype=bool)
    out = np.zeros((len(faces), 1 + len(PROBES), THUMB, THUMB), dtype=np.uint8)
    for i in np.flatnonzero(ok):
        out[i] = thumbs[i]
    hashes = thumb_hashes(out.reshape(-1, THUMB, THUMB)).reshape(len(faces), -1)
    return out[:, 0], hashes, ok


def _verify_views(faces: pd.DataFrame, crop_thumbs: np.ndarray, q: np.ndarray, t: np.ndarray,
                  margin: np.ndarray, placement: np.ndarray, probe: np.ndarray, workers: int | None) -> np.ndarray:
    """Best NCC (per mille) of crop ``q`` against face ``t``'s view, refined around its margin.

    A view matched by an inset probe of the crop is compared with the whole crop at the margin
    the inset implies (``margin * 64 / (64 - 2 k)``).
    """
    insets = (0,) + PROBES
    box = faces[["box_x", "box_y", "box_w", "box_h"]].to_numpy(dtype=np.float64)
    src = faces["src_path"].astype(str).to_numpy()
    by_src: dict[str, list[int]] = {}
    for k, r in enumerate(t):
        by_src.setdefault(src[r], []).append(k)
    paths = sorted(by_src)
    step = math.log(MARGIN_MAX / MARGIN_MIN) / (MARGIN_STEPS - 1)

    def per_image(path):
        def fn(rgb):
            ii = integral(grey(rgb))
            size = np.array([[rgb.shape[1], rgb.shape[0]]], dtype=np.float64)
            scores = []
            for k in by_src[path]:
                base = MARGINS[margin[k]] * 64 / (64 - 2 * insets[probe[k]])
                ms = [base * math.exp(f * step) for f in REFINE]
                reg = view_regions(box[t[k]:t[k] + 1], size, ms, (PLACEMENTS[placement[k]],))[0, :, 0]
                views = region_thumbs(ii, reg)
                s = ncc_permille(np.repeat(crop_thumbs[q[k]][None], len(views), 0), views)
                scores.append((k, int(s.max())))
            return scores
        return fn

    out = np.zeros(len(q), dtype=np.int64)
    for res in _map_images_each(paths, per_image, workers):
        for k, s in res or []:
            out[k] = s
    return out


def find_links(faces: pd.DataFrame, root: Path, max_distance: int = 4, min_ncc: int = 930, *,
               workers: int | None = None) -> tuple[pd.DataFrame, dict]:
    """Verified duplicate links between faces of different groups, and search statistics.

    Returns the report (one row per linked pair, ``face_id_a < face_id_b``, see
    :data:`REPORT_COLUMNS`: ``distance`` in pHash bits, ``ncc`` per mille, ``view`` the
    box-aligned view that matched, e.g. ``square@1.84:b``, or ``crop`` for two stored crops)
    and a dict of counts (readable crops, boxed faces, views, candidates, margins searched).
    """
    missing = [c for c in ("face_id", "path", "source", "group") if c not in faces.columns]
    if missing:
        raise ValueError(f"link_duplicates: faces lacks column(s) {missing}")
    faces = faces.reset_index(drop=True)
    ids = faces["face_id"].astype(str).to_numpy()
    groups = faces["group"].astype(str).to_numpy()
    sources = faces["source"].astype(str).to_numpy()
    thumbs, probes, ok = _crop_thumbs(faces, root, workers)
    if not ok.all():
        warnings.warn(f"link_duplicates: {int((~ok).sum())} unreadable image(s) skipped, "
                      f"e.g. {faces['path'].iloc[int(np.flatnonzero(~ok)[0])]}", stacklevel=3)
    crop_hash = probes[:, 0]
    rows = np.flatnonzero(ok)
    stats = {"faces_readable": int(ok.sum()), "boxed_faces": 0, "views": 0, "margins_searched": {},
             "candidates": 0}
    links = []   # (row a, row b, distance, ncc, view)

    # 1. stored crop against stored crop (the same crop in two datasets)
    ci, cj, cd = near_duplicate_pairs(crop_hash[rows], max_distance)
    ci, cj = rows[ci], rows[cj]
    keep = groups[ci] != groups[cj]
    ci, cj, cd = ci[keep], cj[keep], cd[keep]
    cn = ncc_permille(thumbs[ci], thumbs[cj])
    stats["candidates"] += len(ci)
    for a, b, d, n in zip(ci, cj, cd, cn):
        if n >= min_ncc:
            links.append((int(a), int(b), int(d), int(n), "crop"))

    # 2. stored crop against box-aligned views of boxed faces, per pair of datasets
    boxed = _boxed(faces) & ok
    views, readable = _view_hashes(faces, np.flatnonzero(boxed), workers)
    stats.update(boxed_faces=int(readable.sum()), views=len(views.hash))
    v_src = sources[views.face]
    for target in sorted(set(v_src)):
        in_t = np.flatnonzero(v_src == target)
        for query in sorted(set(sources[rows])):
            q_rows = rows[sources[rows] == query]
            sample = _sample_rows(ids, q_rows)
            chosen = estimate_margins(probes[sample].ravel(), np.repeat(groups[sample], probes.shape[1]),
                                      views.hash[in_t],
                                      groups[views.face[in_t]], views.margin[in_t], max_distance)
            stats["margins_searched"][f"{query}->{target}"] = [round(MARGINS[k], 3) for k in chosen]
            if not chosen:
                continue
            sel = in_t[np.isin(views.margin[in_t], chosen)]
            qi, vj, d = cross_pairs(probes[q_rows].ravel(), views.hash[sel], max_distance)
            qr, pr, v = q_rows[qi // probes.shape[1]], qi % probes.shape[1], sel[vj]
            tr = views.face[v]
            keep = groups[qr] != groups[tr]
            qr, pr, v, tr, d = qr[keep], pr[keep], v[keep], tr[keep], d[keep]
            # several views of one face may match: keep the closest (then whole crop, smallest margin)
            order = np.lexsort((views.placement[v], views.margin[v], pr, d, tr, qr))
            qr, pr, v, tr, d = qr[order], pr[order], v[order], tr[order], d[order]
            first = np.concatenate(([True], (qr[1:] != qr[:-1]) | (tr[1:] != tr[:-1]))) if len(qr) else []
            qr, pr, v, tr, d = qr[first], pr[first], v[first], tr[first], d[first]
            stats["candidates"] += len(qr)
            n = _verify_views(faces, thumbs, qr, tr, views.margin[v], views.placement[v], pr, workers)
            for a, b, vv, dd, nn in zip(qr, tr, v, d, n):
                if nn >= min_ncc:
                    name = f"{PLACEMENTS[views.placement[vv]]}@{MARGINS[views.margin[vv]]:.2f}"
                    links.append((int(a), int(b), int(dd), int(nn), name))
    return _report(links, ids, sources), stats


def _report(links, ids, sources) -> pd.DataFrame:
    """One row per face pair (a < b by face id); of several links the highest NCC wins."""
    rows = []
    for q, t, d, n, view in links:
        a, b, side = (q, t, "b") if ids[q] < ids[t] else (t, q, "a")
        rows.append({"face_id_a": ids[a], "face_id_b": ids[b], "source_a": sources[a], "source_b": sources[b],
                     "distance": d, "ncc": n, "view": view if view == "crop" else f"{view}:{side}"})
    report = pd.DataFrame(rows, columns=REPORT_COLUMNS)
    report = report.sort_values(["face_id_a", "face_id_b", "ncc", "distance", "view"],
                                ascending=[True, True, False, True, True], kind="stable")
    report = report.drop_duplicates(["face_id_a", "face_id_b"]).reset_index(drop=True)
    return report.astype({"distance": int, "ncc": int})


def merge_groups(faces: pd.DataFrame, report: pd.DataFrame) -> pd.DataFrame:
    """``faces`` with ``group`` replaced by its linked component, named after its smallest group.

    Other columns and the row order are kept; the result does not depend on row order.
    """
    from scipy.sparse import coo_matrix
    from scipy.sparse.csgraph import connected_components

    codes, names = pd.factorize(faces["group"].astype(str), sort=True)
    n_groups = len(names)
    out = faces.copy()
    if not n_groups:
        return out
    code_of = dict(zip(faces["face_id"].astype(str), codes))
    a = np.array([code_of[f] for f in report["face_id_a"]], dtype=np.int64)
    b = np.array([code_of[f] for f in report["face_id_b"]], dtype=np.int64)
    graph = coo_matrix((np.ones(len(a), dtype=np.int8), (a, b)), shape=(n_groups, n_groups))
    _, component = connected_components(graph, directed=False)
    smallest = np.full(component.max() + 1, n_groups, dtype=np.int64)
    np.minimum.at(smallest, component, np.arange(n_groups))   # codes are in name order
    out["group"] = np.asarray(names)[smallest[component[codes]]]
    return out


def link_duplicates(faces: pd.DataFrame, root: Path, max_distance: int = 4, min_ncc: int = 930, *,
                    workers: int | None = None) -> tuple[pd.DataFrame, pd.DataFrame, dict]:
    """Merge the groups of duplicate faces: (faces with ``group`` rewritten, report, stats).

    ``faces`` needs ``face_id``, ``path`` (relative to ``root``), ``source`` and ``group``;
    with ``src_path``, ``box_*`` and ``img_*`` (``faces.csv``) boxed faces are also matched by
    their box-aligned views. Unreadable crops are skipped with a warning (they keep their group).
    """
    report, stats = find_links(faces, root, max_distance, min_ncc, workers=workers)
    return merge_groups(faces, report), report, stats
