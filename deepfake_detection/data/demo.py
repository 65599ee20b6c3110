"""Built-in demo data: a miniature, offline, deterministic OpenForensics plus its folder copy.

``generate_demo`` writes synthetic scenes shaped exactly like OpenForensics (COCO polygons,
``{Train,Val,Test-Dev,Test-Challenge}_poly.json``, several real and fake faces per scene,
perturbed Test-Challenge scenes) and the same faces cut into the Kaggle
``deepfake-and-real-images`` layout (``Dataset/{Train,Validation,Test}/{Real,Fake}``), so the
whole pipeline runs end to end without a download.

How a scene is made:
  * background: a crop of a bundled scikit-image photo, a gradient, or a texture;
  * people: torsos, then heads (64x64 faces from the bundled ``gan_face_generate`` DCGAN)
    resampled with ordinary interpolation and pasted with a soft elliptical mask;
  * sensor noise over the whole scene;
  * fakes, made the way face swaps are made: the inner face region is replaced by another
    generated identity that is down-scaled and re-synthesised by a "generator" (stride-2
    transposed convolutions with fixed random kernels, hence checkerboard artefacts), colour
    matched in LAB and blended with a feathered mask. Strengths vary per face so some fakes
    are subtle; every knob is a :class:`DemoOptions` field.

``known_duplicates.csv`` (at ``out_dir``'s root, beside the two dataset folders so no dataset
adapter lists it) says which folder image re-crops which COCO face: columns
``path_a,annotation_a,path_b,annotation_b`` = the scene image relative to ``out_dir``
(``openforensics/Images/Train/train_0003.jpg``), its COCO annotation id, the folder image
relative to ``out_dir`` (``deepfake_and_real_images/Dataset/Train/Real/train_0003_f2.jpg``) and
an empty field; one row per folder image, sorted. Leakage checks read it.

Determinism: every scene draws from its own ``numpy`` generator seeded by
``(seed, split, index)`` (so resizing one split leaves the others unchanged). The bytes are the
same on every x86-64 CPU and thread count: all image arithmetic is float64 in
:mod:`.exact_ops` (no OpenCV float paths, no torch float kernels, no CPU-dispatched
``exp``/``pow``; the DCGAN's matrix products run on operands quantised so that BLAS is exact),
the scene is quantised to uint8 once, and JPEG goes through libjpeg-turbo's integer DCT, which
is exact across SIMD levels. What still touches libm (``sin``/``cos`` for polygons, Lanczos
taps and gradient angles; ``log``/``exp`` in the rare tail draws of numpy's normal sampler)
only feeds values rounded to 0.01 px or smooth weights, where a last-bit difference could flip
a byte with probability of order 1e-12. ``benchmarks/bench_reproducible.py`` checks it.
"""

from __future__ import annotations

import contextlib
import functools
import math
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np

from ..io import atomic_path, resize_square, write_csv, write_image_rgb, write_json
from ..params import check
from . import exact_ops

OF_DIR = "openforensics"
FOLDER_DIR = "deepfake_and_real_images"
# (OpenForensics split, DemoOptions count field, folder-layout split or None)
SPLITS = (
    ("Train", "n_train", "Train"),
    ("Val", "n_val", "Validation"),
    ("Test-Dev", "n_test_dev", "Test"),
    ("Test-Challenge", "n_test_challenge", None),
)
CATEGORIES = [{"id": 0, "name": "Real"}, {"id": 1, "name": "Fake"}]
PERTURBATIONS = ("noise", "blur", "jpeg", "color", "fog")
KNOWN_DUPLICATES = "known_duplicates.csv"
DUPLICATE_COLUMNS = ("path_a", "annotation_a", "path_b", "annotation_b")

# Face geometry inside a 64x64 DCGAN patch, as fractions of the patch side (the generator was
# trained on aligned DigiFace crops, so every face sits at about the same place).
FACE_CENTER = (0.5, 0.55)
FACE_AXES = (0.33, 0.37)          # semi-axes of the annotated face ellipse
HEAD_AXES = (0.42, 0.48)          # semi-axes of the pasted head (face + hair + patch context)
POLY_POINTS = 32
N_KERNELS = 4                     # fixed "generator" kernels the fakes draw from


