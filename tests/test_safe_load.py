"""Model files and checkpoints load with weights_only=True: a crafted pickle is refused."""

from __future__ import annotations

import dataclasses
import os

import pytest
import torch

from deepfake_detection.io import UnsafeFileError, load_torch, save_torch
from deepfake_detection.models.registry import create_model, load_trained_model
from deepfake_detection.params import AugmentParams
from deepfake_detection.training.checkpoints import load_checkpoint


class _Payload:
    """Unpickling this would run a shell command (touch a marker file)."""

    def __init__(self, marker):
        self.marker = marker

    def __reduce__(self):
        return (os.system, (f"touch {self.marker}",))


def _model_file(**extra) -> dict:
    torch.manual_seed(0)
    model = create_model("custom_cnn", input_size=16, widths=(4, 8, 8))
    return {"state_dict": model.state_dict(), "builder": "custom_cnn", "kwargs": {"widths": (4, 8, 8)},
            "normalize": "half", "input_size": 16, "augment": dataclasses.asdict(AugmentParams()),
            "variant": "v", "epoch": 1, "seed": 42, **extra}


def test_model_file_round_trips_with_weights_only(tmp_path):
    path = tmp_path / "model.pt"
    save_torch(path, _model_file())
    model, meta = load_trained_model(path)
    assert meta["builder"] == "custom_cnn" and meta["seed"] == 42 and "state_dict" not in meta
    out = model(torch.zeros(2, 3, 16, 16))
    assert out.shape == (2, 2)


def test_crafted_model_file_is_refused_in_one_line(tmp_path):
    marker = tmp_path / "pwned"
    path = tmp_path / "model.pt"
    torch.save(_model_file(augment=_Payload(marker)), path)
    with pytest.raises(UnsafeFileError) as err:
        load_trained_model(path)
    message = str(err.value)
    assert "\n" not in message
    assert message.startswith(f"{path}: refused to load this model file: it references ")
    assert "system" in message
    assert not marker.exists()                 # nothing was executed


def test_crafted_checkpoint_is_refused_but_a_truncated_one_is_ignored(tmp_path, capsys):
    marker = tmp_path / "pwned"
    evil = tmp_path / "last.pt"
    torch.save({"config_hash": "h", "epoch": 1, "history": [_Payload(marker)]}, evil)
    with pytest.raises(UnsafeFileError, match=r"last\.pt: refused to load this checkpoint"):
        load_checkpoint(evil, "h")
    assert not marker.exists()
    truncated = tmp_path / "cut.pt"
    save_torch(truncated, {"config_hash": "h", "epoch": 1})
    truncated.write_bytes(truncated.read_bytes()[:40])
    assert load_checkpoint(truncated, "h") is None
    assert f"ignoring unreadable checkpoint {truncated}" in capsys.readouterr().out


def test_not_a_model_file_names_the_file(tmp_path):
    path = tmp_path / "model.pt"
    save_torch(path, {"state_dict": {}})
    with pytest.raises(ValueError, match=r"model\.pt: not a model file written by the train stage \(missing "
                                         r"\['builder', 'kwargs', 'normalize', 'input_size', 'augment'\]\)"):
        load_trained_model(path)


def test_load_torch_reads_plain_data(tmp_path):
    path = tmp_path / "x.pt"
    save_torch(path, {"a": [1, 2.5, None, "s", (3, 4)], "t": torch.arange(3)})
    data = load_torch(path)
    assert data["a"] == [1, 2.5, None, "s", (3, 4)] and torch.equal(data["t"], torch.arange(3))


def test_evaluate_stage_turns_a_refusal_into_a_one_line_exit(tmp_path):
    from stages.evaluate import score_model

    path = tmp_path / "model.pt"
    torch.save(_model_file(kwargs=_Payload(tmp_path / "pwned")), path)
    with pytest.raises(SystemExit) as err:
        score_model(path, None, None, None, 8, torch.device("cpu"))
    assert str(err.value).startswith(f"evaluate: {path}: refused to load this model file")
    assert "\n" not in str(err.value)
