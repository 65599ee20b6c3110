"""Download clients against loopback servers shaped like Kaggle, Zenodo and the Hugging Face Hub.

Real client code runs end to end: streaming download, resume after a dropped connection, checksum
refusal, safe extraction, credentials handling. Nothing leaves 127.0.0.1.
"""

from __future__ import annotations

import base64
import hashlib
import json
import zipfile
from pathlib import Path

import numpy as np
import pytest
from .loopback import loopback, make_tar, make_zip  # noqa: F401  (loopback is a fixture)

from deepfake_detection.data.sources import (DownloadError, Limits, download, extract, fetch_source,
                                             parse_options)
from deepfake_detection.params import ParamsError


def blob(n: int, seed: int = 0) -> bytes:
    """Incompressible bytes (so archives have a realistic compression ratio)."""
    return np.random.default_rng(seed).integers(0, 256, n, dtype=np.uint8).tobytes()


def md5(data: bytes) -> str:
    return hashlib.md5(data).hexdigest()


def sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


class Log(list):
    def __call__(self, line: str) -> None:
        self.append(line)


# ----------------------------------------------------------------------------- HTTP download


def test_download_verifies_md5_and_keeps_a_complete_file(loopback, tmp_path):
    data = blob(50_000)
    loopback.add("/f.bin", data)
    out = tmp_path / "f.bin"
    info = download(f"{loopback.url}/f.bin", out, md5=md5(data), size=len(data), log=Log())
    assert out.read_bytes() == data and not (tmp_path / "f.bin.part").exists()
    assert info == {"bytes": len(data), "md5": md5(data), "sha256": None, "verified": "md5"}
    download(f"{loopback.url}/f.bin", out, md5=md5(data), size=len(data), log=Log())
    assert len(loopback.requests_for("/f.bin")) == 1      # verified on disk, not fetched again


def test_download_resumes_after_a_dropped_connection(loopback, tmp_path):
    data = blob(300_000, seed=1)
    loopback.add("/f.bin", data, drop_after=100_000)
    log = Log()
    info = download(f"{loopback.url}/f.bin", tmp_path / "f.bin", sha256=sha256(data), log=log)
    assert (tmp_path / "f.bin").read_bytes() == data and info["verified"] == "sha256"
    gets = loopback.requests_for("/f.bin", "GET")
    assert len(gets) == 2 and "Range" not in gets[0].headers
    assert gets[1].headers["Range"] == "bytes=100000-"
    assert any("resuming at byte 100000" in line for line in log)


def test_download_times_out_on_a_silent_server_and_resumes(loopback, tmp_path):
    data = blob(50_000, seed=5)
    loopback.add("/slow.bin", data, drop_after=20_000, stall=1.0)
    log = Log()
    download(f"{loopback.url}/slow.bin", tmp_path / "slow.bin", md5=md5(data), timeout=0.2, log=log)
    assert (tmp_path / "slow.bin").read_bytes() == data
    assert loopback.requests_for("/slow.bin")[1].headers["Range"] == "bytes=20000-"
    assert any("timed out; resuming at byte 20000" in line for line in log)


def test_download_continues_a_part_file_left_by_an_earlier_run(loopback, tmp_path):
    data = blob(80_000, seed=2)
    loopback.add("/f.bin", data)
    (tmp_path / "f.bin.part").write_bytes(data[:30_000])
    download(f"{loopback.url}/f.bin", tmp_path / "f.bin", md5=md5(data), log=Log())
    assert (tmp_path / "f.bin").read_bytes() == data
    assert [s.headers.get("Range") for s in loopback.requests_for("/f.bin")] == ["bytes=30000-"]


def test_download_starts_over_when_the_server_ignores_ranges(loopback, tmp_path):
    data = blob(40_000, seed=3)
    loopback.add("/f.bin", data, ranges=False)
    (tmp_path / "f.bin.part").write_bytes(b"stale bytes from another file")
    download(f"{loopback.url}/f.bin", tmp_path / "f.bin", md5=md5(data), log=Log())
    assert (tmp_path / "f.bin").read_bytes() == data


