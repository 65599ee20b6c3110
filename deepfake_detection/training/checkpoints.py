"""Resumable training checkpoints, written atomically and tied to a config hash.

A checkpoint written under another configuration is ignored (with a message), so editing a
variant's params never resumes a run that belongs to the old values. A checkpoint holds only
tensors and plain data (RNG states as tensors) and is read with ``weights_only=True``: one that
holds anything else is refused with an error naming it, never unpickled.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

from ..io import UnsafeFileError, load_torch, save_torch


def config_hash(obj) -> str:
    """Stable short hash of a JSON-serialisable config."""
    return hashlib.sha256(json.dumps(obj, sort_keys=True, default=str).encode()).hexdigest()[:16]


def save_checkpoint(path: Path, state: dict) -> None:
    save_torch(path, state)


def load_checkpoint(path: Path, expected_hash: str) -> dict | None:
    """The saved state if ``path`` exists and belongs to ``expected_hash``, else None.

    An unreadable file (truncated by a killed run) is ignored; one holding objects other than
    tensors and plain data raises :class:`~deepfake_detection.io.UnsafeFileError`.
    """
    path = Path(path)
    if not path.is_file():
        return None
    try:
        state = load_torch(path, "checkpoint")
    except UnsafeFileError:
        raise
    except Exception as exc:  # a truncated file from a killed run: start over
        print(f"train: ignoring unreadable checkpoint {path}: {str(exc).splitlines()[0]}")
        return None
    if not isinstance(state, dict) or state.get("config_hash") != expected_hash:
        print(f"train: ignoring checkpoint {path}: it was written for another configuration")
        return None
    return state
