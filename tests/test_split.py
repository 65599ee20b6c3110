import numpy as np
import pandas as pd
import pytest
from sklearn.model_selection import train_test_split

from deepfake_detection.data.split import assign_splits, leaking_groups, stratified_group_split


def _faces(n_groups=300, seed=0):
    rng = np.random.default_rng(seed)
    rows = []
    for g in range(n_groups):
        for k in range(rng.integers(1, 5)):
            rows.append({"face_id": f"d/{g}_{k}", "source": "d", "group": f"g{g}",
                         "label": int(rng.random() < 0.35), "official_split": ""})
    return pd.DataFrame(rows)


def test_groups_never_span_splits_and_ratios_hold():
    f = _faces()
    split = stratified_group_split(f["label"], f["group"], {"train": 0.7, "val": 0.15, "test": 0.15}, 42)
    f["split"] = split
    assert leaking_groups(f) == []
    share = f["split"].value_counts(normalize=True)
    assert share["train"] == pytest.approx(0.70, abs=0.03)
    assert share["val"] == pytest.approx(0.15, abs=0.03)
    fake = f.groupby("split")["label"].mean()
    assert (fake - f["label"].mean()).abs().max() < 0.05         # stratified by label


def test_deterministic_and_seed_dependent():
    f = _faces()
    a = stratified_group_split(f["label"], f["group"], {"train": 0.7, "val": 0.3}, 1)
    b = stratified_group_split(f["label"], f["group"], {"train": 0.7, "val": 0.3}, 1)
    c = stratified_group_split(f["label"], f["group"], {"train": 0.7, "val": 0.3}, 2)
    assert (a == b).all() and not (a == c).all()


def test_singleton_groups_match_sklearn_stratified_split_proportions():
    rng = np.random.default_rng(3)
    y = (rng.random(1000) < 0.3).astype(int)
    ours = stratified_group_split(y, np.arange(1000), {"train": 0.7, "test": 0.3}, 42)
    _, y_test = train_test_split(y, test_size=0.3, stratify=y, random_state=42)
    assert (ours == "test").sum() == pytest.approx(len(y_test), abs=2)
    assert y[ours == "test"].mean() == pytest.approx(y_test.mean(), abs=0.01)


def test_official_splits_kept_and_val_carved_from_train():
    f = _faces(200)
    f["official_split"] = np.where(f.index % 5 == 0, "test", "train")
    f.loc[f.groupby("group").ngroup() % 5 == 0, "official_split"] = "test"
    f["official_split"] = f.groupby("group")["official_split"].transform("first")
    out = assign_splits(f, 0.7, 0.15, 0.15, 42)
    assert set(out["split"]) == {"train", "val", "test"}
    merged = out.merge(f[["face_id", "official_split"]], on="face_id", suffixes=("", "_in"))
    assert (merged.loc[merged.official_split_in == "test", "split"] == "test").all()
    assert leaking_groups(out) == []
    val_share = (out.split == "val").sum() / (out.split != "test").sum()
    assert val_share == pytest.approx(0.15 / 0.85, abs=0.04)


def test_groups_linked_across_datasets_stay_whole():
    """A near-duplicate group spanning an official-split dataset and an unsplit one (review bug)."""
    a = _faces(60, seed=1).assign(source="a")
    a["official_split"] = np.where(a.groupby("group").ngroup() % 4 == 0, "test", "train")
    b = _faces(60, seed=2).assign(source="b")
    b["face_id"] = "b/" + b["face_id"]
    shared = b["group"].isin([f"g{i}" for i in range(0, 60, 3)])   # same groups as in a
    b.loc[~shared, "group"] = "b-" + b.loc[~shared, "group"]
    out = assign_splits(pd.concat([a, b], ignore_index=True), 0.7, 0.15, 0.15, 42)
    assert leaking_groups(out) == []
    assert set(out.loc[out.source == "a", "split"]) == {"train", "val", "test"}   # val carved for a
    assert {"train", "val", "test"} <= set(out.loc[out.source == "b", "split"])


