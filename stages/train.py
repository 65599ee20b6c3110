"""Stage ``train@<variant>``: train one classifier variant on the prepared faces.

Writes the selected model (by the variant's ``select`` rule on validation data), its validation
scores (the evaluate stage picks the decision threshold from them), a training summary JSON and
the per-epoch curves with dvclive (``--live``: ``plots/metrics/<name>.tsv`` and
``metrics.json``, for ``dvc plots`` and ``dvc exp show``). Batches come straight from the
prepared array (:class:`~deepfake_detection.data.batches.BatchReader`) and are augmented on the
device. A checkpoint after each epoch lets an interrupted run resume where it stopped, bit for
bit (only under the same configuration); the resumed run replays the earlier epochs into the
curves, which DVC deleted before the rerun.

Seconds and images/s per epoch go to the log and to ``--timings`` (a JSON that is no DVC output
and is not committed): the committed metrics stay free of timings.

The model starts from the variant's pretrained weights when ``model.pretrained`` asks for them
(``models.weights.pretrained_weights`` finds the file once, before any seed; when they cannot be
had the stage stops with one line naming the variant and the fixes, unless the variant says
``pretrained: fallback_scratch``). The model files and the summary JSON record ``weights``
(``imagenet`` or ``scratch``) and the file's sha256, so a run from scratch is never mistaken for
a transfer run. The loss and P(fake) follow the builder's declared head.

``train.seeds`` repeats the training once per seed. The first seed is the primary model
(``--model``, selected on validation; ``--last``, the same run's weights after its final epoch
(seed 001 keeps both); ``--val-scores``, the curves); every further seed ``s`` writes
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

from deepfake_detection.data.batch_augment import EvalAugment, TrainAugment  # noqa: E402
from deepfake_detection.data.batches import BatchReader  # noqa: E402
from deepfake_detection.data.prepared import load_prepared, select_rows  # noqa: E402
from deepfake_detection.data.transforms import input_size  # noqa: E402
from deepfake_detection.evaluation.metrics import roc_auc  # noqa: E402
from deepfake_detection.evaluation.seeds import seed_spreads  # noqa: E402
from deepfake_detection.io import atomic_path, save_torch, write_csv, write_json  # noqa: E402
from deepfake_detection.models.registry import create_model, model_info  # noqa: E402
from deepfake_detection.models.weights import WeightsUnavailable, pretrained_weights  # noqa: E402
from deepfake_detection.params import load_params, paper_differences  # noqa: E402
from deepfake_detection.runtime import configure_compute, log, pick_device, seed_everything  # noqa: E402
from deepfake_detection.training.checkpoints import config_hash  # noqa: E402
from deepfake_detection.training.curves import log_epoch, open_live  # noqa: E402
from deepfake_detection.training.engine import Runtime, fit  # noqa: E402


def readers(images, index, cfg, device, seed: int) -> tuple[BatchReader, BatchReader, object]:
    """Train (shuffled by (seed, epoch)) and val (in row order) batches, and the val face ids."""
    labels = index["label"].to_numpy()
    train_rows = select_rows(index, cfg.datasets, "train")
    val_rows = select_rows(index, cfg.datasets, "val")
    if len(train_rows) == 0 or len(val_rows) == 0:
        raise SystemExit(f"train: datasets {cfg.datasets} have {len(train_rows)} train and "
                         f"{len(val_rows)} val faces in the manifest; both must be > 0")
    train = BatchReader(images, labels, train_rows, cfg.batch_size, shuffle=True, seed=seed,
                        drop_last=len(train_rows) > cfg.batch_size, device=device)
    val = BatchReader(images, labels, val_rows, cfg.batch_size * 2, shuffle=False, device=device)
    return train, val, index.loc[val_rows, "face_id"].to_numpy()


def seed_checkpoint(checkpoint: Path | None, seed: int, primary: bool) -> Path | None:
    """The primary run's checkpoint is ``checkpoint``; seed ``s`` uses ``<stem>_seed<s><suffix>``."""
    if checkpoint is None or primary:
        return checkpoint
    return checkpoint.with_name(f"{checkpoint.stem}_seed{seed}{checkpoint.suffix}")


