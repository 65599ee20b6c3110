"""Cross-check our FID against torch-fidelity, with the same Inception weights, offline.

    python benchmarks/bench_fid.py                    # 100 real vs 100 degraded 64-px photo crops
    python benchmarks/bench_fid.py --n 50 --side 299  # 299-px crops: no resizing in either library

Images: deterministic crops of the colour photos shipped in scikit-image (astronaut, coffee,
chelsea, rocket, immunohistochemistry, hubble_deep_field); the "fake" set is other crops,
Gaussian-blurred and with Gaussian noise added (:func:`photo_sets`). Three FIDs between them:

(a) ``pytorch_fid``: our :func:`fid.activations` through pytorch-fid's own network
    (:func:`fid.fid_network`) and pytorch-fid's ``calculate_frechet_distance`` (scipy ``sqrtm``
    of a 2048 x 2048 product);
(b) ``gram``: the same features, our Gram-matrix route (measured: equal to (a) to 1e-6 relative,
    sqrtm's rounding on the product's ~2000 zero eigenvalues);
(c) torch-fidelity 0.4.0 ``calculate_metrics(fid=True)`` with its ``inception-v3-compat``
    extractor, fed the same uint8 tensors as a ``Dataset`` and the same weights.

The weights: torch-fidelity's ``FeatureExtractorInceptionV3`` names its modules exactly as
pytorch-fid's FID Inception3 (torchvision's names: ``Conv2d_1a_3x3.conv.weight`` ...
``Mixed_7c.branch_pool.bn.running_var``, ``fc.weight``, ``fc.bias``; both without AuxLogits),
and both come from the same TF graph (``2015-12-05-6726825d``): the 566 keys, their order and
their shapes are identical, so :func:`fid.inception_weights` is saved as is to a temporary file
and passed as ``feature_extractor_weights_path`` (strict ``load_state_dict``; no key mapping).

Why (c) differs from (a), read in torch-fidelity's source (``feature_extractor_inceptionv3.py``,
``interpolate_compat_tensorflow.py``, ``metric_fid.py``):

1. Resizing. torch-fidelity resizes to 299 with ``interpolate_bilinear_2d_like_tensorflow1x``,
   a reimplementation of TF 1.x ``resize_bilinear(align_corners=False)``: output pixel ``i`` reads
   input coordinate ``i * in/out`` (no half-pixel offset, the last rows and columns clamped).
   pytorch-fid calls ``F.interpolate(mode="bilinear", align_corners=False)``: coordinate
   ``(i + 0.5) * in/out - 0.5`` (half-pixel centres). The TF grid is shifted by
   ``(1 - in/out) / 2`` input pixels: 0.39 px for the 64-px GAN images, 0.13 px at 224 px. At
   299 px both resizers are the identity. Feeding pytorch-fid's network torch-fidelity's resized
   image gives torch-fidelity's features bit for bit on the CPU (same weights, same layers).
2. Input scaling. torch-fidelity maps uint8 ``u`` to ``(u - 128) / 128`` (what the TF graph does,
   range [-1, 0.992]); pytorch-fid maps ``u / 255`` to ``2x - 1`` (range [-1, 1]). So even at
   299 px the features differ slightly; pytorch-fid's network fed ``u / 256`` instead of
   ``u / 255`` sees torch-fidelity's input exactly (``2u/256 - 1 = (u - 128)/128``), and then the
   features are bit-identical (``tests/test_fid_crosscheck.py`` checks both points).
3. The distance. torch-fidelity keeps features in float32 (its mean is float32, its covariance
   float64) and takes ``Tr sqrt(S1 S2)`` as the sum of the square roots of the real parts of
   ``np.linalg.eigvals(S1 S2)`` (complex sqrt, so numerically negative eigenvalues count 0);
   pytorch-fid takes the trace of scipy's ``sqrtm``. With fewer samples than 2048 the product
   has about ``2048 - n`` zero eigenvalues whose rounding noise both methods see differently;
   the Gram route sums exactly the nonzero ones.

Inception speed is printed as images/second for both networks at the thread count given
(``--threads``, default 2: this machine's share).

Measured on 2 shared CPU threads (other jobs running, so the seconds are loose):

* 100 vs 100 64-px crops: (a) 224.0277, (b) 224.0278 (+5e-7 relative), (c) 225.7337 (+1.71,
  +0.76%); (a) 90 s (features 51 s, sqrtm 39 s), (b) 51 s (Gram distance 0.2 s), (c) 77 s;
  3.9 images/s through pytorch-fid's network, 3.7 through torch-fidelity's (the same work).
* 30 vs 30 299-px crops (no resizing; only the 255 vs 256 scaling differs): (a) 176.2632,
  (b) 176.2635 (+1.4e-6), (c) 176.1770 (-0.086, -0.049%).
* 8 vs 8 96-px crops taken apart (Gram route on each feature set): pytorch-fid 402.43; pytorch-fid's
  network fed the TF 1.x resize of ``u / 255`` 397.50 (the resizer: -4.9); fed the TF 1.x resize of
  ``u / 256`` 397.33, on torch-fidelity's features bit for bit (the scaling: -0.17); torch-fidelity's
  own eigenvalue distance on them 397.33398 (-1.8e-4, the distance method). The resizer is almost
  all of the gap below 299 px; with a handful of images it reaches 1-2%, with 100 images under 1%,
  and its sign varies.
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import numpy as np
import torch
from scipy import ndimage
from torch.utils.data import Dataset

from deepfake_detection.evaluation import fid as F

PHOTOS = ("astronaut", "coffee", "chelsea", "rocket", "immunohistochemistry", "hubble_deep_field")
FIDELITY_EXTRACTOR = "inception-v3-compat"


def photos() -> list[np.ndarray]:
    """The (H, W, 3) uint8 colour photos scikit-image ships (no download)."""
    import skimage.data

    return [getattr(skimage.data, name)()[..., :3] for name in PHOTOS]


def random_crops(images: list[np.ndarray], n: int, side: int, rng: np.random.Generator) -> np.ndarray:
    """``n`` uint8 (n, 3, side, side) crops, each from a random photo at a random place."""
    out = np.empty((n, 3, side, side), dtype=np.uint8)
    for i in range(n):
        img = images[rng.integers(len(images))]
        y, x = rng.integers(img.shape[0] - side + 1), rng.integers(img.shape[1] - side + 1)
        out[i] = img[y:y + side, x:x + side].transpose(2, 0, 1)
    return out


def degrade(images: np.ndarray, blur: float, noise: float, rng: np.random.Generator) -> np.ndarray:
    """Gaussian blur (sigma ``blur`` px) then Gaussian noise (sigma ``noise`` grey levels), uint8."""
    out = ndimage.gaussian_filter(images.astype(np.float64), sigma=(0, 0, blur, blur))
    out += rng.normal(0.0, noise, size=out.shape)
    return np.clip(np.rint(out), 0, 255).astype(np.uint8)


def photo_sets(n_real: int, n_fake: int, side: int, seed: int = 0, blur: float = 1.5,
               noise: float = 12.0) -> tuple[torch.Tensor, torch.Tensor]:
    """(real, fake) uint8 (N, 3, side, side): photo crops, and other crops blurred and noised."""
    rng = np.random.default_rng(seed)
    pics = photos()
    real = random_crops(pics, n_real, side, rng)
    fake = degrade(random_crops(pics, n_fake, side, rng), blur, noise, rng)
    return torch.from_numpy(real), torch.from_numpy(fake)


class UInt8Images(Dataset):
    """A uint8 (N, 3, H, W) tensor as the Dataset torch-fidelity takes (each item one (3, H, W) tensor)."""

    def __init__(self, images: torch.Tensor):
        self.images = images

    def __len__(self) -> int:
        return len(self.images)

    def __getitem__(self, i: int) -> torch.Tensor:
        return self.images[i]


def weights_file(state: dict, folder: Path) -> Path:
    """pytorch-fid's Inception3 state dict saved where torch-fidelity can load it (same keys)."""
    path = Path(folder) / "inception-2015-12-05-pytorch-fid-keys.pth"
    torch.save(state, path)
    return path


