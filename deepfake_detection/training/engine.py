"""Training and inference as plain functions with explicit arguments (after DETR's engine.py).

``fit`` runs the epochs, keeps the model selected on validation data (never a test set), and
saves a resumable checkpoint after every epoch; ``predict`` returns labels and P(fake).
CUDA runs use AMP (float16 + GradScaler) and channels_last; CPU runs use neither.
"""

from __future__ import annotations

import copy
import math
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from ..data.transforms import to_float_batch
from ..models.registry import fake_probability
from .checkpoints import load_checkpoint, save_checkpoint


@dataclass
class Runtime:
    """Where and how batches run; ``normalize`` names the model's input normalisation."""

    device: torch.device
    amp: bool
    channels_last: bool
    normalize: str = "half"

    @classmethod
    def for_device(cls, device: torch.device, normalize: str = "half") -> "Runtime":
        cuda = device.type == "cuda"
        return cls(device=device, amp=cuda, channels_last=cuda, normalize=normalize)

    def place(self, model: nn.Module) -> nn.Module:
        """Move ``model`` to the device, in channels_last layout on CUDA."""
        model.to(self.device)
        return model.to(memory_format=torch.channels_last) if self.channels_last else model

    def to_device(self, x: torch.Tensor) -> torch.Tensor:
        """A uint8 batch -> normalised float on the device (float tensors pass through as they are)."""
        x = x.to(self.device, non_blocking=True)
        if x.dtype == torch.uint8:
            x = to_float_batch(x, self.normalize)
        return x.contiguous(memory_format=torch.channels_last) if self.channels_last else x

    def autocast(self):
        return torch.autocast(self.device.type, dtype=torch.float16, enabled=self.amp)


def make_optimizer(parameters, opt) -> torch.optim.Optimizer:
    params = [p for p in parameters if p.requires_grad]
    if opt.name == "adam":
        return torch.optim.Adam(params, lr=opt.lr, weight_decay=opt.weight_decay)
    if opt.name == "adamw":
        return torch.optim.AdamW(params, lr=opt.lr, weight_decay=opt.weight_decay)
    return torch.optim.SGD(params, lr=opt.lr, momentum=opt.momentum, weight_decay=opt.weight_decay)


def make_scheduler(optimizer, sch, epochs: int):
    """Stepped once per epoch."""
    if sch.name == "step":
        return torch.optim.lr_scheduler.StepLR(optimizer, step_size=sch.step_size, gamma=sch.gamma)
    if sch.name == "cosine":
        return torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, T_max=sch.t_max or epochs)
    return None


