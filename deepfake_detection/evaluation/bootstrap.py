"""Group bootstrap: 95% intervals for the test metrics and a paired test between two variants.

Faces of one group (a scene, a video, an identity: the manifest's ``group`` column) are not
independent, so a resample draws *groups* with replacement, never single faces. A resample is a
vector of integer weights (how often each face's group was drawn), and every metric is computed
from integer weighted counts, so the only rounding is the final division: the same scores give
the same interval bytes on any machine. scikit-learn and scipy have no grouped or paired
bootstrap, hence this module.

Conventions (those of :mod:`.metrics`): fake is the positive class; a face is called fake when
``score >= threshold``; ROC-AUC counts a tie as one half (rank form, Mann-Whitney); the EER is
interpolated along the ROC exactly as :func:`.metrics.eer` does. A resample that holds one class
only leaves ROC-AUC and EER undefined (and F1, with no fake face): it is left out of their
intervals (never counted as 0.5 or 0).

Draws come from ``numpy.random.default_rng(seed)`` in blocks of :data:`CHUNK` resamples, so the
stream depends only on (seed, resamples, number of groups) and memory stays at CHUNK x faces.
"""

from __future__ import annotations

from typing import Iterator

import numpy as np

from .metrics import _check

CHUNK = 64             # resamples per block of draws (fixed: part of the definition of the stream)
LEVEL = 0.95           # interval coverage
CI_DECIMALS = 4        # an interval some 0.05 wide needs no more digits
CI_METRICS = ("accuracy", "f1", "roc_auc", "eer")


# --------------------------------------------------------------------------- resampling

def group_codes(groups, n: int | None = None) -> tuple[np.ndarray, int]:
    """Integer group index per face (0..G-1, groups in sorted order of their names) and G.

    Group names are compared as strings, so ``7`` and ``"7"`` are one group.
    """
    g = np.asarray(groups)
    if g.ndim != 1:
        raise ValueError(f"groups must be 1-D, got shape {g.shape}")
    if n is not None and g.size != n:
        raise ValueError(f"groups and scores differ in length: {g.size} vs {n}")
    if g.size == 0:
        raise ValueError("no samples: groups are empty")
    names, codes = np.unique(g.astype(str), return_inverse=True)
    return codes.astype(np.int64).reshape(-1), int(names.size)


def draw_groups(n_groups: int, resamples: int, seed: int) -> Iterator[np.ndarray]:
    """Blocks (at most CHUNK rows) of drawn group indices, one row of ``n_groups`` per resample."""
    if isinstance(resamples, bool) or not isinstance(resamples, (int, np.integer)) or resamples < 1:
        raise ValueError(f"resamples must be an integer >= 1, got {resamples!r}")
    if isinstance(seed, bool) or not isinstance(seed, (int, np.integer)) or seed < 0:
        raise ValueError(f"seed must be an integer >= 0, got {seed!r}")
    rng = np.random.default_rng(int(seed))
    for start in range(0, int(resamples), CHUNK):
        rows = min(CHUNK, int(resamples) - start)
        yield rng.integers(0, n_groups, size=(rows, n_groups), dtype=np.int64)


def face_weights(draws: np.ndarray, codes: np.ndarray, n_groups: int) -> np.ndarray:
    """(rows, faces) int64: how many times each face's group was drawn in each resample."""
    rows = draws.shape[0]
    flat = (draws + n_groups * np.arange(rows, dtype=np.int64)[:, None]).ravel()
    counts = np.bincount(flat, minlength=rows * n_groups).reshape(rows, n_groups)
    return counts[:, codes]


# --------------------------------------------------------------------------- weighted metrics

