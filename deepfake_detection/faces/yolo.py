"""YOLO face detector: COCO face boxes -> YOLO dataset -> training from a model YAML -> COCO mAP.

OpenForensics' COCO files (``images[].file_name`` such as ``Images/Train/a.jpg``, ``bbox`` =
``[x, y, w, h]``, category 0 Real / 1 Fake) give face boxes for a one-class detector ``face``;
``stages/train_face_detector.py`` trains it and the ``yolo`` backend of
:mod:`deepfake_detection.faces.detectors` uses it (seed 002 cropped DeepFakeFace with YOLOv8).

Ultralytics reaches for the network and for the user's home unless told not to:
:func:`configure_ultralytics` must run before it is imported (every function here calls it). It
works offline (``YOLO_OFFLINE``, no auto-install), keeps its settings in a project folder with a
local font, and turns off every logger integration: its DVC callback would edit ``dvc.yaml``.
Training starts from the architecture YAML (random init, nothing fetched), without the AMP check
(it downloads ``yolo26n.pt``) and without plots; every run output goes under ``out_dir``.
"""

from __future__ import annotations

import contextlib
import hashlib
import io
import json
import os
import shutil
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import numpy as np

from deepfake_detection.faces.boxes import box_problem, clamp, xywh_to_xyxy
from deepfake_detection.params import check

# Integrations that would log elsewhere or edit files (dvc: dvc.yaml, dvclive/), and telemetry.
_SETTINGS = {"sync": False, "hub": False, "clearml": False, "comet": False, "dvc": False,
             "mlflow": False, "raytune": False, "tensorboard": False, "wandb": False,
             "vscode_msg": False, "openvino_msg": False}


def configure_ultralytics(config_dir: str | Path | None = None) -> Path:
    """Make Ultralytics offline and project-local; return its settings folder.

    ``config_dir`` defaults to ``$YOLO_CONFIG_DIR`` or ``./.ultralytics`` (git-ignored; stages
    run from the repository root). Must run before the first ``import ultralytics`` of the
    process: its settings, font and online status are read once, at import.
    """
    root = Path(config_dir or os.environ.get("YOLO_CONFIG_DIR") or Path.cwd() / ".ultralytics")
    root = root.resolve()
    user_dir = root / "Ultralytics"           # what Ultralytics derives from YOLO_CONFIG_DIR
    if "ultralytics" not in sys.modules:
        os.environ["YOLO_CONFIG_DIR"] = str(root)
        os.environ["YOLO_OFFLINE"] = "1"          # no DNS probe, no downloads attempted
        os.environ["YOLO_AUTOINSTALL"] = "0"      # never pip-install a "missing" requirement
        os.environ.pop("ULTRALYTICS_API_KEY", None)   # would stream training to the platform
        user_dir.mkdir(parents=True, exist_ok=True)
        font = user_dir / "Arial.ttf"             # plotting would download Arial.ttf
        if not font.exists():
            import matplotlib

            tmp = font.with_name(f".Arial.ttf.{os.getpid()}")   # parallel workers: atomic
            shutil.copyfile(Path(matplotlib.get_data_path()) / "fonts/ttf/DejaVuSans.ttf", tmp)
            os.replace(tmp, font)
    from ultralytics.utils import SETTINGS, USER_CONFIG_DIR

    if Path(USER_CONFIG_DIR).resolve() != user_dir:
        raise RuntimeError(
            f"ultralytics was imported with settings in {USER_CONFIG_DIR}, not {user_dir}: call "
            "configure_ultralytics() before anything imports ultralytics (once per process)")
    wanted = {k: v for k, v in _SETTINGS.items() if k in SETTINGS.defaults}
    wanted.update(runs_dir=str(root / "runs"), weights_dir=str(root / "weights"),
                  datasets_dir=str(root / "datasets"))
    if any(SETTINGS.get(k) != v for k, v in wanted.items()):
        SETTINGS.update(wanted)
    return user_dir


# --------------------------------------------------------------------------- COCO -> YOLO


@dataclass
class YoloSplit:
    """What :func:`coco_to_yolo` wrote: counts per YOLO split and the images it left out."""

    data_yaml: Path
    n_images: dict[str, int]                  # split -> images written (background included)
    n_boxes: dict[str, int]
    n_background: int                         # images without any face annotation
    skipped: list[dict[str, str]] = field(default_factory=list)   # {path, reason}


