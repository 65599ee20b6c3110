"""The markdown leaderboard and the metrics JSON reader."""

from __future__ import annotations

import json

import pytest

import pandas as pd

from deepfake_detection.evaluation.bootstrap import bootstrap_intervals, paired_auc_test
from deepfake_detection.evaluation.metrics import binary_metrics
from deepfake_detection.evaluation.report import (
    PUBLISHED_TITLE,
    ROW_KEYS,
    collect_metrics,
    gan_markdown,
    leaderboard_markdown,
    paired_comparisons,
    read_scores,
)


def _row(variant, test_set, y, s, weights="scratch"):
    # One group per face: a perfectly separated set has every interval collapsed on its value.
    return {"variant": variant, "test_set": test_set, "weights": weights, **binary_metrics(y, s, 0.5),
            **bootstrap_intervals(y, s, list(range(len(y))), 0.5, resamples=100, seed=0)}


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
    header = ("| variant | weights | n | n_groups | accuracy | precision | recall | f1 | roc_auc | pr_auc | eer "
              "| log_loss | threshold |")
    assert md.count(header) == 2
    rows = _table_rows(md, "## Test set `test`\n")
    assert [r.split(" | ")[0] for r in rows] == ["| strong", "| weak", "| oneclass"]
    assert rows[0] == ("| strong | scratch | 4 | 4 | 1.0000 (1.000-1.000) | 1.0000 | 1.0000 | 1.0000 (1.000-1.000) "
                       "| 1.0000 (1.000-1.000) | 1.0000 | 0.0000 (0.000-0.000) | 0.1976 | 0.5000 |")
    # log_loss above: -(ln .9 + ln .8 + ln .7 + ln .9) / 4 = 0.1976
    assert "| n/a | n/a | n/a |" in rows[2]
    assert "vs best" not in md and "Spread over training seeds" not in md
    assert len(_table_rows(md, "## Test set `test_challenge`\n")) == 1
    assert PUBLISHED_TITLE not in md


def test_published_section_and_determinism():
    md = leaderboard_markdown([WEAK, STRONG], PUBLISHED)
    assert f"## {PUBLISHED_TITLE}" in md
    assert ("| variant | report | dataset | test_set | weights (ours) | accuracy | f1 | roc_auc | fid |"
            in md)
    rows = _table_rows(md, PUBLISHED_TITLE)
    # published / ours: `strong` ran on a test set named `test` (accuracy, f1, roc_auc all 1.0);
    # no run of `gan`, and we compute no fid for a classifier row: `-`
    assert rows == [
        "| gan | 002 | deepfakeface | test | - |  |  |  | 207.9500 / - |",
        "| strong | 000 V1 | deepfake_and_real_images | test | scratch | 0.8504 / 1.0000 | 0.8358 / 1.0000 "
        "| 0.9460 / 1.0000 |  |",
    ]
    assert md == leaderboard_markdown([STRONG, WEAK], PUBLISHED[::-1])
    assert md.endswith("\n") and not md.endswith("\n\n")


def test_every_row_says_which_weights_its_run_started_from():
    transfer = _row("transfer", "test", Y, [0.1, 0.2, 0.7, 0.9], weights="imagenet")
    md = leaderboard_markdown([WEAK, transfer, dict(OTHER, weights="imagenet")], PUBLISHED)
    assert [r.split(" | ")[:2] for r in _table_rows(md, "## Test set `test`\n")] == \
        [["| transfer", "imagenet"], ["| weak", "scratch"]]
    assert [r.split(" | ")[:2] for r in _table_rows(md, "## Test set `test_challenge`\n")] == \
        [["| weak", "imagenet"]]
    assert "`weights`: the run started from ImageNet weights (`imagenet`) or from a random initialisation " \
           "(`scratch`)" in md
    # the published numbers stay apart, marked as the reports' own full-data GPU figures
    assert PUBLISHED_TITLE == "Published numbers (the reports' own, full data, GPU)"
    assert md.split(PUBLISHED_TITLE, 1)[1].splitlines()[4] == \
        "| variant | report | dataset | test_set | weights (ours) | accuracy | f1 | roc_auc | fid |"