def _tie_blocks(s: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Ascending order of the scores and the start of each run of equal scores in it."""
    order = np.argsort(s, kind="mergesort")
    return order, np.r_[0, np.flatnonzero(np.diff(s[order])) + 1]


def _class_weights(w: np.ndarray, y: np.ndarray, order: np.ndarray, starts: np.ndarray):
    """Weighted fake and real counts per distinct score (ascending): two (rows, K) arrays."""
    ws, ys = w[:, order], y[order]
    fake = np.add.reduceat(ws * ys, starts, axis=1)
    real = np.add.reduceat(ws * (1 - ys), starts, axis=1)
    return fake, real


def weighted_roc_auc(w: np.ndarray, y: np.ndarray, s: np.ndarray) -> np.ndarray:
    """ROC-AUC of each weight row (rank form, ties one half); NaN where a class is absent."""
    order, starts = _tie_blocks(s)
    fake, real = _class_weights(w, y, order, starts)
    return _auc_from_blocks(fake, real)


def _auc_from_blocks(fake: np.ndarray, real: np.ndarray) -> np.ndarray:
    real_below = np.cumsum(real, axis=1) - real
    twice_num = np.sum(fake * (2 * real_below + real), axis=1)
    den = 2 * fake.sum(axis=1) * real.sum(axis=1)
    out = np.full(den.shape, np.nan)
    ok = den > 0
    out[ok] = twice_num[ok] / den[ok]
    return out


def _eer_from_blocks(fake: np.ndarray, real: np.ndarray) -> np.ndarray:
    # Thresholds from high to low, as in metrics.eer; vertex 0 is (0, 0).
    zero = np.zeros((fake.shape[0], 1), dtype=np.int64)
    tps = np.concatenate([zero, np.cumsum(fake[:, ::-1], axis=1)], axis=1)
    fps = np.concatenate([zero, np.cumsum(real[:, ::-1], axis=1)], axis=1)
    n_fake, n_real = tps[:, -1], fps[:, -1]
    out = np.full(n_fake.shape, np.nan)
    ok = (n_fake > 0) & (n_real > 0)
    if not ok.any():
        return out
    tps, fps, n_fake, n_real = tps[ok], fps[ok], n_fake[ok], n_real[ok]
    gap = fps * n_fake[:, None] + tps * n_real[:, None] - (n_real * n_fake)[:, None]
    k = np.argmax(gap >= 0, axis=1)          # >= 1: gap starts negative and ends positive
    rows = np.arange(k.size)
    g0, g1 = gap[rows, k - 1], gap[rows, k]
    f0, f1 = fps[rows, k - 1], fps[rows, k]
    frac = -g0 / (g1 - g0)
    out[ok] = (f0 + frac * (f1 - f0)) / n_real
    return out


def weighted_eer(w: np.ndarray, y: np.ndarray, s: np.ndarray) -> np.ndarray:
    """Equal error rate of each weight row (as :func:`.metrics.eer`); NaN where a class is absent."""
    order, starts = _tie_blocks(s)
    return _eer_from_blocks(*_class_weights(w, y, order, starts))


def weighted_rates(w: np.ndarray, y: np.ndarray, pred: np.ndarray) -> dict[str, np.ndarray]:
    """Accuracy and F1 of each weight row.

    F1 is 0 when there is no true positive (as in :mod:`.metrics`) but NaN when the row holds no
    fake face at all: recall is then undefined, and such a resample says nothing about F1.
    """
    y, pred = y.astype(np.int64), pred.astype(np.int64)
    tp = w @ (y * pred)
    fp = w @ ((1 - y) * pred)
    fn = w @ (y * (1 - pred))
    correct = w @ (y == pred).astype(np.int64)
    total = w.sum(axis=1)
    f1_den = 2 * tp + fp + fn
    return {
        "accuracy": correct / total,        # total >= 1: every resample draws at least one face
        "f1": np.where(tp + fn == 0, np.nan, np.where(tp > 0, 2 * tp / np.maximum(f1_den, 1), 0.0)),
    }


# --------------------------------------------------------------------------- intervals

def percentile_interval(values: np.ndarray, level: float = LEVEL,
                        decimals: int | None = CI_DECIMALS) -> tuple[float | None, float | None]:
    """Percentile interval (numpy's linear method) of the defined (non-NaN) values, rounded to
    ``decimals`` (None: not rounded); (None, None) when no value is defined."""
    v = np.asarray(values, dtype=np.float64)
    v = v[~np.isnan(v)]
    if v.size == 0:
        return None, None
    tail = 100.0 * (1.0 - level) / 2.0
    lo, hi = (float(x) for x in np.percentile(v, [tail, 100.0 - tail]))
    return (lo, hi) if decimals is None else (round(lo, decimals), round(hi, decimals))


def bootstrap_replicates(y_true, scores, groups, threshold: float, resamples: int,
                         seed: int) -> dict[str, np.ndarray]:
    """Each metric of :data:`CI_METRICS` on every group resample: ``{metric: (resamples,)}``."""
    y, s = _check(y_true, scores)
    codes, n_groups = group_codes(groups, y.size)
    pred = (s >= float(threshold)).astype(np.int64)
    order, starts = _tie_blocks(s)
    parts: dict[str, list[np.ndarray]] = {m: [] for m in CI_METRICS}
    for draws in draw_groups(n_groups, resamples, seed):
        w = face_weights(draws, codes, n_groups)
        fake, real = _class_weights(w, y, order, starts)
        parts["roc_auc"].append(_auc_from_blocks(fake, real))
        parts["eer"].append(_eer_from_blocks(fake, real))
        for name, values in weighted_rates(w, y, pred).items():
            parts[name].append(values)
    return {m: np.concatenate(v) for m, v in parts.items()}


def bootstrap_intervals(y_true, scores, groups, threshold: float, resamples: int = 1000,
                        seed: int = 0) -> dict:
    """Flat keys for the metrics JSON: ``<metric>_ci_low``/``_ci_high`` for accuracy, f1,
    roc_auc and eer (95% percentile intervals over group resamples), ``n_groups``,
    ``bootstrap_resamples`` and ``bootstrap_seed``."""
    reps = bootstrap_replicates(y_true, scores, groups, threshold, resamples, seed)
    out: dict = {"n_groups": group_codes(groups)[1], "bootstrap_resamples": int(resamples),
                 "bootstrap_seed": int(seed)}
    for metric in CI_METRICS:
        out[f"{metric}_ci_low"], out[f"{metric}_ci_high"] = percentile_interval(reps[metric])
    return out


CI_KEYS = ("n_groups", "bootstrap_resamples", "bootstrap_seed",
           *(f"{m}_ci_{side}" for m in CI_METRICS for side in ("low", "high")))


# --------------------------------------------------------------------------- paired test

def paired_auc_test(y_true, scores_a, scores_b, groups, resamples: int = 1000, seed: int = 0) -> dict:
    """Paired group bootstrap of ROC-AUC(a) - ROC-AUC(b) on the same faces.

    Both variants are scored on the *same* resampled groups. Returns ``diff`` (the observed
    difference), ``ci_low``/``ci_high`` (95% percentile interval of the resampled differences),
    ``p_value`` (two-sided: twice the smaller tail of resampled differences at or beyond zero,
    counted as (k + 1) / (B + 1) so it is never 0, capped at 1), ``significant`` (the interval
    excludes 0) and ``resamples_used`` (resamples with both classes). Differences are None when
    the test set holds one class only.
    """
    y, sa = _check(y_true, scores_a)
    _, sb = _check(y, scores_b)
    codes, n_groups = group_codes(groups, y.size)
    blocks_a, blocks_b = _tie_blocks(sa), _tie_blocks(sb)
    ones = np.ones((1, y.size), dtype=np.int64)
    observed = (_auc_from_blocks(*_class_weights(ones, y, *blocks_a))
                - _auc_from_blocks(*_class_weights(ones, y, *blocks_b)))[0]
    diffs = []
    for draws in draw_groups(n_groups, resamples, seed):
        w = face_weights(draws, codes, n_groups)
        diffs.append(_auc_from_blocks(*_class_weights(w, y, *blocks_a))
                     - _auc_from_blocks(*_class_weights(w, y, *blocks_b)))
    d = np.concatenate(diffs)
    d = d[~np.isnan(d)]
    if np.isnan(observed) or d.size == 0:
        return {"diff": None, "ci_low": None, "ci_high": None, "p_value": None,
                "significant": False, "resamples_used": int(d.size)}
    lo, hi = percentile_interval(d, decimals=None)
    tail = min(int(np.sum(d <= 0)), int(np.sum(d >= 0)))
    p = min(1.0, 2.0 * (tail + 1) / (d.size + 1))
    return {"diff": round(float(observed), 6), "ci_low": round(lo, CI_DECIMALS),
            "ci_high": round(hi, CI_DECIMALS), "p_value": round(p, CI_DECIMALS),
            "significant": bool(lo > 0 or hi < 0),
            "resamples_used": int(d.size)}
