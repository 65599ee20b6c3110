"""The data stages (download@demo, faces, prepare) write the same bytes on any CPU kind.

One run uses this CPU's best code paths and several threads; the other, in a fresh process,
forces every run-time CPU dispatch (torch, OpenCV, numpy, MKL, OpenBLAS, libm, libjpeg-turbo)
down to the baseline and one thread. Every output file must hash the same.
"""

from __future__ import annotations

import cv2
import numpy as np
import pytest
import torch

from benchmarks.bench_reproducible import TINY, differing, numpy_dispatch_features, run_in, tree_hashes
from deepfake_detection.params import load_params
from tests.conftest import REPO


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    root = tmp_path_factory.mktemp("reproducible")
    probes = {name: run_in(name, root / name, TINY)[1] for name in ("native", "generic")}
    return root, probes


def test_every_output_file_is_byte_identical(runs):
    root, _ = runs
    native, generic = tree_hashes(root / "native"), tree_hashes(root / "generic")
    assert differing(native, generic) == []
    stages = {p.split("/")[0] for p in native}
    assert stages == {"raw", "faces", "prepared", "faces_demo.json"}
    assert "raw/demo/known_duplicates.csv" in native
    assert "prepared/images.npy" in native
    images = np.load(root / "native/prepared/images.npy")
    size = load_params(REPO / "params.yaml").prepare.sizes[0]           # the size the run prepares
    assert images.shape[1:] == (size, size, 3) and images.std() > 10   # real content, not blanks
    assert sum(p.startswith("faces/demo/images/") for p in native) == len(images)


def test_the_generic_environment_changes_float_results_on_this_cpu(runs):
    """The switches are not no-ops: they change float results where this CPU has the features."""
    _, probes = runs
    changed = set(differing(probes["native"], probes["generic"]))
    if torch.backends.cpu.get_cpu_capability() != "DEFAULT":
        assert "torch_conv_transpose_f32" in changed
    if numpy_dispatch_features():
        assert "numpy_exp_f64" in changed
    if "*AVX2" in cv2.getCPUFeaturesLine():                  # OpenCV dispatches its blur to AVX2
        assert "opencv_gaussian_blur_f32" in changed
