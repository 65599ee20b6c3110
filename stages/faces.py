"""Stage ``faces@<source>``: crop every face of one downloaded source.

COCO layouts are cut by their boxes; folder layouts are either already face crops (``whole``) or
go through a face detector (``detector``). Writes ``<out>/images/``, ``<out>/faces.csv`` and
``<out>/rejects.csv`` (one row per input face that produced no crop, with its reason), plus a
small counts JSON for review. Every input (a COCO annotation, or an image for whole/detector
crops) either yields crops or one rejects row: inputs_kept + rejected == inputs_in always.
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

from deepfake_detection.runtime import set_offline_defaults

set_offline_defaults()

import pandas as pd  # noqa: E402

from deepfake_detection.data.adapters import adapt  # noqa: E402
from deepfake_detection.data.known_pairs import write_known_faces  # noqa: E402
from deepfake_detection.data.manifest import FACE_COLUMNS, REJECT_COLUMNS  # noqa: E402
from deepfake_detection.faces import crop  # noqa: E402
from deepfake_detection.io import atomic_path, write_csv, write_json  # noqa: E402
from deepfake_detection.params import load_params  # noqa: E402
from deepfake_detection.runtime import log  # noqa: E402


def dataset_jobs(ds_id: str, layout, root: Path, out_root: str, pre_rejects: list):
    """(crop function, jobs, number of input faces) for one dataset of the source."""
    if layout.layout == "coco":
        files = sorted(root.glob("*_poly.json"))
        if not files:
            raise SystemExit(f"faces: no *_poly.json COCO files in {root} for dataset {ds_id!r}")
        jobs = [j for f in files for j in crop.coco_jobs(f, root, ds_id, out_root)]
        return crop.crop_coco_image, jobs, sum(len(j.annotations) for j in jobs)
    records, rejects = adapt(layout.layout, root, ds_id)
    rejects = rejects.assign(path=[(root / p).as_posix() for p in rejects["path"]])
    pre_rejects.extend(rejects.to_dict("records"))
    jobs = crop.record_jobs(records, root, out_root)
    # params validation allows only whole or detector crops for non-COCO layouts
    fn = crop.crop_whole_image if layout.crop == "whole" else crop.crop_detected_image
    return fn, jobs, len(jobs) + len(rejects)


def counts(faces: pd.DataFrame, rejects: pd.DataFrame, n_in: dict[str, int], per_image: set[str]) -> dict:
    """Counts per dataset; for detector datasets an input is an image (it may hold several faces)."""
    out = {}
    for ds, n in n_in.items():
        f = faces[faces["source"] == ds]
        r = rejects[rejects["source"] == ds]
        kept_inputs = f["src_path"].nunique() if ds in per_image else len(f)
        out[ds] = {
            "inputs_in": n, "input_kind": "image" if ds in per_image else "face",
            "inputs_kept": int(kept_inputs), "kept": len(f), "rejected": len(r),
            "kept_real": int((f["label"] == 0).sum()), "kept_fake": int((f["label"] == 1).sum()),
            "kept_by_official_split": {k: int(v) for k, v in f["official_split"].replace("", "none").value_counts().sort_index().items()},
            "rejected_by_reason": {k: int(v) for k, v in r["reason"].value_counts().sort_index().items()},
        }
    return out


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--params", default="params.yaml")
    ap.add_argument("--source", required=True)
    ap.add_argument("--raw", required=True, type=Path, help="the source's download folder")
    ap.add_argument("--out", required=True, type=Path, help="output folder data/faces/<source>")
    ap.add_argument("--metrics", required=True, type=Path)
    ap.add_argument("--detector-weights", type=Path,
                    help="YOLO weights for faces.detector.backend yolo (the train_face_detector output)")
    ap.add_argument("--workers", type=int, default=0)
    args = ap.parse_args(argv)
    params = load_params(args.params)
    if args.source not in params.sources:
        raise SystemExit(f"faces: --source {args.source!r} is not defined under 'sources' in {args.params}")
    source, fp = params.sources[args.source], params.faces
    detector = fp.detector_config()
    # faces.detector.weights (e.g. a detector trained elsewhere) wins over the pipeline's own
    weights = Path(detector.weights) if detector.weights else args.detector_weights
    if detector.backend == "yolo" and any(d.crop == "detector" for d in source.datasets.values()):
        if weights is None or not weights.is_file():
            raise SystemExit(f"faces: faces.detector.backend is yolo but the weights {weights} do not exist; "
                             "run the train_face_detector stage or set faces.detector.weights")
    spec = crop.CropSpec(fp.size, fp.margin, fp.square, fp.min_size, fp.jpeg_quality, detector,
                         str(weights) if weights and detector.backend == "yolo" else None)
    final_images = (args.out / "images").as_posix()
    rows, rejects, n_in = [], [], {}
    per_image = {ds for ds, d in source.datasets.items() if d.crop == "detector"}
    with atomic_path(args.out / "images", is_dir=True) as tmp:
        for ds_id, layout in source.datasets.items():
            pre: list[dict] = []
            fn, jobs, n_in[ds_id] = dataset_jobs(ds_id, layout, args.raw / layout.dir, tmp.as_posix(), pre)
            log(f"faces: {ds_id}: {len(jobs)} images, {n_in[ds_id]} inputs ({layout.crop} crops)")
            start = time.perf_counter()
            r, j = crop.run_jobs(fn, jobs, spec, args.workers)
            seconds = time.perf_counter() - start
            log(f"faces: {ds_id}: {len(r)} faces from {len(jobs)} images in {seconds:.1f} s "
                f"({len(jobs) / max(seconds, 1e-9):.1f} images/s, {len(r) / max(seconds, 1e-9):.1f} faces/s)")
            rows += r
            rejects += pre + j
        faces = pd.DataFrame(rows, columns=FACE_COLUMNS)
        faces["path"] = faces["path"].str.replace(tmp.as_posix(), final_images, regex=False)
        faces = faces.sort_values("face_id", kind="stable").reset_index(drop=True)
    rej = pd.DataFrame(rejects, columns=REJECT_COLUMNS).sort_values(["source", "path", "annotation"], kind="stable")
    summary = counts(faces, rej, n_in, per_image)
    for ds, c in summary.items():
        if c["inputs_kept"] + c["rejected"] != c["inputs_in"]:
            raise SystemExit(f"faces: {ds}: kept {c['inputs_kept']} + rejected {c['rejected']} "
                             f"!= {c['inputs_in']} {c['input_kind']}s in")
        log(f"faces: {ds}: kept {c['kept']} (real {c['kept_real']}, fake {c['kept_fake']}), "
            f"rejected {c['rejected']} {c['rejected_by_reason']}")
    write_csv(args.out / "faces.csv", faces)
    write_csv(args.out / "rejects.csv", rej)
    write_json(args.metrics, summary)
    write_known_faces(args.raw, faces, args.out / "known_duplicates.csv")


if __name__ == "__main__":
    main()
