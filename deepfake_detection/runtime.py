"""Process-level set-up shared by the stage CLIs: offline switches, seeding, device choice.

Called first by every stage that imports torch, timm or ultralytics, so that no library reaches
for the network or writes outside the project (Hugging Face hub retries, DVC analytics, ultralytics settings/fonts/DVC callback).
"""

from __future__ import annotations

import functools
import os
import random
import sys
from pathlib import Path
from typing import Callable

import numpy as np

from .params import ParamsError


def set_offline_defaults(root: Path | None = None, hub_offline: bool = True) -> None:
    """Environment switches so nothing downloads by surprise; explicit settings win.

    ``hub_offline=False`` is for the download stage, which fetches datasets from the hub.
    """
    root = Path(root or Path.cwd())
    os.environ.setdefault("DVC_NO_ANALYTICS", "1")
    os.environ.setdefault("HF_HUB_DISABLE_TELEMETRY", "1")
    if hub_offline:
        # timm's pretrained=True (the hub-weighted variants to come) retries ~47 s without this.
        os.environ.setdefault("HF_HUB_OFFLINE", "1")
    os.environ.setdefault("YOLO_OFFLINE", "1")
    os.environ.setdefault("YOLO_AUTOINSTALL", "0")
    os.environ.setdefault("YOLO_CONFIG_DIR", str(root / ".ultralytics"))
    os.environ.setdefault("MPLBACKEND", "Agg")
    os.environ.setdefault("MPLCONFIGDIR", str(root / ".ultralytics" / "matplotlib"))   # not ~/.config


def seed_everything(seed: int) -> None:
    import torch

    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)


def pick_device(name: str = "auto"):
    """``auto`` -> CUDA when available, else CPU."""
    import torch

    if name == "auto":
        name = "cuda" if torch.cuda.is_available() else "cpu"
    return torch.device(name)


def log(msg: str) -> None:
    print(msg, file=sys.stderr, flush=True)


def stage_main(stage: str) -> Callable:
    """Decorate a stage's ``main``: a params.yaml error ends it with one line, not a traceback.

    ``ParamsError`` already names the file, key and fix; the stage name is put in front so a
    runner's log says which stage stopped: ``faces: params.yaml: faces.size: must be >= 8, got 4``.
    """
    def wrap(main: Callable) -> Callable:
        @functools.wraps(main)
        def run(*args, **kwargs):
            try:
                return main(*args, **kwargs)
            except ParamsError as exc:
                raise SystemExit(f"{stage}: {exc}") from None
        return run
    return wrap