def test_download_refuses_a_wrong_checksum_and_deletes_the_file(loopback, tmp_path):
    data = blob(10_000, seed=4)
    loopback.add("/f.bin", data)
    with pytest.raises(DownloadError) as err:
        download(f"{loopback.url}/f.bin", tmp_path / "f.bin", md5="0" * 32, log=Log())
    msg = str(err.value)
    assert "f.bin" in msg and "0" * 32 in msg and md5(data) in msg
    assert list(tmp_path.iterdir()) == []


def test_download_reports_http_errors_with_the_hint_and_gives_up_on_repeated_failures(loopback, tmp_path):
    loopback.add("/missing.bin", b"", status=404)
    with pytest.raises(DownloadError, match="HTTP 404.*check the name"):
        download(f"{loopback.url}/missing.bin", tmp_path / "m.bin", status_hints={404: "check the name"},
                 log=Log())
    loopback.add("/busy.bin", b"", status=503)
    with pytest.raises(DownloadError, match="giving up after 1 retries"):
        download(f"{loopback.url}/busy.bin", tmp_path / "b.bin", retries=1, backoff=0.0, log=Log())
    assert len(loopback.requests_for("/busy.bin")) == 2


# ----------------------------------------------------------------------------- safe extraction


def _extract_fails(tmp_path: Path, name: str, data: bytes, match: str, limits: Limits = Limits()):
    archive = tmp_path / name
    archive.write_bytes(data)
    dest = tmp_path / "dest"
    with pytest.raises(DownloadError, match=match):
        extract(archive, dest, limits=limits, log=Log())
    leftovers = sorted(p.relative_to(tmp_path).as_posix() for p in tmp_path.rglob("*"))
    assert leftovers == sorted([name, "dest"])   # nothing extracted, no temporary folder left
    return leftovers


def test_extract_refuses_path_traversal(tmp_path):
    data = make_zip({"ok.jpg": b"fine", "../evil.txt": b"owned"})
    _extract_fails(tmp_path, "trav.zip", data, "escapes the target folder")
    assert not (tmp_path / "evil.txt").exists()


def test_extract_refuses_absolute_paths(tmp_path):
    _extract_fails(tmp_path, "abs.tar.gz", make_tar({"ok.jpg": b"a", "/etc/evil": b"x"}), "absolute path")


def test_extract_refuses_symlinks_and_hardlinks(tmp_path):
    _extract_fails(tmp_path, "link.zip", make_zip({"ok.jpg": b"a"}, symlinks={"link": "/etc/passwd"}),
                   "symbolic link")
    (tmp_path / "link.zip").unlink()
    _extract_fails(tmp_path, "sym.tar", make_tar({"ok.jpg": b"a"}, symlinks={"s": "../../x"}, mode="w"),
                   "symbolic link")
    (tmp_path / "sym.tar").unlink()
    _extract_fails(tmp_path, "hard.tgz", make_tar({"ok.jpg": b"a"}, hardlinks={"h": "ok.jpg"}), "hard link")


def test_extract_refuses_bombs_and_oversized_archives(tmp_path):
    _extract_fails(tmp_path, "bomb.zip", make_zip({"zeros.bin": bytes(8 << 20)}), "compression ratio")
    (tmp_path / "bomb.zip").unlink()
    _extract_fails(tmp_path, "big.zip", make_zip({"a.jpg": blob(5000)}), "over the limit",
                   limits=Limits(max_bytes=1000))


def test_extract_merges_into_existing_folders(tmp_path):
    dest = tmp_path / "dest"
    (dest / "Images" / "Train").mkdir(parents=True)
    (dest / "Images" / "Train" / "old.jpg").write_bytes(b"old")
    archive = tmp_path / "part2.tar.gz"
    archive.write_bytes(make_tar({"Train/new.jpg": b"new", "__MACOSX/._new.jpg": b"junk"}))
    info = extract(archive, dest, subdir="Images", log=Log())
    assert info == {"files": 1, "bytes": 3, "into": "Images"}
    assert sorted(p.name for p in (dest / "Images" / "Train").iterdir()) == ["new.jpg", "old.jpg"]
    assert not (dest / "__MACOSX").exists()


# ----------------------------------------------------------------------------- Kaggle

