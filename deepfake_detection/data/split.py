"""Leakage-free splits: stratified by label, grouped so a group never spans two splits.

Datasets that publish their own splits keep them (OpenForensics, deepfake-and-real-images); a
dataset with official train/test but no validation split gets one carved out of its train part
by the same group-aware rule. Everything is a pure function of (faces, params, seed).
"""

from __future__ import annotations

import numpy as np
import pandas as pd


def stratified_group_split(labels, groups, fractions: dict[str, float], seed: int) -> np.ndarray:
    """Assign each sample a split name so that groups stay whole and label ratios match.

    Groups are bucketed by their fake fraction (all-real, mixed, all-fake), shuffled with
    ``seed`` and dealt greedily to the split furthest below its target share of faces in that
    bucket. Returns an array of split names aligned with ``labels``.
    """
    labels = np.asarray(labels)
    groups = np.asarray(groups)
    names = [k for k, v in fractions.items() if v > 0]
    target = np.array([fractions[k] for k in names], dtype=float)
    target = target / target.sum()
    frame = pd.DataFrame({"g": groups, "y": labels})
    per_group = frame.groupby("g", sort=True)["y"].agg(["size", "mean"])
    bucket = np.where(per_group["mean"] == 0, 0, np.where(per_group["mean"] == 1, 2, 1))
    rng = np.random.default_rng(seed)
    assignment: dict = {}
    for b in (0, 1, 2):
        sub = per_group[bucket == b]
        order = rng.permutation(len(sub))
        # Large groups first keeps the greedy deal close to the targets.
        sizes = sub["size"].to_numpy()[order]
        keys = sub.index.to_numpy()[order]
        by_size = np.argsort(-sizes, kind="stable")
        filled = np.zeros(len(names))
        for i in by_size:
            deficit = target * (filled.sum() + sizes[i]) - filled
            k = int(np.argmax(deficit))
            assignment[keys[i]] = names[k]
            filled[k] += sizes[i]
    return np.array([assignment[g] for g in groups], dtype=object)


def assign_splits(faces: pd.DataFrame, train: float, val: float, test: float, seed: int,
                  keep_official: bool = True) -> pd.DataFrame:
    """Return ``faces`` with a ``split`` column; groups stay whole even across datasets.

    1. With ``keep_official``, a face takes its dataset's split; a face without one whose group
       (e.g. a near-duplicate in another dataset) has one takes the group's.
    2. Datasets that have official splits but no ``val`` get one carved from their ``train``
       faces (only groups lying wholly in such datasets' train part are eligible).
    3. Every remaining group is dealt to train/val/test by :func:`stratified_group_split`.
    """
    out = faces.copy()
    official = out["official_split"].fillna("").astype(str) if keep_official else pd.Series("", index=out.index)
    if keep_official:
        group_split = official.where(official != "").groupby(out["group"]).transform("first")
        official = official.where(official != "", group_split.fillna(""))
    split = official.copy()
    no_val = {ds for ds, part in split.groupby(out["source"]) if (part != "").all() and "val" not in set(part)
              and "train" in set(part)}
    eligible = (split == "train") & out["source"].isin(no_val)
    eligible = eligible.groupby(out["group"]).transform("all")
    if eligible.any():
        share = val / (train + val)
        split[eligible] = stratified_group_split(out.loc[eligible, "label"], out.loc[eligible, "group"],
                                                 {"train": 1 - share, "val": share}, seed)
    todo = split == ""
    if todo.any():
        split[todo] = stratified_group_split(out.loc[todo, "label"], out.loc[todo, "group"],
                                             {"train": train, "val": val, "test": test}, seed)
    out["split"] = split.to_numpy()
    return out.sort_values("face_id", kind="stable").reset_index(drop=True)


# When a duplicate links faces that their datasets put in different official splits, the whole
# group goes to the most held-out of them: a test face must never also be trained on.
SPLIT_PRIORITY = ("test_challenge", "test_dev", "test", "val", "train")


def resolve_official_conflicts(faces: pd.DataFrame) -> tuple[pd.DataFrame, int]:
    """Give every group one official split (the most held-out); return (faces, faces moved)."""
    rank = {name: i for i, name in enumerate(SPLIT_PRIORITY)}
    official = faces["official_split"].fillna("").astype(str)
    keyed = official.map(lambda s: rank.get(s, len(rank)) if s else len(rank) + 1)
    best = keyed.groupby(faces["group"]).transform("min")
    conflict = (official != "") & (keyed != best)
    out = faces.copy()
    names = {v: k for k, v in rank.items()}
    out.loc[conflict, "official_split"] = best[conflict].map(names)
    return out, int(conflict.sum())


def leaking_groups(manifest: pd.DataFrame) -> list[str]:
    """Groups found in more than one split (must be empty)."""
    n = manifest.groupby("group")["split"].nunique()
    return sorted(n[n > 1].index)
