"""Stage ``train@<variant>``: train one classifier variant on the prepared faces.

Writes the selected model (by the variant's ``select`` rule on validation data), its validation
scores (the evaluate stage picks the decision threshold from them), a training summary JSON and
the per-epoch history for ``dvc plots``. A checkpoint after each epoch lets an interrupted run
resume where it stopped (only under the same configuration).

``train.seeds`` repeats the training once per seed. The first seed is the primary model
(``--model``, ``--val-scores``, the history); every further seed ``s`` writes
``<seed-models>/seed_<s>/model.pt`` and ``val_scores.csv`` (``<seed-models>/seeds.json`` lists
them; with one seed the folder holds only that list). The summary JSON adds the mean and spread
of the validation metrics over all seeds.
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
from deepfake_detection.evaluation.seeds import seed_spreads  # noqa: E402
from deepfake_detection.io import atomic_path, save_torch, write_csv, write_json  # noqa: E402
from deepfake_detection.models.registry import create_model  # noqa: E402
from deepfake_detection.params import load_params  # noqa: E402
from deepfake_detection.runtime import configure_compute, log, pick_device, seed_everything  # noqa: E402
from deepfake_detection.training.checkpoints import config_hash  # noqa: E402
from deepfake_detection.training.engine import Runtime, fit  # noqa: E402


def loaders(images, index, cfg, device_type: str, seed: int):
    labels = index["label"].to_numpy()
    train_rows = select_rows(index, cfg.datasets, "train")
    val_rows = select_rows(index, cfg.datasets, "val")
    if len(train_rows) == 0 or len(val_rows) == 0:
        raise SystemExit(f"train: datasets {cfg.datasets} have {len(train_rows)} train and "
                         f"{len(val_rows)} val faces in the manifest; both must be > 0")
    gen = torch.Generator().manual_seed(seed)
    common = {"num_workers": cfg.num_workers, "pin_memory": device_type == "cuda",
              "persistent_workers": cfg.num_workers > 0}
    train = DataLoader(PreparedFaces(images, labels, train_rows, train_transform(cfg.augment)),
                       batch_size=cfg.batch_size, shuffle=True, drop_last=len(train_rows) > cfg.batch_size,
                       generator=gen, **common)
    val = DataLoader(PreparedFaces(images, labels, val_rows, eval_transform(cfg.augment)),
                     batch_size=cfg.batch_size * 2, shuffle=False, **common)
    return train, val, index.loc[val_rows, "face_id"].to_numpy()


def seed_checkpoint(checkpoint: Path | None, seed: int, primary: bool) -> Path | None:
    """The primary run's checkpoint is ``checkpoint``; seed ``s`` uses ``<stem>_seed<s><suffix>``."""
    if checkpoint is None or primary:
        return checkpoint
    return checkpoint.with_name(f"{checkpoint.stem}_seed{seed}{checkpoint.suffix}")


def model_file(result, variant_name: str, variant, cfg, size: int, seed: int) -> dict:
    """What model.pt holds: tensors and plain data only (it is read with weights_only=True)."""
    return {"state_dict": result.best_state, "builder": variant.model.builder,
            "kwargs": dict(variant.model.kwargs), "normalize": variant.model.normalize,
            "input_size": size, "augment": dataclasses.asdict(cfg.augment),
            "variant": variant_name, "epoch": result.best_epoch, "seed": seed}


def val_frame(val_ids, result) -> pd.DataFrame:
    return pd.DataFrame({"face_id": val_ids, "label": result.val_labels,
                         "score": result.val_scores.round(6)})


def best_val(result) -> dict:
    best = result.history[result.best_epoch - 1]
    return {"val_roc_auc": None if best["val_roc_auc"] is None else round(best["val_roc_auc"], 6),
            "val_loss": round(best["val_loss"], 6)}


def write_seed_models(folder: Path, runs: list[dict]) -> None:
    """The extra seeds' models and validation scores, written as one folder atomically."""
    with atomic_path(folder, is_dir=True) as tmp:
        for run in runs:
            save_torch(tmp / f"seed_{run['seed']}" / "model.pt", run["model"])
            write_csv(tmp / f"seed_{run['seed']}" / "val_scores.csv", run["val"])
        write_json(tmp / "seeds.json", {"seeds": [run["seed"] for run in runs]})