KAGGLE_SLUG = "manjilkarki/deepfake-and-real-images"
KAGGLE_API = f"/api/v1/datasets/download/{KAGGLE_SLUG}"
SECRET = "k3y-that-must-never-leak"


def _kaggle_zip() -> tuple[bytes, dict[str, bytes]]:
    files = {f"Dataset/{split}/{label}/{i}.jpg": blob(3000, seed=hash((split, label, i)) % 1000)
             for split in ("Train", "Validation", "Test") for label in ("Real", "Fake") for i in range(2)}
    return make_zip(files, compression=zipfile.ZIP_STORED), files


def _no_secret_anywhere(secret: str, *things) -> None:
    for thing in things:
        if isinstance(thing, Path):
            for p in thing.rglob("*"):
                if p.is_file():
                    assert secret.encode() not in p.read_bytes(), p
        else:
            assert secret not in json.dumps(thing, default=str)


@pytest.fixture
def kaggle_env(monkeypatch, tmp_path):
    """No credentials anywhere unless a test sets them."""
    monkeypatch.delenv("KAGGLE_USERNAME", raising=False)
    monkeypatch.delenv("KAGGLE_KEY", raising=False)
    config = tmp_path / "kaggle-config"
    config.mkdir()
    monkeypatch.setenv("KAGGLE_CONFIG_DIR", str(config))
    return config


def test_kaggle_downloads_resumes_and_extracts_the_published_layout(loopback, tmp_path, kaggle_env, monkeypatch):
    archive, files = _kaggle_zip()
    goog = base64.b64encode(hashlib.md5(archive).digest()).decode()
    loopback.add(KAGGLE_API, auth=("alice", SECRET),
                 redirect=f"{loopback.other_host_url}/storage/archive.zip?X-Goog-Signature=sig")
    loopback.add("/storage/archive.zip", archive, drop_after=len(archive) // 2,
                 headers={"x-goog-hash": f"crc32c=AAAAAA==,md5={goog}"})
    monkeypatch.setenv("KAGGLE_USERNAME", "alice")
    monkeypatch.setenv("KAGGLE_KEY", SECRET)
    dest, log = tmp_path / "raw" / "dfr", Log()
    options = {"dataset": KAGGLE_SLUG, "endpoint": loopback.url}
    result = fetch_source("dfr", "kaggle", options, dest, log=log)

    for name, data in files.items():
        assert (dest / name).read_bytes() == data
    assert result["kind"] == "kaggle" and result["n_files"] == 1 and result["all_verified"]
    assert result["files"][0]["md5"] == md5(archive) and result["files"][0]["verified"] == "md5"
    assert result["files"][0]["extracted"] == {"files": len(files), "bytes": sum(map(len, files.values())),
                                               "into": "."}
    api, storage = loopback.requests_for(KAGGLE_API), loopback.requests_for("/storage/archive.zip")
    assert all("Authorization" in s.headers for s in api)
    assert len(storage) == 2 and storage[1].headers["Range"] == f"bytes={len(archive) // 2}-"
    assert not any("Authorization" in s.headers for s in storage)   # never sent to storage
    assert not (dest / ".archives").exists()
    _no_secret_anywhere(SECRET, result, list(log), dest)

    n_requests = len(loopback.seen)
    again = fetch_source("dfr", "kaggle", options, dest, log=log)
    assert again == result and len(loopback.seen) == n_requests        # skipped: marker in place


def test_kaggle_a_broken_archive_is_deleted_so_a_rerun_fetches_it_again(loopback, tmp_path, kaggle_env,
                                                                          monkeypatch):
    monkeypatch.setenv("KAGGLE_USERNAME", "alice")
    monkeypatch.setenv("KAGGLE_KEY", SECRET)
    loopback.add(KAGGLE_API, b"<html>not a zip</html>")       # no checksum published by Kaggle here
    dest = tmp_path / "dfr"
    options = {"dataset": KAGGLE_SLUG, "endpoint": loopback.url}
    with pytest.raises(DownloadError, match="not a zip or tar archive.*deleted the archive"):
        fetch_source("dfr", "kaggle", options, dest, log=Log())
    assert not list((dest / ".archives").glob("*.zip")) and not (dest / ".sources").exists()
    archive, files = _kaggle_zip()
    loopback.add(KAGGLE_API, archive)
    assert fetch_source("dfr", "kaggle", options, dest, log=Log())["files"][0]["verified"] == "none"
    assert all((dest / name).is_file() for name in files)