def test_published_numbers_sit_beside_ours_only_on_a_test_set_of_the_same_name():
    published = [{"variant": "weak", "report": "003", "dataset": "openforensics", "test_set": "test_challenge",
                  "metrics": {"accuracy": 0.8278, "recall": 0.8014}},
                 {"variant": "weak", "report": "003", "dataset": "openforensics", "test_set": "test_dev",
                  "metrics": {"accuracy": 0.9716}}]
    md = leaderboard_markdown([WEAK, dict(OTHER, weights="imagenet")], published)
    # OTHER is `weak` on test_challenge: accuracy at 0.5 is 2/4, recall 1/2; no test_dev run
    assert _table_rows(md, PUBLISHED_TITLE) == [
        "| weak | 003 | openforensics | test_challenge | imagenet | 0.8278 / 0.5000 | 0.8014 / 0.5000 |",
        "| weak | 003 | openforensics | test_dev | - | 0.9716 / - |  |"]


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
    unweighted = tmp_path / "unweighted.json"          # written before evaluate recorded the weights
    unweighted.write_text(json.dumps({k: v for k, v in STRONG.items() if k != "weights"}))
    with pytest.raises(ValueError, match=r"unweighted.json: missing metrics keys \['weights'\]"):
        collect_metrics([unweighted])

    listed = tmp_path / "list.json"
    listed.write_text("[1, 2]")
    with pytest.raises(ValueError, match="list.json.*object"):
        collect_metrics([listed])


def _scores(y, s, groups=("g1", "g1", "g2", "g2")):
    return pd.DataFrame({"face_id": ["a", "b", "c", "d"], "group": list(groups), "label": y, "score": s})


def test_paired_comparisons_pit_the_best_against_each_other_variant_only():
    third = _row("third", "test", Y, [0.5, 0.6, 0.4, 0.7])          # roc_auc 0.5: ranks last
    scores = {"weak": _scores(Y, [0.1, 0.6, 0.4, 0.8]), "strong": _scores(Y, [0.1, 0.2, 0.7, 0.9]),
              "third": _scores(Y, [0.5, 0.6, 0.4, 0.7])}
    pairs = paired_comparisons([third, WEAK, STRONG], lambda v, t: scores[v], resamples=20, seed=0)
    assert [(p["a"], p["b"]) for p in pairs] == [("strong", "weak"), ("strong", "third")]   # no weak vs third
    assert [p["diff"] for p in pairs] == [0.25, 0.5]


def test_paired_comparisons_follow_the_ranking_and_mark_vs_best():
    scores = {"weak": _scores(Y, [0.1, 0.6, 0.4, 0.8]), "strong": _scores(Y, [0.1, 0.2, 0.7, 0.9])}
    pairs = paired_comparisons([WEAK, STRONG], lambda v, t: scores[v].sample(frac=1, random_state=1),
                               resamples=50, seed=0)
    expected = paired_auc_test(Y, [0.1, 0.2, 0.7, 0.9], [0.1, 0.6, 0.4, 0.8], ["g1", "g1", "g2", "g2"], 50, 0)
    assert pairs == [{"test_set": "test", "a": "strong", "b": "weak",
                      **{k: expected[k] for k in ("diff", "ci_low", "ci_high", "p_value", "significant")}}]
    assert pairs[0]["diff"] == 0.25
    hand = [{"test_set": "test", "a": "strong", "b": "weak", "diff": 0.25, "ci_low": -0.1, "ci_high": 0.5,
             "p_value": 0.4, "significant": False},
            {"test_set": "test", "a": "strong", "b": "oneclass", "diff": None, "ci_low": None,
             "ci_high": None, "p_value": None, "significant": False}]
    md = leaderboard_markdown([WEAK, STRONG, ONE_CLASS], pairs=hand)
    rows = _table_rows(md, "## Test set `test`\n")[:3]
    assert [r.rsplit(" | ", 1)[1] for r in rows] == ["best |", "not different (p 0.400) |", "n/a |"]
    assert _table_rows(md, "Paired ROC-AUC differences")[:2] == [
        "| strong | weak | 0.2500 | -0.100 to 0.500 | 0.4000 | no |",
        "| strong | oneclass | n/a | n/a | n/a | no |"]
    significant = [dict(hand[0], ci_low=0.05, p_value=0.01, significant=True)]
    assert "| worse (p 0.010) |" in leaderboard_markdown([WEAK, STRONG], pairs=significant)


