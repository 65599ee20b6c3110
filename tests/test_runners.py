"""Both runners, one graph: dvc.yaml and the Snakefile declare the same outputs and commands."""

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

BIN = Path(sys.executable).parent


def _env():
    return {**os.environ, "PATH": f"{BIN}{os.pathsep}{os.environ['PATH']}"}


@pytest.fixture(scope="module")
def dvc_graph(repo):
    from dvc.repo import Repo

    with Repo(str(repo)) as r:
        stages = list(r.index.stages)
        outs = {str(o.def_path) for s in stages for o in s.outs}
        cmds = {" ".join(s.cmd.split()) for s in stages}
    return outs, cmds


def _snakemake(repo, *args):
    return subprocess.run([str(BIN / "snakemake"), "--cores", "1", *args], cwd=repo, env=_env(),
                          capture_output=True, text=True, check=True).stdout


def test_same_outputs(repo, dvc_graph):
    lines = _snakemake(repo, "--summary").splitlines()[1:]
    smk_outs = {line.split("\t")[0] for line in lines if line.strip()}
    assert smk_outs == dvc_graph[0]


def test_same_commands(repo, dvc_graph):
    text = _snakemake(repo, "-n", "-p", "--forceall")
    cmds = {" ".join(re.sub(r" 2> logs/\S+$", "", m).split())
            for m in re.findall(r"^Shell command: (.*)$", text, flags=re.M) if m != "None"}  # rule all
    assert cmds == dvc_graph[1]


def test_snakemake_lint_is_clean(repo):
    out = subprocess.run([str(BIN / "snakemake"), "--lint"], cwd=repo, env=_env(), capture_output=True, text=True)
    assert out.returncode == 0, out.stdout + out.stderr
    assert "Congratulations" in out.stdout + out.stderr
