"""train -> evaluate -> report on a tiny prepared set: seed repeats, intervals, paired tests."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest
import torch

from deepfake_detection.evaluation.bootstrap import CI_KEYS
from stages import evaluate as evaluate_stage
from stages import report as report_stage
from stages import train as train_stage
from tests.conftest import write_params

SPLITS = [("train", 32), ("val", 16), ("test_dev", 24), ("test_challenge", 12)]


def _prepared(root, size=16):
    rng = np.random.default_rng(0)
    n = sum(k for _, k in SPLITS)
    labels = np.arange(n) % 2
    images = rng.integers(0, 120, (n, size, size, 3), dtype=np.uint8)
    images[labels == 1, :, :, 0] += 100           # learnable: fakes are redder
    split = np.concatenate([[name] * k for name, k in SPLITS])
    root.mkdir(parents=True)
    np.save(root / "images.npy", images)
    pd.DataFrame({"face_id": [f"f{i:03d}" for i in range(n)], "path": [f"x/{i}.png" for i in range(n)],
                  "label": labels, "source": "demo_openforensics", "generator": "",
                  "group": [f"scene{i // 4}" for i in range(n)], "official_split": split,
                  "split": split, "row": np.arange(n)}).to_csv(root / "index.csv", index=False)
    return root


TINY = {"model": {"builder": "custom_cnn", "kwargs": {"widths": [4, 8], "hidden": 16}}, "prepared_size": 16}


def _params(tmp_path, params_dict, seeds, name="params.yaml", test_sets=("test_dev",), variants=("cnn_a", "cnn_b")):
    params_dict["train"].update({"epochs": 1, "batch_size": 8, "seeds": seeds})
    params_dict["prepare"] = {"sizes": [16]}
    params_dict["gan_variants"], params_dict["gan"] = {}, None
    every = {"cnn_a": TINY, "cnn_b": {**TINY, "train": {"optimizer": {"lr": 0.003}}}}
    params_dict["variants"] = {v: every[v] for v in variants}
    params_dict["evaluate"]["test_sets"] = {t: {"dataset": "demo_openforensics", "split": t} for t in test_sets}
    params_dict["evaluate"]["bootstrap"] = {"resamples": 60, "seed": 3}
    return write_params(tmp_path / name, params_dict)


def _train(params, prepared, out, variant, *extra):
    train_stage.main(["--params", str(params), "--variant", variant, "--prepared", str(prepared),
                      "--model", str(out / variant / "model.pt"), "--last", str(out / variant / "last.pt"),
                      "--val-scores", str(out / variant / "val_scores.csv"),
                      "--seed-models", str(out / variant / "seeds"),
                      "--metrics", str(out / "train" / f"{variant}.json"),
                      "--live", str(out / "dvclive" / variant), "--device", "cpu", *extra])


def _evaluate(params, prepared_root, out):
    """The evaluate stage over every variant of ``params``: models under ``out``, results in out/eval, ..."""
    evaluate_stage.main(["--params", str(params), "--models-root", str(out), "--prepared-root", str(prepared_root),
                         "--metrics-dir", str(out / "eval"), "--scores-dir", str(out / "scores"),
                         "--roc-dir", str(out / "roc"), "--device", "cpu"])


@pytest.fixture(scope="module")
def two_seeds(tmp_path_factory):
    import copy

    import yaml

    from tests.conftest import REPO

    tmp = tmp_path_factory.mktemp("seeds")
    raw = yaml.safe_load((REPO / "params.yaml").read_text())
    prepared = _prepared(tmp / "prepared" / "16")
    one = _params(tmp, copy.deepcopy(raw), [3], "one.yaml", variants=("cnn_a",))
    two = _params(tmp, copy.deepcopy(raw), [3, 5], "two.yaml", ("test_dev", "test_challenge"))
    (tmp / "two" / "eval" / "cnn_a").mkdir(parents=True)
    (tmp / "two" / "eval" / "cnn_a" / "removed_test_set.json").write_text("{}")   # stale: must go
    (tmp / "two" / "eval" / "removed_variant").mkdir(parents=True)
    (tmp / "two" / "eval" / "removed_variant" / "test_dev.json").write_text("{}")  # stale: must go
    _train(one, prepared, tmp / "one", "cnn_a")
    for variant in ("cnn_a", "cnn_b"):
        _train(two, prepared, tmp / "two", variant)
    _evaluate(two, tmp / "prepared", tmp / "two")
    _evaluate(one, tmp / "prepared", tmp / "one")
    report_stage.main(["--params", str(two), "--metrics-root", str(tmp / "two" / "eval"),
                       "--scores-root", str(tmp / "two" / "scores"), "--out", str(tmp / "leaderboard.md")])
    return tmp


def test_primary_model_is_the_first_seed_and_further_seeds_are_listed(two_seeds):
    one = torch.load(two_seeds / "one" / "cnn_a" / "model.pt", weights_only=True)
    two = torch.load(two_seeds / "two" / "cnn_a" / "model.pt", weights_only=True)
    assert one["seed"] == two["seed"] == 3
    assert all(torch.equal(one["state_dict"][k], two["state_dict"][k]) for k in one["state_dict"])
    assert json.loads((two_seeds / "two" / "cnn_a" / "seeds" / "seeds.json").read_text()) == {"seeds": [5]}
    extra = torch.load(two_seeds / "two" / "cnn_a" / "seeds" / "seed_5" / "model.pt", weights_only=True)
    assert extra["seed"] == 5
    assert sorted(p.name for p in (two_seeds / "one" / "cnn_a" / "seeds").iterdir()) == ["seeds.json"]
    assert json.loads((two_seeds / "one" / "cnn_a" / "seeds" / "seeds.json").read_text()) == {"seeds": []}


def test_train_metrics_report_the_seed_spread(two_seeds):
    one = json.loads((two_seeds / "one" / "train" / "cnn_a.json").read_text())
    two = json.loads((two_seeds / "two" / "train" / "cnn_a.json").read_text())
    assert one["seeds"] == [3] and two["seeds"] == [3, 5] and two["n_seeds"] == 2
    assert one["val_roc_auc_seed_mean"] == one["val_roc_auc_seed_min"] == one["val_roc_auc"]
    assert one["val_roc_auc_seed_std"] is None
    assert two["val_roc_auc"] == one["val_roc_auc"]               # the primary run is unchanged
    assert two["val_loss_seed_min"] <= two["val_loss"] <= two["val_loss_seed_max"]


def test_evaluate_writes_intervals_groups_and_seed_spread(two_seeds):
    metrics = json.loads((two_seeds / "two" / "eval" / "cnn_a" / "test_dev.json").read_text())
    assert set(CI_KEYS) <= set(metrics)
    assert metrics["n_groups"] == 6 and metrics["bootstrap_resamples"] == 60 and metrics["bootstrap_seed"] == 3
    assert metrics["roc_auc_ci_low"] <= metrics["roc_auc"] <= metrics["roc_auc_ci_high"]
    assert metrics["n_seeds"] == 2 and metrics["roc_auc_seed_std"] is not None
    scores = pd.read_csv(two_seeds / "two" / "scores" / "cnn_a" / "test_dev_scores.csv")
    assert list(scores.columns) == ["face_id", "group", "label", "score"]
    assert scores["group"].nunique() == 6 and len(scores) == 24
    single = json.loads((two_seeds / "one" / "eval" / "cnn_a" / "test_dev.json").read_text())
    assert single["n_seeds"] == 1 and single["roc_auc_seed_mean"] == single["roc_auc"]
    assert {k: single[k] for k in CI_KEYS} == {k: metrics[k] for k in CI_KEYS}   # same model, same data


def test_one_evaluate_run_writes_every_test_set_and_nothing_else(two_seeds):
    for root, sets, variants in (("one", ["test_dev"], ["cnn_a"]),
                                 ("two", ["test_challenge", "test_dev"], ["cnn_a", "cnn_b"])):
        folders = {"eval": ".json", "scores": "_scores.csv", "roc": ".csv"}
        for folder, suffix in folders.items():
            assert sorted(p.name for p in (two_seeds / root / folder).iterdir()) == variants, (root, folder)
            for variant in variants:
                assert sorted(p.name for p in (two_seeds / root / folder / variant).iterdir()) == \
                    sorted(f"{t}{suffix}" for t in sets), (root, folder, variant)
    two = two_seeds / "two"
    for name, n in (("test_dev", 24), ("test_challenge", 12)):
        metrics = json.loads((two / "eval" / "cnn_a" / f"{name}.json").read_text())
        assert (metrics["test_set"], metrics["n"], metrics["n_seeds"]) == (name, n, 2)
        scores = pd.read_csv(two / "scores" / "cnn_a" / f"{name}_scores.csv")
        assert list(scores["face_id"]) == [f"f{i:03d}" for i in range(48 + 24 * (name == "test_challenge"),
                                                                       48 + 24 + 12 * (name == "test_challenge"))]
        roc = pd.read_csv(two / "roc" / "cnn_a" / f"{name}.csv")
        assert list(roc.columns) == ["fpr", "tpr"] and len(roc) == 101
    # the same model scores test_dev alike whether or not another test set shares the process
    one_scores = pd.read_csv(two_seeds / "one" / "scores" / "cnn_a" / "test_dev_scores.csv")
    assert one_scores.equals(pd.read_csv(two / "scores" / "cnn_a" / "test_dev_scores.csv"))


def test_leaderboard_marks_the_paired_test_and_the_seed_spread(two_seeds):
    md = (two_seeds / "leaderboard.md").read_text()
    assert "| vs best |" in md and "| best |" in md
    assert "Paired ROC-AUC differences" in md and "## Spread over training seeds" in md
