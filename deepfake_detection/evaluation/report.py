"""The markdown leaderboard: our metrics per test set, then the reports' published numbers.

Input rows are the per-(variant, test set) metrics JSON files written by ``evaluate``; output is
one deterministic markdown document (no timestamps, no paths), so a diff in review shows only
changed numbers.

Every ranked number carries its 95% group-bootstrap interval, and each test set's variants are
compared pairwise by a paired group bootstrap of the ROC-AUC difference on the same faces
(:func:`paired_comparisons`, from the per-face scores files): the ``vs best`` column says
whether a variant is distinguishable from the top one, so noise is not read as a ranking. Every
row says which weights the run started from (``weights``: ``imagenet`` or ``scratch``, as the
model file records it), so a transfer variant that fell back to scratch is never read as transfer.

:func:`gan_markdown` writes the GAN section: each variant's FID beside the reports' published FID
and the reference FIDs of the datasets' own fake faces, with the sample-size caveat and the
sample grids.
"""

from __future__ import annotations

import json
import math
import re
from pathlib import Path
from typing import Callable, Iterable

import pandas as pd

from deepfake_detection.evaluation.bootstrap import CI_KEYS, CI_METRICS, paired_auc_test
from deepfake_detection.evaluation.metrics import METRIC_KEYS

ROW_KEYS = ("variant", "test_set", "weights", *METRIC_KEYS, *CI_KEYS)
TABLE_COLUMNS = ("n", "n_groups", "accuracy", "precision", "recall", "f1", "roc_auc", "pr_auc",
                 "eer", "log_loss", "threshold")
SCORE_COLUMNS = ("face_id", "group", "label", "score")
PAIR_KEYS = ("test_set", "a", "b", "diff", "ci_low", "ci_high", "p_value", "significant")
SEED_COLUMNS = ("roc_auc", "accuracy", "eer")
PUBLISHED_TITLE = "Published numbers (the reports' own, full data, GPU)"
_PUBLISHED_ID = ("variant", "report", "dataset", "test_set")
# Published metrics are shown in this order first; any other name (fid, ...) follows, sorted.
_PUBLISHED_ORDER = ("accuracy", "precision", "recall", "f1", "roc_auc", "pr_auc", "eer",
                    "log_loss", "fid")
GAN_TITLE = "GANs: FID"
GAN_KEYS = ("variant", "kind", "loss", "epochs", "scale", "differs_from_paper", "fid", "fid_n_real",
            "fid_n_fake", "fid_warning")
REFERENCE_KEYS = ("fid", "fid_n_real", "fid_n_fake")
# fid.DIMS, the Inception pool3 size; not imported, because evaluation/fid.py pulls in torch
FID_MIN_SAMPLES = 2048


def read_json_object(path: str | Path) -> dict:
    """The JSON object in ``path``; ValueError naming the file when it is not valid JSON or not an
    object (a missing file raises FileNotFoundError)."""
    try:
        obj = json.loads(Path(path).read_text())
    except json.JSONDecodeError as err:
        raise ValueError(f"{path}: not valid JSON ({err})") from err
    if not isinstance(obj, dict):
        raise ValueError(f"{path}: expected a JSON object, got {type(obj).__name__}")
    return obj


def collect_metrics(paths: Iterable[str | Path]) -> list[dict]:
    """Read metrics JSON files (in the given order), checking each has every key of ROW_KEYS.

    Raises ValueError naming the file when it is not valid JSON, not an object, or lacks keys;
    a missing file raises FileNotFoundError.
    """
    rows = []
    for path in paths:
        path = Path(path)
        row = read_json_object(path)
        missing = [k for k in ROW_KEYS if k not in row]
        if missing:
            raise ValueError(f"{path}: missing metrics keys {missing}")
        rows.append(row)
    return rows


def _fmt(value) -> str:
    if value is None:
        return "n/a"
    if isinstance(value, bool):
        return str(value).lower()
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        return f"{value:.4f}" if math.isfinite(value) else str(value)
    return _cell(str(value))


def _cell(text: str) -> str:
    return text.replace("|", "\\|").replace("\n", " ")


