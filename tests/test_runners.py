"""Both runners, one graph: dvc.yaml and the Snakefile declare the same jobs.

Per job (matched by its outputs): the same command, the same code deps (the import closure of
its stage script, which ``deepfake_detection.stagedeps`` computes and dvc.yaml must list) and the
same params.yaml keys. Checked on the repository's params (no detector is trained) and on a copy
whose demo folder set is cropped by the YOLO the pipeline trains.
"""

import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from deepfake_detection.stagedeps import code_deps, is_code, rewrite_dvc_yaml
from tests.conftest import REPO, enable_trained_yolo, write_params

BIN = Path(sys.executable).parent

# Every job of `snakemake --forceall` with its outputs, inputs and params, as JSON (Snakemake's
# CLI prints no params; its API builds the same DAG as `snakemake -n`).
_SMK_JOBS = """
import json, sys
from pathlib import Path
from snakemake.api import SnakemakeApi
from snakemake.settings.types import DAGSettings, OutputSettings, Quietness, ResourceSettings
with SnakemakeApi(OutputSettings(quiet={Quietness.ALL})) as api:
    wf = api.workflow(resource_settings=ResourceSettings(cores=1), snakefile=Path("Snakefile"),
                      workdir=Path("."))
    workflow = wf.dag(dag_settings=DAGSettings(forceall=True)).workflow_api._workflow
    workflow._prepare_dag(forceall=True, ignore_incomplete=True, lock_warn_only=True, nolock=True)
    workflow._build_dag()
    jobs = [{"rule": j.rule.name, "output": sorted(map(str, j.output)), "input": sorted(map(str, j.input)),
             "params_yaml": sorted(j.params.get("params_yaml", {}))} for j in workflow.dag.jobs]
json.dump([j for j in jobs if j["rule"] != "all"], sys.stdout)
"""


def _env():
    return {**os.environ, "PATH": f"{BIN}{os.pathsep}{os.environ['PATH']}"}


def _snakemake(root, *args):
    return subprocess.run([str(BIN / "snakemake"), "--cores", "1", *args], cwd=root, env=_env(),
                          capture_output=True, text=True, check=True).stdout


def dvc_jobs(root: Path) -> dict[frozenset, dict]:
    """dvc.yaml's stages by their set of outputs."""
    from dvc.dependency.param import ParamsDependency
    from dvc.repo import Repo

    jobs = {}
    with Repo(str(root)) as r:
        for s in r.index.stages:
            params = sorted(k for d in s.deps if isinstance(d, ParamsDependency) for k in d.params)
            paths = [str(d.def_path) for d in s.deps if not isinstance(d, ParamsDependency)]
            jobs[frozenset(str(o.def_path) for o in s.outs)] = {
                "name": s.name, "cmd": " ".join(s.cmd.split()), "params": params,
                "code": [p for p in paths if is_code(p)], "data": [p for p in paths if not is_code(p)]}
    return jobs


def smk_jobs(root: Path) -> dict[frozenset, dict]:
    """The Snakefile's jobs by their set of outputs."""
    out = subprocess.run([sys.executable, "-c", _SMK_JOBS], cwd=root, env=_env(), capture_output=True,
                         text=True, check=True).stdout
    return {frozenset(j["output"]): {**j, "code": [p for p in j["input"] if is_code(p)]}
            for j in json.loads(out)}


def smk_commands(root: Path) -> dict[frozenset, str]:
    """Each job's shell command from `snakemake -n -p`, by its outputs."""
    text = _snakemake(root, "-n", "-p", "--forceall")
    cmds = {}
    for block in text.split("\nrule ")[1:]:
        outs = re.search(r"^\s+output: (.*)$", block, flags=re.M)
        cmd = re.search(r"^Shell command: (.*)$", block, flags=re.M)
        if outs and cmd:
            cmds[frozenset(outs.group(1).split(", "))] = " ".join(re.sub(r" 2> logs/\S+$", "", cmd.group(1)).split())
    return cmds


def _copy_repo(src: Path, dst: Path) -> Path:
    for name in ("dvc.yaml", "Snakefile", "params.yaml"):
        shutil.copy2(src / name, dst / name)
    for name in ("workflow", "stages", "deepfake_detection"):
        shutil.copytree(src / name, dst / name, ignore=shutil.ignore_patterns("__pycache__"))
    subprocess.run([str(BIN / "dvc"), "init", "--no-scm", "-q"], cwd=dst, env=_env(), check=True)
    return dst


@pytest.fixture(scope="module", params=["repository", "yolo"])
def graphs(request, repo, tmp_path_factory):
    root = repo
    if request.param == "yolo":
        root = _copy_repo(repo, tmp_path_factory.mktemp("yolo_repo"))
        write_params(root / "params.yaml", enable_trained_yolo(yaml.safe_load((repo / "params.yaml").read_text())))
    return request.param, root, dvc_jobs(root), smk_jobs(root)


def test_same_jobs_and_outputs(graphs):
    _, root, dvc, smk = graphs
    assert set(dvc) == set(smk)
    lines = _snakemake(root, "--summary").splitlines()[1:]
    assert {line.split("\t")[0] for line in lines if line.strip()} == set().union(*dvc)


