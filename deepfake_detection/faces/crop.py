"""Cut face crops out of images: by COCO boxes, as whole images, or by a face detector.

Each input is processed by a pure per-image function that returns face rows and reject rows, so
the image loop can run in a process pool and ``kept + rejected == faces in`` holds by
construction (every annotation or image ends in exactly one of the two tables).
"""

from __future__ import annotations

import dataclasses
import json
import os
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Iterable

import numpy as np

from ..data.manifest import normalise_split
from ..io import read_image_rgb, resize_square, write_image_rgb
from . import boxes

COCO_LABELS = {0: 0, 1: 1}   # OpenForensics category_id: 0 Real, 1 Fake -> our label


@dataclass(frozen=True)
class CropSpec:
    size: int
    margin: float
    square: bool
    min_size: int
    jpeg_quality: int
    detector: object = None          # faces.detectors.DetectorConfig for detector crops
    detector_weights: str | None = None


@dataclass(frozen=True)
class ImageJob:
    """One input image and what is known of its faces before it is opened."""

    dataset: str
    src: str                      # path of the input image (repo-relative or absolute)
    key: str                      # face id stem: <dataset>/<split>/<image stem>
    out_root: str                 # folder the crops are written under (<out_root>/<key>*.jpg)
    official_split: str
    group: str
    label: int | None = None      # for whole-image / detector inputs
    generator: str = ""
    annotations: tuple = ()       # for COCO inputs: (ann_id, category_id, bbox) triples


def _face_row(job: ImageJob, face_id: str, path: str, label: int, box, w: int, h: int) -> dict:
    x0, y0, x1, y1 = box
    return {"face_id": face_id, "path": path, "label": int(label), "source": job.dataset,
            "generator": job.generator, "group": job.group, "official_split": job.official_split,
            "src_path": job.src, "box_x": round(x0, 2), "box_y": round(y0, 2),
            "box_w": round(x1 - x0, 2), "box_h": round(y1 - y0, 2), "img_w": w, "img_h": h}


def _reject(job: ImageJob, reason: str, annotation: str = "") -> dict:
    return {"source": job.dataset, "path": job.src, "annotation": annotation, "reason": reason}


def _load(job: ImageJob) -> tuple[np.ndarray | None, str | None]:
    try:
        return read_image_rgb(job.src), None
    except FileNotFoundError:
        return None, "missing_file"
    except ValueError:
        return None, "unreadable"


def _save_crop(job: ImageJob, rgb, box, spec: CropSpec, suffix: str, label: int, rows: list) -> None:
    h, w = rgb.shape[:2]
    x0, y0, x1, y1 = boxes.crop_box(box, w, h, spec.margin, spec.square)
    crop = resize_square(rgb[y0:y1, x0:x1], spec.size)
    face_id = f"{job.key}{suffix}"
    path = f"{job.out_root}/{face_id}.jpg"
    write_image_rgb(path, crop, spec.jpeg_quality)
    rows.append(_face_row(job, face_id, path, label, box, w, h))


def crop_coco_image(job: ImageJob, spec: CropSpec) -> tuple[list[dict], list[dict]]:
    """Crop every annotated face of one COCO image; each annotation is kept or rejected."""
    rows, rejects = [], []
    rgb, problem = _load(job)
    for ann_id, category_id, bbox in job.annotations:
        note = json.dumps({"id": ann_id, "category_id": category_id, "bbox": list(bbox)})
        if problem:
            rejects.append(_reject(job, problem, note))
            continue
        if category_id not in COCO_LABELS:
            rejects.append(_reject(job, "unknown_label", note))
            continue
        h, w = rgb.shape[:2]
        box = boxes.xywh_to_xyxy(bbox)
        reason = boxes.box_problem(box, w, h, spec.min_size)
        if reason:
            rejects.append(_reject(job, reason, note))
            continue
        _save_crop(job, rgb, boxes.clamp(box, w, h), spec, f"_{ann_id}", COCO_LABELS[category_id], rows)
    return rows, rejects