def _image_problem(path: Path) -> tuple[str | None, tuple[int, int]]:
    """(reason or None, (width, height)) from the file header (no full decode)."""
    from PIL import Image

    if not path.is_file():
        return "missing_file", (0, 0)
    try:
        with Image.open(path) as im:
            size = im.size
            # Ultralytics reads pixels upright per EXIF; COCO boxes are in stored pixels
            if im.getexif().get(0x0112, 1) in (5, 6, 7, 8):
                return "exif_rotated", size
    except Exception:
        return "unreadable", (0, 0)
    return None, size


def read_coco_faces(coco_json: str | Path, images_root: str | Path
                    ) -> tuple[list[dict[str, Any]], list[dict[str, str]]]:
    """The usable images of a COCO file with their face boxes clamped to the image.

    Returns ``(images, skipped)``: images as ``{"id", "file_name", "path", "width", "height",
    "boxes": [(x0, y0, x1, y1), ...]}`` in file order (Real and Fake are both "face"); skipped as
    ``{"path", "reason"}``. An image is skipped whole when its file is missing or unreadable or
    any of its boxes is bad (``zero_area``, ``box_outside``, ``bad_bbox``): training on it with a
    face left unlabelled would teach the detector that the face is background.
    """
    coco = json.loads(Path(coco_json).read_text())
    images_root = Path(images_root)
    by_image: dict[Any, list] = {}
    for ann in coco.get("annotations", []):
        by_image.setdefault(ann.get("image_id"), []).append(ann)
    images, skipped = [], []
    for img in coco.get("images", []):
        rel = str(img["file_name"])
        reason, (width, height) = _image_problem(images_root / rel)
        boxes = []
        for ann in by_image.get(img["id"], []) if reason is None else []:
            bbox = ann.get("bbox")
            if not (isinstance(bbox, (list, tuple)) and len(bbox) == 4
                    and all(isinstance(v, (int, float)) and np.isfinite(v) for v in bbox)):
                reason = "bad_bbox"
                break
            box = xywh_to_xyxy(bbox)
            if (reason := box_problem(box, width, height)) is not None:
                break
            boxes.append(clamp(box, width, height))
        if reason is not None:
            skipped.append({"path": rel, "reason": reason})
            continue
        images.append({"id": img["id"], "file_name": rel, "path": images_root / rel,
                       "width": width, "height": height, "boxes": boxes})
    return images, skipped


def yolo_label_lines(boxes, width: int, height: int) -> list[str]:
    """``0 cx cy w h`` lines, normalised to the image size (class 0 = face)."""
    lines = []
    for x0, y0, x1, y1 in boxes:
        cx, cy = (x0 + x1) / 2 / width, (y0 + y1) / 2 / height
        lines.append(f"0 {cx:.6f} {cy:.6f} {(x1 - x0) / width:.6f} {(y1 - y0) / height:.6f}")
    return lines


def _holdout(file_name: str, seed: int) -> float:
    """A stable pseudo-random number in [0, 1) per image (independent of file order)."""
    digest = hashlib.sha256(f"{seed}:{file_name}".encode()).digest()
    return int.from_bytes(digest[:8], "big") / 2**64


def coco_to_yolo(coco_json: str | Path, images_root: str | Path, out_dir: str | Path, *,
                 split: str = "train", val_fraction: float = 0.0, max_images: int = 0,
                 seed: int = 0, link: Literal["symlink", "copy", "hardlink"] = "symlink"
                 ) -> YoloSplit:
    """Write a YOLO dataset (``images/<split>/``, ``labels/<split>/``, ``data.yaml``) to ``out_dir``.

    Images are linked (absolute symlinks by default) under flattened names
    (``Images/Train/a.jpg`` -> ``Images__Train__a.jpg``, so no inner ``images/`` folder confuses
    Ultralytics' image -> label path rule). ``val_fraction`` of the images (chosen by a hash of
    the file name and ``seed``) go to ``val`` instead, for Ultralytics' per-epoch validation and
    best-epoch choice; ``max_images`` > 0 keeps only that many (the same hash order). Another
    call with ``split="val"`` adds a split; ``data.yaml`` always lists what is on disk (``val``
    falls back to ``train``).
    """
    check(0.0 <= val_fraction < 1.0, "val_fraction", f"must be in [0, 1), got {val_fraction}")
    out_dir = Path(out_dir).resolve()
    images, skipped = read_coco_faces(coco_json, images_root)
    if max_images and len(images) > max_images:
        order = sorted(range(len(images)), key=lambda i: _holdout(images[i]["file_name"], seed))
        keep = set(order[:max_images])
        images = [im for i, im in enumerate(images) if i in keep]
    n_images: dict[str, int] = {}
    n_boxes: dict[str, int] = {}
    for img in images:
        name = img["file_name"].replace("\\", "/").replace("/", "__")
        held_out = split == "train" and _holdout(img["file_name"], seed + 1) < val_fraction
        part = "val" if held_out else split
        dst = out_dir / "images" / part / name
        label = (out_dir / "labels" / part / name).with_suffix(".txt")
        dst.parent.mkdir(parents=True, exist_ok=True)
        label.parent.mkdir(parents=True, exist_ok=True)
        dst.unlink(missing_ok=True)
        src = Path(img["path"]).resolve()
        if link == "symlink":
            dst.symlink_to(src)
        elif link == "hardlink":
            os.link(src, dst)
        else:
            shutil.copyfile(src, dst)
        lines = yolo_label_lines(img["boxes"], img["width"], img["height"])
        label.write_text("".join(line + "\n" for line in lines))
        n_images[part] = n_images.get(part, 0) + 1
        n_boxes[part] = n_boxes.get(part, 0) + len(lines)
    return YoloSplit(data_yaml=write_data_yaml(out_dir), n_images=n_images, n_boxes=n_boxes,
                     n_background=sum(not im["boxes"] for im in images), skipped=skipped)


