"""Face-box geometry as small pure functions: convert, square, margin, clamp, validate.

Boxes are ``(x0, y0, x1, y1)`` floats in pixel coordinates; COCO gives ``[x, y, w, h]``.
"""

from __future__ import annotations

Box = tuple[float, float, float, float]


def xywh_to_xyxy(b) -> Box:
    x, y, w, h = (float(v) for v in b)
    return (x, y, x + w, y + h)


def square(box: Box) -> Box:
    """Grow the shorter side so the box is square, keeping its centre."""
    x0, y0, x1, y1 = box
    cx, cy, side = (x0 + x1) / 2, (y0 + y1) / 2, max(x1 - x0, y1 - y0)
    return (cx - side / 2, cy - side / 2, cx + side / 2, cy + side / 2)


def expand(box: Box, margin: float) -> Box:
    """Scale the box about its centre by ``margin`` (1.3 = FaceForensics++ / DeepfakeBench)."""
    x0, y0, x1, y1 = box
    cx, cy = (x0 + x1) / 2, (y0 + y1) / 2
    hw, hh = (x1 - x0) * margin / 2, (y1 - y0) * margin / 2
    return (cx - hw, cy - hh, cx + hw, cy + hh)


def clamp(box: Box, width: int, height: int) -> Box:
    x0, y0, x1, y1 = box
    return (min(max(x0, 0.0), width), min(max(y0, 0.0), height),
            min(max(x1, 0.0), width), min(max(y1, 0.0), height))


def box_problem(box: Box, width: int, height: int, min_size: float = 1.0) -> str | None:
    """Why a face box cannot be cropped, as a stable rejects reason, or None when it can.

    ``zero_area``: non-positive width/height; ``box_outside``: no overlap with the image;
    ``too_small``: the visible part is under ``min_size`` pixels on a side.
    """
    x0, y0, x1, y1 = box
    if not (x1 > x0 and y1 > y0):
        return "zero_area"
    cx0, cy0, cx1, cy1 = clamp(box, width, height)
    if cx1 <= cx0 or cy1 <= cy0:
        return "box_outside"
    if min(cx1 - cx0, cy1 - cy0) < min_size:
        return "too_small"
    return None


def crop_box(face_box: Box, width: int, height: int, margin: float, make_square: bool) -> tuple[int, int, int, int]:
    """The integer pixel region to cut for a face: square (optional), margin, clamp."""
    box = square(face_box) if make_square else face_box
    box = clamp(expand(box, margin), width, height)
    x0, y0, x1, y1 = (int(round(v)) for v in box)
    return x0, y0, max(x1, x0 + 1), max(y1, y0 + 1)
