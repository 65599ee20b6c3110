"""Batched reads (data/batches.py) and per-sample batch augmentation (data/batch_augment.py)."""

import numpy as np
import pytest
import torch
from torchvision.transforms.v2 import functional as TF

from PIL import Image
from skimage import data as skdata
from torchvision.transforms import functional as PILF
from torchvision.transforms import v2

from deepfake_detection.data.batch_augment import (BatchColorJitter, EvalAugment, TrainAugment, adjust_hue,
                                                   batch_seed, draw_crop_flip, jitter_draws, jitter_uint8,
                                                   make_mix, random_crop_flip)
from deepfake_detection.data.batches import BatchReader, batch_slices, epoch_order, read_rows
from deepfake_detection.data.transforms import eval_transform, to_float_batch
from deepfake_detection.params import AugmentParams, MixParams, ParamsError, from_dict


def _images(n=10, size=8, seed=0):
    return np.random.default_rng(seed).integers(0, 256, (n, size, size, 3), dtype=np.uint8)


def _rng_states():
    return torch.get_rng_state(), np.random.get_state()[1].copy()


def _same_rng(before, after):
    return torch.equal(before[0], after[0]) and np.array_equal(before[1], after[1])


# ---- batch reader ---------------------------------------------------------------------------

def test_read_rows_restores_the_requested_order():
    images = _images()
    rows = np.array([7, 2, 9, 0])
    got = read_rows(images, rows)
    assert got.dtype == torch.uint8 and got.shape == (4, 8, 8, 3)
    assert torch.equal(got, torch.from_numpy(images[[7, 2, 9, 0]]))


def test_batch_slices_by_hand():
    assert batch_slices(10, 4, drop_last=False) == [slice(0, 4), slice(4, 8), slice(8, 10)]
    assert batch_slices(10, 4, drop_last=True) == [slice(0, 4), slice(4, 8)]


def test_epoch_is_the_seeded_permutation_and_leaves_global_rng_alone():
    images, labels = _images(), np.arange(10) % 2
    rows = np.array([9, 1, 3, 5, 7, 0, 2])
    reader = BatchReader(images, labels, rows, 3, shuffle=True, seed=5)
    before = _rng_states()
    batches = list(reader.epoch(2))
    assert _same_rng(before, _rng_states())
    perm = torch.randperm(7, generator=torch.Generator().manual_seed(5 * 100_003 + 2)).numpy()
    assert [len(x) for x, _ in batches] == [3, 3, 1] and len(reader) == 3
    x = torch.cat([b[0] for b in batches])
    y = torch.cat([b[1] for b in batches])
    assert x.dtype == torch.uint8 and x.shape == (7, 3, 8, 8)
    assert torch.equal(x, torch.from_numpy(images[rows[perm]]).permute(0, 3, 1, 2))
    assert y.tolist() == labels[rows[perm]].tolist() and y.dtype == torch.int64


def test_resume_replays_an_epoch_and_epochs_differ():
    images, labels = _images(20), np.zeros(20, int)
    first = BatchReader(images, labels, np.arange(20), 4, shuffle=True, seed=1)
    for _ in first.epoch(1):
        pass
    epoch2 = [x for x, _ in first.epoch(2)]
    resumed = BatchReader(images, labels, np.arange(20), 4, shuffle=True, seed=1)
    assert all(torch.equal(a, b) for a, b in zip(epoch2, [x for x, _ in resumed.epoch(2)]))
    assert all(torch.equal(a, b) for a, b in zip(epoch2[2:], [x for x, _ in resumed.epoch(2, start_batch=2)]))
    assert not np.array_equal(epoch_order(20, 1, 1, True), epoch_order(20, 1, 2, True))
    assert epoch_order(5, 1, 3, False).tolist() == [0, 1, 2, 3, 4]


def test_reader_rejects_bad_inputs():
    with pytest.raises(ValueError, match=r"rows must lie in \[0, 10\), got \[0, 10\]"):
        BatchReader(_images(), np.zeros(10), np.array([0, 10]), 2, shuffle=False)
    with pytest.raises(ValueError, match="uint8 \\(N, S, S, 3\\)"):
        BatchReader(_images().astype(np.float32), np.zeros(10), np.arange(3), 2, shuffle=False)
    with pytest.raises(ValueError, match="9 labels for 10 images"):
        BatchReader(_images(), np.zeros(9), np.arange(3), 2, shuffle=False)
    with pytest.raises(ValueError, match="batch_size must be >= 1, got 0"):
        BatchReader(_images(), np.zeros(10), np.arange(3), 0, shuffle=False)


