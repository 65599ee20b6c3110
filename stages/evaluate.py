"""Stage ``evaluate``: score every trained variant on every test set, in one process.

The variants are the classifiers (``variants``) and the GAN variants whose discriminator is a
detector (``gan_variants`` of kind anomaly and hybrid), whose train_gan stage writes the same model
files into its own ``<models-root>/<variant>/`` folder.

One process for the whole zoo: each stage process pays torch's imports (~14 s here) once, not
once per variant. Variants are taken by their ``prepared_size``; each prepared array
(``<prepared-root>/<size>``) is loaded once for all the variants that use it. Every model of a
variant (the primary one and every further seed, under ``<models-root>/<variant>/``) is loaded
once and scores all the test sets of ``evaluate.test_sets`` in one pass. The decision threshold
comes from the model's validation scores (the variant's ``threshold_rule``), never from a test
set; the 0.5-threshold figures are reported beside it; the loss head and normalisation are the
model file's.

Per variant and test set it writes the flat metrics JSON ``<metrics-dir>/<variant>/<test_set>.json``
(with ``weights``: ``imagenet`` or ``scratch``, read from the model file), per-face scores
``<scores-dir>/<variant>/<test_set>_scores.csv`` (with each face's ``group``, so the report can
run paired tests) and ROC points ``<roc-dir>/<variant>/<test_set>.csv`` for ``dvc plots``. Each
of the three top folders is written whole and renamed into place, so a removed variant or test
set leaves no stale file.

The metrics JSON carries 95% group-bootstrap intervals (``<metric>_ci_low``/``_ci_high``,
params ``evaluate.bootstrap``) and, over every training seed (each with the threshold from its
own validation scores), ``<metric>_seed_{mean,std,min,max}`` and ``n_seeds``.
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
from deepfake_detection.models.registry import load_trained_model, model_info  # noqa: E402
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
    """(labels, P(fake), the model file's metadata) of the model in ``model_path`` on the prepared rows."""
    try:
        model, meta = load_trained_model(model_path, device)
    except UnsafeFileError as exc:
        raise SystemExit(f"evaluate: {exc}") from None
    if "weights" not in meta:
        raise SystemExit(f"evaluate: {model_path} does not record its starting weights (imagenet or scratch); "
                         f"re-run its train stage")
    rt = Runtime.for_device(device)
    aug = from_dict(AugmentParams, meta["augment"], f"{model_path}: augment")
    batches = BatchReader(images, index["label"].to_numpy(), rows, batch_size, shuffle=False, device=device)
    y, s, _ = predict(rt.place(model), batches, EvalAugment(aug, meta["normalize"]), rt,
                      head=model_info(meta["builder"]).head)
    return y, s, meta


def val_threshold(path: Path, rule: str) -> float:
    val = pd.read_csv(path)
    return choose_threshold(val["label"].to_numpy(), val["score"].to_numpy(), rule)


def roc_frame(y: np.ndarray, s: np.ndarray, roc_auc) -> pd.DataFrame:
    """The thinned ROC curve, or an empty table when one class only leaves no curve."""
    if roc_auc is None:
        return pd.DataFrame(columns=["fpr", "tpr"])
    fpr, tpr, _ = roc_curve_points(y, s)
    return thin_roc(np.asarray(fpr), np.asarray(tpr))


def evaluate_test_set(variant: str, test_set: str, dataset: str, threshold_rule: str, weights: str, face_ids,
                      groups, scored: list[tuple[np.ndarray, np.ndarray, float]],
                      boot) -> tuple[dict, pd.DataFrame, pd.DataFrame]:
    """(metrics, scores table, ROC table) of one test set.

    ``scored`` holds (labels, P(fake), validation threshold) per training seed, the primary
    model first; the metrics are the primary model's, its group-bootstrap intervals and the
    spread over every seed.
    """
    (y, s, threshold), *others = scored
    metrics = {"variant": variant, "test_set": test_set, "dataset": dataset, "weights": weights,
               "threshold_rule": threshold_rule,
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


def variant_models(models_root: Path, variant: str) -> list[tuple[int | None, Path, Path]]:
    """(seed or None for the primary model, model file, validation scores) of every model of ``variant``."""
    folder = models_root / variant
    return [(None, folder / "model.pt", folder / "val_scores.csv")] + [
        (seed, sub / "model.pt", sub / "val_scores.csv") for seed, sub in seed_model_dirs(folder / "seeds")]


def score_variant(variant: str, models, threshold_rule: str, images, index, rows: dict[str, np.ndarray],
                  batch_size: int, device) -> tuple[dict[str, list], str]:
    """Each test set's (labels, P(fake), val threshold) per model, primary first; and the primary's weights.

    Every model scores all the test sets' rows in one pass (each model loads once).
    """
    every = np.concatenate(list(rows.values()))
    scored: dict[str, list] = {name: [] for name in rows}
    weights = None
    for seed, model_path, val_path in models:
        threshold = val_threshold(val_path, threshold_rule)
        y_all, s_all, meta = score_model(model_path, images, index, every, batch_size, device)
        weights = meta["weights"] if seed is None else weights
        start = 0
        for name, r in rows.items():
            scored[name].append((y_all[start:start + len(r)], s_all[start:start + len(r)], threshold))
            start += len(r)
        if seed is not None:
            log(f"evaluate: {variant} seed {seed}: auc " + ", ".join(
                f"{name} {binary_metrics(*scored[name][-1])['roc_auc']}" for name in rows))
    return scored, weights


def write_variant(variant: str, params, rule: str, index, rows: dict[str, np.ndarray], scored: dict[str, list],
                  weights: str, out: dict[str, Path]) -> None:
    """The variant's metrics JSON, scores CSV and ROC CSV of every test set, under ``out``'s three folders."""
    for name, ts in params.evaluate.test_sets.items():
        r = rows[name]
        metrics, scores, roc = evaluate_test_set(
            variant, name, ts.dataset, rule, weights, index.loc[r, "face_id"].to_numpy(),
            index.loc[r, "group"].astype(str).to_numpy(), scored[name], params.evaluate.bootstrap)
        log(f"evaluate: {variant} ({weights}) on {name}: n {metrics['n']} ({metrics['n_groups']} groups) "
            f"acc {metrics['accuracy']} auc {metrics['roc_auc']} [{metrics['roc_auc_ci_low']}, "
            f"{metrics['roc_auc_ci_high']}] eer {metrics['eer']} (threshold {metrics['threshold']} from val)")
        write_json(out["metrics"] / variant / f"{name}.json", metrics)
        write_csv(out["scores"] / variant / f"{name}_scores.csv", scores)
        write_csv(out["roc"] / variant / f"{name}.csv", roc)


def variants_by_size(scored: dict[str, tuple[int, str]]) -> dict[int, list[str]]:
    """prepared_size -> the variants evaluated on it (sizes ascending, names sorted), from
    ``Params.scored_variants()`` (name -> (prepared_size, threshold_rule))."""
    out: dict[int, list[str]] = {}
    for name in sorted(scored):
        out.setdefault(scored[name][0], []).append(name)
    return dict(sorted(out.items()))


def evaluate_all(params, args, device, out: dict[str, Path]) -> None:
    """Every classifier variant and every anomaly / hybrid GAN variant on every test set; each
    prepared size is loaded once."""
    scored_variants = params.scored_variants()
    for size, names in variants_by_size(scored_variants).items():
        images, index = load_prepared(args.prepared_root / str(size))
        rows = test_set_rows(index, params.evaluate.test_sets)
        for variant in names:
            models = variant_models(args.models_root, variant)
            rule = scored_variants[variant][1]
            scored, weights = score_variant(variant, models, rule, images, index, rows,
                                            params.evaluate.batch_size, device)
            write_variant(variant, params, rule, index, rows, scored, weights, out)


@stage_main("evaluate")
def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--params", default="params.yaml")
    ap.add_argument("--models-root", required=True, type=Path,
                    help="the train and train_gan stages' folder: <variant>/model.pt, val_scores.csv, seeds/")
    ap.add_argument("--prepared-root", required=True, type=Path, help="the prepare stages' folder: <size>/")
    ap.add_argument("--metrics-dir", required=True, type=Path, help="gets <variant>/<test_set>.json")
    ap.add_argument("--scores-dir", required=True, type=Path, help="gets <variant>/<test_set>_scores.csv")
    ap.add_argument("--roc-dir", required=True, type=Path, help="gets <variant>/<test_set>.csv")
    ap.add_argument("--device", default="auto")
    args = ap.parse_args(argv)
    params = load_params(args.params)
    configure_compute(params.compute.threads, params.compute.cpu_isa, params.compute.deterministic)
    device = pick_device(args.device)
    with atomic_path(args.metrics_dir, is_dir=True) as metrics_dir, \
            atomic_path(args.scores_dir, is_dir=True) as scores_dir, \
            atomic_path(args.roc_dir, is_dir=True) as roc_dir:
        evaluate_all(params, args, device, {"metrics": metrics_dir, "scores": scores_dir, "roc": roc_dir})


if __name__ == "__main__":
    main()
