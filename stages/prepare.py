"""Stage ``prepare``: decode every manifest face once into a uint8 array at training size."""

from __future__ import annotations

import argparse
from pathlib import Path

from deepfake_detection.runtime import set_offline_defaults, stage_main

set_offline_defaults()

import pandas as pd  # noqa: E402

from deepfake_detection.data.prepared import prepare_arrays  # noqa: E402
from deepfake_detection.params import load_params  # noqa: E402
from deepfake_detection.runtime import log  # noqa: E402


@stage_main("prepare")
def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--params", default="params.yaml")
    ap.add_argument("--manifest", required=True, type=Path)
    ap.add_argument("--out", required=True, type=Path, help="folder for images.npy + index.csv")
    args = ap.parse_args(argv)
    size = load_params(args.params).prepare.size
    manifest = pd.read_csv(args.manifest, keep_default_na=False,
                           dtype={"official_split": str, "generator": str, "split": str})
    prepare_arrays(manifest, size, args.out)
    log(f"prepare: {len(manifest)} faces -> {args.out}/images.npy ({len(manifest) * size * size * 3 / 2**20:.1f} MiB)")


if __name__ == "__main__":
    main()