def test_kaggle_without_credentials_says_what_to_set(loopback, tmp_path, kaggle_env):
    with pytest.raises(DownloadError) as err:
        fetch_source("dfr", "kaggle", {"dataset": KAGGLE_SLUG, "endpoint": loopback.url}, tmp_path / "d",
                     log=Log())
    msg = str(err.value)
    assert msg.startswith("kaggle: no credentials") and "\n" not in msg
    for needle in ("KAGGLE_USERNAME", "KAGGLE_KEY", "kaggle.json", "KAGGLE_CONFIG_DIR"):
        assert needle in msg
    assert loopback.seen == []


def test_kaggle_incomplete_or_refused_credentials_never_echo_the_secret(loopback, tmp_path, kaggle_env,
                                                                       monkeypatch):
    monkeypatch.setenv("KAGGLE_KEY", SECRET)
    with pytest.raises(DownloadError, match="KAGGLE_USERNAME is not set") as err:
        fetch_source("dfr", "kaggle", {"dataset": KAGGLE_SLUG, "endpoint": loopback.url}, tmp_path / "d",
                     log=Log())
    assert SECRET not in str(err.value)
    monkeypatch.delenv("KAGGLE_KEY")
    (kaggle_env / "kaggle.json").write_text(json.dumps({"username": "bob", "key": SECRET}))
    (kaggle_env / "kaggle.json").chmod(0o600)
    loopback.add(KAGGLE_API, auth=("bob", "the-right-key"))
    log = Log()
    with pytest.raises(DownloadError, match="HTTP 401.*KAGGLE_USERNAME/KAGGLE_KEY or kaggle.json") as err:
        fetch_source("dfr", "kaggle", {"dataset": KAGGLE_SLUG, "endpoint": loopback.url}, tmp_path / "d",
                     log=log)
    _no_secret_anywhere(SECRET, str(err.value), list(log), tmp_path / "d")


# ----------------------------------------------------------------------------- Zenodo


def _zenodo_record(server, files: dict[str, bytes], md5_override: dict[str, str] | None = None) -> dict:
    entries = []
    for i, (key, data) in enumerate(files.items()):
        path = f"/api/records/5528418/files/{key}/content"
        server.add(path, data)
        entries.append({"id": f"file-{i}", "key": key, "size": len(data),
                        "checksum": f"md5:{(md5_override or {}).get(key, md5(data))}",
                        "links": {"self": f"{server.url}{path}"}})
    record = {"id": 5528418, "doi": "10.5281/zenodo.5528418", "metadata": {"version": "1.0.0"},
              "files": entries}
    server.add_json("/api/records/5528418", record)
    return record


def test_zenodo_openforensics_lands_as_images_split_folders_next_to_coco(loopback, tmp_path):
    coco = json.dumps({"images": [{"id": 1, "file_name": "Images/Train/a.jpg"}], "annotations": [],
                       "categories": [{"id": 0, "name": "Real"}, {"id": 1, "name": "Fake"}]}).encode()
    a, b, c, d = (blob(2000, seed=s) for s in range(10, 14))
    files = {
        "Train_part_1.zip": make_zip({"Train/a.jpg": a, "Train/b.jpg": b}),  # top folder = split
        "Val.zip": make_zip({"c.jpg": c}),                                   # flat
        "Test-Dev.zip": make_zip({"Images/Test-Dev/d.jpg": d}),              # already Images/<split>
        "Train_poly.json": coco,
    }
    _zenodo_record(loopback, files)
    loopback.routes["/api/records/5528418/files/Train_part_1.zip/content"].drop_after = 1000
    dest = tmp_path / "raw" / "openforensics"
    result = fetch_source("openforensics", "zenodo", {"endpoint": loopback.url}, dest, log=Log())

    assert (dest / "Images/Train/a.jpg").read_bytes() == a and (dest / "Images/Train/b.jpg").read_bytes() == b
    assert (dest / "Images/Val/c.jpg").read_bytes() == c
    assert (dest / "Images/Test-Dev/d.jpg").read_bytes() == d
    assert (dest / "Train_poly.json").read_bytes() == coco
    assert result["record"] == 5528418 and result["version"] == "1.0.0" and result["all_verified"]
    assert {f["name"]: f["verified"] for f in result["files"]} == dict.fromkeys(files, "md5")
    assert len(loopback.requests_for("/api/records/5528418/files/Train_part_1.zip/content")) == 2

    before = len(loopback.seen)
    assert fetch_source("openforensics", "zenodo", {"endpoint": loopback.url}, dest, log=Log()) == result
    assert [s.path for s in loopback.seen[before:]] == ["/api/records/5528418"]   # files skipped


