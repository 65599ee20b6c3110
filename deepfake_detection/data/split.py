"""Leakage-free splits: stratified by label, grouped so a group never spans two splits.

Datasets that publish their own splits keep them (OpenForensics, deepfake-and-real-images); a
dataset with official train/test but no validation split gets one carved out of its train part
by the same group-aware rule. Faces cut from one source file share a group whatever dataset
lists them (:func:`same_file_links`: seed 002 reads one DeepFakeFace download as whole images
and as detector crops). Everything is a pure function of (faces, params, seed).
"""

from __future__ import annotations

import numpy as np
import pandas as pd


def same_file_links(faces: pd.DataFrame) -> pd.DataFrame:
    """Links (``face_id_a``, ``face_id_b``) tying every face to the first face of its ``src_path``.

    Two datasets over one download (the whole image and the face cropped from it) give each face
    a group of its own dataset; linked here, :func:`~.dedup.merge_groups` puts them in one group,
    so the whole image can never be tested on while its crop is trained on. Faces without a
    ``src_path`` column or with an empty one are left alone.
    """
    if "src_path" not in faces.columns:
        return pd.DataFrame(columns=["face_id_a", "face_id_b"])
    src = faces["src_path"].fillna("").astype(str)
    ids = faces["face_id"].astype(str)
    keep = src != ""
    first = ids[keep].groupby(src[keep], sort=False).transform("first")
    pairs = pd.DataFrame({"face_id_a": first, "face_id_b": ids[keep]})
    return pairs[pairs["face_id_a"] != pairs["face_id_b"]].reset_index(drop=True)


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

    When the leakage guard merged groups across datasets, run :func:`resolve_official_conflicts`
    first, so that no group holds two different official splits of which one is train or val.
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


HELD_OUT = ("test", "test_dev", "test_challenge")
EXCLUDED = "excluded_leak"     # a train/val face linked to a held-out face: read by no one
TRAIN_VAL = ("train", "val")


def resolve_official_conflicts(faces: pd.DataFrame) -> tuple[pd.DataFrame, dict]:
    """Make every linked group leak-free before splitting; return (faces, what moved).

    Within a group (faces that must not be trained on and tested on apart):
      * a group holding any face of a held-out split (``HELD_OUT``): held-out faces keep their
        own split (a group may span several held-out splits: no model trains on them); its
        train/val faces get :data:`EXCLUDED`; its faces without an official split get ``test``
        (their own dataset's test set);
      * otherwise a group holding both train and val faces puts them all in ``val``, and its
        faces without an official split take that split.
    Only ``official_split`` changes. The dict counts per dataset ``excluded_leak`` (train/val ->
    excluded), ``to_test`` (unsplit -> test) and ``to_val`` (train -> val), and lists the
    excluded faces (``face_id``, ``source``, ``official_split`` before, ``group``).
    """
    official = faces["official_split"].fillna("").astype(str)
    group = faces["group"].astype(str)
    held = official.isin(HELD_OUT).groupby(group).transform("any")
    has_val = (official == "val").groupby(group).transform("any")
    has_train = (official == "train").groupby(group).transform("any")
    new = official.copy()
    excluded = held & official.isin(TRAIN_VAL)
    to_test = held & (official == "")
    to_val = ~held & has_val & has_train & (official == "train")
    new[excluded] = EXCLUDED
    new[to_test] = "test"
    new[to_val] = "val"
    new[~held & has_val & (official == "")] = "val"
    out = faces.copy()
    out["official_split"] = new.to_numpy()
    src = faces["source"].astype(str)
    counts = {ds: {"excluded_leak": int((excluded & (src == ds)).sum()), "to_test": int((to_test & (src == ds)).sum()),
                   "to_val": int((to_val & (src == ds)).sum())} for ds in sorted(set(src))}
    listed = faces.loc[excluded, ["face_id", "source", "official_split", "group"]]
    return out, {"per_dataset": counts, "excluded": listed.sort_values("face_id").reset_index(drop=True)}


def leaking_groups(manifest: pd.DataFrame) -> list[str]:
    """Groups that put a face in train or val and another face in any other split (must be none).

    Faces in :data:`EXCLUDED` are read by no one and do not count; a group spread over several
    held-out splits is not a leak.
    """
    used = manifest[manifest["split"] != EXCLUDED]
    n = used.groupby("group")["split"].nunique()
    trains = used["split"].isin(TRAIN_VAL).groupby(used["group"]).any()
    return sorted(n[(n > 1) & trains.reindex(n.index)].index)
