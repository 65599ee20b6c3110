"""Known duplicate pairs: raw paths to face ids, and recall/precision of the guard's links."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest

from deepfake_detection.data.known_pairs import (KNOWN_COLUMNS, link_scores, read_known_faces, translate,
                                                 write_known_faces)

RAW = "data/raw/demo"
FACES = pd.DataFrame({
    "face_id": ["of/train/train_0003_5", "of/train/train_0003_6", "of/train/train_0003_12",
                "dfr/train/Dataset__Train__Real__train_0003_f0", "dfr/train/Dataset__Train__Fake__train_0003_f1"],
    "src_path": [f"{RAW}/openforensics/Images/Train/train_0003.jpg"] * 3
    + [f"{RAW}/deepfake_and_real_images/Dataset/Train/Real/train_0003_f0.jpg",
       f"{RAW}/deepfake_and_real_images/Dataset/Train/Fake/train_0003_f1.jpg"],
})


def _raw(rows):
    return pd.DataFrame(rows, columns=["path_a", "annotation_a", "path_b", "annotation_b"])


def test_translate_matches_coco_annotations_and_whole_images():
    pairs = _raw([
        ["openforensics/Images/Train/train_0003.jpg", "5", "deepfake_and_real_images/Dataset/Train/Real/train_0003_f0.jpg", ""],
        ["deepfake_and_real_images/Dataset/Train/Fake/train_0003_f1.jpg", "", "openforensics/Images/Train/train_0003.jpg", "12"],
        ["openforensics/Images/Train/train_0003.jpg", "7", "deepfake_and_real_images/Dataset/Train/Real/train_0003_f0.jpg", ""],
        ["openforensics/Images/Train/gone.jpg", "1", "deepfake_and_real_images/Dataset/Train/Real/train_0003_f0.jpg", ""],
    ])
    known, unmatched = translate(pairs, FACES, Path(RAW))
    assert known.values.tolist() == [
        ["dfr/train/Dataset__Train__Fake__train_0003_f1", "of/train/train_0003_12"],
        ["dfr/train/Dataset__Train__Real__train_0003_f0", "of/train/train_0003_5"]]
    assert unmatched == 2                # annotation 7 and gone.jpg match no face


def test_write_known_faces_header_only_without_a_list_and_rejects_bad_columns(tmp_path):
    out = tmp_path / "faces" / "known_duplicates.csv"
    assert write_known_faces(tmp_path / "raw", FACES, out) is None
    assert out.read_text() == "face_id_a,face_id_b\n"
    assert list(read_known_faces(out).columns) == KNOWN_COLUMNS
    (tmp_path / "raw").mkdir()
    (tmp_path / "raw" / "known_duplicates.csv").write_text("a,b\n1,2\n")
    with pytest.raises(ValueError, match=r"known_duplicates.csv: columns \['a', 'b'\], expected exactly"):
        write_known_faces(tmp_path / "raw", FACES, out)


def test_link_scores_by_hand():
    # known components: {a, b, c} (two pairs), {d, e}; f has no twin; g is not in the manifest
    known = pd.DataFrame([["a", "b"], ["b", "c"], ["d", "e"], ["f", "g"]], columns=KNOWN_COLUMNS)
    links = pd.DataFrame([["a", "c"], ["c", "b"], ["d", "f"]], columns=KNOWN_COLUMNS)
    s = link_scores(links, known, list("abcdef"))
    # a-c is true (one component), c-b true, d-f false; a-b and b-c are connected by links,
    # d-e is not
    assert s == {"known_pairs": 3, "known_pairs_not_in_manifest": 1, "links": 3, "true_links": 2,
                 "false_links": 1, "known_pairs_found": 2, "known_pairs_missed": 1,
                 "precision": round(2 / 3, 4), "recall": round(2 / 3, 4)}
    empty = link_scores(links.iloc[:0], known.iloc[:0], list("ab"))
    assert empty["precision"] is None and empty["recall"] is None
