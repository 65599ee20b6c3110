"""Source kind ``local``: a folder on disk linked or copied into data/raw/<name>, checked first."""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path

import pytest

from deepfake_detection.data.adapters import adapt
from deepfake_detection.data.sources import DownloadError, parse_options
from deepfake_detection.data.sources.local import LocalOptions, link_local, listing, top_dirs
from deepfake_detection.params import ParamsError
from stages import download
from tests.conftest import write_params


def _data(root: Path) -> Path:
    """A user's folder: a COCO-ish dataset and a folder dataset."""
    for rel, data in {"of/Train_poly.json": b"{}", "of/Images/Train/a.jpg": b"abc",
                      "kaggle/Real/r.jpg": b"12345", "kaggle/Fake/f.jpg": b"1"}.items():
        (root / rel).parent.mkdir(parents=True, exist_ok=True)
        (root / rel).write_bytes(data)
    return root


def _expected_listing(*lines: str) -> str:
    return hashlib.sha256("".join(f"{line}\n" for line in sorted(lines)).encode()).hexdigest()


def test_listing_hash_and_counts_by_hand(tmp_path):
    root = _data(tmp_path / "user")
    os.symlink("/nowhere", root / "kaggle" / "Real" / "link.jpg")
    digest, counts = listing(root, ["kaggle", "of"])
    assert counts == {"kaggle": {"n_files": 3, "bytes": 6}, "of": {"n_files": 2, "bytes": 5}}
    assert digest == _expected_listing("kaggle/Real/r.jpg\t5", "kaggle/Fake/f.jpg\t1",
                                       "kaggle/Real/link.jpg\t-> /nowhere",
                                       "of/Train_poly.json\t2", "of/Images/Train/a.jpg\t3")


def test_top_dirs():
    assert top_dirs(["of", "./of", "kaggle", "of/Images"]) == ["kaggle", "of"]
    assert top_dirs(["of", "."]) == ["."]


def test_symlink_mode_links_the_output_and_reruns_cleanly(tmp_path):
    root = _data(tmp_path / "user")
    dest = tmp_path / "repo/data/raw/mine"
    for _ in range(2):                                     # a rerun replaces our link, nothing else
        summary = link_local("mine", LocalOptions(path=str(root)), dest, ["of", "kaggle"], log=lambda s: None)
    assert dest.is_symlink() and os.readlink(dest) == str(root)
    assert sorted(p.name for p in dest.iterdir()) == ["kaggle", "of"]
    assert summary == {"source": "mine", "kind": "local", "mode": "symlink", "n_files": 4, "bytes": 11,
                       "listing_sha256": listing(root, ["kaggle", "of"])[0], "verified": False,
                       "dirs": {"kaggle": {"n_files": 2, "bytes": 6}, "of": {"n_files": 2, "bytes": 5}}}
    assert str(tmp_path) not in json.dumps(summary)        # no absolute paths in the metrics
    # the faces stage reads through the pipeline's own link; the user's files are untouched
    records, rejects = adapt("real_fake_folders", dest / "kaggle", "k")
    assert sorted(records["path"]) == ["Fake/f.jpg", "Real/r.jpg"] and rejects.empty
    assert (root / "kaggle/Real/r.jpg").read_bytes() == b"12345"


def test_dir_dot_link_then_copy_replaces_the_link_not_the_data(tmp_path):
    root = _data(tmp_path / "user")
    dest = tmp_path / "raw/mine"
    link_local("mine", LocalOptions(path=str(root)), dest, ["."], log=lambda s: None)
    assert dest.is_symlink() and os.readlink(dest) == str(root)
    summary = link_local("mine", LocalOptions(path=str(root), mode="copy"), dest, ["."], log=lambda s: None)
    assert not dest.is_symlink() and (dest / "kaggle/Real/r.jpg").read_bytes() == b"12345"
    assert (root / "kaggle/Real/r.jpg").exists()           # unlinking our link left the user's data
    assert (summary["mode"], summary["n_files"], summary["bytes"]) == ("copy", 4, 11)
    assert not list(tmp_path.joinpath("raw").glob(".*"))   # no temporary left


def test_copy_copies_only_the_dataset_dirs_and_keeps_inner_links_as_links(tmp_path):
    root = _data(tmp_path / "user")
    os.symlink("/etc/hostname", root / "kaggle/Real/out.jpg")
    dest = tmp_path / "raw/mine"
    link_local("mine", LocalOptions(path=str(root), mode="copy"), dest, ["kaggle"], log=lambda s: None)
    assert sorted(os.listdir(dest)) == ["kaggle"] and not dest.is_symlink()
    assert (dest / "kaggle/Real/out.jpg").is_symlink()
    _, rejects = adapt("real_fake_folders", dest / "kaggle", "k")
    assert list(rejects["reason"]) == ["outside_dataset"]


