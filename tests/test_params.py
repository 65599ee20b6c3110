"""params.yaml is checked whole when it is loaded: every key, range, builder and stage layout."""

import inspect
import os
import subprocess
import sys

import pytest

from deepfake_detection.model_specs import FACTORY_ARGS, METADATA, builder_specs
from deepfake_detection.params import ParamsError, load_params
from tests.conftest import REPO, enable_trained_yolo, write_params


def test_repository_params_load(repo):
    p = load_params(repo / "params.yaml")
    assert set(p.variants) >= {"resnet18_scratch", "custom_cnn"}
    assert p.enabled_sources == ["demo"]


def test_prepared_sizes_of_two_variants(tmp_path, params_dict):
    params_dict["variants"] = {k: params_dict["variants"][k] for k in ("resnet18_scratch", "custom_cnn")}
    params_dict["variants"]["resnet18_scratch"]["prepared_size"] = 224
    params_dict["prepare"]["sizes"] = [224, 64]
    p = load_params(write_params(tmp_path / "params.yaml", params_dict))
    assert p.prepare.sizes == [224, 64]
    assert {n: v.prepared_size for n, v in p.variants.items()} == {"resnet18_scratch": 224, "custom_cnn": 64}


def test_variant_overrides_merge_over_defaults(repo):
    p = load_params(repo / "params.yaml")
    cfg = p.variant_train("custom_cnn")
    assert cfg.optimizer.lr == pytest.approx(1e-4)            # overridden
    assert cfg.optimizer.name == p.train.optimizer.name        # inherited
    assert cfg.epochs == p.train.epochs


@pytest.mark.parametrize("mutate, key", [
    (lambda d: d["train"].update(epochz=3), "epochz"),
    (lambda d: d["train"].update(epochs=0), "train.epochs"),
    (lambda d: d["train"].update(batch_size="big"), "train.batch_size"),
    (lambda d: d["split"].update(train=0.9), "split"),
    (lambda d: d["faces"].update(margin=0.5), "faces.margin"),
    (lambda d: d["variants"]["custom_cnn"]["train"].update(select="best_test_auc"), "variants.custom_cnn.train.select"),
    (lambda d: d["variants"]["custom_cnn"]["model"].update(normalize="z"), "variants.custom_cnn.model.normalize"),
    (lambda d: d.update(enabled_sources=["nope"]), "enabled_sources"),
    (lambda d: d["evaluate"]["test_sets"]["test_dev"].update(dataset="nope"), "evaluate.test_sets.test_dev.dataset"),
    (lambda d: d["sources"]["demo"]["datasets"]["demo_openforensics"].update(layout="xml"), "layout"),
    (lambda d: d["sources"]["demo"]["datasets"]["demo_openforensics"].update(crop="whole"), "demo_openforensics.crop"),
    (lambda d: d["variants"]["custom_cnn"]["train"].update(datasets=["typo"]), "variants.custom_cnn.train.datasets"),
    (lambda d: d["variants"]["custom_cnn"]["train"].update(augment={"random_resized_crop_scale": [0.8, 1.0]}),
     "variants.custom_cnn.train.augment.random_resized_crop_scale"),
    (lambda d: d["faces"]["detector"].update(backend="haar"), "faces.detector.backend"),
    (lambda d: d["sources"]["demo"]["options"].update(n_train=-1), "sources.demo.options.n_train"),
])
def test_bad_values_name_the_key(tmp_path, params_dict, mutate, key):
    mutate(params_dict)
    with pytest.raises(ParamsError) as err:
        load_params(write_params(tmp_path / "params.yaml", params_dict))
    assert key in str(err.value)
    assert "params.yaml" in str(err.value)


def test_missing_file_is_a_clear_error(tmp_path):
    with pytest.raises(ParamsError, match="not found"):
        load_params(tmp_path / "params.yaml")


def _error(tmp_path, params_dict) -> str:
    with pytest.raises(ParamsError) as err:
        load_params(write_params(tmp_path / "params.yaml", params_dict))
    return str(err.value).removeprefix(f"{tmp_path / 'params.yaml'}: ")


