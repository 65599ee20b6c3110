"""engine.fit / predict on BatchReader batches: learning, selection, exact resume, RNG isolation, losses,
the head-aware loss, the L2 penalty, the exponential schedule, frozen layers and the last epoch's state."""

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from deepfake_detection.data.batch_augment import EvalAugment, TrainAugment
from deepfake_detection.data.batches import BatchReader
from deepfake_detection.evaluation.metrics import roc_auc
from deepfake_detection.models.registry import fake_probability
from deepfake_detection.params import AugmentParams, MixParams, TrainParams, from_dict
from deepfake_detection.training.engine import (HISTORY_KEYS, Runtime, fit, l2_penalty, loss_fn, make_scheduler,
                                                penalised_weights)

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


def _run(cfg, checkpoint=None, config_hash="h", device="cpu", dropout=0.0, model=None, auc_fn=roc_auc, **kw):
    """fit on 64 train / 32 val images; the shuffle seed is fit's seed, as the train stage sets it."""
    images, labels = _images()
    dev = torch.device(device)
    train = BatchReader(images, labels, np.arange(64), cfg.batch_size, shuffle=True, seed=kw.get("seed", cfg.seed),
                        drop_last=True, device=dev)
    val = BatchReader(images, labels, np.arange(64, 96), 32, shuffle=False, device=dev)
    return fit(model or _model(dropout), train, val, TrainAugment(cfg.augment, "half", mix=cfg.mix),
               EvalAugment(cfg.augment, "half"), cfg, Runtime.for_device(dev), checkpoint, config_hash,
               auc_fn, log=lambda m: None, **{"head": "softmax2", **kw})


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
    assert a.last_state.keys() == b.last_state.keys()
    assert all(torch.equal(a.last_state[k], b.last_state[k]) for k in a.last_state)
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
    assert torch.allclose(loss_fn(logits, y, "softmax2"), F.cross_entropy(logits, y))
    assert torch.allclose(loss_fn(logits, y.float(), "softmax2"), F.cross_entropy(logits, y))
    one = torch.tensor([[0.3], [-2.0]])
    assert torch.allclose(loss_fn(one, y, "logit"), F.binary_cross_entropy_with_logits(one[:, 0], y.float()))


def test_the_declared_head_decides_never_the_shape():
    two = torch.tensor([[0.2, -0.3], [1.0, 0.5]])
    y = torch.tensor([1, 0])
    # a 2-logit model declared "logit" (or a 1-logit one declared "softmax2") is an error, not a guess
    with pytest.raises(ValueError, match=r"head 'logit' needs \(N, 1\) logits, got \(2, 2\)"):
        loss_fn(two, y, "logit")
    with pytest.raises(ValueError, match=r"head 'logit' expects logits of shape \(N, 1\), got \(2, 2\)"):
        fake_probability(two, "logit")
    with pytest.raises(ValueError, match=r"head 'softmax2' needs \(N, 2\) logits, got \(2, 1\)"):
        loss_fn(two[:, :1], y, "softmax2")
    with pytest.raises(ValueError, match=r"head 'sigmoid' is not one of \['logit', 'softmax2'\]"):
        loss_fn(two, y, "sigmoid")
    # P(fake): sigmoid of the one logit; softmax's fake column: 1 / (1 + e^(0.2 - (-0.3)))
    torch.testing.assert_close(fake_probability(torch.tensor([[0.0], [2.0]]), "logit"),
                               torch.tensor([0.5, 1 / (1 + np.exp(-2.0))], dtype=torch.float32))
    torch.testing.assert_close(fake_probability(two, "softmax2"),
                               torch.tensor([1 / (1 + np.exp(0.5)), 1 / (1 + np.exp(0.5))], dtype=torch.float32))
    # fit with a model whose head disagrees with its declaration stops at the first batch
    with pytest.raises(ValueError, match="head 'logit' needs"):
        _run(_cfg(epochs=1), head="logit")


def test_a_one_logit_model_trains_with_bce():
    torch.manual_seed(0)
    model = torch.nn.Sequential(torch.nn.Conv2d(3, 4, 3), torch.nn.AdaptiveAvgPool2d(1), torch.nn.Flatten(),
                                torch.nn.Linear(4, 1))
    res = _run(_cfg(epochs=3), model=model, head="logit")
    assert max(h["val_roc_auc"] for h in res.history) > 0.9
    assert res.val_scores.min() >= 0 and res.val_scores.max() <= 1


def _l2_model():
    torch.manual_seed(0)
    shared = torch.nn.Linear(3, 3)
    model = torch.nn.Sequential(torch.nn.Conv2d(3, 2, 3), torch.nn.BatchNorm2d(2), torch.nn.ReLU(),
                                torch.nn.Conv2d(2, 3, 1), torch.nn.AdaptiveAvgPool2d(1), torch.nn.Flatten(),
                                shared, shared, torch.nn.Linear(3, 1))
    model[3].weight.requires_grad_(False)     # frozen: it trains no more, so no penalty
    return model


def test_l2_penalty_is_the_hand_sum_over_trainable_conv_and_linear_weights():
    model = _l2_model()
    w = [model[0].weight, model[6].weight, model[8].weight]   # the shared Linear once, the frozen conv never
    assert penalised_weights(model) == w
    hand = sum(float((p.detach().double() ** 2).sum()) for p in w)
    assert float(l2_penalty(model).detach()) == pytest.approx(hand, rel=1e-6)
    assert float(l2_penalty(torch.nn.Sequential(torch.nn.ReLU()))) == 0.0


