"""The paper presets reproduce each report's stated recipe (issue 9, "paper-faithful details").

Every preset is applied to the repository's params.yaml and the resolved training configs and
builders are checked against the numbers the reports state (SPEC.md, classifier table).
"""

from pathlib import Path

import pytest
import torch
import yaml

from deepfake_detection.models.registry import create_model, model_info
from deepfake_detection.params import parse_params
from deepfake_detection.presets import apply_preset, find_preset

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def preset_params():
    base = yaml.safe_load((ROOT / "params.yaml").read_text())

    def load(name):
        return parse_params(apply_preset(base, find_preset(name, ROOT / "presets"),
                                         {"sources.fake_video_images.options.dataset": "owner/slug"}))
    return load


def _variant(params, name):
    v = params.variants[name]
    return v, params.variant_train(name), model_info(v.model.builder)


def test_seed_000_resnet18_recipes(preset_params):
    p = preset_params("seed_000")
    assert sorted(p.variants) == ["resnet18_cbam", "resnet18_cbam_dropout", "resnet18_cutmix",
                                  "resnet18_scratch", "resnet18_transfer"]
    for name in p.variants:
        v, cfg, info = _variant(p, name)
        assert info.head == "softmax2" and info.gradcam_layer == "layer4.1.conv2"
        assert (cfg.optimizer.name, cfg.optimizer.lr, cfg.batch_size, cfg.epochs) == ("adam", 3e-4, 64, 10)
        assert (cfg.scheduler.name, cfg.scheduler.step_size, cfg.scheduler.gamma) == ("step", 7, 0.1)
        a = cfg.augment
        assert (v.prepared_size, a.resize, a.crop, a.eval_resize, a.hflip) == (256, 256, 224, 224, 0.5)
        assert tuple(a.color_jitter) == (0.1, 0.1, 0.1, 0.05)
        normalize = v.model.normalize or info.normalize
        assert normalize == ("imagenet" if name == "resnet18_transfer" else "half")
        assert v.model.pretrained is (name == "resnet18_transfer")
    assert _variant(p, "resnet18_cutmix")[1].mix.name == "cutmix"
    assert _variant(p, "resnet18_cutmix")[1].mix.alpha == 1.0
    assert p.variants["resnet18_cbam_dropout"].model.kwargs == {"cbam": True, "dropout": 0.5}
    assert p.variants["resnet18_cbam"].model.kwargs == {"cbam": True}


def test_seed_001_efficientnet_recipe(preset_params):
    p = preset_params("seed_001")
    v, cfg, info = _variant(p, "efficientnetv2s_mixup")
    assert info.head == "logit"          # BCEWithLogits on one logit
    assert (cfg.optimizer.name, cfg.optimizer.lr, cfg.optimizer.weight_decay) == ("adamw", 1e-4, 1e-5)
    assert (cfg.scheduler.name, cfg.scheduler.t_max, cfg.epochs, cfg.batch_size) == ("cosine", 10, 8, 32)
    assert (cfg.mix.name, cfg.mix.alpha) == ("mixup", 0.2)
    a = cfg.augment
    assert (a.crop, tuple(a.random_resized_crop_scale), a.autoaugment, a.hflip) == (224, (0.8, 1.0), True, 0.5)
    assert (v.prepared_size, a.eval_resize) == (256, 256)     # eval Resize 256 + CenterCrop 224
    assert cfg.select == "best_val_auc" and v.model.pretrained is True
    model = create_model("efficientnetv2_s", input_size=64)
    head = [m for m in model.head if isinstance(m, torch.nn.Linear)]
    assert [(m.out_features) for m in head] == [512, 1]
    assert [m.p for m in model.head if isinstance(m, torch.nn.Dropout)] == [0.3]


def test_seed_002_keras_progression_and_frozen_resnet50(preset_params):
    p = preset_params("seed_002")
    sizes = {n: p.variants[n].prepared_size for n in p.variants}
    assert sizes == {"keras_cnn1": 200, "keras_cnn2": 224, "keras_cnn3": 224, "keras_cnn4": 200,
                     "keras_cnn5": 200, "resnet50_frozen": 224}
    batches = {n: p.variant_train(n).batch_size for n in p.variants}
    assert batches == {"keras_cnn1": 64, "keras_cnn2": 64, "keras_cnn3": 128, "keras_cnn4": 128,
                       "keras_cnn5": 128, "resnet50_frozen": 64}
    epochs = {n: p.variant_train(n).epochs for n in p.variants}
    assert epochs == {"keras_cnn1": 10, "keras_cnn2": 10, "keras_cnn3": 10, "keras_cnn4": 10,
                      "keras_cnn5": 15, "resnet50_frozen": 8}
    for name in p.variants:
        v, cfg, info = _variant(p, name)
        assert info.head == "logit"
        assert (v.model.normalize or info.normalize) == ("imagenet" if name == "resnet50_frozen" else "unit")
        assert cfg.l2 == (0.01 if name == "keras_cnn5" else 0.0)
    k = {n: p.variants[n].model.kwargs for n in p.variants if n.startswith("keras")}
    assert k["keras_cnn2"] == {**k["keras_cnn1"], "conv_dropout": 0.25}           # M2 = M1 + Dropout 0.25
    assert len(k["keras_cnn3"]["widths"]) == len(k["keras_cnn1"]["widths"]) + 1     # M3: one more conv block
    assert len(k["keras_cnn3"]["dense"]) == len(k["keras_cnn1"]["dense"]) + 1       # ... and one more dense layer
    assert k["keras_cnn4"] == k["keras_cnn3"] == k["keras_cnn5"]
    assert p.variant_train("keras_cnn1").augment.hflip == 0.0
    assert p.variant_train("keras_cnn2").augment.rotation > 0 and p.variant_train("keras_cnn2").augment.zoom > 0
    assert {n for n in p.variants if p.variant_train(n).scheduler.name == "exponential"} == {
        "keras_cnn3", "keras_cnn4", "keras_cnn5", "resnet50_frozen"}
    v, cfg, info = _variant(p, "resnet50_frozen")
    assert v.model.pretrained is True and info.frozen == ("backbone",)
    model = create_model("resnet50_frozen", input_size=64)
    trainable = sum(q.numel() for q in model.parameters() if q.requires_grad)
    assert trainable == 2048 * 256 + 256 + 256 * 1 + 1      # GAP -> Dense256 -> Dropout -> 1 logit, backbone frozen


def test_seed_003_finetune_recipes(preset_params):
    p = preset_params("seed_003")
    assert sorted(p.evaluate.test_sets) == ["test_challenge", "test_dev"]
    for name in ("mobilenetv2_finetune", "xception_finetune", "custom_cnn"):
        v, cfg, info = _variant(p, name)
        assert (cfg.optimizer.name, cfg.optimizer.lr, cfg.batch_size, v.prepared_size) == ("adam", 1e-4, 32, 224)
        assert info.head == "softmax2"
    mobilenet = create_model("mobilenet_v2", input_size=64)
    assert (mobilenet.classifier[1].in_features, mobilenet.classifier[1].out_features) == (1280, 2)
    xception = create_model("xception", input_size=64)
    assert (xception.fc.in_features, xception.fc.out_features) == (2048, 2)
    assert all(q.requires_grad for q in mobilenet.parameters())
    assert p.variants["mobilenetv2_finetune"].model.pretrained is True
    assert p.variants["xception_finetune"].model.pretrained is True
