# Snakemake runs the same stage commands as dvc.yaml (the runner of record) over params.yaml.
#   snakemake --cores 2            # whole graph
#   snakemake --cores 2 -n         # dry run (validates params.yaml first)
# tests/test_runners.py checks that both runners declare the same outputs, commands, code deps
# (each stage's import closure, computed here by deepfake_detection.stagedeps) and params keys.
# Run it inside the project's environment (`conda env create -f environment.yml` or the venv);
# `--use-conda` is not supported: Snakemake would copy environment.yml away from the
# requirements.lock and the package it installs.

import sys

sys.path.insert(0, workflow.basedir)   # this checkout's package, whatever else is installed

from deepfake_detection.params import TRAINED_DETECTOR, ParamsError, load_params
from deepfake_detection.stagedeps import code_deps


configfile: "params.yaml"


try:
    PARAMS = load_params("params.yaml")
except ParamsError as exc:
    sys.exit(str(exc))   # the graph build stops with the one-line message, exit status 1

VARIANTS = sorted(config["variants"])
GAN_VARIANTS = sorted(config.get("gan_variants") or {})
SOURCES = config["enabled_sources"]
YOLO_SOURCES = PARAMS.face_stages.faces_yolo   # crop with the detector trained here

wildcard_constraints:
    source="[^/]+",
    variant="[^/]+",
    gan_variant="[^/]+",
    size="[0-9]+",


include: "workflow/rules/common.smk"
include: "workflow/rules/data.smk"
include: "workflow/rules/models.smk"
include: "workflow/rules/gans.smk"


rule all:
    input:
        "metrics/leaderboard.md",