@dataclass
class DemoOptions:
    """``sources.demo.options`` in params.yaml; ranges are ``[min, max]`` sampled per item.

    Easier fakes: raise ``blend_alpha``/``checkerboard``/``upsample_stages``, lower
    ``color_match``/``feather``/``real_resample``. Harder: the opposite.
    """

    seed: int = 1234
    n_train: int = 200
    n_val: int = 48
    n_test_dev: int = 60
    n_test_challenge: int = 60
    image_size: int = 256                                  # scene side in pixels
    faces_per_image: tuple[int, int] = (3, 5)
    face_size: tuple[int, int] = (40, 88)                  # face box width in pixels
    fake_fraction: float = 0.5
    # --- how hard the fakes are (per-face ranges)
    blend_alpha: tuple[float, float] = (0.75, 1.0)         # opacity of the swapped face
    upsample_stages: tuple[int, int] = (1, 2)              # x2 transposed-conv stages (down 2^k first)
    checkerboard: tuple[float, float] = (0.0, 0.4)         # kernel deviation from bilinear
    color_match: tuple[float, float] = (0.6, 1.0)          # 1: full LAB mean/std transfer
    feather: tuple[float, float] = (0.08, 0.25)            # mask blur, fraction of face width
    # --- ordinary processing every face/scene gets
    real_resample: tuple[float, float] = (1.0, 1.6)        # down-then-up factor applied to heads
    scene_noise: tuple[float, float] = (0.0, 3.0)          # sensor noise sigma (0-255 scale)
    scene_jpeg_quality: tuple[int, int] = (80, 95)
    challenge_perturbations: tuple[int, int] = (1, 2)      # how many per Test-Challenge scene
    # --- folder-layout copy
    folder_size: int = 128
    folder_margin: float = 1.8
    folder_jpeg_quality: int = 95
    # --- broken inputs so the rejects paths always run
    n_corrupt_images: int = 1
    n_bad_boxes: int = 2

    def validate(self, where: str) -> None:
        for name in ("n_train", "n_val", "n_test_dev", "n_test_challenge",
                     "n_corrupt_images", "n_bad_boxes"):
            value = getattr(self, name)
            check(value >= 0, f"{where}.{name}", f"must be >= 0, got {value}")
        check(self.n_corrupt_images <= self.n_train, f"{where}.n_corrupt_images",
              f"must be <= n_train ({self.n_train}), got {self.n_corrupt_images}")
        check(self.n_bad_boxes == 0 or self.n_train > self.n_corrupt_images,
              f"{where}.n_bad_boxes", "needs at least one readable Train image (raise n_train)")
        check(self.image_size >= 64, f"{where}.image_size", f"must be >= 64, got {self.image_size}")
        self._range(where, "faces_per_image", 1, 16)
        self._range(where, "face_size", 16, 4096)
        head = math.ceil(self.face_size[1] / (2 * FACE_AXES[0]))
        check(head <= self.image_size, f"{where}.face_size",
              f"max {self.face_size[1]} px makes heads of {head} px, larger than image_size "
              f"{self.image_size}; use at most {int(self.image_size * 2 * FACE_AXES[0])}")
        check(0.0 <= self.fake_fraction <= 1.0, f"{where}.fake_fraction",
              f"must be in [0, 1], got {self.fake_fraction}")
        self._range(where, "blend_alpha", 0.0, 1.0)
        self._range(where, "upsample_stages", 1, 3)
        self._range(where, "checkerboard", 0.0, 4.0)
        self._range(where, "color_match", 0.0, 1.0)
        self._range(where, "feather", 0.0, 0.5)
        self._range(where, "real_resample", 1.0, 8.0)
        self._range(where, "scene_noise", 0.0, 64.0)
        self._range(where, "scene_jpeg_quality", 1, 100)
        self._range(where, "challenge_perturbations", 1, len(PERTURBATIONS))
        check(self.folder_size >= 16, f"{where}.folder_size", f"must be >= 16, got {self.folder_size}")
        check(self.folder_margin >= 1.0, f"{where}.folder_margin",
              f"must be >= 1.0, got {self.folder_margin}")
        check(1 <= self.folder_jpeg_quality <= 100, f"{where}.folder_jpeg_quality",
              f"must be in 1..100, got {self.folder_jpeg_quality}")

    def _range(self, where: str, name: str, lo: float, hi: float) -> None:
        a, b = getattr(self, name)
        check(lo <= a <= b <= hi, f"{where}.{name}",
              f"must be [min, max] with {lo} <= min <= max <= {hi}, got {[a, b]}")


# --------------------------------------------------------------------------- public entry


def generate_demo(out_dir: Path, opts: DemoOptions) -> dict:
    """Write the demo datasets under ``out_dir`` and return their counts.

    ``out_dir/openforensics`` and ``out_dir/deepfake_and_real_images`` are each built in a
    temporary folder and renamed into place, so they are always complete and never hold files
    from an earlier run; ``out_dir/known_duplicates.csv`` follows them. Same options, same bytes,
    on any CPU.
    """
    out_dir = Path(out_dir)
    opts.validate("demo")
    counts: dict = {"seed": opts.seed, OF_DIR: {}, FOLDER_DIR: {}}
    duplicates: list[dict] = []
    with contextlib.ExitStack() as stack:
        stack.enter_context(_torch_threads(1))
        of_root = stack.enter_context(atomic_path(out_dir / OF_DIR, is_dir=True))
        folder_root = stack.enter_context(atomic_path(out_dir / FOLDER_DIR, is_dir=True))
        kernels = _kernel_bank(opts.seed)
        for split_no, (split, _, folder_split) in enumerate(SPLITS):
            of_counts, folder_counts, dups = _write_split(of_root, folder_root, split_no, opts,
                                                          kernels)
            counts[OF_DIR][split] = of_counts
            duplicates += dups
            if folder_split:
                counts[FOLDER_DIR][folder_split] = folder_counts
    write_known_duplicates(out_dir / KNOWN_DUPLICATES, duplicates)
    return counts


