"""Issue 3 end-to-end: real download clients against a loopback Zenodo and Kaggle, then the graph.

A tiny demo dataset is packed exactly as the real services publish it (Zenodo record JSON with
md5s, split image zips and the four ``*_poly.json``; a Kaggle zip of ``Dataset/{Train,...}/{Real,Fake}``)
and served on 127.0.0.1. `dvc repro` with both sources enabled runs download -> faces -> split ->
prepare -> train -> evaluate, shows per-source counts and rejects, and never writes the key.
"""

import io
import json
import zipfile
from pathlib import Path

import pytest

from deepfake_detection.data.demo import DemoOptions, generate_demo
from deepfake_detection.params import from_dict
from tests.loopback import loopback  # noqa: F401  (fixture)
from tests.test_pipeline_e2e import make_project, run

pytestmark = [pytest.mark.slow, pytest.mark.xdist_group("e2e")]

SECRET = "loopback-kaggle-key-0123"
# the tiny published set: 53 annotated faces (3 in the corrupt image, 2 broken boxes), 39 Kaggle crops
REAL_FACES = {"deepfake_and_real_images": (39, 39, {}),
              "openforensics": (53, 48, {"box_outside": 1, "unreadable": 3, "zero_area": 1})}
REAL_TEST_N = {"test_dev": 11, "test_challenge": 9, "kaggle_test": 11}
SLUG = "manjilkarki/deepfake-and-real-images"


def zip_tree(root: Path, prefix: str = "") -> bytes:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as z:
        for p in sorted(root.rglob("*")):
            if p.is_file():
                z.write(p, prefix + p.relative_to(root).as_posix())
    return buf.getvalue()


def serve(server, tmp_path: Path) -> None:
    import hashlib

    opts = from_dict(DemoOptions, {"n_train": 8, "n_val": 4, "n_test_dev": 4, "n_test_challenge": 3,
                                   "image_size": 128, "faces_per_image": [2, 3], "face_size": [28, 44],
                                   "folder_size": 48}, "demo")
    generate_demo(tmp_path / "published", opts)
    of = tmp_path / "published/openforensics"
    files = {f"{split}.zip": zip_tree(of / "Images" / split, f"Images/{split}/")
             for split in ("Train", "Val", "Test-Dev", "Test-Challenge")}
    files.update({p.name: p.read_bytes() for p in sorted(of.glob("*_poly.json"))})
    entries = []
    for key, data in files.items():
        path = f"/api/records/5528418/files/{key}/content"
        server.add(path, data)
        entries.append({"key": key, "size": len(data), "checksum": f"md5:{hashlib.md5(data).hexdigest()}",
                        "links": {"self": f"{server.url}{path}"}})
    server.add_json("/api/records/5528418", {"id": 5528418, "files": entries})
    server.add(f"/api/v1/datasets/download/{SLUG}",
               zip_tree(tmp_path / "published/deepfake_and_real_images"), auth=("alice", SECRET))


def real_params(params: dict, url: str) -> dict:
    params["sources"] = {
        "openforensics": {"kind": "zenodo", "options": {"endpoint": url},
                          "datasets": {"openforensics": {"layout": "coco", "dir": ".", "crop": "boxes"}}},
        "deepfake_and_real_images": {
            "kind": "kaggle", "options": {"dataset": SLUG, "endpoint": url},
            "datasets": {"deepfake_and_real_images": {"layout": "real_fake_folders", "dir": ".", "crop": "whole"}}},
    }
    params["enabled_sources"] = ["openforensics", "deepfake_and_real_images"]
    params["face_stages"] = {"faces": ["openforensics", "deepfake_and_real_images"], "faces_yolo": []}
    params["faces"].update(size=32)
    params["prepare"]["sizes"] = [32]
    for variant in params["variants"].values():
        variant["prepared_size"] = 32
    params["train"].update(datasets=["openforensics"], epochs=1, batch_size=16, max_batches_per_epoch=2)
    params["variants"] = {"custom_cnn": params["variants"]["custom_cnn"]}
    params["gan_variants"] = {}      # the GAN stages have their own tests; only the FID reference runs here
    params["gan"].update(datasets=["openforensics"], prepared_size=32,
                         fid={"n_real": 4, "n_fake": 4, "n_reference": 4, "batch_size": 4})
    params["evaluate"]["test_sets"] = {
        "test_dev": {"dataset": "openforensics", "split": "test_dev"},
        "test_challenge": {"dataset": "openforensics", "split": "test_challenge"},
        "kaggle_test": {"dataset": "deepfake_and_real_images", "split": "test"}}
    return params


def test_dvc_repro_on_real_source_layouts_served_on_loopback(tmp_path, repo, loopback, monkeypatch):  # noqa: F811
    serve(loopback, tmp_path)
    monkeypatch.setenv("KAGGLE_USERNAME", "alice")
    monkeypatch.setenv("KAGGLE_KEY", SECRET)
    monkeypatch.setenv("KAGGLE_CONFIG_DIR", str(tmp_path / "no-kaggle-dir"))
    proj = make_project(tmp_path, repo, lambda p: real_params(p, loopback.url))
    run("dvc repro", proj)

    of = json.loads((proj / "metrics/download/openforensics.json").read_text())
    assert of["all_verified"] and of["n_files"] == 8
    faces = {**json.loads((proj / "metrics/faces/openforensics.json").read_text()),
             **json.loads((proj / "metrics/faces/deepfake_and_real_images.json").read_text())}
    # the published corrupt image (its faces are unreadable) and the two broken boxes
    assert {ds: (c["inputs_in"], c["kept"], c["rejected_by_reason"]) for ds, c in faces.items()} == REAL_FACES
    split = json.loads((proj / "metrics/split.json").read_text())["splits"]
    assert set(split["openforensics"]) == {"train", "val", "test_dev", "test_challenge"}
    assert set(split["deepfake_and_real_images"]) == {"train", "val", "test"}
    assert {t: json.loads((proj / f"metrics/eval/custom_cnn/{t}.json").read_text())["n"]
            for t in ("test_dev", "test_challenge", "kaggle_test")} == REAL_TEST_N
    for p in proj.rglob("*"):
        if p.is_file() and ".git" not in p.parts and p.suffix in {".json", ".csv", ".md", ".lock", ".yaml", ".log"}:
            assert SECRET not in p.read_text(errors="ignore"), p
