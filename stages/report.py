"""Stage ``report``: a markdown leaderboard of every variant x test set, beside the published numbers."""

from __future__ import annotations

import argparse
import dataclasses
from pathlib import Path

from deepfake_detection.evaluation.report import collect_metrics, leaderboard_markdown
from deepfake_detection.io import write_text
from deepfake_detection.params import load_params
from deepfake_detection.runtime import stage_main


@stage_main("report")
def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--params", default="params.yaml")
    ap.add_argument("--metrics-root", required=True, type=Path,
                    help="folder holding <variant>/<test_set>.json for every variant and test set")
    ap.add_argument("--out", required=True, type=Path)
    args = ap.parse_args(argv)
    params = load_params(args.params)
    published = [{"variant": name, **dataclasses.asdict(p)}
                 for name, v in sorted(params.variants.items()) for p in v.published]
    rows = collect_metrics([args.metrics_root / v / f"{t}.json"
                            for v in sorted(params.variants) for t in sorted(params.evaluate.test_sets)])
    write_text(args.out, leaderboard_markdown(rows, published))


if __name__ == "__main__":
    main()
