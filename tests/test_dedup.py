"""Leakage guard: integer features, box-aligned views, pair search against all pairs, linking."""

from __future__ import annotations

import cv2
import numpy as np
import pandas as pd
import pytest

from deepfake_detection.data.dedup import (MARGINS, MIN_VOTES, REPORT_COLUMNS, cross_pairs, estimate_margins,
                                           grey, integral, link_duplicates, merge_groups, naive_cross_pairs,
                                           naive_pairs, ncc_permille, near_duplicate_pairs, perceptual_hash,
                                           region_thumbs, thumb_hashes, view_regions)
from deepfake_detection.faces.boxes import crop_box
from deepfake_detection.io import resize_square, write_image_rgb


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


def test_grey_and_region_thumbs_are_exact_integer_box_means():
    assert grey(np.array([[[10, 20, 30]]], dtype=np.uint8))[0, 0] == (77 * 10 + 150 * 20 + 29 * 30 + 128) >> 8 == 18
    g = (np.arange(16).reshape(4, 4) * 10).astype(np.uint8)
    ii = integral(g)
    # 2x2 means of the 4x4 image: (0 + 10 + 40 + 50) / 4 = 25, ...
    np.testing.assert_array_equal(region_thumbs(ii, [[0, 0, 4, 4]], 2)[0], [[25, 45], [105, 125]])
    # a region smaller than the thumbnail is sampled: each pixel repeated
    np.testing.assert_array_equal(region_thumbs(ii, [[1, 1, 3, 3]], 4)[0],
                                  [[50, 50, 60, 60], [50, 50, 60, 60], [90, 90, 100, 100], [90, 90, 100, 100]])
    # half-up rounding: mean of 0 and 1 is 1
    np.testing.assert_array_equal(region_thumbs(integral(np.array([[0, 1]], np.uint8)), [[0, 0, 2, 1]], 1)[0], [[1]])


def test_thumb_hash_is_pinned_and_balanced():
    t = ((np.arange(32)[:, None] * 7 + np.arange(32)[None, :] * 3) % 251).astype(np.uint8)
    h = int(thumb_hashes(t[None])[0])
    assert h == 0x873847956ADD274A      # integer arithmetic: the same bits on every machine
    assert bin(h).count("1") == 32       # median split: half of the 64 bits set
    assert perceptual_hash(np.repeat(cv2.resize(t, (64, 64), interpolation=cv2.INTER_NEAREST)[..., None], 3, 2)) == h


def test_ncc_permille_matches_numpy_corrcoef():
    rng = np.random.default_rng(0)
    a = rng.integers(0, 256, (20, 32, 32))
    b = np.clip(a + rng.normal(0, rng.uniform(5, 120, 20)[:, None, None], a.shape), 0, 255).astype(np.int64)
    ref = [np.corrcoef(x.ravel(), y.ravel())[0, 1] for x, y in zip(a, b)]
    got = ncc_permille(a, b)
    assert list(got) == [int(np.floor(1000 * r)) for r in ref]
    flat = np.full((1, 32, 32), 7)
    assert list(ncc_permille(np.concatenate([a[:1], a[:1], flat]), np.concatenate([a[:1], 255 - a[:1], a[:1]]))) == [
        1000, 0, 0]                      # itself, its negative, a flat image


def test_view_regions_square_clamp_and_box_by_hand():
    box = np.array([[10, 20, 40, 20], [80, 60, 20, 20]])
    img = np.array([[100, 80], [100, 80]])
    reg = view_regions(box, img, [1.5, 2.0])
    # face 0, margin 1.5: side 60 around (30, 30) shifted inside; the box scaled to 60 x 30
    assert reg[0, 0].tolist() == [[0, 0, 60, 60], [0, 0, 60, 60], [0, 15, 60, 45]]
    # margin 2.0: side 80 (the image height); clamped square 70 x 70; box 80 x 40 clamped
    assert reg[0, 1].tolist() == [[0, 0, 80, 80], [0, 0, 70, 70], [0, 10, 70, 50]]
    # face 1 at the bottom-right corner, margin 2.0: square shifted to (60, 40); clamped (70, 50)
    assert reg[1, 1].tolist() == [[60, 40, 100, 80], [70, 50, 100, 80], [70, 50, 100, 80]]


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
    fast, slow = near_duplicate_pairs(hashes, max_distance), naive_pairs(hashes, max_distance)
    assert len(fast[0]) > 100
    for f, s in zip(fast, slow):
        np.testing.assert_array_equal(f, s)
    queries = np.concatenate([hashes[:300] ^ np.uint64(1 << 5), hashes[-3:]])
    fast, slow = cross_pairs(queries, hashes, max_distance, chunk=97), naive_cross_pairs(queries, hashes, max_distance)
    assert (len(fast[0]) > 300) == (max_distance >= 1)     # the 1-bit copies need max_distance >= 1
    for f, s in zip(fast, slow):
        np.testing.assert_array_equal(f, s)


def test_estimate_margins_keeps_the_voted_margin_and_its_neighbours():
    rng = np.random.default_rng(1)
    views = rng.integers(0, 2 ** 63, 40, dtype=np.int64).astype(np.uint64)
    margin = np.arange(40) % len(MARGINS)
    v_group = np.array([f"v{i}" for i in range(40)])
    twins = [7, 32, 7 + 25]              # views at margin index 7 (32 % 25 == 7)
    q = views[twins] ^ np.uint64(0b11)   # 2 bits away
    assert list(margin[twins]) == [7, 7, 7]
    assert estimate_margins(q, np.array(["q0", "q1", "q2"]), views, v_group, margin, 4) == [6, 7, 8]
    assert MIN_VOTES == 3
    assert estimate_margins(q[:2], np.array(["q0", "q1"]), views, v_group, margin, 4) == []
    # a match within the same group does not vote
    assert estimate_margins(q, v_group[twins], views, v_group, margin, 4) == []


