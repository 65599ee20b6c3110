"""Training and inference as plain functions with explicit arguments (after DETR's engine.py).

``fit`` runs the epochs on :class:`~..data.batches.BatchReader` batches augmented on the device
(:class:`~..data.batch_augment.TrainAugment`, one seed per batch from ``batch_seed(seed, epoch,
step)``; :class:`~..data.batch_augment.EvalAugment` for validation), keeps the model selected on
validation data (never a test set) and the last epoch's, and saves a checkpoint after every
epoch from which a resumed run continues bit for bit: model, optimizer, scheduler, GradScaler, the
CPU and CUDA RNG states (dropout draws from them), the history and the best state. ``fit`` runs
inside ``torch.random.fork_rng`` seeded from the run's seed, so it neither reads nor changes the
caller's global RNG. ``predict`` returns labels and P(fake). CUDA runs use AMP (float16 +
GradScaler) and channels_last; CPU runs use neither. Every loop over batches shows a tqdm bar when
stderr is a TTY.

The head comes from the builder's metadata (``models.model_info(builder).head``), never from the
output's shape: ``"softmax2"`` (two logits, cross-entropy) or ``"logit"`` (one fake logit,
BCE-with-logits). Parameters a builder froze (``requires_grad=False``) get no optimizer slot and
no L2 penalty, and BatchNorm layers whose parameters are all frozen stay in eval mode while the
rest trains (Keras ``trainable=False`` semantics: frozen BN uses, and keeps, its running stats).
"""

from __future__ import annotations

import itertools
import math
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn
from tqdm.auto import tqdm

from ..data.batch_augment import EvalAugment, TrainAugment, batch_seed, seed_generators
from ..data.batches import BatchReader
from ..model_specs import HEADS
from ..models.registry import fake_probability
from .checkpoints import load_checkpoint, save_checkpoint

HISTORY_KEYS = ("epoch", "lr", "train_loss", "train_accuracy", "val_loss", "val_accuracy", "val_roc_auc")


@dataclass
class Runtime:
    """Where and how batches run: the device, AMP and channels_last (both on CUDA only)."""

    device: torch.device
    amp: bool
    channels_last: bool

    @classmethod
    def for_device(cls, device: torch.device) -> "Runtime":
        cuda = device.type == "cuda"
        return cls(device=device, amp=cuda, channels_last=cuda)

    def place(self, model: nn.Module) -> nn.Module:
        """Move ``model`` to the device, in channels_last layout on CUDA."""
        model.to(self.device)
        return model.to(memory_format=torch.channels_last) if self.channels_last else model

    def layout(self, x: torch.Tensor) -> torch.Tensor:
        """An augmented float batch in the model's memory format (channels_last on CUDA)."""
        return x.contiguous(memory_format=torch.channels_last) if self.channels_last else x

    def autocast(self):
        return torch.autocast(self.device.type, dtype=torch.float16, enabled=self.amp)

    def rng_devices(self) -> list[torch.device]:
        """The CUDA devices whose RNG ``fit`` forks and checkpoints (none on CPU)."""
        return [self.device] if self.device.type == "cuda" else []


def make_optimizer(parameters, opt) -> torch.optim.Optimizer:
    params = [p for p in parameters if p.requires_grad]
    if opt.name == "adam":
        return torch.optim.Adam(params, lr=opt.lr, betas=tuple(opt.betas), weight_decay=opt.weight_decay)
    if opt.name == "adamw":
        return torch.optim.AdamW(params, lr=opt.lr, betas=tuple(opt.betas), weight_decay=opt.weight_decay)
    return torch.optim.SGD(params, lr=opt.lr, momentum=opt.momentum, weight_decay=opt.weight_decay)


def make_scheduler(optimizer, sch, epochs: int):
    """Stepped once per epoch; epoch ``e`` (from 1) trains at ``lr * gamma ** (e - 1)`` under "exponential"."""
    if sch.name == "step":
        return torch.optim.lr_scheduler.StepLR(optimizer, step_size=sch.step_size, gamma=sch.gamma)
    if sch.name == "cosine":
        return torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, T_max=sch.t_max or epochs)
    if sch.name == "exponential":
        return torch.optim.lr_scheduler.ExponentialLR(optimizer, gamma=sch.gamma)
    return None


