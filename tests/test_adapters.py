"""Layout adapters on tiny generated trees: the rows, labels, groups and rejects they produce."""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd
import pytest

import os

from deepfake_detection.data.adapters import (ADAPTERS, DatasetError, adapt, scan, source_counts,
                                              unknown_class_folders)
from deepfake_detection.data.manifest import RECORD_COLUMNS, REJECT_COLUMNS


def touch(root: Path, *names: str) -> None:
    for name in names:
        path = root / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(b"\xff\xd8 not decoded by adapters")


def rows(frame: pd.DataFrame) -> list[tuple]:
    return sorted(map(tuple, frame.itertuples(index=False, name=None)))


def test_every_published_layout_has_an_adapter():
    assert {"real_fake_folders", "video_frames", "deepfakeface"} <= set(ADAPTERS)
    with pytest.raises(ValueError, match="no adapter for layout 'nope'"):
        adapt("nope", Path("."), "x")


def test_real_fake_folders_keeps_its_behaviour_and_skips_download_bookkeeping(tmp_path):
    touch(tmp_path, "Dataset/Train/Real/a.jpg", "Dataset/Validation/Fake/b.jpg", "Dataset/Test/Real/c.png",
          "Dataset/Train/d.jpg", "Dataset/readme.txt",
          "__MACOSX/Dataset/Train/Real/._a.jpg", ".archives/x.jpg", "Dataset/Train/Real/.hidden.jpg")
    (tmp_path / ".sources").mkdir()
    (tmp_path / ".sources" / "archive.zip.json").write_text("{}")
    records, rejects = adapt("real_fake_folders", tmp_path, "dfr")
    assert list(records.columns) == RECORD_COLUMNS and list(rejects.columns) == REJECT_COLUMNS
    assert rows(records) == [
        ("dfr", "Dataset/Test/Real/c.png", 0, "", "dfr:Dataset/Test/Real/c", "test"),
        ("dfr", "Dataset/Train/Real/a.jpg", 0, "", "dfr:Dataset/Train/Real/a", "train"),
        ("dfr", "Dataset/Validation/Fake/b.jpg", 1, "", "dfr:Dataset/Validation/Fake/b", "val"),
    ]
    assert rows(rejects) == [("dfr", "Dataset/Train/d.jpg", "", "unknown_label"),
                             ("dfr", "Dataset/readme.txt", "", "not_an_image")]


def test_real_fake_folders_reads_label_words_in_folder_names(tmp_path):
    touch(tmp_path, "training_real/a.jpg", "Fake Images/hard_1.jpg", "real_vs_fake/x.jpg",
          "real_vs_fake/train/fake/y.jpg")
    records, rejects = adapt("real_fake_folders", tmp_path, "rff")
    assert [(r[1], r[2], r[5]) for r in rows(records)] == [
        ("Fake Images/hard_1.jpg", 1, ""), ("real_vs_fake/train/fake/y.jpg", 1, "train"),
        ("training_real/a.jpg", 0, "")]
    assert list(rejects["path"]) == ["real_vs_fake/x.jpg"]       # both words: ambiguous


def test_video_frames_labels_from_the_name_and_groups_by_video(tmp_path):
    touch(tmp_path, "images/vidA_0001_0.jpg", "images/vidA_0002_0.jpg", "images/vid_B_7_1.jpg",
          "images/vidC_12_1.JPG", "images/notes.jpg", "images/vidD_3_2.jpg", "images/vidE_1.jpg")
    records, rejects = adapt("video_frames", tmp_path, "fvi")
    assert rows(records) == [
        ("fvi", "images/vidA_0001_0.jpg", 0, "", "fvi:vidA", ""),
        ("fvi", "images/vidA_0002_0.jpg", 0, "", "fvi:vidA", ""),
        ("fvi", "images/vidC_12_1.JPG", 1, "", "fvi:vidC", ""),
        ("fvi", "images/vid_B_7_1.jpg", 1, "", "fvi:vid_B", ""),   # underscores stay in the video id
    ]
    assert [r[1] for r in rows(rejects)] == ["images/notes.jpg", "images/vidD_3_2.jpg", "images/vidE_1.jpg"]
    assert set(rejects["reason"]) == {"unknown_label"}
    assert records["label"].dtype.kind == "i"


def test_deepfakeface_generators_and_shared_groups(tmp_path):
    touch(tmp_path, "wiki/00/1.jpg", "wiki/01/2.jpg", "inpainting/00/1.jpg", "insight/insight/00/1.png",
          "text2img/01/2.jpg", "text2img/01/9.jpg", "stray.jpg", "wiki/list.csv")
    records, rejects = adapt("deepfakeface", tmp_path, "dff")
    assert rows(records) == [
        ("dff", "inpainting/00/1.jpg", 1, "inpainting", "dff:00/1", ""),
        ("dff", "insight/insight/00/1.png", 1, "insight", "dff:00/1", ""),
        ("dff", "text2img/01/2.jpg", 1, "text2img", "dff:01/2", ""),
        ("dff", "text2img/01/9.jpg", 1, "text2img", "dff:01/9", ""),
        ("dff", "wiki/00/1.jpg", 0, "", "dff:00/1", ""),
        ("dff", "wiki/01/2.jpg", 0, "", "dff:01/2", ""),
    ]
    assert rows(rejects) == [("dff", "stray.jpg", "", "unknown_label"),
                             ("dff", "wiki/list.csv", "", "not_an_image")]


def test_deepfakeface_accepts_a_parent_folder(tmp_path):
    touch(tmp_path, "DeepFakeFace/wiki/00/1.jpg", "DeepFakeFace/insight/00/1.jpg")
    records, _ = adapt("deepfakeface", tmp_path, "dff")
    assert sorted(records["group"]) == ["dff:00/1", "dff:00/1"]
    assert sorted(records["generator"]) == ["", "insight"]


