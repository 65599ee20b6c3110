"""Binary detection metrics, validation thresholds and the flat metrics JSON body.

Conventions shared by every function here:

* fake is the positive class (label 1); a score is P(fake) in [0, 1];
* prediction rule: ``score >= threshold`` -> fake (1), otherwise real (0);
* curves sweep the distinct scores from high to low, so tied scores enter the curve together
  (one diagonal ROC segment), exactly as scikit-learn's ``roc_curve`` does;
* ROC-AUC, PR-AUC and EER need both classes: with one class only they are ``None`` (``null``
  in JSON), never a made-up 0.5; precision, recall and F1 whose denominator is zero are 0.0
  (scikit-learn's ``zero_division=0``).

Everything is plain numpy; scikit-learn is the oracle in ``tests/test_metrics.py``. Counts are
kept as integers as long as possible so ties (in scores and in rule values) compare exactly.
"""

from __future__ import annotations

import math
import warnings

import numpy as np

THRESHOLD_RULES = ("youden", "f1", "eer", "fixed_0.5")

_RATE_KEYS = ("accuracy", "precision", "recall", "f1")
_COUNT_KEYS = ("tn", "fp", "fn", "tp")

METRIC_KEYS = (
    "n", "n_real", "n_fake",
    *_RATE_KEYS,
    "roc_auc", "pr_auc", "eer", "log_loss", "threshold",
    *_COUNT_KEYS,
    *(f"{k}_at_0.5" for k in _RATE_KEYS + _COUNT_KEYS),
)

DECIMALS = 6


# --------------------------------------------------------------------------- validation

def _labels(y_true) -> np.ndarray:
    y = np.asarray(y_true)
    if y.ndim != 1:
        raise ValueError(f"labels must be 1-D, got shape {y.shape}")
    if y.dtype == bool:
        return y.astype(np.int64)
    if not np.issubdtype(y.dtype, np.number):
        raise ValueError(f"labels must be 0 (real) or 1 (fake), got dtype {y.dtype}")
    bad = ~np.isin(y, (0, 1))
    if bad.any():
        raise ValueError(f"labels must be 0 (real) or 1 (fake); found {y[bad][:5].tolist()}")
    return y.astype(np.int64)


def _scores(scores) -> np.ndarray:
    s = np.asarray(scores)
    if s.ndim != 1:
        raise ValueError(f"scores must be 1-D, got shape {s.shape}")
    if s.dtype == bool or not np.issubdtype(s.dtype, np.number):
        raise ValueError(f"scores must be numbers (P(fake)), got dtype {s.dtype}")
    s = s.astype(np.float64)
    if not np.isfinite(s).all():
        raise ValueError("scores must be finite (found NaN or inf)")
    if s.size and (s.min() < 0.0 or s.max() > 1.0):
        raise ValueError(f"scores must be probabilities in [0, 1]; found range "
                         f"[{s.min():.6g}, {s.max():.6g}]")
    return s


def _check(y_true, scores) -> tuple[np.ndarray, np.ndarray]:
    y, s = _labels(y_true), _scores(scores)
    if y.size != s.size:
        raise ValueError(f"labels and scores differ in length: {y.size} vs {s.size}")
    if y.size == 0:
        raise ValueError("no samples: labels and scores are empty")
    return y, s


def _both_classes(y: np.ndarray) -> bool:
    n_fake = int(y.sum())
    return 0 < n_fake < y.size


# --------------------------------------------------------------------------- counts

def confusion(y_true, y_pred) -> dict[str, int]:
    """Confusion counts ``{tn, fp, fn, tp}`` of hard 0/1 predictions (fake = positive)."""
    y, p = _labels(y_true), _labels(y_pred)
    if y.size != p.size:
        raise ValueError(f"labels and predictions differ in length: {y.size} vs {p.size}")
    tp = int(np.sum((y == 1) & (p == 1)))
    fp = int(np.sum((y == 0) & (p == 1)))
    fn = int(np.sum((y == 1) & (p == 0)))
    return {"tn": int(y.size - tp - fp - fn), "fp": fp, "fn": fn, "tp": tp}