def fidelity_extractor(weights_path: Path, layer: str = "2048"):
    """torch-fidelity's InceptionV3 giving ``layer`` features ("2048": pool3), weights from ``weights_path``, CPU."""
    from torch_fidelity.feature_extractor_inceptionv3 import FeatureExtractorInceptionV3

    return FeatureExtractorInceptionV3(FIDELITY_EXTRACTOR, [layer], feature_extractor_weights_path=str(weights_path))


@torch.no_grad()
def fidelity_features(images: torch.Tensor, extractor) -> np.ndarray:
    """(N, 2048) float64 pool3 features of uint8 images by torch-fidelity's extractor."""
    return extractor(images)[0].double().numpy()


def fidelity_fid(real: torch.Tensor, fake: torch.Tensor, weights_path: Path, batch_size: int = 50,
                 layer: str = "2048") -> float:
    """torch-fidelity's own FID (``calculate_metrics``) between two uint8 image tensors, on the CPU.

    ``layer`` is torch-fidelity's ``feature_layer_fid`` ("2048": pool3, the standard FID).
    ``save_cpu_ram`` keeps its DataLoader in this process (no workers); ``cache=False`` writes nothing.
    """
    import torch_fidelity

    out = torch_fidelity.calculate_metrics(
        input1=UInt8Images(real), input2=UInt8Images(fake), fid=True, cuda=False, batch_size=batch_size,
        feature_extractor=FIDELITY_EXTRACTOR, feature_layer_fid=layer,
        feature_extractor_weights_path=str(weights_path), cache=False, save_cpu_ram=True,
        verbose=False)
    return float(out["frechet_inception_distance"])


