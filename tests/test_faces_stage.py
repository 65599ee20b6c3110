"""Stage test: the faces stage on a tiny hand-made COCO set and folder set with bad inputs."""

import json
import os

import numpy as np
import pandas as pd
import pytest

from deepfake_detection.data.adapters import DatasetError
from deepfake_detection.data.manifest import REJECT_REASONS
from deepfake_detection.faces import crop as crop_module
from deepfake_detection.io import write_image_rgb
from stages import faces as faces_stage
from tests.conftest import train_on, write_params


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
    write_image_rgb(folders / "Test/o1.jpg", _scene(4)[:64, :64])                # unknown_label
    (folders / "Test/notes.txt").write_text("not an image")                      # not_an_image
    (folders / "Train/Fake").mkdir(parents=True)
    (folders / "Train/Fake/broken.png").write_bytes(b"nope")                     # unreadable
    return root


def test_faces_stage_keeps_or_rejects_every_face(tmp_path, params_dict, raw, monkeypatch):
    params_dict["sources"] = {"tiny": {"kind": "demo", "datasets": {
        "tiny_of": {"layout": "coco", "dir": "of", "crop": "boxes"},
        "tiny_folders": {"layout": "real_fake_folders", "dir": "folders", "crop": "whole"}}}}
    params_dict["enabled_sources"] = ["tiny"]
    params_dict["face_stages"] = {"faces": ["tiny"], "faces_yolo": []}
    train_on(params_dict, ["tiny_of"])
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
    assert (fo["inputs_in"], fo["kept"], fo["rejected"]) == (5, 2, 3)
    assert sorted(rejects.loc[rejects.source == "tiny_folders", "reason"]) == [
        "not_an_image", "unknown_label", "unreadable"]
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
    params_dict["face_stages"] = {"faces": ["det"], "faces_yolo": []}
    train_on(params_dict, ["det_folders"])
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


# --------------------------------------------------------------------------- malformed inputs


def _run(tmp_path, params_dict, monkeypatch, datasets: dict):
    """Run the faces stage on source 'x' (data under tmp_path/raw/x) and return (faces, rejects, summary)."""
    params_dict["sources"] = {"x": {"kind": "demo", "datasets": datasets}}
    params_dict["enabled_sources"] = ["x"]
    params_dict["face_stages"] = {"faces": ["x"], "faces_yolo": []}
    first = next(iter(datasets))
    train_on(params_dict, [first])
    params_dict["evaluate"]["test_sets"] = {"t": {"dataset": first, "split": "test"}}
    params_dict["faces"].update(size=16, min_size=4)
    p = write_params(tmp_path / "params.yaml", params_dict)
    monkeypatch.chdir(tmp_path)
    faces_stage.main(["--params", str(p), "--source", "x", "--raw", "raw/x", "--out", "faces/x",
                      "--metrics", "m.json", "--workers", "1"])
    return (pd.read_csv("faces/x/faces.csv", keep_default_na=False),
            pd.read_csv("faces/x/rejects.csv", keep_default_na=False),
            json.loads(open("m.json").read()))


COCO = {"of": {"layout": "coco", "dir": "of", "crop": "boxes"}}


def _coco(tmp_path, data, name="Train_poly.json", raw=False):
    of = tmp_path / "raw/x/of"
    write_image_rgb(of / "Images/a.jpg", _scene(0))
    of.joinpath(name).write_text(data if raw else json.dumps(data))
    return of


def _ann(i, image_id=1, bbox=(10, 10, 30, 30), cat=0):
    return {"id": i, "image_id": image_id, "category_id": cat, "bbox": list(bbox)}


IMAGE_A = {"id": 1, "file_name": "Images/a.jpg"}


