"""Group bootstrap: hand-worked weighted metrics, a loop reference, and why groups matter."""

from __future__ import annotations

import json
import time

import numpy as np
import pytest

from deepfake_detection.evaluation import metrics as M
from deepfake_detection.evaluation.bootstrap import (
    CI_KEYS,
    bootstrap_intervals,
    bootstrap_replicates,
    draw_groups,
    face_weights,
    group_codes,
    paired_auc_test,
    percentile_interval,
    weighted_eer,
    weighted_rates,
    weighted_roc_auc,
)

Y = np.array([0, 0, 1, 1])
S = np.array([0.1, 0.6, 0.4, 0.8])
W = np.array([[1, 1, 1, 1],     # the data as they are
              [2, 0, 1, 1],     # reals 0.1, 0.1; fakes 0.4, 0.8: separated
              [0, 1, 1, 0],     # real 0.6, fake 0.4: inverted
              [1, 1, 0, 2],     # reals 0.1, 0.6; fakes 0.8, 0.8
              [3, 0, 0, 0]])    # reals only


def test_weighted_metrics_hand_worked():
    # AUC row 0: fake 0.4 beats 0.1 not 0.6, fake 0.8 beats both -> 3/4.
    np.testing.assert_array_equal(weighted_roc_auc(W, Y, S), [0.75, 1.0, 0.0, 1.0, np.nan])
    # EER row 0: vertices (fp, tp) 0.8 (0,1), 0.6 (1,1): FPR = FNR = 0.5 there.
    np.testing.assert_array_equal(weighted_eer(W, Y, S), [0.5, 0.0, 1.0, 0.0, np.nan])
    rates = weighted_rates(W, Y, (S >= 0.5).astype(int))      # pred [0, 1, 0, 1]
    np.testing.assert_array_equal(rates["accuracy"], [2 / 4, 3 / 4, 0 / 2, 3 / 4, 3 / 3])
    # f1 row 0: tp 1, fp 1, fn 1 -> 2/4; row 1: tp 1, fn 1 -> 2/3; row 2: no tp -> 0;
    # row 4 holds no fake face: recall and F1 are undefined.
    np.testing.assert_array_equal(rates["f1"], [0.5, 2 / 3, 0.0, 4 / 5, np.nan])


def test_ties_count_one_half():
    y, s = np.array([0, 1, 0, 1]), np.array([0.5, 0.5, 0.5, 0.9])
    w = np.array([[1, 1, 1, 1], [1, 2, 0, 0]])
    # row 0: fake 0.5 ties both reals (2 x 1/2), fake 0.9 beats both -> 3/4; row 1: ties only.
    np.testing.assert_array_equal(weighted_roc_auc(w, y, s), [0.75, 0.5])


def test_face_weights_count_drawn_groups():
    codes, n_groups = group_codes(["b", "b", "c", "a"])          # a -> 0, b -> 1, c -> 2
    np.testing.assert_array_equal(codes, [1, 1, 2, 0])
    assert n_groups == 3
    draws = np.array([[0, 0, 2], [1, 2, 2]])
    np.testing.assert_array_equal(face_weights(draws, codes, 3), [[0, 0, 1, 2], [1, 1, 2, 0]])
    assert group_codes([7, "7", 8])[1] == 2                      # names compare as strings


def test_draws_are_seeded_and_chunked():
    blocks = list(draw_groups(5, 150, 3))
    assert [b.shape for b in blocks] == [(64, 5), (64, 5), (22, 5)]
    again = np.concatenate(list(draw_groups(5, 150, 3)))
    np.testing.assert_array_equal(np.concatenate(blocks), again)
    np.testing.assert_array_equal(again, np.random.default_rng(3).integers(0, 5, (150, 5)))
    with pytest.raises(ValueError, match="resamples must be an integer >= 1, got 0"):
        next(draw_groups(5, 0, 3))
    with pytest.raises(ValueError, match="seed must be an integer >= 0"):
        next(draw_groups(5, 10, -1))


def test_percentile_interval():
    assert percentile_interval(np.arange(101.0)) == (2.5, 97.5)
    assert percentile_interval(np.r_[np.arange(101.0), np.nan, np.nan]) == (2.5, 97.5)
    assert percentile_interval(np.array([np.nan])) == (None, None)
    assert percentile_interval(np.array([0.123456, 0.123456])) == (0.1235, 0.1235)


