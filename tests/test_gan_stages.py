"""The fid_reference and train_gan stages on a tiny prepared set: outputs, FID, classifier files, resume.

The prepared faces are random 64 px images (real and redder fakes) in the manifest layout the
prepare stage writes; FID runs the shipped Inception on 4-6 images per set.
"""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest
import torch
import yaml

from deepfake_detection.data.batches import BatchReader
from deepfake_detection.data.batch_augment import EvalAugment
from deepfake_detection.evaluation.fid import activations, fid_from_activations, fid_network
from deepfake_detection.gan.nets import create_gan_net, to_net_pixels
from deepfake_detection.models.registry import load_trained_model, model_info
from deepfake_detection.params import AugmentParams, load_params
from deepfake_detection.training.engine import Runtime, predict
from stages import fid_reference as fid_stage
from stages import train_gan as gan_stage
from tests.conftest import REPO, write_params

SPLITS = [("train", 24), ("val", 12), ("test_dev", 8)]
TINY_G = {"builder": "dcgan224_generator", "kwargs": {"width": 4, "size": 64, "z_dim": 8}}
TINY_D = {"builder": "dcgan224_discriminator", "kwargs": {"width": 4, "size": 64}}


@pytest.fixture(scope="module")
def prepared(tmp_path_factory):
    root = tmp_path_factory.mktemp("prepared") / "64"
    rng = np.random.default_rng(0)
    n = sum(k for _, k in SPLITS)
    labels = np.arange(n) % 2
    images = rng.integers(0, 150, (n, 64, 64, 3), dtype=np.uint8)
    images[labels == 1, :, :, 0] = 250
    split = np.concatenate([[name] * k for name, k in SPLITS])
    root.mkdir(parents=True)
    np.save(root / "images.npy", images)
    pd.DataFrame({"face_id": [f"f{i:03d}" for i in range(n)], "path": [f"x/{i}.png" for i in range(n)],
                  "label": labels, "source": "demo_openforensics",
                  "generator": ["" if i % 4 != 1 else "gen_b" for i in range(n)],
                  "group": [f"scene{i // 2}" for i in range(n)], "official_split": split, "split": split,
                  "row": np.arange(n)}).to_csv(root / "index.csv", index=False)
    return root


def _params(tmp, variants: dict) -> object:
    raw = yaml.safe_load((REPO / "params.yaml").read_text())
    raw["prepare"] = {"sizes": [64]}
    raw["variants"] = {"cnn": {"model": {"builder": "custom_cnn", "kwargs": {"widths": [4], "hidden": 8}},
                               "prepared_size": 64}}
    raw["gan"].update({"datasets": ["demo_openforensics"], "holdout": 0.25, "seed": 1,
                       "fid": {"n_real": 6, "n_fake": 4, "n_reference": 4, "batch_size": 4, "method": "auto"}})
    base = {"prepared_size": 64, "generator": TINY_G, "discriminator": TINY_D, "epochs": 2, "batch_size": 4,
            "sample_grid": 4}
    raw["gan_variants"] = {name: {**base, **v} for name, v in variants.items()}
    return write_params(tmp / "params.yaml", raw)


def _run_reference(tmp, params, prepared):
    fid_stage.main(["--params", str(params), "--prepared", str(prepared), "--out", str(tmp / "fid" / "real.npz"),
                    "--metrics", str(tmp / "fid" / "reference.json")])
    return tmp / "fid" / "real.npz"


def _run_gan(tmp, params, prepared, name, reference, *extra):
    gan_stage.main(["--params", str(params), "--variant", name, "--prepared", str(prepared),
                    "--fid-reference", str(reference), "--out", str(tmp / "gans" / name),
                    "--samples", str(tmp / "samples" / f"{name}.jpg"), "--metrics", str(tmp / "gan" / f"{name}.json"),
                    "--live", str(tmp / "live" / name), *extra])
    return json.loads((tmp / "gan" / f"{name}.json").read_text())


