"""Known duplicate faces: translate a source's list into face ids, and score the guard against it.

A source may ship ``<raw>/known_duplicates.csv`` (the demo generator writes one): columns
``path_a,annotation_a,path_b,annotation_b``, paths relative to the source's raw folder, the COCO
annotation id for a face cut from a COCO file and empty for a whole image. The faces stage turns
it into ``data/faces/<source>/known_duplicates.csv`` (``face_id_a,face_id_b``) with
:func:`write_known_faces`; the split stage scores the leakage guard's links against the union of
those files with :func:`link_scores`.
"""

from __future__ import annotations

from pathlib import Path, PurePosixPath

import numpy as np
import pandas as pd

from ..io import write_csv

RAW_COLUMNS = ["path_a", "annotation_a", "path_b", "annotation_b"]
KNOWN_COLUMNS = ["face_id_a", "face_id_b"]
FILE_NAME = "known_duplicates.csv"


def _face_index(faces: pd.DataFrame, raw: Path) -> dict[tuple[str, str], list[str]]:
    """(path relative to ``raw``, annotation) -> face ids; whole-image faces under annotation ''.

    A COCO face id is ``<dataset>/<split>/<image stem>_<annotation id>``, so a face whose id ends
    in ``/<stem>_<digits>`` is indexed under that annotation; every face is also indexed under
    '' (a whole image, or every face a detector found in it).
    """
    prefix = raw.as_posix().rstrip("/") + "/"
    index: dict[tuple[str, str], list[str]] = {}
    for fid, src in zip(faces["face_id"].astype(str), faces["src_path"].astype(str)):
        if not src.startswith(prefix):
            continue
        rel = src[len(prefix):]
        index.setdefault((rel, ""), []).append(fid)
        stem = PurePosixPath(rel).stem
        tail = fid.rsplit("/", 1)[-1]
        if tail.startswith(stem + "_") and tail[len(stem) + 1:].isdigit():
            index.setdefault((rel, tail[len(stem) + 1:]), []).append(fid)
    return index


def read_raw_pairs(path: Path) -> pd.DataFrame:
    """The source's list, validated: exact columns, no empty path."""
    frame = pd.read_csv(path, dtype=str, keep_default_na=False)
    if list(frame.columns) != RAW_COLUMNS:
        raise ValueError(f"{path}: columns {list(frame.columns)}, expected exactly {RAW_COLUMNS}")
    empty = (frame["path_a"] == "") | (frame["path_b"] == "")
    if empty.any():
        raise ValueError(f"{path}: row {int(np.flatnonzero(empty)[0]) + 2} has an empty path; "
                         "every row needs path_a and path_b")
    return frame


def translate(pairs: pd.DataFrame, faces: pd.DataFrame, raw: Path) -> tuple[pd.DataFrame, int]:
    """Known pairs of raw paths -> pairs of face ids; also how many rows matched no face.

    A row whose side matches no face (the image was rejected, or the annotation is unknown) is
    dropped and counted; a side matching several faces (detector crops) pairs each of them.
    """
    index = _face_index(faces, raw)
    out, unmatched = set(), 0
    for pa, aa, pb, ab in pairs[RAW_COLUMNS].itertuples(index=False):
        fa, fb = index.get((pa, aa.strip())), index.get((pb, ab.strip()))
        if not fa or not fb:
            unmatched += 1
            continue
        out.update((min(x, y), max(x, y)) for x in fa for y in fb if x != y)
    frame = pd.DataFrame(sorted(out), columns=KNOWN_COLUMNS)
    return frame, unmatched


def write_known_faces(raw: Path, faces: pd.DataFrame, out: Path) -> int | None:
    """Write ``out`` from ``<raw>/known_duplicates.csv`` (header only without one).

    Returns the number of source rows that matched no face, or None when the source ships no
    list.
    """
    src = Path(raw) / FILE_NAME
    if not src.is_file():
        write_csv(out, pd.DataFrame(columns=KNOWN_COLUMNS))
        return None
    frame, unmatched = translate(read_raw_pairs(src), faces, Path(raw))
    write_csv(out, frame)
    return unmatched


def read_known_faces(path: Path) -> pd.DataFrame:
    frame = pd.read_csv(path, dtype=str, keep_default_na=False)
    if list(frame.columns) != KNOWN_COLUMNS:
        raise ValueError(f"{path}: columns {list(frame.columns)}, expected exactly {KNOWN_COLUMNS}; "
                         "rerun the faces stage")
    return frame


def _components(a, b, nodes: list[str]) -> dict[str, int]:
    """Connected component id of every node of the graph with edges (a[i], b[i])."""
    from scipy.sparse import coo_matrix
    from scipy.sparse.csgraph import connected_components

    code = {n: i for i, n in enumerate(nodes)}
    ia = np.array([code[x] for x in a], dtype=np.int64)
    ib = np.array([code[x] for x in b], dtype=np.int64)
    graph = coo_matrix((np.ones(len(ia), dtype=np.int8), (ia, ib)), shape=(len(nodes), len(nodes)))
    _, comp = connected_components(graph, directed=False)
    return dict(zip(nodes, comp.tolist()))


def link_scores(links: pd.DataFrame, known: pd.DataFrame, face_ids) -> dict:
    """Recall and precision of the guard's links against the known pairs.

    Only known pairs whose two faces are both in ``face_ids`` count. A link is *true* when its
    two faces lie in one component of the known-pairs graph (a known pair, or two copies of one
    face); every link counts, within a dataset or across. ``precision`` = true links / links;
    ``recall`` = known pairs whose faces are connected by a path of links / known pairs. Both
    are None when their denominator is 0.
    """
    ids = set(map(str, face_ids))
    present = known["face_id_a"].isin(ids) & known["face_id_b"].isin(ids)
    kn = known[present]
    nodes = sorted(ids)
    known_comp = _components(kn["face_id_a"], kn["face_id_b"], nodes)
    link_comp = _components(links["face_id_a"], links["face_id_b"], nodes)
    true = np.array([known_comp[a] == known_comp[b] for a, b in zip(links["face_id_a"], links["face_id_b"])],
                    dtype=bool)
    found = np.array([link_comp[a] == link_comp[b] for a, b in zip(kn["face_id_a"], kn["face_id_b"])], dtype=bool)
    return {
        "known_pairs": int(len(kn)), "known_pairs_not_in_manifest": int((~present).sum()),
        "links": int(len(links)), "true_links": int(true.sum()), "false_links": int((~true).sum()),
        "known_pairs_found": int(found.sum()), "known_pairs_missed": int((~found).sum()),
        "precision": round(float(true.mean()), 4) if len(links) else None,
        "recall": round(float(found.mean()), 4) if len(kn) else None,
    }