# ---- augmentation ---------------------------------------------------------------------------

JITTER = (0.1, 0.1, 0.1, 0.05)
CASES = {
    "resize_crop_flip_jitter": (AugmentParams(resize=18, crop=16, hflip=0.5, color_jitter=JITTER), None),
    "random_resized_crop": (AugmentParams(crop=16, random_resized_crop_scale=(0.08, 1.0), hflip=0.5), None),
    "rotation_zoom": (AugmentParams(rotation=15.0, zoom=0.2), None),
    "brightness_hue": (AugmentParams(color_jitter=(0.2, 0.0, 0.0, 0.1)), None),
    "autoaugment": (AugmentParams(autoaugment=True), None),
    "cutmix": (AugmentParams(crop=16), MixParams("cutmix", 1.0)),
    "mixup": (AugmentParams(crop=16), MixParams("mixup", 0.4)),
    "none": (AugmentParams(), None),
}


def _batch(n=6, size=20, seed=0):
    x = torch.from_numpy(_images(n, size, seed)).permute(0, 3, 1, 2)
    return x, torch.tensor([i % 2 for i in range(n)])


@pytest.mark.parametrize("name", sorted(CASES))
def test_every_augmentation_shapes_dtypes_seeding_and_global_rng(name):
    aug, mix = CASES[name]
    t = TrainAugment(aug, "imagenet", mix)
    x, y = _batch()
    before = _rng_states()
    out, yy = t(x, y, seed=11)
    assert _same_rng(before, _rng_states())
    side = aug.crop or aug.resize or 20
    assert out.shape == (6, 3, side, side) and out.dtype == torch.float32
    assert yy.dtype == (torch.float32 if mix else torch.int64) and yy.shape == (6,)
    again, yy2 = t(x, y, seed=11)
    assert torch.equal(out, again) and torch.equal(yy, yy2)
    if name != "none":
        assert not torch.equal(out, t(x, y, seed=12)[0])


@pytest.mark.parametrize("name", ["random_resized_crop", "rotation_zoom", "brightness_hue"])
def test_kornia_and_jitter_draw_per_sample(name):
    aug, _ = CASES[name]
    x = _batch(1)[0].expand(8, -1, -1, -1).contiguous()   # eight copies of one image
    out, _ = TrainAugment(aug, "unit", None)(x, torch.zeros(8, dtype=torch.long), seed=3)
    assert len({out[i].numpy().tobytes() for i in range(8)}) == 8


class _Mark(torch.nn.Module):
    def __init__(self, k):
        super().__init__()
        self.k = k

    def forward(self, x):
        return torch.full_like(x, self.k / 100.0)


def test_autoaugment_draws_a_subpolicy_per_image():
    t = TrainAugment(AugmentParams(autoaugment=True), "unit")
    assert len(t.autoaugment.subpolicies) == 25             # the ImageNet policy
    t.autoaugment.subpolicies = torch.nn.ModuleList(_Mark(k) for k in range(25))
    x = _batch(1)[0].expand(32, -1, -1, -1).contiguous()
    out, _ = t(x, torch.zeros(32, dtype=torch.long), seed=21)
    torch.manual_seed(21)
    choice = torch.randint(25, (32,))
    assert torch.equal(out[:, 0, 0, 0], choice.float() / 100.0)
    assert torch.unique(choice).numel() == 20               # 20 different sub-policies in 32 images


def test_crop_and_flip_are_drawn_per_image_exactly():
    aug = AugmentParams(resize=0, crop=4, hflip=0.5)
    x = torch.arange(6 * 6, dtype=torch.uint8).view(1, 1, 6, 6).expand(8, 3, 6, 6).contiguous()
    out, _ = TrainAugment(aug, "unit")(x, torch.zeros(8, dtype=torch.long), seed=7)
    torch.manual_seed(7)
    tops, lefts, flips = torch.randint(3, (8,)), torch.randint(3, (8,)), torch.rand(8) < 0.5
    for i in range(8):
        want = x[i, :, tops[i]:tops[i] + 4, lefts[i]:lefts[i] + 4]
        want = want.flip(-1) if flips[i] else want
        torch.testing.assert_close(out[i], want.float() / 255.0, atol=1e-7, rtol=0)   # 1 ulp at 1.0
    assert len(set(zip(tops.tolist(), lefts.tolist(), flips.tolist()))) > 1


