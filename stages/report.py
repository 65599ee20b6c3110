"""Stage ``report``: a markdown leaderboard of every variant x test set, beside the published numbers.

Reads each scored variant's metrics JSON (the classifiers and the anomaly / hybrid GAN variants,
with their bootstrap intervals) and per-face scores; the scores feed the paired group-bootstrap
tests (params ``evaluate.bootstrap``) that mark which variants the test set cannot tell apart.
Then the GAN section: each GAN variant's FID (``--gan-metrics``) beside the reports' FIDs, the
reference rows of the data's fake sources (``--fid-reference``) and each variant's last sample grid
(``--gan-samples``, linked relative to the markdown file).
"""

from __future__ import annotations

import argparse
import dataclasses
import os
from pathlib import Path

from deepfake_detection.evaluation.report import (
    collect_metrics,
    gan_markdown,
    leaderboard_markdown,
    paired_comparisons,
    read_json_object,
    read_scores,
)
from deepfake_detection.io import write_text
from deepfake_detection.params import load_params
from deepfake_detection.runtime import stage_main


def read_json(path: Path) -> dict:
    """A JSON object from ``path``; a one-line error naming it (and the fix) when it is not one."""
    try:
        return read_json_object(path)
    except ValueError as exc:
        raise SystemExit(f"report: {exc}; re-run the stage that writes it") from None


@stage_main("report")
def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--params", default="params.yaml")
    ap.add_argument("--metrics-root", required=True, type=Path,
                    help="folder holding <variant>/<test_set>.json for every variant and test set")
    ap.add_argument("--scores-root", required=True, type=Path,
                    help="folder holding <variant>/<test_set>_scores.csv for every variant and test set")
    ap.add_argument("--gan-metrics", type=Path, help="folder holding <variant>.json per GAN variant")
    ap.add_argument("--fid-reference", type=Path, help="the fid_reference stage's metrics JSON")
    ap.add_argument("--gan-samples", type=Path, help="folder holding <variant>.jpg per GAN variant")
    ap.add_argument("--out", required=True, type=Path)
    args = ap.parse_args(argv)
    params = load_params(args.params)
    every = {**params.variants, **params.gan_variants}
    scored = sorted(params.scored_variants())
    published = [{"variant": name, **dataclasses.asdict(p)} for name in scored for p in every[name].published]
    rows = collect_metrics([args.metrics_root / v / f"{t}.json" for v in scored for t in sorted(params.evaluate.test_sets)])
    boot = params.evaluate.bootstrap
    pairs = paired_comparisons(rows, lambda v, t: read_scores(args.scores_root / v / f"{t}_scores.csv"),
                               boot.resamples, boot.seed)
    lines = leaderboard_markdown(rows, published, pairs)
    if params.gan_variants:
        missing = [f"--{k.replace('_', '-')}" for k in ("gan_metrics", "fid_reference", "gan_samples")
                   if getattr(args, k) is None]
        if missing:
            raise SystemExit(f"report: params.yaml has GAN variants; pass {' '.join(missing)}")
        gans = sorted(params.gan_variants)
        gan_rows = [read_json(args.gan_metrics / f"{v}.json") for v in gans]
        gan_published = [{"variant": name, **dataclasses.asdict(p)} for name in gans
                         for p in params.gan_variants[name].published]
        gan_published += [{"variant": p.dataset, **dataclasses.asdict(p)} for p in params.gan.published_reference]
        reference = read_json(args.fid_reference)
        samples = {v: os.path.relpath(args.gan_samples / f"{v}.jpg", args.out.parent) for v in gans}
        lines = lines.rstrip("\n") + "\n\n" + "\n".join(gan_markdown(gan_rows, reference, gan_published, samples)) + "\n"
    write_text(args.out, lines)


if __name__ == "__main__":
    main()