def test_vs_best_reads_each_test_sets_own_pair():
    other = [dict(r, test_set="other") for r in (WEAK, STRONG)]
    pairs = [{"test_set": "test", "a": "strong", "b": "weak", "diff": 0.25, "ci_low": -0.1, "ci_high": 0.5,
              "p_value": 0.4, "significant": False},
             {"test_set": "other", "a": "strong", "b": "weak", "diff": 0.25, "ci_low": 0.1, "ci_high": 0.4,
              "p_value": 0.002, "significant": True}]
    md = leaderboard_markdown([WEAK, STRONG, *other], pairs=pairs)
    assert _table_rows(md, "## Test set `test`\n")[1].endswith("| not different (p 0.400) |")
    assert _table_rows(md, "## Test set `other`\n")[1].endswith("| worse (p 0.002) |")


def test_paired_comparisons_refuse_mismatched_faces(tmp_path):
    scores = {"weak": _scores(Y, [0.1, 0.6, 0.4, 0.8]), "strong": _scores(Y, [0.1, 0.2, 0.7, 0.9]).iloc[:3]}
    with pytest.raises(ValueError, match="test: strong vs weak: the two variants were scored on different faces"):
        paired_comparisons([WEAK, STRONG], lambda v, t: scores[v], 10, 0)
    regrouped = {"weak": _scores(Y, [0.1, 0.6, 0.4, 0.8], groups=("g1", "g2", "g2", "g2")),
                 "strong": scores["weak"]}
    with pytest.raises(ValueError, match="different labels or groups"):
        paired_comparisons([WEAK, STRONG], lambda v, t: regrouped[v], 10, 0)
    old = tmp_path / "old_scores.csv"
    old.write_text("face_id,label,score\na,0,0.1\n")
    with pytest.raises(ValueError, match=r"old_scores.csv: missing columns \['group'\]"):
        read_scores(old)
    good = tmp_path / "scores.csv"
    _scores(Y, [0.1, 0.6, 0.4, 0.8], groups=("007", "007", "8", "8")).to_csv(good, index=False)
    assert read_scores(good)["group"].tolist() == ["007", "007", "8", "8"]   # names kept as text


def test_seed_spread_section():
    spread = {"n_seeds": 3, "roc_auc_seed_mean": 0.9, "roc_auc_seed_std": 0.1, "roc_auc_seed_min": 0.8,
              "roc_auc_seed_max": 1.0, "accuracy_seed_mean": 0.75, "accuracy_seed_std": 0.05,
              "accuracy_seed_min": 0.7, "accuracy_seed_max": 0.8, "eer_seed_mean": 0.1,
              "eer_seed_std": 0.0, "eer_seed_min": 0.1, "eer_seed_max": 0.1}
    md = leaderboard_markdown([{**STRONG, **spread}, {**WEAK, "n_seeds": 1}])
    assert _table_rows(md, "## Spread over training seeds") == [
        "| test | strong | 3 | 0.9000 | 0.1000 | 0.8000 | 1.0000 | 0.7500 | 0.0500 | 0.7000 | 0.8000 "
        "| 0.1000 | 0.0000 | 0.1000 | 0.1000 |"]


# ------------------------------------------------------------------ the GAN section

WARN_8 = ("only 8 samples (real 8, fake 9) for 2048-d features: the covariance has rank <= 7 and is singular, "
          "so this FID is biased upward and not comparable with FIDs from >= 2048 (usually 10k-50k) samples")
GAN_DEMO = {"variant": "dcgan_baseline", "kind": "generative", "generator": "dcgan64", "discriminator": "dcgan64",
            "loss": "bce", "epochs": 5, "scale": "demo", "differs_from_paper": "64 px, not 224", "n_train": 40,
            "d_loss": 1.25, "g_loss": 0.75, "g_grad_last": 0.01, "fid": 312.5, "fid_n_real": 8, "fid_n_fake": 9,
            "fid_warning": WARN_8, "fid_method": "gram"}
