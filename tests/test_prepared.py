import hashlib
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch

from deepfake_detection.cli import main as cli_main
from deepfake_detection.data.batches import BatchReader
from deepfake_detection.data.prepared import load_prepared, prepare_arrays, select_rows
from deepfake_detection.data.transforms import eval_transform, input_size, to_float_batch
from deepfake_detection.io import read_image_rgb, resize_square, write_csv, write_image_rgb
from deepfake_detection.params import AugmentParams
from stages.evaluate import thin_roc
from tests.conftest import REPO


def _faces(root, n=5):
    rows = []
    for i in range(n):
        img = np.full((40, 40, 3), i * 50 % 256, np.uint8)
        write_image_rgb(root / f"f{i}.png", img)
        rows.append({"face_id": f"d/f{i}", "path": str(root / f"f{i}.png"), "label": i % 2,
                     "source": "d", "split": "train" if i < 3 else "val"})
    return rows


def _manifest(root, rows) -> Path:
    write_csv(root / "manifest.csv", pd.DataFrame(rows))
    return root / "manifest.csv"


def test_prepare_decodes_once_in_manifest_order(tmp_path):
    prepare_arrays(_manifest(tmp_path, _faces(tmp_path)), 16, tmp_path / "prep", workers=2)
    images, index = load_prepared(tmp_path / "prep")
    assert images.shape == (5, 16, 16, 3) and images.dtype == np.uint8
    assert [int(images[i].mean()) for i in range(5)] == [0, 50, 100, 150, 200]
    assert list(select_rows(index, ["d"], "val")) == [3, 4]
    reader = BatchReader(images, index["label"].to_numpy(), select_rows(index, ["d"], "train"), 8, shuffle=False)
    ((x, y),) = list(reader.epoch(1))
    assert x.shape == (3, 3, 16, 16) and x.dtype == torch.uint8
    assert x[:, 0, 0, 0].tolist() == [0, 50, 100] and y.tolist() == [0, 1, 0]


def _old_prepare(manifest: Path, size: int, out: Path) -> None:
    """prepare before streaming: pandas table, writable memmap, pool.map over every path."""
    frame = pd.read_csv(manifest, keep_default_na=False, dtype={"official_split": str, "generator": str, "split": str})
    out.mkdir()
    arr = np.lib.format.open_memmap(out / "images.npy", mode="w+", dtype=np.uint8, shape=(len(frame), size, size, 3))
    for i, path in enumerate(frame["path"]):
        arr[i] = resize_square(read_image_rgb(path), size)
    arr.flush()
    del arr
    frame.reset_index(drop=True).assign(row=np.arange(len(frame))).to_csv(out / "index.csv", index=False,
                                                                          lineterminator="\n")


def _md5(path: Path) -> str:
    return hashlib.md5(path.read_bytes()).hexdigest()


@pytest.mark.parametrize("size", [16, 24, 48])   # shrink (area), equal, enlarge (bicubic)
def test_streamed_prepare_is_byte_identical_to_the_old_one_and_to_np_stack(tmp_path, size):
    rng = np.random.default_rng(size)
    rows = []
    for i in range(23):
        side = int(rng.integers(20, 40))
        write_image_rgb(tmp_path / f"f{i}.jpg", rng.integers(0, 256, (side, side + i % 3, 3), dtype=np.uint8))
        rows.append({"face_id": f"d/f{i}", "path": str(tmp_path / f"f{i}.jpg"), "label": i % 2,
                     "source": "d", "generator": "" if i % 2 == 0 else "gan, \"v2\"", "group": f"g{i // 3}",
                     "official_split": "" if i % 4 else "Test-Dev", "box_x": i * 1.5, "box_y": i,
                     "box_w": "" if i % 5 == 0 else 12, "img_w": 256, "split": ["train", "val", "test"][i % 3]})
    manifest = _manifest(tmp_path, rows)
    _old_prepare(manifest, size, tmp_path / "old")
    n = prepare_arrays(manifest, size, tmp_path / "new", workers=3, rows_per_chunk=4)   # 6 chunks, 4 in flight
    assert n == 23
    for name in ("images.npy", "index.csv"):
        assert _md5(tmp_path / "new" / name) == _md5(tmp_path / "old" / name), name
    reference = np.stack([resize_square(read_image_rgb(r["path"]), size) for r in rows])
    assert np.array_equal(np.load(tmp_path / "new" / "images.npy"), reference)


def test_an_empty_manifest_gives_an_empty_array(tmp_path):
    manifest = tmp_path / "manifest.csv"
    manifest.write_text("face_id,path,label\n")
    prepare_arrays(manifest, 8, tmp_path / "prep")
    assert np.load(tmp_path / "prep" / "images.npy").shape == (0, 8, 8, 3)
    assert (tmp_path / "prep" / "index.csv").read_text() == "face_id,path,label,row\n"


