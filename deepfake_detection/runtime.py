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
    os.environ.setdefault("DVC_STUDIO_OFFLINE", "true")   # dvclive never posts training curves to Studio
    os.environ.setdefault("HF_HUB_DISABLE_TELEMETRY", "1")
    if hub_offline:
        # timm's pretrained=True (the hub-weighted variants to come) retries ~47 s without this.
        os.environ.setdefault("HF_HUB_OFFLINE", "1")
    os.environ.setdefault("YOLO_OFFLINE", "1")
    os.environ.setdefault("YOLO_AUTOINSTALL", "0")
    os.environ.setdefault("YOLO_CONFIG_DIR", str(root / ".ultralytics"))
    os.environ.setdefault("MPLBACKEND", "Agg")
    os.environ.setdefault("MPLCONFIGDIR", str(root / ".ultralytics" / "matplotlib"))   # not ~/.config


# What each ``compute.cpu_isa`` value asks of the CPU math libraries. The variables are read when
# a library first computes (not when torch is imported), so setting them in ``main()`` works.
# oneDNN (convolutions) and MKL (matmul) pick kernels by instruction set, and kernels of different
# widths sum in different orders: capping both at AVX2 gives the same bits on every x86-64 CPU
# that has AVX2 (nearly all of them), at some cost in speed on AVX-512 machines.
CPU_ISA_ENV = {
    "avx2": {"ONEDNN_MAX_CPU_ISA": "AVX2", "MKL_CBWR": "AVX2", "ATEN_CPU_CAPABILITY": "avx2"},
    "native": {},
}


def configure_compute(threads: int, cpu_isa: str = "avx2", deterministic: bool = True) -> dict:
    """Pin what makes model stages bit-reproducible; return the settings in effect (for logs).

    Call before the first tensor operation. ``threads`` fixes intra-op parallelism (oneDNN and
    MKL split reductions by thread, so the thread count changes the bits); ``cpu_isa`` caps the
    CPU kernels (see ``CPU_ISA_ENV``); ``deterministic`` turns on
    ``torch.use_deterministic_algorithms`` and cuDNN's deterministic mode (no autotuning), with
    the cuBLAS workspace setting CUDA requires for it. Variables already set in the environment
    win, so a user can imitate another CPU (e.g. ``ATEN_CPU_CAPABILITY=default``).
    """
    if cpu_isa not in CPU_ISA_ENV:
        raise ValueError(f"compute.cpu_isa: {cpu_isa!r} is not one of {sorted(CPU_ISA_ENV)}")
    for key, value in CPU_ISA_ENV[cpu_isa].items():
        os.environ.setdefault(key, value)
    if deterministic:
        os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", ":4096:8")
    import torch

    if threads > 0:
        torch.set_num_threads(threads)
    torch.use_deterministic_algorithms(deterministic, warn_only=False)
    torch.backends.cudnn.deterministic = deterministic
    torch.backends.cudnn.benchmark = not deterministic
    return {"threads": torch.get_num_threads(), "cpu_isa": cpu_isa, "deterministic": deterministic,
            **{k: os.environ.get(k, "") for k in CPU_ISA_ENV["avx2"]}}


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
