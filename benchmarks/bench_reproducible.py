"""Benchmark and check: the data stages write the same bytes on any CPU kind and thread count.

Runs download@demo (``generate_demo``), the ``faces`` stage (COCO boxes and whole images) and
``prepare`` once per environment, each in a fresh process, then compares the sha256 of every
output file. The environments emulate other machines on this one:

* ``native``: this CPU's best code paths, default thread counts, a process pool for the faces;
* ``generic``: every run-time CPU dispatch forced down to the baseline: torch
  (``ATEN_CPU_CAPABILITY=default``), OpenCV (``OPENCV_CPU_DISABLE``: every dispatchable feature),
  numpy (``NPY_DISABLE_CPU_FEATURES``: its dispatch targets this CPU has), MKL, OpenBLAS and
  glibc's libm (its FMA variants); one thread everywhere, faces and prepare serial.
  ``JSIMD_FORCENONE`` is set too, but OpenCV's bundled libjpeg-turbo ignores it (decode speed
  is unchanged); JPEG stays exact because libjpeg-turbo's SIMD integer DCT, colour conversion
  and upsampling are bit-identical to its C code by design.

``float_probe`` shows that these switches really change float results of the kinds of code the
generator used before (OpenCV float blur, torch float32 transposed convolution, numpy ``exp``).

    python benchmarks/bench_reproducible.py                  # full default demo options
    python benchmarks/bench_reproducible.py --tiny           # 3/2/2/2 scenes
"""

from __future__ import annotations

import argparse
import dataclasses
import hashlib
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
TINY = {"n_train": 3, "n_val": 2, "n_test_dev": 2, "n_test_challenge": 2}
OPENCV_FEATURES = ("SSE4.1,SSE4.2,POPCNT,AVX,FP16,AVX2,FMA3,AVX512F,AVX512-COMMON,AVX512-SKX,"
                   "AVX512-CNL,AVX512-CLX,AVX512-ICL,AVX512CD,AVX512BW,AVX512DQ,AVX512VL")
GLIBC_HWCAPS = "glibc.cpu.hwcaps=-AVX,-AVX2,-FMA,-FMA4,-AVX512F,-AVX512DQ,-AVX512VL,-AVX512BW"


def numpy_dispatch_features() -> list[str]:
    """numpy's run-time dispatch targets that this CPU has (what NPY_DISABLE_CPU_FEATURES takes)."""
    from numpy._core._multiarray_umath import __cpu_dispatch__, __cpu_features__

    return [f for f in __cpu_dispatch__ if __cpu_features__.get(f)]


def environments() -> dict[str, dict[str, str]]:
    """Name -> environment overrides (``workers`` is the faces/prepare worker count)."""
    generic = {"ATEN_CPU_CAPABILITY": "default", "OPENCV_CPU_DISABLE": OPENCV_FEATURES,
               "NPY_DISABLE_CPU_FEATURES": " ".join(numpy_dispatch_features()),
               "MKL_ENABLE_INSTRUCTIONS": "SSE4_2", "MKL_CBWR": "COMPATIBLE",
               "OPENBLAS_CORETYPE": "Prescott", "GLIBC_TUNABLES": GLIBC_HWCAPS,
               "JSIMD_FORCENONE": "1", "OMP_NUM_THREADS": "1", "OPENBLAS_NUM_THREADS": "1",
               "MKL_NUM_THREADS": "1", "workers": "1"}
    return {"native": {"workers": "2"}, "generic": generic}


def _child_env(overrides: dict[str, str]) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items()
           if k not in ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS")}
    env.update({k: v for k, v in overrides.items() if k != "workers"})
    env["PYTHONPATH"] = os.pathsep.join([str(REPO), env.get("PYTHONPATH", "")]).rstrip(os.pathsep)
    return env