def test_random_crop_larger_than_the_image_is_a_clear_error():
    with pytest.raises(ValueError, match="random crop 9 is larger than the 8x8 images; lower augment.crop"):
        random_crop_flip(torch.zeros(1, 3, 8, 8), 9, 0.0)


def test_color_jitter_matches_torchvision_per_image():
    torch.manual_seed(0)
    x = torch.rand(5, 3, 7, 7)
    j = BatchColorJitter(0.4, 0.3, 0.5, 0.2)
    torch.manual_seed(4)
    out = j(x)
    torch.manual_seed(4)
    factors, order = j.draw(5)
    fns = [TF.adjust_brightness, TF.adjust_contrast, TF.adjust_saturation, TF.adjust_hue]
    for i in range(5):
        ref = x[i]
        for step in order.tolist():
            ref = fns[step](ref, float(factors[step, i]))
        torch.testing.assert_close(out[i], ref, atol=2e-6, rtol=0)


def test_hue_closed_form_matches_torchvision_on_grey_and_saturated_pixels():
    x = torch.tensor([[0.5, 0.5, 0.5], [1.0, 0.0, 0.0], [0.2, 0.9, 0.4], [0.3, 0.1, 0.8]]).T.reshape(1, 3, 2, 2)
    for shift in (-0.5, -0.13, 0.0, 0.27, 0.5):
        torch.testing.assert_close(adjust_hue(x, torch.tensor([shift]))[0], TF.adjust_hue(x[0], shift),
                                   atol=2e-6, rtol=0)


def test_color_jitter_rejects_out_of_range_values():
    with pytest.raises(ValueError, match=r"augment.color_jitter hue must be in \[0, 0.5\], got 0.7"):
        BatchColorJitter(0.1, 0.1, 0.1, 0.7)


def test_eval_is_deterministic_and_matches_the_torchvision_eval_transform():
    aug = AugmentParams(resize=18, crop=16, hflip=0.5, color_jitter=JITTER)
    x, _ = _batch()
    ev = EvalAugment(aug, "half")
    out = ev(x)
    assert torch.equal(out, ev(x)) and out.shape == (6, 3, 16, 16)
    ref = to_float_batch(torch.stack([eval_transform(aug)(x[i]) for i in range(6)]), "half")
    torch.testing.assert_close(out, ref, atol=1e-6, rtol=0)


def test_eval_resize_replaces_the_train_resize_like_torchvision():
    # seed 000: train Resize 256 + RandomCrop 224, eval Resize 224 + CenterCrop 224 (here 26/24 -> 24/24)
    aug = AugmentParams(resize=26, crop=24, eval_resize=24)
    x, _ = _batch(size=40)
    out = EvalAugment(aug, "imagenet")(x)
    ref = v2.Compose([v2.Resize(24, antialias=True), v2.CenterCrop(24)])
    expected = to_float_batch(torch.stack([ref(x[i]) for i in range(len(x))]), "imagenet")
    assert out.shape == (6, 3, 24, 24)
    torch.testing.assert_close(out, expected, atol=1e-6, rtol=0)
    torch.testing.assert_close(out, to_float_batch(torch.stack([eval_transform(aug)(x[i]) for i in range(6)]),
                                                   "imagenet"), atol=1e-6, rtol=0)
    # without eval_resize, eval resizes to train's 26 first: other pixels
    assert not torch.allclose(EvalAugment(AugmentParams(resize=26, crop=24), "imagenet")(x), expected)


def test_eval_resize_needs_a_crop_at_least_as_large():
    with pytest.raises(ParamsError, match=r"^a.eval_resize: needs crop > 0"):
        from_dict(AugmentParams, {"eval_resize": 24}, "a")
    with pytest.raises(ParamsError, match=r"^a.eval_resize: must be >= crop 24 .*got 20$"):
        from_dict(AugmentParams, {"crop": 24, "eval_resize": 20}, "a")


def test_mixup_labels_follow_the_drawn_lambda():
    x = torch.tensor([10, 50, 90, 250], dtype=torch.uint8).view(4, 1, 1, 1).expand(4, 3, 4, 4).contiguous()
    y = torch.tensor([1, 0, 0, 1])
    out, soft = TrainAugment(AugmentParams(), "unit", MixParams("mixup", 0.4))(x, y, seed=9)
    torch.manual_seed(9)
    lam = float(torch.distributions.Beta(torch.tensor([0.4]), torch.tensor([0.4])).sample(()))
    c = torch.tensor([10, 50, 90, 250]) / 255.0
    torch.testing.assert_close(out[:, 0, 0, 0], lam * c + (1 - lam) * c.roll(1), atol=1e-6, rtol=0)
    torch.testing.assert_close(soft, torch.tensor([1.0, 1 - lam, 0.0, lam]), atol=1e-6, rtol=0)


