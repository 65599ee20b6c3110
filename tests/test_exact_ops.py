"""exact_ops: the CPU-independent float64 image operations, checked against numpy/scikit-image."""

import numpy as np
import pytest
from skimage.color import lab2rgb, rgb2lab

from deepfake_detection.data import exact_ops
from deepfake_detection.io import resize_square


def test_elementary_functions_match_numpy():
    x = np.linspace(-30.0, 5.0, 2001)
    assert np.allclose(exact_ops.exp(x), np.exp(x), rtol=1e-12, atol=0)
    assert np.allclose(exact_ops.tanh(x), np.tanh(x), rtol=0, atol=1e-11)
    t = np.linspace(1e-4, 2.0, 5001)
    for n in (3, 5):
        assert np.allclose(exact_ops.root(t, n), t ** (1.0 / n), rtol=1e-14, atol=0)
    assert exact_ops.root(np.array([8.0, 32.0]), 3)[0] == 2.0


def test_resize_box_is_block_mean_and_keeps_constants():
    img = np.arange(16.0).reshape(4, 4)
    assert np.array_equal(exact_ops.resize(img, 2, 2, "box"), [[2.5, 4.5], [10.5, 12.5]])
    # enlarging 2 -> 3: the middle output pixel straddles both inputs equally
    assert np.allclose(exact_ops.resize(np.array([[0.0, 1.0]]), 1, 3, "box"), [[0.0, 0.5, 1.0]],
                       rtol=0, atol=1e-15)
    const = np.full((7, 9, 3), 0.3)
    for kernel in exact_ops.KERNEL_SUPPORT:
        for h, w in ((20, 15), (3, 4)):
            assert np.allclose(exact_ops.resize(const, h, w, kernel), 0.3, rtol=0, atol=1e-15)
    with pytest.raises(ValueError, match="unknown resampling kernel 'nearest'"):
        exact_ops.resize(const, 3, 3, "nearest")


def test_gaussian_blur_keeps_mass_and_constants():
    img = np.zeros((41, 41))
    img[20, 20] = 1.0
    out = exact_ops.gaussian_blur(img, 2.0)
    assert out.sum() == pytest.approx(1.0, abs=1e-12)
    assert out[20, 20] == pytest.approx(1 / (2 * np.pi * 4.0), rel=0.02)
    assert np.allclose(exact_ops.gaussian_blur(np.full((9, 9, 3), 0.7), 1.5), 0.7, atol=1e-15)


def test_soft_ellipse_area():
    mask = exact_ops.soft_ellipse(100, 120, (60, 50), (30, 20))
    assert mask.sum() == pytest.approx(np.pi * 30 * 20, rel=0.005)
    assert mask[50, 60] == 1.0 and mask[0, 0] == 0.0


def test_lab_matches_scikit_image_and_round_trips():
    rgb = np.random.default_rng(0).random((16, 16, 3))
    lab = exact_ops.rgb_to_lab(rgb)
    assert np.allclose(lab, rgb2lab(rgb), atol=0.02)
    assert np.allclose(exact_ops.lab_to_rgb(lab), rgb, atol=5e-5)
    assert np.allclose(exact_ops.lab_to_rgb(rgb2lab(rgb)), lab2rgb(rgb2lab(rgb)), atol=5e-4)


def test_exact_matmul_is_exact_or_refuses():
    rng = np.random.default_rng(1)
    a = exact_ops.quantise(rng.normal(size=(5, 64)), 16)
    b = exact_ops.quantise(rng.normal(size=(64, 7)), 20)
    ints = (a * 2**16).astype(np.int64) @ (b * 2**20).astype(np.int64)   # exact integer product
    assert np.array_equal(exact_ops.exact_matmul(a, b, 16, 20), ints / 2.0**36)
    with pytest.raises(ValueError, match="do not fit 53 bits"):
        exact_ops.exact_matmul(a * 2**12, b, 16, 20)


def test_resize_square_is_antialiased_and_checks_input():
    checker = (np.indices((64, 64)).sum(0) % 2 * 255).astype(np.uint8)
    small = resize_square(np.repeat(checker[..., None], 3, 2), 16)
    assert small.shape == (16, 16, 3) and set(np.unique(small)) <= {127, 128}
    big = resize_square(np.full((10, 12, 3), 77, np.uint8), 32)
    assert big.shape == (32, 32, 3) and np.all(big == 77)
    with pytest.raises(ValueError, match="expected uint8"):
        resize_square(np.zeros((10, 10, 3)), 5)
