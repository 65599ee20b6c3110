"""Stage ``split``: merge every source's faces into one manifest with a split per face.

Reads ``data/faces/<source>/faces.csv`` (and ``known_duplicates.csv``) of each enabled source,
links duplicate faces across and within sources (the leakage guard, which re-reads the source
images under ``data/raw`` for box-aligned views), assigns splits (official where a dataset has
them, else stratified + grouped) and writes the manifest (no image copies), the links, the
train/val faces excluded as linked to a held-out face (split ``excluded_leak``), and a JSON of
counts with the guard's recall and precision against the known pairs. Fails if a group would put
faces in train or val and in any other split.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from deepfake_detection.runtime import set_offline_defaults, stage_main

set_offline_defaults()

import pandas as pd  # noqa: E402

from deepfake_detection.data.manifest import FACE_COLUMNS, MANIFEST_COLUMNS, check_columns  # noqa: E402
from deepfake_detection.data.dedup import REPORT_COLUMNS, link_duplicates, merge_groups  # noqa: E402
from deepfake_detection.data.known_pairs import FILE_NAME as KNOWN_FILE  # noqa: E402
from deepfake_detection.data.known_pairs import KNOWN_COLUMNS, link_scores, read_known_faces  # noqa: E402
from deepfake_detection.data.split import (EXCLUDED, assign_splits, leaking_groups,  # noqa: E402
                                           resolve_official_conflicts, same_file_links)
from deepfake_detection.io import write_csv, write_json  # noqa: E402
from deepfake_detection.params import load_params  # noqa: E402
from deepfake_detection.runtime import log  # noqa: E402


def split_counts(manifest: pd.DataFrame) -> dict:
    out: dict = {}
    for (ds, split), part in manifest.groupby(["source", "split"], sort=True):
        out.setdefault(ds, {})[split] = {"n": len(part), "real": int((part["label"] == 0).sum()),
                                         "fake": int((part["label"] == 1).sum()),
                                         "groups": int(part["group"].nunique())}
    return out


def read_faces(faces_root: Path, sources: list[str]) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Every enabled source's faces.csv (concatenated) and known_duplicates.csv (union)."""
    frames, known = [], []
    for src in sources:
        path = faces_root / src / "faces.csv"
        frame = pd.read_csv(path, dtype={"official_split": str, "generator": str}, keep_default_na=False)
        check_columns(frame, FACE_COLUMNS, str(path))
        frames.append(frame)
        kpath = faces_root / src / KNOWN_FILE
        if kpath.is_file():
            known.append(read_known_faces(kpath))
        else:
            log(f"split: {kpath} missing (written by the faces stage); no known pairs for {src}")
    faces = pd.concat(frames, ignore_index=True)
    dup = faces["face_id"].duplicated()
    if dup.any():
        raise SystemExit(f"split: duplicate face_id(s) across sources, e.g. {faces.loc[dup, 'face_id'].iloc[0]!r}")
    known = pd.concat(known, ignore_index=True) if known else pd.DataFrame(columns=KNOWN_COLUMNS)
    return faces, known.drop_duplicates().reset_index(drop=True)


def guard(faces: pd.DataFrame, known: pd.DataFrame, sp) -> tuple[pd.DataFrame, pd.DataFrame, pd.DataFrame, dict]:
    """Link duplicates, make groups leak-free: (faces, links, excluded faces, metrics)."""
    metrics = {"max_distance": sp.dedup_max_distance, "min_ncc": sp.dedup_min_ncc}
    n_groups = faces["group"].nunique()
    faces = merge_groups(faces, same_file_links(faces))   # one source file, one group (any dataset)
    metrics["groups_joined_by_file"] = n_groups - faces["group"].nunique()
    links = pd.DataFrame(columns=REPORT_COLUMNS)
    if sp.dedup_max_distance >= 0:
        n_groups = faces["group"].nunique()
        faces, links, stats = link_duplicates(faces, Path("."), sp.dedup_max_distance, sp.dedup_min_ncc)
        metrics.update(stats, links=len(links),
                       cross_source_links=int((links["source_a"] != links["source_b"]).sum()),
                       groups_merged=n_groups - faces["group"].nunique())
    excluded = pd.DataFrame(columns=["face_id", "source", "official_split", "group"])
    moved = {}
    if sp.keep_official:
        faces, resolved = resolve_official_conflicts(faces)
        excluded, moved = resolved["excluded"], resolved["per_dataset"]
    metrics["moved"] = moved
    metrics["known_pairs"] = link_scores(links, known, faces["face_id"])
    return faces, links, excluded, metrics


@stage_main("split")
def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--params", default="params.yaml")
    ap.add_argument("--faces-root", required=True, type=Path,
                    help="folder holding <source>/faces.csv for every enabled source")
    ap.add_argument("--out", required=True, type=Path, help="manifest CSV")
    ap.add_argument("--metrics", required=True, type=Path)
    ap.add_argument("--duplicates", required=True, type=Path, help="CSV of the duplicate links found")
    ap.add_argument("--excluded", required=True, type=Path,
                    help=f"CSV of the train/val faces put in {EXCLUDED!r} (linked to a held-out face)")
    args = ap.parse_args(argv)
    params = load_params(args.params)
    sp = params.split
    faces, known = read_faces(args.faces_root, params.enabled_sources)
    faces, links, excluded, dedup = guard(faces, known, sp)
    kp = dedup["known_pairs"]
    log(f"split: leakage guard: {len(links)} link(s), {dedup.get('cross_source_links', 0)} across sources; "
        f"known pairs: recall {kp['recall']}, precision {kp['precision']} ({kp['known_pairs']} known); "
        f"{len(excluded)} train/val face(s) excluded as linked to a held-out face")
    manifest = assign_splits(faces, sp.train, sp.val, sp.test, sp.seed, sp.keep_official)
    leaks = leaking_groups(manifest)
    if leaks:
        raise SystemExit(f"split: {len(leaks)} group(s) put faces in train/val and in another split, "
                         f"e.g. {leaks[0]!r}")
    counts = split_counts(manifest)
    for ds, c in counts.items():
        log(f"split: {ds}: " + ", ".join(f"{k} {v['n']} (fake {v['fake']})" for k, v in c.items()))
    write_csv(args.duplicates, links)
    write_csv(args.excluded, excluded)
    write_csv(args.out, manifest[MANIFEST_COLUMNS])
    write_json(args.metrics, {"splits": counts, "dedup": dedup})


if __name__ == "__main__":
    main()
