"""The GAN stages' face selections: the group-aware 75/25 real split, seeded subsets, fake sources."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from sklearn.model_selection import GroupShuffleSplit

from deepfake_detection.gan.data import fake_sources, real_rows, real_split, subset


def _index() -> pd.DataFrame:
    # 40 faces: rows 0-29 real in 10 groups of 3, rows 30-39 fake (two generators and none), another dataset
    n = 40
    label = np.array([0] * 30 + [1] * 10)
    source = ["ds_a"] * 36 + ["ds_b"] * 4
    generator = [""] * 30 + ["insight"] * 3 + ["text2img"] * 3 + [""] * 4
    group = [f"g{i // 3}" for i in range(30)] + [f"f{i}" for i in range(10)]
    return pd.DataFrame({"row": np.arange(n), "label": label, "source": source, "generator": generator,
                         "group": group, "split": "train"})


def test_real_rows_are_the_real_faces_of_the_datasets():
    idx = _index()
    idx.loc[[3, 4], "source"] = "ds_b"
    assert real_rows(idx, ["ds_a"]).tolist() == [r for r in range(30) if r not in (3, 4)]
    assert real_rows(idx, ["ds_b"]).tolist() == [3, 4]


def test_the_split_is_sklearns_group_shuffle_split_and_keeps_groups_whole():
    idx = _index()
    train, held = real_split(idx, ["ds_a"], 0.25, seed=7)
    tr, te = next(GroupShuffleSplit(n_splits=1, test_size=0.25, random_state=7).split(
        np.arange(30), groups=[f"g{i // 3}" for i in range(30)]))
    assert train.tolist() == sorted(tr.tolist()) and held.tolist() == sorted(te.tolist())
    assert len(held) == 9                      # ceil(0.25 * 10 groups) = 3 groups of 3 faces
    groups = idx["group"].to_numpy()
    assert not set(groups[train]) & set(groups[held])
    assert sorted(train.tolist() + held.tolist()) == list(range(30))


def test_the_split_is_the_same_for_every_caller_and_changes_with_the_seed():
    idx = _index()
    first = real_split(idx, ["ds_a"], 0.25, seed=1)
    assert all((a == b).all() for a, b in zip(first, real_split(idx.sample(frac=1, random_state=0), ["ds_a"], 0.25, 1)))
    assert any(not np.array_equal(a, b) for a, b in zip(first, real_split(idx, ["ds_a"], 0.25, seed=2)))


def test_one_group_cannot_be_split():
    idx = _index()
    idx["group"] = "one"
    with pytest.raises(ValueError, match=r"datasets \['ds_a'\] have 30 real faces in 1 group\(s\)"):
        real_split(idx, ["ds_a"], 0.25, seed=0)


def test_subset_is_seeded_sorted_and_whole_when_small():
    rows = np.arange(100, 120)
    picked = subset(rows, 5, seed=3)
    expected = np.sort(np.random.default_rng(3).choice(rows, size=5, replace=False))
    assert picked.tolist() == expected.tolist()
    assert subset(rows, 50, seed=3).tolist() == rows.tolist()


def test_fake_sources_by_dataset_and_generator():
    out = fake_sources(_index())
    assert {k: v.tolist() for k, v in out.items()} == {
        "ds_a/insight": [30, 31, 32], "ds_a/text2img": [33, 34, 35], "ds_b": [36, 37, 38, 39]}