@stage_main("train")
def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--params", default="params.yaml")
    ap.add_argument("--variant", required=True)
    ap.add_argument("--prepared", required=True, type=Path)
    ap.add_argument("--model", required=True, type=Path, help="output model.pt (the first seed)")
    ap.add_argument("--val-scores", required=True, type=Path)
    ap.add_argument("--seed-models", required=True, type=Path,
                    help="output folder: seed_<s>/model.pt and val_scores.csv of every further seed")
    ap.add_argument("--metrics", required=True, type=Path)
    ap.add_argument("--history", required=True, type=Path)
    ap.add_argument("--checkpoint", type=Path, help="resumable per-epoch checkpoint (scratch, not an output)")
    ap.add_argument("--device", default="auto")
    args = ap.parse_args(argv)
    params = load_params(args.params)
    cfg = params.variant_train(args.variant)   # a clear error names the defined variants
    variant = params.variants[args.variant]
    compute = configure_compute(params.compute.threads, params.compute.cpu_isa, params.compute.deterministic)
    log(f"train: compute {compute}")
    device = pick_device(args.device)
    rt = Runtime.for_device(device, variant.model.normalize)
    images, index = load_prepared(args.prepared)
    size = input_size(cfg.augment, images.shape[1])
    data_hash = hashlib.sha256((args.prepared / "index.csv").read_bytes()).hexdigest()
    runs = []
    for i, seed in enumerate(cfg.seeds):
        seed_everything(seed)
        model = create_model(variant.model.builder, input_size=size, **variant.model.kwargs)
        train_loader, val_loader, val_ids = loaders(images, index, cfg, device.type, seed)
        n_params = sum(p.numel() for p in model.parameters())
        log(f"train: {args.variant} seed {seed} ({i + 1}/{len(cfg.seeds)}): {variant.model.builder} "
            f"({n_params / 1e6:.2f} M params) on {device}, {len(train_loader.dataset)} train / "
            f"{len(val_loader.dataset)} val faces at {size} px")
        # One hash per seed, blind to the other seeds: adding a seed never restarts this one.
        spec = {"variant": dataclasses.asdict(variant),
                "train": {**dataclasses.asdict(cfg), "seeds": [seed]},
                "prepared_size": int(images.shape[1]), "data": data_hash}
        checkpoint = seed_checkpoint(args.checkpoint, seed, primary=i == 0)
        start = time.perf_counter()
        result = fit(model, train_loader, val_loader, cfg, rt, checkpoint, config_hash(spec), roc_auc,
                     log, seed=seed)
        speed = pd.DataFrame(result.history)["train_images_per_s"].mean()
        log(f"train: {args.variant} seed {seed}: {time.perf_counter() - start:.1f} s on {device.type}, "
            f"{speed:.1f} train images/s")
        runs.append({"seed": seed, "result": result, "val": val_frame(val_ids, result),
                     "model": model_file(result, args.variant, variant, cfg, size, seed),
                     "best": best_val(result), "checkpoint": checkpoint, "n_params": n_params,
                     "n_train": len(train_loader.dataset), "n_val": len(val_loader.dataset)})
    primary = runs[0]
    save_torch(args.model, primary["model"])
    write_csv(args.val_scores, primary["val"])
    write_seed_models(args.seed_models, runs[1:])
    history = pd.DataFrame(primary["result"].history).round(6)
    write_csv(args.history, history.drop(columns=["train_images_per_s"]))   # metrics stay deterministic
    write_json(args.metrics, {
        "variant": args.variant, "builder": variant.model.builder,
        "params_m": round(primary["n_params"] / 1e6, 3), "epochs": cfg.epochs,
        "best_epoch": primary["result"].best_epoch, "select": cfg.select, **primary["best"],
        "n_train": primary["n_train"], "n_val": primary["n_val"], "input_size": size,
        "seeds": list(cfg.seeds), **seed_spreads([r["best"] for r in runs], ("val_roc_auc", "val_loss"))})
    for run in runs:
        if run["checkpoint"]:
            run["checkpoint"].unlink(missing_ok=True)   # the run finished: nothing to resume


if __name__ == "__main__":
    main()