def test_same_commands(graphs):
    _, root, dvc, _ = graphs
    assert smk_commands(root) == {outs: job["cmd"] for outs, job in dvc.items()}


def test_same_code_deps_and_params_keys(graphs):
    _, _, dvc, smk = graphs
    for outs, job in dvc.items():
        assert sorted(smk[outs]["code"]) == sorted(job["code"]), job["name"]
        assert smk[outs]["params_yaml"] == job["params"], job["name"]


def test_code_deps_are_the_import_closure(graphs):
    _, _, dvc, _ = graphs
    for job in dvc.values():
        script = re.search(r"python stages/(\w+)\.py", job["cmd"]).group(1)
        assert job["code"] == code_deps(script), job["name"]


def test_dvc_yaml_is_what_the_tool_writes(repo):
    text = (repo / "dvc.yaml").read_text()
    assert rewrite_dvc_yaml(text) == text


def test_detector_training_only_when_a_source_needs_it(graphs):
    kind, _, dvc, smk = graphs
    names = sorted(job["name"] for job in dvc.values())
    weights = "data/models/face_detector.pt"
    faces = [job for job in dvc.values() if job["name"].startswith("faces")]
    if kind == "repository":
        assert [n for n in names if n.startswith(("faces", "train_face"))] == ["faces@demo"]
        assert all(weights not in j["input"] for j in smk.values())
        assert all(weights not in job["data"] for job in faces)
    else:
        assert [n for n in names if n.startswith(("faces", "train_face"))] == \
            ["faces_yolo@demo", "train_face_detector@yolo"]
        assert [job["data"] for job in faces] == [["data/raw/demo", weights]]
        assert smk[frozenset({weights, "metrics/face_detector.json"})]["params_yaml"] == ["face_detectors.yolo"]


def _within(path: str, folder: str) -> bool:
    return path == folder or path.startswith(folder.rstrip("/") + "/")


def rerun_by_edit(jobs: dict[frozenset, dict], key: str) -> set[str]:
    """Stages an edit of params key ``key`` reruns: those reading it, then every stage downstream
    (a data dep equal to, inside, or holding another rerun stage's output)."""
    hit = {outs for outs, job in jobs.items()
           if any(_within(key.replace(".", "/"), k.replace(".", "/")) for k in job["params"])}
    while True:
        more = {outs for outs, job in jobs.items() if outs not in hit and any(
            _within(d, o) or _within(o, d) for d in job["data"] for h in hit for o in h)}
        if not more:
            return {jobs[outs]["name"] for outs in hit}
        hit |= more


def test_editing_one_variant_reruns_its_train_the_one_evaluate_and_the_report(graphs):
    _, _, dvc, _ = graphs
    names = {job["name"] for job in dvc.values()}
    assert "evaluate" in names and not any(n.startswith("evaluate@") for n in names)
    assert rerun_by_edit(dvc, "variants.custom_cnn.train.optimizer.lr") == {"train@custom_cnn", "evaluate", "report"}
    assert rerun_by_edit(dvc, "variants.resnet18_scratch.model") == {"train@resnet18_scratch", "evaluate", "report"}
    assert rerun_by_edit(dvc, "evaluate.bootstrap") == {"evaluate", "report"}


def test_editing_one_gan_variant_reruns_its_train_gan_the_evaluate_and_the_report(graphs):
    _, _, dvc, _ = graphs
    # evaluate scores the anomaly / hybrid discriminators, so it reads gan_variants and data/models
    assert rerun_by_edit(dvc, "gan_variants.wgan_gp.d_optimizer.lr") == {"train_gan@wgan_gp", "evaluate", "report"}
    every_gan = {f"train_gan@{v}" for v in yaml.safe_load((REPO / "params.yaml").read_text())["gan_variants"]}
    assert rerun_by_edit(dvc, "gan.fid.n_fake") == {"fid_reference", *every_gan, "evaluate", "report"}
    assert rerun_by_edit(dvc, "gan.published_reference") == {"report"}


def test_snakemake_lint_is_clean_but_for_conda(repo):
    """The only lints left ask for a conda env per rule, which the Snakefile explains it omits."""
    out = subprocess.run([str(BIN / "snakemake"), "--lint"], cwd=repo, env=_env(), capture_output=True, text=True)
    text = out.stdout + out.stderr
    lints = re.findall(r"^    \* (.*?):$", text, flags=re.M)
    assert lints and set(lints) == {"Specify a conda environment or container for each rule."}, text
    assert len(lints) == len(re.findall(r"^Lints for rule ", text, flags=re.M))


def test_bad_params_stop_snakemake_with_one_line(repo, tmp_path, params_dict):
    root = _copy_repo(repo, tmp_path)
    params_dict["evaluate"]["batch_size"] = -5
    write_params(root / "params.yaml", params_dict)
    out = subprocess.run([str(BIN / "snakemake"), "-n", "--cores", "1"], cwd=root, env=_env(),
                         capture_output=True, text=True)
    assert out.returncode == 1
    assert out.stdout + out.stderr == "params.yaml: evaluate.batch_size: must be >= 1, got -5\n"
