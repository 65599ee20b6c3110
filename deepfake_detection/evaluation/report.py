"""The markdown leaderboard: our metrics per test set, then the reports' published numbers.

Input rows are the per-(variant, test set) metrics JSON files written by ``evaluate``; output is
one deterministic markdown document (no timestamps, no paths), so a diff in review shows only
changed numbers.
"""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Iterable

from deepfake_detection.evaluation.metrics import METRIC_KEYS

ROW_KEYS = ("variant", "test_set", *METRIC_KEYS)
TABLE_COLUMNS = ("n", "accuracy", "precision", "recall", "f1", "roc_auc", "pr_auc", "eer",
                 "log_loss", "threshold")
PUBLISHED_TITLE = "Published numbers (the reports' own, full data, GPU)"
_PUBLISHED_ID = ("variant", "report", "dataset", "test_set")
# Published metrics are shown in this order first; any other name (fid, ...) follows, sorted.
_PUBLISHED_ORDER = ("accuracy", "precision", "recall", "f1", "roc_auc", "pr_auc", "eer",
                    "log_loss", "fid")


def collect_metrics(paths: Iterable[str | Path]) -> list[dict]:
    """Read metrics JSON files (in the given order), checking each has every key of ROW_KEYS.

    Raises ValueError naming the file when it is not valid JSON, not an object, or lacks keys;
    a missing file raises FileNotFoundError.
    """
    rows = []
    for path in paths:
        path = Path(path)
        try:
            row = json.loads(path.read_text())
        except json.JSONDecodeError as err:
            raise ValueError(f"{path}: not valid JSON ({err})") from err
        if not isinstance(row, dict):
            raise ValueError(f"{path}: expected a JSON object, got {type(row).__name__}")
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


def _table(header: list[str], body: list[list[str]], numeric_from: int) -> list[str]:
    align = ["---" if i < numeric_from else "---:" for i in range(len(header))]
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


def leaderboard_markdown(rows: list[dict], published: list[dict] | None = None) -> str:
    """Markdown: one table per test set (sorted by name), variants by ROC-AUC descending.

    Variants whose ROC-AUC is None (one class in the test set) come last; ties are broken by
    variant name. ``published`` entries (``variant``, ``report``, ``dataset``, ``test_set``
    and either a ``metrics`` mapping or flat metric keys) follow in a separate table, sorted
    by variant, test set, report and dataset; a blank cell there means "not reported".
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
        "`n/a`: undefined (one class only in the test set).",
    ]
    for test_set in sorted({str(r["test_set"]) for r in rows}):
        chosen = sorted((r for r in rows if str(r["test_set"]) == test_set), key=_auc_order)
        body = [[_cell(str(r["variant"]))] + [_fmt(r.get(c)) for c in TABLE_COLUMNS]
                for r in chosen]
        lines += ["", f"## Test set `{test_set}`", ""]
        lines += _table(["variant", *TABLE_COLUMNS], body, numeric_from=1)
    if not rows:
        lines += ["", "No metrics yet."]

    if published:
        names = {k for p in published for k in _published_metrics(p)}
        columns = [k for k in _PUBLISHED_ORDER if k in names]
        columns += sorted(names - set(columns))
        entries = sorted(published, key=lambda p: tuple(str(p.get(k, "")) for k in
                                                         ("variant", "test_set", "report",
                                                          "dataset")))
        body = []
        for p in entries:
            values = _published_metrics(p)
            body.append([_cell(str(p.get(k, ""))) for k in _PUBLISHED_ID]
                        + [_fmt(values[c]) if c in values else "" for c in columns])
        lines += ["", f"## {PUBLISHED_TITLE}", "",
                  "Anchors to compare against when running on the full data; the demo data "
                  "cannot reproduce them. Blank: not reported.", ""]
        lines += _table([*_PUBLISHED_ID, *columns], body, numeric_from=len(_PUBLISHED_ID))
    return "\n".join(lines) + "\n"