def run_pipeline(out_dir: Path, options: dict, workers: int) -> None:
    """download@demo -> faces@demo -> prepare, with relative paths under ``out_dir``."""
    from deepfake_detection.data.demo import generate_demo
    from deepfake_detection.data.prepared import prepare_arrays
    from deepfake_detection.params import load_params
    from stages import faces as faces_stage

    params_file = REPO / "params.yaml"
    params = load_params(params_file)
    opts = dataclasses.replace(params.source_options("demo"), **options)
    os.chdir(out_dir)
    generate_demo(Path("raw/demo"), opts)
    faces_stage.main(["--params", str(params_file), "--source", "demo", "--raw", "raw/demo",
                      "--out", "faces/demo", "--metrics", "faces_demo.json",
                      "--workers", str(workers)])
    prepare_arrays(Path("faces/demo/faces.csv"), params.prepare.sizes[0], Path("prepared"),
                   workers=max(workers, 1) * 2)


def float_probe() -> dict[str, str]:
    """Hashes of float results from CPU-dispatched code (the generator's old building blocks)."""
    import cv2
    import numpy as np
    import torch
    import torch.nn.functional as F

    def h(a) -> str:
        return hashlib.sha256(np.ascontiguousarray(a).tobytes()).hexdigest()

    rng = np.random.default_rng(0)
    img = rng.random((97, 97, 3)).astype(np.float32)
    torch.manual_seed(0)
    x, w = torch.rand(1, 64, 16, 16), torch.randn(64, 32, 4, 4)
    return {"opencv_gaussian_blur_f32": h(cv2.GaussianBlur(img, (0, 0), 1.3)),
            "torch_conv_transpose_f32": h(F.conv_transpose2d(x, w, stride=2, padding=1).numpy()),
            "numpy_exp_f64": h(np.exp(rng.random(100_000) * 10 - 5))}


def tree_hashes(root: Path) -> dict[str, str]:
    return {p.relative_to(root).as_posix(): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(root.rglob("*")) if p.is_file()}


def run_in(env_name: str, out_dir: Path, options: dict) -> tuple[float, dict[str, str]]:
    """Run the pipeline in a fresh process under environment ``env_name``.

    Returns the seconds it took and that process's :func:`float_probe` hashes.
    """
    overrides = environments()[env_name]
    out_dir.mkdir(parents=True, exist_ok=True)
    start = time.perf_counter()
    done = subprocess.run([sys.executable, __file__, "--child", str(out_dir), "--options",
                           json.dumps(options), "--workers", overrides["workers"]],
                          env=_child_env(overrides), capture_output=True, text=True)
    if done.returncode:
        raise RuntimeError(f"{env_name} run failed:\n{done.stderr[-3000:]}")
    return time.perf_counter() - start, json.loads(done.stdout.strip().splitlines()[-1])


def differing(a: dict[str, str], b: dict[str, str]) -> list[str]:
    return sorted(k for k in set(a) | set(b) if a.get(k) != b.get(k))


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--tiny", action="store_true", help="3/2/2/2 scenes instead of the defaults")
    ap.add_argument("--keep", type=Path, help="work folder to keep (default: a temporary one)")
    ap.add_argument("--child", type=Path, help=argparse.SUPPRESS)
    ap.add_argument("--options", default="{}", help=argparse.SUPPRESS)
    ap.add_argument("--workers", type=int, default=1, help=argparse.SUPPRESS)
    args = ap.parse_args(argv)
    if args.child:
        run_pipeline(args.child, json.loads(args.options), args.workers)
        print(json.dumps(float_probe()))
        return
    options = TINY if args.tiny else {}
    (REPO / "data").mkdir(exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="bench_reproducible_", dir=REPO / "data") as tmp:
        work = args.keep or Path(tmp)
        hashes, probes = {}, {}
        for name in environments():
            seconds, probes[name] = run_in(name, work / name, options)
            hashes[name] = tree_hashes(work / name)
            print(f"{name:8s} {len(hashes[name])} files in {seconds:.1f} s")
        changed = differing(probes["native"], probes["generic"])
        print(f"float paths changed by the generic environment: {', '.join(changed) or 'none'}")
        diff = differing(hashes["native"], hashes["generic"])
        print(f"differing files: {len(diff)}" + "".join(f"\n  {p}" for p in diff[:20]))


if __name__ == "__main__":
    main()