def write_data_yaml(out_dir: Path) -> Path:
    import yaml

    has_val = (out_dir / "images" / "val").is_dir()
    data = {"path": str(out_dir), "train": "images/train",
            "val": "images/val" if has_val else "images/train", "names": {0: "face"}}
    path = out_dir / "data.yaml"
    path.write_text(yaml.safe_dump(data, sort_keys=False))
    return path


# --------------------------------------------------------------------------- training


@dataclass
class FaceDetectorTrainParams:
    """``face_detector`` in params.yaml (stage ``train_face_detector``)."""

    source: str = "demo"                # download unit holding the COCO dataset (data/raw/<source>)
    coco_subdir: str = "openforensics"  # its folder with <split>_poly.json and the images
    model_yaml: str = "yolov8n.yaml"    # architecture only: trained from random init
    epochs: int = 12                    # demo scale: ~80 s on 2 CPU cores, mAP@.5 ~0.66
    imgsz: int = 160                    # OpenForensics proper: 640 (faces are small in big photos)
    batch: int = 16
    seed: int = 0
    workers: int = 0                    # dataloader processes (0: in the main process)
    val_fraction: float = 0.1           # of the train images, for the best-epoch choice
    max_train_images: int = 0           # 0: all; else a fixed subset (quick runs)
    train_split: str = "Train"          # COCO split trained on (names the dvc.yaml input)
    eval_split: str = "Val"             # held-out COCO split the mAP is measured on

    def validate(self, where: str) -> None:
        check(self.model_yaml.endswith((".yaml", ".yml")), f"{where}.model_yaml",
              f"must be an architecture .yaml (training starts from random init), "
              f"got {self.model_yaml!r}")
        check(self.epochs >= 1, f"{where}.epochs", f"must be >= 1, got {self.epochs}")
        check(self.imgsz >= 32 and self.imgsz % 32 == 0, f"{where}.imgsz",
              f"must be a multiple of 32, >= 32, got {self.imgsz}")
        check(self.batch >= 1, f"{where}.batch", f"must be >= 1, got {self.batch}")
        check(self.workers >= 0, f"{where}.workers", f"must be >= 0, got {self.workers}")
        check(0.0 <= self.val_fraction < 1.0, f"{where}.val_fraction",
              f"must be in [0, 1), got {self.val_fraction}")
        check(self.max_train_images >= 0, f"{where}.max_train_images", "must be >= 0")


def train_yolo(data_yaml: str | Path, model_yaml: str = "yolov8n.yaml", *, epochs: int,
               imgsz: int, batch: int, seed: int, out_dir: str | Path, device: str | None = None,
               workers: int = 0) -> Path:
    """Train a detector from ``model_yaml`` (random init) on ``data_yaml``; return best weights.

    All run files go to ``out_dir/train``. ``device`` None picks CUDA when present, else CPU.
    """
    configure_ultralytics()
    from ultralytics import YOLO

    out_dir = Path(out_dir).resolve()
    model = YOLO(model_yaml, task="detect")
    model.train(data=str(Path(data_yaml).resolve()), epochs=epochs, imgsz=imgsz, batch=batch,
                seed=seed, deterministic=True, workers=workers, device=device,
                project=str(out_dir), name="train", exist_ok=True, pretrained=False,
                amp=False, plots=False, verbose=False)
    save_dir = Path(model.trainer.save_dir)
    best = save_dir / "weights" / "best.pt"
    return best if best.is_file() else save_dir / "weights" / "last.pt"


