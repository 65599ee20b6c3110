"""Face detectors: the shipped YuNet on real photos, the selection rules on hand-made boxes, config."""

from __future__ import annotations

import dataclasses
import importlib.util
import typing
from pathlib import Path

import cv2

import numpy as np
import pytest
import skimage.data

from deepfake_detection.faces import detectors as D
from deepfake_detection.faces.boxes import crop_box
from deepfake_detection.params import ParamsError, load_params
from tests.conftest import write_params

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


def test_default_config_is_offline_yunet_with_per_backend_defaults():
    cfg = D.detector_config(None)
    assert (cfg.backend, cfg.select, cfg.min_face) == ("yunet", "first", 50)
    assert cfg.settings == cfg.yunet == D.YuNetSettings(confidence=0.6, nms=0.3, input_size=640,
                                                        top_k=5000, weights="", sha256="")
    # Ultralytics' own predict defaults
    assert cfg.yolo == D.YoloSettings(confidence=0.25, nms=0.7, input_size=640, weights="", sha256="")
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


@pytest.mark.parametrize("image", [skimage.data.coffee(), skimage.data.chelsea(),
                                   np.full((240, 320, 3), 128, np.uint8)], ids=["coffee", "chelsea", "grey"])
def test_no_face(yunet, image):
    dets = yunet.detect(image)
    assert dets == []
    assert D.select_faces(dets, "first", 50) == ([], "no_face")


def test_the_yolo_demo_threshold_would_make_yunet_see_faces_in_a_cat_and_a_cup():
    # Why each backend has its own block: YuNet at the demo YOLO's confidence 0.1 (measured).
    low = D.build_detector(D.detector_config({"yunet": {"confidence": 0.1}}))
    assert (len(low.detect(skimage.data.coffee())), len(low.detect(skimage.data.chelsea()))) == (1, 2)


def _asset(name: str) -> np.ndarray:
    """A photo shipped in the ultralytics wheel (located without importing ultralytics)."""
    folder = Path(importlib.util.find_spec("ultralytics").submodule_search_locations[0]) / "assets"
    return cv2.cvtColor(cv2.imread(str(folder / name)), cv2.COLOR_BGR2RGB)


def test_yunet_finds_both_faces_in_zidane(yunet):
    dets = yunet.detect(_asset("zidane.jpg"))                      # 1280 x 720, scaled to 640
    assert len(dets) == 2
    # boxes read off the photo: Zidane (left, mouth open), Ancelotti (right)
    known = [(544, 270, 660, 426), (916, 100, 1052, 274)]
    found = sorted(d[:4] for d in dets)
    assert all(_iou(f, k) > 0.7 for f, k in zip(found, known)), found


def test_yunet_on_lfw_subset_faces_and_non_faces(yunet):
    # skimage's lfw_subset: 100 face crops then 100 non-face patches, 25 x 25 grey; upscaled x4
    # (YuNet's anchors start at 10 px). Measured at the defaults: 99 faces found, 1 false hit.
    lfw = (skimage.data.lfw_subset() * 255).round().astype(np.uint8)
    hit = [bool(yunet.detect(cv2.resize(img, (100, 100), interpolation=cv2.INTER_CUBIC))) for img in lfw]
    assert (sum(hit[:100]), sum(hit[100:])) == (99, 1)


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
    hints = typing.get_type_hints(D.DetectorConfig)
    backends = typing.get_args(hints["backend"])
    assert sorted(D.DETECTORS) == sorted(backends)
    for name, cls in D.DETECTORS.items():       # each backend owns (and validates) its block
        assert hints[name] is cls.Settings


@pytest.mark.parametrize("bad, key", [
    ({"backend": "mtcnn"}, "faces.detector.backend"),
    ({"select": "biggest"}, "faces.detector.select"),
    ({"yunet": {"confidence": 1.5}}, "faces.detector.yunet.confidence"),
    ({"yolo": {"nms": 0}}, "faces.detector.yolo.nms"),
    ({"yolo": {"input_size": 0}}, "faces.detector.yolo.input_size"),
    ({"yunet": {"top_k": 0}}, "faces.detector.yunet.top_k"),
    ({"min_face": 0}, "faces.detector.min_face"),
    ({"yunet": {"sha256": "abc"}}, "faces.detector.yunet.sha256"),
    ({"treshold": 0.5}, "faces.detector"),
    ({"yunet": {"confidance": 0.5}}, "faces.detector.yunet"),
    ({"yolo": {"top_k": 10}}, "faces.detector.yolo"),          # a YuNet key in the YOLO block
])
def test_config_errors_name_the_key(bad, key):
    with pytest.raises(ParamsError, match=key.replace(".", r"\.")):
        D.detector_config(bad)