def test_reference_and_a_generative_variant(tmp_path, prepared):
    params = _params(tmp_path, {"dcgan_small": {"kind": "generative", "real_label": 0.9}})
    reference = _run_reference(tmp_path, params, prepared)
    with np.load(reference) as ref:
        real, rows = ref["activations"], ref["rows"]
    assert real.shape == (len(rows), 2048) and len(rows) == 6
    index = pd.read_csv(prepared / "index.csv", keep_default_na=False)
    assert (index.loc[rows, "label"] == 0).all()
    ref_rows = json.loads((tmp_path / "fid" / "reference.json").read_text())
    assert sorted(ref_rows) == ["demo_openforensics", "demo_openforensics/gen_b"]
    assert ref_rows["demo_openforensics/gen_b"]["fid_n_fake"] == 4 and ref_rows["demo_openforensics"]["fid_n_real"] == 6

    m = _run_gan(tmp_path, params, prepared, "dcgan_small", reference)
    assert m["kind"] == "generative" and m["epochs"] == 2 and m["fid_n_fake"] == 4 and m["fid_n_real"] == 6
    assert m["fid_method"] == "gram" and "only 4 samples" in m["fid_warning"] and m["fid"] > 0
    # the FID is the generator's samples against the reference activations, recomputed here
    gen = torch.load(tmp_path / "gans" / "dcgan_small" / "generator.pt", weights_only=True)
    g = create_gan_net(gen["builder"], **gen["kwargs"])
    g.load_state_dict(gen["state_dict"])
    fake = gan_stage.sample(g, gan_stage.fixed_latents(4, 8, 42 + gan_stage.FID_SEED_OFFSET), "half",
                            torch.device("cpu")).numpy()
    expected = fid_from_activations(real, activations(fake, fid_network()), "gram")["fid"]
    assert m["fid"] == pytest.approx(round(expected, 4), abs=1e-3)
    out = tmp_path / "gans" / "dcgan_small"
    assert sorted(p.name for p in (out / "samples").iterdir()) == ["epoch_001.png", "epoch_002.png"]
    assert not (out / "model.pt").exists()
    live = tmp_path / "live" / "dcgan_small" / "plots" / "metrics"
    assert sorted(p.name for p in live.iterdir()) == ["d_loss.tsv", "g_grad_last.tsv", "g_loss.tsv"]
    assert (tmp_path / "samples" / "dcgan_small.jpg").read_bytes()[:2] == b"\xff\xd8"


def test_anomaly_variant_writes_a_model_evaluate_scores_as_one_minus_realness(tmp_path, prepared):
    params = _params(tmp_path, {"anom": {"kind": "anomaly", "datasets": ["demo_openforensics"]}})
    reference = _run_reference(tmp_path, params, prepared)
    m = _run_gan(tmp_path, params, prepared, "anom", reference)
    assert m["kind"] == "anomaly" and m["n_train"] == 12 and m["n_val"] == 12 and m["weights"] == "scratch"
    out = tmp_path / "gans" / "anom"
    model, meta = load_trained_model(out / "model.pt")
    assert meta["builder"] == "dcgan_realness" and meta["head"] == "logit" and meta["normalize"] == "half"
    disc = torch.load(out / "discriminator.pt", weights_only=True)
    d = create_gan_net(disc["builder"], **disc["kwargs"])
    d.load_state_dict(disc["state_dict"])        # select: last, so model.pt holds the final D
    d.eval()
    images = np.load(prepared / "images.npy")
    labels = pd.read_csv(prepared / "index.csv")["label"].to_numpy()
    rows = np.arange(24, 36)
    batches = BatchReader(images, labels, rows, 8, shuffle=False)
    rt = Runtime.for_device(torch.device("cpu"))
    y, s, _ = predict(model, batches, EvalAugment(AugmentParams(), meta["normalize"]), rt,
                      head=model_info(meta["builder"]).head)
    with torch.no_grad():
        realness = torch.sigmoid(d(to_net_pixels(torch.as_tensor(images[rows]).permute(0, 3, 1, 2), "half")))
    np.testing.assert_allclose(s, 1 - realness[:, 0].double().numpy(), atol=1e-6)
    val = pd.read_csv(out / "val_scores.csv")
    assert val["face_id"].tolist() == [f"f{i:03d}" for i in rows]
    np.testing.assert_allclose(val["score"].to_numpy(), s, atol=1e-6)
    assert json.loads((out / "seeds" / "seeds.json").read_text()) == {"seeds": []}