def _check_head(logits: torch.Tensor, head: str) -> None:
    if head not in HEADS:
        raise ValueError(f"head {head!r} is not one of {sorted(HEADS)}")
    if logits.ndim != 2 or logits.shape[1] != HEADS[head]:
        raise ValueError(f"head {head!r} needs (N, {HEADS[head]}) logits, got {tuple(logits.shape)}: the "
                         f"builder's declared head and its output disagree; fix the builder's metadata")


def loss_fn(logits: torch.Tensor, y: torch.Tensor, head: str) -> torch.Tensor:
    """Cross-entropy for head "softmax2", BCE-with-logits for head "logit"; ``y`` may be soft P(fake).

    A soft target ``lam * onehot(a) + (1 - lam) * onehot(b)`` (CutMix / MixUp) gives exactly
    ``lam * CE(a) + (1 - lam) * CE(b)``, the mixed loss of the reports, since CE is linear in it
    (BCE likewise). Logits whose shape does not fit ``head`` raise ValueError.
    """
    _check_head(logits, head)
    if head == "logit":
        return F.binary_cross_entropy_with_logits(logits[:, 0].float(), y.float())
    if y.dtype.is_floating_point:   # soft target = P(fake)
        logp = F.log_softmax(logits.float(), dim=1)
        return -(y * logp[:, 1] + (1 - y) * logp[:, 0]).mean()
    return F.cross_entropy(logits.float(), y)


# Keras kernel_regularizer acts on kernels: conv and dense weights, never biases or BatchNorm.
PENALISED = (nn.Conv1d, nn.Conv2d, nn.Conv3d, nn.ConvTranspose1d, nn.ConvTranspose2d, nn.ConvTranspose3d,
             nn.Linear)


def penalised_weights(model: nn.Module) -> list[nn.Parameter]:
    """The ``weight`` of every conv and linear layer that trains (each shared tensor once)."""
    seen, out = set(), []
    for module in model.modules():
        w = getattr(module, "weight", None) if isinstance(module, PENALISED) else None
        if isinstance(w, nn.Parameter) and w.requires_grad and id(w) not in seen:
            seen.add(id(w))
            out.append(w)
    return out


def l2_penalty(model: nn.Module) -> torch.Tensor:
    """Sum of squared weights of :func:`penalised_weights` (float32 scalar; 0 when there are none).

    ``l2 * l2_penalty(model)`` is Keras' ``kernel_regularizer=l2(l2)`` summed over the layers:
    its gradient is ``2 * l2 * w`` on each penalised weight and nothing elsewhere.
    """
    weights = penalised_weights(model)
    if not weights:
        return torch.zeros((), device=next((p.device for p in model.parameters()), None))
    return torch.stack([w.float().pow(2).sum() for w in weights]).sum()


def keep_frozen_norms_in_eval(model: nn.Module) -> None:
    """Put every BatchNorm whose affine parameters are all frozen back in eval mode.

    ``model.train()`` would otherwise update the running statistics of layers the builder froze
    (Keras' ``trainable = False`` runs them in inference mode).
    """
    for module in model.modules():
        if isinstance(module, nn.modules.batchnorm._BatchNorm):
            params = list(module.parameters(recurse=False))
            if params and not any(p.requires_grad for p in params):
                module.eval()


def _batches(batches, epoch: int, desc: str, max_batches: int = 0):
    """The epoch's batches behind a tqdm bar (quiet when stderr is not a TTY), cut at ``max_batches``."""
    total = min(len(batches), max_batches) if max_batches else len(batches)
    it = batches.epoch(epoch)
    return tqdm(itertools.islice(it, total), total=total, desc=desc, disable=None, leave=False)