def _curve_counts(y: np.ndarray, s: np.ndarray):
    """(fps, tps, thresholds) at each distinct score, from the highest score down.

    ``tps[k]``/``fps[k]`` count the positives/negatives with ``score >= thresholds[k]``.
    """
    order = np.argsort(-s, kind="mergesort")
    s_sorted, y_sorted = s[order], y[order]
    last_of_tie = np.r_[np.flatnonzero(np.diff(s_sorted)), y.size - 1]
    tps = np.cumsum(y_sorted)[last_of_tie]
    fps = last_of_tie + 1 - tps
    return fps.astype(np.int64), tps.astype(np.int64), s_sorted[last_of_tie]


def _rates(counts: dict[str, int]) -> dict[str, float]:
    tn, fp, fn, tp = (counts[k] for k in _COUNT_KEYS)
    n = tn + fp + fn + tp
    return {
        "accuracy": (tp + tn) / n if n else 0.0,
        "precision": tp / (tp + fp) if tp + fp else 0.0,
        "recall": tp / (tp + fn) if tp + fn else 0.0,
        "f1": 2 * tp / (2 * tp + fp + fn) if tp else 0.0,
    }


# --------------------------------------------------------------------------- curves

def roc_curve_points(y_true, scores) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """ROC curve as ``(fpr, tpr, thresholds)``, thresholds decreasing.

    The first point is (0, 0) with threshold ``+inf`` (nothing called fake), as in
    scikit-learn; then one point per distinct score, ending at (1, 1). No points are dropped.
    Raises ValueError when only one class is present (a rate would divide by zero).
    """
    y, s = _check(y_true, scores)
    if not _both_classes(y):
        raise ValueError("ROC curve needs both real (0) and fake (1) labels")
    fps, tps, thr = _curve_counts(y, s)
    n_fake = int(y.sum())
    n_real = y.size - n_fake
    return (np.r_[0.0, fps / n_real], np.r_[0.0, tps / n_fake], np.r_[np.inf, thr])


def roc_auc(y_true, scores) -> float | None:
    """Area under the ROC curve (trapezoids; a tie counts one half). None with one class."""
    y, s = _check(y_true, scores)
    if not _both_classes(y):
        return None
    fps, tps, _ = _curve_counts(y, s)
    fps, tps = np.r_[0, fps], np.r_[0, tps]
    n_fake = int(y.sum())
    n_real = y.size - n_fake
    # Twice the area in integer units, so the only rounding is the final division.
    twice_area = int(np.sum(np.diff(fps) * (tps[1:] + tps[:-1])))
    return twice_area / (2 * n_real * n_fake)


def average_precision(y_true, scores) -> float | None:
    """PR-AUC as average precision: sum over thresholds of (R_k - R_{k-1}) * P_k.

    Same step-wise definition as scikit-learn's ``average_precision_score`` (no interpolation).
    None with one class.
    """
    y, s = _check(y_true, scores)
    if not _both_classes(y):
        return None
    fps, tps, _ = _curve_counts(y, s)
    precision = tps / (tps + fps)
    return float(np.sum(np.diff(np.r_[0, tps]) * precision) / tps[-1])


def eer(y_true, scores) -> tuple[float | None, float | None]:
    """Equal error rate and its threshold: ``(eer, threshold)``; ``(None, None)`` with one class.

    Along the ROC curve (thresholds decreasing) FPR - FNR rises from -1 to +1. The EER is
    where it crosses zero, interpolated linearly between the two ROC vertices around the
    crossing (so a run of tied scores, one diagonal segment, is handled like any other).
    The threshold is that of the first vertex where FPR >= FNR: the highest score threshold
    whose false-positive rate has reached its false-negative rate. It is always one of the
    given scores, and ``score >= threshold`` reproduces that vertex's counts.
    """
    y, s = _check(y_true, scores)
    if not _both_classes(y):
        return None, None
    fps, tps, thr = _curve_counts(y, s)
    fps, tps = np.r_[0, fps], np.r_[0, tps]
    n_fake = int(y.sum())
    n_real = y.size - n_fake
    # (FPR - FNR) * n_real * n_fake, exact in integers; -n_real*n_fake at the start.
    gap = fps * n_fake + tps * n_real - n_real * n_fake
    k = int(np.argmax(gap >= 0))            # k >= 1: gap[0] < 0 and gap[-1] > 0
    frac = -gap[k - 1] / (gap[k] - gap[k - 1])
    fpr = (fps[k - 1] + frac * (fps[k] - fps[k - 1])) / n_real
    return float(fpr), float(thr[k - 1])   # thr has no +inf entry: vertex k is thr[k - 1]


