"""The train stage's model files and weights record, and one evaluate run over variants at two sizes.

Tiny prepared sets (16 and 24 px), tiny models; pretrained weights come from a file written in
the test (a random ResNet-18 state dict stands in for the ImageNet one), never from the network.
"""

from __future__ import annotations

import copy
import hashlib
import json

import pytest
import torch
import yaml

from deepfake_detection.models.registry import create_model, load_trained_model
from stages import train as train_stage
from tests.conftest import REPO, write_params
from tests.test_train_seeds import SPLITS, _evaluate, _prepared, _train

CNN = {"builder": "custom_cnn", "kwargs": {"widths": [4, 8], "hidden": 16}}


def _params(tmp, name, variants: dict, sizes=(16,), **train) -> object:
    raw = yaml.safe_load((REPO / "params.yaml").read_text())
    raw["train"].update({"epochs": 1, "batch_size": 8, "seeds": [3], **train})
    raw["prepare"] = {"sizes": list(sizes)}
    raw["gan_variants"], raw["gan"] = {}, None
    raw["variants"] = copy.deepcopy(variants)
    raw["evaluate"]["test_sets"] = {t: {"dataset": "demo_openforensics", "split": t}
                                    for t in ("test_dev", "test_challenge")}
    raw["evaluate"]["bootstrap"] = {"resamples": 20, "seed": 0}
    return write_params(tmp / name, raw)


@pytest.fixture(scope="module")
def prepared(tmp_path_factory):
    root = tmp_path_factory.mktemp("prepared")
    _prepared(root / "16", 16)
    _prepared(root / "24", 24)
    return root


def test_train_writes_best_and_last_and_the_scratch_record(tmp_path, prepared, monkeypatch):
    variant = {"model": CNN, "prepared_size": 16, "paper": {"prepared_size": 224, "train.epochs": 10,
                                                           "train.augment.color_jitter": [0.1, 0.1, 0.1, 0.05]}}
    params = _params(tmp_path, "p.yaml", {"cnn": variant}, epochs=3, optimizer={"name": "sgd", "lr": 0.2})
    results, fit = [], train_stage.fit

    def keep(*args, **kwargs):
        results.append(fit(*args, **kwargs))
        return results[-1]

    monkeypatch.setattr(train_stage, "fit", keep)
    _train(params, prepared / "16", tmp_path, "cnn")
    (result,) = results
    best = torch.load(tmp_path / "cnn" / "model.pt", weights_only=True)
    last = torch.load(tmp_path / "cnn" / "last.pt", weights_only=True)
    record = {"weights": "scratch", "weights_sha256": None, "weights_origin": None, "head": "softmax2",
              "normalize": "half", "builder": "custom_cnn", "variant": "cnn", "seed": 3, "input_size": 16}
    assert {k: best[k] for k in record} == {k: last[k] for k in record} == record
    assert (best["epoch"], last["epoch"]) == (result.best_epoch, 3)
    assert all(torch.equal(best["state_dict"][k], result.best_state[k]) for k in result.best_state)
    assert all(torch.equal(last["state_dict"][k], result.last_state[k]) for k in result.last_state)
    assert set(best) == set(last)
    for path, epoch in (("model.pt", result.best_epoch), ("last.pt", 3)):     # the evaluate stage reads both
        model, meta = load_trained_model(tmp_path / "cnn" / path)
        assert meta["epoch"] == epoch and not model.training
    metrics = json.loads((tmp_path / "train" / "cnn.json").read_text())
    n_params = sum(p.numel() for p in create_model("custom_cnn", 16, **CNN["kwargs"]).parameters())
    assert {k: metrics[k] for k in ("weights", "weights_sha256", "head", "normalize", "trainable_params_m")} == \
        {"weights": "scratch", "weights_sha256": None, "head": "softmax2", "normalize": "half",
         "trainable_params_m": round(n_params / 1e6, 3)}
    assert metrics["trainable_params_m"] == metrics["params_m"]       # nothing frozen in custom_cnn
    # the paper deltas say where this (demo-scale) run is not the report's setup
    assert (metrics["scale"], metrics["differs_from_paper"]) == (
        "demo", "prepared_size 16 (paper 224); train.epochs 3 (paper 10); "
                "train.augment.color_jitter [0.0, 0.0, 0.0, 0.0] (paper [0.1, 0.1, 0.1, 0.05])")


def _resnet_variant(**model):
    return {"r18": {"model": {"builder": "resnet18", **model}, "prepared_size": 16}}