def _variant(d, **train):
    d["variants"]["custom_cnn"]["train"].update(train)


# Each bad value and the exact one-line message it gives (the path prefix stripped).
@pytest.mark.parametrize("mutate, message", [
    (lambda d: d["variants"]["custom_cnn"]["model"].update(builder="custom_cnnn"),
     "variants.custom_cnn.model.builder: unknown builder 'custom_cnnn'; registered: ['custom_cnn', "
     "'dcgan_realness', 'efficientnetv2_s', 'hybrid_resnet34', 'keras_cnn', 'mobilenet_v2', 'resnet18', "
     "'resnet50_frozen', 'xception']"),
    (lambda d: d["variants"]["custom_cnn"]["model"].update(kwargs={"widthz": 3}),
     "variants.custom_cnn.model.kwargs: custom_cnn takes no argument(s) ['widthz']; it accepts "
     "['widths', 'hidden', 'dropout'] (input_size, num_outputs and weights_file come from the pipeline)"),
    (lambda d: d["variants"]["resnet18_scratch"]["model"].update(kwargs={"num_outputs": 1}),
     "variants.resnet18_scratch.model.kwargs: resnet18 takes no argument(s) ['num_outputs']; it accepts "
     "['cbam', 'dropout'] (input_size, num_outputs and weights_file come from the pipeline)"),
    (lambda d: d["variants"]["resnet18_scratch"]["model"].update(kwargs={"pretrained": True}),
     "variants.resnet18_scratch.model.kwargs: resnet18 takes no argument(s) ['pretrained']; it accepts "
     "['cbam', 'dropout'] (input_size, num_outputs and weights_file come from the pipeline)"),
    (lambda d: d["train"].update(mix={"name": "mixup", "alpha": -1}), "train.mix.alpha: must be > 0, got -1.0"),
    (lambda d: d["train"].update(mix={"name": "cutmix", "alpha": 0}), "train.mix.alpha: must be > 0, got 0.0"),
    (lambda d: _variant(d, scheduler={"name": "step", "step_size": 0}),
     "variants.custom_cnn.train.scheduler.step_size: must be >= 1 (epochs), got 0"),
    (lambda d: d["train"].update(scheduler={"name": "step", "gamma": 0}),
     "train.scheduler.gamma: must be in (0, 1], got 0.0"),
    (lambda d: d["train"].update(scheduler={"name": "step", "gamma": 1.5}),
     "train.scheduler.gamma: must be in (0, 1], got 1.5"),
    (lambda d: d["train"].update(scheduler={"name": "cosine", "t_max": -1}),
     "train.scheduler.t_max: must be >= 0 (0 = the number of epochs), got -1"),
    (lambda d: d["evaluate"].update(batch_size=-5), "evaluate.batch_size: must be >= 1, got -5"),
    (lambda d: d["evaluate"].update(batch_size=0), "evaluate.batch_size: must be >= 1, got 0"),
    (lambda d: d["train"].update(batch_size=0), "train.batch_size: must be >= 1, got 0"),
    (lambda d: d["train"]["optimizer"].update(lr=0), "train.optimizer.lr: must be > 0, got 0.0"),
    (lambda d: d["train"]["optimizer"].update(weight_decay=-0.1),
     "train.optimizer.weight_decay: must be >= 0, got -0.1"),
    (lambda d: d["train"]["optimizer"].update(momentum=1.0), "train.optimizer.momentum: must be in [0, 1), got 1.0"),
    (lambda d: d["train"].update(max_batches_per_epoch=-2),
     "train.max_batches_per_epoch: must be >= 0 (0 = whole epochs), got -2"),
    (lambda d: _variant(d, augment={"crop": -4}), "variants.custom_cnn.train.augment.crop: must be >= 0 (0 = no crop), got -4"),
    (lambda d: _variant(d, augment={"resize": -1}),
     "variants.custom_cnn.train.augment.resize: must be >= 0 (0 = keep the prepared size), got -1"),
    (lambda d: _variant(d, augment={"color_jitter": [0.1, -0.1, 0, 0]}),
     "variants.custom_cnn.train.augment.color_jitter: brightness, contrast, saturation, hue must be >= 0, "
     "got [0.1, -0.1, 0.0, 0.0]"),
    (lambda d: _variant(d, augment={"color_jitter": [0, 0, 0, 0.6]}),
     "variants.custom_cnn.train.augment.color_jitter: hue must be <= 0.5, got 0.6"),
    (lambda d: d["evaluate"]["test_sets"]["test_dev"].update(split=""),
     "evaluate.test_sets.test_dev.split: name a manifest split (e.g. test)"),
    # prepare.sizes must be exactly the variants' prepared_size values (dvc.yaml's foreach list)
    (lambda d: d["variants"]["custom_cnn"].update(prepared_size=128),
     "prepare.sizes: add 128: variant(s) ['custom_cnn'] set prepared_size 128 (sizes: [48, 64])"),
    (lambda d: d["prepare"].update(sizes=[48, 64, 224]),
     "prepare.sizes: remove [224]: no variant sets that prepared_size (used: [48, 64])"),
    (lambda d: d["prepare"].update(sizes=[64, 64]), "prepare.sizes: lists a size twice: [64, 64]"),
    (lambda d: d["prepare"].update(sizes=[4]), "prepare.sizes: every size must be >= 8, got 4"),
    (lambda d: d["prepare"].update(sizes=[]), "prepare.sizes: list at least one size (the variants' prepared_size)"),
    (lambda d: d["variants"]["custom_cnn"].pop("prepared_size"), "variants.custom_cnn.prepared_size: required key is missing"),
    (lambda d: d["prepare"].update(size=64), "prepare: unknown key(s) ['size']; allowed keys are ['sizes']"),
    # pretrained weights exist only for builders that declare them; a weights_file needs pretrained
    (lambda d: d["variants"]["custom_cnn"]["model"].update(pretrained=True),
     "variants.custom_cnn.model.pretrained: builder custom_cnn has no pretrained weights; set pretrained: false "
     "and no weights_file (got pretrained True, weights_file '')"),
    (lambda d: d["variants"]["custom_cnn"]["model"].update(pretrained="fallback_scratch"),
     "variants.custom_cnn.model.pretrained: builder custom_cnn has no pretrained weights; set pretrained: false "
     "and no weights_file (got pretrained 'fallback_scratch', weights_file '')"),
    (lambda d: d["variants"]["custom_cnn"]["model"].update(weights_file="w.pth"),
     "variants.custom_cnn.model.pretrained: builder custom_cnn has no pretrained weights; set pretrained: false "
     "and no weights_file (got pretrained False, weights_file 'w.pth')"),
    (lambda d: d["variants"]["resnet18_scratch"]["model"].update(weights_file="w.pth"),
     "variants.resnet18_scratch.model.weights_file: 'w.pth' is set but pretrained is false; set pretrained: true "
     "(or fallback_scratch) or remove weights_file"),
    (lambda d: d["variants"]["resnet18_scratch"]["model"].update(pretrained="yes"),
     "variants.resnet18_scratch.model.pretrained: 'yes' is not allowed; use one of: true, false, 'fallback_scratch'"),
    (lambda d: d["train"].update(l2=-0.01), "train.l2: must be >= 0 (0 = no penalty), got -0.01"),
    (lambda d: _variant(d, augment={"eval_resize": 72}),
     "variants.custom_cnn.train.augment.eval_resize: needs crop > 0 (the centre crop gives eval the training "
     "input size), got crop 0"),
    (lambda d: d["train"].update(scheduler={"name": "exponential", "gamma": 0}),
     "train.scheduler.gamma: must be in (0, 1], got 0.0"),
])
def test_bad_values_give_the_exact_message(tmp_path, params_dict, mutate, message):
    mutate(params_dict)
    assert _error(tmp_path, params_dict) == message