def test_merge_groups_is_transitive_and_order_free():
    faces = pd.DataFrame({"face_id": list("abcd"), "group": ["g2", "g1", "g3", "g4"], "x": [1, 2, 3, 4]})
    report = pd.DataFrame({"face_id_a": ["a", "b"], "face_id_b": ["b", "c"]})
    out = merge_groups(faces, report)
    assert list(out["group"]) == ["g1", "g1", "g1", "g4"] and list(out["x"]) == [1, 2, 3, 4]
    assert merge_groups(faces.iloc[::-1], report)["group"].tolist() == ["g4", "g1", "g1", "g1"]


def _scene(seed: int, size: int = 256) -> tuple[np.ndarray, list[tuple[float, float, float, float]]]:
    """A textured scene with two cartoon faces at known boxes (one at the border)."""
    rng = np.random.default_rng(seed)
    scene = cv2.GaussianBlur(rng.integers(0, 256, (size, size, 3)).astype(np.uint8), (0, 0), 4)
    boxes = [(40.0 + seed % 7, 60.0, 56.0, 64.0), (190.0, 170.0, 50.0, 56.0)]
    for k, (x, y, w, h) in enumerate(boxes):
        f = cv2.resize(face(seed * 10 + k), (int(w), int(h)), interpolation=cv2.INTER_AREA)
        scene[int(y):int(y) + int(h), int(x):int(x) + int(w)] = f
    return scene, boxes


def _folder_copy(scene, box, margin=1.8, size=128):
    """The demo's folder crop: a square of max(w, h) * margin shifted inside the scene."""
    reg = view_regions(np.array([box]), np.array([scene.shape[1::-1]]), [margin], ("square",))[0, 0, 0]
    return resize_square(jpeg(scene[reg[1]:reg[3], reg[0]:reg[2]], 95), size)


def test_link_duplicates_finds_recrops_with_another_margin(tmp_path):
    """COCO-style crops (margin 1.3, clamped) and folder copies (margin 1.8, shifted) link."""
    rows = []
    for s in range(3):
        scene, boxes = _scene(s)
        write_image_rgb(tmp_path / f"raw/scene{s}.jpg", scene, 90)
        for k, (x, y, w, h) in enumerate(boxes):
            x0, y0, x1, y1 = crop_box((x, y, x + w, y + h), 256, 256, 1.3, True)
            write_image_rgb(tmp_path / f"of/{s}_{k}.jpg", resize_square(scene[y0:y1, x0:x1], 64), 95)
            rows.append({"face_id": f"of/{s}_{k}", "path": f"of/{s}_{k}.jpg", "source": "of", "group": f"of:{s}",
                         "src_path": (tmp_path / f"raw/scene{s}.jpg").as_posix(), "box_x": x, "box_y": y,
                         "box_w": w, "box_h": h, "img_w": 256, "img_h": 256})
            if (s, k) != (2, 1):         # one face has no folder copy
                write_image_rgb(tmp_path / f"dfr/{s}_{k}.jpg", resize_square(_folder_copy(scene, (x, y, w, h)), 64), 95)
                rows.append({"face_id": f"dfr/{s}_{k}", "path": f"dfr/{s}_{k}.jpg", "source": "dfr",
                             "group": f"dfr:{s}_{k}", "src_path": f"dfr/{s}_{k}.jpg", "box_x": 0, "box_y": 0,
                             "box_w": 64, "box_h": 64, "img_w": 64, "img_h": 64})
    faces = pd.DataFrame(rows)
    out, report, stats = link_duplicates(faces, tmp_path, max_distance=6, min_ncc=930)
    assert list(report.columns) == REPORT_COLUMNS
    assert list(zip(report["face_id_a"], report["face_id_b"])) == [
        ("dfr/0_0", "of/0_0"), ("dfr/0_1", "of/0_1"), ("dfr/1_0", "of/1_0"), ("dfr/1_1", "of/1_1"),
        ("dfr/2_0", "of/2_0")]
    assert report["view"].str.endswith(":b").all() and (report["ncc"] >= 930).all()
    assert stats["boxed_faces"] == 6 and stats["faces_readable"] == 11
    # a scene's faces share a group, so both folder copies join it: named after the smallest
    assert out.set_index("face_id").loc[["dfr/1_0", "dfr/1_1", "of/1_0", "of/1_1"], "group"].tolist() == ["dfr:1_0"] * 4
    assert out.set_index("face_id").loc["of/2_1", "group"] == "dfr:2_0"
    # the result does not depend on row order
    out2, report2, _ = link_duplicates(faces.iloc[::-1], tmp_path, max_distance=6, min_ncc=930)
    assert out2.sort_index().equals(out) and report2.equals(report)


def test_identical_crops_link_and_unreadable_ones_are_skipped(tmp_path):
    a = face(0)
    for rel, img in {"x/a.png": a, "y/a.jpg": jpeg(a, 90), "x/b.png": face(5)}.items():
        write_image_rgb(tmp_path / rel, img, 95)
    faces = pd.DataFrame({"face_id": ["x1", "y1", "x2", "x3"], "path": ["x/a.png", "y/a.jpg", "x/b.png", "x/gone.png"],
                          "source": ["x", "y", "x", "x"], "group": ["gx1", "gy1", "gx2", "gx3"]})
    with pytest.warns(UserWarning, match="1 unreadable"):
        out, report, _ = link_duplicates(faces, tmp_path, 4, 930)
    assert list(out["group"]) == ["gx1", "gx1", "gx2", "gx3"]
    assert report[["face_id_a", "face_id_b", "view"]].values.tolist() == [["x1", "y1", "crop"]]
