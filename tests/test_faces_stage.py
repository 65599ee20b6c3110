"""Stage test: the faces stage on a tiny hand-made COCO set and folder set with bad inputs."""

import json

import numpy as np
import pandas as pd
import pytest

from deepfake_detection.data.manifest import REJECT_REASONS
from deepfake_detection.io import write_image_rgb
from stages import faces as faces_stage
from tests.conftest import write_params


def _scene(seed):
    rng = np.random.default_rng(seed)
    return rng.integers(0, 255, (100, 120, 3), dtype=np.uint8)


@pytest.fixture()
def raw(tmp_path):
    root = tmp_path / "raw" / "tiny"
    of = root / "of"
    write_image_rgb(of / "Images/Train/a.jpg", _scene(0))
    write_image_rgb(of / "Images/Train/b.jpg", _scene(1))
    (of / "Images/Train/corrupt.jpg").write_bytes(b"\xff\xd8\xff garbage")
    images = [{"id": 1, "file_name": "Images/Train/a.jpg", "width": 120, "height": 100},
              {"id": 2, "file_name": "Images/Train/b.jpg", "width": 120, "height": 100},
              {"id": 3, "file_name": "Images/Train/corrupt.jpg", "width": 120, "height": 100},
              {"id": 4, "file_name": "Images/Train/missing.jpg", "width": 120, "height": 100}]
    anns = [
        {"id": 10, "image_id": 1, "category_id": 0, "bbox": [10, 10, 30, 40]},     # kept, real
        {"id": 11, "image_id": 1, "category_id": 1, "bbox": [60, 20, 40, 40]},     # kept, fake
        {"id": 12, "image_id": 1, "category_id": 1, "bbox": [200, 10, 20, 20]},    # box_outside
        {"id": 13, "image_id": 2, "category_id": 0, "bbox": [10, 10, 0, 20]},      # zero_area
        {"id": 14, "image_id": 2, "category_id": 7, "bbox": [10, 10, 20, 20]},     # unknown_label
        {"id": 15, "image_id": 2, "category_id": 1, "bbox": [90, 50, 40, 60]},     # kept (clamped)
        {"id": 16, "image_id": 3, "category_id": 0, "bbox": [10, 10, 20, 20]},     # unreadable
        {"id": 17, "image_id": 3, "category_id": 1, "bbox": [40, 10, 20, 20]},     # unreadable
        {"id": 18, "image_id": 4, "category_id": 0, "bbox": [10, 10, 20, 20]},     # missing_file
        {"id": 19, "image_id": 99, "category_id": 0, "bbox": [10, 10, 20, 20]},    # image not listed
    ]
    for a in anns:
        a.update(iscrowd=0, area=a["bbox"][2] * a["bbox"][3], segmentation=[])
    (of / "Train_poly.json").write_text(json.dumps(
        {"images": images, "annotations": anns,
         "categories": [{"id": 0, "name": "Real"}, {"id": 1, "name": "Fake"}]}))
    folders = root / "folders" / "Dataset"
    write_image_rgb(folders / "Train/Real/r1.jpg", _scene(2)[:64, :64])
    write_image_rgb(folders / "Test/Fake/f1.jpg", _scene(3)[:80, :64])
    write_image_rgb(folders / "Test/Other/o1.jpg", _scene(4)[:64, :64])          # unknown_label
    (folders / "Train/Fake").mkdir(parents=True)
    (folders / "Train/Fake/broken.png").write_bytes(b"nope")                     # unreadable
    return root