def _table(header: list[str], body: list[list[str]], numeric_from: int, numeric_to: int | None = None) -> list[str]:
    """Markdown table; columns ``numeric_from`` up to (not including) ``numeric_to`` right-aligned."""
    numeric_to = len(header) if numeric_to is None else numeric_to
    align = ["---:" if numeric_from <= i < numeric_to else "---" for i in range(len(header))]
    lines = ["| " + " | ".join(header) + " |", "| " + " | ".join(align) + " |"]
    lines += ["| " + " | ".join(row) + " |" for row in body]
    return lines


def _auc_order(row: dict):
    auc = row.get("roc_auc")
    missing = auc is None or (isinstance(auc, float) and math.isnan(auc))
    return (missing, 0.0 if missing else -float(auc), str(row["variant"]))


def _published_metrics(entry: dict) -> dict:
    """A published entry's metrics: a nested ``metrics`` mapping, or its remaining keys."""
    if isinstance(entry.get("metrics"), dict):
        return entry["metrics"]
    return {k: v for k, v in entry.items() if k not in _PUBLISHED_ID and k != "description"}


def read_scores(path: str | Path) -> pd.DataFrame:
    """A per-face scores CSV written by ``evaluate`` (face_id, group, label, score)."""
    path = Path(path)
    frame = pd.read_csv(path, dtype={"face_id": str, "group": str}, keep_default_na=False)
    missing = [c for c in SCORE_COLUMNS if c not in frame.columns]
    if missing:
        raise ValueError(f"{path}: missing columns {missing}; re-run evaluate, which writes "
                         f"{list(SCORE_COLUMNS)}")
    return frame


def _aligned(a: pd.DataFrame, b: pd.DataFrame, where: str) -> pd.DataFrame:
    """The two variants' scores on the same faces, one row per face (sorted by face_id)."""
    if set(a["face_id"]) != set(b["face_id"]) or a["face_id"].duplicated().any() \
            or b["face_id"].duplicated().any():
        raise ValueError(f"{where}: the two variants were scored on different faces; re-run "
                         f"evaluate for both")
    both = a.merge(b, on="face_id", suffixes=("_a", "_b")).sort_values("face_id", kind="mergesort")
    if not ((both["label_a"] == both["label_b"]).all() and (both["group_a"] == both["group_b"]).all()):
        raise ValueError(f"{where}: the same faces carry different labels or groups in the two "
                         f"scores files; re-run evaluate for both")
    return both


def paired_comparisons(rows: list[dict], scores: Callable[[str, str], pd.DataFrame],
                       resamples: int, seed: int) -> list[dict]:
    """Paired group-bootstrap ROC-AUC tests of the top variant against every other, per test set.

    ``scores(variant, test_set)`` returns that variant's per-face scores. ``a`` is the test set's
    top variant in leaderboard order and ``b`` each of the others (in that order), so ``diff`` =
    ROC-AUC(a) - ROC-AUC(b) is normally >= 0. Only these K-1 pairs feed the ``vs best`` column;
    all K(K-1)/2 pairs of fifteen variants would be 105 bootstraps per test set that the
    leaderboard does not show. Returns dicts with :data:`PAIR_KEYS`.
    """
    out = []
    for test_set in sorted({str(r["test_set"]) for r in rows}):
        best, *others = [str(r["variant"]) for r in sorted(
            (r for r in rows if str(r["test_set"]) == test_set), key=_auc_order)]
        for b in others:
            both = _aligned(scores(best, test_set), scores(b, test_set), f"{test_set}: {best} vs {b}")
            test = paired_auc_test(both["label_a"].to_numpy(), both["score_a"].to_numpy(),
                                   both["score_b"].to_numpy(), both["group_a"].to_numpy(),
                                   resamples, seed)
            out.append({"test_set": test_set, "a": best, "b": b,
                        **{k: test[k] for k in PAIR_KEYS[3:]}})
    return out


def _with_ci(row: dict, metric: str) -> str:
    value = _fmt(row.get(metric))
    lo, hi = row.get(f"{metric}_ci_low"), row.get(f"{metric}_ci_high")
    if metric not in CI_METRICS or lo is None or hi is None:
        return value
    return f"{value} ({lo:.3f}-{hi:.3f})"


