"""Shared fixtures: the repo root, a params dict to mutate, offline environment."""

from __future__ import annotations

import copy
import os
from pathlib import Path

import pytest
import yaml

REPO = Path(__file__).resolve().parent.parent

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("DVC_NO_ANALYTICS", "1")
os.environ.setdefault("YOLO_OFFLINE", "1")


@pytest.fixture(scope="session")
def repo() -> Path:
    return REPO


@pytest.fixture()
def params_dict() -> dict:
    """A fresh copy of the repository's params.yaml as a dict."""
    return copy.deepcopy(yaml.safe_load((REPO / "params.yaml").read_text()))


def write_params(path: Path, params: dict) -> Path:
    path.write_text(yaml.safe_dump(params, sort_keys=False))
    return path