def test_flat_backend_keys_say_where_they_belong():
    with pytest.raises(ParamsError, match=r"faces\.detector: \['confidence', 'input_size'\] belong in the "
                                          r"backend's block now: write them under faces\.detector\.yolo"):
        D.detector_config({"backend": "yolo", "confidence": 0.1, "input_size": 96})


def _params(params_dict, backend="yolo", weights="", crop="detector", enabled=("demo",)):
    params_dict["faces"]["detector"]["backend"] = backend
    params_dict["faces"]["detector"]["yolo"]["weights"] = weights
    params_dict["sources"]["demo"]["datasets"]["demo_deepfake_and_real_images"]["crop"] = crop
    params_dict["enabled_sources"] = list(enabled)
    return params_dict


@pytest.mark.parametrize("backend, weights, crop, enabled, expected", [
    ("yolo", "", "detector", ("demo",), True),
    ("yunet", "", "detector", ("demo",), False),          # another backend
    ("yolo", "my/faces.pt", "detector", ("demo",), False),  # weights given
    ("yolo", "", "whole", ("demo",), False),               # no dataset needs a detector
    ("yolo", "", "detector", ("demo", "fake_video_images"), True),
])
def test_needs_trained_yolo(tmp_path, params_dict, backend, weights, crop, enabled, expected):
    raw = _params(params_dict, backend, weights, crop, enabled)
    if "fake_video_images" in enabled:                    # a disabled source with crop: detector
        raw["sources"]["fake_video_images"]["options"] = {"dataset": "o/s"}
    assert D.needs_trained_yolo(raw) is expected            # Snakemake's config: a plain mapping
    # load_params also checks the graph follows the rule: every enabled source in faces_yolo when
    # a trained YOLO is needed (these cases need it for all or none of them), with its training config
    raw["face_stages"] = {"faces": [] if expected else list(enabled), "faces_yolo": list(enabled) if expected else []}
    raw["face_detectors"] = {"yolo": {"source": "demo", "coco_subdir": "openforensics", "train_split": "Train",
                                      "eval_split": "Test-Dev"}} if expected else {}
    assert D.needs_trained_yolo(load_params(write_params(tmp_path / "p.yaml", raw))) is expected


def test_needs_trained_yolo_ignores_disabled_sources(params_dict):
    raw = _params(params_dict, crop="whole")                 # fake_video_images has crop: detector
    assert raw["sources"]["fake_video_images"]["datasets"]["fake_video_images"]["crop"] == "detector"
    assert D.needs_trained_yolo(raw) is False


def test_repository_params_keep_the_yolo_demo_settings_in_the_yolo_block(repo):
    cfg = load_params(repo / "params.yaml").faces.detector_config()
    assert (cfg.backend, cfg.select, cfg.min_face) == ("yolo", "first", 24)
    assert (cfg.yolo.confidence, cfg.yolo.nms, cfg.yolo.input_size, cfg.yolo.weights) == (0.1, 0.3, 96, "")
    assert cfg.yunet == D.YuNetSettings()                     # YuNet at its own defaults
    assert dataclasses.replace(cfg, backend="yunet").settings.confidence == 0.6


def test_cached_detector_is_built_once_per_config():
    a = D.cached_detector(D.detector_config({}))
    assert D.cached_detector(D.detector_config({})) is a
    assert D.cached_detector(D.detector_config({"yunet": {"confidence": 0.5}})) is not a


def test_weights_checks(tmp_path):
    with pytest.raises(ParamsError, match="weights"):
        D.build_detector(D.detector_config({"backend": "yolo"}))
    with pytest.raises(FileNotFoundError):
        D.build_detector(D.detector_config({"backend": "yolo"}), tmp_path / "missing.pt")
    with pytest.raises(ValueError, match="sha256"):
        D.build_detector(D.detector_config({"yunet": {"sha256": "0" * 64}}))


@ULTRALYTICS
def test_yolo_backend_plumbing(tmp_path):
    from deepfake_detection.faces.yolo import configure_ultralytics

    configure_ultralytics(REPO / ".ultralytics")
    from ultralytics import YOLO

    weights = tmp_path / "random.pt"
    YOLO("yolov8n.yaml").save(weights)         # random init: plumbing only, not accuracy
    det = D.build_detector(D.detector_config({"backend": "yolo",
                                              "yolo": {"confidence": 0.0, "input_size": 64}}), weights)
    dets = det.detect(skimage.data.astronaut())
    assert all(0 <= x0 < x1 <= 512 and 0 <= y0 < y1 <= 512 for x0, y0, x1, y1, _ in dets)
    assert [d[4] for d in dets] == sorted((d[4] for d in dets), reverse=True)