def _vs_best(test_set: str, variant: str, best: str, pairs: dict) -> str:
    if variant == best:
        return "best"
    pair = pairs.get((test_set, best, variant))
    if pair is None or pair["diff"] is None:
        return "n/a"
    mark = "worse" if pair["significant"] else "not different"
    return f"{mark} (p {pair['p_value']:.3f})"


def _pair_table(pairs: list[dict]) -> list[str]:
    body = [[_cell(p["a"]), _cell(p["b"]), _fmt(p["diff"]),
             "n/a" if p["ci_low"] is None else f"{p['ci_low']:.3f} to {p['ci_high']:.3f}",
             _fmt(p["p_value"]), "yes" if p["significant"] else "no"] for p in pairs]
    return _table(["a", "b", "roc_auc a - b", "95% CI", "p", "significant"], body, numeric_from=2)


def _seed_section(rows: list[dict]) -> list[str]:
    chosen = sorted((r for r in rows if (r.get("n_seeds") or 1) > 1),
                    key=lambda r: (str(r["test_set"]), str(r["variant"])))
    if not chosen:
        return []
    header = ["test_set", "variant", "seeds"]
    for metric in SEED_COLUMNS:
        header += [f"{metric} mean", "std", "min", "max"]
    body = [[_cell(str(r["test_set"])), _cell(str(r["variant"])), str(r["n_seeds"])]
            + [_fmt(r.get(f"{m}_seed_{stat}")) for m in SEED_COLUMNS for stat in ("mean", "std", "min", "max")]
            for r in chosen]
    return ["", "## Spread over training seeds", "",
            "Each seed's model is scored with the threshold from its own validation scores; the "
            "tables above show the first seed (the primary model). std: sample standard deviation.",
            ""] + _table(header, body, numeric_from=2)


def _ours(rows: list[dict], variant: str, test_set: str) -> dict | None:
    """Our metrics row of ``variant`` on the test set named ``test_set``, if it ran there."""
    return next((r for r in rows if str(r["variant"]) == variant and str(r["test_set"]) == test_set), None)


def _published_section(rows: list[dict], published: list[dict]) -> list[str]:
    """The reports' numbers, each beside ours for the same variant and test-set name.

    A cell reads ``published / ours``; ``ours`` is ``-`` when this run has no test set of that
    name (the demo's test sets are not the reports'), and the ``weights`` column says whether our
    run started from ImageNet weights, as the report's did, or from scratch.
    """
    names = {k for p in published for k in _published_metrics(p)}
    columns = [k for k in _PUBLISHED_ORDER if k in names]
    columns += sorted(names - set(columns))
    entries = sorted(published, key=lambda p: tuple(str(p.get(k, "")) for k in
                                                     ("variant", "test_set", "report", "dataset")))
    body = []
    for p in entries:
        values = _published_metrics(p)
        ours = _ours(rows, str(p.get("variant", "")), str(p.get("test_set", "")))
        cells = []
        for c in columns:
            if c not in values:
                cells.append("")
            else:
                cells.append(f"{_fmt(values[c])} / {_fmt(ours.get(c)) if ours and c in ours else '-'}")
        weights = _fmt(ours.get("weights")) if ours else "-"
        body.append([_cell(str(p.get(k, ""))) for k in _PUBLISHED_ID] + [weights] + cells)
    return ["", f"## {PUBLISHED_TITLE}", "",
            "Anchors to compare against when running on the full data with a GPU; the demo data "
            "cannot reproduce them. Each cell: published / ours (this run, same variant, same test-set "
            "name; `-`: this run has no such test set). `weights`: what our run started from. Blank: "
            "not reported.", ""] + _table([*_PUBLISHED_ID, "weights (ours)", *columns], body,
                                          numeric_from=len(_PUBLISHED_ID) + 1)


