import pytest

from deepfake_detection.params import ParamsError, load_params
from tests.conftest import write_params


def test_repository_params_load(repo):
    p = load_params(repo / "params.yaml")
    assert set(p.variants) >= {"resnet18_scratch", "custom_cnn"}
    assert p.enabled_sources == ["demo"]


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
    (lambda d: d["face_detector"].update(source="openforensics"), "face_detector.source"),
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