def test_cutmix_labels_follow_the_pasted_area():
    x = torch.tensor([10, 50, 90, 250], dtype=torch.uint8).view(4, 1, 1, 1).expand(4, 3, 16, 16).contiguous()
    y = torch.tensor([1, 0, 0, 1])
    out, soft = TrainAugment(AugmentParams(), "unit", MixParams("cutmix", 1.0))(x, y, seed=5)
    c = torch.tensor([10, 50, 90, 250]) / 255.0
    same = lambda a, b: torch.isclose(a, b, atol=1e-7, rtol=0)   # 1 ulp: normalised as level * (1/255)
    pasted = same(out[:, 0], c.roll(1).view(4, 1, 1)).sum(dim=(1, 2))
    assert len(set(pasted.tolist())) == 1          # one box for the whole batch
    lam = 1.0 - pasted[0].item() / 256
    kept = same(out[:, 0], c.view(4, 1, 1)).sum(dim=(1, 2))
    assert (kept + pasted).tolist() == [256] * 4
    torch.testing.assert_close(soft, torch.tensor([1.0, 1 - lam, 0.0, lam]), atol=1e-6, rtol=0)


def test_mix_off_and_bad_names():
    assert make_mix(None) is None and make_mix(MixParams("none", 1.0)) is None
    with pytest.raises(ValueError, match="train.mix.name 'mixin' is not one of none, cutmix, mixup"):
        make_mix(MixParams("mixin", 1.0))


def test_batch_seed_is_a_pure_function():
    assert batch_seed(1, 2, 3) == batch_seed(1, 2, 3)
    assert len({batch_seed(1, 2, 3), batch_seed(1, 3, 2), batch_seed(2, 1, 3)}) == 3
    assert 0 <= batch_seed(0, 0, 0) < 2**63


def test_rotation_zoom_and_normalize_errors():
    with pytest.raises(ParamsError, match="augment.zoom: must be in \\[0, 1\\)"):
        AugmentParams(zoom=1.5).validate("augment")
    with pytest.raises(ParamsError, match="augment.rotation: must be degrees in \\[0, 180\\]"):
        AugmentParams(rotation=-1.0).validate("augment")
    with pytest.raises(ValueError, match="normalize 'nope' is not one of"):
        TrainAugment(AugmentParams(), "nope")


@pytest.mark.slow
def test_compiled_path_matches_eager():
    """torch.compile (one-off, ~10-30 s on CPU) fuses the float steps; same draws, same pixels to 1e-5."""
    aug = AugmentParams(resize=18, crop=16, hflip=0.5, color_jitter=(0.3, 0.3, 0.3, 0.1))
    x, y = _batch()
    eager, _ = TrainAugment(aug, "imagenet", backend="float")(x, y, seed=2)
    compiled, _ = TrainAugment(aug, "imagenet", compile=True, backend="float")(x, y, seed=2)
    torch.testing.assert_close(compiled, eager, atol=1e-5, rtol=0)


# ---- the uint8 CPU path against torchvision's ColorJitter on PIL images (the reports' loop) -------

def _photo_crops(n=6, side=48):
    """Natural colour crops (scikit-image's astronaut, shipped with the package): skin, sky, dark, saturated."""
    photo = skdata.astronaut()
    corners = [(30, 180), (200, 200), (0, 0), (400, 100), (120, 300), (300, 400)][:n]
    return [np.ascontiguousarray(photo[t:t + side, c:c + side]) for t, c in corners]


PIL_STEPS = (PILF.adjust_brightness, PILF.adjust_contrast, PILF.adjust_saturation, PILF.adjust_hue)


def _pil_jitter(img, factors, order):
    pil = Image.fromarray(img)
    for step in order:
        pil = PIL_STEPS[step](pil, float(factors[step]))
    return np.asarray(pil).astype(int)


