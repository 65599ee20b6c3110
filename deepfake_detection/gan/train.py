"""GAN training loops with exact resume: the real-only game (generative / anomaly) and the hybrid classifier game.

``fit_gan`` trains one generator G and one discriminator D for ``cfg.epochs`` epochs of prepared
uint8 batches (:class:`~..data.batches.BatchReader`, shuffled by (seed, epoch)):

- ``generative`` / ``anomaly`` (seeds 002 and 000): D sees real faces only. Per batch, one D step on
  the real batch and ``G(z)`` (BCE with one-sided smoothing ``cfg.real_label``, or the WGAN loss
  plus ``cfg.gp_weight`` times the gradient penalty), and after every ``cfg.n_critic`` D steps one G
  step (non-saturating BCE, or -E[D(G(z))]) on the same ``G(z)`` through the updated D (the
  PyTorch DCGAN recipe). Two optimizers, two learning rates: TTUR is just ``g_optimizer.lr`` !=
  ``d_optimizer.lr``.
- ``hybrid`` (seed 004): D is a real/fake classifier. Per batch of labelled faces (real 0, fake 1)
  it also sees as many generated faces (label 1) and learns with weighted BCE (``cfg.pos_weight``,
  or the batch's n_real / n_fake); G learns to make D call its faces real.

Per epoch the history row holds the mean D and G losses, the mean absolute gradient of G's last
layer weight over the G steps (seed 002 monitors it for vanishing or exploding gradients), the
gradient penalty (wgan_gp), and for anomaly / hybrid the validation loss and ROC-AUC of the
discriminator as a classifier (``val``). A grid of G's samples at fixed latent vectors (G in eval
mode) is kept per epoch.

Everything random is drawn from the global RNG inside ``torch.random.fork_rng`` seeded with
``cfg.seed`` (latents, the penalty's interpolation weights, dropout), so a run neither reads nor
changes the caller's RNG, and the checkpoint after each epoch (G, D, both optimizers, the RNG
states, history, sample grids, best state) resumes bit for bit. GAN steps run in float32 on every
device (channels_last on CUDA): the gradient penalty's double backward under float16 loss scaling
needs its own unscaling, which buys little at these sizes.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

import numpy as np
import torch
import torch.nn.functional as nnf
from torch import nn

from ..data.batches import BatchReader
from ..training.checkpoints import load_checkpoint, save_checkpoint
from ..training.engine import Runtime, cpu_state, rng_state, set_rng_state, make_optimizer
from .losses import d_loss_bce, d_loss_wgan, g_loss_bce, g_loss_wgan, gradient_penalty, weighted_bce
from .nets import to_net_pixels, to_uint8

HISTORY_KEYS = ("epoch", "d_loss", "g_loss", "g_grad_last", "gradient_penalty", "val_loss", "val_roc_auc")


@dataclass
class GanResult:
    history: list[dict] = field(default_factory=list)    # one row per epoch (HISTORY_KEYS)
    timings: list[dict] = field(default_factory=list)    # seconds and images/s per epoch (never metrics)
    grids: list[np.ndarray] = field(default_factory=list)   # per epoch: uint8 (n, 3, S, S) samples at fixed latents
    best_epoch: int = 0
    best_d_state: dict | None = None   # D selected on validation (anomaly / hybrid), CPU tensors
    val_labels: np.ndarray | None = None
    val_scores: np.ndarray | None = None   # P(fake) of the selected D on the validation faces


def last_layer_weight(generator: nn.Module) -> nn.Parameter:
    """The weight of G's last Conv / ConvTranspose / Linear layer (registration order)."""
    layers = [m for m in generator.modules() if isinstance(m, (nn.Conv2d, nn.ConvTranspose2d, nn.Linear))]
    if not layers:
        raise ValueError(f"{type(generator).__name__} has no Conv2d, ConvTranspose2d or Linear layer")
    return layers[-1].weight


def fixed_latents(n: int, z_dim: int, seed: int) -> torch.Tensor:
    """The latent vectors of the sample grids: N(0, 1) from their own CPU generator, the same every run."""
    return torch.randn(n, z_dim, generator=torch.Generator().manual_seed(seed))


@torch.no_grad()
def sample(generator: nn.Module, z: torch.Tensor, pixels: str, device: torch.device,
           batch_size: int = 256) -> torch.Tensor:
    """uint8 (N, 3, S, S) images of ``generator`` (eval mode, its BN running statistics) at latents ``z``."""
    was_training = generator.training
    generator.eval()
    out = [to_uint8(generator(z[i:i + batch_size].to(device)), pixels).cpu() for i in range(0, len(z), batch_size)]
    generator.train(was_training)
    return torch.cat(out)


def _fake_logit_scores(d: nn.Module, kind: str, x: torch.Tensor) -> torch.Tensor:
    """The fake logit of ``d`` as a classifier: the realness logit negated for anomaly D, as is for hybrid."""
    logits = d(x)
    return -logits if kind == "anomaly" else logits


