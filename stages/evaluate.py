"""Stage ``evaluate@<variant>-<test_set>``: score one trained variant on one test set.

The decision threshold comes from the variant's validation scores (its ``threshold_rule``),
never from the test set; the 0.5-threshold figures are reported beside it. Writes the flat
metrics JSON, per-face scores (with each face's ``group``, so the report can run paired tests)
and ROC points for ``dvc plots``.

The metrics JSON carries 95% group-bootstrap intervals (``<metric>_ci_low``/``_ci_high``,
params ``evaluate.bootstrap``) and, over every training seed (the primary model plus the models
under ``--seed-models``, each with the threshold from its own validation scores),
``<metric>_seed_{mean,std,min,max}`` and ``n_seeds``.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from deepfake_detection.runtime import set_offline_defaults, stage_main

set_offline_defaults()

import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402

from deepfake_detection.data.batch_augment import EvalAugment  # noqa: E402
from deepfake_detection.data.batches import BatchReader  # noqa: E402
from deepfake_detection.data.prepared import load_prepared, select_rows  # noqa: E402
from deepfake_detection.evaluation.bootstrap import bootstrap_intervals  # noqa: E402
from deepfake_detection.evaluation.metrics import binary_metrics, choose_threshold, roc_curve_points  # noqa: E402
from deepfake_detection.evaluation.seeds import seed_spreads  # noqa: E402
from deepfake_detection.io import UnsafeFileError, write_csv, write_json  # noqa: E402
from deepfake_detection.models.registry import load_trained_model  # noqa: E402
from deepfake_detection.params import AugmentParams, from_dict, load_params  # noqa: E402
from deepfake_detection.runtime import configure_compute, log, pick_device  # noqa: E402
from deepfake_detection.training.engine import Runtime, predict  # noqa: E402

ROC_POINTS = 101   # thinned ROC curve: enough for a plot, small enough to commit
SEED_METRICS = ("accuracy", "f1", "roc_auc", "pr_auc", "eer", "log_loss")


def thin_roc(fpr: np.ndarray, tpr: np.ndarray, n: int = ROC_POINTS) -> pd.DataFrame:
    """The ROC curve resampled at ``n`` evenly spaced FPR values (step interpolation)."""
    grid = np.linspace(0.0, 1.0, n)
    idx = np.searchsorted(fpr, grid, side="right") - 1
    return pd.DataFrame({"fpr": grid.round(4), "tpr": tpr[np.clip(idx, 0, len(tpr) - 1)].round(4)})


def seed_model_dirs(folder: Path) -> list[tuple[int, Path]]:
    """(seed, folder) of every further seed listed in ``<folder>/seeds.json`` by the train stage."""
    listing = folder / "seeds.json"
    if not listing.is_file():
        raise SystemExit(f"evaluate: {listing} is missing; re-run the train stage, which writes it")
    seeds = json.loads(listing.read_text()).get("seeds")
    if not isinstance(seeds, list) or not all(isinstance(s, int) for s in seeds):
        raise SystemExit(f"evaluate: {listing}: 'seeds' must be a list of integers, got {seeds!r}")
    return [(s, folder / f"seed_{s}") for s in seeds]


def score_model(model_path: Path, images, index, rows, batch_size: int, device):
    """(labels, P(fake)) of the model in ``model_path`` on the given prepared rows."""
    try:
        model, meta = load_trained_model(model_path, device)
    except UnsafeFileError as exc:
        raise SystemExit(f"evaluate: {exc}") from None
    rt = Runtime.for_device(device)
    aug = from_dict(AugmentParams, meta["augment"], f"{model_path}: augment")
    batches = BatchReader(images, index["label"].to_numpy(), rows, batch_size, shuffle=False, device=device)
    y, s, _ = predict(rt.place(model), batches, EvalAugment(aug, meta["normalize"]), rt)
    return y, s


def val_threshold(path: Path, rule: str) -> float:
    val = pd.read_csv(path)
    return choose_threshold(val["label"].to_numpy(), val["score"].to_numpy(), rule)


@stage_main("evaluate")
def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--params", default="params.yaml")
    ap.add_argument("--variant", required=True)
    ap.add_argument("--test-set", required=True)
    ap.add_argument("--prepared", required=True, type=Path)
    ap.add_argument("--model", required=True, type=Path)
    ap.add_argument("--val-scores", required=True, type=Path)
    ap.add_argument("--seed-models", required=True, type=Path,
                    help="the train stage's folder of further seeds (seeds.json, seed_<s>/)")
    ap.add_argument("--metrics", required=True, type=Path)
    ap.add_argument("--scores", required=True, type=Path)
    ap.add_argument("--roc", required=True, type=Path)
    ap.add_argument("--device", default="auto")
    args = ap.parse_args(argv)
    params = load_params(args.params)
    if args.test_set not in params.evaluate.test_sets:
        raise SystemExit(f"evaluate: --test-set {args.test_set!r} is not under evaluate.test_sets "
                         f"({sorted(params.evaluate.test_sets)})")
    cfg = params.variant_train(args.variant)   # a clear error names the defined variants
    ts = params.evaluate.test_sets[args.test_set]
    configure_compute(params.compute.threads, params.compute.cpu_isa, params.compute.deterministic)
    boot = params.evaluate.bootstrap
    device = pick_device(args.device)
    images, index = load_prepared(args.prepared)
    rows = select_rows(index, [ts.dataset], ts.split)
    if len(rows) == 0:
        raise SystemExit(f"evaluate: test set {args.test_set!r} ({ts.dataset}, split {ts.split!r}) has no faces")
    groups = index.loc[rows, "group"].astype(str).to_numpy()
    y, s = score_model(args.model, images, index, rows, params.evaluate.batch_size, device)
    threshold = val_threshold(args.val_scores, cfg.threshold_rule)
    metrics = {"variant": args.variant, "test_set": args.test_set, "dataset": ts.dataset,
               "threshold_rule": cfg.threshold_rule, **binary_metrics(y, s, threshold),
               **bootstrap_intervals(y, s, groups, threshold, boot.resamples, boot.seed)}
    per_seed = [metrics]
    for seed, folder in seed_model_dirs(args.seed_models):
        y_k, s_k = score_model(folder / "model.pt", images, index, rows, params.evaluate.batch_size, device)
        per_seed.append(binary_metrics(y_k, s_k, val_threshold(folder / "val_scores.csv", cfg.threshold_rule)))
        log(f"evaluate: {args.variant} seed {seed} on {args.test_set}: auc {per_seed[-1]['roc_auc']}")
    metrics.update(seed_spreads(per_seed, SEED_METRICS))
    log(f"evaluate: {args.variant} on {args.test_set}: n {metrics['n']} ({metrics['n_groups']} groups) "
        f"acc {metrics['accuracy']} auc {metrics['roc_auc']} [{metrics['roc_auc_ci_low']}, "
        f"{metrics['roc_auc_ci_high']}] eer {metrics['eer']} (threshold {metrics['threshold']} from val)")
    write_json(args.metrics, metrics)
    write_csv(args.scores, pd.DataFrame({"face_id": index.loc[rows, "face_id"].to_numpy(),
                                         "group": groups, "label": y, "score": s.round(6)}))
    if metrics["roc_auc"] is None:   # one class only: no ROC curve exists
        write_csv(args.roc, pd.DataFrame(columns=["fpr", "tpr"]))
    else:
        fpr, tpr, _ = roc_curve_points(y, s)
        write_csv(args.roc, thin_roc(np.asarray(fpr), np.asarray(tpr)))


if __name__ == "__main__":
    main()
