"""make verify: committed vs fresh metrics, exact for data stages, tolerances for model stages."""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path

import pytest
import yaml

from deepfake_detection import verify as V

TOL = {"*_ci_low": 0.2, "*roc_auc*": 0.05, "tp": 3}


def test_flatten_nests_keys_and_keeps_lists_whole():
    assert V.flatten({"a": {"b": 1, "c": {"d": [1, 2]}}, "e": None}) == {"a.b": 1, "a.c.d": [1, 2], "e": None}


def test_first_matching_glob_wins_on_leaf_or_full_key():
    assert V.tolerance_for("roc_auc_ci_low", TOL) == 0.2      # listed before *roc_auc*
    assert V.tolerance_for("val_roc_auc", TOL) == 0.05
    assert V.tolerance_for("splits.x.tp", TOL) == 3.0          # leaf match
    assert V.tolerance_for("n_real", TOL) is None


def test_compare_values_exact_and_tolerances():
    old = {"roc_auc": 0.80, "tp": 10, "n": 100, "variant": "a", "extra": 1}
    new = {"roc_auc": 0.849, "tp": 14, "n": 100, "variant": "b", "added": 2}
    rows = {r.key: r for r in V.compare_values("f.json", old, new, TOL)}
    assert rows["roc_auc"].ok and rows["roc_auc"].tolerance == 0.05
    assert rows["roc_auc"].diff == pytest.approx(0.049)
    assert not rows["tp"].ok                                    # 4 > 3
    assert rows["n"].ok and rows["n"].tolerance is None
    assert not rows["variant"].ok                               # strings are exact
    assert not rows["extra"].ok and rows["extra"].fresh == "<missing>"
    assert not rows["added"].ok and rows["added"].committed == "<missing>"
    exact = {r.key: r for r in V.compare_values("f.json", {"roc_auc": 0.8}, {"roc_auc": 0.8001}, None)}
    assert not exact["roc_auc"].ok                              # data stage: no tolerance at all


def test_nan_equals_nan_and_ints_equal_floats():
    rows = V.compare_values("f", {"a": float("nan"), "b": 3}, {"a": float("nan"), "b": 3.0}, None)
    assert all(r.ok for r in rows)


def _lock(split_md5: str) -> dict:
    return {"schema": "2.0", "stages": {
        "faces@demo": {"cmd": "x", "outs": [
            {"path": "data/faces/demo/images", "hash": "md5", "md5": "aaa.dir"},
            {"path": "metrics/faces/demo.json", "hash": "md5", "md5": "m1"}]},
        "split": {"cmd": "y", "outs": [{"path": "data/splits/manifest.csv", "hash": "md5", "md5": split_md5},
                                       {"path": "metrics/split.json", "hash": "md5", "md5": "m2"}]},
        "evaluate@v": {"cmd": "z", "outs": [
            {"path": "data/eval/v", "hash": "md5", "md5": "d3.dir", "size": 9, "nfiles": 1},
            {"path": "metrics/eval/v", "hash": "md5", "md5": "m3.dir", "size": 9, "nfiles": 1},
            {"path": "metrics/roc/v", "hash": "md5", "md5": "r3.dir", "size": 9, "nfiles": 1}]},
    }}


@pytest.fixture()
def committed(tmp_path, repo):
    """A git repo with params.yaml, dvc.lock and three committed metrics files."""
    root = tmp_path / "r"
    root.mkdir()
    params = yaml.safe_load((repo / "params.yaml").read_text())
    params["verify"] = {"data_stages": ["download", "faces", "split", "prepare"], "tolerances": TOL}
    (root / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))
    (root / "dvc.lock").write_text(yaml.safe_dump(_lock("s1")))
    files = {"metrics/faces/demo.json": {"demo": {"kept": 10, "rejected": 2}},
             "metrics/split.json": {"dedup": {"recall": 0.97}},
             "metrics/eval/v/t.json": {"roc_auc": 0.8, "tp": 10, "n": 50}}
    for path, data in files.items():
        (root / path).parent.mkdir(parents=True, exist_ok=True)
        (root / path).write_text(json.dumps(data))
    (root / "metrics/roc/v").mkdir(parents=True)
    (root / "metrics/roc/v/t.csv").write_text("fpr,tpr\n0.0,1.0\n")   # a plot, not a metric
    git = ["git", "-c", "user.name=t", "-c", "user.email=t@t"]
    subprocess.run(["git", "init", "-q"], cwd=root, check=True)
    subprocess.run(git + ["add", "."], cwd=root, check=True)
    subprocess.run(git + ["commit", "-qm", "c"], cwd=root, check=True)
    return root


def _write(root: Path, path: str, data: dict) -> None:
    (root / path).write_text(json.dumps(data))


def test_verify_passes_within_tolerance(committed):
    _write(committed, "metrics/eval/v/t.json", {"roc_auc": 0.84, "tp": 12, "n": 50})
    rows = V.verify(committed, "HEAD", committed / "params.yaml")
    assert all(r.ok for r in rows)
    assert sum(r.committed != r.fresh for r in rows) == 2
    table = V.render(rows)
    assert "| metrics/eval/v/t.json | roc_auc | 0.8 | 0.84 | +0.04 | 0.05 | yes |" in table
    assert table.endswith("0 outside tolerance")


def test_verify_fails_on_model_drift_beyond_tolerance(committed):
    _write(committed, "metrics/eval/v/t.json", {"roc_auc": 0.7, "tp": 10, "n": 50})
    bad = [r for r in V.verify(committed, "HEAD", committed / "params.yaml") if not r.ok]
    assert [(r.file, r.key) for r in bad] == [("metrics/eval/v/t.json", "roc_auc")]


