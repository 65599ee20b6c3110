"""The train stage's dvclive curves: exact rows, whole after a resume, timings kept out of them."""

from __future__ import annotations

import json

import pytest
import torch
import yaml

from deepfake_detection.training.curves import CURVES
from stages import train as train_stage
from tests.conftest import REPO, write_params
from tests.test_train_seeds import _prepared, _train

EPOCHS = 3


@pytest.fixture(scope="module")
def setup(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("curves")
    raw = yaml.safe_load((REPO / "params.yaml").read_text())
    raw["train"].update({"epochs": EPOCHS, "batch_size": 8, "seeds": [3],
                         "optimizer": {"name": "sgd", "lr": 0.1}, "scheduler": {"name": "step", "step_size": 1,
                                                                                "gamma": 0.5}})
    raw["prepare"] = {"sizes": [16]}
    raw["gan_variants"], raw["gan"] = {}, None
    raw["variants"] = {"cnn": {"model": {"builder": "custom_cnn", "kwargs": {"widths": [4, 8], "hidden": 16}},
                               "prepared_size": 16}}
    return tmp, write_params(tmp / "params.yaml", raw), _prepared(tmp / "prepared")


def _files(folder):
    return {p.relative_to(folder).as_posix(): p.read_text() for p in sorted(folder.rglob("*")) if p.is_file()}


def test_curves_have_one_exact_row_per_epoch(setup):
    tmp, params, prepared = setup
    out = tmp / "straight"
    _train(params, prepared, out, "cnn", "--timings", str(tmp / "logs" / "cnn.json"))
    files = _files(out / "dvclive" / "cnn")
    assert sorted(files) == ["metrics.json"] + [f"plots/metrics/{name}.tsv" for name in sorted(CURVES)]
    assert files["plots/metrics/lr.tsv"] == "step\tlr\n1\t0.1\n2\t0.05\n3\t0.025\n"   # StepLR, halved per epoch
    rows = {name: [line.split("\t") for line in files[f"plots/metrics/{name}.tsv"].splitlines()] for name in CURVES}
    for name, lines in rows.items():
        assert lines[0] == ["step", name] and [r[0] for r in lines[1:]] == ["1", "2", "3"]
        assert all(len(r[1].split(".")[-1]) <= 6 for r in lines[1:])   # rounded like every committed metric
    summary = json.loads(files["metrics.json"])
    assert summary == {**{name: float(rows[name][-1][1]) for name in CURVES}, "step": EPOCHS}
    train = json.loads((out / "train" / "cnn.json").read_text())
    best = train["best_epoch"]
    assert float(rows["val_roc_auc"][best][1]) == train["val_roc_auc"]
    assert float(rows["val_loss"][best][1]) == train["val_loss"]
    assert all(float(r[1]) in (0.0, 0.125, 0.25, 0.375, 0.5, 0.625, 0.75, 0.875, 1.0)
               for r in rows["val_accuracy"][1:])                       # 16 val faces: multiples of 1/16
    timings = json.loads((tmp / "logs" / "cnn.json").read_text())
    assert [t["epoch"] for t in timings["seeds"]["3"]] == [1, 2, 3]
    assert all(t["train_images"] == 32 and t["train_images_per_s"] > 0 for t in timings["seeds"]["3"])
    assert "per_s" not in json.dumps(train) and "seconds" not in json.dumps(train)


def test_a_resumed_run_writes_the_same_curves_and_model(setup, monkeypatch):
    tmp, params, prepared = setup
    straight = tmp / "straight"
    if not (straight / "dvclive").exists():
        _train(params, prepared, straight, "cnn")
    out, ckpt = tmp / "resumed", tmp / "ckpt" / "last.pt"
    log_epoch = train_stage.log_epoch

    def killed_after_epoch_2(live, row):
        log_epoch(live, row)
        if row["epoch"] == 2:
            raise KeyboardInterrupt

    monkeypatch.setattr(train_stage, "log_epoch", killed_after_epoch_2)
    with pytest.raises(KeyboardInterrupt):
        _train(params, prepared, out, "cnn", "--checkpoint", str(ckpt))
    assert torch.load(ckpt, weights_only=True)["epoch"] == 2
    monkeypatch.setattr(train_stage, "log_epoch", log_epoch)
    (out / "dvclive" / "cnn" / "plots" / "metrics" / "lr.tsv").unlink()   # DVC removes outputs before a rerun
    _train(params, prepared, out, "cnn", "--checkpoint", str(ckpt))
    assert not ckpt.exists()
    assert _files(out / "dvclive" / "cnn") == _files(straight / "dvclive" / "cnn")
    assert (out / "train" / "cnn.json").read_text() == (straight / "train" / "cnn.json").read_text()
    a = torch.load(out / "cnn" / "model.pt", weights_only=True)["state_dict"]
    b = torch.load(straight / "cnn" / "model.pt", weights_only=True)["state_dict"]
    assert all(torch.equal(a[k], b[k]) for k in a)
