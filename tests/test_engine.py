"""engine.fit / predict on BatchReader batches: learning, selection, exact resume, RNG isolation, losses."""

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from deepfake_detection.data.batch_augment import EvalAugment, TrainAugment
from deepfake_detection.data.batches import BatchReader
from deepfake_detection.evaluation.metrics import roc_auc
from deepfake_detection.params import AugmentParams, MixParams, TrainParams, from_dict
from deepfake_detection.training.engine import HISTORY_KEYS, Runtime, fit, loss_fn

AUG = {"resize": 18, "crop": 16, "hflip": 0.5, "color_jitter": [0.1, 0.1, 0.1, 0.02]}
CPU = Runtime.for_device(torch.device("cpu"))


def _images(n=96, seed=0):
    rng = np.random.default_rng(seed)
    labels = np.arange(n) % 2
    images = rng.integers(0, 150, (n, 16, 16, 3), dtype=np.uint8)
    images[labels == 1, :, :, 0] += 100          # learnable: fakes are redder
    return images, labels


def _cfg(**kw):
    base = {"datasets": ["d"], "epochs": 3, "batch_size": 16, "seeds": [1],
            "optimizer": {"name": "adam", "lr": 0.01}}
    base.update(kw)
    return from_dict(TrainParams, base, "train")


def _model(dropout=0.0):
    torch.manual_seed(0)
    return torch.nn.Sequential(torch.nn.Conv2d(3, 4, 3), torch.nn.AdaptiveAvgPool2d(1), torch.nn.Flatten(),
                               torch.nn.Dropout(dropout), torch.nn.Linear(4, 2))


def _run(cfg, checkpoint=None, config_hash="h", device="cpu", dropout=0.0, model=None, **kw):
    """fit on 64 train / 32 val images; the shuffle seed is fit's seed, as the train stage sets it."""
    images, labels = _images()
    dev = torch.device(device)
    train = BatchReader(images, labels, np.arange(64), cfg.batch_size, shuffle=True, seed=kw.get("seed", cfg.seed),
                        drop_last=True, device=dev)
    val = BatchReader(images, labels, np.arange(64, 96), 32, shuffle=False, device=dev)
    return fit(model or _model(dropout), train, val, TrainAugment(cfg.augment, "half", mix=cfg.mix),
               EvalAugment(cfg.augment, "half"), cfg, Runtime.for_device(dev), checkpoint, config_hash,
               roc_auc, log=lambda m: None, **kw)


def test_fit_learns_and_selects_on_validation():
    res = _run(_cfg(augment=AUG))
    aucs = [h["val_roc_auc"] for h in res.history]
    assert [tuple(h) for h in res.history] == [HISTORY_KEYS] * 3
    assert res.best_epoch == max(i + 1 for i, a in enumerate(aucs) if a == max(aucs))   # ties: the later epoch
    assert max(aucs) > 0.9
    assert roc_auc(res.val_labels, res.val_scores) == max(aucs)
    assert [t["train_images"] for t in res.timings] == [64, 64, 64]


class Stop(Exception):
    pass


def _stop_after(k):
    def on_epoch(row):
        if row["epoch"] == k:
            raise Stop
    return on_epoch


def _assert_same_run(a, b):
    assert a.history == b.history and a.best_epoch == b.best_epoch
    assert a.best_state.keys() == b.best_state.keys()
    assert all(torch.equal(a.best_state[k], b.best_state[k]) for k in a.best_state)
    np.testing.assert_array_equal(a.val_scores, b.val_scores)


def _resume_is_exact(tmp_path, device):
    # Every piece of state that a resume must restore is in play: cosine lr, CutMix soft targets,
    # per-sample jitter and flips, shuffling, and dropout drawing from the global RNG.
    cfg = _cfg(epochs=4, augment=AUG, mix={"name": "cutmix", "alpha": 1.0}, select="last",
               optimizer={"name": "sgd", "lr": 0.05}, scheduler={"name": "cosine"})
    straight = _run(cfg, device=device, dropout=0.5)
    ckpt = tmp_path / "last.pt"
    with pytest.raises(Stop):
        _run(cfg, ckpt, device=device, dropout=0.5, on_epoch=_stop_after(2))       # "killed" after epoch 2
    assert torch.load(ckpt, weights_only=True)["epoch"] == 2
    torch.manual_seed(999)                                                          # another process's RNG
    seen = []
    resumed = _run(cfg, ckpt, device=device, dropout=0.5, on_epoch=seen.append)
    _assert_same_run(resumed, straight)
    assert seen == straight.history                   # the replayed epochs first, then the new ones
    assert len({round(h["lr"], 9) for h in straight.history}) == 4
    no_dropout = _run(cfg, device=device)
    assert no_dropout.history != straight.history     # dropout's draws do reach the result


