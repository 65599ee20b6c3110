"""Seed repeats: the params that ask for them and the spread reported over them."""

from __future__ import annotations

import pytest

from deepfake_detection.evaluation.seeds import seed_spread, seed_spreads
from deepfake_detection.params import EvaluateParams, ParamsError, TrainParams, from_dict, load_params
from tests.conftest import write_params


def test_seed_spread_hand_worked():
    # mean 0.9; deviations -0.1, 0, 0.1 -> sample variance 0.02 / 2 = 0.01, std 0.1.
    assert seed_spread([0.8, 0.9, 1.0], "roc_auc") == {
        "roc_auc_seed_mean": 0.9, "roc_auc_seed_std": 0.1, "roc_auc_seed_min": 0.8, "roc_auc_seed_max": 1.0}
    assert seed_spread([0.7], "f1") == {"f1_seed_mean": 0.7, "f1_seed_std": None, "f1_seed_min": 0.7,
                                        "f1_seed_max": 0.7}
    assert seed_spread([None, 0.5, float("nan"), 0.25], "eer") == {
        "eer_seed_mean": 0.375, "eer_seed_std": 0.176777, "eer_seed_min": 0.25, "eer_seed_max": 0.5}
    assert seed_spread([None, None], "eer") == dict.fromkeys(
        ["eer_seed_mean", "eer_seed_std", "eer_seed_min", "eer_seed_max"])
    assert seed_spreads([{"a": 1.0}, {"a": 3.0}], ["a"]) == {
        "n_seeds": 2, "a_seed_mean": 2.0, "a_seed_std": 1.414214, "a_seed_min": 1.0, "a_seed_max": 3.0}


def test_train_seeds_param():
    cfg = from_dict(TrainParams, {"datasets": ["d"], "seeds": [7, 3]}, "train")
    assert cfg.seeds == [7, 3] and cfg.seed == 7
    assert from_dict(TrainParams, {"datasets": ["d"]}, "train").seeds == [42]
    with pytest.raises(ParamsError, match=r"train.seeds: list at least one seed"):
        from_dict(TrainParams, {"datasets": ["d"], "seeds": []}, "train")
    with pytest.raises(ParamsError, match=r"train.seeds: seeds must be distinct, got \[1, 1\]"):
        from_dict(TrainParams, {"datasets": ["d"], "seeds": [1, 1]}, "train")
    with pytest.raises(ParamsError, match=r"train: unknown key\(s\) \['seed'\]; allowed keys are .*'seeds'"):
        from_dict(TrainParams, {"datasets": ["d"], "seed": 1}, "train")


def test_bootstrap_params(tmp_path, params_dict):
    params = load_params(write_params(tmp_path / "p.yaml", params_dict))
    assert (params.evaluate.bootstrap.resamples, params.evaluate.bootstrap.seed) == (1000, 0)
    assert params.train.seeds == [42]
    with pytest.raises(ParamsError, match=r"evaluate.bootstrap.resamples: must be >= 1, got 0"):
        from_dict(EvaluateParams, {"test_sets": {"t": {"dataset": "d", "split": "test"}},
                                   "bootstrap": {"resamples": 0}}, "evaluate")
    params_dict["variants"]["custom_cnn"]["train"]["seeds"] = [1, 2, 3]
    params = load_params(write_params(tmp_path / "q.yaml", params_dict))
    assert params.variant_train("custom_cnn").seeds == [1, 2, 3]
    assert params.variant_train("resnet18_scratch").seeds == [42]