def test_l2_gradient_is_exactly_2_l2_w_and_zero_on_biases_and_batchnorm():
    model = _l2_model()
    l2 = 0.01
    (l2 * l2_penalty(model)).backward()
    for p in (model[0].weight, model[6].weight, model[8].weight):
        assert torch.equal(p.grad, l2 * (2 * p.detach()))
    for p in (model[0].bias, model[1].weight, model[1].bias, model[3].bias, model[6].bias, model[8].bias):
        assert p.grad is None or torch.equal(p.grad, torch.zeros_like(p))
    assert model[3].weight.grad is None


def test_l2_enters_the_objective_but_not_the_reported_loss():
    # One SGD step on one batch: w1 = w0 - lr * (g + 2 * l2 * w0), so the penalised and plain
    # runs differ by lr * 2 * l2 * w0 on the weights, not at all on the biases, and report the
    # same (data) loss for the batch.
    sgd = {"name": "sgd", "lr": 0.1, "momentum": 0.0}
    plain = _run(_cfg(epochs=1, optimizer=sgd, max_batches_per_epoch=1, select="last"))
    penalised = _run(_cfg(epochs=1, optimizer=sgd, max_batches_per_epoch=1, select="last", l2=0.5))
    w0 = _model().state_dict()
    for key in ("0.weight", "4.weight"):
        torch.testing.assert_close(plain.last_state[key] - penalised.last_state[key], 0.1 * 2 * 0.5 * w0[key],
                                   atol=1e-6, rtol=0)
    for key in ("0.bias", "4.bias"):
        assert torch.equal(plain.last_state[key], penalised.last_state[key])
    assert plain.history[0]["train_loss"] == penalised.history[0]["train_loss"]
    with pytest.raises(Exception, match="train.l2: must be >= 0"):
        _cfg(l2=-1.0)


def test_exponential_schedule_is_lr_times_gamma_to_the_epoch():
    res = _run(_cfg(epochs=4, optimizer={"name": "adam", "lr": 0.1}, scheduler={"name": "exponential",
                                                                                 "gamma": 0.5}))
    assert [h["lr"] for h in res.history] == [0.1, 0.05, 0.025, 0.0125]
    opt = torch.optim.SGD([torch.nn.Parameter(torch.zeros(1))], lr=0.01)
    sch = make_scheduler(opt, _cfg(scheduler={"name": "exponential", "gamma": 0.9}).scheduler, epochs=5)
    lrs = []
    for _ in range(5):
        lrs.append(opt.param_groups[0]["lr"])
        opt.step()
        sch.step()
    np.testing.assert_allclose(lrs, [0.01 * 0.9 ** e for e in range(5)], rtol=1e-12)   # Keras staircase decay


def _auc_sequence(values):
    it = iter(values)
    return lambda y, s: next(it)


def test_last_state_is_the_final_epoch_and_differs_from_an_earlier_best(tmp_path):
    cfg = _cfg(epochs=3)
    res = _run(cfg, tmp_path / "ckpt.pt", auc_fn=_auc_sequence([0.9, 0.5, 0.4]))   # epoch 1 is best
    assert res.best_epoch == 1
    final = torch.load(tmp_path / "ckpt.pt", weights_only=True)
    assert final["epoch"] == 3
    assert all(torch.equal(res.last_state[k], final["model"][k]) for k in final["model"])
    assert all(v.device.type == "cpu" for v in res.last_state.values())
    assert not torch.equal(res.last_state["4.weight"], res.best_state["4.weight"])
    last = _run(_cfg(epochs=3, select="last"))             # same training, the last epoch selected
    assert all(torch.equal(res.last_state[k], last.best_state[k]) for k in last.best_state)


def test_a_resume_after_the_final_epoch_keeps_last_state(tmp_path):
    cfg = _cfg(epochs=2, augment=AUG)
    straight = _run(cfg)
    with pytest.raises(Stop):
        _run(cfg, tmp_path / "c.pt", on_epoch=_stop_after(2))    # killed after the last checkpoint
    _assert_same_run(_run(cfg, tmp_path / "c.pt"), straight)    # nothing left to train: same states


def test_frozen_layers_stay_frozen_batchnorm_statistics_included():
    torch.manual_seed(0)
    model = torch.nn.Sequential(torch.nn.Conv2d(3, 4, 3), torch.nn.BatchNorm2d(4), torch.nn.ReLU(),
                                torch.nn.Conv2d(4, 4, 1), torch.nn.BatchNorm2d(4),
                                torch.nn.AdaptiveAvgPool2d(1), torch.nn.Flatten(), torch.nn.Linear(4, 2))
    for p in [*model[0].parameters(), *model[1].parameters()]:
        p.requires_grad_(False)
    before = {k: v.clone() for k, v in model.state_dict().items()}
    res = _run(_cfg(epochs=2, l2=0.01, optimizer={"name": "adamw", "lr": 0.01, "weight_decay": 0.1}), model=model)
    for key in ("0.weight", "0.bias", "1.weight", "1.bias", "1.running_mean", "1.running_var"):
        assert torch.equal(res.last_state[key], before[key]), key
    assert not model[0].weight.requires_grad and not model[1].bias.requires_grad
    for key in ("3.weight", "4.weight", "4.running_mean", "7.weight"):
        assert not torch.equal(res.last_state[key], before[key]), key


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
    assert torch.allclose(loss_fn(logits, soft, "softmax2"), mixed, atol=1e-6)
    one = logits[:, :1]
    mixed_bce = (lam * F.binary_cross_entropy_with_logits(one[:, 0], y.float())
                 + (1 - lam) * F.binary_cross_entropy_with_logits(one[:, 0], y.roll(1).float()))
    assert torch.allclose(loss_fn(one, soft, "logit"), mixed_bce, atol=1e-6)
