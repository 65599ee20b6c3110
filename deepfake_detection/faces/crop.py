"""Cut face crops out of images: by COCO boxes, as whole images, or by a face detector.

Building the work (:func:`coco_inputs`, :func:`record_jobs`, :func:`assign_unique_keys`) is
separate from doing it. Each input is processed by a pure per-image function that returns face
rows and reject rows, so the image loop can run in a process pool and ``kept + rejected ==
inputs`` holds by construction: every COCO annotation, every listed image without one and every
other file of the dataset folder ends in exactly one of the two tables.

Malformed COCO content never aborts with a traceback: a bad record is a ``bad_annotation``
reject; a file that cannot be read at all (invalid JSON, no ``images``/``annotations`` list, an
unknown split name) is a :class:`~deepfake_detection.data.adapters.DatasetError` with one line
naming the file and the fix. A ``file_name`` that leads outside the dataset folder (absolute,
``..``, or through a link) is rejected as ``outside_dataset`` and never opened.

Face ids are ``<dataset>/<split>/<image stem>_<annotation id>`` (COCO) and
``<dataset>/<split>/<path with / as __>`` (folders). Ids that would collide (``x.jpg`` and
``x.png``; or names that differ only in case, which collide on case-insensitive disks) get a
tag: the extension when that separates them, else a short hash of the source path.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import math
import os
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Iterable

import numpy as np

from ..data.adapters import DatasetError, is_inside, scan
from ..data.manifest import OFFICIAL_SPLITS, normalise_split
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
        if not (_is_int(category_id) and category_id in COCO_LABELS):
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
    # select: all always numbers its faces, so "x" with two faces (x_0, x_1) and a file "x_0"
    # (x_0_0) never share an id; first/largest keep the bare image key.
    numbered = spec.detector.select == "all"
    for k, f in enumerate(faces):
        _save_crop(job, rgb, tuple(f[:4]), spec, f"_{k}" if numbered else "", job.label, rows)
    return rows, []


@dataclass
class DatasetInputs:
    """The work for one dataset: jobs, rejects known before any image is opened, input count."""

    jobs: list[ImageJob]
    rejects: list[dict]

    @property
    def n_inputs(self) -> int:
        """Annotations of the jobs (COCO) or jobs (one image each), plus the early rejects."""
        return sum(max(len(j.annotations), 1) for j in self.jobs) + len(self.rejects)


def _bad(dataset: str, path: str, record, reason: str = "bad_annotation") -> dict:
    note = json.dumps(record, sort_keys=True, default=str)
    return {"source": dataset, "path": path, "annotation": note[:300], "reason": reason}


def _is_int(v) -> bool:
    return isinstance(v, int) and not isinstance(v, bool)


def _bbox(v) -> tuple | None:
    """A COCO bbox as a 4-tuple of finite floats, or None when it is not one."""
    if not isinstance(v, (list, tuple)) or len(v) != 4:
        return None
    if not all(isinstance(x, (int, float)) and not isinstance(x, bool) and math.isfinite(x) for x in v):
        return None
    return tuple(float(x) if isinstance(x, float) else x for x in v)


def coco_split(coco_json: Path) -> str:
    """Our split name for ``Train_poly.json``, ``Test-Dev_poly.json`` ...; DatasetError otherwise."""
    name = coco_json.name.removesuffix(".json").removesuffix("_poly")
    try:
        return normalise_split(name)
    except ValueError:
        known = sorted({k for k in OFFICIAL_SPLITS if "_" not in k})
        raise DatasetError(f"{coco_json}: unknown split {name!r} in the file name; name it "
                           f"<split>_poly.json with a split in {known}, or move it out of the "
                           "dataset folder") from None


def read_coco(coco_json: Path) -> dict:
    """The parsed COCO file; a one-line DatasetError when it cannot be used at all."""
    try:
        data = json.loads(Path(coco_json).read_bytes())
    except OSError as exc:
        raise DatasetError(f"{coco_json}: cannot be read ({exc.strerror}); fix its permissions or "
                           "download it again") from None
    except ValueError as exc:
        raise DatasetError(f"{coco_json}: not valid JSON ({str(exc).splitlines()[0]}); download it "
                           "again or fix the file") from None
    if not isinstance(data, dict):
        raise DatasetError(f"{coco_json}: expected a JSON object with 'images' and 'annotations', "
                           f"got a {type(data).__name__}; download it again")
    for key in ("images", "annotations"):
        if not isinstance(data.get(key), list):
            problem = "has no" if key not in data else "has a non-list"
            raise DatasetError(f"{coco_json}: {problem} {key!r} key; a COCO file needs 'images' and "
                               "'annotations' lists (download it again or fix the file)")
    return data


def _coco_annotations(data: dict, dataset: str, where: str) -> tuple[dict, list[dict]]:
    """{image_id: [(ann_id, category_id, bbox)]} of the well-formed annotations, and rejects."""
    by_image: dict[int, list] = {}
    rejects = []
    anns = data["annotations"]
    id_count: dict = {}
    for ann in anns:
        if isinstance(ann, dict) and _is_int(ann.get("id")):
            id_count[ann["id"]] = id_count.get(ann["id"], 0) + 1
    for ann in anns:
        box = _bbox(ann.get("bbox")) if isinstance(ann, dict) else None
        if (box is None or not _is_int(ann.get("id")) or not _is_int(ann.get("image_id"))
                or id_count[ann["id"]] > 1):
            rejects.append(_bad(dataset, where, ann))
            continue
        by_image.setdefault(ann["image_id"], []).append((ann["id"], ann.get("category_id"), box))
    return by_image, rejects


def _coco_images(data: dict) -> tuple[dict[int, str], set]:
    """{image id: file name} of the well-formed, unique image records; and the ids that are
    listed but unusable (duplicated, or without a string file_name)."""
    files: dict[int, str] = {}
    bad: set = set()
    for img in data["images"]:
        if not isinstance(img, dict) or not _is_int(img.get("id")):
            continue
        i = img["id"]
        if i in files or i in bad or not isinstance(img.get("file_name"), str) or not img["file_name"]:
            bad.add(i)
            files.pop(i, None)
            continue
        files[i] = img["file_name"]
    return files, bad


def coco_inputs(coco_json: Path, images_root: Path, dataset: str, out_root: str
                ) -> tuple[DatasetInputs, set[str]]:
    """Jobs (one per listed image with annotations) and early rejects of one COCO file.

    Also returns the real paths of every image file the file lists, so the caller can reject
    the folder's other files. The split comes from the file name (``Test-Dev_poly.json`` ->
    test_dev); the group is the source image, so all faces of one image stay in one split.
    Annotations of an image the file does not list are ``missing_file`` rejects, of an image
    listed twice or without a file name ``bad_annotation``; a listed image without
    annotations is one ``no_face`` reject.
    """
    split = coco_split(coco_json)
    data = read_coco(coco_json)
    where = Path(coco_json).as_posix()
    by_image, rejects = _coco_annotations(data, dataset, where)
    files, bad_ids = _coco_images(data)
    root_real = Path(os.path.realpath(images_root))
    jobs, listed = [], set()
    for image_id in sorted(set(by_image) - set(files), key=str):
        for ann in sorted(by_image[image_id]):
            note = {"id": ann[0], "image_id": image_id, "category_id": ann[1], "bbox": list(ann[2])}
            if image_id in bad_ids:
                rejects.append(_bad(dataset, where, note))
            else:
                rejects.append({**_bad(dataset, f"{where}#image_id={image_id}", note),
                                "reason": "missing_file"})
    for image_id, file_name in sorted(files.items()):
        src = (Path(images_root) / file_name).as_posix()
        anns = tuple(sorted(by_image.get(image_id, [])))
        if not is_inside(root_real, Path(images_root) / file_name):   # never opened
            notes = [{"id": a[0], "category_id": a[1], "bbox": list(a[2])} for a in anns]
            if notes:
                rejects += [_bad(dataset, src, note, "outside_dataset") for note in notes]
            else:
                rejects.append({"source": dataset, "path": src, "annotation": "", "reason": "outside_dataset"})
            continue
        listed.add(os.path.realpath(src))
        if not anns:
            rejects.append({"source": dataset, "path": src, "annotation": "", "reason": "no_face"})
            continue
        rel = Path(file_name)
        jobs.append(ImageJob(
            dataset=dataset, src=src, key=f"{dataset}/{split}/{rel.stem}", out_root=out_root,
            official_split=split, group=f"{dataset}:{rel.with_suffix('').as_posix()}", annotations=anns))
    return DatasetInputs(jobs, rejects), listed


def coco_dataset(root: Path, dataset: str, out_root: str) -> DatasetInputs:
    """Every COCO file (``*_poly.json``) of a dataset folder, and the folder's other files.

    An image file no COCO file lists is a ``not_annotated`` reject; any other file except the
    COCO files is ``not_an_image``; links out of the folder are ``outside_dataset``.
    """
    root = Path(root)
    if not root.is_dir():
        raise DatasetError(f"dataset {dataset!r}: folder {root} not found; run the download stage or "
                           "fix the dataset's dir in params.yaml")
    files = sorted(root.glob("*_poly.json"))
    if not files:
        raise DatasetError(f"dataset {dataset!r}: no *_poly.json COCO files in {root}; check the "
                           "dataset's dir in params.yaml")
    splits: dict[str, Path] = {}
    for f in files:
        split = coco_split(f)
        if split in splits:
            raise DatasetError(f"dataset {dataset!r}: {splits[split].name} and {f.name} are both "
                               f"split {split!r}; keep one of them")
        splits[split] = f
    jobs, rejects, listed = [], [], set()
    for f in files:
        inputs, seen = coco_inputs(f, root, dataset, out_root)
        jobs += inputs.jobs
        rejects += inputs.rejects
        listed |= seen
    images, other = scan(root)
    coco_names = {f.name for f in files}
    for rel in images:
        if os.path.realpath(root / rel) not in listed:
            rejects.append({"source": dataset, "path": (root / rel).as_posix(), "annotation": "",
                            "reason": "not_annotated"})
    for rel, reason in other:
        if rel not in coco_names:
            rejects.append({"source": dataset, "path": (root / rel).as_posix(), "annotation": "",
                            "reason": reason})
    return DatasetInputs(jobs, rejects)


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


def face_ids(job: ImageJob) -> list[str]:
    """The ids a job's crops will get (detector crops with select: all add ``_<k>`` to the key,
    which cannot collide once keys are unique)."""
    return [f"{job.key}_{a[0]}" for a in job.annotations] if job.annotations else [job.key]


def _tag(src: str, members: list[str]) -> str:
    exts = [Path(m).suffix.lower() for m in members]
    if all(exts) and len(set(exts)) == len(exts):
        return Path(src).suffix.lower()[1:]
    return hashlib.sha256(src.encode()).hexdigest()[:10]


def assign_unique_keys(jobs: list[ImageJob]) -> list[ImageJob]:
    """Jobs whose face ids are unique, also case-insensitively; unchanged where they were.

    Jobs whose ids collide get ``<key>-<tag>`` (see the module docstring). A collision that
    remains is a DatasetError naming both source files: nothing is ever overwritten.
    """
    owners: dict[str, set[str]] = {}
    for job in jobs:
        for fid in face_ids(job):
            owners.setdefault(fid.casefold(), set()).add(job.src)
    clash: dict[str, set[str]] = {}
    for job in jobs:
        srcs = set().union(*(owners[f.casefold()] for f in face_ids(job)))
        if len(srcs) > 1:
            clash.setdefault(job.key.casefold(), set()).update(srcs)
    out = []
    for job in jobs:
        group = clash.get(job.key.casefold())
        if group:
            job = dataclasses.replace(job, key=f"{job.key}-{_tag(job.src, sorted(group))}")
        out.append(job)
    seen: dict[str, str] = {}
    for job in out:
        for fid in face_ids(job):
            if fid.casefold() in seen:
                raise DatasetError(f"face id {fid!r} would be shared by {seen[fid.casefold()]} and "
                                   f"{job.src}; rename one of the files")
            seen[fid.casefold()] = job.src
    return out


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
