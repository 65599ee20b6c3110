"""Stage ``train_face_detector``: train a YOLO face detector on COCO face boxes, report its mAP.

Reads ``face_detectors.<--detector>`` from params.yaml. Trains from the architecture YAML (random init,
offline) on ``--coco-train`` (a fixed ``val_fraction`` of it picks the best epoch), measures box
mAP on the held-out ``--coco-val`` with pycocotools, writes the weights (no date, no absolute
paths) and a flat metrics JSON. Scratch files live in a temporary folder beside ``--out``.
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

from deepfake_detection.runtime import set_offline_defaults, stage_main

set_offline_defaults()

from deepfake_detection.faces import yolo  # noqa: E402
from deepfake_detection.io import atomic_path, write_json  # noqa: E402
from deepfake_detection.params import load_params  # noqa: E402


@stage_main("train_face_detector")
def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--params", type=Path, default=Path("params.yaml"))
    ap.add_argument("--detector", default="yolo", help="key under face_detectors in params.yaml")
    ap.add_argument("--coco-train", type=Path, required=True, help="COCO json trained on")
    ap.add_argument("--coco-val", type=Path, required=True, help="held-out COCO json for the mAP")
    ap.add_argument("--images-root", type=Path, required=True,
                    help="folder the COCO file_name paths are relative to")
    ap.add_argument("--out", type=Path, required=True, help="weights file to write (.pt)")
    ap.add_argument("--metrics", type=Path, required=True, help="metrics JSON to write")
    ap.add_argument("--device", default=None, help="cpu, 0, ... (default: CUDA if present)")
    args = ap.parse_args(argv)

    p = load_params(args.params).face_detector_params(args.detector)
    yolo.configure_ultralytics()

    args.out.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix=f".{args.out.name}.", dir=args.out.parent) as work:
        work = Path(work)
        ds = yolo.coco_to_yolo(args.coco_train, args.images_root, work / "dataset",
                               val_fraction=p.val_fraction, max_images=p.max_train_images,
                               seed=p.seed)
        for s in ds.skipped:
            print(f"skipped {s['path']}: {s['reason']}")
        start = time.perf_counter()
        best = yolo.train_yolo(ds.data_yaml, p.model_yaml, epochs=p.epochs, imgsz=p.imgsz,
                               batch=p.batch, seed=p.seed, out_dir=work / "runs",
                               device=args.device, workers=p.workers)
        train_seconds = time.perf_counter() - start
        scores = yolo.evaluate_map(best, args.coco_val, args.images_root, imgsz=p.imgsz,
                                   device=args.device)
        with atomic_path(args.out) as tmp:
            yolo.clean_checkpoint(best, tmp)

    write_json(args.metrics, {
        "map50_95": round(scores["map50_95"], 6),
        "map50": round(scores["map50"], 6),
        "n_train_images": ds.n_images.get("train", 0),
        "n_val_images": ds.n_images.get("val", 0),
        "n_train_faces": ds.n_boxes.get("train", 0),
        "n_train_skipped": len(ds.skipped),
        "n_eval_images": scores["n_eval_images"],
        "n_eval_faces": scores["n_eval_faces"],
        "n_eval_skipped": scores["n_eval_skipped"],
        "train_split": p.train_split,
        "eval_split": p.eval_split,
        "epochs": p.epochs,
        "imgsz": p.imgsz,
    })
    print(f"face detector: mAP@[.5:.95] {scores['map50_95']:.4f}, mAP@.5 {scores['map50']:.4f} "
          f"on {scores['n_eval_images']} {p.eval_split} images -> {args.out} (trained in {train_seconds:.1f} s)")


if __name__ == "__main__":
    main()
