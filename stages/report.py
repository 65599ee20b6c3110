"""Stage ``report``: a markdown leaderboard of every variant x test set, beside the published numbers.

Reads each variant's metrics JSON (with its bootstrap intervals) and per-face scores; the scores
feed the paired group-bootstrap tests (params ``evaluate.bootstrap``) that mark which variants
the test set cannot tell apart.
"""

from __future__ import annotations

import argparse
import dataclasses
from pathlib import Path

from deepfake_detection.evaluation.report import (
    collect_metrics,
    leaderboard_markdown,
    paired_comparisons,
    read_scores,
)
from deepfake_detection.io import write_text
from deepfake_detection.params import load_params
from deepfake_detection.runtime import stage_main


@stage_main("report")
def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--params", default="params.yaml")
    ap.add_argument("--metrics-root", required=True, type=Path,
                    help="folder holding <variant>/<test_set>.json for every variant and test set")
    ap.add_argument("--scores-root", required=True, type=Path,
                    help="folder holding <variant>/<test_set>_scores.csv for every variant and test set")
    ap.add_argument("--out", required=True, type=Path)
    args = ap.parse_args(argv)
    params = load_params(args.params)
    published = [{"variant": name, **dataclasses.asdict(p)}
                 for name, v in sorted(params.variants.items()) for p in v.published]
    rows = collect_metrics([args.metrics_root / v / f"{t}.json"
                            for v in sorted(params.variants) for t in sorted(params.evaluate.test_sets)])
    boot = params.evaluate.bootstrap
    pairs = paired_comparisons(rows, lambda v, t: read_scores(args.scores_root / v / f"{t}_scores.csv"),
                               boot.resamples, boot.seed)
    write_text(args.out, leaderboard_markdown(rows, published, pairs))


if __name__ == "__main__":
    main()