def test_known_answers_with_one_group_per_face():
    # Perfectly separated faces, each its own group: every resample that holds both classes
    # has AUC 1 and EER 0; accuracy at 0.5 is 1 in every resample and F1 in every one that
    # holds a fake face.
    y = np.array([0, 0, 0, 1, 1, 1])
    s = np.array([0.1, 0.2, 0.3, 0.7, 0.8, 0.9])
    out = bootstrap_intervals(y, s, np.arange(6), 0.5, resamples=200, seed=1)
    assert out == {"n_groups": 6, "bootstrap_resamples": 200, "bootstrap_seed": 1,
                   "accuracy_ci_low": 1.0, "accuracy_ci_high": 1.0, "f1_ci_low": 1.0,
                   "f1_ci_high": 1.0, "roc_auc_ci_low": 1.0, "roc_auc_ci_high": 1.0,
                   "eer_ci_low": 0.0, "eer_ci_high": 0.0}
    assert tuple(sorted(out)) == tuple(sorted(CI_KEYS))
    # One group holding everything: every resample is the data itself.
    s2 = np.array([0.1, 0.6, 0.3, 0.7, 0.4, 0.9])
    one = bootstrap_intervals(y, s2, ["g"] * 6, 0.5, resamples=50, seed=0)
    assert (one["roc_auc_ci_low"], one["roc_auc_ci_high"]) == (round(M.roc_auc(y, s2), 4),) * 2
    assert (one["eer_ci_low"], one["eer_ci_high"]) == (round(M.eer(y, s2)[0], 4),) * 2
    assert one["accuracy_ci_low"] == one["accuracy_ci_high"] == round(4 / 6, 4)


def _case(seed, n=240, n_groups=25):
    rng = np.random.default_rng(seed)
    groups = rng.integers(0, n_groups, n)
    y = rng.integers(0, 2, n)
    s = np.clip(rng.normal(0.4 + 0.2 * y, 0.2), 0, 1).round(2)     # rounded: many ties
    return y, s, groups


def _loop_replicates(y, s, groups, threshold, resamples, seed):
    """The straightforward reference: expand each resample into its faces, use metrics.py."""
    codes, n_groups = group_codes(groups)
    members = [np.flatnonzero(codes == g) for g in range(n_groups)]
    out = {"roc_auc": [], "eer": [], "accuracy": [], "f1": []}
    for block in draw_groups(n_groups, resamples, seed):
        for row in block:
            idx = np.concatenate([members[g] for g in row])
            yy, ss = y[idx], s[idx]
            auc = M.roc_auc(yy, ss)
            out["roc_auc"].append(np.nan if auc is None else auc)
            e = M.eer(yy, ss)[0]
            out["eer"].append(np.nan if e is None else e)
            c = M.confusion(yy, (ss >= threshold).astype(int))
            out["accuracy"].append((c["tp"] + c["tn"]) / yy.size)
            f1 = 2 * c["tp"] / (2 * c["tp"] + c["fp"] + c["fn"]) if c["tp"] else 0.0
            out["f1"].append(np.nan if c["tp"] + c["fn"] == 0 else f1)
    return {k: np.array(v) for k, v in out.items()}


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_vectorised_equals_loop_reference(seed):
    y, s, groups = _case(seed)
    fast = bootstrap_replicates(y, s, groups, 0.5, 150, seed)
    slow = _loop_replicates(y, s, groups, 0.5, 150, seed)
    for name in slow:
        np.testing.assert_array_equal(fast[name], slow[name], err_msg=name)   # identical numbers
    out = bootstrap_intervals(y, s, groups, 0.5, 150, seed)
    for name, values in slow.items():
        assert (out[f"{name}_ci_low"], out[f"{name}_ci_high"]) == percentile_interval(values)