def model_file(result, variant_name: str, variant, cfg, size: int, seed: int, record: dict,
               last: bool = False) -> dict:
    """What model.pt (``last``: last.pt) holds: tensors and plain data only (read with weights_only=True).

    The selected state and its epoch, or with ``last`` the state after the final epoch and that
    epoch; the builder's head, the normalisation in effect and the pretrained-weights record.
    """
    state, epoch = (result.last_state, result.history[-1]["epoch"]) if last else (result.best_state,
                                                                                   result.best_epoch)
    return {"state_dict": state, "builder": variant.model.builder,
            "kwargs": dict(variant.model.kwargs), "normalize": variant.model.effective_normalize,
            "head": model_info(variant.model.builder).head, "input_size": size,
            "augment": dataclasses.asdict(cfg.augment), "variant": variant_name, "epoch": epoch, "seed": seed,
            **record}


def resolve_weights(variant_name: str, model) -> tuple[Path | None, dict]:
    """The pretrained file to start from (None: scratch) and its record; unavailable -> one-line exit."""
    try:
        return pretrained_weights(variant_name, model.builder, model.pretrained, model.weights_file)
    except WeightsUnavailable as exc:
        raise SystemExit(f"train: {exc}") from None


def trainable_params(model) -> int:
    """Parameters the optimizer updates (frozen ones excluded)."""
    return sum(p.numel() for p in model.parameters() if p.requires_grad)


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


def timings(variant_name: str, device, runs: list[dict]) -> dict:
    """Seconds and images/s of every epoch of every seed (machine-dependent: never a metric)."""
    return {"variant": variant_name, "device": str(device),
            "seeds": {str(run["seed"]): run["result"].timings for run in runs}}