def train_one_epoch(model: nn.Module, batches: BatchReader, augment: TrainAugment, optimizer, rt: Runtime,
                    scaler, seed: int, epoch: int, max_batches: int = 0, *, head: str, l2: float = 0.0) -> dict:
    """One pass over ``batches.epoch(epoch)``; batch ``step`` is augmented with ``batch_seed(seed, epoch, step)``.

    With CutMix / MixUp the loss is taken on the soft P(fake) targets; the accuracy is always
    against the images' own labels. With ``l2 > 0`` the optimised loss adds
    ``l2 * l2_penalty(model)``; the returned ``loss`` is the data loss alone (comparable with the
    validation loss and across ``l2`` values).
    """
    model.train()
    keep_frozen_norms_in_eval(model)
    total_loss, correct, seen, start = 0.0, 0, 0, time.perf_counter()
    for step, (x, y) in enumerate(_batches(batches, epoch, f"train {epoch}", max_batches)):
        x, target = augment(x, y, batch_seed(seed, epoch, step))
        with rt.autocast():
            logits = model(rt.layout(x))
        loss = loss_fn(logits, target, head)
        objective = loss + l2 * l2_penalty(model) if l2 > 0 else loss
        optimizer.zero_grad(set_to_none=True)
        scaler.scale(objective).backward()
        scaler.step(optimizer)
        scaler.update()
        pred = (fake_probability(logits.detach(), head) >= 0.5).long()
        total_loss += float(loss.detach()) * len(y)
        correct += int((pred == y).sum())
        seen += len(y)
    seconds = time.perf_counter() - start
    return {"loss": total_loss / max(seen, 1), "accuracy": correct / max(seen, 1), "images": seen,
            "seconds": seconds, "images_per_s": seen / seconds if seconds > 0 else 0.0}


@torch.no_grad()
def predict(model: nn.Module, batches: BatchReader, augment: EvalAugment,
            rt: Runtime, *, head: str) -> tuple[np.ndarray, np.ndarray, float]:
    """(labels, P(fake), mean loss) over ``batches`` (unshuffled: in row order)."""
    model.eval()
    labels, scores, total_loss = [], [], 0.0
    for x, y in _batches(batches, 0, "predict"):
        with rt.autocast():
            logits = model(rt.layout(augment(x)))
        total_loss += float(loss_fn(logits, y, head)) * len(y)
        labels.append(y.cpu().numpy())
        scores.append(fake_probability(logits, head).cpu().numpy())
    y_all = np.concatenate(labels) if labels else np.zeros(0, dtype=int)
    s_all = np.concatenate(scores).astype(np.float64) if scores else np.zeros(0)
    return y_all, s_all, total_loss / max(len(y_all), 1)


@dataclass
class FitResult:
    history: list[dict] = field(default_factory=list)      # deterministic rows (HISTORY_KEYS)
    timings: list[dict] = field(default_factory=list)      # per epoch: seconds, images/s (not metrics)
    best_epoch: int = 0
    best_state: dict | None = None      # selected on validation (``cfg.select``), CPU tensors
    last_state: dict | None = None      # after the final epoch, CPU tensors
    val_labels: np.ndarray | None = None
    val_scores: np.ndarray | None = None


def _selection_value(select: str, val_auc: float | None, val_loss: float) -> float:
    if select == "best_val_auc":
        return -1.0 if val_auc is None else val_auc
    if select == "best_val_loss":
        return -val_loss
    return 0.0   # "last": every epoch ties, the later one wins


def rng_state(rt: Runtime) -> dict:
    return {"cpu_rng": torch.get_rng_state(),
            "cuda_rng": [torch.cuda.get_rng_state(d) for d in rt.rng_devices()]}


def set_rng_state(state: dict, rt: Runtime) -> None:
    torch.set_rng_state(state["cpu_rng"])
    for d, s in zip(rt.rng_devices(), state.get("cuda_rng") or []):
        torch.cuda.set_rng_state(s, d)


def fit(model: nn.Module, train: BatchReader, val: BatchReader, augment: TrainAugment, eval_augment: EvalAugment,
        cfg, rt: Runtime, checkpoint: Path | None, config_hash: str, auc_fn, log=print,
        seed: int | None = None, on_epoch: Callable[[dict], None] | None = None, *, head: str) -> FitResult:
    """Train for ``cfg.epochs`` epochs, resuming from ``checkpoint`` when it matches the config.

    ``head`` is the builder's declared head ("softmax2" or "logit"); ``cfg.l2`` adds the L2
    penalty of :func:`l2_penalty`. The result holds the validation-selected state and the last
    epoch's (the model is left holding the selected one).

    ``seed`` (default: ``cfg.seed``, the first of ``cfg.seeds``) seeds the forked global RNG
    (dropout), each batch's augmentation and, through ``train.seed``, the shuffle order (both
    functions of (seed, epoch, step) only). ``on_epoch(row)`` is called with every history row
    in order, the rows a resumed run replays from its checkpoint first, so a fresh logger sees
    the whole run. The checkpoint holds only tensors and plain data (it loads with
    ``weights_only=True``).
    """
    seed = cfg.seed if seed is None else seed
    with torch.random.fork_rng(devices=rt.rng_devices()):
        seed_generators(seed, rt.device)
        return _fit(model, train, val, augment, eval_augment, cfg, rt, checkpoint, config_hash, auc_fn, log,
                    seed, on_epoch or (lambda row: None), head)


