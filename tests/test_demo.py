"""The built-in demo data: OpenForensics-shaped COCO, the folder copy, determinism, broken inputs."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import numpy as np
import pytest
from pycocotools.coco import COCO

from deepfake_detection.data.demo import (FOLDER_DIR, KNOWN_DUPLICATES, OF_DIR, PERTURBATIONS, SPLITS,
                                          DemoOptions, generate_demo, polygon_area)
from deepfake_detection.faces.boxes import box_problem, xywh_to_xyxy
from deepfake_detection.io import read_image_rgb
from deepfake_detection.params import ParamsError, from_dict

TINY = {"seed": 7, "n_train": 4, "n_val": 3, "n_test_dev": 3, "n_test_challenge": 3,
        "image_size": 128, "faces_per_image": [2, 3], "face_size": [24, 40], "folder_size": 48}
FOLDER_SPLIT = {of: folder for of, _, folder in SPLITS}
FOLDER_SPLIT_OF = {folder: of for of, _, folder in SPLITS if folder}


def _tree_hashes(root: Path) -> dict[str, str]:
    return {p.relative_to(root).as_posix(): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(root.rglob("*")) if p.is_file()}


@pytest.fixture(scope="module")
def demo(tmp_path_factory):
    opts = from_dict(DemoOptions, TINY, "sources.demo.options")
    a, b = tmp_path_factory.mktemp("demo_a"), tmp_path_factory.mktemp("demo_b")
    counts = generate_demo(a, opts)
    generate_demo(b, opts)
    return opts, a, b, counts


def _coco(root: Path, split: str) -> tuple[COCO, dict]:
    path = root / OF_DIR / f"{split}_poly.json"
    return COCO(str(path)), json.loads(path.read_text())


def _bad_ids(raw: dict) -> set[int]:
    return {a["id"] for a in raw["annotations"]
            if box_problem(xywh_to_xyxy(a["bbox"]), raw["images"][0]["width"],
                           raw["images"][0]["height"])}


def test_byte_identical_across_runs(demo):
    _, a, b, _ = demo
    ha, hb = _tree_hashes(a), _tree_hashes(b)
    assert ha == hb
    assert not [p for p in ha if Path(p).name.startswith(".")]   # no temporaries left behind


def test_coco_files_are_openforensics_shaped(demo):
    opts, root, _, counts = demo
    labels = set()
    for split, count_field, _ in SPLITS:
        coco, raw = _coco(root, split)
        assert raw["categories"] == [{"id": 0, "name": "Real"}, {"id": 1, "name": "Fake"}]
        assert len(coco.getImgIds()) == getattr(opts, count_field)
        for img in raw["images"]:
            assert img["file_name"] == f"Images/{split}/{Path(img['file_name']).name}"
            assert (root / OF_DIR / img["file_name"]).is_file()
            assert (img["width"], img["height"]) == (opts.image_size, opts.image_size)
        per_image = {}
        for ann in raw["annotations"]:
            assert ann["iscrowd"] == 0 and ann["category_id"] in (0, 1)
            per_image.setdefault(ann["image_id"], set()).add(ann["category_id"])
            labels.add(ann["category_id"])
            (poly,) = ann["segmentation"]
            xs, ys = poly[0::2], poly[1::2]
            x, y, w, h = ann["bbox"]
            assert all(isinstance(v, float) for v in ann["bbox"])
            assert ann["area"] == pytest.approx(polygon_area(poly), abs=0.01)
            assert x == pytest.approx(min(xs)) and y == pytest.approx(min(ys))
            assert x + w == pytest.approx(max(xs), abs=0.011)
            assert y + h == pytest.approx(max(ys), abs=0.011)
        c = counts[OF_DIR][split]
        assert c["images"] == len(raw["images"])
        assert c["faces"] + c["bad_boxes"] == len(raw["annotations"])
        assert all(per_image.get(img["id"]) for img in raw["images"])   # every scene has faces
    assert labels == {0, 1}


def test_test_challenge_is_perturbed(demo):
    _, root, _, _ = demo
    for split in ("Train", "Val", "Test-Dev"):
        assert not any("perturbation" in img for img in _coco(root, split)[1]["images"])
    images = _coco(root, "Test-Challenge")[1]["images"]
    for img in images:
        names = img["perturbation"].split("+")
        assert 1 <= len(names) <= 2 and set(names) <= set(PERTURBATIONS)


def test_corrupt_image_and_bad_boxes(demo):
    opts, root, _, counts = demo
    _, raw = _coco(root, "Train")
    unreadable = []
    for img in raw["images"]:
        try:
            read_image_rgb(root / OF_DIR / img["file_name"])
        except ValueError:
            unreadable.append(img["id"])
    assert len(unreadable) == opts.n_corrupt_images == counts[OF_DIR]["Train"]["corrupt_images"]
    problems = sorted(box_problem(xywh_to_xyxy(a["bbox"]), opts.image_size, opts.image_size)
                      or "ok" for a in raw["annotations"])
    assert problems.count("box_outside") == 1 and problems.count("zero_area") == 1
    assert counts[OF_DIR]["Train"]["bad_boxes"] == opts.n_bad_boxes == 2
    bad = [a for a in raw["annotations"] if a["id"] in _bad_ids(raw)]
    assert all(a["image_id"] not in unreadable for a in bad)     # reachable by the box checks
    for split in ("Val", "Test-Dev", "Test-Challenge"):
        _, other = _coco(root, split)
        assert not _bad_ids(other)
        for img in other["images"]:
            assert read_image_rgb(root / OF_DIR / img["file_name"]).shape == (
                opts.image_size, opts.image_size, 3)


def test_folder_copy_matches_readable_faces(demo):
    opts, root, _, counts = demo
    dataset = root / FOLDER_DIR / "Dataset"
    assert sorted(p.name for p in dataset.iterdir()) == ["Test", "Train", "Validation"]
    for split, folder in FOLDER_SPLIT.items():
        if folder is None:
            continue
        _, raw = _coco(root, split)
        readable = set()
        for img in raw["images"]:
            try:
                read_image_rgb(root / OF_DIR / img["file_name"])
                readable.add(img["id"])
            except ValueError:
                pass
        stems = {img["id"]: Path(img["file_name"]).stem for img in raw["images"]}
        bad = _bad_ids(raw)
        expected = {"Real": 0, "Fake": 0}
        for ann in raw["annotations"]:
            if ann["image_id"] in readable and ann["id"] not in bad:
                expected["Fake" if ann["category_id"] else "Real"] += 1
        found = {cls: sorted((dataset / folder / cls).glob("*.jpg")) for cls in ("Real", "Fake")}
        assert {cls: len(v) for cls, v in found.items()} == expected == counts[FOLDER_DIR][folder]
        scene_names = {stems[i] for i in readable}
        for files in found.values():
            for path in files:
                assert path.stem.rsplit("_f", 1)[0] in scene_names     # source scene recoverable
        img = read_image_rgb(found["Real"][0])
        assert img.shape == (opts.folder_size, opts.folder_size, 3) and img.std() > 5


def test_known_duplicates_name_every_folder_image_and_its_coco_face(demo):
    _, root, _, counts = demo
    text = (root / KNOWN_DUPLICATES).read_text()
    lines = text.splitlines()
    assert lines[0] == "path_a,annotation_a,path_b,annotation_b"
    rows = [line.split(",") for line in lines[1:]]
    assert rows == sorted(rows, key=lambda r: (r[0], int(r[1]), r[2]))
    folder_files = sorted(p.relative_to(root).as_posix()
                          for p in (root / FOLDER_DIR).rglob("*.jpg"))
    assert sorted(r[2] for r in rows) == folder_files
    assert len(rows) == sum(sum(c.values()) for c in counts[FOLDER_DIR].values())
    assert all(r[3] == "" for r in rows)
    for path_a, ann, path_b, _ in rows:
        assert (root / path_a).is_file() and (root / path_b).is_file()
        stem = Path(path_b).stem.rsplit("_f", 1)[0]
        assert Path(path_a).stem == stem                          # same scene
        split = FOLDER_SPLIT_OF[Path(path_b).parts[2]]
        _, raw = _coco(root, split)
        ann_by_id = {a["id"]: a for a in raw["annotations"]}
        image = next(img for img in raw["images"] if img["id"] == ann_by_id[int(ann)]["image_id"])
        assert f"{OF_DIR}/{image['file_name']}" == path_a
        assert ("Fake" if ann_by_id[int(ann)]["category_id"] else "Real") == Path(path_b).parts[3]
    assert not list((root / OF_DIR).rglob(KNOWN_DUPLICATES))


def test_options_reject_unknown_keys_and_bad_values():
    where = "sources.demo.options"
    with pytest.raises(ParamsError, match=r"sources\.demo\.options: unknown key\(s\) \['n_trian'\]"):
        from_dict(DemoOptions, {"n_trian": 3}, where)
    with pytest.raises(ParamsError, match=r"sources\.demo\.options\.face_size"):
        from_dict(DemoOptions, {"face_size": [90, 40]}, where)
    with pytest.raises(ParamsError, match=r"sources\.demo\.options\.fake_fraction"):
        from_dict(DemoOptions, {"fake_fraction": 1.5}, where)
    with pytest.raises(ParamsError, match=r"sources\.demo\.options\.n_train"):
        from_dict(DemoOptions, {"n_train": "many"}, where)
    with pytest.raises(ParamsError, match=r"sources\.demo\.options\.face_size"):
        from_dict(DemoOptions, {"image_size": 64, "face_size": [40, 60]}, where)
    defaults = from_dict(DemoOptions, {}, where)
    assert defaults == DemoOptions()
    assert np.isclose(defaults.fake_fraction, 0.5)
