"""runtime.configure_compute: pinned threads/ISA/deterministic algorithms give the same bits."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

from deepfake_detection.runtime import CPU_ISA_ENV, configure_compute

# Trains a small conv net for a few steps and prints the sha256 of its weights.
SCRIPT = r"""
import hashlib, json, sys, torch
from deepfake_detection.runtime import configure_compute
info = configure_compute(int(sys.argv[1]), sys.argv[2], True)
torch.manual_seed(0)
net = torch.nn.Sequential(torch.nn.Conv2d(3, 16, 3, padding=1), torch.nn.BatchNorm2d(16), torch.nn.ReLU(),
                          torch.nn.Conv2d(16, 32, 3, stride=2), torch.nn.AdaptiveAvgPool2d(1),
                          torch.nn.Flatten(), torch.nn.Linear(32, 2))
opt = torch.optim.Adam(net.parameters(), 1e-3)
g = torch.Generator().manual_seed(1)
for _ in range(3):
    x, y = torch.randn(32, 3, 32, 32, generator=g), torch.randint(0, 2, (32,), generator=g)
    loss = torch.nn.functional.cross_entropy(net(x), y)
    opt.zero_grad(); loss.backward(); opt.step()
h = hashlib.sha256(b"".join(p.detach().numpy().tobytes() for p in net.parameters())).hexdigest()
print(json.dumps({"hash": h, "info": info}))
"""


def _run(threads: int, isa: str, **env) -> dict:
    clean = {k: v for k, v in os.environ.items() if k not in CPU_ISA_ENV["avx2"]}
    out = subprocess.run([sys.executable, "-c", SCRIPT, str(threads), isa], env={**clean, **env},
                         capture_output=True, text=True, check=True)
    return json.loads(out.stdout.strip().splitlines()[-1])


def test_same_settings_same_bits_and_the_isa_cap_is_what_sets_them():
    a = _run(2, "avx2")
    assert a["info"]["threads"] == 2 and a["info"]["ONEDNN_MAX_CPU_ISA"] == "AVX2"
    assert a["info"]["MKL_CBWR"] == "AVX2" and a["info"]["ATEN_CPU_CAPABILITY"] == "avx2"
    assert _run(2, "avx2")["hash"] == a["hash"]
    # "native" with the same caps set by hand computes the same bits: the variables are honoured
    # although torch is already imported when configure_compute runs.
    caps = _run(2, "native", **CPU_ISA_ENV["avx2"])
    assert caps["hash"] == a["hash"] and caps["info"]["cpu_isa"] == "native"


def test_unknown_isa_is_an_error_naming_the_key():
    with pytest.raises(ValueError, match=r"compute.cpu_isa: 'avx9' is not one of \['avx2', 'native'\]"):
        configure_compute(1, "avx9")
