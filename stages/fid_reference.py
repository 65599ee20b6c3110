"""Stage ``fid_reference``: the held-out real faces' Inception features, and the FID of each fake source.

Every GAN variant's FID is taken against the same real faces: the held-out side of ``gan``'s
group-aware 75/25 split of the real faces of ``gan.datasets`` (``gan.data.real_split``), at most
``gan.fid.n_real`` of them (a seeded subset). This stage computes their pytorch-fid Inception
pool3 features once (``--out``, an ``.npz`` with ``activations``, ``rows`` and ``face_ids`` of
those faces, and the split itself: ``train_rows`` and ``held_out_rows``) so each
``train_gan@<variant>`` only runs Inception on its own samples, and the generative variants train
on ``train_rows`` without computing the split again.

It also writes the reference rows (``--metrics``): the FID of the fake faces of each source in
the data (``<dataset>`` or ``<dataset>/<generator>``, at most ``gan.fid.n_reference`` each) against
those real faces, as seed 002 reports for the DeepFakeFace generators. They say what FID a real
deepfake source scores under the same sample sizes, which the GAN numbers can be read against.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from deepfake_detection.runtime import set_offline_defaults, stage_main

set_offline_defaults()

import numpy as np  # noqa: E402

from deepfake_detection.data.prepared import load_prepared  # noqa: E402
from deepfake_detection.evaluation.fid import activations, fid_from_activations, fid_network, inception_weights  # noqa: E402
from deepfake_detection.gan.data import fake_sources, real_split, subset  # noqa: E402
from deepfake_detection.io import atomic_path, write_json  # noqa: E402
from deepfake_detection.params import load_params  # noqa: E402
from deepfake_detection.runtime import configure_compute, log, pick_device  # noqa: E402


def nchw(images: np.ndarray, rows: np.ndarray) -> np.ndarray:
    """The prepared (N, S, S, 3) uint8 faces at ``rows`` as (n, 3, S, S)."""
    return np.ascontiguousarray(np.asarray(images[np.sort(rows)]).transpose(0, 3, 1, 2))


def write_npz(path: Path, **arrays) -> None:
    """``np.savez`` into ``path`` atomically (through a file object: no '.npz' appended)."""
    with atomic_path(path) as tmp, open(tmp, "wb") as f:
        np.savez(f, **arrays)


@stage_main("fid_reference")
def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--params", default="params.yaml")
    ap.add_argument("--prepared", required=True, type=Path, help="the prepare stage's folder of gan.prepared_size")
    ap.add_argument("--out", required=True, type=Path, help="output .npz: the held-out real faces' activations")
    ap.add_argument("--metrics", required=True, type=Path, help="output JSON: FID of each fake source")
    ap.add_argument("--device", default="auto")
    args = ap.parse_args(argv)
    params = load_params(args.params)
    if params.gan is None:
        raise SystemExit("fid_reference: params.yaml has no 'gan' section (datasets, holdout, fid); add it")
    gan, cfg = params.gan, params.gan.fid
    configure_compute(params.compute.threads, params.compute.cpu_isa, params.compute.deterministic)
    device = pick_device(args.device)
    images, index = load_prepared(args.prepared)
    try:
        train_rows, held_out = real_split(index, gan.datasets, gan.holdout, gan.seed)
    except ValueError as exc:
        raise SystemExit(f"fid_reference: {exc}") from None
    real_rows = subset(held_out, cfg.n_real, gan.seed)
    weights, origin = inception_weights()
    model = fid_network(device, weights)
    log(f"fid_reference: Inception weights from {origin}; {len(real_rows)} of {len(held_out)} held-out real "
        f"faces of {gan.datasets}")
    real = activations(nchw(images, real_rows), model, cfg.batch_size, device)
    reference = {}
    for source, rows in fake_sources(index).items():
        rows = subset(rows, cfg.n_reference, gan.seed)
        if len(rows) < 2:
            log(f"fid_reference: {source}: {len(rows)} fake face(s), no FID (needs 2)")
            continue
        fake = activations(nchw(images, rows), model, cfg.batch_size, device)
        out = fid_from_activations(real, fake, cfg.method)
        reference[source] = {**out, "fid": round(out["fid"], 4), "fid_inception": origin}
        log(f"fid_reference: {source}: FID {reference[source]['fid']} ({len(fake)} fake vs {len(real)} real)")
    face_ids = index.set_index("row").loc[real_rows, "face_id"].to_numpy().astype(str)
    write_npz(args.out, activations=real, rows=real_rows, face_ids=face_ids, train_rows=train_rows,
              held_out_rows=held_out)
    write_json(args.metrics, reference)


if __name__ == "__main__":
    main()
