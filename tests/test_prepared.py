import numpy as np
import pandas as pd
import pytest
import torch

from deepfake_detection.cli import main as cli_main
from deepfake_detection.data.batches import BatchReader
from deepfake_detection.data.prepared import load_prepared, prepare_arrays, select_rows
from deepfake_detection.data.transforms import eval_transform, input_size, to_float_batch
from deepfake_detection.io import write_image_rgb
from deepfake_detection.params import AugmentParams
from stages.evaluate import thin_roc


def test_prepare_decodes_once_in_manifest_order(tmp_path):
    rows = []
    for i in range(5):
        img = np.full((40, 40, 3), i * 50, np.uint8)
        write_image_rgb(tmp_path / f"f{i}.png", img)
        rows.append({"face_id": f"d/f{i}", "path": str(tmp_path / f"f{i}.png"), "label": i % 2,
                     "source": "d", "split": "train" if i < 3 else "val"})
    prepare_arrays(pd.DataFrame(rows), 16, tmp_path / "prep", workers=2)
    images, index = load_prepared(tmp_path / "prep")
    assert images.shape == (5, 16, 16, 3) and images.dtype == np.uint8
    assert [int(images[i].mean()) for i in range(5)] == [0, 50, 100, 150, 200]
    assert list(select_rows(index, ["d"], "val")) == [3, 4]
    reader = BatchReader(images, index["label"].to_numpy(), select_rows(index, ["d"], "train"), 8, shuffle=False)
    ((x, y),) = list(reader.epoch(1))
    assert x.shape == (3, 3, 16, 16) and x.dtype == torch.uint8
    assert x[:, 0, 0, 0].tolist() == [0, 50, 100] and y.tolist() == [0, 1, 0]


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
    bad.write_text((repo / "params.yaml").read_text().replace("epochs: 6", "epochs: -1"))
    assert cli_main(["check", str(bad)]) == 2
    assert "train.epochs" in capsys.readouterr().err
    assert cli_main(["models"]) == 0
    assert "custom_cnn" in capsys.readouterr().out


@pytest.mark.parametrize("bad", [{"resize": "x"}])
def test_augment_params_types(bad):
    from deepfake_detection.params import ParamsError, from_dict

    with pytest.raises(ParamsError, match="augment.resize"):
        from_dict(AugmentParams, bad, "train.augment")