@pytest.mark.parametrize("content, message", [
    ('{"images": [', r"Train_poly\.json: not valid JSON \(Expecting value: line 1 column 13"),
    ('[1, 2]', r"Train_poly\.json: expected a JSON object with 'images' and 'annotations', got a list"),
    ('{"images": []}', r"Train_poly\.json: has no 'annotations' key"),
    ('{"annotations": []}', r"Train_poly\.json: has no 'images' key"),
    ('{"images": {}, "annotations": []}', r"Train_poly\.json: has a non-list 'images' key"),
])
def test_unreadable_coco_file_is_one_line_naming_it(tmp_path, params_dict, monkeypatch, content, message):
    _coco(tmp_path, content, raw=True)
    with pytest.raises(SystemExit) as err:
        _run(tmp_path, params_dict, monkeypatch, COCO)
    msg = str(err.value.code)
    assert msg.startswith("faces: ") and "\n" not in msg
    assert __import__("re").search(message, msg), msg
    assert not (tmp_path / "faces/x").exists() or not any((tmp_path / "faces/x").iterdir())


def test_unknown_split_file_is_one_line(tmp_path, params_dict, monkeypatch):
    _coco(tmp_path, {"images": [IMAGE_A], "annotations": [_ann(1)]})
    (tmp_path / "raw/x/of/Holdout_poly.json").write_text("{}")
    with pytest.raises(SystemExit, match=r"Holdout_poly\.json: unknown split 'Holdout' in the file name; "
                                         r"name it <split>_poly\.json with a split in \['test', 'test-challenge'"):
        _run(tmp_path, params_dict, monkeypatch, COCO)


def test_bad_records_are_rejected_one_row_each(tmp_path, params_dict, monkeypatch):
    anns = [_ann(1),                                            # kept
            _ann(2, bbox=(10, 10, 30)),                         # 3 numbers
            _ann(3, bbox=(10, 10, "30", 30)),                   # a string
            _ann(4, bbox=(10, 10, float("nan"), 30)),           # not finite (json writes NaN)
            {"id": 5, "category_id": 0, "bbox": [1, 1, 20, 20]},  # no image_id
            {"image_id": 1, "category_id": 0, "bbox": [1, 1, 20, 20]},  # no id
            "not a record",
            _ann(8), _ann(8, bbox=(40, 40, 20, 20)),            # duplicate id: both rejected
            _ann(9, image_id=2),                                # image listed twice
            _ann(10, image_id=3),                               # image without file_name
            _ann(11, cat=[1])]                                  # unhashable category: unknown_label
    images = [IMAGE_A, {"id": 2, "file_name": "Images/a.jpg"}, {"id": 2, "file_name": "Images/a.jpg"},
              {"id": 3}]
    _coco(tmp_path, {"images": images, "annotations": anns})
    faces, rejects, summary = _run(tmp_path, params_dict, monkeypatch, COCO)
    assert list(faces["face_id"]) == ["of/train/a_1"]
    c = summary["of"]
    assert (c["inputs_in"], c["kept"], c["rejected"]) == (12, 1, 11)
    assert c["rejected_by_reason"] == {"bad_annotation": 10, "unknown_label": 1}
    assert set(rejects.loc[rejects.reason == "bad_annotation", "path"]) == {"raw/x/of/Train_poly.json"}
    assert '"not a record"' in set(rejects["annotation"])