def test_resolve_official_conflicts_keeps_held_out_and_excludes_train_val_by_hand():
    from deepfake_detection.data.split import EXCLUDED, resolve_official_conflicts

    f = pd.DataFrame({
        "face_id": ["a1", "b1", "a2", "b2", "c2", "a3", "b3", "a4", "c4", "a5", "b5", "c5", "a6"],
        "source": ["a", "b", "a", "b", "c", "a", "b", "a", "c", "a", "b", "c", "a"],
        "group": ["g1", "g1", "g2", "g2", "g2", "g3", "g3", "g4", "g4", "g5", "g5", "g5", "g6"],
        "official_split": ["train", "test", "test_dev", "test", "", "train", "val", "train", "", "val", "val", "",
                           "train"],
        "label": 0,
    })
    out, moved = resolve_official_conflicts(f)
    assert list(out["official_split"]) == [
        EXCLUDED, "test",            # g1: a train face linked to a held-out face is excluded
        "test_dev", "test", "test",  # g2: held-out splits stay; the unsplit face goes to its test
        "val", "val",                # g3: train + val -> val
        "train", "",                 # g4: no conflict (the unsplit face takes the group's later)
        "val", "val", "val",         # g5: the unsplit face joins val
        "train"]
    assert moved["per_dataset"] == {"a": {"excluded_leak": 1, "to_test": 0, "to_val": 1},
                                    "b": {"excluded_leak": 0, "to_test": 0, "to_val": 0},
                                    "c": {"excluded_leak": 0, "to_test": 1, "to_val": 0}}
    assert moved["excluded"].values.tolist() == [["a1", "a", "train", "g1"]]
    manifest = assign_splits(out, 0.7, 0.15, 0.15, 42)
    assert manifest.set_index("face_id").loc[["a1", "b1", "c2", "c4"], "split"].tolist() == [
        EXCLUDED, "test", "test", "train"]
    assert leaking_groups(manifest) == []


def test_leaking_groups_allows_several_held_out_splits_and_ignores_excluded():
    m = pd.DataFrame({"group": ["g1", "g1", "g2", "g2", "g3", "g3", "g4", "g4", "g5"],
                      "split": ["test", "test_dev", "excluded_leak", "test", "train", "test", "train", "val", "val"]})
    assert leaking_groups(m) == ["g3", "g4"]


def test_faces_of_one_source_file_share_a_group_across_datasets():
    from deepfake_detection.data.dedup import merge_groups
    from deepfake_detection.data.split import same_file_links

    # seed 002: one download read as whole images and as detector crops (groups carry the dataset id)
    faces = pd.DataFrame({
        "face_id": ["whole/a", "crop/a", "whole/b", "crop/b", "crop/c"],
        "group": ["whole:a", "crop:a", "whole:b", "crop:b", "crop:c"],
        "src_path": ["raw/a.jpg", "raw/a.jpg", "raw/b.jpg", "raw/b.jpg", ""]})
    links = same_file_links(faces)
    assert links.values.tolist() == [["whole/a", "crop/a"], ["whole/b", "crop/b"]]
    merged = merge_groups(faces, links)
    # each pair takes its smallest group name; a face without a source file keeps its own group
    assert merged["group"].tolist() == ["crop:a", "crop:a", "crop:b", "crop:b", "crop:c"]
    assert same_file_links(faces.drop(columns="src_path")).empty


def test_split_stage_keeps_a_whole_image_and_its_crop_in_one_split():
    from deepfake_detection.data.dedup import merge_groups
    from deepfake_detection.data.split import same_file_links

    rng = np.random.default_rng(3)
    rows = []
    for i in range(200):
        label = int(rng.random() < 0.5)
        for ds in ("deepfakeface", "deepfakeface_faces"):
            rows.append({"face_id": f"{ds}/{i}", "source": ds, "group": f"{ds}:{i}", "label": label,
                         "official_split": "", "src_path": f"data/raw/dff/{i}.jpg"})
    faces = pd.DataFrame(rows)
    apart = assign_splits(faces, 0.7, 0.15, 0.15, seed=42, keep_official=True)
    by_file = apart.assign(file=apart["src_path"]).groupby("file")["split"].nunique()
    assert (by_file > 1).sum() > 0          # grouped by dataset id alone, files are split apart
    joined = assign_splits(merge_groups(faces, same_file_links(faces)), 0.7, 0.15, 0.15, seed=42,
                           keep_official=True)
    assert (joined.groupby("src_path")["split"].nunique() == 1).all()
