"""Stage ``split``: merge every source's faces into one manifest with a split per face.

Reads ``data/faces/<source>/faces.csv`` of each enabled source, assigns splits (official where a
dataset has them, else stratified + grouped) and writes the manifest (no image copies) and a
counts JSON. Fails if any group would span two splits.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from deepfake_detection.runtime import set_offline_defaults, stage_main

set_offline_defaults()

import pandas as pd  # noqa: E402

from deepfake_detection.data.manifest import FACE_COLUMNS, MANIFEST_COLUMNS, check_columns  # noqa: E402
from deepfake_detection.data.dedup import link_duplicates  # noqa: E402
from deepfake_detection.data.split import assign_splits, leaking_groups, resolve_official_conflicts  # noqa: E402
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


@stage_main("split")
def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--params", default="params.yaml")
    ap.add_argument("--faces-root", required=True, type=Path,
                    help="folder holding <source>/faces.csv for every enabled source")
    ap.add_argument("--out", required=True, type=Path, help="manifest CSV")
    ap.add_argument("--metrics", required=True, type=Path)
    ap.add_argument("--duplicates", required=True, type=Path, help="CSV of the near-duplicate pairs found")
    args = ap.parse_args(argv)
    params = load_params(args.params)
    sp = params.split
    frames = []
    for path in [args.faces_root / src / "faces.csv" for src in params.enabled_sources]:
        frame = pd.read_csv(path, dtype={"official_split": str, "generator": str}, keep_default_na=False)
        check_columns(frame, FACE_COLUMNS, str(path))
        frames.append(frame)
    faces = pd.concat(frames, ignore_index=True)
    dup = faces["face_id"].duplicated()
    if dup.any():
        raise SystemExit(f"split: duplicate face_id(s) across sources, e.g. {faces.loc[dup, 'face_id'].iloc[0]!r}")
    dedup = {"max_distance": sp.dedup_max_distance, "pairs": 0, "cross_source_pairs": 0,
             "groups_merged": 0, "faces_moved_to_held_out_split": 0}
    if sp.dedup_max_distance >= 0:
        n_groups = faces["group"].nunique()
        faces, pairs = link_duplicates(faces, Path("."), sp.dedup_max_distance)
        faces, moved = resolve_official_conflicts(faces)
        dedup.update(pairs=len(pairs), cross_source_pairs=int((pairs["source_a"] != pairs["source_b"]).sum()),
                     groups_merged=n_groups - faces["group"].nunique(), faces_moved_to_held_out_split=moved)
        log(f"split: leakage guard: {len(pairs)} near-duplicate pair(s), "
            f"{dedup['cross_source_pairs']} across sources, {moved} face(s) moved to a held-out split")
        write_csv(args.duplicates, pairs)
    else:
        write_csv(args.duplicates, pd.DataFrame(columns=["face_id_a", "face_id_b", "source_a", "source_b", "distance"]))
    manifest = assign_splits(faces, sp.train, sp.val, sp.test, sp.seed, sp.keep_official)
    leaks = leaking_groups(manifest)
    if leaks:
        raise SystemExit(f"split: {len(leaks)} group(s) span several splits, e.g. {leaks[0]!r}")
    counts = split_counts(manifest)
    for ds, c in counts.items():
        log(f"split: {ds}: " + ", ".join(f"{k} {v['n']} (fake {v['fake']})" for k, v in c.items()))
    write_csv(args.out, manifest[MANIFEST_COLUMNS])
    write_json(args.metrics, {"splits": counts, "dedup": dedup})


if __name__ == "__main__":
    main()