def test_paired_test_equals_loop_reference():
    y, s, groups = _case(5)
    rng = np.random.default_rng(9)
    s_b = np.clip(s + rng.normal(0, 0.15, s.size), 0, 1).round(2)
    out = paired_auc_test(y, s, s_b, groups, resamples=150, seed=4)
    codes, n_groups = group_codes(groups)
    members = [np.flatnonzero(codes == g) for g in range(n_groups)]
    diffs = []
    for block in draw_groups(n_groups, 150, 4):
        for row in block:
            idx = np.concatenate([members[g] for g in row])
            a, b = M.roc_auc(y[idx], s[idx]), M.roc_auc(y[idx], s_b[idx])
            if a is not None:
                diffs.append(a - b)
    d = np.array(diffs)
    lo, hi = percentile_interval(d, decimals=None)
    p = min(1.0, 2 * (min(np.sum(d <= 0), np.sum(d >= 0)) + 1) / (d.size + 1))
    assert out == {"diff": round(M.roc_auc(y, s) - M.roc_auc(y, s_b), 6), "ci_low": round(lo, 4),
                   "ci_high": round(hi, 4), "p_value": round(p, 4),
                   "significant": bool(lo > 0 or hi < 0), "resamples_used": d.size}


def test_paired_test_known_answers():
    # Every group holds one real and one fake face, so every resample holds both classes.
    y = np.array([0, 1] * 10)
    s = np.where(y == 1, 0.9, 0.1) - np.arange(20) * 0.001
    groups = np.repeat(np.arange(10), 2)
    same = paired_auc_test(y, s, s, groups, resamples=300, seed=2)
    assert same == {"diff": 0.0, "ci_low": 0.0, "ci_high": 0.0, "p_value": 1.0,
                    "significant": False, "resamples_used": 300}
    flipped = paired_auc_test(y, s, 1 - s, groups, resamples=300, seed=2)
    assert flipped == {"diff": 1.0, "ci_low": 1.0, "ci_high": 1.0, "p_value": round(2 / 301, 4),
                       "significant": True, "resamples_used": 300}
    one_class = paired_auc_test(np.zeros(4, int), [0.1, 0.2, 0.3, 0.4], [0.4, 0.3, 0.2, 0.1],
                                [0, 0, 1, 1], resamples=10, seed=0)
    assert one_class["diff"] is None and one_class["resamples_used"] == 0


def test_grouping_widens_intervals_when_faces_of_a_group_are_correlated():
    # 30 scenes x 10 faces; how well fakes stand out is a property of the scene (lighting,
    # compression), shared by all of its faces: some scenes are easy, some inverted.
    rng = np.random.default_rng(0)
    scene = np.repeat(np.arange(30), 10)
    y = rng.integers(0, 2, scene.size)
    separation = rng.normal(0.15, 0.3, 30)[scene]
    s = np.clip(0.5 + (y - 0.5) * separation + rng.normal(0, 0.05, scene.size), 0, 1)
    grouped = bootstrap_intervals(y, s, scene, 0.5, 400, 0)
    per_face = bootstrap_intervals(y, s, np.arange(scene.size), 0.5, 400, 0)
    for name in ("accuracy", "roc_auc"):
        wide = grouped[f"{name}_ci_high"] - grouped[f"{name}_ci_low"]
        narrow = per_face[f"{name}_ci_high"] - per_face[f"{name}_ci_low"]
        assert wide > 2 * narrow, (name, wide, narrow)


def test_deterministic_bytes_and_seed_dependence():
    y, s, groups = _case(3)
    a = json.dumps(bootstrap_intervals(y, s, groups, 0.5, 300, 7), sort_keys=True)
    b = json.dumps(bootstrap_intervals(y, s, groups.astype(str), 0.5, 300, 7), sort_keys=True)
    assert a == b
    c = json.dumps(bootstrap_intervals(y, s, groups, 0.5, 300, 8), sort_keys=True)
    assert a != c


def test_bad_inputs_name_the_problem():
    with pytest.raises(ValueError, match="groups and scores differ in length: 3 vs 4"):
        bootstrap_intervals(Y, S, [0, 1, 2], 0.5)
    with pytest.raises(ValueError, match="labels must be 0"):
        bootstrap_intervals([0, 2, 1, 1], S, [0, 1, 2, 3], 0.5)


def test_thousand_resamples_of_thousand_faces_well_under_a_second():
    rng = np.random.default_rng(0)
    y = rng.integers(0, 2, 1000)
    s = rng.random(1000)
    groups = rng.integers(0, 60, 1000)
    start = time.perf_counter()
    bootstrap_intervals(y, s, groups, 0.5, 1000, 0)
    paired_auc_test(y, s, rng.random(1000), groups, 1000, 0)
    assert time.perf_counter() - start < 1.0
