"""Shared fixtures: the repo root, a params dict to mutate, offline environment."""

from __future__ import annotations

import copy
import os
from pathlib import Path

import pytest
import yaml

REPO = Path(__file__).resolve().parent.parent

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("DVC_NO_ANALYTICS", "1")
os.environ.setdefault("YOLO_OFFLINE", "1")


@pytest.fixture(scope="session")
def repo() -> Path:
    return REPO


@pytest.fixture()
def params_dict() -> dict:
    """A fresh copy of the repository's params.yaml as a dict."""
    return copy.deepcopy(yaml.safe_load((REPO / "params.yaml").read_text()))


def write_params(path: Path, params: dict) -> Path:
    path.write_text(yaml.safe_dump(params, sort_keys=False))
    return path


def train_on(params: dict, datasets: list[str]) -> dict:
    """``params`` with every variant trained on ``datasets`` (``train.datasets``; the variants'
    own ``train.datasets`` overrides, such as keras_cnn4/5's, are dropped), and every GAN too
    (``gan.datasets`` and the anomaly / hybrid variants' ``datasets``)."""
    params["train"]["datasets"] = list(datasets)
    for variant in params["variants"].values():
        (variant.get("train") or {}).pop("datasets", None)
    if params.get("gan"):
        params["gan"]["datasets"] = list(datasets)
    for variant in (params.get("gan_variants") or {}).values():
        if variant.get("datasets"):
            variant["datasets"] = list(datasets)
    return params


def enable_trained_yolo(params: dict, source: str = "demo", dataset: str = "demo_deepfake_and_real_images",
                        **train) -> dict:
    """``params`` changed so that ``dataset`` of ``source`` is cropped by the YOLO the pipeline
    trains on the demo's COCO boxes: dataset ``crop: detector``, ``faces.detector.backend: yolo``,
    the source moved to ``face_stages.faces_yolo`` and ``face_detectors.yolo`` defined (``train``
    overrides its keys, e.g. ``epochs=1, imgsz=64``). The graph then holds
    ``train_face_detector@yolo`` and ``faces_yolo@<source>``."""
    params["sources"][source]["datasets"][dataset]["crop"] = "detector"
    params["faces"]["detector"]["backend"] = "yolo"
    params["faces"]["detector"].setdefault("yolo", {}).pop("weights", None)
    stages = params["face_stages"]
    stages["faces"] = [s for s in stages["faces"] if s != source]
    stages["faces_yolo"] = sorted({*stages["faces_yolo"], source})
    params["face_detectors"] = {"yolo": {"source": "demo", "coco_subdir": "openforensics", "train_split": "Train",
                                         "eval_split": "Test-Dev", **train}}
    return params