def leaderboard_markdown(rows: list[dict], published: list[dict] | None = None,
                         pairs: list[dict] | None = None) -> str:
    """Markdown: one table per test set (sorted by name), variants by ROC-AUC descending.

    Each row names the weights its run started from (the metrics' ``weights``). Variants whose ROC-AUC is None (one class in the test set) come last; ties are broken by
    variant name. Accuracy, f1, roc_auc and eer show their 95% group-bootstrap interval in
    brackets. ``pairs`` (from :func:`paired_comparisons`) add a ``vs best`` column and a table of
    every paired ROC-AUC difference under each test set. Rows of variants trained under several
    seeds add a spread table. ``published`` entries (``variant``, ``report``, ``dataset``,
    ``test_set`` and either a ``metrics`` mapping or flat metric keys) follow in a separate
    table, sorted by variant, test set, report and dataset, each number beside ours for the same
    variant and test-set name (:func:`_published_section`); a blank cell means "not reported".
    """
    for i, row in enumerate(rows):
        for key in ("variant", "test_set"):
            if key not in row:
                raise ValueError(f"metrics row {i} has no {key!r}")
    lines = [
        "# Leaderboard",
        "",
        "Scores are P(fake); fake is the positive class. `threshold` was chosen on validation "
        "data; accuracy, precision, recall and f1 call a face fake when `score >= threshold`. "
        "`n/a`: undefined (one class only in the test set). In brackets: 95% percentile "
        "intervals from a bootstrap that resamples whole groups (scenes, videos, identities; "
        "`n_groups` of them), since faces of one group are not independent. `weights`: the run "
        "started from ImageNet weights (`imagenet`) or from a random initialisation (`scratch`).",
    ]
    if pairs is not None:
        lines += ["", "`vs best`: a paired group bootstrap of the ROC-AUC difference from the top "
                  "variant on the same faces; `not different` means its 95% interval contains 0, so "
                  "the ranking between the two is not supported by this test set."]
    by_pair = {(p["test_set"], p["a"], p["b"]): p for p in pairs or []}
    for test_set in sorted({str(r["test_set"]) for r in rows}):
        chosen = sorted((r for r in rows if str(r["test_set"]) == test_set), key=_auc_order)
        columns = list(TABLE_COLUMNS) + (["vs best"] if pairs is not None else [])
        body = []
        for r in chosen:
            cells = [_cell(str(r["variant"])), _fmt(r.get("weights"))] + [_with_ci(r, c) for c in TABLE_COLUMNS]
            if pairs is not None:
                cells.append(_vs_best(test_set, str(r["variant"]), str(chosen[0]["variant"]), by_pair))
            body.append(cells)
        lines += ["", f"## Test set `{test_set}`", ""]
        lines += _table(["variant", "weights", *columns], body, numeric_from=2)
        here = [p for p in pairs or [] if p["test_set"] == test_set]
        if here:
            lines += ["", "Paired ROC-AUC differences (same faces, same resampled groups):", ""]
            lines += _pair_table(here)
    if not rows:
        lines += ["", "No metrics yet."]
    lines += _seed_section(rows)

    if published:
        lines += _published_section(rows, published)
    return "\n".join(lines) + "\n"


def _fid_order(name: str, fid) -> tuple:
    missing = fid is None or (isinstance(fid, float) and math.isnan(fid))
    return (missing, 0.0 if missing else float(fid), name)


def _published_fid(published: list[dict], name: str) -> str:
    """``"<fid> (<report>, <dataset>)"`` for each published entry of ``name`` with a FID, ``; ``-joined,
    else ``-`` (the dataset tells a report's whole-image and face-crop runs apart)."""
    found = sorted((str(p.get("report", "")), _published_metrics(p)["fid"], str(p.get("dataset") or ""))
                   for p in published if str(p.get("variant", "")) == name and "fid" in _published_metrics(p))
    return "; ".join(f"{_fmt(fid)} ({_cell(report)}{', ' + _cell(ds) if ds and ds != name else ''})"
                     for report, fid, ds in found) or "-"


def _short_warning(warning: str) -> str:
    """fid.small_sample_warning cut to its first clause without the counts (they have a column)."""
    head = re.sub(r" \(real \d+, fake \d+\)", "", warning.split(":", 1)[0])
    return f"{head}: biased upward" if ":" in warning else head