def loss_fn(logits: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """Cross-entropy for (N, 2) logits, BCE-with-logits for (N, 1); ``y`` may be soft (mixup)."""
    if logits.shape[1] == 1:
        return F.binary_cross_entropy_with_logits(logits[:, 0].float(), y.float())
    if y.dtype.is_floating_point:   # soft target = P(fake)
        logp = F.log_softmax(logits.float(), dim=1)
        return -(y * logp[:, 1] + (1 - y) * logp[:, 0]).mean()
    return F.cross_entropy(logits.float(), y)


def cutmix_box(h: int, w: int, lam: float, gen: torch.Generator) -> tuple[int, int, int, int]:
    """The CutMix rectangle (y0, y1, x0, x1) covering about 1 - lam of the image."""
    cut = math.sqrt(1.0 - lam)
    ch, cw = int(h * cut), int(w * cut)
    cy = int(torch.randint(h, (1,), generator=gen))
    cx = int(torch.randint(w, (1,), generator=gen))
    return (max(cy - ch // 2, 0), min(cy + ch // 2, h), max(cx - cw // 2, 0), min(cx + cw // 2, w))


def mix_batch(x: torch.Tensor, y: torch.Tensor, name: str, alpha: float, gen: torch.Generator):
    """Apply CutMix or Mixup; returns (x, y_a, y_b, lam) so loss = lam*L(y_a) + (1-lam)*L(y_b)."""
    if name == "none" or alpha <= 0:
        return x, y, y, 1.0
    # Beta(alpha, alpha) drawn from the run's own generator so resumed runs replay exactly.
    lam = float(np.random.default_rng(int(torch.randint(2**31 - 1, (1,), generator=gen))).beta(alpha, alpha))
    perm = torch.randperm(x.shape[0], generator=gen).to(x.device)
    if name == "mixup":
        return lam * x + (1 - lam) * x[perm], y, y[perm], lam
    y0, y1, x0, x1 = cutmix_box(x.shape[2], x.shape[3], lam, gen)
    x = x.clone()
    x[:, :, y0:y1, x0:x1] = x[perm, :, y0:y1, x0:x1]
    lam = 1.0 - (y1 - y0) * (x1 - x0) / (x.shape[2] * x.shape[3])   # the area actually pasted
    return x, y, y[perm], lam


def train_one_epoch(model: nn.Module, loader, optimizer, rt: Runtime, scaler, mix, gen: torch.Generator,
                    max_batches: int = 0) -> dict:
    model.train()
    total_loss, correct, seen, start = 0.0, 0, 0, time.perf_counter()
    for i, (x, y) in enumerate(loader):
        if max_batches and i >= max_batches:
            break
        x, y = rt.to_device(x), y.to(rt.device)
        x, y_a, y_b, lam = mix_batch(x, y, mix.name, mix.alpha, gen)
        with rt.autocast():
            logits = model(x)
        loss = lam * loss_fn(logits, y_a) + (1 - lam) * loss_fn(logits, y_b) if lam < 1 else loss_fn(logits, y)
        optimizer.zero_grad(set_to_none=True)
        scaler.scale(loss).backward()
        scaler.step(optimizer)
        scaler.update()
        pred = (fake_probability(logits.detach()) >= 0.5).long()
        total_loss += float(loss.detach()) * len(y)
        correct += int((pred == y).sum())
        seen += len(y)
    seconds = time.perf_counter() - start
    return {"loss": total_loss / max(seen, 1), "accuracy": correct / max(seen, 1), "images": seen,
            "seconds": seconds, "images_per_s": seen / seconds if seconds > 0 else 0.0}


@torch.no_grad()
def predict(model: nn.Module, loader, rt: Runtime) -> tuple[np.ndarray, np.ndarray, float]:
    """(labels, P(fake), mean loss) over ``loader`` in order."""
    model.eval()
    labels, scores, total_loss = [], [], 0.0
    for x, y in loader:
        x, y = rt.to_device(x), y.to(rt.device)
        with rt.autocast():
            logits = model(x)
        total_loss += float(loss_fn(logits, y)) * len(y)
        labels.append(y.cpu().numpy())
        scores.append(fake_probability(logits).cpu().numpy())
    y_all = np.concatenate(labels) if labels else np.zeros(0, dtype=int)
    s_all = np.concatenate(scores).astype(np.float64) if scores else np.zeros(0)
    return y_all, s_all, total_loss / max(len(y_all), 1)


@dataclass
class FitResult:
    history: list[dict] = field(default_factory=list)
    best_epoch: int = 0
    best_state: dict | None = None
    val_labels: np.ndarray | None = None
    val_scores: np.ndarray | None = None


def _selection_value(select: str, val_auc: float | None, val_loss: float) -> float:
    if select == "best_val_auc":
        return -1.0 if val_auc is None else val_auc
    if select == "best_val_loss":
        return -val_loss
    return 0.0   # "last": every epoch ties, the later one wins


def fit(model: nn.Module, train_loader, val_loader, cfg, rt: Runtime, checkpoint: Path | None,
        config_hash: str, auc_fn, log=print, seed: int | None = None) -> FitResult:
    """Train for ``cfg.epochs`` epochs, resuming from ``checkpoint`` when it matches the config.

    ``seed`` (default: ``cfg.seed``, the first of ``cfg.seeds``) drives mixing and the shuffle
    order. The checkpoint holds only tensors and plain data, so it loads with
    ``weights_only=True``.
    """
    seed = cfg.seed if seed is None else seed
    rt.place(model)
    optimizer = make_optimizer(model.parameters(), cfg.optimizer)
    scheduler = make_scheduler(optimizer, cfg.scheduler, cfg.epochs)
    scaler = torch.amp.GradScaler(rt.device.type, enabled=rt.amp)
    gen = torch.Generator().manual_seed(seed)
    result, start_epoch, best_value = FitResult(), 1, -math.inf
    state = load_checkpoint(checkpoint, config_hash) if checkpoint else None
    if state is not None:
        model.load_state_dict(state["model"])
        optimizer.load_state_dict(state["optimizer"])
        if scheduler is not None and state.get("scheduler"):
            scheduler.load_state_dict(state["scheduler"])
        if state.get("scaler"):
            scaler.load_state_dict(state["scaler"])
        gen.set_state(state["generator"])
        torch.set_rng_state(state["torch_rng"])
        result.history, result.best_epoch = state["history"], state["best_epoch"]
        result.best_state, best_value = state["best_state"], state["best_value"]
        start_epoch = state["epoch"] + 1
        log(f"train: resumed from {checkpoint} after epoch {state['epoch']}")
    for epoch in range(start_epoch, cfg.epochs + 1):
        if getattr(train_loader, "generator", None) is not None:
            # The shuffle order is a function of (seed, epoch), so a resumed run replays it.
            train_loader.generator.manual_seed(seed * 100_003 + epoch)
        lr = optimizer.param_groups[0]["lr"]
        tr = train_one_epoch(model, train_loader, optimizer, rt, scaler, cfg.mix, gen, cfg.max_batches_per_epoch)
        y_val, s_val, val_loss = predict(model, val_loader, rt)
        val_auc = auc_fn(y_val, s_val)
        val_acc = float(((s_val >= 0.5).astype(int) == y_val).mean()) if len(y_val) else float("nan")
        if scheduler is not None:
            scheduler.step()
        row = {"epoch": epoch, "lr": lr, "train_loss": tr["loss"], "train_accuracy": tr["accuracy"],
               "val_loss": val_loss, "val_accuracy": val_acc, "val_roc_auc": val_auc,
               "train_images_per_s": tr["images_per_s"]}
        result.history.append(row)
        value = _selection_value(cfg.select, val_auc, val_loss)
        if value >= best_value:
            best_value, result.best_epoch = value, epoch
            result.best_state = copy.deepcopy({k: v.detach().cpu() for k, v in model.state_dict().items()})
        log(f"train: epoch {epoch}/{cfg.epochs} loss {tr['loss']:.4f} acc {tr['accuracy']:.3f} "
            f"val_loss {val_loss:.4f} val_auc {val_auc if val_auc is None else round(val_auc, 4)} "
            f"({tr['images_per_s']:.1f} img/s)")
        if checkpoint:
            save_checkpoint(checkpoint, {
                "config_hash": config_hash, "epoch": epoch, "model": model.state_dict(),
                "optimizer": optimizer.state_dict(),
                "scheduler": scheduler.state_dict() if scheduler is not None else None,
                "scaler": scaler.state_dict() if scaler.is_enabled() else None,
                "generator": gen.get_state(), "torch_rng": torch.get_rng_state(),
                "history": result.history, "best_epoch": result.best_epoch,
                "best_state": result.best_state, "best_value": best_value})
    model.load_state_dict(result.best_state)
    result.val_labels, result.val_scores, _ = predict(model, val_loader, rt)
    return result
