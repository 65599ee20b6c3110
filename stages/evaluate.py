"""Stage ``evaluate@<variant>``: score one trained variant on every test set in one process.

Each model (the primary one and every further seed) is loaded once and scores all the test sets
of ``evaluate.test_sets`` (one process per variant instead of one per variant and test set:
each process pays torch's import once). The decision threshold comes from the variant's
validation scores (its ``threshold_rule``), never from a test set; the 0.5-threshold figures
are reported beside it. Per test set it writes the flat metrics JSON
``<metrics-dir>/<test_set>.json``, per-face scores ``<scores-dir>/<test_set>_scores.csv`` (with
each face's ``group``, so the report can run paired tests) and ROC points
``<roc-dir>/<test_set>.csv`` for ``dvc plots``. Each of the three folders is written whole and
renamed into place, so a removed test set leaves no stale file.

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
from deepfake_detection.io import UnsafeFileError, atomic_path, write_csv, write_json  # noqa: E402
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


def roc_frame(y: np.ndarray, s: np.ndarray, roc_auc) -> pd.DataFrame:
    """The thinned ROC curve, or an empty table when one class only leaves no curve."""
    if roc_auc is None:
        return pd.DataFrame(columns=["fpr", "tpr"])
    fpr, tpr, _ = roc_curve_points(y, s)
    return thin_roc(np.asarray(fpr), np.asarray(tpr))


def evaluate_test_set(variant: str, test_set: str, dataset: str, threshold_rule: str, face_ids, groups,
                      scored: list[tuple[np.ndarray, np.ndarray, float]], boot) -> tuple[dict, pd.DataFrame, pd.DataFrame]:
    """(metrics, scores table, ROC table) of one test set.

    ``scored`` holds (labels, P(fake), validation threshold) per training seed, the primary
    model first; the metrics are the primary model's, its group-bootstrap intervals and the
    spread over every seed.
    """
    (y, s, threshold), *others = scored
    metrics = {"variant": variant, "test_set": test_set, "dataset": dataset, "threshold_rule": threshold_rule,
               **binary_metrics(y, s, threshold),
               **bootstrap_intervals(y, s, groups, threshold, boot.resamples, boot.seed)}
    per_seed = [metrics] + [binary_metrics(y_k, s_k, t_k) for y_k, s_k, t_k in others]
    metrics.update(seed_spreads(per_seed, SEED_METRICS))
    scores = pd.DataFrame({"face_id": face_ids, "group": groups, "label": y, "score": s.round(6)})
    return metrics, scores, roc_frame(y, s, metrics["roc_auc"])


def test_set_rows(index: pd.DataFrame, test_sets: dict) -> dict[str, np.ndarray]:
    """Prepared rows of each test set; a test set without faces is an error naming it."""
    rows = {}
    for name, ts in test_sets.items():
        rows[name] = select_rows(index, [ts.dataset], ts.split)
        if len(rows[name]) == 0:
            raise SystemExit(f"evaluate: test set {name!r} ({ts.dataset}, split {ts.split!r}) has no faces; "
                             f"fix evaluate.test_sets.{name} in params.yaml")
    return rows


@stage_main("evaluate")
def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--params", default="params.yaml")
    ap.add_argument("--variant", required=True)
    ap.add_argument("--prepared", required=True, type=Path, help="data/prepared/<the variant's prepared_size>")
    ap.add_argument("--model", required=True, type=Path)
    ap.add_argument("--val-scores", required=True, type=Path)
    ap.add_argument("--seed-models", required=True, type=Path,
                    help="the train stage's folder of further seeds (seeds.json, seed_<s>/)")
    ap.add_argument("--metrics-dir", required=True, type=Path, help="gets <test_set>.json per test set")
    ap.add_argument("--scores-dir", required=True, type=Path, help="gets <test_set>_scores.csv per test set")
    ap.add_argument("--roc-dir", required=True, type=Path, help="gets <test_set>.csv per test set")
    ap.add_argument("--device", default="auto")
    args = ap.parse_args(argv)
    params = load_params(args.params)
    cfg = params.variant_train(args.variant)   # a clear error names the defined variants
    test_sets = params.evaluate.test_sets
    configure_compute(params.compute.threads, params.compute.cpu_isa, params.compute.deterministic)
    device = pick_device(args.device)
    images, index = load_prepared(args.prepared)
    rows = test_set_rows(index, test_sets)
    models = [(None, args.model, args.val_scores)] + [
        (seed, folder / "model.pt", folder / "val_scores.csv") for seed, folder in seed_model_dirs(args.seed_models)]
    every = np.concatenate(list(rows.values()))   # one pass over all test sets: each model loads once
    scored: dict[str, list] = {name: [] for name in test_sets}
    for seed, model_path, val_path in models:
        threshold = val_threshold(val_path, cfg.threshold_rule)
        y_all, s_all = score_model(model_path, images, index, every, params.evaluate.batch_size, device)
        start = 0
        for name, r in rows.items():
            scored[name].append((y_all[start:start + len(r)], s_all[start:start + len(r)], threshold))
            start += len(r)
        if seed is not None:
            log(f"evaluate: {args.variant} seed {seed}: auc " + ", ".join(
                f"{name} {binary_metrics(*scored[name][-1])['roc_auc']}" for name in test_sets))
    with atomic_path(args.metrics_dir, is_dir=True) as metrics_dir, \
            atomic_path(args.scores_dir, is_dir=True) as scores_dir, \
            atomic_path(args.roc_dir, is_dir=True) as roc_dir:
        for name, ts in test_sets.items():
            r = rows[name]
            metrics, scores, roc = evaluate_test_set(
                args.variant, name, ts.dataset, cfg.threshold_rule, index.loc[r, "face_id"].to_numpy(),
                index.loc[r, "group"].astype(str).to_numpy(), scored[name], params.evaluate.bootstrap)
            log(f"evaluate: {args.variant} on {name}: n {metrics['n']} ({metrics['n_groups']} groups) "
                f"acc {metrics['accuracy']} auc {metrics['roc_auc']} [{metrics['roc_auc_ci_low']}, "
                f"{metrics['roc_auc_ci_high']}] eer {metrics['eer']} (threshold {metrics['threshold']} from val)")
            write_json(metrics_dir / f"{name}.json", metrics)
            write_csv(scores_dir / f"{name}_scores.csv", scores)
            write_csv(roc_dir / f"{name}.csv", roc)


if __name__ == "__main__":
    main()