def test_paths_out_of_the_dataset_are_rejected_and_never_opened(tmp_path, params_dict, monkeypatch):
    outside = tmp_path / "outside.jpg"
    write_image_rgb(outside, _scene(5))
    of = _coco(tmp_path, {"images": [IMAGE_A, {"id": 2, "file_name": "../../../outside.jpg"},
                                     {"id": 3, "file_name": str(outside)},
                                     {"id": 4, "file_name": "Images/link.jpg"},
                                     {"id": 5, "file_name": "Images/linked_dir/x.jpg"},
                                     {"id": 6, "file_name": "../../etc/passwd"}],
                          "annotations": [_ann(1), _ann(2, 2), _ann(3, 3), _ann(4, 4), _ann(5, 5), _ann(6, 5),
                                          _ann(7, 6)]})
    os.symlink(outside, of / "Images/link.jpg")
    (tmp_path / "elsewhere").mkdir()
    write_image_rgb(tmp_path / "elsewhere/x.jpg", _scene(6))
    os.symlink(tmp_path / "elsewhere", of / "Images/linked_dir")
    opened = []
    real_read = crop_module.read_image_rgb
    monkeypatch.setattr(crop_module, "read_image_rgb", lambda p: opened.append(p) or real_read(p))
    faces, rejects, summary = _run(tmp_path, params_dict, monkeypatch, COCO)
    assert opened == [(tmp_path / "raw/x/of/Images/a.jpg").relative_to(tmp_path).as_posix()]
    assert list(faces["face_id"]) == ["of/train/a_1"]
    # 6 annotations out, plus the two links themselves as files of the folder
    assert summary["of"]["rejected_by_reason"] == {"outside_dataset": 8}
    assert summary["of"]["inputs_in"] == 9
    assert "raw/x/of/../../etc/passwd" in set(rejects["path"])


def test_every_file_of_a_coco_folder_is_counted(tmp_path, params_dict, monkeypatch):
    of = _coco(tmp_path, {"images": [IMAGE_A, {"id": 2, "file_name": "Images/b.jpg"}],
                          "annotations": [_ann(1)]})
    write_image_rgb(of / "Images/b.jpg", _scene(1))          # listed, no annotation: no_face
    write_image_rgb(of / "Images/c.jpg", _scene(2))          # listed nowhere: not_annotated
    (of / "README.txt").write_text("hello")                  # not_an_image
    (of / "Images/.hidden.jpg").write_bytes(b"x")            # hidden: not an input
    faces, rejects, summary = _run(tmp_path, params_dict, monkeypatch, COCO)
    assert rows_of(rejects) == [("of", "raw/x/of/Images/b.jpg", "", "no_face"),
                                ("of", "raw/x/of/Images/c.jpg", "", "not_annotated"),
                                ("of", "raw/x/of/README.txt", "", "not_an_image")]
    assert (summary["of"]["inputs_in"], summary["of"]["kept"], summary["of"]["rejected"]) == (4, 1, 3)


def rows_of(frame):
    return sorted(map(tuple, frame.itertuples(index=False, name=None)))


FOLDERS = {"f": {"layout": "real_fake_folders", "dir": "f", "crop": "whole"}}


def test_a_dataset_without_any_face_is_an_error(tmp_path, params_dict, monkeypatch):
    (tmp_path / "raw/x/f/Real").mkdir(parents=True)
    (tmp_path / "raw/x/f/Real/a.jpg").write_bytes(b"broken")
    with pytest.raises(SystemExit, match=r"^faces: dataset 'f' \(raw/x/f\) yielded no face: all 1 inputs "
                                         r"rejected \{'unreadable': 1\}; see faces/x/rejects.csv$"):
        _run(tmp_path, params_dict, monkeypatch, FOLDERS)
    assert len(pd.read_csv(tmp_path / "faces/x/rejects.csv")) == 1


def test_an_empty_dataset_folder_is_an_error(tmp_path, params_dict, monkeypatch):
    (tmp_path / "raw/x/f").mkdir(parents=True)
    with pytest.raises(SystemExit, match=r"^faces: dataset 'f': no input files in raw/x/f; check"):
        _run(tmp_path, params_dict, monkeypatch, FOLDERS)


def test_a_misnamed_class_folder_stops_the_stage(tmp_path, params_dict, monkeypatch):
    write_image_rgb(tmp_path / "raw/x/f/Fake/a.jpg", _scene(0))
    write_image_rgb(tmp_path / "raw/x/f/Rael/b.jpg", _scene(1))
    with pytest.raises(SystemExit, match=r"^faces: dataset 'f' in raw/x/f: folder\(s\) 'Rael' \(1 images\)"):
        _run(tmp_path, params_dict, monkeypatch, FOLDERS)