def test_a_killed_gan_stage_resumes_to_the_same_outputs(tmp_path, prepared, monkeypatch):
    params = _params(tmp_path, {"w": {"kind": "generative", "loss": "wgan_gp", "n_critic": 2}})
    reference = _run_reference(tmp_path, params, prepared)
    whole = _run_gan(tmp_path / "a", params, prepared, "w", reference)
    from deepfake_detection.training import curves

    original = curves.log_epoch

    def killed(live, row, keys):
        original(live, row, keys)
        if row["epoch"] == 1:
            raise KeyboardInterrupt

    ckpt = tmp_path / "ckpt" / "last.pt"
    monkeypatch.setattr(gan_stage, "log_epoch", killed)
    with pytest.raises(KeyboardInterrupt):
        _run_gan(tmp_path / "b", params, prepared, "w", reference, "--checkpoint", str(ckpt))
    assert ckpt.is_file() and not (tmp_path / "b" / "gans" / "w").exists()
    monkeypatch.setattr(gan_stage, "log_epoch", original)
    resumed = _run_gan(tmp_path / "b", params, prepared, "w", reference, "--checkpoint", str(ckpt))
    assert resumed == whole and not ckpt.exists()
    for name in ("generator.pt", "discriminator.pt"):
        a = torch.load(tmp_path / "a" / "gans" / "w" / name, weights_only=True)["state_dict"]
        b = torch.load(tmp_path / "b" / "gans" / "w" / name, weights_only=True)["state_dict"]
        assert all(torch.equal(a[k], b[k]) for k in a)
    for sub in ("d_loss.tsv", "g_loss.tsv", "gradient_penalty.tsv"):
        assert (tmp_path / "a" / "live" / "w" / "plots" / "metrics" / sub).read_text() == \
            (tmp_path / "b" / "live" / "w" / "plots" / "metrics" / sub).read_text()


def test_a_variant_without_training_faces_stops_with_one_line(tmp_path, prepared):
    params = _params(tmp_path, {"anom": {"kind": "anomaly", "datasets": ["demo_deepfake_and_real_images"]}})
    reference = tmp_path / "real.npz"        # read before the faces are counted; its values do not matter here
    np.savez(reference, train_rows=np.arange(4), activations=np.zeros((4, 2048)))
    with pytest.raises(SystemExit) as err:
        _run_gan(tmp_path, params, prepared, "anom", reference)
    assert str(err.value) == (
        f"train_gan: anom: 0 real train and 0 val faces in {prepared}; both must be > 0 "
        f"(check gan_variants.anom.datasets, or gan.datasets for generative variants)")


def test_params_name_the_bad_gan_keys(tmp_path):
    from deepfake_detection.params import ParamsError

    cases = [
        ({"kind": "generative", "datasets": ["demo_openforensics"]}, "gan_variants.v.datasets: generative variants"),
        ({"kind": "anomaly"}, "gan_variants.v.datasets: anomaly variants need labelled datasets"),
        ({"kind": "generative", "generator": {"builder": "hybrid_generator"}},
         "gan_variants.v.discriminator.builder: dcgan224_discriminator expects pixels half but hybrid_generator makes unit"),
        ({"kind": "anomaly", "datasets": ["demo_openforensics"], "discriminator": {**TINY_D, "kwargs": {"size": 32}}},
         "gan_variants.v.discriminator.kwargs.size: must equal prepared_size 64"),
        ({"kind": "generative", "loss": "wgan_gp", "real_label": 0.9}, "gan_variants.v.real_label: label smoothing"),
        ({"kind": "generative", "sample_grid": 10}, "gan_variants.v.sample_grid: must be a square number"),
        ({"kind": "generative", "generator": {"builder": "dcgan64_discriminator"}},
         "gan_variants.v.generator.builder: unknown generator 'dcgan64_discriminator'"),
    ]
    for variant, message in cases:
        with pytest.raises(ParamsError, match=message.replace("(", r"\(").replace(")", r"\)")):
            load_params(_params(tmp_path, {"v": variant}))
