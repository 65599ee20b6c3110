"""Metrics against scikit-learn (the oracle) and against hand-worked examples."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest
from sklearn import metrics as skm

from deepfake_detection.evaluation.metrics import (
    METRIC_KEYS,
    THRESHOLD_RULES,
    average_precision,
    binary_metrics,
    choose_threshold,
    confusion,
    eer,
    log_loss,
    roc_auc,
    roc_curve_points,
)


def _random_case(seed: int):
    """Random labels and scores; even seeds quantise scores to force many ties."""
    rng = np.random.default_rng(seed)
    n = int(rng.integers(20, 300))
    y = rng.integers(0, 2, n)
    y[:2] = [0, 1]                                  # both classes always present
    s = np.clip(rng.normal(0.35 + 0.3 * y, 0.2), 0.0, 1.0)
    if seed % 2 == 0:
        s = np.round(s, 1)
    return y, s


SEEDS = range(8)


@pytest.mark.parametrize("seed", SEEDS)
def test_ranking_metrics_match_sklearn(seed):
    y, s = _random_case(seed)
    assert roc_auc(y, s) == pytest.approx(skm.roc_auc_score(y, s), abs=1e-12)
    assert average_precision(y, s) == pytest.approx(skm.average_precision_score(y, s), abs=1e-12)
    assert log_loss(y, s) == pytest.approx(skm.log_loss(y, s), abs=1e-12)
    fpr, tpr, thr = roc_curve_points(y, s)
    sk_fpr, sk_tpr, sk_thr = skm.roc_curve(y, s, drop_intermediate=False)
    np.testing.assert_allclose(fpr, sk_fpr)
    np.testing.assert_allclose(tpr, sk_tpr)
    np.testing.assert_array_equal(thr[1:], sk_thr[1:])
    assert thr[0] == np.inf


@pytest.mark.parametrize("seed", SEEDS)
def test_threshold_metrics_match_sklearn(seed):
    y, s = _random_case(seed)
    for t in (0.5, float(np.median(s)), choose_threshold(y, s, "youden")):
        m = binary_metrics(y, s, t)
        pred = (s >= t).astype(int)
        tn, fp, fn, tp = skm.confusion_matrix(y, pred, labels=[0, 1]).ravel()
        assert (m["tn"], m["fp"], m["fn"], m["tp"]) == (tn, fp, fn, tp)
        assert confusion(y, pred) == {"tn": tn, "fp": fp, "fn": fn, "tp": tp}
        p, r, f, _ = skm.precision_recall_fscore_support(
            y, pred, average="binary", zero_division=0)
        assert m["accuracy"] == pytest.approx(skm.accuracy_score(y, pred), abs=1e-6)
        assert m["precision"] == pytest.approx(p, abs=1e-6)
        assert m["recall"] == pytest.approx(r, abs=1e-6)
        assert m["f1"] == pytest.approx(f, abs=1e-6)
        assert m["roc_auc"] == pytest.approx(skm.roc_auc_score(y, s), abs=1e-6)
        assert m["pr_auc"] == pytest.approx(skm.average_precision_score(y, s), abs=1e-6)
        assert m["log_loss"] == pytest.approx(skm.log_loss(y, s), abs=1e-6)
        half = (s >= 0.5).astype(int)
        assert m["accuracy_at_0.5"] == pytest.approx(skm.accuracy_score(y, half), abs=1e-6)
        assert m["f1_at_0.5"] == pytest.approx(skm.f1_score(y, half, zero_division=0), abs=1e-6)
        assert m["tp_at_0.5"] == int(np.sum(half & y))


@pytest.mark.parametrize("seed", SEEDS)
def test_eer_is_where_fpr_equals_fnr(seed):
    y, s = _random_case(seed)
    value, threshold = eer(y, s)
    fpr, tpr, thr = skm.roc_curve(y, s, drop_intermediate=False)
    fnr = 1 - tpr
    # The crossing lies between the two vertices around FPR = FNR, so it is bracketed.
    k = int(np.argmax(fpr >= fnr))
    lo, hi = sorted([fpr[k - 1], fpr[k]])
    assert lo - 1e-12 <= value <= hi + 1e-12
    lo, hi = sorted([fnr[k - 1], fnr[k]])
    assert lo - 1e-12 <= value <= hi + 1e-12
    assert threshold == thr[k]
    assert choose_threshold(y, s, "eer") == threshold


def test_hand_worked_four_samples():
    # Sorted by score: 0.8 fake, 0.6 real, 0.4 fake, 0.1 real.
    y, s = [0, 0, 1, 1], [0.1, 0.6, 0.4, 0.8]
    # Pairs (fake, real): (0.8>0.1) (0.8>0.6) (0.4>0.1) (0.4<0.6) -> 3/4.
    assert roc_auc(y, s) == 0.75
    # Fakes are found at ranks 1 and 3: AP = 1/2 * 1/1 + 1/2 * 2/3.
    assert average_precision(y, s) == pytest.approx(0.5 + 1 / 3)
    # ROC vertices (fpr, fnr): (0,1) (0,.5) (.5,.5) ... -> FPR = FNR = 0.5 exactly at 0.6.
    assert eer(y, s) == (0.5, 0.6)
    assert log_loss(y, s) == pytest.approx(
        -(math.log(0.9) + math.log(0.4) + math.log(0.4) + math.log(0.8)) / 4)


def test_eer_interpolates_between_vertices():
    # One fake at 0.5, reals at 0.9, 0.2, 0.1. Vertices (fpr, fnr): (0,1) (1/3,1) (1/3,0):
    # the crossing is on the vertical segment, at FPR = FNR = 1/3, threshold 0.5.
    value, threshold = eer([1, 0, 0, 0], [0.5, 0.9, 0.2, 0.1])
    assert value == pytest.approx(1 / 3)
    assert threshold == 0.5
    # All scores tied: one diagonal segment from (0,0) to (1,1), crossing at 0.5.
    assert eer([0, 1, 0, 1], [0.3] * 4) == (0.5, 0.3)
    # A diagonal segment crossing off its midpoint: fakes 0.9, 0.5; reals 0.5, 0.5, 0.1.
    # Vertices (fpr, tpr): (0,0) (0,1/2) (2/3,1) (1,1). FPR + TPR = 1 on the middle segment
    # at fraction f: 2f/3 + 1/2 + f/2 = 1 -> f = 3/7, FPR = 2/7.
    value, threshold = eer([1, 1, 0, 0, 0], [0.9, 0.5, 0.5, 0.5, 0.1])
    assert value == pytest.approx(2 / 7)
    assert threshold == 0.5


def test_perfect_and_inverted_separation():
    y = [0, 0, 1, 1]
    s = [0.1, 0.2, 0.7, 0.9]
    assert roc_auc(y, s) == 1.0
    assert average_precision(y, s) == 1.0
    assert eer(y, s) == (0.0, 0.7)
    m = binary_metrics(y, s, choose_threshold(y, s, "youden"))
    assert (m["accuracy"], m["f1"], m["eer"], m["threshold"]) == (1.0, 1.0, 0.0, 0.7)
    inverted = [0.9, 0.7, 0.2, 0.1]
    assert roc_auc(y, inverted) == 0.0
    assert eer(y, inverted)[0] == 1.0


def test_single_class_is_explicit_not_a_crash():
    for y in ([0, 0, 0], [1, 1, 1]):
        s = [0.2, 0.6, 0.9]
        assert roc_auc(y, s) is None
        assert average_precision(y, s) is None
        assert eer(y, s) == (None, None)
        with pytest.raises(ValueError, match="both"):
            roc_curve_points(y, s)
        m = binary_metrics(y, s, 0.5)
        assert (m["roc_auc"], m["pr_auc"], m["eer"]) == (None, None, None)
        assert m["log_loss"] == pytest.approx(skm.log_loss(y, s, labels=[0, 1]), abs=1e-6)
        json.dumps(m)                               # None -> null, still valid JSON
    m = binary_metrics([0, 0, 0], [0.2, 0.6, 0.9], 0.5)
    # No fakes: recall and f1 are 0 (zero_division=0), not NaN; two false positives.
    assert (m["precision"], m["recall"], m["f1"], m["fp"], m["tn"]) == (0.0, 0.0, 0.0, 2, 1)
    m = binary_metrics([1, 1, 1], [0.2, 0.6, 0.9], 0.95)
    # Nothing predicted fake: precision 0.0 rather than a division by zero.
    assert (m["precision"], m["recall"], m["accuracy"]) == (0.0, 0.0, 0.0)
    for rule in ("youden", "f1", "eer"):
        with pytest.warns(RuntimeWarning, match="one class"):
            assert choose_threshold([1, 1], [0.3, 0.8], rule) == 0.5


def test_threshold_rules_hand_worked():
    # Sorted: 0.9 F, 0.8 R, 0.7 F, 0.6 F, 0.3 R, 0.2 R (3 fakes, 3 reals).
    y = [1, 0, 1, 1, 0, 0]
    s = [0.9, 0.8, 0.7, 0.6, 0.3, 0.2]
    # t:      0.9   0.8   0.7   0.6   0.3   0.2
    # tp/fp:  1/0   1/1   2/1   3/1   3/2   3/3
    # TPR-FPR 1/3   0     1/3   2/3   1/3   0     -> youden 0.6
    # F1      2/4   2/5   4/6   6/7   6/8   6/9   -> f1 0.6
    assert choose_threshold(y, s, "youden") == 0.6
    assert choose_threshold(y, s, "f1") == 0.6
    # FPR - FNR: -2/3, -1/3, 0 at 0.7 -> eer threshold 0.7 with EER 1/3.
    assert choose_threshold(y, s, "eer") == 0.7
    assert eer(y, s)[0] == pytest.approx(1 / 3)
    assert choose_threshold(y, s, "fixed_0.5") == 0.5
    with pytest.raises(ValueError, match="unknown threshold rule"):
        choose_threshold(y, s, "best_on_test")
    assert set(THRESHOLD_RULES) == {"youden", "f1", "eer", "fixed_0.5"}


def test_threshold_ties_go_to_the_highest_threshold():
    # Youden 1/2 at both 0.8 and 0.4 (tp/fp 1/0 and 2/1): the higher one wins.
    y, s = [1, 0, 1, 0], [0.8, 0.6, 0.4, 0.2]
    assert choose_threshold(y, s, "youden") == 0.8
    # Sorted F R R F R: F1 = 2tp / (tp + fp + 2) is 2/3 at 0.8 (tp 1, fp 0) and at 0.4
    # (tp 2, fp 2), less elsewhere: again the higher one.
    y_f1, s_f1 = [1, 0, 0, 1, 0], [0.8, 0.6, 0.5, 0.4, 0.2]
    assert choose_threshold(y_f1, s_f1, "f1") == 0.8
    assert choose_threshold(y_f1[::-1], s_f1[::-1], "f1") == 0.8
    # Deterministic: the input order does not matter.
    assert choose_threshold(y[::-1], s[::-1], "youden") == 0.8


def test_binary_metrics_keys_rounding_and_json():
    y, s = _random_case(3)
    m = binary_metrics(y, s, 1 / 3)
    assert tuple(m) == METRIC_KEYS
    assert METRIC_KEYS[:3] == ("n", "n_real", "n_fake")
    for key in ("accuracy", "precision", "recall", "f1"):
        assert f"{key}_at_0.5" in METRIC_KEYS
    for key in ("tn", "fp", "fn", "tp"):
        assert f"{key}_at_0.5" in METRIC_KEYS
    assert m["threshold"] == 0.333333
    for key, value in m.items():
        if isinstance(value, float):
            assert value == round(value, 6), key
    for key in ("n", "n_real", "n_fake", "tn", "fp", "fn", "tp", "tp_at_0.5"):
        assert type(m[key]) is int
    assert m["n"] == m["n_real"] + m["n_fake"] == m["tn"] + m["fp"] + m["fn"] + m["tp"]
    assert json.loads(json.dumps(m)) == m


def test_prediction_rule_is_score_at_least_threshold():
    m = binary_metrics([0, 1], [0.5, 0.5], 0.5)
    assert (m["fp"], m["tp"], m["tp_at_0.5"]) == (1, 1, 1)


@pytest.mark.parametrize("y, s, match", [
    ([0, 1], [0.2], "length"),
    ([0, 2], [0.2, 0.3], "labels must be 0"),
    (["real", "fake"], [0.2, 0.3], "labels must be 0"),
    ([0, 1], [0.2, float("nan")], "finite"),
    ([0, 1], [0.2, float("inf")], "finite"),
    ([0, 1], [-0.1, 0.5], r"\[0, 1\]"),
    ([0, 1], [0.1, 1.5], r"\[0, 1\]"),
    ([[0, 1]], [[0.1, 0.5]], "1-D"),
    ([], [], "no samples"),
])
def test_invalid_input_raises(y, s, match):
    for fn in (roc_auc, average_precision, eer, log_loss):
        with pytest.raises(ValueError, match=match):
            fn(y, s)
    with pytest.raises(ValueError, match=match):
        binary_metrics(y, s, 0.5)
    with pytest.raises(ValueError, match=match):
        choose_threshold(y, s, "youden")


def test_invalid_threshold_and_eps():
    with pytest.raises(ValueError, match="threshold"):
        binary_metrics([0, 1], [0.2, 0.8], float("nan"))
    with pytest.raises(ValueError, match="threshold"):
        binary_metrics([0, 1], [0.2, 0.8], None)
    with pytest.raises(ValueError, match="eps"):
        log_loss([0, 1], [0.2, 0.8], eps=0.0)
    with pytest.raises(ValueError, match="length"):
        confusion([0, 1], [1])


def test_log_loss_clips_certain_mistakes():
    # A confident wrong answer costs -log(eps), finite, as in scikit-learn.
    assert log_loss([1, 0], [0.0, 1.0]) == pytest.approx(skm.log_loss([1, 0], [0.0, 1.0]))
    assert math.isfinite(log_loss([1], [0.0]))
    assert log_loss([1], [0.0], eps=1e-3) == pytest.approx(-math.log(1e-3))
