"""The markdown leaderboard and the metrics JSON reader."""

from __future__ import annotations

import json

import pytest

from deepfake_detection.evaluation.metrics import binary_metrics
from deepfake_detection.evaluation.report import (
    PUBLISHED_TITLE,
    ROW_KEYS,
    collect_metrics,
    leaderboard_markdown,
)


def _row(variant, test_set, y, s):
    return {"variant": variant, "test_set": test_set, **binary_metrics(y, s, 0.5)}


Y = [0, 0, 1, 1]
WEAK = _row("weak", "test", Y, [0.1, 0.6, 0.4, 0.8])        # roc_auc 0.75
STRONG = _row("strong", "test", Y, [0.1, 0.2, 0.7, 0.9])    # roc_auc 1.0
ONE_CLASS = _row("oneclass", "test", [1, 1, 1, 1], [0.1, 0.6, 0.4, 0.8])   # roc_auc None
OTHER = _row("weak", "test_challenge", Y, [0.1, 0.6, 0.4, 0.8])
PUBLISHED = [
    {"variant": "strong", "report": "000 V1", "dataset": "deepfake_and_real_images",
     "test_set": "test", "metrics": {"accuracy": 0.8504, "f1": 0.8358, "roc_auc": 0.946}},
    {"variant": "gan", "report": "002", "dataset": "deepfakeface", "test_set": "test",
     "fid": 207.95},
]


def _table_rows(md: str, heading: str) -> list[str]:
    section = md.split(heading, 1)[1].split("\n## ", 1)[0]
    return [line for line in section.splitlines() if line.startswith("| ")][2:]


def test_sorted_by_roc_auc_none_last_one_table_per_test_set():
    md = leaderboard_markdown([ONE_CLASS, WEAK, OTHER, STRONG])
    assert md.index("## Test set `test`") < md.index("## Test set `test_challenge`")
    header = ("| variant | n | accuracy | precision | recall | f1 | roc_auc | pr_auc | eer "
              "| log_loss | threshold |")
    assert md.count(header) == 2
    rows = _table_rows(md, "## Test set `test`\n")
    assert [r.split(" | ")[0] for r in rows] == ["| strong", "| weak", "| oneclass"]
    assert rows[0] == ("| strong | 4 | 1.0000 | 1.0000 | 1.0000 | 1.0000 | 1.0000 | 1.0000 "
                       "| 0.0000 | 0.1976 | 0.5000 |")
    # log_loss above: -(ln .9 + ln .8 + ln .7 + ln .9) / 4 = 0.1976
    assert "| n/a | n/a | n/a |" in rows[2]
    assert len(_table_rows(md, "## Test set `test_challenge`\n")) == 1
    assert PUBLISHED_TITLE not in md


def test_published_section_and_determinism():
    md = leaderboard_markdown([WEAK, STRONG], PUBLISHED)
    assert f"## {PUBLISHED_TITLE}" in md
    assert ("| variant | report | dataset | test_set | accuracy | f1 | roc_auc | fid |"
            in md)
    rows = _table_rows(md, PUBLISHED_TITLE)
    assert rows == [
        "| gan | 002 | deepfakeface | test |  |  |  | 207.9500 |",
        "| strong | 000 V1 | deepfake_and_real_images | test | 0.8504 | 0.8358 | 0.9460 |  |",
    ]
    assert md == leaderboard_markdown([STRONG, WEAK], PUBLISHED[::-1])
    assert md.endswith("\n") and not md.endswith("\n\n")


def test_collect_metrics_reads_and_names_bad_files(tmp_path):
    good = tmp_path / "good.json"
    good.write_text(json.dumps(STRONG))
    assert collect_metrics([good]) == [STRONG]
    assert set(ROW_KEYS) <= set(STRONG)

    broken = tmp_path / "broken.json"
    broken.write_text("{not json")
    with pytest.raises(ValueError, match="broken.json.*not valid JSON"):
        collect_metrics([good, broken])

    partial = tmp_path / "partial.json"
    partial.write_text(json.dumps({k: v for k, v in STRONG.items() if k != "roc_auc"}))
    with pytest.raises(ValueError, match=r"partial.json.*missing.*roc_auc"):
        collect_metrics([partial])

    listed = tmp_path / "list.json"
    listed.write_text("[1, 2]")
    with pytest.raises(ValueError, match="list.json.*object"):
        collect_metrics([listed])