def test_weights_file_starts_the_backbone_and_is_recorded(tmp_path, prepared):
    from torchvision.models import resnet18

    torch.manual_seed(7)
    start = resnet18(weights=None).state_dict()
    weights = tmp_path / "resnet18-stand-in.pth"
    torch.save(start, weights)
    params = _params(tmp_path, "p.yaml", _resnet_variant(pretrained=True, weights_file=str(weights)),
                     max_batches_per_epoch=1, optimizer={"name": "adam", "lr": 0.001})
    _train(params, prepared / "16", tmp_path, "r18")
    sha = hashlib.sha256(weights.read_bytes()).hexdigest()
    model = torch.load(tmp_path / "r18" / "model.pt", weights_only=True)
    assert (model["weights"], model["weights_sha256"], model["weights_origin"]) == ("imagenet", sha, "file")
    metrics = json.loads((tmp_path / "train" / "r18.json").read_text())
    assert (metrics["weights"], metrics["weights_sha256"]) == ("imagenet", sha)
    # one Adam step moves each weight by at most lr (+ eps slack): the run started from the file
    moved = (model["state_dict"]["layer3.0.conv1.weight"] - start["layer3.0.conv1.weight"]).abs().max()
    assert 0 < float(moved) <= 0.001 * 1.01


def test_unavailable_weights_stop_the_stage_with_one_line(tmp_path, prepared, monkeypatch):
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "empty_torch_home"))
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    params = _params(tmp_path, "p.yaml", _resnet_variant(pretrained=True))
    with pytest.raises(SystemExit) as err:
        _train(params, prepared / "16", tmp_path, "r18")
    message = str(err.value)
    assert message.startswith("train: variants.r18.model: pretrained weights 'resnet18' (resnet18-f37072fd.pth) "
                              "are not available; searched: torch hub cache ")
    assert "set variants.r18.model.weights_file" in message and "\n" not in message
    assert not (tmp_path / "r18").exists()


def test_fallback_scratch_trains_from_scratch_and_says_so(tmp_path, prepared, monkeypatch, capsys):
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "empty_torch_home"))
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    params = _params(tmp_path, "p.yaml", _resnet_variant(pretrained="fallback_scratch"), max_batches_per_epoch=1)
    _train(params, prepared / "16", tmp_path, "r18")
    assert "training from scratch (pretrained: fallback_scratch)" in capsys.readouterr().err
    model = torch.load(tmp_path / "r18" / "last.pt", weights_only=True)
    assert (model["weights"], model["weights_sha256"]) == ("scratch", None)
    assert json.loads((tmp_path / "train" / "r18.json").read_text())["weights"] == "scratch"


def test_one_evaluate_run_scores_variants_at_two_prepared_sizes(tmp_path, prepared):
    variants = {"small": {"model": CNN, "prepared_size": 16}, "large": {"model": CNN, "prepared_size": 24}}
    both = _params(tmp_path, "both.yaml", variants, sizes=(16, 24))
    for name, v in variants.items():
        _train(both, prepared / str(v["prepared_size"]), tmp_path / "all", name)
    (tmp_path / "all" / "roc" / "removed").mkdir(parents=True)      # a removed variant's stale folder
    _evaluate(both, prepared, tmp_path / "all")
    n = dict(SPLITS)
    for folder, suffix in (("eval", ".json"), ("scores", "_scores.csv"), ("roc", ".csv")):
        assert sorted(p.name for p in (tmp_path / "all" / folder).iterdir()) == ["large", "small"]
        for name in variants:
            assert sorted(p.name for p in (tmp_path / "all" / folder / name).iterdir()) == \
                [f"test_challenge{suffix}", f"test_dev{suffix}"]
    for name in variants:
        for test_set in ("test_dev", "test_challenge"):
            m = json.loads((tmp_path / "all" / "eval" / name / f"{test_set}.json").read_text())
            assert (m["variant"], m["test_set"], m["n"], m["weights"]) == (name, test_set, n[test_set], "scratch")
    # each variant scores exactly as it does evaluated alone on its own size
    for name, v in variants.items():
        alone = _params(tmp_path, f"{name}.yaml", {name: v}, sizes=(v["prepared_size"],))
        (tmp_path / name).mkdir()
        (tmp_path / name / name).symlink_to(tmp_path / "all" / name)
        _evaluate(alone, prepared, tmp_path / name)
        for folder in ("eval", "scores", "roc"):
            for f in sorted((tmp_path / name / folder / name).iterdir()):
                assert f.read_bytes() == (tmp_path / "all" / folder / name / f.name).read_bytes()
