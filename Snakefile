# Snakemake runs the same stage commands as dvc.yaml (the runner of record) over params.yaml.
#   snakemake --cores 2            # whole graph
#   snakemake --cores 2 -n         # dry run
# tests/test_runners.py checks that both runners declare the same outputs.

configfile: "params.yaml"

VARIANTS = sorted(config["variants"])
TEST_SETS = sorted(config["evaluate"]["test_sets"])
SOURCES = config["enabled_sources"]
FD = config["face_detector"]

wildcard_constraints:
    source="[^/]+",
    variant="[^/]+",
    test_set="[^/]+",


include: "workflow/rules/common.smk"
include: "workflow/rules/data.smk"
include: "workflow/rules/models.smk"


rule all:
    input:
        "metrics/leaderboard.md",
