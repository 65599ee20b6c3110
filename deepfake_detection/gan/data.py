"""Which prepared faces the GAN stages use: the group-aware 75/25 real split and the FID sets.

Seed 002 splits its real images 75/25: the generative GANs train on 75% and their FID is taken
against the other 25%. Here the split is drawn over the manifest's ``group`` column (faces cut
from one source image, one video or one identity share a group) with scikit-learn's
``GroupShuffleSplit``, so no group has faces on both sides: a generator is never judged against
near-copies of its own training faces. It covers every manifest split of the chosen datasets (the
GANs never see the classifiers' test sets as labelled data; a generative variant uses real faces
only). Every selection is a pure function of the prepared index and a seed, so the
``fid_reference`` stage and each ``train_gan`` stage pick the same rows.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
from sklearn.model_selection import GroupShuffleSplit


def real_rows(index: pd.DataFrame, datasets: list[str]) -> np.ndarray:
    """Prepared rows (positions) of the real faces (label 0) of ``datasets``, ascending."""
    mask = (index["label"].to_numpy() == 0) & index["source"].isin(datasets).to_numpy()
    return np.sort(index.loc[mask, "row"].to_numpy().astype(np.int64))


def real_split(index: pd.DataFrame, datasets: list[str], holdout: float, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """(train rows, held-out rows) of the real faces of ``datasets``, split by group.

    About ``holdout`` of the groups (so, for groups of similar size, of the faces) go to the held-out
    side; both sides are sorted. Raises ValueError naming the datasets when there are fewer than two
    groups of real faces to split.
    """
    rows = real_rows(index, datasets)
    groups = index.set_index("row").loc[rows, "group"].astype(str).to_numpy()
    if len(np.unique(groups)) < 2:
        raise ValueError(f"GAN real split: datasets {datasets} have {len(rows)} real faces in "
                         f"{len(np.unique(groups))} group(s); need at least 2 groups (check gan.datasets)")
    splitter = GroupShuffleSplit(n_splits=1, test_size=holdout, random_state=seed)
    train_pos, held_pos = next(splitter.split(rows, groups=groups))
    return np.sort(rows[train_pos]), np.sort(rows[held_pos])


def subset(rows: np.ndarray, n: int, seed: int) -> np.ndarray:
    """At most ``n`` of ``rows``, a seeded uniform choice without replacement, sorted (all when fewer)."""
    rows = np.asarray(rows, dtype=np.int64)
    if len(rows) <= n:
        return rows
    return np.sort(np.random.default_rng(seed).choice(rows, size=n, replace=False))


def fake_sources(index: pd.DataFrame) -> dict[str, np.ndarray]:
    """The fake faces (label 1) of every dataset, by source: ``<dataset>`` or ``<dataset>/<generator>``.

    Seed 002 reports the FID of each DeepFakeFace generator against the real faces; a dataset
    whose manifest names no generator is one source.
    """
    fakes = index[index["label"].to_numpy() == 1]
    gen = fakes["generator"].fillna("").astype(str).to_numpy()
    source = fakes["source"].astype(str).to_numpy()
    names = np.where(gen == "", source, np.char.add(np.char.add(source.astype(str), "/"), gen.astype(str)))
    rows = fakes["row"].to_numpy().astype(np.int64)
    return {name: np.sort(rows[names == name]) for name in sorted(set(names))}