def test_model_weights_and_normalisation_defaults(tmp_path, params_dict):
    model = params_dict["variants"]["resnet18_scratch"]["model"]
    model.update(pretrained="fallback_scratch", weights_file="w.pth")
    model.pop("normalize", None)
    params_dict["variants"]["custom_cnn"]["model"]["normalize"] = "unit"
    p = load_params(write_params(tmp_path / "params.yaml", params_dict))
    m = p.variants["resnet18_scratch"].model
    assert (m.pretrained, m.weights_file, m.normalize) == ("fallback_scratch", "w.pth", None)
    assert m.effective_normalize == builder_specs()["resnet18"].normalize == "half"    # the builder's default
    assert p.variants["custom_cnn"].model.effective_normalize == "unit"               # set: it wins
    model["pretrained"] = True
    assert load_params(write_params(tmp_path / "params.yaml", params_dict)).variants[
        "resnet18_scratch"].model.pretrained is True


def test_builder_specs_match_the_live_registry():
    from deepfake_detection.models.registry import get_builder, list_models, model_info

    specs = builder_specs()
    assert sorted(specs) == list_models() == ["custom_cnn", "dcgan_realness", "efficientnetv2_s", "hybrid_resnet34",
                                              "keras_cnn", "mobilenet_v2", "resnet18", "resnet50_frozen", "xception"]
    for name, spec in specs.items():
        sig = inspect.signature(get_builder(name)).parameters
        assert spec.kwargs == tuple(p for p in sig if p not in FACTORY_ARGS
                                    and sig[p].kind is not inspect.Parameter.VAR_KEYWORD)
        assert spec.var_kwargs == any(p.kind is inspect.Parameter.VAR_KEYWORD for p in sig.values())
        info = model_info(name)
        assert {k: getattr(spec, k) for k in METADATA} == {k: getattr(info, k) for k in METADATA}
        assert spec.num_outputs == info.num_outputs
        # weights_file is a parameter exactly of the builders that declare weights
        assert ("weights_file" in sig) == (info.weights is not None)