def test_checksum_of_the_listing_is_checked(tmp_path):
    root = _data(tmp_path / "user")
    good = listing(root, ["kaggle"])[0]
    dest = tmp_path / "raw/mine"
    assert link_local("mine", LocalOptions(path=str(root), sha256=good), dest, ["kaggle"],
                      log=lambda s: None)["verified"] is True
    (root / "kaggle/Fake/new.jpg").write_bytes(b"x")
    with pytest.raises(DownloadError, match=r"^local: .*user: file listing sha256 is [0-9a-f]{64}, expected "
                                            + good + r" \(sources\.mine\.options\.sha256\)"):
        link_local("mine", LocalOptions(path=str(root), sha256=good), dest, ["kaggle"], log=lambda s: None)


@pytest.mark.parametrize("setup, dirs, match", [
    (lambda r: None, ["of"], r"sources\.mine\.options\.path: .*missing does not exist; set it to the folder"),
    (lambda r: r.write_text("x"), ["of"], r"missing is not a folder"),
    (lambda r: r.mkdir(), ["of"], r"has no folder 'of' \(a dataset's dir\)"),
    (lambda r: r.mkdir(), ["../x"], r"dir '\.\./x' leads out of"),
])
def test_one_line_errors(tmp_path, setup, dirs, match):
    root = tmp_path / "missing"
    setup(root)
    with pytest.raises(DownloadError, match=match) as err:
        link_local("mine", LocalOptions(path=str(root)), tmp_path / "raw/mine", dirs, log=lambda s: None)
    assert "\n" not in str(err.value)


@pytest.mark.skipif(os.geteuid() == 0, reason="root reads any folder")
def test_unreadable_folder(tmp_path):
    root = _data(tmp_path / "user")
    (root / "of").chmod(0)
    try:
        with pytest.raises(DownloadError, match=r"of is not readable; fix its permissions"):
            link_local("mine", LocalOptions(path=str(root)), tmp_path / "raw/mine", ["of"], log=lambda s: None)
    finally:
        (root / "of").chmod(0o755)


def test_a_path_overlapping_the_output_is_refused(tmp_path):
    dest = tmp_path / "repo/data/raw/mine"
    (tmp_path / "repo/data/raw").mkdir(parents=True)
    with pytest.raises(DownloadError, match="overlaps the output"):
        link_local("mine", LocalOptions(path=str(tmp_path / "repo")), dest, ["."], log=lambda s: None)


@pytest.mark.parametrize("options, match", [
    ({}, r"sources\.mine\.options\.path: required key is missing"),
    ({"path": "/x", "mode": "move"}, r"sources\.mine\.options\.mode"),
    ({"path": "/x", "sha256": "abc"}, r"sources\.mine\.options\.sha256"),
    ({"path": "/x", "pth": 1}, r"sources\.mine\.options: unknown key\(s\) \['pth'\]"),
])
def test_options_are_validated(options, match):
    with pytest.raises(ParamsError, match=match):
        parse_options("mine", "local", options)


def test_download_stage_links_and_writes_metrics(tmp_path, params_dict, monkeypatch):
    root = _data(tmp_path / "user")
    params_dict["sources"]["mine"] = {"kind": "local", "options": {"path": str(root)},
                                      "datasets": {"mine_of": {"layout": "coco", "dir": "of", "crop": "boxes"},
                                                   "mine_k": {"layout": "real_fake_folders", "dir": "kaggle"}}}
    p = write_params(tmp_path / "params.yaml", params_dict)
    monkeypatch.chdir(tmp_path)
    download.main(["--params", str(p), "--source", "mine", "--out", "data/raw/mine",
                   "--summary", "metrics/download/mine.json", "--partial-dir", "data/partial/mine"])
    m = json.loads(Path("metrics/download/mine.json").read_text())
    assert (m["source"], m["kind"], m["mode"], m["n_files"], m["bytes"]) == ("mine", "local", "symlink", 4, 11)
    assert Path("data/raw/mine").is_symlink()
    assert sorted(os.listdir("data/raw/mine")) == ["kaggle", "of"]       # no .request.json stamp
    assert sorted(os.listdir(root)) == ["kaggle", "of"]                  # nothing written to the user's data
    params_dict["sources"]["mine"]["options"]["path"] = str(tmp_path / "nope")
    with pytest.raises(SystemExit, match=r"^download: local: sources\.mine\.options\.path: .*nope does not exist"):
        download.main(["--params", str(write_params(tmp_path / "params.yaml", params_dict)), "--source", "mine",
                       "--out", "data/raw/mine", "--summary", "metrics/download/mine.json"])
