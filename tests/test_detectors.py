"""Face detectors: the shipped YuNet on real photos, the selection rules on hand-made boxes, config."""

from __future__ import annotations

import typing
from pathlib import Path

import numpy as np
import pytest
import skimage.data

from deepfake_detection.faces import detectors as D
from deepfake_detection.faces.boxes import crop_box
from deepfake_detection.params import ParamsError

REPO = Path(__file__).resolve().parents[1]
# one xdist worker runs every Ultralytics test: one import, one settings file, one training at a time
ULTRALYTICS = pytest.mark.xdist_group("ultralytics")


def _iou(a, b) -> float:
    ix = max(0.0, min(a[2], b[2]) - max(a[0], b[0]))
    iy = max(0.0, min(a[3], b[3]) - max(a[1], b[1]))
    inter = ix * iy
    return inter / ((a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - inter)


@pytest.fixture(scope="module")
def yunet():
    return D.build_detector(D.detector_config({}))


def test_default_config_is_offline_yunet():
    cfg = D.detector_config(None)
    assert (cfg.backend, cfg.select, cfg.min_face) == ("yunet", "first", 50)
    assert D.yunet_model_path().is_file()
    assert D.sha256_file(D.yunet_model_path()) == D.YUNET_SHA256


def test_yunet_finds_the_astronaut(yunet):
    dets = yunet.detect(skimage.data.astronaut())
    assert len(dets) == 1
    x0, y0, x1, y1, score = dets[0]
    assert _iou((x0, y0, x1, y1), (178, 62, 178 + 90, 62 + 113)) > 0.5 and score >= 0.6
    faces, reason = D.select_faces(dets, "first", 50)
    assert reason is None and faces == [dets[0]]


def test_yunet_grey_and_rgba_inputs(yunet):
    rgb = skimage.data.astronaut()
    grey = (rgb.mean(axis=2)).astype(np.uint8)
    rgba = np.concatenate([rgb, np.full(rgb.shape[:2] + (1,), 255, np.uint8)], axis=2)
    assert len(yunet.detect(grey)) == 1 and yunet.detect(rgba) == yunet.detect(rgb)


def test_yunet_downscales_large_images_and_maps_back(yunet):
    big = np.kron(skimage.data.astronaut(), np.ones((2, 2, 1), np.uint8))   # 1024 x 1024
    (x0, y0, x1, y1, _), = yunet.detect(big)
    assert _iou((x0, y0, x1, y1), (356, 124, 356 + 180, 124 + 226)) > 0.5


@pytest.mark.parametrize("image", [skimage.data.coffee(), np.full((240, 320, 3), 128, np.uint8)],
                         ids=["coffee", "grey"])
def test_no_face(yunet, image):
    dets = yunet.detect(image)
    assert dets == []
    assert D.select_faces(dets, "first", 50) == ([], "no_face")


# --------------------------------------------------------------------------- rules

SMALL = (0, 0, 40, 60, 0.99)        # 40 px wide: under min_face 50
MID = (200, 10, 260, 80, 0.80)      # 60 x 70
BIG = (10, 100, 110, 220, 0.70)     # 100 x 120
TWIN = (100, 10, 160, 80, 0.80)     # same score as MID, left of it


def test_rules_too_small_and_empty():
    assert D.select_faces([], "first", 50) == ([], "no_face")
    assert D.select_faces([SMALL], "all", 50) == ([], "too_small")
    assert D.select_faces([SMALL], "all", 40) == ([SMALL], None)      # min side exactly min_face


def test_rule_first_is_highest_score_among_big_enough_faces():
    assert D.select_faces([BIG, SMALL, MID], "first", 50) == ([MID], None)
    # equal scores: reading order (top, then left), whatever the input order
    assert D.select_faces([MID, TWIN], "first", 50) == ([TWIN], None)
    assert D.select_faces([TWIN, MID], "first", 50) == ([TWIN], None)


def test_rule_largest_and_all():
    assert D.select_faces([SMALL, MID, BIG], "largest", 50) == ([BIG], None)
    assert D.select_faces([BIG, SMALL, MID, TWIN], "all", 50) == ([TWIN, MID, BIG], None)
    with pytest.raises(ValueError):
        D.select_faces([MID], "biggest", 50)


def test_detection_to_crop_with_margin_and_square():
    face = D.clamp_detection((-10, 20, 50, 100, 0.9), 200, 100)   # partly outside on the left
    assert face == (0.0, 20.0, 50.0, 100.0, 0.9)
    # 50 x 80 -> square 80 x 80 centred (25, 60) -> x1.25 = 100 -> (-25, 10, 75, 110) -> clamped
    assert crop_box(face[:4], 200, 100, margin=1.25, make_square=True) == (0, 10, 75, 100)
    assert crop_box(face[:4], 200, 100, margin=1.0, make_square=False) == (0, 20, 50, 100)
    assert D.clamp_detection((210, 0, 260, 50, 0.9), 200, 100) is None


# --------------------------------------------------------------------------- config, registry


def test_registry_matches_config_choices():
    backends = typing.get_args(typing.get_type_hints(D.DetectorConfig)["backend"])
    assert sorted(D.DETECTORS) == sorted(backends)


@pytest.mark.parametrize("bad, key", [
    ({"backend": "mtcnn"}, "faces.detector.backend"),
    ({"select": "biggest"}, "faces.detector.select"),
    ({"confidence": 1.5}, "faces.detector.confidence"),
    ({"min_face": 0}, "faces.detector.min_face"),
    ({"sha256": "abc"}, "faces.detector.sha256"),
    ({"treshold": 0.5}, "faces.detector"),
])
def test_config_errors_name_the_key(bad, key):
    with pytest.raises(ParamsError, match=key.replace(".", r"\.")):
        D.detector_config(bad)


def test_cached_detector_is_built_once_per_config():
    a = D.cached_detector(D.detector_config({}))
    assert D.cached_detector(D.detector_config({})) is a
    assert D.cached_detector(D.detector_config({"confidence": 0.5})) is not a


def test_weights_checks(tmp_path):
    with pytest.raises(ParamsError, match="weights"):
        D.build_detector(D.detector_config({"backend": "yolo"}))
    with pytest.raises(FileNotFoundError):
        D.build_detector(D.detector_config({"backend": "yolo"}), tmp_path / "missing.pt")
    with pytest.raises(ValueError, match="sha256"):
        D.build_detector(D.detector_config({"sha256": "0" * 64}))


@ULTRALYTICS
def test_yolo_backend_plumbing(tmp_path):
    from deepfake_detection.faces.yolo import configure_ultralytics

    configure_ultralytics(REPO / ".ultralytics")
    from ultralytics import YOLO

    weights = tmp_path / "random.pt"
    YOLO("yolov8n.yaml").save(weights)         # random init: plumbing only, not accuracy
    det = D.build_detector(D.detector_config({"backend": "yolo", "confidence": 0.0,
                                              "input_size": 64}), weights)
    dets = det.detect(skimage.data.astronaut())
    assert all(0 <= x0 < x1 <= 512 and 0 <= y0 < y1 <= 512 for x0, y0, x1, y1, _ in dets)
    assert [d[4] for d in dets] == sorted((d[4] for d in dets), reverse=True)
