"""YOLO face detector: COCO -> YOLO conversion, 1-epoch training from YAML, COCO mAP; all offline.

Ultralytics runs against the repo's git-ignored ``.ultralytics`` settings folder; the test also
checks that it left ``~/.config/Ultralytics``, ``dvc.yaml`` and ``./runs`` alone.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import cv2
import numpy as np
import pytest
import yaml

from tests.conftest import enable_trained_yolo

from deepfake_detection.faces import yolo
from deepfake_detection.params import ParamsError, from_dict

REPO = Path(__file__).resolve().parents[1]
# one xdist worker runs every Ultralytics test: one import, one settings file, one training at a time
ULTRALYTICS = pytest.mark.xdist_group("ultralytics")


def _tiny_coco(root: Path, n: int, split: str, seed: int) -> Path:
    """``n`` 128x128 noisy images, each with 1-2 filled ellipse "faces"; COCO json like OpenForensics."""
    rng = np.random.default_rng(seed)
    images, anns = [], []
    (root / "Images" / split).mkdir(parents=True, exist_ok=True)
    for i in range(n):
        img = rng.integers(60, 120, (128, 128, 3), dtype=np.uint8)
        for k in range(int(rng.integers(1, 3))):
            w, h = int(rng.integers(24, 40)), int(rng.integers(30, 48))
            x = int(rng.integers(0, 128 - w)) if k == 0 else (0 if anns[-1]["bbox"][0] > 64 else 88)
            x = min(x, 128 - w)
            y = int(rng.integers(0, 128 - h))
            cv2.ellipse(img, (x + w // 2, y + h // 2), (w // 2, h // 2), 0, 0, 360, (230, 190, 160), -1)
            cv2.circle(img, (x + w // 3, y + h // 3), 2, (20, 20, 20), -1)
            cv2.circle(img, (x + 2 * w // 3, y + h // 3), 2, (20, 20, 20), -1)
            anns.append({"id": len(anns) + 1, "image_id": i + 1, "category_id": k % 2,
                         "bbox": [x, y, w, h], "area": w * h, "iscrowd": 0})
        name = f"Images/{split}/img{i:03d}.jpg"
        cv2.imwrite(str(root / name), img)
        images.append({"id": i + 1, "file_name": name, "width": 128, "height": 128})
    path = root / f"{split}_poly.json"
    path.write_text(json.dumps({"images": images, "annotations": anns,
                                "categories": [{"id": 0, "name": "Real"}, {"id": 1, "name": "Fake"}]}))
    return path


def test_label_lines_hand_worked():
    # box x0=10, y0=20, x1=50, y1=100 in a 200x100 image: centre (30, 60) -> (0.15, 0.6); size (0.2, 0.8)
    assert yolo.yolo_label_lines([(10, 20, 50, 100)], 200, 100) == ["0 0.150000 0.600000 0.200000 0.800000"]


def test_coco_to_yolo_layout_and_skips(tmp_path):
    root = tmp_path / "raw"
    (root / "Images/Train").mkdir(parents=True)
    cv2.imwrite(str(root / "Images/Train/a.jpg"), np.zeros((100, 200, 3), np.uint8))
    cv2.imwrite(str(root / "Images/Train/bad.jpg"), np.zeros((100, 200, 3), np.uint8))
    cv2.imwrite(str(root / "Images/Train/bg.jpg"), np.zeros((50, 50, 3), np.uint8))
    (root / "Images/Train/broken.jpg").write_bytes(b"not a jpeg")
    coco = {
        "images": [{"id": 1, "file_name": "Images/Train/a.jpg", "width": 200, "height": 100},
                   {"id": 2, "file_name": "Images/Train/bad.jpg", "width": 200, "height": 100},
                   {"id": 3, "file_name": "Images/Train/gone.jpg", "width": 10, "height": 10},
                   {"id": 4, "file_name": "Images/Train/broken.jpg", "width": 10, "height": 10},
                   {"id": 5, "file_name": "Images/Train/bg.jpg", "width": 50, "height": 50}],
        "annotations": [
            {"id": 1, "image_id": 1, "category_id": 0, "bbox": [10, 20, 40, 80]},
            {"id": 2, "image_id": 1, "category_id": 1, "bbox": [180, 50, 40, 60]},   # clamped
            {"id": 3, "image_id": 2, "category_id": 1, "bbox": [10, 10, 0, 5]},      # zero area
            {"id": 4, "image_id": 3, "category_id": 1, "bbox": [1, 1, 5, 5]},
        ],
    }
    cj = tmp_path / "Train_poly.json"
    cj.write_text(json.dumps(coco))
    out = yolo.coco_to_yolo(cj, root, tmp_path / "yolo")
    assert out.n_images == {"train": 2} and out.n_boxes == {"train": 2} and out.n_background == 1
    assert sorted((s["path"], s["reason"]) for s in out.skipped) == [
        ("Images/Train/bad.jpg", "zero_area"), ("Images/Train/broken.jpg", "unreadable"),
        ("Images/Train/gone.jpg", "missing_file")]
    label = tmp_path / "yolo/labels/train/Images__Train__a.txt"
    assert label.read_text().splitlines() == ["0 0.150000 0.600000 0.200000 0.800000",
                                              "0 0.950000 0.750000 0.100000 0.500000"]
    assert (tmp_path / "yolo/labels/train/Images__Train__bg.txt").read_text() == ""
    img = tmp_path / "yolo/images/train/Images__Train__a.jpg"
    assert img.is_symlink() and img.resolve() == (root / "Images/Train/a.jpg").resolve()
    data = yaml.safe_load(out.data_yaml.read_text())
    assert data["val"] == "images/train" and data["names"] == {0: "face"}
    one = yolo.coco_to_yolo(cj, root, tmp_path / "one", max_images=1, link="copy")
    assert one.n_images == {"train": 1} and not (tmp_path / "one/images/train").iterdir().__next__().is_symlink()


def test_train_params_reject_unknown_and_pt():
    with pytest.raises(ParamsError, match="face_detector.*unknown"):
        from_dict(yolo.FaceDetectorTrainParams, {"epoch": 3}, "face_detector")
    with pytest.raises(ParamsError, match="face_detector.model_yaml"):
        from_dict(yolo.FaceDetectorTrainParams, {"model_yaml": "yolov8n.pt"}, "face_detector")


def _stamp(path: Path):
    if not path.exists():
        return None
    if path.is_dir():
        return sorted((str(p), p.stat().st_mtime_ns) for p in path.rglob("*")) + [path.stat().st_mtime_ns]
    return path.stat().st_mtime_ns


@ULTRALYTICS
def test_train_predict_evaluate_offline(tmp_path):
    watched = [Path.home() / ".config/Ultralytics", REPO / "dvc.yaml", REPO / "runs",
               Path.cwd() / "runs", REPO / "weights", REPO / "yolov8n.pt", Path.cwd() / "yolov8n.pt"]
    before = {p: _stamp(p) for p in watched}
    yolo.configure_ultralytics(REPO / ".ultralytics")
    train = _tiny_coco(tmp_path / "raw", 12, "Train", seed=0)
    val = _tiny_coco(tmp_path / "raw", 4, "Val", seed=1)
    ds = yolo.coco_to_yolo(train, tmp_path / "raw", tmp_path / "yolo", val_fraction=0.25, seed=0)
    assert sum(ds.n_images.values()) == 12 and ds.n_images.get("val", 0) >= 1

    weights = yolo.train_yolo(ds.data_yaml, "yolov8n.yaml", epochs=1, imgsz=64, batch=4, seed=0,
                              out_dir=tmp_path / "runs", device="cpu")
    assert weights.is_file() and weights.is_relative_to(tmp_path)
    clean = tmp_path / "face.pt"
    yolo.clean_checkpoint(weights, clean)

    from ultralytics import YOLO

    pred = YOLO(str(clean))(np.zeros((128, 128, 3), np.uint8), imgsz=64, verbose=False)[0]
    assert pred.boxes.xyxy.shape[1] == 4 and pred.names == {0: "face"}

    m = yolo.evaluate_map(clean, val, tmp_path / "raw", imgsz=64, device="cpu")
    assert 0.0 <= m["map50_95"] <= m["map50"] <= 1.0
    assert m["n_eval_images"] == 4 and m["n_eval_faces"] >= 4

    assert {p: _stamp(p) for p in watched} == before
    assert os.environ["YOLO_OFFLINE"] == "1"


def test_coco_map_perfect_and_empty():
    images = [{"id": 1, "width": 100, "height": 100, "boxes": [(10, 10, 50, 60)]},
              {"id": 2, "width": 100, "height": 100, "boxes": []}]
    perfect = [{"image_id": 1, "category_id": 1, "bbox": [10, 10, 40, 50], "score": 0.9}]
    assert yolo.coco_map(images, perfect) == pytest.approx({"map50_95": 1.0, "map50": 1.0})
    assert yolo.coco_map(images, []) == {"map50_95": 0.0, "map50": 0.0}
    # shifted by 10 px: intersection 30x50 = 1500, union 2000 + 2000 - 1500 = 2500, IoU 0.6
    shifted = [{"image_id": 1, "category_id": 1, "bbox": [20, 10, 40, 50], "score": 0.9}]
    m = yolo.coco_map(images, shifted)
    assert m["map50"] == pytest.approx(1.0) and 0.2 <= m["map50_95"] <= 0.31   # hits at IoU .5, .55 (.6 on the edge)


@ULTRALYTICS
def test_stage_cli(tmp_path, params_dict):
    from stages import train_face_detector

    yolo.configure_ultralytics(REPO / ".ultralytics")
    train = _tiny_coco(tmp_path / "raw", 8, "Train", seed=2)
    val = _tiny_coco(tmp_path / "raw", 3, "Val", seed=3)
    params = tmp_path / "params.yaml"
    enable_trained_yolo(params_dict, epochs=1, imgsz=64, batch=4)
    params.write_text(yaml.safe_dump(params_dict))
    out, metrics = tmp_path / "models/face_detector.pt", tmp_path / "metrics/face_detector.json"
    train_face_detector.main(["--params", str(params), "--coco-train", str(train), "--coco-val", str(val),
                              "--images-root", str(tmp_path / "raw"), "--out", str(out),
                              "--metrics", str(metrics), "--device", "cpu"])
    m = json.loads(metrics.read_text())
    assert {"map50_95", "map50", "n_train_images", "n_eval_images", "epochs"} <= set(m)
    assert "train_seconds" not in m          # committed metrics stay deterministic (time is logged)
    assert m["n_eval_images"] == 3 and m["epochs"] == 1 and 0 <= m["map50_95"] <= 1
    assert sorted(p.name for p in out.parent.iterdir()) == ["face_detector.pt"]   # scratch removed
    assert str(tmp_path) not in out.read_bytes().decode("latin-1")                # no absolute paths

    from deepfake_detection.faces.detectors import build_detector, detector_config

    det = build_detector(detector_config({"backend": "yolo", "min_face": 8, "yolo": {"input_size": 64}}), out)
    assert isinstance(det.detect(np.zeros((128, 128, 3), np.uint8)), list)