def test_builder_metadata_must_be_literal(tmp_path):
    (tmp_path / "a.py").write_text("@register_model(head=HEAD, normalize='half', gradcam_layer='x', "
                                   "default_size=8)\ndef a(input_size, num_outputs):\n    pass\n")
    with pytest.raises(ValueError, match="@register_model of 'a': every argument must be a literal"):
        builder_specs.__wrapped__(tmp_path)
    (tmp_path / "a.py").write_text("@register_model\ndef a(input_size, num_outputs):\n    pass\n")
    with pytest.raises(ValueError, match="line 1: @register_model needs its metadata"):
        builder_specs.__wrapped__(tmp_path)


def test_params_import_loads_no_torch():
    code = "import sys, deepfake_detection.params; print('torch' in sys.modules)"
    assert subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          check=True).stdout == "False\n"


# ------------------------------------------------------------------ face stages / trained YOLO

RULE = "faces.detector.backend is yolo, faces.detector.yolo.weights is empty and it has a dataset with crop: detector"


def _yolo(d):
    enable_trained_yolo(d, epochs=1, imgsz=64)


def test_repository_params_train_no_detector(repo):
    p = load_params(repo / "params.yaml")
    assert (p.face_stages.faces, p.face_stages.faces_yolo, p.face_detectors) == (["demo"], [], {})
    assert p.needs_trained_yolo("demo") is False


def test_yolo_crops_load_when_consistent(tmp_path, params_dict):
    _yolo(params_dict)
    p = load_params(write_params(tmp_path / "params.yaml", params_dict))
    assert p.needs_trained_yolo("demo") is True
    assert (p.face_detector_params().epochs, p.face_detector_params().imgsz) == (1, 64)