def log_loss(y_true, scores, eps: float = float(np.finfo(np.float64).eps)) -> float:
    """Mean binary cross-entropy (natural log) of P(fake), scores clipped to [eps, 1 - eps].

    The default eps is float64 machine precision, as in scikit-learn 1.9. Defined with one
    class too.
    """
    y, s = _check(y_true, scores)
    if not 0.0 < eps < 0.5:
        raise ValueError(f"eps must be in (0, 0.5), got {eps}")
    p = np.clip(s, eps, 1.0 - eps)
    return float(-np.mean(np.where(y == 1, np.log(p), np.log1p(-p))))


# --------------------------------------------------------------------------- thresholds

def choose_threshold(y_val, s_val, rule: str) -> float:
    """Pick a decision threshold on VALIDATION data (never a test set).

    Rules: ``youden`` (max TPR - FPR), ``f1`` (max F1), ``eer`` (threshold of :func:`eer`),
    ``fixed_0.5``. Candidates are the distinct validation scores (the ROC vertices), so the
    result is always one of them and ``score >= threshold`` reproduces the optimum on the
    validation set. Ties in the rule's value are compared exactly (integer arithmetic) and
    broken towards the highest threshold (fewest samples called fake). When validation data
    hold one class only, the data-driven rules cannot be evaluated: they return 0.5 and
    emit a RuntimeWarning saying so.
    """
    if rule not in THRESHOLD_RULES:
        raise ValueError(f"unknown threshold rule {rule!r}; choose one of {list(THRESHOLD_RULES)}")
    y, s = _check(y_val, s_val)
    if rule == "fixed_0.5":
        return 0.5
    if not _both_classes(y):
        warnings.warn(f"threshold rule {rule!r}: validation data hold one class only "
                      f"({y.size} samples of label {int(y[0])}); using 0.5", RuntimeWarning,
                      stacklevel=2)
        return 0.5
    if rule == "eer":
        return eer(y, s)[1]
    fps, tps, thr = _curve_counts(y, s)
    n_fake = int(y.sum())
    n_real = y.size - n_fake
    if rule == "youden":
        # (TPR - FPR) * n_real * n_fake; exact integers.
        value = tps * n_real - fps * n_fake
        best = int(np.argmax(value))        # first maximum = highest threshold
    else:
        # F1 = 2 tp / (tp + fp + n_fake); compare a/b > c/d as a*d > c*b in Python ints.
        best, best_num, best_den = 0, 0, 1
        for k, (tp, fp) in enumerate(zip(tps.tolist(), fps.tolist())):
            num, den = 2 * tp, tp + fp + n_fake
            if num * best_den > best_num * den:
                best, best_num, best_den = k, num, den
    return float(thr[best])


# --------------------------------------------------------------------------- the JSON body

def _round(value):
    if value is None or isinstance(value, int):
        return value
    return round(float(value), DECIMALS)


def binary_metrics(y_true, scores, threshold: float) -> dict:
    """The flat metrics JSON body (keys :data:`METRIC_KEYS`, in that order).

    ``threshold`` is the one chosen on validation data; accuracy/precision/recall/f1 and the
    confusion counts use ``score >= threshold`` and are repeated at 0.5 under ``*_at_0.5``.
    ``roc_auc``, ``pr_auc`` and ``eer`` are None with one class. Floats are rounded to 6
    decimals, counts are ints. Raises ValueError on invalid input or an empty set.
    """
    y, s = _check(y_true, scores)
    if isinstance(threshold, bool) or not isinstance(threshold, (int, float, np.number)) \
            or not math.isfinite(float(threshold)):
        raise ValueError(f"threshold must be a finite number, got {threshold!r}")
    threshold = float(threshold)
    n_fake = int(y.sum())
    out: dict = {"n": int(y.size), "n_real": int(y.size - n_fake), "n_fake": n_fake}
    at_t = confusion(y, (s >= threshold).astype(np.int64))
    at_half = confusion(y, (s >= 0.5).astype(np.int64))
    out.update(_rates(at_t))
    out.update({
        "roc_auc": roc_auc(y, s),
        "pr_auc": average_precision(y, s),
        "eer": eer(y, s)[0],
        "log_loss": log_loss(y, s),
        "threshold": threshold,
    })
    out.update(at_t)
    out.update({f"{k}_at_0.5": v for k, v in {**_rates(at_half), **at_half}.items()})
    assert tuple(out) == METRIC_KEYS
    return {k: _round(v) for k, v in out.items()}
