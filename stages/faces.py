"""Stage ``faces@<source>``: crop every face of one downloaded source.

COCO layouts are cut by their boxes; folder layouts are either already face crops (``whole``) or
go through a face detector (``detector``). Writes ``<out>/images/``, ``<out>/faces.csv`` and
``<out>/rejects.csv`` (one row per input face that produced no crop, with its reason), plus a
small counts JSON for review. Every input (a COCO annotation, a listed image without one, an
image for whole/detector crops, and any other file of the dataset folder) either yields crops or
one rejects row: inputs_kept + rejected == inputs_in always. A dataset that cannot be read (a
malformed COCO file, a misnamed class folder, colliding face ids) or that yields no face at all
stops the stage with one line naming the folder or file and the fix.
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

from deepfake_detection.runtime import set_offline_defaults, stage_main

set_offline_defaults()

import pandas as pd  # noqa: E402

from deepfake_detection.data.adapters import DatasetError, adapt  # noqa: E402
from deepfake_detection.data.known_pairs import write_known_faces  # noqa: E402
from deepfake_detection.data.manifest import FACE_COLUMNS, REJECT_COLUMNS  # noqa: E402
from deepfake_detection.faces import crop  # noqa: E402
from deepfake_detection.io import atomic_path, write_csv, write_json  # noqa: E402
from deepfake_detection.params import load_params  # noqa: E402
from deepfake_detection.runtime import log  # noqa: E402


def dataset_inputs(ds_id: str, layout, root: Path, out_root: str) -> tuple:
    """(crop function, DatasetInputs) for one dataset of the source."""
    if layout.layout == "coco":
        return crop.crop_coco_image, crop.coco_dataset(root, ds_id, out_root)
    records, rejects = adapt(layout.layout, root, ds_id)
    rejects = rejects.assign(path=[(root / p).as_posix() for p in rejects["path"]])
    jobs = crop.record_jobs(records, root, out_root)
    # params validation allows only whole or detector crops for non-COCO layouts
    fn = crop.crop_whole_image if layout.crop == "whole" else crop.crop_detected_image
    return fn, crop.DatasetInputs(jobs, rejects.to_dict("records"))


def detector_spec(fp, source, weights_arg: Path | None) -> tuple:
    """(DetectorConfig, weights path or None) for this source; SystemExit when YOLO weights
    are needed and absent. ``faces.detector.yolo.weights`` wins over the pipeline's own."""
    detector = fp.detector_config()
    if detector.backend != "yolo" or not any(d.crop == "detector" for d in source.datasets.values()):
        return detector, None
    weights = Path(detector.yolo.weights) if detector.yolo.weights else weights_arg
    if weights is None or not weights.is_file():
        raise SystemExit(f"faces: faces.detector.backend is yolo but the weights {weights} do not exist; "
                         "run the train_face_detector stage or set faces.detector.yolo.weights")
    return detector, weights


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


@stage_main("faces")
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
    detector, weights = detector_spec(fp, source, args.detector_weights)
    spec = crop.CropSpec(fp.size, fp.margin, fp.square, fp.min_size, fp.jpeg_quality, detector,
                         str(weights) if weights else None)
    final_images = (args.out / "images").as_posix()
    rows, rejects, n_in, work = [], [], {}, {}
    per_image = {ds for ds, d in source.datasets.items() if d.crop == "detector"}
    with atomic_path(args.out / "images", is_dir=True) as tmp:
        try:
            for ds_id, layout in source.datasets.items():
                work[ds_id] = dataset_inputs(ds_id, layout, args.raw / layout.dir, tmp.as_posix())
                fn, inputs = work[ds_id]
                if inputs.n_inputs == 0:
                    raise DatasetError(f"dataset {ds_id!r}: no input files in {args.raw / layout.dir}; "
                                       "check the dataset's dir in params.yaml and the download")
            # face ids must be unique across the whole source (one images folder)
            unique = iter(crop.assign_unique_keys([j for _, inp in work.values() for j in inp.jobs]))
        except DatasetError as exc:
            raise SystemExit(f"faces: {exc}") from None
        for ds_id, (fn, inputs) in work.items():
            jobs = [next(unique) for _ in inputs.jobs]
            n_in[ds_id] = inputs.n_inputs
            layout = source.datasets[ds_id]
            log(f"faces: {ds_id}: {len(jobs)} images, {n_in[ds_id]} inputs ({layout.crop} crops)")
            start = time.perf_counter()
            r, j = crop.run_jobs(fn, jobs, spec, args.workers)
            seconds = time.perf_counter() - start
            log(f"faces: {ds_id}: {len(r)} faces from {len(jobs)} images in {seconds:.1f} s "
                f"({len(jobs) / max(seconds, 1e-9):.1f} images/s, {len(r) / max(seconds, 1e-9):.1f} faces/s)")
            rows += r
            rejects += inputs.rejects + j
        faces = pd.DataFrame(rows, columns=FACE_COLUMNS)
        duplicated = faces.loc[faces["face_id"].str.casefold().duplicated(), "face_id"]
        if len(duplicated):      # unreachable after assign_unique_keys; never overwrite silently
            raise SystemExit(f"faces: face id {duplicated.iloc[0]!r} was written twice; report this bug")
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
    empty = [ds for ds, c in summary.items() if c["kept"] == 0]
    if empty:
        ds = empty[0]
        raise SystemExit(f"faces: dataset {ds!r} ({args.raw / source.datasets[ds].dir}) yielded no face: "
                         f"all {summary[ds]['inputs_in']} inputs rejected {summary[ds]['rejected_by_reason']}; "
                         f"see {args.out / 'rejects.csv'}")

if __name__ == "__main__":
    main()