def test_verify_data_stage_metrics_and_hashes_are_exact(committed):
    _write(committed, "metrics/split.json", {"dedup": {"recall": 0.9700001}})
    (committed / "dvc.lock").write_text(yaml.safe_dump(_lock("s2")))
    bad = [(r.file, r.key) for r in V.verify(committed, "HEAD", committed / "params.yaml") if not r.ok]
    assert bad == [("dvc.lock", "split:data/splits/manifest.csv"), ("metrics/split.json", "dedup.recall")]


def test_verify_fails_on_missing_or_uncommitted_metrics_file(committed):
    (committed / "metrics/eval/v/t.json").unlink()                  # a test set no longer scored
    _write(committed, "metrics/eval/v/u.json", {"roc_auc": 0.5})    # a new one, not committed
    bad = {(r.file, r.committed, r.fresh) for r in V.verify(committed, "HEAD", committed / "params.yaml")
           if not r.ok}
    assert bad == {("metrics/eval/v/t.json", "committed", "<missing>"),
                   ("metrics/eval/v/u.json", "<missing>", "produced")}


def test_metric_files_expand_directory_outs_to_their_json_files(committed):
    lock = _lock("s1")
    assert V.metric_files(lock) == {"metrics/faces/demo.json": "faces", "metrics/split.json": "split"}
    listed = V.metric_files(lock, lambda folder: V.git_files("HEAD", folder, committed))
    assert listed == {"metrics/faces/demo.json": "faces", "metrics/split.json": "split",
                      "metrics/eval/v/t.json": "evaluate"}
    assert V.workspace_files(committed, "metrics/roc/v") == ["metrics/roc/v/t.csv"]
    assert V.workspace_files(committed, "metrics/none") == []


def test_stages_no_longer_defined_are_not_compared(committed):
    (committed / "metrics/eval/v/t.json").unlink()       # evaluate@v was removed from dvc.yaml
    stages = {"faces@demo", "split"}
    assert all(r.ok for r in V.verify(committed, "HEAD", committed / "params.yaml", stages))
    assert V.only_stages({"stages": {"a": 1, "b": 2}}, {"b"}) == {"stages": {"b": 2}}


def test_main_exit_code_and_table(committed, monkeypatch, capsys):
    monkeypatch.chdir(committed)
    monkeypatch.setattr(V, "current_stages", lambda root: None)
    assert V.main([]) == 0
    _write(committed, "metrics/faces/demo.json", {"demo": {"kept": 11, "rejected": 2}})
    assert V.main([]) == 1
    out = capsys.readouterr().out
    assert "| metrics/faces/demo.json | demo.kept | 10 | 11 | +1 | exact | NO |" in out


def test_no_committed_lock_is_a_one_line_error(tmp_path, repo):
    shutil.copy(repo / "params.yaml", tmp_path / "params.yaml")
    subprocess.run(["git", "init", "-q"], cwd=tmp_path, check=True)
    with pytest.raises(SystemExit, match="no dvc.lock committed at HEAD"):
        V.verify(tmp_path, "HEAD", tmp_path / "params.yaml")


def _one_evaluate_lock() -> dict:
    """dvc.lock with one ``evaluate`` stage for every variant (folder outs hold <variant>/<test_set>)."""
    lock = _lock("s1")
    del lock["stages"]["evaluate@v"]
    lock["stages"]["evaluate"] = {"cmd": "z", "outs": [
        {"path": p, "hash": "md5", "md5": f"{i}.dir", "size": 9, "nfiles": 2}
        for i, p in enumerate(("data/eval", "metrics/eval", "metrics/roc"))]}
    return lock


def test_one_evaluate_stage_for_every_variant_compares_each_variants_files(committed):
    (committed / "dvc.lock").write_text(yaml.safe_dump(_one_evaluate_lock()))
    stages = {"faces@demo", "split", "evaluate"}
    # the committed lock still has evaluate@v (the old layout): the new stage's files are compared anyway
    _write(committed, "metrics/eval/v/t.json", {"roc_auc": 0.7, "tp": 10, "n": 50})
    bad = [(r.file, r.key) for r in V.verify(committed, "HEAD", committed / "params.yaml", stages) if not r.ok]
    assert bad == [("metrics/eval/v/t.json", "roc_auc")]
    assert V.metric_files(_one_evaluate_lock(), lambda folder: V.workspace_files(committed, folder)) == {
        "metrics/faces/demo.json": "faces", "metrics/split.json": "split", "metrics/eval/v/t.json": "evaluate"}
    # committed in the new layout: a removed variant's file and a new variant's file are both failures
    _write(committed, "metrics/eval/v/t.json", {"roc_auc": 0.8, "tp": 10, "n": 50})
    git = ["git", "-c", "user.name=t", "-c", "user.email=t@t"]
    subprocess.run(git + ["commit", "-qam", "one evaluate stage"], cwd=committed, check=True)
    assert all(r.ok for r in V.verify(committed, "HEAD", committed / "params.yaml", stages))
    shutil.rmtree(committed / "metrics/eval/v")
    (committed / "metrics/eval/w").mkdir()
    _write(committed, "metrics/eval/w/t.json", {"roc_auc": 0.8})
    bad = {(r.file, r.committed, r.fresh) for r in V.verify(committed, "HEAD", committed / "params.yaml", stages)
           if not r.ok}
    assert bad == {("metrics/eval/v/t.json", "committed", "<missing>"),
                   ("metrics/eval/w/t.json", "<missing>", "produced")}
