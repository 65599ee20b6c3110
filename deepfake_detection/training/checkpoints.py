"""Resumable training checkpoints, written atomically and tied to a config hash.

A checkpoint written under another configuration is ignored (with a message), so editing a
variant's params never resumes a run that belongs to the old values.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import torch

from ..io import save_torch


def config_hash(obj) -> str:
    """Stable short hash of a JSON-serialisable config."""
    return hashlib.sha256(json.dumps(obj, sort_keys=True, default=str).encode()).hexdigest()[:16]


def save_checkpoint(path: Path, state: dict) -> None:
    save_torch(path, state)


def load_checkpoint(path: Path, expected_hash: str) -> dict | None:
    """The saved state if ``path`` exists and belongs to ``expected_hash``, else None."""
    path = Path(path)
    if not path.is_file():
        return None
    try:
        state = torch.load(path, map_location="cpu", weights_only=False)
    except Exception as exc:  # a truncated file from a killed run: start over
        print(f"train: ignoring unreadable checkpoint {path}: {exc}")
        return None
    if state.get("config_hash") != expected_hash:
        print(f"train: ignoring checkpoint {path}: it was written for another configuration")
        return None
    return state