@torch.no_grad()
def validate(d: nn.Module, val: BatchReader, kind: str, pixels: str, rt: Runtime,
             auc_fn: Callable) -> tuple[np.ndarray, np.ndarray, float, float | None]:
    """(labels, P(fake), BCE loss, ROC-AUC) of D as a classifier on the validation faces (eval mode)."""
    d.eval()
    labels, scores, loss = [], [], 0.0
    for x, y in val.epoch(0):
        logits = _fake_logit_scores(d, kind, rt.layout(to_net_pixels(x, pixels)))[:, 0].float()
        loss += float(nnf.binary_cross_entropy_with_logits(logits, y.float(), reduction="sum"))
        labels.append(y.cpu().numpy())
        scores.append(torch.sigmoid(logits).cpu().numpy())
    d.train()
    y_all = np.concatenate(labels) if labels else np.zeros(0, dtype=int)
    s_all = np.concatenate(scores).astype(np.float64) if scores else np.zeros(0)
    return y_all, s_all, loss / max(len(y_all), 1), auc_fn(y_all, s_all)


def _d_loss(cfg, d: nn.Module, real: torch.Tensor, fake: torch.Tensor) -> tuple[torch.Tensor, float]:
    """(D loss, gradient penalty or 0) of the real-only game; D sees reals and fakes in separate calls (BN)."""
    real_out, fake_out = d(real), d(fake)
    if cfg.loss == "bce":
        return d_loss_bce(real_out, fake_out, cfg.real_label), 0.0
    gp = gradient_penalty(d, real, fake, weight=cfg.gp_weight)
    return d_loss_wgan(real_out, fake_out) + gp, float(gp.detach())


def _hybrid_d_loss(cfg, d: nn.Module, real: torch.Tensor, y: torch.Tensor, fake: torch.Tensor) -> torch.Tensor:
    """Weighted BCE of D on the labelled batch plus the generated faces (label 1)."""
    logits = d(torch.cat([real, fake]))
    targets = torch.cat([y.float(), torch.ones(len(fake), device=y.device)]).unsqueeze(1)
    n_fake = float(targets.sum())
    pos_weight = cfg.pos_weight or (len(targets) - n_fake) / max(n_fake, 1.0)
    return weighted_bce(logits, targets, pos_weight)


def train_epoch(g: nn.Module, d: nn.Module, batches: BatchReader, cfg, kind: str, pixels: str, g_opt, d_opt,
                rt: Runtime, epoch: int) -> dict:
    """One epoch; returns the mean D loss, G loss, G last-layer |grad|, penalty, and counts."""
    g.train()
    d.train()
    last = last_layer_weight(g)
    sums = {"d_loss": 0.0, "g_loss": 0.0, "g_grad_last": 0.0, "gradient_penalty": 0.0}
    d_steps = g_steps = images = 0
    start = time.perf_counter()
    for step, (x, y) in enumerate(batches.epoch(epoch)):
        if cfg.max_batches_per_epoch and step >= cfg.max_batches_per_epoch:
            break
        real = rt.layout(to_net_pixels(x, pixels))
        g_turn = (step + 1) % cfg.n_critic == 0
        z = torch.randn(len(real), g.z_dim, device=rt.device)
        with torch.set_grad_enabled(g_turn):
            fake = g(z)
        d_opt.zero_grad(set_to_none=True)
        if kind == "hybrid":
            d_loss, gp = _hybrid_d_loss(cfg, d, real, y, fake.detach()), 0.0
        else:
            d_loss, gp = _d_loss(cfg, d, real, fake.detach())
        d_loss.backward()
        d_opt.step()
        sums["d_loss"] += float(d_loss.detach())
        sums["gradient_penalty"] += gp
        d_steps += 1
        images += len(real)
        if g_turn:
            g_opt.zero_grad(set_to_none=True)
            out = d(fake)
            if kind == "hybrid":      # G wants D to call its faces real (label 0)
                g_loss = nnf.binary_cross_entropy_with_logits(out, torch.zeros_like(out))
            else:
                g_loss = g_loss_bce(out) if cfg.loss == "bce" else g_loss_wgan(out)
            g_loss.backward()
            sums["g_grad_last"] += float(last.grad.abs().mean())
            g_opt.step()
            sums["g_loss"] += float(g_loss.detach())
            g_steps += 1
    seconds = time.perf_counter() - start
    if d_steps == 0:
        raise ValueError(f"GAN epoch {epoch}: no batch of {batches.batch_size} faces; lower batch_size")
    return {"d_loss": sums["d_loss"] / d_steps, "gradient_penalty": sums["gradient_penalty"] / d_steps,
            "g_loss": sums["g_loss"] / g_steps if g_steps else None,
            "g_grad_last": sums["g_grad_last"] / g_steps if g_steps else None,
            "seconds": seconds, "images": images, "images_per_s": images / seconds if seconds > 0 else 0.0}


