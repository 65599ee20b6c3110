"""Stage ``prepare@<size>``: decode every manifest face once into a uint8 array of one input size.

One folder per size in ``prepare.sizes`` (the sizes the variants declare as ``prepared_size``),
written streamed (peak memory does not grow with the number of faces). Imports no torch.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from deepfake_detection.data.prepared import PrepareError, prepare_arrays
from deepfake_detection.params import load_params
from deepfake_detection.runtime import log, set_offline_defaults, stage_main


@stage_main("prepare")
def main(argv=None) -> None:
    set_offline_defaults()
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--params", default="params.yaml")
    ap.add_argument("--manifest", required=True, type=Path)
    ap.add_argument("--size", required=True, type=int, help="side of the prepared images (one of prepare.sizes)")
    ap.add_argument("--out", required=True, type=Path, help="folder for images.npy + index.csv")
    ap.add_argument("--workers", type=int, default=4, help="decoding threads")
    args = ap.parse_args(argv)
    sizes = load_params(args.params).prepare.sizes
    if args.size not in sizes:
        raise SystemExit(f"prepare: --size {args.size} is not in prepare.sizes {sizes} of {args.params}; "
                         f"add it there (and set a variant's prepared_size to it)")
    try:
        n = prepare_arrays(args.manifest, args.size, args.out, workers=max(args.workers, 1))
    except PrepareError as exc:
        raise SystemExit(f"prepare: {exc}") from None
    log(f"prepare: {n} faces -> {args.out}/images.npy ({n * args.size ** 2 * 3 / 2**20:.1f} MiB)")


if __name__ == "__main__":
    main()