def _gan_note(row: dict) -> str:
    parts = ["demo scale"] if row["scale"] == "demo" else []
    parts += [str(row["differs_from_paper"])] if row["differs_from_paper"] else []
    parts += [_short_warning(str(row["fid_warning"]))] if row["fid_warning"] else []
    return _cell("; ".join(parts))


def _check_keys(where: str, entry, keys: tuple[str, ...], fix: str) -> None:
    missing = [k for k in keys if not isinstance(entry, dict) or k not in entry]
    if missing:
        raise ValueError(f"{where}: missing keys {missing}; {fix}")


def gan_markdown(gan_rows: list[dict], reference: dict[str, dict], published: list[dict],
                 samples: dict[str, str]) -> list[str]:
    """Markdown lines of the ``## GANs: FID`` section.

    ``gan_rows``: one metrics/gan/variants/<variant>.json each (:data:`GAN_KEYS` at least), one table row per
    variant with the reports' FID for the same variant name beside ours. ``reference``:
    metrics/gan/fid_reference.json, ``{source: {fid, fid_n_real, fid_n_fake, ...}}`` with ``source``
    ``<dataset>`` or ``<dataset>/<generator>`` (the data's own fake faces against held-out real
    ones), beside published entries whose ``variant`` is that source. Both tables are sorted by
    FID ascending, None last, ties by name. ``samples``: variant -> its last sample grid, a path
    relative to the markdown file, shown in table order; a grid of a variant without a row is an
    error. The note column says ``demo scale``, the row's ``differs_from_paper`` and the
    small-sample warning shortened.
    """
    for i, row in enumerate(gan_rows):
        name = row.get("variant", "?") if isinstance(row, dict) else "?"
        _check_keys(f"GAN metrics row {i} ({name})", row, GAN_KEYS, f"re-run train_gan@{name}")
    for source, entry in reference.items():
        _check_keys(f"FID reference {source!r}", entry, REFERENCE_KEYS, "re-run the FID reference stage")
    rows = sorted(gan_rows, key=lambda r: _fid_order(str(r["variant"]), r["fid"]))
    names = [str(r["variant"]) for r in rows]
    stray = sorted(set(samples) - set(names))
    if stray:
        raise ValueError(f"GAN samples: {stray} have a sample grid but no GAN metrics row; "
                         f"pass the metrics/gan/variants JSON of every variant whose grid is shown")

    lines = [f"## {GAN_TITLE}", ""]
    if not rows:
        lines += ["No GAN metrics yet."]
    else:
        body = [[_cell(str(r["variant"])), _fmt(r["kind"]), _fmt(r["loss"]), _fmt(r["epochs"]), _fmt(r["fid"]),
                 f"{_fmt(r['fid_n_real'])} / {_fmt(r['fid_n_fake'])}", _published_fid(published, str(r["variant"])),
                 _gan_note(r)] for r in rows]
        lines += _table(["variant", "kind", "loss", "epochs", "FID (ours)", "n real / n fake",
                         "published FID (report)", "note"], body, numeric_from=3, numeric_to=7)
    if reference:
        order = sorted(reference, key=lambda k: _fid_order(k, reference[k]["fid"]))
        body = [[_cell(k), _fmt(reference[k]["fid"]),
                 f"{_fmt(reference[k]['fid_n_real'])} / {_fmt(reference[k]['fid_n_fake'])}",
                 _published_fid(published, k)] for k in order]
        lines += ["", "Reference: the data's own fake faces (`<dataset>` or `<dataset>/<generator>`) against "
                  "the same held-out real faces as the GANs.", ""]
        lines += _table(["source", "FID", "n real / n fake", "published FID (report)"], body, numeric_from=1)
    lines += ["", f"Published FIDs are the reports' figures on their full data. A FID from fewer than "
              f"{FID_MIN_SAMPLES} samples per set (the Inception features' dimension) is biased upward "
              f"and not comparable with them."]
    shown = [n for n in names if n in samples]
    if shown:
        lines += ["", "Last sample grid of each variant:", ""]
        lines += [f"![{_cell(n)}]({samples[n]})" for n in shown]
    return lines
