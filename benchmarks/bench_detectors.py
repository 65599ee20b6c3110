"""Face detector benchmark: recall, false positives and faces/second of each available backend.

The image set needs no download: 5 real photos shipped by installed packages (scikit-image's
astronaut and camera, matplotlib's grace_hopper, Ultralytics' zidane and bus; 7 clear faces,
boxes labelled by hand), synthetic scenes (scikit-image LFW-subset faces pasted at 40-160 px
onto natural images shipped by scikit-image / scikit-learn) and 9 images without a face.

Backends: the project's ``yunet`` (always) and ``yolo`` (with ``--yolo-weights``), OpenCV's Haar
cascade as a classic baseline, and, only if they happen to be installed, ``yuface`` and
facenet-pytorch's MTCNN (never project dependencies; see faces/detectors.py).

    python benchmarks/bench_detectors.py [--threads 2] [--repeat 3] [--yolo-weights W.pt]
        [--coco data/raw/demo/openforensics/Val_poly.json --images-root data/raw/demo/openforensics]

``--coco`` adds each backend's box mAP (pycocotools, as the face-detector stage reports it) on
a COCO split, e.g. the demo's held-out Val scenes.

Columns: photo faces found; recall on pasted faces (all, and those >= --min-face px);
detections on the face-free images; images and faces per second. A face counts as found when
a detection overlaps it with IoU >= 0.3 (detectors disagree on how much forehead and chin a
box holds). Speed = ground-truth faces / detection seconds; on shared cores compare the ratios.
"""

from __future__ import annotations

import argparse
import importlib.util
import time
from pathlib import Path

import numpy as np

SITE = Path(np.__file__).resolve().parents[1]
# (x, y, w, h) of each clear face, labelled by hand
PHOTOS = {
    "skimage:astronaut": [(178, 62, 90, 113)],
    "skimage:camera": [(195, 112, 62, 82)],
    "matplotlib/mpl-data/sample_data/grace_hopper.jpg": [(182, 120, 171, 212)],
    "ultralytics/assets/zidane.jpg": [(916, 99, 136, 175), (554, 264, 102, 157)],
    "ultralytics/assets/bus.jpg": [(113, 415, 41, 54), (268, 422, 38, 51)],
}
EMPTY = ["coffee", "chelsea", "rocket", "hubble_deep_field", "immunohistochemistry",
         "sklearn/datasets/images/china.jpg", "sklearn/datasets/images/flower.jpg", "grey", "noise"]


def _load(name: str) -> np.ndarray:
    import cv2
    import skimage.data

    if name == "grey":
        return np.full((480, 640, 3), 128, np.uint8)
    if name == "noise":
        return np.random.default_rng(0).integers(0, 256, (480, 640, 3), dtype=np.uint8)
    if "/" not in name:
        img = getattr(skimage.data, name.removeprefix("skimage:"))()
        return np.repeat(img[:, :, None], 3, 2) if img.ndim == 2 else img[:, :, :3]
    return cv2.cvtColor(cv2.imread(str(SITE / name)), cv2.COLOR_BGR2RGB)


def synthetic_scenes(n_scenes: int = 20, per_scene: int = 6, seed: int = 0):
    """LFW faces (grey, 25x25 upscaled) pasted without overlap into 640x480 natural scenes."""
    import cv2
    import skimage.data

    rng = np.random.default_rng(seed)
    faces = (skimage.data.lfw_subset()[:100] * 255).round().astype(np.uint8)
    backs = [cv2.resize(_load(n), (640, 480), interpolation=cv2.INTER_AREA)
             for n in ("coffee", "chelsea", "rocket", "sklearn/datasets/images/china.jpg")]
    scenes = []
    for i in range(n_scenes):
        img = backs[i % len(backs)].copy()
        boxes: list[tuple[int, int, int, int]] = []
        while len(boxes) < per_scene:
            s = int(rng.integers(40, 161))
            x, y = int(rng.integers(0, 640 - s)), int(rng.integers(0, 480 - s))
            if any(x < bx + bw and bx < x + s and y < by + bh and by < y + s for bx, by, bw, bh in boxes):
                continue
            face = cv2.resize(faces[int(rng.integers(0, 100))], (s, s), interpolation=cv2.INTER_CUBIC)
            img[y:y + s, x:x + s] = face[:, :, None]
            boxes.append((x, y, s, s))
        scenes.append((f"scene{i}", img, boxes))
    return scenes