@contextlib.contextmanager
def _torch_threads(n: int):
    """Run the DCGAN's (exact) matrix products on ``n`` threads: small products are fastest on one.

    Only speed depends on it; the products are exact (see :func:`_generate_faces`).
    """
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(n)
    try:
        yield
    finally:
        torch.set_num_threads(before)


def write_known_duplicates(path: Path, rows: list[dict]) -> None:
    """``known_duplicates.csv``: one sorted row per folder image and the COCO face it re-crops."""
    import pandas as pd

    frame = pd.DataFrame(rows, columns=list(DUPLICATE_COLUMNS))
    frame = frame.sort_values(list(DUPLICATE_COLUMNS), kind="stable")
    write_csv(path, frame)


def _write_split(of_root: Path, folder_root: Path, split_no: int, opts: DemoOptions,
                 kernels: np.ndarray) -> tuple[dict, dict, list[dict]]:
    """Scenes, COCO file and folder copies of one split.

    Returns the COCO counts, the folder counts and one known-duplicate row per folder image.
    """
    split, count_field, folder_split = SPLITS[split_no]
    n = getattr(opts, count_field)
    corrupt = _corrupt_indices(opts) if split == "Train" else set()
    bad_slots = _bad_box_slots(opts, corrupt) if split == "Train" else {}
    images, annotations, duplicates = [], [], []
    c = {"images": n, "faces": 0, "real": 0, "fake": 0, "corrupt_images": 0, "bad_boxes": 0,
         "perturbed": 0}
    fc = {"Real": 0, "Fake": 0}
    for i in range(n):
        name = f"{split.lower().replace('-', '')}_{i:04d}"
        rng = np.random.default_rng([opts.seed, split_no, i])
        scene, faces, perturbation = _make_scene(rng, opts, kernels,
                                                 challenge=split == "Test-Challenge")
        image_id = i + 1
        entry = {"id": image_id, "file_name": f"Images/{split}/{name}.jpg",
                 "width": opts.image_size, "height": opts.image_size}
        if perturbation:
            entry["perturbation"] = perturbation
            c["perturbed"] += 1
        images.append(entry)
        path = of_root / "Images" / split / f"{name}.jpg"
        quality = int(rng.integers(opts.scene_jpeg_quality[0], opts.scene_jpeg_quality[1] + 1))
        if i in corrupt:
            _write_corrupt(path, scene)
            c["corrupt_images"] += 1
        else:
            write_image_rgb(path, scene, jpeg_quality=quality)
        for k, face in enumerate(faces):
            ann_id = len(annotations) + 1
            annotations.append(_annotation(ann_id, image_id, face["label"], face["polygon"]))
            c["faces"] += 1
            c["fake" if face["label"] else "real"] += 1
            if folder_split and i not in corrupt:
                cls = "Fake" if face["label"] else "Real"
                rel = f"Dataset/{folder_split}/{cls}/{name}_f{k}.jpg"
                crop = _folder_crop(scene, face["box"], opts.folder_margin, opts.folder_size)
                write_image_rgb(folder_root / rel, crop, jpeg_quality=opts.folder_jpeg_quality)
                duplicates.append({"path_a": f"{OF_DIR}/{entry['file_name']}", "annotation_a": ann_id,
                                   "path_b": f"{FOLDER_DIR}/{rel}", "annotation_b": ""})
                fc[cls] += 1
        for kind in bad_slots.get(i, []):
            annotations.append(_annotation(len(annotations) + 1, image_id, int(rng.integers(0, 2)),
                                           _bad_polygon(kind, opts.image_size, rng)))
            c["bad_boxes"] += 1
    write_json(of_root / f"{split}_poly.json",
               {"images": images, "annotations": annotations, "categories": CATEGORIES})
    return c, fc, duplicates


# --------------------------------------------------------------------------- COCO helpers


def ellipse_polygon(cx: float, cy: float, ax: float, ay: float, n: int = POLY_POINTS) -> list[float]:
    """A closed ellipse as a flat ``[x1, y1, x2, y2, ...]`` list rounded to 0.01 px."""
    t = np.arange(n) * (2 * np.pi / n)
    pts = np.stack([cx + ax * np.cos(t), cy + ay * np.sin(t)], axis=1)
    return [round(float(v), 2) for v in pts.reshape(-1)]


def polygon_area(poly: list[float]) -> float:
    """Shoelace area of a flat polygon list.

    ``math.fsum`` rounds the exact sum once, so the area is the same on every CPU (``np.dot``
    goes through BLAS, whose kernel choice changes the last bit, and the area is rounded).
    """
    x, y = poly[0::2], poly[1::2]
    n = len(x)
    terms = [x[i] * y[(i + 1) % n] for i in range(n)] + [-y[i] * x[(i + 1) % n] for i in range(n)]
    return abs(math.fsum(terms)) / 2