@pytest.mark.parametrize("damage, message", [
    (lambda p: p.unlink(), "{p}: missing file listed in the manifest; re-run the faces and split stages (dvc repro split)"),
    (lambda p: p.write_bytes(b"not a png"),
     "{p}: does not decode as an image; re-run the faces stage that wrote it"),
])
def test_a_bad_face_is_one_line_naming_the_file_and_leaves_no_output(tmp_path, damage, message):
    rows = _faces(tmp_path, 9)
    manifest = _manifest(tmp_path, rows)
    bad = Path(rows[6]["path"])
    damage(bad)
    out = subprocess.run([sys.executable, str(REPO / "stages/prepare.py"), "--params", str(REPO / "params.yaml"),
                          "--manifest", str(manifest), "--size", "64", "--out", str(tmp_path / "prep")],
                         capture_output=True, text=True, env={**os.environ, "PYTHONPATH": str(REPO)})
    assert (out.returncode, out.stdout, out.stderr) == (1, "", f"prepare: {message.format(p=bad)}\n")
    assert sorted(p.name for p in tmp_path.iterdir() if not p.name.startswith("f")) == ["manifest.csv"]


def test_a_size_not_in_prepare_sizes_is_refused(tmp_path):
    out = subprocess.run([sys.executable, str(REPO / "stages/prepare.py"), "--params", str(REPO / "params.yaml"),
                          "--manifest", "m.csv", "--size", "96", "--out", "prep"], cwd=tmp_path,
                         capture_output=True, text=True, env={**os.environ, "PYTHONPATH": str(REPO)})
    assert (out.returncode, out.stderr) == (1, f"prepare: --size 96 is not in prepare.sizes [48, 64] of "
                                               f"{REPO / 'params.yaml'}; add it there (and set a variant's "
                                               f"prepared_size to it)\n")


def test_the_prepare_stage_imports_neither_torch_nor_pandas():
    code = "import sys, stages.prepare; print(sorted({'torch', 'pandas'} & set(sys.modules)))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True,
                         cwd=REPO, env={**os.environ, "PYTHONPATH": str(REPO)})
    assert out.stdout == "[]\n"


def test_to_float_batch_by_hand():
    x = torch.tensor([0, 255], dtype=torch.uint8).view(1, 1, 1, 2).expand(1, 3, 1, 2)
    assert torch.allclose(to_float_batch(x, "half")[0, 0, 0], torch.tensor([-1.0, 1.0]))
    assert torch.allclose(to_float_batch(x, "unit")[0, 0, 0], torch.tensor([0.0, 1.0]))
    im = to_float_batch(x, "imagenet")[0, :, 0, 0]
    assert torch.allclose(im, -torch.tensor([0.485, 0.456, 0.406]) / torch.tensor([0.229, 0.224, 0.225]))


def test_eval_transform_keeps_uint8_and_reaches_the_model_size():
    aug = AugmentParams(resize=36, crop=32, hflip=0.5, color_jitter=(0.1, 0.1, 0.1, 0.05))
    x = torch.randint(0, 256, (3, 32, 32), dtype=torch.uint8)
    out = eval_transform(aug)(x)
    assert out.dtype == torch.uint8 and out.shape == (3, 32, 32)
    assert input_size(aug, 64) == 32 and input_size(AugmentParams(), 64) == 64
    assert torch.equal(eval_transform(AugmentParams())(x), x)


def test_thin_roc_resamples_a_step_curve():
    roc = thin_roc(np.array([0.0, 0.0, 0.5, 1.0]), np.array([0.0, 0.5, 1.0, 1.0]), n=5)
    assert list(roc["fpr"]) == [0.0, 0.25, 0.5, 0.75, 1.0]
    assert list(roc["tpr"]) == [0.5, 0.5, 1.0, 1.0, 1.0]


def test_cli_check_and_models(repo, capsys, tmp_path):
    assert cli_main(["check", str(repo / "params.yaml")]) == 0
    assert "resnet18_scratch" in capsys.readouterr().out
    bad = tmp_path / "p.yaml"
    bad.write_text((repo / "params.yaml").read_text().replace("epochs: 4", "epochs: -1", 1))
    assert cli_main(["check", str(bad)]) == 2
    assert "train.epochs" in capsys.readouterr().err
    assert cli_main(["models"]) == 0
    assert "custom_cnn" in capsys.readouterr().out


@pytest.mark.parametrize("bad", [{"resize": "x"}])
def test_augment_params_types(bad):
    from deepfake_detection.params import ParamsError, from_dict

    with pytest.raises(ParamsError, match="augment.resize"):
        from_dict(AugmentParams, bad, "train.augment")
