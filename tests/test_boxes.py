import pytest

from deepfake_detection.faces import boxes


def test_xywh_square_expand_clamp_by_hand():
    b = boxes.xywh_to_xyxy([10, 20, 30, 50])
    assert b == (10, 20, 40, 70)
    assert boxes.square(b) == (0, 20, 50, 70)                  # 30 wide -> 50, centre x 25
    assert boxes.expand((0, 0, 10, 20), 1.5) == pytest.approx((-2.5, -5, 12.5, 25))
    assert boxes.clamp((-5, -5, 200, 50), 100, 80) == (0, 0, 100, 50)


@pytest.mark.parametrize("box, reason", [
    ((10, 10, 10, 30), "zero_area"),
    ((10, 10, 5, 30), "zero_area"),
    ((120, 10, 150, 30), "box_outside"),
    ((-40, -40, -1, -1), "box_outside"),
    ((95, 10, 130, 40), "too_small"),       # only 5 px visible with min 8
    ((10, 10, 40, 40), None),
])
def test_box_problem(box, reason):
    assert boxes.box_problem(box, 100, 100, min_size=8) == reason


def test_crop_box_square_margin_clamped():
    assert boxes.crop_box((40, 40, 60, 80), 100, 100, 1.0, True) == (30, 40, 70, 80)
    assert boxes.crop_box((0, 0, 20, 20), 100, 100, 2.0, False) == (0, 0, 30, 30)
