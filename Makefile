# Two entry points (see README): `make demo` runs the whole pipeline on the built-in demo data,
# `make test` runs the test suite. Both create .venv from the lock files first if needed.
SHELL := /bin/bash
VENV ?= .venv
export PATH := $(CURDIR)/$(VENV)/bin:$(PATH)
export DVC_NO_ANALYTICS := 1

.PHONY: env demo test verify snakemake bench clean-data

env:
	@bash scripts/bootstrap.sh

demo: env
	dvc repro
	@echo; cat metrics/leaderboard.md

test: env
	python -m pytest -n 2 --dist loadgroup -q

# CI's "re-run the stages" step: run the graph (everything, on a clean checkout) and compare every
# metric with the committed one (data stages exactly, model stages within params.yaml verify.tolerances).
verify: env
	dvc repro
	python -m deepfake_detection.verify

snakemake: env
	snakemake --cores 2

bench: env
	python benchmarks/bench_loading.py

clean-data:
	rm -rf data .snakemake logs