def _timed(fn, *args, **kwargs):
    start = time.perf_counter()
    value = fn(*args, **kwargs)
    return value, time.perf_counter() - start


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--n", type=int, default=100, help="images per set (real and fake)")
    ap.add_argument("--side", type=int, default=64, help="crop side in pixels (299: no resizing)")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--batch-size", type=int, default=50)
    args = ap.parse_args()
    torch.set_num_threads(args.threads)

    real, fake = photo_sets(args.n, args.n, args.side, args.seed)
    weights, origin = F.inception_weights()
    model = F.fid_network("cpu", weights)
    F.activations(real[:1], model)        # the first forward pays one-off set-up costs: keep them out of the timings
    acts, t_feat = _timed(lambda: (F.activations(real, model, args.batch_size),
                                   F.activations(fake, model, args.batch_size)))
    a, t_sqrtm = _timed(F.fid_from_activations, *acts, method="pytorch_fid")
    b, t_gram = _timed(F.fid_from_activations, *acts, method="gram")
    with tempfile.TemporaryDirectory() as tmp:
        path = weights_file(weights, Path(tmp))
        c, t_fidelity = _timed(fidelity_fid, real, fake, path, args.batch_size)
        extractor = fidelity_extractor(path)
        fidelity_features(real[:1], extractor)
        _, t_fid_feat = _timed(lambda: [fidelity_features(x[i:i + args.batch_size], extractor)
                                        for x in (real, fake) for i in range(0, len(x), args.batch_size)])

    n_img = 2 * args.n
    print(f"{args.n} real vs {args.n} fake {args.side}-px photo crops; Inception weights from {origin}; "
          f"{args.threads} threads")
    print(f"(a) pytorch-fid (sqrtm)  FID {a['fid']:.6f}  {t_feat + t_sqrtm:7.2f} s "
          f"(features {t_feat:.2f} s, distance {t_sqrtm:.2f} s)")
    print(f"(b) gram route           FID {b['fid']:.6f}  {t_feat + t_gram:7.2f} s "
          f"(features {t_feat:.2f} s, distance {t_gram:.3f} s)")
    print(f"(c) torch-fidelity       FID {c:.6f}  {t_fidelity:7.2f} s (calculate_metrics, all in)")
    for name, x, y in (("b - a", b["fid"], a["fid"]), ("c - a", c, a["fid"]), ("c - b", c, b["fid"])):
        print(f"    {name}: {x - y:+.3e} absolute, {(x - y) / y:+.3e} relative")
    print(f"Inception on this CPU: pytorch-fid network {n_img / t_feat:.2f} images/s, "
          f"torch-fidelity network {n_img / t_fid_feat:.2f} images/s")
    if a["fid_warning"]:
        print(f"note: {a['fid_warning']}")


if __name__ == "__main__":
    main()