def fit_gan(g: nn.Module, d: nn.Module, batches: BatchReader, cfg, kind: str, pixels: str, rt: Runtime,
            checkpoint: Path | None, config_hash: str, *, fixed_z: torch.Tensor, val: BatchReader | None = None,
            auc_fn: Callable | None = None, log=print, on_epoch: Callable[[dict], None] | None = None) -> GanResult:
    """Train G and D (module docstring); resume from ``checkpoint`` when it matches ``config_hash``.

    ``val`` (anomaly, hybrid) scores D as a classifier after each epoch; ``cfg.select`` keeps the
    last or the best-ROC-AUC D (``best_d_state``), whose validation P(fake) the result holds. G and
    D are left in their final state. ``on_epoch(row)`` sees every history row in order, replayed
    rows of a resumed run first.
    """
    if (val is None) != (kind == "generative"):
        raise ValueError(f"fit_gan: {kind} runs {'take no' if kind == 'generative' else 'need'} validation faces")
    with torch.random.fork_rng(devices=rt.rng_devices()):
        torch.manual_seed(cfg.seed)
        return _fit_gan(g, d, batches, cfg, kind, pixels, rt, checkpoint, config_hash, fixed_z, val, auc_fn, log,
                        on_epoch or (lambda row: None))


def _fit_gan(g, d, batches, cfg, kind, pixels, rt, checkpoint, config_hash, fixed_z, val, auc_fn, log,
             on_epoch) -> GanResult:
    rt.place(g)
    rt.place(d)
    g_opt, d_opt = make_optimizer(g.parameters(), cfg.g_optimizer), make_optimizer(d.parameters(), cfg.d_optimizer)
    result, start_epoch, best_value = GanResult(), 1, -math.inf
    state = load_checkpoint(checkpoint, config_hash) if checkpoint else None
    if state is not None:
        g.load_state_dict(state["g"])
        d.load_state_dict(state["d"])
        g_opt.load_state_dict(state["g_opt"])
        d_opt.load_state_dict(state["d_opt"])
        set_rng_state(state, rt)
        result.history, result.timings = state["history"], state["timings"]
        result.grids = [grid.numpy() for grid in state["grids"]]
        result.best_epoch, result.best_d_state, best_value = state["best_epoch"], state["best_d_state"], \
            state["best_value"]
        start_epoch = state["epoch"] + 1
        log(f"train_gan: resumed from {checkpoint} after epoch {state['epoch']}")
        for row in result.history:
            on_epoch(row)
    for epoch in range(start_epoch, cfg.epochs + 1):
        tr = train_epoch(g, d, batches, cfg, kind, pixels, g_opt, d_opt, rt, epoch)
        row = {"epoch": epoch, "d_loss": tr["d_loss"], "g_loss": tr["g_loss"], "g_grad_last": tr["g_grad_last"],
               "gradient_penalty": tr["gradient_penalty"] if cfg.loss == "wgan_gp" else None,
               "val_loss": None, "val_roc_auc": None}
        if val is not None:
            _, _, row["val_loss"], row["val_roc_auc"] = validate(d, val, kind, pixels, rt, auc_fn)
            value = 0.0 if cfg.select == "last" else (-1.0 if row["val_roc_auc"] is None else row["val_roc_auc"])
            if value >= best_value:
                best_value, result.best_epoch, result.best_d_state = value, epoch, cpu_state(d)
        result.history.append(row)
        result.timings.append({"epoch": epoch, "train_seconds": round(tr["seconds"], 3),
                               "train_images_per_s": round(tr["images_per_s"], 1), "train_images": tr["images"]})
        result.grids.append(sample(g, fixed_z, pixels, rt.device).numpy())
        log(f"train_gan: epoch {epoch}/{cfg.epochs} " + " ".join(
            f"{k} {'-' if row[k] is None else format(row[k], '.4g')}" for k in HISTORY_KEYS[1:]
            if k in ("d_loss", "g_loss", "g_grad_last") or row[k] is not None)
            + f" ({tr['images_per_s']:.1f} img/s, {tr['seconds']:.1f} s)")
        if checkpoint:
            save_checkpoint(checkpoint, {
                "config_hash": config_hash, "epoch": epoch, "g": g.state_dict(), "d": d.state_dict(),
                "g_opt": g_opt.state_dict(), "d_opt": d_opt.state_dict(), **rng_state(rt),
                "history": result.history, "timings": result.timings,
                "grids": [torch.from_numpy(grid) for grid in result.grids], "best_epoch": result.best_epoch,
                "best_d_state": result.best_d_state, "best_value": best_value})
        on_epoch(row)
    if val is not None:
        final_d = cpu_state(d)
        d.load_state_dict(result.best_d_state)
        result.val_labels, result.val_scores, _, _ = validate(d, val, kind, pixels, rt, auc_fn)
        d.load_state_dict(final_d)
    return result