def polygon_bbox(poly: list[float]) -> list[float]:
    """``[x, y, w, h]`` enclosing a flat polygon list."""
    xs, ys = poly[0::2], poly[1::2]
    x0, y0 = min(xs), min(ys)
    return [x0, y0, round(max(xs) - x0, 2), round(max(ys) - y0, 2)]


def _annotation(ann_id: int, image_id: int, label: int, poly: list[float]) -> dict:
    return {"id": ann_id, "image_id": image_id, "category_id": int(label),
            "bbox": polygon_bbox(poly), "segmentation": [poly],
            "area": round(polygon_area(poly), 2), "iscrowd": 0}


def _bad_polygon(kind: str, size: int, rng: np.random.Generator) -> list[float]:
    """A face-like polygon that is entirely outside the image, or has zero area."""
    if kind == "box_outside":
        x0, y0, s = float(size + 10), float(rng.integers(0, size // 2)), 30.0
        return [x0, y0, x0 + s, y0, x0 + s, y0 + s, x0, y0 + s]
    x0, y0 = float(rng.integers(10, size // 2)), float(rng.integers(10, size // 2))
    return [x0, y0, x0, y0 + 20.0, x0, y0 + 40.0]          # a vertical line: w = 0, area = 0


def _corrupt_indices(opts: DemoOptions) -> set[int]:
    rng = np.random.default_rng([opts.seed, 1001])
    return set(int(i) for i in rng.choice(opts.n_train, size=opts.n_corrupt_images, replace=False))


def _bad_box_slots(opts: DemoOptions, corrupt: set[int]) -> dict[int, list[str]]:
    """Which readable Train scenes get the bad annotations (alternating outside / zero area)."""
    readable = [i for i in range(opts.n_train) if i not in corrupt]
    slots: dict[int, list[str]] = {}
    for b in range(opts.n_bad_boxes):
        i = readable[(b * 7 + 3) % len(readable)]
        slots.setdefault(i, []).append("box_outside" if b % 2 == 0 else "zero_area")
    return slots


def _write_corrupt(path: Path, scene: np.ndarray) -> None:
    """A truncated JPEG: the start of the real header, then garbage, so no decoder accepts it."""
    _, buf = cv2.imencode(".jpg", np.ascontiguousarray(scene[..., ::-1]))
    data = bytes(buf[:48]) + b"\x00not a complete JPEG\x00" * 4
    with atomic_path(path) as tmp:
        tmp.write_bytes(data)


# --------------------------------------------------------------------------- scene synthesis


def _make_scene(rng: np.random.Generator, opts: DemoOptions, kernels: np.ndarray,
                challenge: bool) -> tuple[np.ndarray, list[dict], str]:
    """One scene (uint8 RGB), its faces (label, polygon, box) and its perturbation name(s)."""
    size = opts.image_size
    scene = _background(rng, size)
    layout = _place_faces(rng, opts)
    labels = [int(rng.random() < opts.fake_fraction) for _ in layout]
    n_fake = sum(labels)
    # identities: one per head, one more per fake (the face swapped in)
    seed = int(rng.integers(0, 2**62))
    faces64 = _generate_faces(len(layout) + n_fake, seed)
    sources = iter(faces64[len(layout):])

    for (cx, cy, w) in layout:
        _draw_torso(rng, scene, cx, cy, w)
    for (cx, cy, w), face in zip(layout, faces64[:len(layout)]):
        _paste_head(rng, scene, face, cx, cy, w, opts.real_resample)
    sigma = rng.uniform(*opts.scene_noise)
    scene += rng.normal(0.0, sigma / 255.0, scene.shape)
    np.clip(scene, 0.0, 1.0, out=scene)

    faces = []
    for (cx, cy, w), label in zip(layout, labels):
        if label:
            _swap_face(rng, scene, next(sources), cx, cy, w, opts, kernels)
        ax, ay = w / 2, w / 2 * FACE_AXES[1] / FACE_AXES[0]
        poly = ellipse_polygon(cx, cy, ax, ay)
        faces.append({"label": label, "polygon": poly, "box": polygon_bbox(poly)})
    perturbation = ""
    if challenge:
        scene, perturbation = _perturb(rng, scene, opts.challenge_perturbations)
    return _to_uint8(scene), faces, perturbation


def _to_uint8(img: np.ndarray) -> np.ndarray:
    """The one quantisation of a float64 scene."""
    return np.clip(np.rint(img * 255.0), 0, 255).astype(np.uint8)


def _place_faces(rng: np.random.Generator, opts: DemoOptions) -> list[tuple[float, float, float]]:
    """Face centres and widths: boxes inside the image, heads not overlapping much."""
    size = opts.image_size
    n = int(rng.integers(opts.faces_per_image[0], opts.faces_per_image[1] + 1))
    lo, hi = opts.face_size
    placed: list[tuple[float, float, float]] = []
    for _ in range(n):
        w = float(rng.uniform(lo, hi))
        while True:
            spot = _find_spot(rng, size, w, placed)
            if spot is not None or w <= lo:
                break
            w = max(float(lo), w * 0.8)
        if spot is not None:
            placed.append(spot)
    return placed


def _find_spot(rng, size, w, placed, tries=60):
    """A face centre for width ``w`` whose head square overlaps no placed head by much."""
    h = w * FACE_AXES[1] / FACE_AXES[0]
    head = w / (2 * FACE_AXES[0])
    for _ in range(tries):
        cx = rng.uniform(w / 2 + 2, size - w / 2 - 2)
        cy = rng.uniform(h / 2 + 2, size - h / 2 - 2)
        clear = all(max(abs(cx - px), abs(cy - py)) > 0.75 * (head + pw / (2 * FACE_AXES[0])) / 2
                    for px, py, pw in placed)
        if clear:
            return (float(cx), float(cy), float(w))
    return None


@functools.lru_cache(maxsize=1)
def _photos() -> tuple[np.ndarray, ...]:
    """Bundled scikit-image photos (no download) as float64 RGB; people's faces cropped out."""
    import skimage.data as sd

    rgb = [sd.astronaut()[260:], sd.chelsea(), sd.coffee(), sd.rocket(),
           sd.stereo_motorcycle()[0], sd.hubble_deep_field()[:500, :500]]
    gray = [sd.brick(), sd.grass(), sd.gravel(), sd.coins(), sd.clock(), sd.moon()]
    out = [im.astype(np.float64) / 255.0 for im in rgb]
    out += [np.repeat(g[..., None], 3, axis=2).astype(np.float64) / 255.0 for g in gray]
    return tuple(out)


def _background(rng: np.random.Generator, size: int) -> np.ndarray:
    kind = rng.choice(["photo", "photo", "gradient", "texture"])
    if kind == "photo":
        photos = _photos()
        im = photos[int(rng.integers(len(photos)))]
        h, w = im.shape[:2]
        side = int(rng.uniform(0.35, 1.0) * min(h, w))
        y, x = int(rng.integers(0, h - side + 1)), int(rng.integers(0, w - side + 1))
        bg = exact_ops.resize(im[y:y + side, x:x + side], size, size, "box")
        if rng.random() < 0.5:
            bg = bg[:, ::-1]
        tint = rng.uniform(0.75, 1.2, 3)
        bg = bg * tint * rng.uniform(0.7, 1.1) + rng.uniform(-0.08, 0.08)
    elif kind == "gradient":
        c0, c1 = rng.uniform(0.05, 0.95, (2, 3))
        ang = rng.uniform(0, 2 * np.pi)
        yy, xx = np.mgrid[0:size, 0:size].astype(np.float64) / size
        # cos/sin of one scalar: a last-bit difference only moves this smooth ramp by 1e-16
        t = (math.cos(ang) * xx + math.sin(ang) * yy)
        t = (t - t.min()) / max(float(t.max() - t.min()), 1e-6)
        bg = c0 + (c1 - c0) * t[..., None] + _smooth_noise(rng, size, 4, 0.06)
    else:
        base = rng.uniform(0.1, 0.9, 3)
        bg = base + _smooth_noise(rng, size, int(rng.integers(6, 24)), rng.uniform(0.05, 0.2))
        if rng.random() < 0.5:                              # stripes / planks / tiles
            period = rng.uniform(10, 40)
            yy, xx = np.mgrid[0:size, 0:size].astype(np.float64)
            axis = xx if rng.random() < 0.5 else yy
            bg = bg + (0.06 * _square_wave(axis / period))[..., None]
    bg = exact_ops.gaussian_blur(bg, rng.uniform(0.3, 1.2))
    return np.clip(bg, 0.0, 1.0)


def _square_wave(phase: np.ndarray) -> np.ndarray:
    """``sign(sin(2 pi phase))`` from the fractional part (no sine whose last bit could flip it)."""
    frac = phase - np.floor(phase)
    return np.where(frac == 0.0, 0.0, np.where(frac < 0.5, 1.0, np.where(frac == 0.5, 0.0, -1.0)))


def _smooth_noise(rng: np.random.Generator, size: int, cells: int, amp: float) -> np.ndarray:
    low = rng.normal(0.0, amp, (cells, cells, 3))
    return exact_ops.resize(low, size, size, "cubic")


def _draw_torso(rng: np.random.Generator, scene: np.ndarray, cx: float, cy: float, w: float) -> None:
    """Shoulders under the head: a shaded ellipse in a clothing colour."""
    size = scene.shape[0]
    head = w / (2 * FACE_AXES[0])
    top = cy + 0.38 * head                                  # just under the chin
    grey = rng.uniform(0.1, 0.8)
    colour = grey + rng.uniform(0.3, 0.9) * (rng.uniform(0.0, 1.0, 3) - grey)
    axes = (int(head * rng.uniform(0.5, 0.7)), int(head * 0.42))
    ex, ey = int(cx), int(top + axes[1])
    sigma = max(1.0, w * 0.03)
    # only the window the blurred ellipse can reach (the mask is exactly 0 beyond it)
    reach = 2 * (int(4.0 * sigma + 0.5) + 2)
    x0, x1 = max(0, ex - axes[0] - reach), min(size, ex + axes[0] + reach + 1)
    y0, y1 = max(0, ey - axes[1] - reach), min(size, ey + axes[1] + reach + 1)
    if x1 <= x0 or y1 <= y0:
        return
    mask = exact_ops.soft_ellipse(y1 - y0, x1 - x0, (ex - x0, ey - y0), axes)
    mask = exact_ops.gaussian_blur(mask, sigma)[..., None]
    yy = np.arange(y0, y1, dtype=np.float64)[:, None, None]
    shade = 1.0 - 0.3 * np.clip((yy - top) / (2 * head), 0, 1)
    region = scene[y0:y1, x0:x1]
    region *= 1 - mask
    region += mask * colour * shade


HEAD_KERNELS = ("triangle", "cubic", "box", "lanczos")     # "ordinary interpolation", one per head


def _paste_head(rng, scene, face64, cx, cy, w, resample):
    """Resample a 64x64 face to the head size (ordinary interpolation) and paste it softly."""
    side = max(8, int(round(w / (2 * FACE_AXES[0]))))
    f = rng.uniform(*resample)
    patch = face64
    if f > 1.01:
        small = max(8, int(round(64 / f)))
        patch = exact_ops.resize(patch, small, small, "box")
    kernel = HEAD_KERNELS[int(rng.integers(len(HEAD_KERNELS)))]
    patch = exact_ops.resize(patch, side, side, kernel)
    patch = patch * rng.uniform(0.85, 1.1) + rng.uniform(-0.04, 0.04)   # exposure of the person
    mask = _ellipse_mask(side, (0.5, 0.5), HEAD_AXES, feather=0.05 * side, shrink=0.04 * side)
    x0, y0 = _patch_origin(cx, cy, side)
    _blend(scene, patch, mask, x0, y0)


def _patch_origin(cx: float, cy: float, side: int) -> tuple[int, int]:
    """Top-left of a patch whose face centre lands on ``(cx, cy)``."""
    return int(round(cx - FACE_CENTER[0] * side)), int(round(cy - FACE_CENTER[1] * side))


def _ellipse_mask(side: int, centre, axes, feather: float, shrink: float = 0.0) -> np.ndarray:
    """A soft filled ellipse in a side x side patch (fractions of side), blurred by ``feather`` px."""
    ax = max(1, int(round(axes[0] * side - shrink)))
    ay = max(1, int(round(axes[1] * side - shrink)))
    mask = exact_ops.soft_ellipse(side, side, (int(round(centre[0] * side)),
                                               int(round(centre[1] * side))), (ax, ay))
    if feather > 0.3:
        mask = exact_ops.gaussian_blur(mask, feather)
    return mask


def _blend(scene: np.ndarray, patch: np.ndarray, mask: np.ndarray, x0: int, y0: int) -> None:
    """scene[window] = lerp(scene, patch, mask), clipped to the scene."""
    H, W = scene.shape[:2]
    s = patch.shape[0]
    sx0, sy0, sx1, sy1 = max(x0, 0), max(y0, 0), min(x0 + s, W), min(y0 + s, H)
    if sx1 <= sx0 or sy1 <= sy0:
        return
    p = patch[sy0 - y0:sy1 - y0, sx0 - x0:sx1 - x0]
    m = mask[sy0 - y0:sy1 - y0, sx0 - x0:sx1 - x0, None]
    region = scene[sy0:sy1, sx0:sx1]
    region += m * (p - region)


def _window(scene: np.ndarray, x0: int, y0: int, side: int) -> np.ndarray:
    """The side x side patch of ``scene`` at (x0, y0), edge-replicated where it leaves the image."""
    pad = side
    padded = np.pad(scene, ((pad, pad), (pad, pad), (0, 0)), mode="edge")
    return padded[y0 + pad:y0 + pad + side, x0 + pad:x0 + pad + side].copy()


def _swap_face(rng, scene, source64, cx, cy, w, opts: DemoOptions, kernels) -> None:
    """Replace the inner face at (cx, cy) with another identity, the way a face swap does it."""
    side = max(8, int(round(w / (2 * FACE_AXES[0]))))
    stages = int(rng.integers(opts.upsample_stages[0], opts.upsample_stages[1] + 1))
    strength = float(rng.uniform(*opts.checkerboard))
    kernel = kernels[int(rng.integers(len(kernels)))]
    low = max(4, int(round(side / 2 ** stages)))
    small = exact_ops.resize(source64, low, low, "box")
    synth = _generator_upsample(small, stages, strength, kernel)
    if synth.shape[0] != side:
        synth = exact_ops.resize(synth, side, side, "triangle")
    x0, y0 = _patch_origin(cx, cy, side)
    target = _window(scene, x0, y0, side)
    feather = float(rng.uniform(*opts.feather)) * w
    core = _ellipse_mask(side, FACE_CENTER, FACE_AXES, feather=0.0, shrink=max(2.0, feather))
    synth = _match_colour(synth, target, core > 0.5, float(rng.uniform(*opts.color_match)))
    # feather inwards so the swapped region stays inside the annotated face ellipse
    mask = _ellipse_mask(side, FACE_CENTER, FACE_AXES, feather=feather / 2, shrink=feather)
    mask *= float(rng.uniform(*opts.blend_alpha))
    _blend(scene, synth, mask, x0, y0)


def _match_colour(src: np.ndarray, ref: np.ndarray, where: np.ndarray, amount: float) -> np.ndarray:
    """Transfer per-channel LAB mean/std of ``ref`` to ``src`` over ``where``, by ``amount``."""
    if amount <= 0 or where.sum() < 4:
        return src
    a = exact_ops.rgb_to_lab(np.clip(src, 0, 1))
    b = exact_ops.rgb_to_lab(np.clip(ref, 0, 1))
    ma, sa = a[where].mean(0), a[where].std(0) + 1e-3
    mb, sb = b[where].mean(0), b[where].std(0) + 1e-3
    matched = (a - ma) / sa * sb + mb
    lab = a + amount * (matched - a)
    lab[..., 0] = np.clip(lab[..., 0], 0, 100)
    return np.clip(exact_ops.lab_to_rgb(lab), 0, 1)


# --------------------------------------------------------------------------- face generator


@functools.lru_cache(maxsize=1)
def _face_generator() -> tuple[tuple[np.ndarray, float, np.ndarray | None, np.ndarray | None], ...]:
    """The bundled 64x64 DCGAN face generator (DigiFace1M) as exact-arithmetic numpy layers.

    One ``(weight, column bound, scale, shift)`` per transposed convolution: the weight
    (Cin, 4*4*Cout, on the grid 2**-W_BITS), the largest column sum of its absolute values (for
    :func:`exact_ops.exact_matmul`'s check) and the eval-mode BatchNorm folded into a
    per-channel scale and shift
    (``None`` for the last layer, which is followed by tanh).
    """
    import gan_face_generate
    import torch

    weights = Path(gan_face_generate.__file__).parent / "weights.tar"
    state = torch.load(weights, map_location="cpu", weights_only=True)["netG_state_dict"]
    layers = []
    for conv, bn in ((0, 1), (3, 4), (6, 7), (9, 10), (12, None)):
        w = state[f"main.{conv}.weight"].double().numpy()            # (Cin, Cout, 4, 4)
        w = w.transpose(0, 2, 3, 1)                                  # (Cin, 4, 4, Cout)
        w = exact_ops.quantise(w.reshape(w.shape[0], -1), W_BITS)
        colsum = float(np.abs(w).sum(axis=0).max())
        if bn is None:
            layers.append((w, colsum, None, None))
            continue
        p = {k: state[f"main.{bn}.{k}"].double().numpy()
             for k in ("weight", "bias", "running_mean", "running_var")}
        scale = p["weight"] / np.sqrt(p["running_var"] + 1e-5)
        layers.append((w, colsum, scale, p["bias"] - p["running_mean"] * scale))
    return tuple(layers)


W_BITS, A_BITS = 20, 16          # weight and activation grids of the face generator


def _conv_transpose(x: np.ndarray, w: np.ndarray, colsum: float, stride: int, padding: int) -> np.ndarray:
    """NHWC transposed convolution, 4x4 kernel: one exact matmul, then 16 strided adds.

    At most four kernel taps land on one output pixel (stride 2), hence the headroom of 4.
    """
    n, h, wd, cin = x.shape
    cout = w.shape[1] // 16
    cols = exact_ops.exact_matmul(x.reshape(-1, cin), w, A_BITS, W_BITS, headroom=4.0,
                                  b_abs_colsum=colsum)
    cols = cols.reshape(n, h, wd, 4, 4, cout)
    full = np.zeros((n, (h - 1) * stride + 4, (wd - 1) * stride + 4, cout))
    for ky in range(4):
        for kx in range(4):
            full[:, ky:ky + stride * h:stride, kx:kx + stride * wd:stride] += cols[:, :, :, ky, kx]
    end_y, end_x = full.shape[1] - padding, full.shape[2] - padding
    return full[:, padding:end_y, padding:end_x]


def _generate_faces(n: int, seed: int) -> list[np.ndarray]:
    """``n`` 64x64 float64 RGB faces in [0, 1] from latents drawn with ``seed``.

    Latents and activations are kept on fixed binary grids, so every matrix product is exact
    and the faces are the same bits on every CPU (the grids are far finer than a grey level).
    """
    if n == 0:
        return []
    x = exact_ops.quantise(np.random.default_rng(seed).standard_normal((n, 1, 1, 100)), A_BITS)
    layers = _face_generator()
    for k, (w, colsum, scale, shift) in enumerate(layers):
        x = _conv_transpose(x, w, colsum, stride=1 if k == 0 else 2, padding=0 if k == 0 else 1)
        if scale is not None:
            x = exact_ops.quantise(np.maximum(x * scale + shift, 0.0), A_BITS)
    x = (exact_ops.tanh(x) + 1.0) / 2.0
    return [x[i] for i in range(n)]


def _kernel_bank(seed: int) -> np.ndarray:
    """Fixed random deviations from bilinear for the fake "generator" (N_KERNELS, 3, 3, 4, 4)."""
    noise = np.random.default_rng([int(seed), 7919]).standard_normal((N_KERNELS, 3, 3, 4, 4))
    noise[:, ~np.eye(3, dtype=bool)] *= 0.3                 # mostly per channel, some mixing
    return noise * 0.25


_BILINEAR = np.array([0.25, 0.75, 0.75, 0.25])


def _generator_upsample(img: np.ndarray, stages: int, strength: float, noise: np.ndarray) -> np.ndarray:
    """Up-sample by 2**stages with stride-2 transposed convolutions (GAN-decoder style).

    The kernel (Cin, Cout, 4, 4) is bilinear plus ``strength`` times a fixed random deviation;
    the deviation makes the four output phases uneven, which is the checkerboard pattern of
    real generators. Written as elementwise multiply-adds in a fixed order (no BLAS).
    """
    weight = strength * noise
    for c in range(3):
        weight[c, c] = weight[c, c] + np.outer(_BILINEAR, _BILINEAR)
    x = img
    for _ in range(stages):
        x = np.pad(x, ((1, 1), (1, 1), (0, 0)), mode="edge")
        h, w = x.shape[:2]
        full = np.zeros((2 * h + 2, 2 * w + 2, 3))
        for ky in range(4):
            for kx in range(4):
                k = weight[:, :, ky, kx]
                tap = x[..., 0:1] * k[0] + x[..., 1:2] * k[1] + x[..., 2:3] * k[2]
                full[ky:ky + 2 * h:2, kx:kx + 2 * w:2] += tap
        x = np.clip(full[3:-3, 3:-3], 0.0, 1.0)      # padding 1, then drop the replicated border
    return x


# --------------------------------------------------------------------------- Test-Challenge


def _perturb(rng: np.random.Generator, img: np.ndarray, how_many: tuple[int, int]) -> tuple[np.ndarray, str]:
    """Apply one or more OpenForensics-Test-Challenge-like perturbations; return their names."""
    from skimage.color import hsv2rgb, rgb2hsv      # elementwise numpy: no BLAS, no libm

    k = int(rng.integers(how_many[0], how_many[1] + 1))
    names = sorted(rng.choice(PERTURBATIONS, size=k, replace=False).tolist(),
                   key=PERTURBATIONS.index)
    out = img
    for name in names:
        if name == "noise":
            out = out + rng.normal(0.0, rng.uniform(6, 16) / 255.0, out.shape)
        elif name == "blur":
            out = exact_ops.gaussian_blur(out, rng.uniform(1.0, 2.2))
        elif name == "jpeg":                        # libjpeg-turbo's integer DCT: exact everywhere
            q = int(rng.integers(12, 35))
            ok, buf = cv2.imencode(".jpg", _to_uint8(out)[..., ::-1], [cv2.IMWRITE_JPEG_QUALITY, q])
            out = cv2.imdecode(buf, cv2.IMREAD_COLOR)[..., ::-1].astype(np.float64) / 255.0
        elif name == "color":
            hsv = rgb2hsv(np.clip(out, 0, 1))
            hsv[..., 0] = (hsv[..., 0] + rng.uniform(-30, 30) / 360.0) % 1.0
            hsv[..., 1] = np.clip(hsv[..., 1] * rng.uniform(0.5, 1.5), 0, 1)
            out = hsv2rgb(hsv) * rng.uniform(0.85, 1.15, 3)
        elif name == "fog":
            size = out.shape[0]
            density = rng.uniform(0.3, 0.6) * (0.6 + 0.4 * np.clip(
                0.5 + _smooth_noise(rng, size, 4, 0.5)[..., :1], 0, 1))
            fog = rng.uniform(0.75, 0.95)
            out = out * (1 - density) + fog * density
        out = np.clip(out, 0.0, 1.0)
    return out, "+".join(names)


def _folder_crop(scene: np.ndarray, box: list[float], margin: float, size: int) -> np.ndarray:
    """A square crop of side max(w, h) * margin around the face, kept inside the image."""
    H, W = scene.shape[:2]
    x, y, w, h = box
    side = min(int(round(max(w, h) * margin)), H, W)
    cx, cy = x + w / 2, y + h / 2
    x0 = int(min(max(round(cx - side / 2), 0), W - side))
    y0 = int(min(max(round(cy - side / 2), 0), H - side))
    return resize_square(scene[y0:y0 + side, x0:x0 + side], size)