@stage_main("train")
def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--params", default="params.yaml")
    ap.add_argument("--variant", required=True)
    ap.add_argument("--prepared", required=True, type=Path)
    ap.add_argument("--model", required=True, type=Path, help="output model.pt (the first seed, selected on val)")
    ap.add_argument("--last", required=True, type=Path, help="output last.pt (the first seed after its final epoch)")
    ap.add_argument("--val-scores", required=True, type=Path)
    ap.add_argument("--seed-models", required=True, type=Path,
                    help="output folder: seed_<s>/model.pt and val_scores.csv of every further seed")
    ap.add_argument("--metrics", required=True, type=Path)
    ap.add_argument("--live", required=True, type=Path,
                    help="output folder of the dvclive curves (plots/metrics/*.tsv, metrics.json)")
    ap.add_argument("--timings", type=Path, help="seconds and images/s per epoch (JSON; not a metric)")
    ap.add_argument("--checkpoint", type=Path, help="resumable per-epoch checkpoint (scratch, not an output)")
    ap.add_argument("--device", default="auto")
    args = ap.parse_args(argv)
    params = load_params(args.params)
    cfg = params.variant_train(args.variant)   # a clear error names the defined variants
    variant = params.variants[args.variant]
    compute = configure_compute(params.compute.threads, params.compute.cpu_isa, params.compute.deterministic)
    log(f"train: compute {compute}")
    device = pick_device(args.device)
    rt = Runtime.for_device(device)
    images, index = load_prepared(args.prepared)
    size = input_size(cfg.augment, images.shape[1])
    data_hash = hashlib.sha256((args.prepared / "index.csv").read_bytes()).hexdigest()
    normalize, head = variant.model.effective_normalize, model_info(variant.model.builder).head
    augment = TrainAugment(cfg.augment, normalize, mix=cfg.mix)
    eval_augment = EvalAugment(cfg.augment, normalize)
    weights_path, record = resolve_weights(args.variant, variant.model)
    log(f"train: {args.variant}: weights {record['weights']}"
        + (f" from {weights_path} ({record['weights_origin']}, sha256 {record['weights_sha256'][:12]}...)"
           if weights_path else "") + f", head {head}, normalize {normalize}")
    live = open_live(args.live)
    runs = []
    for i, seed in enumerate(cfg.seeds):
        seed_everything(seed)
        model = create_model(variant.model.builder, input_size=size, weights_file=weights_path,
                             **variant.model.kwargs)
        train_batches, val_batches, val_ids = readers(images, index, cfg, device, seed)
        n_params, n_trainable = sum(p.numel() for p in model.parameters()), trainable_params(model)
        log(f"train: {args.variant} seed {seed} ({i + 1}/{len(cfg.seeds)}): {variant.model.builder} "
            f"({n_params / 1e6:.2f} M params, {n_trainable / 1e6:.2f} M trainable) on {device}, "
            f"{len(train_batches.rows)} train / {len(val_batches.rows)} val faces at {size} px")
        # One hash per seed, blind to the other seeds: adding a seed never restarts this one. The
        # weights' sha256 and the builder's defaults in effect are in it: other starting weights
        # or another default normalisation never resume an old run.
        spec = {"variant": dataclasses.asdict(variant),
                "train": {**dataclasses.asdict(cfg), "seeds": [seed]},
                "prepared_size": int(images.shape[1]), "data": data_hash,
                "weights_sha256": record["weights_sha256"], "normalize": normalize, "head": head}
        checkpoint = seed_checkpoint(args.checkpoint, seed, primary=i == 0)
        start = time.perf_counter()
        result = fit(model, train_batches, val_batches, augment, eval_augment, cfg, rt, checkpoint,
                     config_hash(spec), roc_auc, log, seed=seed,
                     on_epoch=(lambda row: log_epoch(live, row)) if i == 0 else None, head=head)
        speed = pd.DataFrame(result.timings)["train_images_per_s"].mean()
        log(f"train: {args.variant} seed {seed}: {time.perf_counter() - start:.1f} s on {device.type}, "
            f"{speed:.1f} train images/s")
        runs.append({"seed": seed, "result": result, "val": val_frame(val_ids, result),
                     "model": model_file(result, args.variant, variant, cfg, size, seed, record),
                     "best": best_val(result), "checkpoint": checkpoint, "n_params": n_params,
                     "n_trainable": n_trainable,
                     "n_train": len(train_batches.rows), "n_val": len(val_batches.rows)})
    live.end()
    primary = runs[0]
    save_torch(args.model, primary["model"])
    save_torch(args.last, model_file(primary["result"], args.variant, variant, cfg, size, primary["seed"], record,
                                     last=True))
    write_csv(args.val_scores, primary["val"])
    write_seed_models(args.seed_models, runs[1:])
    if args.timings:
        write_json(args.timings, timings(args.variant, device, runs))
    write_json(args.metrics, {
        "variant": args.variant, "builder": variant.model.builder, "head": head, "normalize": normalize,
        "weights": record["weights"], "weights_sha256": record["weights_sha256"],
        "scale": "demo" if variant.paper else "paper", "differs_from_paper": paper_differences(
            {**dataclasses.asdict(variant), "train": dataclasses.asdict(cfg)}, variant.paper),
        "params_m": round(primary["n_params"] / 1e6, 3),
        "trainable_params_m": round(primary["n_trainable"] / 1e6, 3), "epochs": cfg.epochs,
        "best_epoch": primary["result"].best_epoch, "select": cfg.select, **primary["best"],
        "n_train": primary["n_train"], "n_val": primary["n_val"], "input_size": size,
        "seeds": list(cfg.seeds), **seed_spreads([r["best"] for r in runs], ("val_roc_auc", "val_loss"))})
    for run in runs:
        if run["checkpoint"]:
            run["checkpoint"].unlink(missing_ok=True)   # the run finished: nothing to resume


if __name__ == "__main__":
    main()
