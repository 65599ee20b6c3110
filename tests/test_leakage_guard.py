"""The leakage guard end to end on generated demo data: faces stage -> split stage.

The demo folder set is a re-crop (margin 1.8, shifted inside, 128 px, JPEG) of the demo COCO
faces (margin 1.3, clamped, 64 px), as the Kaggle set is of OpenForensics. The guard must link
the twins, report recall/precision against the generator's ``known_duplicates.csv``, keep held-out faces in their
own test split and exclude train/val faces linked to held-out ones.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pandas as pd
import pytest
import yaml

from deepfake_detection.data.demo import FOLDER_DIR, DemoOptions, generate_demo
from deepfake_detection.data.split import EXCLUDED
from deepfake_detection.params import from_dict
from stages import faces as faces_stage
from stages import split as split_stage

REPO = Path(__file__).resolve().parents[1]
OPTIONS = {"seed": 11, "n_train": 8, "n_val": 3, "n_test_dev": 4, "n_test_challenge": 1}


def move_folder_images(raw: Path, pattern: str, dest_split: str) -> dict[str, str]:
    """Move the folder images matching ``Dataset/<pattern>`` to ``Dataset/<dest_split>/<class>/``;
    returns old -> new paths relative to ``raw``."""
    moved = {}
    for p in sorted((raw / FOLDER_DIR / "Dataset").glob(pattern)):
        dest = raw / FOLDER_DIR / "Dataset" / dest_split / p.parent.name / p.name
        dest.parent.mkdir(parents=True, exist_ok=True)
        p.rename(dest)
        moved[p.relative_to(raw).as_posix()] = dest.relative_to(raw).as_posix()
    return moved


def remap_known(raw: Path, moved: dict[str, str]) -> int:
    """The generator's ``known_duplicates.csv`` with the moved folder images' new paths; its rows."""
    path = raw / "known_duplicates.csv"
    known = pd.read_csv(path, dtype=str, keep_default_na=False)
    known["path_b"] = known["path_b"].map(lambda rel: moved.get(rel, rel))
    known.to_csv(path, index=False, lineterminator="\n")
    return len(known)


@pytest.fixture(scope="module")
def demo_raw(tmp_path_factory):
    root = tmp_path_factory.mktemp("guard_demo")
    generate_demo(root / "raw", from_dict(DemoOptions, OPTIONS, "sources.demo.options"))
    params = yaml.safe_load((REPO / "params.yaml").read_text())
    params["sources"]["demo"]["options"] = OPTIONS
    params["enabled_sources"] = ["demo"]
    (root / "params.yaml").write_text(yaml.safe_dump(params))
    return root


def _run(demo_raw: Path, work: Path, rearrange) -> tuple[pd.DataFrame, dict, pd.DataFrame]:
    raw = work / "raw" / "demo"
    shutil.copytree(demo_raw / "raw", raw)
    moved = rearrange(raw)
    n_known = remap_known(raw, moved)
    p = str(demo_raw / "params.yaml")
    faces_stage.main(["--params", p, "--source", "demo", "--raw", str(raw), "--out", str(work / "faces" / "demo"),
                      "--metrics", str(work / "faces.json"), "--workers", "1"])
    assert len(pd.read_csv(work / "faces" / "demo" / "known_duplicates.csv")) == n_known
    split_stage.main(["--params", p, "--faces-root", str(work / "faces"), "--out", str(work / "manifest.csv"),
                      "--metrics", str(work / "split.json"), "--duplicates", str(work / "dups.csv"),
                      "--excluded", str(work / "excluded.csv")])
    manifest = pd.read_csv(work / "manifest.csv", keep_default_na=False)
    return manifest, json.loads((work / "split.json").read_text())["dedup"], pd.read_csv(work / "excluded.csv")


def _twins(work: Path, manifest: pd.DataFrame) -> pd.DataFrame:
    """Known pairs with both faces' splits (a: COCO face, b: folder face)."""
    known = pd.read_csv(work / "faces" / "demo" / "known_duplicates.csv")
    split = manifest.set_index("face_id")["split"]
    coco_first = known["face_id_a"].str.startswith("demo_openforensics")
    a = known["face_id_a"].where(coco_first, known["face_id_b"])
    b = known["face_id_b"].where(coco_first, known["face_id_a"])
    dups = pd.read_csv(work / "dups.csv")
    linked = set(zip(dups["face_id_a"], dups["face_id_b"])) | set(zip(dups["face_id_b"], dups["face_id_a"]))
    return pd.DataFrame({"a": a, "b": b, "split_a": split[a].to_numpy(), "split_b": split[b].to_numpy(),
                         "linked": [(x, y) in linked for x, y in zip(a, b)]})


def test_official_splits_twins_found_and_a_train_face_linked_to_test_is_excluded(demo_raw, tmp_path):
    # the folder copies of Train scene 1 moved into the folder Test split
    manifest, dedup, excluded = _run(demo_raw, tmp_path,
                                     lambda raw: move_folder_images(raw, "Train/*/train_0001_f*.jpg", "Test"))
    kp = dedup["known_pairs"]
    assert (kp["known_pairs"], kp["known_pairs_found"], kp["false_links"]) == (56, 55, 0)
    assert (kp["recall"], kp["precision"]) == (0.9821, 1.0)
    twins = _twins(tmp_path, manifest)
    scene = twins["a"].str.contains("/train_0001_")
    # the moved folder faces stay in their own test split; their COCO scene is not trained on
    assert set(twins.loc[scene, "split_b"]) == {"test"}
    coco_scene = manifest[manifest["face_id"].str.startswith("demo_openforensics/train/train_0001_")]
    assert set(coco_scene["split"]) == {EXCLUDED}
    assert sorted(excluded["face_id"]) == sorted(coco_scene["face_id"])
    assert dedup["moved"]["demo_openforensics"] == {"excluded_leak": len(coco_scene), "to_test": 0, "to_val": 0}
    # every other twin shares its official split
    pairs = set(zip(twins.loc[~scene, "split_a"], twins.loc[~scene, "split_b"]))
    assert pairs == {("train", "train"), ("val", "val"), ("test_dev", "test")}


def test_unsplit_folder_set_follows_its_twins_and_held_out_twins_go_to_its_test(demo_raw, tmp_path):
    # every folder image in Dataset/All/<class>/: a folder set without official splits
    manifest, dedup, excluded = _run(demo_raw, tmp_path, lambda raw: move_folder_images(raw, "*/*/*.jpg", "All"))
    kp = dedup["known_pairs"]
    assert (kp["known_pairs"], kp["known_pairs_found"], kp["false_links"]) == (56, 55, 0)
    twins = _twins(tmp_path, manifest)
    found = twins[twins["linked"]]
    expected = {"train": "train", "val": "val", "test_dev": "test"}
    assert len(found) == 55 and (found["split_b"] == found["split_a"].map(expected)).all()
    assert len(excluded) == 0
    assert dedup["moved"]["demo_deepfake_and_real_images"]["to_test"] == int((found["split_a"] == "test_dev").sum())
