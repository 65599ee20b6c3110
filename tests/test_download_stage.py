"""The download stage around the clients: request stamps, partial-download folder, summaries."""

import json

import deepfake_detection.data.sources as sources
from stages import download
from tests.conftest import write_params


def _params(tmp_path, params_dict, **options):
    params_dict["sources"]["k"] = {"kind": "kaggle", "options": {"dataset": "o/a", **options},
                                   "datasets": {"k": {"layout": "real_fake_folders"}}}
    return write_params(tmp_path / "params.yaml", params_dict)


def test_changed_request_clears_old_files_but_transport_options_do_not(tmp_path, params_dict, monkeypatch):
    calls = []

    def fake_fetch(name, kind, options, dest, *, log, archive_dir):
        calls.append((options["dataset"], archive_dir))
        dest.mkdir(parents=True, exist_ok=True)
        (dest / f"{options['dataset'].replace('/', '_')}.jpg").write_bytes(b"x")
        archive_dir.mkdir(parents=True, exist_ok=True)
        return {"n_files": 1}

    monkeypatch.setattr(sources, "fetch_source", fake_fetch)
    out, part = tmp_path / "raw/k", tmp_path / "partial/k"
    args = ["--source", "k", "--out", str(out), "--summary", str(tmp_path / "s.json"), "--partial-dir", str(part)]
    download.main(["--params", str(_params(tmp_path, params_dict))] + args)
    assert (out / "o_a.jpg").exists() and not part.exists()           # finished: partial folder removed
    download.main(["--params", str(_params(tmp_path, params_dict, timeout=5.0))] + args)
    assert (out / "o_a.jpg").exists()                                   # a timeout changes no data
    download.main(["--params", str(_params(tmp_path, params_dict, dataset="o/b"))] + args)
    assert not (out / "o_a.jpg").exists() and (out / "o_b.jpg").exists()   # another dataset: old files gone
    assert json.loads((tmp_path / "s.json").read_text()) == {"source": "k", "kind": "kaggle", "n_files": 1}
    assert [c[0] for c in calls] == ["o/a", "o/a", "o/b"]
