"""Stage ``evaluate@<variant>-<test_set>``: score one trained variant on one test set.

The decision threshold comes from the variant's validation scores (its ``threshold_rule``),
never from the test set; the 0.5-threshold figures are reported beside it. Writes the flat
metrics JSON, per-face scores and ROC points for ``dvc plots``.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from deepfake_detection.runtime import set_offline_defaults, stage_main

set_offline_defaults()

import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
from torch.utils.data import DataLoader  # noqa: E402

from deepfake_detection.data.prepared import PreparedFaces, load_prepared, select_rows  # noqa: E402
from deepfake_detection.data.transforms import eval_transform  # noqa: E402
from deepfake_detection.evaluation.metrics import binary_metrics, choose_threshold, roc_curve_points  # noqa: E402
from deepfake_detection.io import write_csv, write_json  # noqa: E402
from deepfake_detection.models.registry import load_trained_model  # noqa: E402
from deepfake_detection.params import AugmentParams, from_dict, load_params  # noqa: E402
from deepfake_detection.runtime import log, pick_device  # noqa: E402
from deepfake_detection.training.engine import Runtime, predict  # noqa: E402

ROC_POINTS = 101   # thinned ROC curve: enough for a plot, small enough to commit


def thin_roc(fpr: np.ndarray, tpr: np.ndarray, n: int = ROC_POINTS) -> pd.DataFrame:
    """The ROC curve resampled at ``n`` evenly spaced FPR values (step interpolation)."""
    grid = np.linspace(0.0, 1.0, n)
    idx = np.searchsorted(fpr, grid, side="right") - 1
    return pd.DataFrame({"fpr": grid.round(4), "tpr": tpr[np.clip(idx, 0, len(tpr) - 1)].round(4)})


@stage_main("evaluate")
def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--params", default="params.yaml")
    ap.add_argument("--variant", required=True)
    ap.add_argument("--test-set", required=True)
    ap.add_argument("--prepared", required=True, type=Path)
    ap.add_argument("--model", required=True, type=Path)
    ap.add_argument("--val-scores", required=True, type=Path)
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
    device = pick_device(args.device)
    model, meta = load_trained_model(args.model, device)
    rt = Runtime.for_device(device, meta["normalize"])
    images, index = load_prepared(args.prepared)
    rows = select_rows(index, [ts.dataset], ts.split)
    if len(rows) == 0:
        raise SystemExit(f"evaluate: test set {args.test_set!r} ({ts.dataset}, split {ts.split!r}) has no faces")
    aug = from_dict(AugmentParams, meta["augment"], "model.augment")
    loader = DataLoader(PreparedFaces(images, index["label"].to_numpy(), rows,
                                      eval_transform(aug)),
                        batch_size=params.evaluate.batch_size, shuffle=False)
    y, s, _ = predict(rt.place(model), loader, rt)
    val = pd.read_csv(args.val_scores)
    threshold = choose_threshold(val["label"].to_numpy(), val["score"].to_numpy(), cfg.threshold_rule)
    metrics = {"variant": args.variant, "test_set": args.test_set, "dataset": ts.dataset,
               "threshold_rule": cfg.threshold_rule, **binary_metrics(y, s, threshold)}
    log(f"evaluate: {args.variant} on {args.test_set}: n {metrics['n']} acc {metrics['accuracy']} "
        f"auc {metrics['roc_auc']} eer {metrics['eer']} (threshold {metrics['threshold']} from val)")
    write_json(args.metrics, metrics)
    write_csv(args.scores, pd.DataFrame({"face_id": index.loc[rows, "face_id"].to_numpy(), "label": y,
                                         "score": s.round(6)}))
    if metrics["roc_auc"] is None:   # one class only: no ROC curve exists
        write_csv(args.roc, pd.DataFrame(columns=["fpr", "tpr"]))
    else:
        fpr, tpr, _ = roc_curve_points(y, s)
        write_csv(args.roc, thin_roc(np.asarray(fpr), np.asarray(tpr)))


if __name__ == "__main__":
    main()