def test_empty_folder_gives_empty_frames_with_the_contract_columns(tmp_path):
    for layout in ("real_fake_folders", "video_frames", "deepfakeface"):
        records, rejects = adapt(layout, tmp_path, "x")
        assert records.empty and list(records.columns) == RECORD_COLUMNS
        assert rejects.empty and list(rejects.columns) == REJECT_COLUMNS


def test_source_counts_per_dataset_label_split_and_generator(tmp_path):
    touch(tmp_path, "dff/wiki/00/1.jpg", "dff/wiki/00/2.jpg", "dff/inpainting/00/1.jpg",
          "dff/text2img/00/1.jpg", "dfr/Train/Real/a.jpg", "dfr/Test/Fake/b.jpg", "dfr/Test/Fake/c.jpg")
    records = pd.concat([adapt("deepfakeface", tmp_path / "dff", "dff")[0],
                         adapt("real_fake_folders", tmp_path / "dfr", "dfr")[0]], ignore_index=True)
    counts = source_counts(records)
    json.dumps(counts)      # plain JSON types
    assert counts == {
        "dff": {"total": 4, "real": 2, "fake": 2,
                "by_official_split": {"none": {"total": 4, "real": 2, "fake": 2}},
                "by_generator": {"none": {"total": 2, "real": 2, "fake": 0},
                                 "inpainting": {"total": 1, "real": 0, "fake": 1},
                                 "text2img": {"total": 1, "real": 0, "fake": 1}}},
        "dfr": {"total": 3, "real": 1, "fake": 2,
                "by_official_split": {"test": {"total": 2, "real": 0, "fake": 2},
                                      "train": {"total": 1, "real": 1, "fake": 0}},
                "by_generator": {"none": {"total": 3, "real": 1, "fake": 2}}},
    }


# --------------------------------------------------------------------------- every file accounted


def test_video_frames_rejects_stray_files(tmp_path):
    touch(tmp_path, "images/v_1_0.jpg", "images/notes.txt", "images/v_2_1.jpeg.bak", "LICENSE")
    records, rejects = adapt("video_frames", tmp_path, "fvi")
    assert list(records["path"]) == ["images/v_1_0.jpg"]
    assert rows(rejects) == [("fvi", "LICENSE", "", "not_an_image"),
                             ("fvi", "images/notes.txt", "", "not_an_image"),
                             ("fvi", "images/v_2_1.jpeg.bak", "", "not_an_image")]


@pytest.mark.parametrize("folder", ["Rael", "Train/Rael"])
def test_a_misnamed_class_folder_is_an_error_naming_it(tmp_path, folder):
    base = folder.rpartition("/")[0]
    prefix = f"{base}/" if base else ""
    touch(tmp_path, f"{prefix}Fake/a.jpg", f"{folder}/b.jpg", f"{folder}/c.jpg")
    with pytest.raises(DatasetError) as err:
        adapt("real_fake_folders", tmp_path, "dfr")
    msg = str(err.value)
    assert f"'{folder}' (2 images)" in msg and "Real or Fake" in msg and "\n" not in msg


def test_a_misspelt_deepfakeface_folder_is_an_error(tmp_path):
    touch(tmp_path, "wiki/00/1.jpg", "insigth/00/1.jpg")
    with pytest.raises(DatasetError, match=r"'insigth' \(1 images\).*'inpainting', 'insight'"):
        adapt("deepfakeface", tmp_path, "dff")


def test_unknown_class_folders_rule():
    is_class = lambda n: n.lower() in {"real", "fake"}          # noqa: E731
    # a labelled image below a folder clears it; a folder with no class sibling is not flagged
    assert unknown_class_folders(["x/real/a.jpg"], ["x/b.jpg", "y/z/c.jpg"], is_class) == {}
    assert unknown_class_folders(["real/a.jpg"], ["Rael/b.jpg", "Rael/sub/c.jpg"], is_class) == {"Rael": 2}


def test_missing_dataset_folder_is_one_line(tmp_path):
    with pytest.raises(DatasetError, match=r"dataset 'x': folder .*nope not found; run the download stage"):
        adapt("real_fake_folders", tmp_path / "nope", "x")


def test_links_out_of_the_dataset_are_rejected_and_never_followed(tmp_path):
    outside = tmp_path / "outside"
    touch(outside, "secret.jpg", "dir/more.jpg")
    root = tmp_path / "ds"
    touch(root, "Real/a.jpg", "Fake/b.jpg")
    os.symlink(outside / "secret.jpg", root / "Real" / "linked.jpg")          # file out
    os.symlink(outside / "dir", root / "Fake" / "linked_dir")                 # folder out
    os.symlink(root / "Real" / "a.jpg", root / "Fake" / "inside.jpg")         # file in: read
    os.symlink(root / "Real", root / "Fake" / "real_again")                   # folder in: not descended
    os.symlink(tmp_path / "gone.jpg", root / "Real" / "dangling.jpg")         # broken link out
    records, rejects = adapt("real_fake_folders", root, "d")
    assert sorted(records["path"]) == ["Fake/b.jpg", "Fake/inside.jpg", "Real/a.jpg"]
    assert rows(rejects) == [("d", "Fake/linked_dir", "", "outside_dataset"),
                             ("d", "Real/dangling.jpg", "", "outside_dataset"),
                             ("d", "Real/linked.jpg", "", "outside_dataset")]


def test_the_dataset_folder_itself_may_be_a_link(tmp_path):
    real = tmp_path / "user_data"
    touch(real, "Real/a.jpg")
    link = tmp_path / "raw"
    os.symlink(real, link)
    assert scan(link) == (["Real/a.jpg"], [])