def test_names_differing_only_by_extension_or_case_get_distinct_ids(tmp_path, params_dict, monkeypatch):
    f = tmp_path / "raw/x/f"
    write_image_rgb(f / "Real/x.jpg", np.zeros((20, 20, 3), np.uint8))
    write_image_rgb(f / "Real/x.png", np.full((20, 20, 3), 200, np.uint8))
    write_image_rgb(f / "Real/Y.jpg", np.full((20, 20, 3), 50, np.uint8))
    write_image_rgb(f / "Real/y.jpg", np.full((20, 20, 3), 100, np.uint8))
    write_image_rgb(f / "Real/z.jpg", np.full((20, 20, 3), 150, np.uint8))
    faces, _, summary = _run(tmp_path, params_dict, monkeypatch, FOLDERS)
    import hashlib

    h = {n: hashlib.sha256(f"raw/x/f/Real/{n}".encode()).hexdigest()[:10] for n in ("Y.jpg", "y.jpg")}
    assert list(faces["face_id"]) == sorted([
        "f/unsplit/Real__x-jpg", "f/unsplit/Real__x-png", f"f/unsplit/Real__Y-{h['Y.jpg']}",
        f"f/unsplit/Real__y-{h['y.jpg']}", "f/unsplit/Real__z"])            # z: no collision, unchanged
    means = {fid.rsplit("__", 1)[1]: __import__("cv2").imread(p).mean() for fid, p in zip(faces.face_id, faces.path)}
    assert round(means["x-jpg"]) == 0 and round(means["x-png"]) == 200     # neither overwrote the other
    assert summary["f"]["kept"] == 5


def test_assign_unique_keys_fails_loudly_when_a_collision_remains():
    job = crop_module.ImageJob(dataset="d", src="a/x.jpg", key="d/s/x", out_root="o", official_split="",
                               group="g", label=0)
    clash = crop_module.ImageJob(dataset="d", src="b/x-jpg.png", key="d/s/x-jpg", out_root="o",
                                 official_split="", group="g", label=0)
    other = crop_module.ImageJob(dataset="d", src="a/x.png", key="d/s/x", out_root="o", official_split="",
                                 group="g", label=0)
    with pytest.raises(DatasetError, match=r"face id 'd/s/x-jpg' would be shared by"):
        crop_module.assign_unique_keys([job, other, clash])
    # unchanged where nothing collides
    assert crop_module.assign_unique_keys([job, clash]) == [job, clash]


def test_switching_to_yunet_uses_yunet_defaults_on_real_photos(tmp_path, params_dict, monkeypatch):
    """Only faces.detector.backend changes; the YOLO demo's confidence 0.1 stays in its block."""
    from skimage import data

    f = tmp_path / "raw/x/f"
    write_image_rgb(f / "Real/astronaut.png", data.astronaut())
    write_image_rgb(f / "Fake/coffee.png", data.coffee())
    write_image_rgb(f / "Fake/chelsea.png", data.chelsea())
    params_dict["faces"]["detector"]["backend"] = "yunet"
    faces, rejects, summary = _run(tmp_path, params_dict, monkeypatch,
                                   {"f": {"layout": "real_fake_folders", "dir": "f", "crop": "detector"}})
    assert rows_of(rejects) == [("f", "raw/x/f/Fake/chelsea.png", "", "no_face"),
                                ("f", "raw/x/f/Fake/coffee.png", "", "no_face")]
    assert list(faces["face_id"]) == ["f/unsplit/Real__astronaut"]
    face = faces.iloc[0]
    # YuNet's box on the astronaut's face: x 178.0-268.4, y 62.6-176.4 (the face is about there)
    assert (face.box_x, face.box_y, face.box_w, face.box_h) == pytest.approx((178, 62.6, 90.4, 113.8), abs=1.0)
    assert (summary["f"]["inputs_in"], summary["f"]["inputs_kept"], summary["f"]["rejected"]) == (3, 1, 2)