def test_zenodo_refuses_a_checksum_mismatch_and_unknown_file_keys(loopback, tmp_path):
    data = make_zip({"Val/c.jpg": blob(500)})
    _zenodo_record(loopback, {"Val.zip": data}, md5_override={"Val.zip": "f" * 32})
    dest = tmp_path / "of"
    with pytest.raises(DownloadError) as err:
        fetch_source("of", "zenodo", {"endpoint": loopback.url}, dest, log=Log())
    assert "Val.zip: md5 mismatch" in str(err.value) and "f" * 32 in str(err.value) and md5(data) in str(err.value)
    assert not (dest / "Images").exists()
    with pytest.raises(DownloadError, match=r"no file\(s\) \['Nope.zip'\].*\['Val.zip'\]"):
        fetch_source("of", "zenodo", {"endpoint": loopback.url, "files": ["Nope.zip"]}, dest, log=Log())


# ----------------------------------------------------------------------------- Hugging Face

REPO = "OpenRL/DeepFakeFace"
COMMIT = "0123456789abcdef0123456789abcdef01234567"
HF_SECRET = "hf_never_print_me"


def _hf_file(server, filename: str, data: bytes, published_sha: str | None = None, drop: bool = False) -> None:
    """Resolve URLs answer like the Hub for an LFS file: 302 to a CDN host with the metadata."""
    sha = published_sha or sha256(data)
    cdn = f"/cdn/{sha256(data)}"
    headers = {"X-Repo-Commit": COMMIT, "X-Linked-Etag": f'"{sha}"', "X-Linked-Size": str(len(data)),
               "ETag": '"0123456789012345678901234567890123456789"'}
    for revision in ("main", COMMIT):
        server.add(f"/datasets/{REPO}/resolve/{revision}/{filename}", headers=headers,
                   redirect=f"{server.other_host_url}{cdn}")
    server.add(cdn, data, drop_after=len(data) // 3 if drop else None, headers={"ETag": f'"{sha}"'})


@pytest.fixture
def hf_online(monkeypatch):
    from huggingface_hub import constants

    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", False)
    monkeypatch.delenv("HF_HUB_OFFLINE", raising=False)
    monkeypatch.delenv("TRANSFORMERS_OFFLINE", raising=False)
    monkeypatch.setenv("HF_TOKEN", HF_SECRET)


def test_huggingface_downloads_verifies_sha256_and_places_each_zip_in_its_folder(loopback, tmp_path, hf_online,
                                                                                 monkeypatch):
    from huggingface_hub import constants

    real, fake = blob(4000, seed=20), blob(4000, seed=21)
    wiki = make_zip({"wiki/00/1.jpg": real})            # zip with its own top folder
    inpainting = make_zip({"00/1.jpg": fake})            # zip without one
    _hf_file(loopback, "wiki.zip", wiki, drop=True)
    _hf_file(loopback, "inpainting.zip", inpainting)
    # The library buffers 10 MB chunks and resumes after the last whole one: shrink them so a
    # 4 kB test file shows a real Range resume.
    monkeypatch.setattr(constants, "DOWNLOAD_CHUNK_SIZE", 1024)
    dest, log = tmp_path / "raw" / "dff", Log()
    options = {"files": ["wiki.zip", "inpainting.zip"], "endpoint": loopback.url}
    result = fetch_source("dff", "huggingface", options, dest, log=log)

    assert (dest / "wiki/00/1.jpg").read_bytes() == real
    assert (dest / "inpainting/00/1.jpg").read_bytes() == fake
    assert result["commit"] == COMMIT and result["all_verified"]
    assert {f["name"]: (f["verified"], f["sha256"]) for f in result["files"]} == {
        "wiki.zip": ("sha256", sha256(wiki)), "inpainting.zip": ("sha256", sha256(inpainting))}
    cdn_gets = loopback.requests_for(f"/cdn/{sha256(wiki)}", "GET")
    assert len(cdn_gets) == 2 and "Range" not in cdn_gets[0].headers
    resumed_at = int(cdn_gets[1].headers["Range"].removeprefix("bytes=").rstrip("-"))
    assert 0 < resumed_at <= len(wiki) // 3       # the library keeps whole 1 KiB chunks (patched size)
    resolve = [s for s in loopback.seen if "/resolve/" in s.path]
    assert not any("/resolve/main/inpainting.zip" in s.path for s in resolve)   # pinned to the commit
    assert resolve and all(s.headers.get("Authorization") == f"Bearer {HF_SECRET}" for s in resolve)
    assert not any("Authorization" in s.headers for s in loopback.seen if s.path.startswith("/cdn/"))
    _no_secret_anywhere(HF_SECRET, result, list(log), dest)


def test_huggingface_refuses_a_sha256_mismatch(loopback, tmp_path, hf_online):
    data = make_zip({"wiki/00/1.jpg": blob(1000)})
    _hf_file(loopback, "wiki.zip", data, published_sha="e" * 64)
    dest = tmp_path / "dff"
    with pytest.raises(DownloadError) as err:
        fetch_source("dff", "huggingface", {"files": ["wiki.zip"], "endpoint": loopback.url}, dest, log=Log())
    assert "wiki.zip: sha256 mismatch" in str(err.value)
    assert "e" * 64 in str(err.value) and sha256(data) in str(err.value)
    assert not (dest / "wiki").exists() and not (dest / ".archives" / "wiki.zip").exists()


def test_huggingface_small_files_are_checked_against_their_git_blob_id(loopback, tmp_path, hf_online):
    readme = b"# DeepFakeFace\n"
    blob_id = hashlib.sha1(b"blob %d\0" % len(readme) + readme).hexdigest()
    for revision in ("main", COMMIT):     # a regular (non-LFS) file is served by the resolve URL itself
        loopback.add(f"/datasets/{REPO}/resolve/{revision}/README.md", readme,
                     headers={"X-Repo-Commit": COMMIT, "ETag": f'"{blob_id}"'})
    dest = tmp_path / "dff"
    result = fetch_source("dff", "huggingface", {"files": ["README.md"], "endpoint": loopback.url}, dest, log=Log())
    assert (dest / "README.md").read_bytes() == readme
    assert result["files"][0]["verified"] == "git-sha1" and result["all_verified"]


def test_huggingface_offline_mode_is_an_error_not_a_silent_no_op(loopback, tmp_path, monkeypatch):
    from huggingface_hub import constants

    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", True)
    with pytest.raises(DownloadError, match="HF_HUB_OFFLINE"):
        fetch_source("dff", "huggingface", {"endpoint": loopback.url}, tmp_path / "dff", log=Log())
    assert loopback.seen == []


# ----------------------------------------------------------------------------- options


@pytest.mark.parametrize("kind, options, match", [
    ("kaggle", {}, r"sources\.s\.options\.dataset: required key is missing"),
    ("kaggle", {"dataset": "no-slash"}, r"sources\.s\.options\.dataset: must look like 'owner/slug'"),
    ("zenodo", {"recrod": 1}, r"sources\.s\.options: unknown key\(s\) \['recrod'\]"),
    ("zenodo", {"files": "Train.zip"}, r"sources\.s\.options\.files: expected a list"),
    ("huggingface", {"timeout": -1}, r"sources\.s\.options\.timeout: must be > 0"),
    ("demo", {}, r"sources\.s\.kind: 'demo' has no download client"),
])
def test_options_are_validated_with_the_key_named(kind, options, match):
    with pytest.raises(ParamsError, match=match):
        parse_options("s", kind, options)