@pytest.mark.parametrize("mutate, message", [
    # the default demo, but a stale face_stages or a detector trained for nothing
    (lambda d: d.update(face_stages={"faces": [], "faces_yolo": ["demo"]}),
     f"face_stages.faces: add 'demo' (and remove it from face_stages.faces_yolo): it needs no trained YOLO "
     f"(that takes: {RULE})"),
    (lambda d: d.update(face_stages={"faces": ["demo", "openforensics"], "faces_yolo": []}),
     "face_stages: 'openforensics' is not in enabled_sources ['demo']; remove it from face_stages"),
    (lambda d: d.update(face_stages={"faces": [], "faces_yolo": []}),
     f"face_stages.faces: add 'demo' (and remove it from face_stages.faces_yolo): it needs no trained YOLO "
     f"(that takes: {RULE})"),
    (lambda d: d.update(face_detectors={"yolo": {"source": "demo"}}),
     "face_detectors: remove ['yolo'] (set face_detectors: {}): face_stages.faces_yolo is empty, so no faces "
     "stage would use the trained detector"),
    # detector crops with the trained YOLO, but face_stages or face_detectors not updated
    (lambda d: (_yolo(d), d.update(face_stages={"faces": ["demo"], "faces_yolo": []})),
     f"face_stages.faces_yolo: add 'demo' (and remove it from face_stages.faces): it crops with the YOLO "
     f"trained here ({RULE})"),
    (lambda d: (_yolo(d), d.update(face_detectors={})),
     "face_detectors.yolo: missing: face_stages.faces_yolo ['demo'] crops with it; define its training config "
     "(source, coco_subdir, epochs, ...; see faces.yolo.FaceDetectorTrainParams)"),
    (lambda d: (_yolo(d), d["face_detectors"]["yolo"].pop("eval_split")),
     "face_detectors.yolo: set ['eval_split'] explicitly: dvc.yaml builds the stage's paths from them"),
    (lambda d: (_yolo(d), d["face_detectors"]["yolo"].update(source="openforensics")),
     "face_detectors.yolo.source: 'openforensics' is not in enabled_sources ['demo']; name an enabled source "
     "with COCO boxes (train_face_detector reads data/raw/<source>)"),
    (lambda d: (_yolo(d), d["face_detectors"].update(retina={})),
     "face_detectors: unknown detector(s) ['retina']; the faces_yolo stages use 'yolo' "
     "(data/models/face_detector.pt)"),
    (lambda d: (_yolo(d), d["face_detectors"]["yolo"].update(epochs=0)),
     "face_detectors.yolo.epochs: must be >= 1, got 0"),
])
def test_face_stages_must_follow_the_rule(tmp_path, params_dict, mutate, message):
    mutate(params_dict)
    assert _error(tmp_path, params_dict) == message


@pytest.mark.parametrize("change", [
    lambda d: d["faces"]["detector"].update(backend="yunet"),            # a shipped detector
    lambda d: d["faces"]["detector"]["yolo"].update(weights="models/mine.pt"),   # a YOLO trained elsewhere
])
def test_detector_crops_without_training(tmp_path, params_dict, change):
    _yolo(params_dict)
    change(params_dict)
    params_dict["face_stages"] = {"faces": ["demo"], "faces_yolo": []}
    params_dict["face_detectors"] = {}
    p = load_params(write_params(tmp_path / "params.yaml", params_dict))
    assert p.needs_trained_yolo("demo") is False


# ------------------------------------------------------------------ stage CLIs

@pytest.mark.parametrize("argv", [
    ["stages/prepare.py", "--manifest", "m.csv", "--size", "64", "--out", "out"],
    ["stages/report.py", "--metrics-root", "metrics/eval", "--scores-root", "data/eval", "--out", "leaderboard.md"],
])
def test_stages_print_a_params_error_as_one_line(tmp_path, params_dict, argv):
    params_dict["evaluate"]["batch_size"] = -5
    path = write_params(tmp_path / "params.yaml", params_dict)
    out = subprocess.run([sys.executable, str(REPO / argv[0]), *argv[1:], "--params", str(path)], cwd=tmp_path,
                         capture_output=True, text=True, env={**os.environ, "PYTHONPATH": str(REPO)})
    stage = argv[0].removeprefix("stages/").removesuffix(".py")
    assert (out.returncode, out.stdout, out.stderr) == \
        (1, "", f"{stage}: {path}: evaluate.batch_size: must be >= 1, got -5\n")