def test_faces_stage_keeps_or_rejects_every_face(tmp_path, params_dict, raw, monkeypatch):
    params_dict["sources"] = {"tiny": {"kind": "demo", "datasets": {
        "tiny_of": {"layout": "coco", "dir": "of", "crop": "boxes"},
        "tiny_folders": {"layout": "real_fake_folders", "dir": "folders", "crop": "whole"}}}}
    params_dict["enabled_sources"] = ["tiny"]
    params_dict["face_detector"]["source"] = "tiny"
    params_dict["train"]["datasets"] = ["tiny_of"]
    params_dict["evaluate"]["test_sets"] = {"t": {"dataset": "tiny_of", "split": "test"}}
    params_dict["faces"].update(size=32, min_size=8)
    p = write_params(tmp_path / "params.yaml", params_dict)
    monkeypatch.chdir(tmp_path)
    faces_stage.main(["--params", str(p), "--source", "tiny", "--raw", "raw/tiny", "--out", "faces/tiny",
                      "--metrics", "m/tiny.json", "--workers", "1"])
    faces = pd.read_csv("faces/tiny/faces.csv", keep_default_na=False)
    rejects = pd.read_csv("faces/tiny/rejects.csv", keep_default_na=False)
    summary = json.loads(open("m/tiny.json").read())
    of = summary["tiny_of"]
    assert (of["inputs_in"], of["kept"], of["rejected"]) == (10, 3, 7)
    assert of["rejected_by_reason"] == {"box_outside": 1, "missing_file": 2, "unknown_label": 1,
                                        "unreadable": 2, "zero_area": 1}
    fo = summary["tiny_folders"]
    assert (fo["inputs_in"], fo["kept"], fo["rejected"]) == (4, 2, 2)
    assert sorted(rejects.loc[rejects.source == "tiny_folders", "reason"]) == ["unknown_label", "unreadable"]
    assert set(rejects["reason"]) <= set(REJECT_REASONS)          # only the stable contract words
    kept = faces[faces.source == "tiny_of"].set_index("face_id")
    assert kept.loc["tiny_of/train/a_10", "label"] == 0 and kept.loc["tiny_of/train/a_11", "label"] == 1
    assert kept.loc["tiny_of/train/a_10", "group"] == kept.loc["tiny_of/train/a_11", "group"]
    assert kept.loc["tiny_of/train/b_15", "box_w"] == 30        # clamped to the image edge
    for path in faces["path"]:
        assert path.startswith("faces/tiny/images/")
        img = __import__("cv2").imread(path)
        assert img.shape == (32, 32, 3)
    assert set(faces.loc[faces.source == "tiny_folders", "official_split"]) == {"train", "test"}
    # nothing temporary left behind
    assert sorted(p.name for p in (tmp_path / "faces/tiny").iterdir()) == [
        "faces.csv", "images", "known_duplicates.csv", "rejects.csv"]
    # the source ships no known_duplicates.csv: header only
    assert (tmp_path / "faces/tiny/known_duplicates.csv").read_text() == "face_id_a,face_id_b\n"


def test_detector_crops_keep_faces_and_reject_faceless_images(tmp_path, params_dict, monkeypatch):
    from skimage import data

    root = tmp_path / "raw" / "det"
    write_image_rgb(root / "Dataset/Test/Real/astronaut.jpg", data.astronaut())
    write_image_rgb(root / "Dataset/Test/Fake/grey.jpg", np.full((200, 200, 3), 128, np.uint8))
    params_dict["sources"] = {"det": {"kind": "demo", "datasets": {
        "det_folders": {"layout": "real_fake_folders", "dir": ".", "crop": "detector"}}}}
    params_dict["enabled_sources"] = ["det"]
    params_dict["face_detector"]["source"] = "det"
    params_dict["train"]["datasets"] = ["det_folders"]
    params_dict["evaluate"]["test_sets"] = {"t": {"dataset": "det_folders", "split": "test"}}
    params_dict["faces"].update(size=32, detector={"backend": "yunet", "select": "largest", "min_face": 50})
    p = write_params(tmp_path / "params.yaml", params_dict)
    monkeypatch.chdir(tmp_path)
    faces_stage.main(["--params", str(p), "--source", "det", "--raw", "raw/det", "--out", "faces/det",
                      "--metrics", "m.json", "--workers", "1"])
    c = json.loads(open("m.json").read())["det_folders"]
    assert (c["inputs_in"], c["inputs_kept"], c["rejected"], c["input_kind"]) == (2, 1, 1, "image")
    assert c["rejected_by_reason"] == {"no_face": 1}
    face = pd.read_csv("faces/det/faces.csv").iloc[0]
    # astronaut's face is at about x 178, y 62, w 90, h 113
    assert abs(face.box_x - 178) < 25 and abs(face.box_y - 62) < 30 and 60 < face.box_w < 130
