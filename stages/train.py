"""Stage ``train@<variant>``: train one classifier variant on the prepared faces.

Writes the selected model (by the variant's ``select`` rule on validation data), its validation
scores (the evaluate stage picks the decision threshold from them), a training summary JSON and
the per-epoch history for ``dvc plots``. A checkpoint after each epoch lets an interrupted run
resume where it stopped (only under the same configuration).
"""

from __future__ import annotations

import argparse
import dataclasses
import hashlib
import time
from pathlib import Path

from deepfake_detection.runtime import set_offline_defaults, stage_main

set_offline_defaults()

import pandas as pd  # noqa: E402
import torch  # noqa: E402
from torch.utils.data import DataLoader  # noqa: E402

from deepfake_detection.data.prepared import PreparedFaces, load_prepared, select_rows  # noqa: E402
from deepfake_detection.data.transforms import eval_transform, input_size, train_transform  # noqa: E402
from deepfake_detection.evaluation.metrics import roc_auc  # noqa: E402
from deepfake_detection.io import save_torch, write_csv, write_json  # noqa: E402
from deepfake_detection.models.registry import create_model  # noqa: E402
from deepfake_detection.params import load_params  # noqa: E402
from deepfake_detection.runtime import log, pick_device, seed_everything  # noqa: E402
from deepfake_detection.training.checkpoints import config_hash  # noqa: E402
from deepfake_detection.training.engine import Runtime, fit  # noqa: E402


def loaders(images, index, cfg, device_type: str):
    labels = index["label"].to_numpy()
    train_rows = select_rows(index, cfg.datasets, "train")
    val_rows = select_rows(index, cfg.datasets, "val")
    if len(train_rows) == 0 or len(val_rows) == 0:
        raise SystemExit(f"train: datasets {cfg.datasets} have {len(train_rows)} train and "
                         f"{len(val_rows)} val faces in the manifest; both must be > 0")
    gen = torch.Generator().manual_seed(cfg.seed)
    common = {"num_workers": cfg.num_workers, "pin_memory": device_type == "cuda",
              "persistent_workers": cfg.num_workers > 0}
    train = DataLoader(PreparedFaces(images, labels, train_rows, train_transform(cfg.augment)),
                       batch_size=cfg.batch_size, shuffle=True, drop_last=len(train_rows) > cfg.batch_size,
                       generator=gen, **common)
    val = DataLoader(PreparedFaces(images, labels, val_rows, eval_transform(cfg.augment)),
                     batch_size=cfg.batch_size * 2, shuffle=False, **common)
    return train, val, index.loc[val_rows, "face_id"].to_numpy()


@stage_main("train")
def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--params", default="params.yaml")
    ap.add_argument("--variant", required=True)
    ap.add_argument("--prepared", required=True, type=Path)
    ap.add_argument("--model", required=True, type=Path, help="output model.pt")
    ap.add_argument("--val-scores", required=True, type=Path)
    ap.add_argument("--metrics", required=True, type=Path)
    ap.add_argument("--history", required=True, type=Path)
    ap.add_argument("--checkpoint", type=Path, help="resumable per-epoch checkpoint (scratch, not an output)")
    ap.add_argument("--device", default="auto")
    args = ap.parse_args(argv)
    params = load_params(args.params)
    cfg = params.variant_train(args.variant)   # a clear error names the defined variants
    variant = params.variants[args.variant]
    seed_everything(cfg.seed)
    device = pick_device(args.device)
    rt = Runtime.for_device(device, variant.model.normalize)
    images, index = load_prepared(args.prepared)
    size = input_size(cfg.augment, images.shape[1])
    model = create_model(variant.model.builder, input_size=size, **variant.model.kwargs)
    train_loader, val_loader, val_ids = loaders(images, index, cfg, device.type)
    n_params = sum(p.numel() for p in model.parameters())
    log(f"train: {args.variant}: {variant.model.builder} ({n_params / 1e6:.2f} M params) on {device}, "
        f"{len(train_loader.dataset)} train / {len(val_loader.dataset)} val faces at {size} px")
    spec = {"variant": dataclasses.asdict(variant), "train": dataclasses.asdict(cfg),
            "prepared_size": int(images.shape[1]),
            "data": hashlib.sha256((args.prepared / "index.csv").read_bytes()).hexdigest()}
    start = time.perf_counter()
    result = fit(model, train_loader, val_loader, cfg, rt, args.checkpoint, config_hash(spec), roc_auc, log)
    seconds = time.perf_counter() - start
    save_torch(args.model, {"state_dict": result.best_state, "builder": variant.model.builder,
                            "kwargs": variant.model.kwargs, "normalize": variant.model.normalize,
                            "input_size": size, "augment": dataclasses.asdict(cfg.augment),
                            "variant": args.variant, "epoch": result.best_epoch})
    write_csv(args.val_scores, pd.DataFrame({"face_id": val_ids, "label": result.val_labels,
                                             "score": result.val_scores.round(6)}))
    history = pd.DataFrame(result.history).round(6)
    write_csv(args.history, history.drop(columns=["train_images_per_s"]))   # metrics stay deterministic
    log(f"train: {args.variant}: {seconds:.1f} s on {device.type}, "
        f"{history['train_images_per_s'].mean():.1f} train images/s")
    best = result.history[result.best_epoch - 1]
    write_json(args.metrics, {
        "variant": args.variant, "builder": variant.model.builder, "params_m": round(n_params / 1e6, 3),
        "epochs": cfg.epochs, "best_epoch": result.best_epoch, "select": cfg.select,
        "val_roc_auc": None if best["val_roc_auc"] is None else round(best["val_roc_auc"], 6),
        "val_loss": round(best["val_loss"], 6),
        "n_train": len(train_loader.dataset), "n_val": len(val_loader.dataset), "input_size": size})
    if args.checkpoint:
        args.checkpoint.unlink(missing_ok=True)   # the run finished: nothing to resume


if __name__ == "__main__":
    main()