def _iou(a, b) -> float:
    ix = max(0.0, min(a[2], b[2]) - max(a[0], b[0]))
    iy = max(0.0, min(a[3], b[3]) - max(a[1], b[1]))
    inter = ix * iy
    union = (a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - inter
    return inter / union if union > 0 else 0.0


def _found(dets, gts, thr: float = 0.3) -> list[bool]:
    """Per ground-truth face: matched by a detection (greedy one-to-one, best score first)."""
    boxes = [(x, y, x + w, y + h) for x, y, w, h in gts]
    found = [False] * len(gts)
    for d in sorted(dets, key=lambda d: -d[4]):
        ious = [0.0 if f else _iou(d, g) for g, f in zip(boxes, found)]
        if ious and max(ious) >= thr:
            found[int(np.argmax(ious))] = True
    return found


# --------------------------------------------------------------------------- backends


def backends(yolo_weights: str | None, yolo_imgsz: int = 320, for_ap: bool = False):
    """name -> detect(rgb) -> [(x0, y0, x1, y1, score)], for what is importable here.

    ``for_ap``: low score thresholds, as average precision wants the whole ranking.
    """
    import cv2

    from deepfake_detection.faces.detectors import (DetectorConfig, YoloSettings, YuNetSettings,
                                                    build_detector)

    low = 0.05 if for_ap else None
    out = {"yunet": build_detector(DetectorConfig(backend="yunet",
                                                  yunet=YuNetSettings(confidence=low or 0.6))).detect}
    if yolo_weights:
        yolo = YoloSettings(confidence=low or 0.25, input_size=yolo_imgsz)
        out["yolo"] = build_detector(DetectorConfig(backend="yolo", yolo=yolo), Path(yolo_weights)).detect

    haar = cv2.CascadeClassifier(cv2.data.haarcascades + "haarcascade_frontalface_default.xml")

    def detect_haar(rgb):
        grey = cv2.cvtColor(rgb, cv2.COLOR_RGB2GRAY)
        return [(x, y, x + w, y + h, 1.0) for x, y, w, h in
                haar.detectMultiScale(grey, 1.1, 5, minSize=(20, 20))]
    out["haar"] = detect_haar

    if importlib.util.find_spec("yuface"):
        import yuface

        def detect_yuface(rgb):
            # same down-scaling as the yunet backend (yuface warns above 960 px)
            scale = min(1.0, 640 / max(rgb.shape[:2]))
            if scale < 1.0:
                rgb = cv2.resize(rgb, (round(rgb.shape[1] * scale), round(rgb.shape[0] * scale)),
                                 interpolation=cv2.INTER_AREA)
            confs, boxes, _ = yuface.detect(np.ascontiguousarray(rgb[:, :, ::-1]), conf=low or 0.6)
            return [(x / scale, y / scale, (x + w) / scale, (y + h) / scale, c / 100.0)
                    for c, (x, y, w, h) in zip(confs.tolist(), boxes.astype(float).tolist())]
        out["yuface"] = detect_yuface

    if importlib.util.find_spec("facenet_pytorch"):
        from facenet_pytorch import MTCNN

        mtcnn = MTCNN(keep_all=True, device="cpu")

        def detect_mtcnn(rgb):
            boxes, probs = mtcnn.detect(rgb)
            if boxes is None:
                return []
            return [(*map(float, b), float(p)) for b, p in zip(boxes, probs)]
        out["mtcnn"] = detect_mtcnn
    return out


def coco_maps(detectors, coco_json: Path, images_root: Path) -> None:
    """Box mAP of each backend on a COCO split."""
    from deepfake_detection.faces.yolo import coco_map, read_coco_faces
    from deepfake_detection.io import read_image_rgb

    images, _ = read_coco_faces(coco_json, images_root)
    print(f"box mAP on {coco_json.name} ({len(images)} images, "
          f"{sum(len(im['boxes']) for im in images)} faces):")
    for name, detect in detectors.items():
        dets = [{"image_id": im["id"], "category_id": 1, "score": float(d[4]),
                 "bbox": [d[0], d[1], d[2] - d[0], d[3] - d[1]]}
                for im in images for d in detect(read_image_rgb(im["path"]))]
        m = coco_map(images, dets)
        print(f"  {name:8s} mAP@[.5:.95] {m['map50_95']:.3f}  mAP@.5 {m['map50']:.3f}")


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--repeat", type=int, default=3, help="timed passes over the set")
    ap.add_argument("--scenes", type=int, default=20)
    ap.add_argument("--min-face", type=int, default=50, help="also report recall on pasted faces this big")
    ap.add_argument("--yolo-weights", default=None, help="weights from stages/train_face_detector.py")
    ap.add_argument("--yolo-imgsz", type=int, default=320)
    ap.add_argument("--coco", type=Path, default=None, help="COCO json to measure box mAP on")
    ap.add_argument("--images-root", type=Path, default=None, help="root of the --coco file names")
    args = ap.parse_args(argv)

    import cv2
    import torch

    cv2.setNumThreads(args.threads)
    torch.set_num_threads(args.threads)

    photos = [(n, _load(n), b) for n, b in PHOTOS.items()]
    scenes = synthetic_scenes(args.scenes)
    empty = [(n, _load(n), []) for n in EMPTY]
    images = photos + scenes + empty
    n_faces = sum(len(b) for _, _, b in images)
    print(f"{len(images)} images, {n_faces} faces ({sum(len(b) for *_, b in photos)} in photos), "
          f"{args.threads} threads, {args.repeat} timed passes")
    n_photo = sum(len(b) for *_, b in photos)
    print(f"{'backend':8s} {'photos':>7s} {'pasted':>7s} {'>=' + str(args.min_face) + 'px':>8s} "
          f"{'false+':>6s} {'img/s':>7s} {'faces/s':>8s}")
    rates = {}
    for name, detect in backends(args.yolo_weights, args.yolo_imgsz).items():
        detect(photos[0][1])   # warm-up (lazy init, allocation)
        photo_hits = sum(sum(_found(detect(img), gts)) for _, img, gts in photos)
        pasted = [(g[2], f) for _, img, gts in scenes for g, f in zip(gts, _found(detect(img), gts))]
        big = [f for side, f in pasted if side >= args.min_face]
        fp = sum(len(detect(img)) for _, img, _ in empty)
        t = time.perf_counter()
        for _ in range(args.repeat):
            for _, img, _ in images:
                detect(img)
        secs = (time.perf_counter() - t) / args.repeat
        rates[name] = n_faces / secs
        print(f"{name:8s} {photo_hits:>3d}/{n_photo:<3d} {np.mean([f for _, f in pasted]):>7.1%} "
              f"{np.mean(big):>8.1%} {fp:>6d} {len(images) / secs:>7.1f} {rates[name]:>8.1f}")
    base = rates["yunet"]
    print("speed relative to yunet: " + ", ".join(f"{k} {v / base:.2f}x" for k, v in rates.items()))
    if args.coco:
        coco_maps(backends(args.yolo_weights, args.yolo_imgsz, for_ap=True), args.coco,
                  args.images_root or args.coco.parent)


if __name__ == "__main__":
    main()