GAN_PAPER = dict(GAN_DEMO, variant="wgan|gp", loss="wgan_gp", epochs=100, scale="paper", differs_from_paper="",
                 fid=98.0, fid_n_real=3000, fid_n_fake=2500, fid_warning="", fid_method="pytorch_fid")
REFERENCE = {"deepfakeface/insight": {"fid": 150.25, "fid_n_real": 20, "fid_n_fake": 20, "fid_warning": WARN_8,
                                      "fid_method": "gram"}}
GAN_PUBLISHED = [
    {"variant": "dcgan_baseline", "report": "002", "dataset": "deepfakeface", "test_set": "test",
     "metrics": {"fid": 207.95}},
    {"variant": "deepfakeface/insight", "report": "002", "metrics": {"fid": 131.99}},
    {"variant": "dcgan_baseline", "report": "002", "dataset": "deepfakeface", "test_set": "test",
     "metrics": {"accuracy": 0.9}},                                   # no fid: not a FID cell
]


def test_gan_section_exact_lines():
    lines = gan_markdown([GAN_DEMO, GAN_PAPER], REFERENCE, GAN_PUBLISHED,
                         {"dcgan_baseline": "gan_samples/dcgan_baseline.jpg", "wgan|gp": "gan_samples/wgan.jpg"})
    assert lines == [
        "## GANs: FID",
        "",
        "| variant | kind | loss | epochs | FID (ours) | n real / n fake | published FID (report) | note |",
        "| --- | --- | --- | ---: | ---: | ---: | ---: | --- |",
        # FID ascending: 98.0 first; the paper-scale run has >= 2048 samples and no note
        "| wgan\\|gp | generative | wgan_gp | 100 | 98.0000 | 3000 / 2500 | - |  |",
        "| dcgan_baseline | generative | bce | 5 | 312.5000 | 8 / 9 | 207.9500 (002, deepfakeface) "
        "| demo scale; 64 px, not 224; only 8 samples for 2048-d features: biased upward |",
        "",
        "Reference: the data's own fake faces (`<dataset>` or `<dataset>/<generator>`) against the same "
        "held-out real faces as the GANs.",
        "",
        "| source | FID | n real / n fake | published FID (report) |",
        "| --- | ---: | ---: | ---: |",
        "| deepfakeface/insight | 150.2500 | 20 / 20 | 131.9900 (002) |",
        "",
        "Published FIDs are the reports' figures on their full data. A FID from fewer than 2048 samples per set "
        "(the Inception features' dimension) is biased upward and not comparable with them.",
        "",
        "Last sample grid of each variant:",
        "",
        "![wgan\\|gp](gan_samples/wgan.jpg)",
        "![dcgan_baseline](gan_samples/dcgan_baseline.jpg)",
    ]


def test_gan_section_none_fid_last_and_nothing_optional():
    unscored = dict(GAN_PAPER, variant="a_unscored", fid=None)
    lines = gan_markdown([unscored, GAN_DEMO], {}, [], {})
    rows = [line for line in lines if line.startswith("| ")][2:]
    assert [r.split(" | ")[0] for r in rows] == ["| dcgan_baseline", "| a_unscored"]
    assert rows[1] == "| a_unscored | generative | wgan_gp | 100 | n/a | 3000 / 2500 | - |  |"
    assert "Reference:" not in "\n".join(lines) and not any(line.startswith("![") for line in lines)
    assert gan_markdown([], {}, [], {})[:3] == ["## GANs: FID", "", "No GAN metrics yet."]


def test_gan_section_names_bad_input():
    with pytest.raises(ValueError, match=r"GAN metrics row 0 \(dcgan_baseline\): missing keys \['fid_warning'\]"):
        gan_markdown([{k: v for k, v in GAN_DEMO.items() if k != "fid_warning"}], {}, [], {})
    with pytest.raises(ValueError, match=r"FID reference 'deepfakeface': missing keys \['fid_n_fake'\]"):
        gan_markdown([GAN_DEMO], {"deepfakeface": {"fid": 1.0, "fid_n_real": 3}}, [], {})
    with pytest.raises(ValueError, match=r"GAN samples: \['ghost'\] have a sample grid but no GAN metrics row"):
        gan_markdown([GAN_DEMO], {}, [], {"ghost": "gan_samples/ghost.jpg"})
