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

from deepfake_detection.data.split import leaking_groups
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
    params["prepare"]["sizes"] = [32]
    # three of the fifteen variants keep the graph small (every builder has its own tests):
    # two softmax heads, and keras_cnn5 for the one-logit BCE head, L2 and the float augment path
    params["variants"] = {k: params["variants"][k] for k in ("resnet18_scratch", "custom_cnn", "keras_cnn5")}
    for variant in params["variants"].values():
        variant["prepared_size"] = 32
    params["train"].update(epochs=2, batch_size=16, max_batches_per_epoch=2)
    for variant in params["variants"].values():
        variant["train"].update(epochs=2, batch_size=16)
    params["variants"]["resnet18_scratch"]["train"]["augment"].update(resize=36, crop=32, eval_resize=32)
    # two GAN variants at 32 px (the dcgan64 nets of seed 002 are 64-px only; their steps are tested
    # in test_gan_train): a generative one (FID) and the anomaly detector (scored by evaluate)
    params["gan"].update(prepared_size=32, fid={"n_real": 8, "n_fake": 8, "n_reference": 8, "batch_size": 8})
    small = {"generator": {"builder": "dcgan224_generator", "kwargs": {"width": 8, "size": 32}},
             "discriminator": {"builder": "dcgan224_discriminator", "kwargs": {"width": 8, "size": 32}},
             "prepared_size": 32, "epochs": 2, "batch_size": 8, "max_batches_per_epoch": 2}
    params["gan_variants"] = {"dcgan_label_smoothing": {**params["gan_variants"]["dcgan_label_smoothing"], **small},
                              "dcgan224_anomaly": {**params["gan_variants"]["dcgan224_anomaly"], **small}}
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


# The tiny demo is deterministic: these are its exact counts (the COCO set: 62 annotated faces, of
# which one corrupt image holds 3 and two boxes are broken on purpose; 46 folder copies).
FACES = {"demo_openforensics": (62, 57, 5, {"box_outside": 1, "unreadable": 3, "zero_area": 1}),
         "demo_deepfake_and_real_images": (46, 46, 0, {})}
SPLITS = {"demo_deepfake_and_real_images": {"test": 11, "train": 22, "val": 13},
          "demo_openforensics": {"test_challenge": 11, "test_dev": 11, "train": 22, "val": 13}}
# 128-px scenes with 28-44 px faces and 48-px folder copies are harder than the default demo's
# (recall 0.976 there); no false link either way.
KNOWN = {"known_pairs": 46, "true_links": 34, "false_links": 0, "precision": 1.0, "recall": 0.7391}
TEST_N = {"test_dev": 11, "test_challenge": 11, "folders_test": 11}


def test_dvc_repro_builds_everything(dvc_project):
    p = _params(dvc_project)
    faces = json.loads((dvc_project / "metrics/faces/demo.json").read_text())
    assert {ds: (c["inputs_in"], c["kept"], c["rejected"], c["rejected_by_reason"])
            for ds, c in faces.items()} == FACES
    rejects = pd.read_csv(dvc_project / "data/faces/demo/rejects.csv")
    assert rejects.groupby("reason").size().to_dict() == {"box_outside": 1, "unreadable": 3, "zero_area": 1}
    split = json.loads((dvc_project / "metrics/split.json").read_text())
    assert {ds: {s: v["n"] for s, v in parts.items()} for ds, parts in split["splits"].items()} == SPLITS
    known = split["dedup"]["known_pairs"]
    assert {k: known[k] for k in KNOWN} == KNOWN
    for v in p["variants"]:
        for t in p["evaluate"]["test_sets"]:
            m = json.loads((dvc_project / f"metrics/eval/{v}/{t}.json").read_text())
            assert set(METRIC_KEYS) <= set(m) and m["variant"] == v and m["test_set"] == t
            assert m["n"] == m["n_real"] + m["n_fake"] == m["tn"] + m["fp"] + m["fn"] + m["tp"] == TEST_N[t]
            assert m["roc_auc_ci_low"] <= m["roc_auc"] <= m["roc_auc_ci_high"]
        assert sorted(f.name for f in (dvc_project / f"metrics/roc/{v}").iterdir()) == \
            sorted(f"{t}.csv" for t in p["evaluate"]["test_sets"])
    board = (dvc_project / "metrics/leaderboard.md").read_text()
    assert all(f"| {v} |" in board for v in [*p["variants"], *p["gan_variants"]])
    for v in p["gan_variants"]:
        g = json.loads((dvc_project / f"metrics/gan/variants/{v}.json").read_text())
        assert g["variant"] == v and g["fid"] > 0 and (g["fid_n_real"], g["fid_n_fake"]) == (8, 8)
        assert (dvc_project / f"metrics/gan/samples/{v}.jpg").is_file()
        assert sorted(f.name for f in (dvc_project / f"data/models/{v}/samples").iterdir()) == \
            ["epoch_001.png", "epoch_002.png"]
    assert set(json.loads((dvc_project / "metrics/gan/fid_reference.json").read_text())) == {
        "demo_deepfake_and_real_images", "demo_openforensics"}
    for t in p["evaluate"]["test_sets"]:      # the anomaly detector is scored like the classifiers
        m = json.loads((dvc_project / f"metrics/eval/dcgan224_anomaly/{t}.json").read_text())
        assert m["n"] == TEST_N[t] and m["weights"] == "scratch"
    plots = run("dvc plots show --json", dvc_project)
    for v in p["variants"]:                      # dvclive curves: one row per epoch, drawn by dvc plots
        curve = (dvc_project / f"metrics/dvclive/{v}/plots/metrics/val_roc_auc.tsv").read_text().splitlines()
        assert curve[0] == "step\tval_roc_auc" and [r.split("\t")[0] for r in curve[1:]] == ["1", "2"]
        assert f"metrics/dvclive/{v}/plots/metrics/val_roc_auc.tsv" in plots
        assert json.loads((dvc_project / f"logs/train/{v}.json").read_text())["variant"] == v
    manifest = pd.read_csv(dvc_project / "data/splits/manifest.csv", keep_default_na=False)
    assert leaking_groups(manifest) == []
    # twins linked by the guard across test sets stay in their own datasets' test splits
    spread = manifest.groupby("group")["split"].nunique()
    assert (spread > 1).sum() == 4
    assert set(manifest[manifest["group"].isin(spread[spread > 1].index)]["split"]) == {"test", "test_dev"}
    assert run("dvc status", dvc_project).strip().endswith("up to date.")


