"""The whole graph end-to-end on tiny demo params, through `dvc repro` and through `snakemake`.

Each runner gets its own throw-away project (a copy of the pipeline files with tiny params, its
own git + DVC repo). Checks: every output exists, metrics have the fixed keys, both runners
produce identical data, editing one variant reruns only its stages, `dvc metrics diff` shows it.
"""

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest
import yaml

from deepfake_detection.evaluation.metrics import METRIC_KEYS
from tests.conftest import enable_trained_yolo

pytestmark = [pytest.mark.slow, pytest.mark.xdist_group("e2e")]

BIN = Path(sys.executable).parent
COPY = ["dvc.yaml", "Snakefile", "workflow", "stages", "deepfake_detection", "environment.yml"]


def tiny_params(params: dict) -> dict:
    params["sources"]["demo"]["options"].update(
        n_train=10, n_val=5, n_test_dev=4, n_test_challenge=4, image_size=128,
        faces_per_image=[2, 3], face_size=[28, 44], folder_size=48)
    params["faces"].update(size=32)
    # the folder copy through the YOLO trained in the graph (train_face_detector@yolo, faces_yolo@demo);
    # a 1-epoch YOLO is unsure of everything: keep its best guess so the detector path runs
    enable_trained_yolo(params, epochs=1, imgsz=64)
    params["faces"]["detector"].update(min_face=8)
    params["faces"]["detector"]["yolo"].update(confidence=0.001)
    params["prepare"].update(size=32)
    params["train"].update(epochs=2, batch_size=16, max_batches_per_epoch=2)
    params["variants"]["resnet18_scratch"]["train"]["augment"].update(resize=36, crop=32)
    return params


def run(cmd, cwd):
    env = {**os.environ, "PATH": f"{BIN}{os.pathsep}{os.environ['PATH']}", "DVC_NO_ANALYTICS": "1",
           "GIT_AUTHOR_NAME": "t", "GIT_AUTHOR_EMAIL": "t@t", "GIT_COMMITTER_NAME": "t",
           "GIT_COMMITTER_EMAIL": "t@t"}
    out = subprocess.run(cmd, cwd=cwd, env=env, capture_output=True, text=True, shell=True)
    assert out.returncode == 0, f"{cmd} failed:\n{out.stdout[-3000:]}\n{out.stderr[-6000:]}"
    return out.stdout


def make_project(root: Path, repo: Path, edit=None) -> Path:
    """A throw-away project with the pipeline files and tiny params (``edit`` changes them further)."""
    proj = root / "proj"
    proj.mkdir()
    for name in COPY:
        src = repo / name
        if src.is_dir():
            shutil.copytree(src, proj / name, ignore=shutil.ignore_patterns("__pycache__"))
        else:
            shutil.copy(src, proj / name)
    params = tiny_params(yaml.safe_load((repo / "params.yaml").read_text()))
    if edit is not None:
        params = edit(params)
    (proj / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))
    (proj / ".gitignore").write_text("/data/\n/logs/\n.snakemake/\n__pycache__/\n")
    run("git init -q && dvc init -q && git add -A && git commit -qm init", proj)
    return proj


@pytest.fixture(scope="module")
def dvc_project(tmp_path_factory, repo):
    proj = make_project(tmp_path_factory.mktemp("dvc"), repo)
    run("dvc repro", proj)
    return proj


@pytest.fixture(scope="module")
def smk_project(tmp_path_factory, repo):
    proj = make_project(tmp_path_factory.mktemp("smk"), repo)
    run("snakemake --cores 2", proj)
    return proj


def _params(proj):
    return yaml.safe_load((proj / "params.yaml").read_text())


def test_dvc_repro_builds_everything(dvc_project):
    p = _params(dvc_project)
    for v in p["variants"]:
        for t in p["evaluate"]["test_sets"]:
            m = json.loads((dvc_project / f"metrics/eval/{v}/{t}.json").read_text())
            assert set(METRIC_KEYS) <= set(m) and m["variant"] == v and m["test_set"] == t
            assert m["n"] == m["n_real"] + m["n_fake"] == m["tn"] + m["fp"] + m["fn"] + m["tp"] > 0
    board = (dvc_project / "metrics/leaderboard.md").read_text()
    assert all(v in board for v in p["variants"])
    faces = json.loads((dvc_project / "metrics/faces/demo.json").read_text())
    for ds, c in faces.items():
        assert c["inputs_kept"] + c["rejected"] == c["inputs_in"]
    # the demo's deliberate corrupt image and bad boxes are listed, not dropped
    rejects = pd.read_csv(dvc_project / "data/faces/demo/rejects.csv")
    assert {"unreadable", "box_outside"} <= set(rejects["reason"]) or {"unreadable", "zero_area"} <= set(rejects["reason"])
    manifest = pd.read_csv(dvc_project / "data/splits/manifest.csv", keep_default_na=False)
    assert manifest.groupby("group")["split"].nunique().max() == 1
    assert run("dvc status", dvc_project).strip().endswith("up to date.")


def test_snakemake_builds_the_same_data(dvc_project, smk_project):
    for rel in ["data/splits/manifest.csv", "metrics/faces/demo.json", "metrics/split.json"]:
        assert (smk_project / rel).read_bytes() == (dvc_project / rel).read_bytes(), rel
    p = _params(smk_project)
    for v in p["variants"]:
        for t in p["evaluate"]["test_sets"]:
            a = json.loads((smk_project / f"metrics/eval/{v}/{t}.json").read_text())
            b = json.loads((dvc_project / f"metrics/eval/{v}/{t}.json").read_text())
            assert a["n"] == b["n"] and a["n_fake"] == b["n_fake"]


def test_editing_one_variant_reruns_only_its_stages(dvc_project):
    run("git add -A && git commit -qm demo-run", dvc_project)
    p = _params(dvc_project)
    p["variants"]["custom_cnn"]["train"]["optimizer"]["lr"] = 0.003
    (dvc_project / "params.yaml").write_text(yaml.safe_dump(p, sort_keys=False))
    status = run("dvc status --json", dvc_project)
    changed = set(json.loads(status))
    expected = {"train@custom_cnn", "report"} | {f"evaluate@custom_cnn-{t}" for t in p["evaluate"]["test_sets"]}
    assert changed == expected
    out = run("dvc repro", dvc_project)
    assert "resnet18_scratch' didn't change" in out or "Stage 'train@resnet18_scratch' didn't change" in out
    assert "Running stage 'train@resnet18_scratch'" not in out
    diff = json.loads(run("dvc metrics diff --json", dvc_project))
    assert any("custom_cnn" in path for path in diff)
    assert not any("resnet18_scratch" in path for path in diff)