def clean_checkpoint(src: str | Path, dst: str | Path) -> None:
    """Copy Ultralytics weights without the run's date, timings, git state and absolute paths.

    Keeps the network, its class names and the training arguments (paths cut to file names),
    so the file depends only on the data, the params and the seed.
    """
    import torch

    def strip_paths(args):
        if not isinstance(args, dict):
            return args
        paths = ("data", "project", "save_dir", "model")
        return {k: Path(v).name if k in paths and isinstance(v, str) else v for k, v in args.items()}

    ckpt = torch.load(src, map_location="cpu", weights_only=False)
    ckpt["date"] = None
    ckpt["git"] = None
    ckpt["train_args"] = strip_paths(ckpt.get("train_args"))
    if isinstance(ckpt.get("train_results"), dict):
        ckpt["train_results"].pop("time", None)
    for key in ("model", "ema"):
        if ckpt.get(key) is not None and hasattr(ckpt[key], "args"):
            ckpt[key].args = strip_paths(ckpt[key].args)
    buf = io.BytesIO()   # a file name would become the zip's inner folder name (a temp name)
    torch.save(ckpt, buf)
    Path(dst).write_bytes(buf.getvalue())


# --------------------------------------------------------------------------- evaluation


def predict_coco(weights: str | Path, images: list[dict[str, Any]], *, imgsz: int = 640,
                 conf: float = 0.001, iou: float = 0.7, max_det: int = 100,
                 device: str | None = None, batch: int = 16) -> list[dict[str, Any]]:
    """COCO results (``image_id``, ``category_id`` 1, ``bbox`` xywh, ``score``) for ``images``."""
    configure_ultralytics()
    from ultralytics import YOLO

    model = YOLO(str(weights), task="detect")
    results = []
    for start in range(0, len(images), batch):
        chunk = images[start:start + batch]
        preds = model.predict([str(im["path"]) for im in chunk], imgsz=imgsz, conf=conf, iou=iou,
                              max_det=max_det, device=device, verbose=False, save=False)
        for im, pred in zip(chunk, preds):
            boxes, scores = pred.boxes.xyxy.cpu().tolist(), pred.boxes.conf.cpu().tolist()
            for (x0, y0, x1, y1), s in zip(boxes, scores):
                bbox = [round(v, 2) for v in (x0, y0, x1 - x0, y1 - y0)]
                results.append({"image_id": im["id"], "category_id": 1, "bbox": bbox,
                                "score": round(float(s), 5)})
    return results


def coco_map(images: list[dict[str, Any]], detections: list[dict[str, Any]]) -> dict[str, float]:
    """Class-agnostic box mAP@[.5:.95] and mAP@.5 by pycocotools' COCOeval."""
    from pycocotools.coco import COCO
    from pycocotools.cocoeval import COCOeval

    n_faces = sum(len(im["boxes"]) for im in images)
    if not detections or not n_faces:
        return {"map50_95": 0.0, "map50": 0.0}
    faces = [(im["id"], box) for im in images for box in im["boxes"]]
    anns = [{"id": i + 1, "image_id": image_id, "category_id": 1, "iscrowd": 0,
             "bbox": [x0, y0, x1 - x0, y1 - y0], "area": (x1 - x0) * (y1 - y0)}
            for i, (image_id, (x0, y0, x1, y1)) in enumerate(faces)]
    gt = COCO()
    gt.dataset = {"images": [{"id": im["id"], "width": im["width"], "height": im["height"]}
                             for im in images],
                  "annotations": anns, "categories": [{"id": 1, "name": "face"}]}
    with contextlib.redirect_stdout(io.StringIO()):   # pycocotools prints its progress
        gt.createIndex()
        dt = gt.loadRes(detections)
        ev = COCOeval(gt, dt, iouType="bbox")
        ev.evaluate()
        ev.accumulate()
        ev.summarize()
    return {"map50_95": max(float(ev.stats[0]), 0.0), "map50": max(float(ev.stats[1]), 0.0)}


def evaluate_map(weights: str | Path, coco_json: str | Path, images_root: str | Path, *,
                 imgsz: int = 640, device: str | None = None) -> dict[str, Any]:
    """Box mAP of a YOLO face detector on a COCO split (Real and Fake both count as face).

    Returns ``map50_95``, ``map50``, ``n_eval_images``, ``n_eval_faces``, ``n_eval_skipped``
    (images left out as in :func:`read_coco_faces`).
    """
    images, skipped = read_coco_faces(coco_json, images_root)
    dets = predict_coco(weights, images, imgsz=imgsz, device=device)
    return {**coco_map(images, dets), "n_eval_images": len(images),
            "n_eval_faces": sum(len(im["boxes"]) for im in images), "n_eval_skipped": len(skipped)}