@pytest.mark.parametrize("step, values, max_diff", [
    (0, (0.5, 0.9, 1.1, 1.7), 0),            # brightness: PIL's blend as a table, bit-exact
    (1, (0.5, 0.9, 1.1, 1.7), 0),            # contrast: table around the rounded mean luma, bit-exact
    (2, (0.0, 0.5, 0.9, 1.1, 1.7), 1),       # saturation: OpenCV rounds (value - 0.5) where PIL truncates
    (3, (-0.5, -0.05, 0.03, 0.5), 8),        # hue: OpenCV's and PIL's uint8 HSV round trips round differently
])
def test_each_uint8_jitter_step_matches_torchvision_on_pil(step, values, max_diff):
    diffs = []
    for img in _photo_crops():
        for v in values:
            factors = np.array([1.0, 1.0, 1.0, 0.0])
            factors[step] = v
            diffs.append(np.abs(jitter_uint8(img, factors, [step]).astype(int) - _pil_jitter(img, factors, [step])))
    d = np.stack(diffs)
    assert d.max() <= max_diff
    if step == 3:
        assert d.mean() < 0.5     # PIL's own HSV round trip (shift 0) moves pixels by ~0.3 level on average


def test_uint8_train_path_is_torchvision_colorjitter_on_pil_per_image():
    """The whole CPU recipe, image by image against the reports' transforms with our draws."""
    aug = AugmentParams(resize=0, crop=40, hflip=0.5, color_jitter=(0.4, 0.4, 0.4, 0.1))
    crops = _photo_crops()
    x = torch.from_numpy(np.stack(crops)).permute(0, 3, 1, 2)
    t = TrainAugment(aug, "unit")
    assert t.uint8_ok
    out, _ = t(x, torch.zeros(6, dtype=torch.long), seed=4)
    torch.manual_seed(4)
    tops, lefts, flips, _, _ = draw_crop_flip(6, 48, 48, 40, 0.5)
    factors, orders = jitter_draws((0.4, 0.4, 0.4, 0.1), 6)
    assert len({tuple(o) for o in orders.tolist()}) > 1            # the step order is drawn per image
    for i, img in enumerate(crops):
        window = img[tops[i]:tops[i] + 40, lefts[i]:lefts[i] + 40]
        window = np.ascontiguousarray(window[:, ::-1] if flips[i] else window)
        ref = _pil_jitter(window, factors[i], orders[i]).transpose(2, 0, 1)
        d = np.abs(out[i].numpy() * 255.0 - ref)
        assert d.max() <= 8.5 and d.mean() < 0.5


def test_uint8_path_bytes_do_not_depend_on_threads_and_float_backend_is_selectable():
    aug = AugmentParams(resize=130, crop=120, hflip=0.5, color_jitter=JITTER)   # above the threading floor
    x, y = _batch(8)
    one, _ = TrainAugment(aug, "imagenet", threads=1)(x, y, seed=3)
    three, _ = TrainAugment(aug, "imagenet", threads=3)(x, y, seed=3)
    assert torch.equal(one, three)
    flt = TrainAugment(aug, "imagenet", backend="float")
    assert not flt.uint8_ok and flt(x, y, seed=3)[0].shape == one.shape
    assert not TrainAugment(AugmentParams(rotation=10.0), "unit").uint8_ok     # Kornia's ops need floats
    with pytest.raises(ValueError, match="backend 'gpu' is not one of auto, float"):
        TrainAugment(aug, "unit", backend="gpu")


def test_output_buffer_is_reused_only_when_the_caller_let_go():
    t = TrainAugment(AugmentParams(crop=16, hflip=0.5, color_jitter=JITTER), "half")
    x, y = _batch(8)
    held, _ = t(x, y, seed=1)
    kept = held.clone()
    second, _ = t(x, y, seed=2)
    assert second.data_ptr() != held.data_ptr() and torch.equal(held, kept)      # a held batch is never written
    ptr = second.data_ptr()
    del second
    third, _ = t(x, y, seed=3)
    assert third.data_ptr() == ptr                                                # dropped: its memory comes back
    view, ptr, want = third[0], third.data_ptr(), third[0].clone()
    del third
    fourth, _ = t(x, y, seed=4)
    assert fourth.data_ptr() != ptr and torch.equal(view, want)                   # a view keeps it too
    assert torch.equal(fourth, TrainAugment(AugmentParams(crop=16, hflip=0.5, color_jitter=JITTER), "half")(
        x, y, seed=4)[0])


def test_a_loop_over_batches_reuses_the_batch_before_last():
    t = TrainAugment(AugmentParams(crop=16, hflip=0.5, color_jitter=JITTER), "half")
    x, y = _batch(8)
    ptrs = []
    for seed in range(5):
        out, _ = t(x, y, seed)       # ``out`` still names the previous batch while this one is made
        ptrs.append(out.data_ptr())
    assert ptrs[2] == ptrs[0] and ptrs[3] == ptrs[1] and ptrs[0] != ptrs[1]
