"""GAN training loops: one short step of every params.yaml GAN variant, exact resume, the caller's RNG.

Tiny random uint8 faces stand in for the prepared array; the variants' own networks run at their
demo size for one step (``max_batches_per_epoch``), the resume tests use small nets.
"""

from __future__ import annotations

import copy
import dataclasses

import numpy as np
import pytest
import torch
import yaml

from deepfake_detection.data.batches import BatchReader
from deepfake_detection.evaluation.metrics import roc_auc
from deepfake_detection.gan.nets import create_gan_net, gan_net_info
from deepfake_detection.gan.train import fit_gan, fixed_latents, last_layer_weight
from deepfake_detection.params import GanVariantParams, from_dict
from deepfake_detection.training.engine import Runtime
from tests.conftest import REPO

RT = Runtime.for_device(torch.device("cpu"))
VARIANTS = yaml.safe_load((REPO / "params.yaml").read_text())["gan_variants"]


def _faces(n: int, size: int, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    labels = np.arange(n) % 2
    images = rng.integers(0, 200, (n, size, size, 3), dtype=np.uint8)
    images[labels == 1, :, :, 0] = 255        # fakes are redder: the hybrid D can learn it
    return images, labels


def _cfg(raw: dict, **over) -> GanVariantParams:
    raw = copy.deepcopy(raw)
    raw.update(over)
    return from_dict(GanVariantParams, raw, "test")


def _nets(cfg: GanVariantParams, seed: int = 0):
    torch.manual_seed(seed)
    return create_gan_net(cfg.generator.builder, **cfg.generator.kwargs), \
        create_gan_net(cfg.discriminator.builder, **cfg.discriminator.kwargs)


def _readers(cfg: GanVariantParams, n: int = 16):
    images, labels = _faces(n, cfg.prepared_size)
    rows = np.arange(n) if cfg.kind == "hybrid" else np.flatnonzero(labels == 0)
    train = BatchReader(images, labels, rows, cfg.batch_size, shuffle=True, seed=cfg.seed, drop_last=True)
    val = None if cfg.kind == "generative" else BatchReader(images, labels, np.arange(n), 8, shuffle=False)
    return train, val


def _fit(cfg, g, d, checkpoint=None, on_epoch=None):
    train, val = _readers(cfg, n=max(16, 2 * cfg.batch_size * cfg.max_batches_per_epoch))
    return fit_gan(g, d, train, cfg, cfg.kind, gan_net_info(cfg.generator.builder).pixels, RT, checkpoint, "h",
                   fixed_z=fixed_latents(4, g.z_dim, cfg.seed), val=val,
                   auc_fn=None if val is None else roc_auc, log=lambda m: None, on_epoch=on_epoch)


@pytest.mark.parametrize("name", sorted(VARIANTS))
def test_one_step_of_every_variant_updates_both_nets(name):
    cfg = _cfg(VARIANTS[name], epochs=1, batch_size=4)
    cfg = dataclasses.replace(cfg, max_batches_per_epoch=cfg.n_critic)   # exactly one G step
    g, d = _nets(cfg)
    g0 = {k: v.clone() for k, v in g.state_dict().items()}
    d0 = {k: v.clone() for k, v in d.state_dict().items()}
    result = _fit(cfg, g, d)
    row = result.history[0]
    assert row["epoch"] == 1 and np.isfinite(row["d_loss"]) and np.isfinite(row["g_loss"])
    assert row["g_grad_last"] > 0
    assert (row["gradient_penalty"] is not None) == (cfg.loss == "wgan_gp")
    assert (row["val_roc_auc"] is not None) == (cfg.kind != "generative")
    assert not torch.equal(last_layer_weight(g).detach(), g0[_last_key(g)])
    changed_d = [k for k, v in d.state_dict().items() if v.is_floating_point() and not torch.equal(v, d0[k])]
    assert changed_d, "the discriminator did not train"
    size = cfg.prepared_size
    assert result.grids[0].shape == (4, 3, size, size) and result.grids[0].dtype == np.uint8


def _last_key(g) -> str:
    weight = last_layer_weight(g)
    return next(k for k, v in g.named_parameters() if v is weight)


SMALL = {
    "bce": {"kind": "generative", "prepared_size": 32, "loss": "bce", "real_label": 0.9,
            "generator": {"builder": "dcgan224_generator", "kwargs": {"width": 4, "size": 32, "z_dim": 8}},
            "discriminator": {"builder": "dcgan224_discriminator", "kwargs": {"width": 4, "size": 32}},
            "g_optimizer": {"lr": 0.001}, "d_optimizer": {"lr": 0.0005}, "batch_size": 4},
    "wgan_gp": {"kind": "generative", "prepared_size": 32, "loss": "wgan_gp", "n_critic": 2,
                "generator": {"builder": "dcgan224_generator", "kwargs": {"width": 4, "size": 32, "z_dim": 8}},
                "discriminator": {"builder": "dcgan224_discriminator", "kwargs": {"width": 4, "size": 32}},
                "batch_size": 4},
    "anomaly": {"kind": "anomaly", "prepared_size": 32, "loss": "bce", "datasets": ["x"],
                "generator": {"builder": "dcgan224_generator", "kwargs": {"width": 4, "size": 32, "z_dim": 8}},
                "discriminator": {"builder": "dcgan224_discriminator", "kwargs": {"width": 4, "size": 32}},
                "batch_size": 4, "select": "best_val_auc"},
    "hybrid": {"kind": "hybrid", "prepared_size": 32, "loss": "bce", "datasets": ["x"],
               "generator": {"builder": "hybrid_generator", "kwargs": {"width": 4, "z_dim": 8, "size": 32}},
               "discriminator": {"builder": "hybrid_resnet34_discriminator"}, "batch_size": 4,
               "select": "best_val_auc"},
}


class Stop(Exception):
    pass


def _stop_after(epoch: int):
    def on_epoch(row):
        if row["epoch"] == epoch:
            raise Stop
    return on_epoch


@pytest.mark.parametrize("kind", ["bce", "wgan_gp", "anomaly", "hybrid"])
def test_a_run_stopped_after_epoch_1_and_resumed_equals_an_uninterrupted_run(kind, tmp_path):
    epochs, batches = (2, 1) if kind == "hybrid" else (3, 2)   # the hybrid's ResNet-34 is the slow one
    cfg = _cfg(SMALL[kind], epochs=epochs, max_batches_per_epoch=batches)
    g, d = _nets(cfg)
    whole = _fit(cfg, g, d)
    g2, d2 = _nets(cfg)
    ckpt = tmp_path / "last.pt"
    with pytest.raises(Stop):
        _fit(cfg, g2, d2, ckpt, on_epoch=_stop_after(1))
    g3, d3 = _nets(cfg, seed=99)              # other initial weights: the checkpoint must replace them
    seen = []
    resumed = _fit(cfg, g3, d3, ckpt, on_epoch=seen.append)
    assert [r["epoch"] for r in seen] == list(range(1, epochs + 1))
    assert resumed.history == whole.history
    for a, b in ((g, g3), (d, d3)):
        for (k, v), w in zip(a.state_dict().items(), b.state_dict().values()):
            assert torch.equal(v, w), k
    assert all(np.array_equal(x, y) for x, y in zip(whole.grids, resumed.grids)) and len(resumed.grids) == epochs
    if cfg.kind != "generative":
        assert resumed.best_epoch == whole.best_epoch
        assert np.array_equal(resumed.val_scores, whole.val_scores)


def test_fit_gan_leaves_the_callers_rng_alone():
    cfg = _cfg(SMALL["wgan_gp"], epochs=1, max_batches_per_epoch=2)
    g, d = _nets(cfg)
    torch.manual_seed(123)
    before = torch.get_rng_state()
    _fit(cfg, g, d)
    assert torch.equal(torch.get_rng_state(), before)


def test_anomaly_scores_are_one_minus_the_realness():
    from deepfake_detection.gan.train import validate

    cfg = _cfg(SMALL["anomaly"])
    _, d = _nets(cfg)
    _, val = _readers(cfg)
    y, s, _, _ = validate(d, val, "anomaly", "half", RT, roc_auc)
    x = torch.as_tensor(_faces(16, 32)[0]).permute(0, 3, 1, 2).float() / 127.5 - 1
    d.eval()
    with torch.no_grad():
        realness = torch.sigmoid(d(x))[:, 0].double().numpy()
    np.testing.assert_allclose(s, 1 - realness, atol=1e-6)
    assert y.tolist() == (np.arange(16) % 2).tolist()


def test_a_generative_run_takes_no_validation_faces():
    cfg = _cfg(SMALL["bce"])
    g, d = _nets(cfg)
    train, _ = _readers(cfg)
    with pytest.raises(ValueError, match="generative runs take no validation faces"):
        fit_gan(g, d, train, cfg, "generative", "half", RT, None, "h", fixed_z=fixed_latents(4, 8, 0),
                val=train, auc_fn=roc_auc)