def _outputs(proj: Path) -> set[str]:
    """Every file the graph wrote that both runners declare (metrics, plots, data, models)."""
    roots = ["metrics", "data/faces", "data/splits", "data/prepared", "data/models", "data/eval", "data/fid"]
    return {f.relative_to(proj).as_posix() for r in roots for f in (proj / r).rglob("*")
            if f.is_file() and f.name != ".snakemake_timestamp"}   # Snakemake's own bookkeeping


def test_snakemake_builds_the_same_bytes(dvc_project, smk_project):
    """Same machine, same params: both runners write byte-identical files, models included."""
    files = _outputs(dvc_project)
    assert files == _outputs(smk_project)
    assert {"data/prepared/32/images.npy", "data/models/custom_cnn/model.pt", "metrics/leaderboard.md",
            "metrics/roc/custom_cnn/test_dev.csv"} <= files
    differ = [f for f in sorted(files) if (dvc_project / f).read_bytes() != (smk_project / f).read_bytes()]
    assert differ == []


def test_detector_crops_through_the_yolo_trained_in_the_graph(tmp_path_factory, repo):
    def yolo(params):
        enable_trained_yolo(params, epochs=1, imgsz=64)
        params["faces"]["detector"].update(min_face=8)
        params["faces"]["detector"]["yolo"].update(confidence=0.001)   # a 1-epoch YOLO is unsure
        return params

    proj = make_project(tmp_path_factory.mktemp("yolo"), repo, yolo)
    out = run("dvc repro split", proj)
    for stage in ("train_face_detector@yolo", "faces_yolo@demo", "split"):
        assert f"Running stage '{stage}'" in out
    fd = json.loads((proj / "metrics/face_detector.json").read_text())
    assert {k: fd[k] for k in ("epochs", "n_train_images", "n_train_skipped", "n_eval_images", "n_eval_faces")} \
        == {"epochs": 1, "n_train_images": 7, "n_train_skipped": 3, "n_eval_images": 4, "n_eval_faces": 11}
    c = json.loads((proj / "metrics/faces/demo.json").read_text())["demo_deepfake_and_real_images"]
    # How many faces a trained detector finds hinges on its float rounding, which differs between
    # CPUs; that is why the default demo crops its folder copy whole. Only the accounting is exact.
    assert (c["input_kind"], c["inputs_in"]) == ("image", 46)
    assert c["inputs_kept"] + c["rejected"] == 46 and c["kept"] >= c["inputs_kept"]


def test_editing_one_variant_reruns_only_its_stages(dvc_project):
    run("git add -A && git commit -qm demo-run", dvc_project)
    p = _params(dvc_project)
    p["variants"]["custom_cnn"]["train"]["optimizer"]["lr"] = 0.003
    (dvc_project / "params.yaml").write_text(yaml.safe_dump(p, sort_keys=False))
    status = run("dvc status --json", dvc_project)
    changed = set(json.loads(status))
    expected = {"train@custom_cnn", "evaluate", "report"}   # one evaluate stage scores every variant
    assert changed == expected
    out = run("dvc repro", dvc_project)
    assert "resnet18_scratch' didn't change" in out or "Stage 'train@resnet18_scratch' didn't change" in out
    assert "Running stage 'train@resnet18_scratch'" not in out
    diff = json.loads(run("dvc metrics diff --json", dvc_project))
    assert any("custom_cnn" in path for path in diff)
    # resnet18_scratch was not retrained; evaluate rescored it with the same model: same numbers
    assert not any("resnet18_scratch" in path for path in diff)


def test_editing_one_gan_variant_reruns_it_and_shows_its_fid_in_metrics_diff(dvc_project):
    run("git add -A && git commit -qm before-gan-edit", dvc_project)
    p = _params(dvc_project)
    p["gan_variants"]["dcgan_label_smoothing"]["real_label"] = 0.8
    (dvc_project / "params.yaml").write_text(yaml.safe_dump(p, sort_keys=False))
    # evaluate reads gan_variants (anomaly / hybrid discriminators) and data/models: it reruns too
    assert set(json.loads(run("dvc status --json", dvc_project))) == {
        "train_gan@dcgan_label_smoothing", "evaluate", "report"}
    out = run("dvc repro", dvc_project)
    assert "Running stage 'train_gan@dcgan224_anomaly'" not in out
    diff = json.loads(run("dvc metrics diff --json", dvc_project))
    fid = diff["metrics/gan/variants/dcgan_label_smoothing.json"]["fid"]
    assert fid["old"] != fid["new"] and fid["diff"] == pytest.approx(fid["new"] - fid["old"])