def crop_whole_image(job: ImageJob, spec: CropSpec) -> tuple[list[dict], list[dict]]:
    """The input already is a face crop: centre-square it and resize."""
    rgb, problem = _load(job)
    if problem:
        return [], [_reject(job, problem)]
    h, w = rgb.shape[:2]
    if min(h, w) < spec.min_size:
        return [], [_reject(job, "too_small")]
    rows: list[dict] = []
    side = min(h, w)
    box = ((w - side) / 2, (h - side) / 2, (w + side) / 2, (h + side) / 2)
    _save_crop(job, rgb, box, dataclasses.replace(spec, margin=1.0, square=True), "", job.label, rows)
    return rows, []


def crop_detected_image(job: ImageJob, spec: CropSpec) -> tuple[list[dict], list[dict]]:
    """Find faces with the configured detector; crop the selected ones or reject the image."""
    from .detectors import cached_detector, select_faces

    rgb, problem = _load(job)
    if problem:
        return [], [_reject(job, problem)]
    det = cached_detector(spec.detector, Path(spec.detector_weights) if spec.detector_weights else None)
    faces, reason = select_faces(det.detect(rgb), spec.detector.select, spec.detector.min_face)
    if reason:
        return [], [_reject(job, reason)]
    rows: list[dict] = []
    for k, f in enumerate(faces):
        _save_crop(job, rgb, tuple(f[:4]), spec, f"_{k}" if len(faces) > 1 else "", job.label, rows)
    return rows, []


def coco_jobs(coco_json: Path, images_root: Path, dataset: str, out_root: str) -> list[ImageJob]:
    """One job per image of an OpenForensics-style COCO file (``Train_poly.json`` ...).

    The split comes from the file name (``Test-Dev_poly.json`` -> test_dev); the group is the
    source image, so all faces of one image stay in one split.
    """
    split = normalise_split(coco_json.name.replace("_poly.json", "").replace(".json", ""))
    data = json.loads(coco_json.read_text())
    by_image: dict[int, list] = {}
    for ann in data.get("annotations", []):
        by_image.setdefault(ann["image_id"], []).append(
            (ann["id"], ann.get("category_id"), tuple(ann.get("bbox", (0, 0, 0, 0)))))
    jobs = []
    known = {img["id"] for img in data.get("images", [])}
    for image_id in sorted(set(by_image) - known, key=str):
        # Annotations of an image the file does not list: rejected as missing_file, not lost.
        jobs.append(ImageJob(dataset=dataset, src=f"{coco_json.name}#image_id={image_id}",
                             key=f"{dataset}/{split}/missing_{image_id}", out_root=out_root,
                             official_split=split, group=f"{dataset}:missing:{image_id}",
                             annotations=tuple(sorted(by_image[image_id]))))
    for img in sorted(data.get("images", []), key=lambda im: im["id"]):
        anns = tuple(sorted(by_image.get(img["id"], [])))
        if not anns:
            continue
        rel = Path(img["file_name"])
        jobs.append(ImageJob(
            dataset=dataset, src=(images_root / rel).as_posix(),
            key=f"{dataset}/{split}/{rel.stem}", out_root=out_root, official_split=split,
            group=f"{dataset}:{rel.with_suffix('').as_posix()}", annotations=anns))
    return jobs


def record_jobs(records, dataset_root: Path, out_root: str) -> list[ImageJob]:
    """Jobs for adapter records (one image = one face or one detector input)."""
    jobs = []
    for rec in records.itertuples(index=False):
        rel = Path(rec.path)
        split = rec.official_split or "unsplit"
        jobs.append(ImageJob(
            dataset=rec.dataset, src=(dataset_root / rel).as_posix(),
            key=f"{rec.dataset}/{split}/{rel.with_suffix('').as_posix().replace('/', '__')}",
            out_root=out_root,
            official_split=rec.official_split, group=rec.group, label=int(rec.label),
            generator=rec.generator or ""))
    return jobs


def run_jobs(fn: Callable, jobs: Iterable[ImageJob], spec, workers: int = 0) -> tuple[list[dict], list[dict]]:
    """Apply ``fn(job, spec)`` to every job (in a process pool when workers != 1)."""
    jobs = list(jobs)
    workers = workers or min(os.cpu_count() or 1, 8)
    rows, rejects = [], []
    if workers == 1 or len(jobs) < 64:
        for r, j in (fn(job, spec) for job in jobs):
            rows += r
            rejects += j
        return rows, rejects
    with ProcessPoolExecutor(workers) as pool:
        for r, j in pool.map(fn, jobs, [spec] * len(jobs), chunksize=16):
            rows += r
            rejects += j
    return rows, rejects