def cpu_state(model: nn.Module) -> dict:
    """A detached CPU copy of the model's state dict (it does not alias the live tensors)."""
    return {k: v.detach().cpu().clone() for k, v in model.state_dict().items()}


def _fit(model, train, val, augment, eval_augment, cfg, rt, checkpoint, config_hash, auc_fn, log, seed,
         on_epoch, head) -> FitResult:
    rt.place(model)
    augment.to(rt.device)
    optimizer = make_optimizer(model.parameters(), cfg.optimizer)
    scheduler = make_scheduler(optimizer, cfg.scheduler, cfg.epochs)
    scaler = torch.amp.GradScaler(rt.device.type, enabled=rt.amp)
    result, start_epoch, best_value = FitResult(), 1, -math.inf
    state = load_checkpoint(checkpoint, config_hash) if checkpoint else None
    if state is not None:
        model.load_state_dict(state["model"])
        optimizer.load_state_dict(state["optimizer"])
        if scheduler is not None and state.get("scheduler"):
            scheduler.load_state_dict(state["scheduler"])
        if state.get("scaler"):
            scaler.load_state_dict(state["scaler"])
        set_rng_state(state, rt)
        result.history, result.timings = state["history"], state["timings"]
        result.best_epoch, result.best_state, best_value = state["best_epoch"], state["best_state"], state["best_value"]
        start_epoch = state["epoch"] + 1
        log(f"train: resumed from {checkpoint} after epoch {state['epoch']}")
        for row in result.history:
            on_epoch(row)
    for epoch in range(start_epoch, cfg.epochs + 1):
        lr = optimizer.param_groups[0]["lr"]
        tr = train_one_epoch(model, train, augment, optimizer, rt, scaler, seed, epoch, cfg.max_batches_per_epoch,
                             head=head, l2=cfg.l2)
        start = time.perf_counter()
        y_val, s_val, val_loss = predict(model, val, eval_augment, rt, head=head)
        val_seconds = time.perf_counter() - start
        val_auc = auc_fn(y_val, s_val)
        val_acc = float(((s_val >= 0.5).astype(int) == y_val).mean()) if len(y_val) else float("nan")
        if scheduler is not None:
            scheduler.step()
        row = {"epoch": epoch, "lr": lr, "train_loss": tr["loss"], "train_accuracy": tr["accuracy"],
               "val_loss": val_loss, "val_accuracy": val_acc, "val_roc_auc": val_auc}
        result.history.append(row)
        result.timings.append({"epoch": epoch, "train_seconds": round(tr["seconds"], 3),
                               "train_images_per_s": round(tr["images_per_s"], 1),
                               "val_seconds": round(val_seconds, 3), "train_images": tr["images"]})
        value = _selection_value(cfg.select, val_auc, val_loss)
        if value >= best_value:
            best_value, result.best_epoch = value, epoch
            result.best_state = cpu_state(model)
        log(f"train: epoch {epoch}/{cfg.epochs} loss {tr['loss']:.4f} acc {tr['accuracy']:.3f} "
            f"val_loss {val_loss:.4f} val_auc {val_auc if val_auc is None else round(val_auc, 4)} "
            f"({tr['images_per_s']:.1f} img/s, {tr['seconds']:.1f} s train, {val_seconds:.1f} s val)")
        if checkpoint:
            save_checkpoint(checkpoint, {
                "config_hash": config_hash, "epoch": epoch, "model": model.state_dict(),
                "optimizer": optimizer.state_dict(),
                "scheduler": scheduler.state_dict() if scheduler is not None else None,
                "scaler": scaler.state_dict() if scaler.is_enabled() else None, **rng_state(rt),
                "history": result.history, "timings": result.timings, "best_epoch": result.best_epoch,
                "best_state": result.best_state, "best_value": best_value})
        on_epoch(row)
    result.last_state = cpu_state(model)   # also right after a resume that had no epoch left to run
    model.load_state_dict(result.best_state)
    result.val_labels, result.val_scores, _ = predict(model, val, eval_augment, rt, head=head)
    return result
