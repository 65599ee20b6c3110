"""Leakage guard: perceptual hashes of hand-made faces, pair search against all pairs, group merging."""

from __future__ import annotations

import cv2
import numpy as np
import pandas as pd
import pytest

from deepfake_detection.data.dedup import (REPORT_COLUMNS, link_duplicates, naive_pairs, near_duplicate_pairs,
                                           perceptual_hash)
from deepfake_detection.io import write_image_rgb


def face(seed: int, size: int = 128) -> np.ndarray:
    """A cartoon face crop: gradient background, skin ellipse, eyes, mouth, sensor noise."""
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:size, 0:size].astype(np.float32)
    bg = rng.uniform(60, 180) + rng.uniform(-0.6, 0.6) * xx + rng.uniform(-0.6, 0.6) * yy
    img = np.repeat(np.clip(bg, 0, 255)[..., None], 3, axis=2).astype(np.uint8)
    cx, cy = (int(size / 2 + rng.integers(-10, 10)) for _ in range(2))
    skin = tuple(int(v) for v in rng.integers(120, 230, 3))
    axes = (int(size * rng.uniform(0.25, 0.35)), int(size * rng.uniform(0.35, 0.45)))
    cv2.ellipse(img, (cx, cy), axes, 0, 0, 360, skin, -1)
    for side in (-1, 1):
        cv2.circle(img, (cx + side * int(size * 0.12), cy - int(size * 0.08)), int(size * 0.05), (30, 30, 30), -1)
    cv2.ellipse(img, (cx, cy + int(size * 0.18)), (int(size * 0.12), int(size * 0.04)), 0, 0, 360, (150, 40, 50), -1)
    img = np.clip(img + rng.normal(0, 6, img.shape), 0, 255).astype(np.uint8)
    return cv2.GaussianBlur(img, (3, 3), 0)


def jpeg(rgb: np.ndarray, quality: int = 70) -> np.ndarray:
    ok, buf = cv2.imencode(".jpg", np.ascontiguousarray(rgb[..., ::-1]), [cv2.IMWRITE_JPEG_QUALITY, quality])
    assert ok
    return cv2.imdecode(buf, cv2.IMREAD_COLOR)[..., ::-1]


def shifted(rgb: np.ndarray, px: int = 2) -> np.ndarray:
    """Cut ``px`` rows and columns off the top-left corner and resize back: a 2 px shifted crop."""
    h, w = rgb.shape[:2]
    return cv2.resize(rgb[px:, px:], (w, h), interpolation=cv2.INTER_AREA)


def bits(a: int, b: int) -> int:
    return bin(a ^ b).count("1")


def test_perceptual_hash_is_64_bits_and_tolerates_reencoding_shift_and_scale():
    a = face(0)
    h = perceptual_hash(a)
    assert 0 <= h < 2 ** 64 and h == perceptual_hash(a.copy())
    assert perceptual_hash(cv2.cvtColor(a, cv2.COLOR_RGB2GRAY)) == h
    assert bits(h, perceptual_hash(jpeg(a))) <= 4
    assert bits(h, perceptual_hash(shifted(a))) <= 4
    assert bits(h, perceptual_hash(cv2.resize(a, (64, 64), interpolation=cv2.INTER_AREA))) <= 4
    assert min(bits(h, perceptual_hash(face(s))) for s in range(1, 6)) > 4     # other faces


def test_link_duplicates_merges_groups_of_copies_across_sources(tmp_path):
    a, b = face(0), face(3)
    files = {"of/a.png": a, "dfr/a_copy.jpg": jpeg(a), "dfr/a_shift.png": shifted(a),
             "of/b.png": b, "of/b_other_face.png": face(5)}
    for rel, img in files.items():
        write_image_rgb(tmp_path / rel, img, jpeg_quality=90)
    faces = pd.DataFrame({
        "face_id": ["of-1", "dfr-7", "dfr-9", "of-2", "of-3"],
        "path": list(files),
        "source": ["openforensics", "dfr", "dfr", "openforensics", "openforensics"],
        "group": ["of:img1", "dfr:x", "dfr:y", "of:img2", "of:img2"],
        "label": [1, 1, 1, 0, 0],
    })
    out, report = link_duplicates(faces, tmp_path, max_distance=4)
    assert list(out.columns) == list(faces.columns) and list(out["face_id"]) == list(faces["face_id"])
    assert list(out["group"]) == ["dfr:x", "dfr:x", "dfr:x", "of:img2", "of:img2"]
    assert list(report.columns) == REPORT_COLUMNS
    assert [tuple(r) for r in report[["face_id_a", "face_id_b", "source_a", "source_b"]].itertuples(index=False)] == [
        ("dfr-7", "dfr-9", "dfr", "dfr"), ("dfr-7", "of-1", "dfr", "openforensics"),
        ("dfr-9", "of-1", "dfr", "openforensics")]
    assert report["distance"].between(0, 4).all()
    # The result does not depend on row order.
    out2, report2 = link_duplicates(faces.iloc[::-1], tmp_path, max_distance=4)
    assert out2.sort_index().equals(out) and report2.equals(report)


def test_groups_merge_transitively_and_unreadable_images_are_skipped(tmp_path):
    h0 = np.uint64(0)
    h1 = np.uint64(0b111)                   # 3 bits from h0
    h2 = np.uint64(0b111111)                # 3 bits from h1, 6 from h0
    far = np.uint64(2 ** 64 - 1)
    faces = pd.DataFrame({"face_id": list("abcd"), "path": list("abcd"), "source": ["s"] * 4,
                          "group": ["g2", "g1", "g3", "g4"]})
    out, report = link_duplicates(faces, tmp_path, 4, hashes=np.array([h0, h1, h2, far]))
    assert list(out["group"]) == ["g1", "g1", "g1", "g4"]
    assert list(zip(report["face_id_a"], report["face_id_b"], report["distance"])) == [("a", "b", 3), ("b", "c", 3)]
    with pytest.warns(UserWarning, match="4 unreadable"):
        out, report = link_duplicates(faces, tmp_path, 4)          # no files on disk at all
    assert out.equals(faces) and report.empty


@pytest.mark.parametrize("max_distance", [0, 2, 4, 7])
def test_band_search_finds_exactly_the_all_pairs_result(max_distance):
    rng = np.random.default_rng(max_distance)
    base = rng.integers(0, 2 ** 63, 3000, dtype=np.int64).astype(np.uint64) * np.uint64(2) + np.uint64(1)
    # Plant neighbours at every distance up to max_distance + 2, and exact duplicates.
    picks = rng.choice(len(base), 400, replace=False)
    near = []
    for k, p in enumerate(picks):
        flips = rng.choice(64, k % (max_distance + 3), replace=False)
        near.append(base[p] ^ np.uint64(sum(1 << int(f) for f in flips)))
    hashes = np.concatenate([base, np.array(near, dtype=np.uint64), base[:5]])
    rng.shuffle(hashes)
    fast = near_duplicate_pairs(hashes, max_distance)
    slow = naive_pairs(hashes, max_distance)
    assert len(fast[0]) > 100
    for f, s in zip(fast, slow):
        np.testing.assert_array_equal(f, s)