def test_resume_after_interruption_is_bit_for_bit(tmp_path):
    _resume_is_exact(tmp_path, "cpu")


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")
def test_resume_after_interruption_is_bit_for_bit_on_cuda(tmp_path):
    from deepfake_detection.runtime import configure_compute

    configure_compute(0, "native", deterministic=True)
    _resume_is_exact(tmp_path, "cuda")


def test_stale_checkpoint_restarts_from_epoch_one(tmp_path):
    cfg = _cfg(epochs=2)
    _run(_cfg(epochs=1), tmp_path / "last.pt", config_hash="old")
    fresh = _run(cfg, tmp_path / "last.pt", config_hash="new")
    _assert_same_run(fresh, _run(cfg))


def test_fit_neither_reads_nor_changes_the_global_rng():
    cfg = _cfg(epochs=1, augment=AUG, mix={"name": "mixup", "alpha": 0.4})
    model = _model(dropout=0.5)
    torch.manual_seed(5)
    before = torch.get_rng_state()
    first = _run(cfg, model=model)
    assert torch.equal(torch.get_rng_state(), before)
    model = _model(dropout=0.5)
    torch.manual_seed(6)
    _assert_same_run(_run(cfg, model=model), first)


def test_seed_argument_replaces_the_first_of_seeds():
    default = _run(_cfg(epochs=1, seeds=[1, 2], augment=AUG)).val_scores
    np.testing.assert_array_equal(default, _run(_cfg(epochs=1, seeds=[7], augment=AUG), seed=1).val_scores)
    assert not np.array_equal(default, _run(_cfg(epochs=1, seeds=[1, 2], augment=AUG), seed=2).val_scores)


def test_checkpoint_holds_only_plain_data(tmp_path):
    # Every optimizer and scheduler kind writes a checkpoint that weights_only loading accepts.
    for opt, sch in (("adam", "step"), ("sgd", "cosine"), ("adamw", "none")):
        ckpt = tmp_path / f"{opt}.pt"
        _run(_cfg(epochs=1, optimizer={"name": opt, "lr": 0.01}, scheduler={"name": sch}), ckpt)
        state = torch.load(ckpt, map_location="cpu", weights_only=True)
        assert state["epoch"] == 1 and state["config_hash"] == "h"
        assert isinstance(state["cpu_rng"], torch.Tensor) and state["cuda_rng"] == []
        assert len(state["history"]) == len(state["timings"]) == 1


def test_loss_fn_hard_soft_and_bce_agree_with_torch():
    logits = torch.tensor([[0.2, -0.3], [1.0, 0.5]])
    y = torch.tensor([1, 0])
    assert torch.allclose(loss_fn(logits, y), F.cross_entropy(logits, y))
    assert torch.allclose(loss_fn(logits, y.float()), F.cross_entropy(logits, y))
    one = torch.tensor([[0.3], [-2.0]])
    assert torch.allclose(loss_fn(one, y), F.binary_cross_entropy_with_logits(one[:, 0], y.float()))


def test_soft_cutmix_target_gives_the_mixed_loss_of_the_reports():
    # seed 000's CutMix loss: lam * CE(y_a) + (1 - lam) * CE(y_b). torchvision's CutMix pairs each
    # image with the batch rolled by one; with alternating labels every partner has the other
    # label, so the soft target of a fake is lam and of a real 1 - lam.
    x = torch.randint(0, 256, (8, 3, 16, 16), dtype=torch.uint8)
    y = torch.arange(8) % 2
    _, soft = TrainAugment(AugmentParams(), "half", mix=MixParams("cutmix", 1.0))(x, y, seed=3)
    lam = float(soft[1])
    assert 0 < lam < 1 and torch.equal(soft, torch.where(y == 1, soft[1], 1 - soft[1]))
    logits = torch.randn(8, 2, generator=torch.Generator().manual_seed(0))
    mixed = lam * F.cross_entropy(logits, y) + (1 - lam) * F.cross_entropy(logits, y.roll(1))
    assert torch.allclose(loss_fn(logits, soft), mixed, atol=1e-6)
    one = logits[:, :1]
    mixed_bce = (lam * F.binary_cross_entropy_with_logits(one[:, 0], y.float())
                 + (1 - lam) * F.binary_cross_entropy_with_logits(one[:, 0], y.roll(1).float()))
    assert torch.allclose(loss_fn(one, soft), mixed_bce, atol=1e-6)
