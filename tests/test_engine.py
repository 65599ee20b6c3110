import numpy as np
import pytest
import torch
from torch.utils.data import DataLoader, TensorDataset

from deepfake_detection.evaluation.metrics import roc_auc
from deepfake_detection.params import TrainParams, from_dict
from deepfake_detection.training.engine import Runtime, cutmix_box, fit, loss_fn, mix_batch


def _data(n=96, seed=0):
    g = torch.Generator().manual_seed(seed)
    y = torch.arange(n) % 2
    x = torch.randn(n, 3, 16, 16, generator=g) * 0.5
    x[y == 1, 0] += 1.0          # learnable: fakes are redder
    return x, y


def _cfg(**kw):
    base = {"datasets": ["d"], "epochs": 3, "batch_size": 16, "seeds": [1],
            "optimizer": {"name": "adam", "lr": 0.01}}
    base.update(kw)
    return from_dict(TrainParams, base, "train")


def _model():
    torch.manual_seed(0)
    return torch.nn.Sequential(torch.nn.Conv2d(3, 4, 3), torch.nn.AdaptiveAvgPool2d(1), torch.nn.Flatten(),
                               torch.nn.Linear(4, 2))


def _loaders():
    x, y = _data()
    train = DataLoader(TensorDataset(x[:64], y[:64]), batch_size=16, shuffle=True,
                       generator=torch.Generator().manual_seed(5))
    val = DataLoader(TensorDataset(x[64:], y[64:]), batch_size=32)
    return train, val


def test_fit_learns_and_selects_on_validation():
    train, val = _loaders()
    rt = Runtime.for_device(torch.device("cpu"))
    res = fit(_model(), train, val, _cfg(), rt, None, "h", roc_auc, log=lambda m: None)
    aucs = [h["val_roc_auc"] for h in res.history]
    assert res.best_epoch == int(np.argmax(aucs)) + 1 or aucs[res.best_epoch - 1] == max(aucs)
    assert max(aucs) > 0.9
    assert roc_auc(res.val_labels, res.val_scores) == pytest.approx(max(aucs))


def test_resume_after_interruption_gives_the_same_model(tmp_path):
    rt = Runtime.for_device(torch.device("cpu"))
    cfg = _cfg(mix={"name": "cutmix", "alpha": 1.0})
    torch.manual_seed(123)
    train, val = _loaders()
    straight = fit(_model(), train, val, cfg, rt, None, "h", roc_auc, log=lambda m: None)
    ckpt = tmp_path / "last.pt"
    torch.manual_seed(123)
    train, val = _loaders()
    fit(_model(), train, val, _cfg(epochs=1, mix={"name": "cutmix", "alpha": 1.0}), rt, ckpt, "h",
        roc_auc, log=lambda m: None)                     # "killed" after epoch 1
    torch.manual_seed(999)                                  # a new process: other global RNG state
    train, val = _loaders()
    resumed = fit(_model(), train, val, cfg, rt, ckpt, "h", roc_auc, log=lambda m: None)

    def untimed(history):
        return [{k: v for k, v in h.items() if k != "train_images_per_s"} for h in history]

    assert untimed(resumed.history) == untimed(straight.history)
    assert np.array_equal(resumed.val_scores, straight.val_scores)
    stale = fit(_model(), *_loaders(), cfg, rt, ckpt, "other-config", roc_auc, log=lambda m: None)
    assert len(stale.history) == 3 and stale.history[0]["epoch"] == 1


def test_cutmix_lambda_is_pasted_area_and_mixup_is_convex():
    g = torch.Generator().manual_seed(0)
    x = torch.zeros(4, 1, 10, 10)
    x[1] = 1
    y = torch.tensor([0, 1, 0, 1])
    xm, ya, yb, lam = mix_batch(x, y, "cutmix", 1.0, g)
    changed = (xm != x).float().mean(dim=(1, 2, 3))
    assert 0 <= lam <= 1 and (changed <= 1 - lam + 1e-6).all()
    y0, y1, x0, x1 = cutmix_box(10, 10, 0.75, torch.Generator().manual_seed(1))
    assert (y1 - y0) * (x1 - x0) <= 25
    xm, ya, yb, lam = mix_batch(x, y, "mixup", 0.2, g)
    assert 0 <= lam <= 1 and ((xm >= 0) & (xm <= 1)).all()       # convex combination of 0/1 images
    assert torch.equal(ya, y)


def test_loss_fn_hard_soft_and_bce_agree_with_torch():
    logits = torch.tensor([[0.2, -0.3], [1.0, 0.5]])
    y = torch.tensor([1, 0])
    assert torch.allclose(loss_fn(logits, y), torch.nn.functional.cross_entropy(logits, y))
    assert torch.allclose(loss_fn(logits, y.float()), torch.nn.functional.cross_entropy(logits, y))
    one = torch.tensor([[0.3], [-2.0]])
    assert torch.allclose(loss_fn(one, y), torch.nn.functional.binary_cross_entropy_with_logits(one[:, 0], y.float()))


def test_seed_argument_replaces_the_first_of_seeds(tmp_path):
    rt = Runtime.for_device(torch.device("cpu"))

    def run(cfg, **kw):
        torch.manual_seed(0)
        return fit(_model(), *_loaders(), cfg, rt, None, "h", roc_auc, log=lambda m: None, **kw).val_scores

    default = run(_cfg(epochs=1, seeds=[1, 2]))
    np.testing.assert_array_equal(default, run(_cfg(epochs=1, seeds=[7]), seed=1))
    assert not np.array_equal(default, run(_cfg(epochs=1, seeds=[1, 2]), seed=2))


def test_checkpoint_holds_only_plain_data(tmp_path):
    # Every optimizer and scheduler kind writes a checkpoint that weights_only loading accepts.
    rt = Runtime.for_device(torch.device("cpu"))
    for opt, sch in (("adam", "step"), ("sgd", "cosine"), ("adamw", "none")):
        ckpt = tmp_path / f"{opt}.pt"
        cfg = _cfg(epochs=1, optimizer={"name": opt, "lr": 0.01}, scheduler={"name": sch})
        fit(_model(), *_loaders(), cfg, rt, ckpt, "h", roc_auc, log=lambda m: None)
        state = torch.load(ckpt, map_location="cpu", weights_only=True)
        assert state["epoch"] == 1 and state["config_hash"] == "h"
        assert isinstance(state["generator"], torch.Tensor) and isinstance(state["torch_rng"], torch.Tensor)
