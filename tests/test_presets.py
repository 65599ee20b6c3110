"""Paper presets: dotted deltas, ``variants.<v>.paper``, presets/*.yaml and ``dfd preset``.

Unit tests run on small params dicts (the repository's sections with tiny custom_cnn variants);
the preset files are then applied to the repository's params.yaml: each validates, keeps only
its variants at the paper's values, and its graph builds under DVC and under ``snakemake -n``.
"""

import copy
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from deepfake_detection import cli
from deepfake_detection.params import ParamsError, apply_deltas, load_params, parse_params
from deepfake_detection.presets import (Preset, PresetFile, apply_preset, find_preset, list_presets,
                                        load_preset, parse_overrides, presets_dir, render)
from tests.conftest import REPO, write_params

BIN = Path(sys.executable).parent
SLUG = "sources.fake_video_images.options.dataset"


# --------------------------------------------------------------------------- apply_deltas


def test_apply_deltas_sets_dotted_keys_on_a_copy():
    raw = {"a": {"b": 1, "c": {"d": 2, "e": 3}}, "opts": None, "l": [1, 2]}
    before = copy.deepcopy(raw)
    deltas = {"a.c.d": 20, "a.new.x": 5, "opts.k": "v", "l": [9], "top": {"m": 1}}
    out = apply_deltas(raw, deltas)
    assert out == {"a": {"b": 1, "c": {"d": 20, "e": 3}, "new": {"x": 5}}, "opts": {"k": "v"}, "l": [9],
                   "top": {"m": 1}}
    assert raw == before
    out["top"]["m"] = 2          # the values are copies too
    assert deltas["top"] == {"m": 1}


def test_apply_deltas_replaces_a_mapping_whole():
    assert apply_deltas({"a": {"b": 1, "c": 2}}, {"a": {"z": 0}}) == {"a": {"z": 0}}


@pytest.mark.parametrize("deltas, message", [
    ({"a.b.c": 1}, "v.paper.a.b.c: a.b is 1, not a mapping, so it has no key 'c'"),
    ({"a..b": 1}, "v.paper.a..b: write a dotted key of names, e.g. train.epochs"),
    ({"": 1}, "v.paper.: write a dotted key of names, e.g. train.epochs"),
    ({3: 1}, "v.paper.3: write a dotted key of names, e.g. train.epochs"),
])
def test_apply_deltas_bad_keys_are_named(deltas, message):
    with pytest.raises(ParamsError) as err:
        apply_deltas({"a": {"b": 1}}, deltas, "v.paper")
    assert str(err.value) == message


# --------------------------------------------------------------------------- small params


@pytest.fixture()
def small() -> dict:
    """The repository's params with three tiny variants over the custom_cnn builder."""
    p = copy.deepcopy(yaml.safe_load((REPO / "params.yaml").read_text()))
    p["variants"] = {
        "cnn_a": {"model": {"builder": "custom_cnn"}, "prepared_size": 32, "train": {"epochs": 2},
                  "paper": {"prepared_size": 224, "train.epochs": 10, "train.optimizer.lr": 0.001}},
        "cnn_b": {"model": {"builder": "custom_cnn"}, "prepared_size": 48, "paper": {"prepared_size": 200}},
        "cnn_c": {"model": {"builder": "custom_cnn"}, "prepared_size": 32},
    }
    p["prepare"]["sizes"] = [32, 48]
    p["gan_variants"] = {}
    p["gan"]["prepared_size"] = 32
    return p


MINI = Preset("mini", Path("presets/mini.yaml"), PresetFile(
    description="two tiny variants\nat paper scale", report="9", variants=["cnn_a", "cnn_b"],
    set={"train.batch_size": 8, "evaluate.test_sets": {"t": {"dataset": "demo_openforensics", "split": "test_dev"}}}))


def test_paper_deltas_validate_with_the_params(small):
    p = parse_params(small)
    assert p.variants["cnn_a"].paper == {"prepared_size": 224, "train.epochs": 10, "train.optimizer.lr": 0.001}
    assert p.variants["cnn_c"].paper == {}


@pytest.mark.parametrize("paper, message", [
    ({"train.epochz": 3}, "variants.cnn_a.paper.train.epochz: train has no key 'epochz'; its keys are ["),
    ({"prepared_sise": 224}, "variants.cnn_a.paper.prepared_sise: a variant has no key 'prepared_sise'; its keys "
                             "are ['description', 'model', 'paper', 'prepared_size', 'published', 'train']"),
    ({"train.optimizer.lr.x": 1}, "variants.cnn_a.paper.train.optimizer.lr.x: train.optimizer.lr is a value, not "
                                  "a mapping with key 'x'"),
    ({"train.epochs.x": 1}, "variants.cnn_a.paper.train.epochs.x: train.epochs is 2, not a mapping, so it has no key 'x'"),
    ({"paper.x": 1}, "variants.cnn_a.paper.paper.x: a paper delta sets the variant's own keys, not paper itself"),
    ({"train.epochs": "ten"}, "variants.cnn_a.paper.train.epochs: with the paper deltas, "
                              "variants.cnn_a.train.epochs: expected an integer, got 'ten'"),
    ({"model.builder": "nope"}, "variants.cnn_a.paper.model.builder: with the paper deltas, "
                                "variants.cnn_a.model.builder: unknown builder 'nope'"),
    ({"model.kwargs.widthz": 3}, "variants.cnn_a.paper.model.kwargs.widthz: with the paper deltas, "
                                 "variants.cnn_a.model.kwargs: custom_cnn takes no argument(s) ['widthz']"),
    # the error lies at a key no delta sets: the deltas as a whole are named
    ({"train.augment.crop": 64}, "variants.cnn_a.paper: with the paper deltas, variants.cnn_a.train.augment."
                                 "eval_resize: must be >= crop 64 (the centre crop is cut from it), got 24"),
])
def test_bad_paper_keys_are_named(small, tmp_path, paper, message):
    small["variants"]["cnn_a"]["train"]["augment"] = {"crop": 16, "eval_resize": 24}
    small["variants"]["cnn_a"]["paper"] = paper
    with pytest.raises(ParamsError) as err:
        load_params(write_params(tmp_path / "params.yaml", small))
    assert str(err.value).startswith(f"{tmp_path / 'params.yaml'}: {message}")


def test_paper_deltas_are_checked_together(small):
    """crop 224 alone would exceed the demo's eval_resize 24; with eval_resize 256 it fits."""
    small["variants"]["cnn_a"]["train"]["augment"] = {"crop": 16, "eval_resize": 24}
    small["variants"]["cnn_a"]["paper"] = {"train.augment.crop": 224, "train.augment.eval_resize": 256}
    assert parse_params(small).variants["cnn_a"].paper == {"train.augment.crop": 224, "train.augment.eval_resize": 256}


# --------------------------------------------------------------------------- apply_preset


def test_apply_preset_keeps_its_variants_at_paper_values(small):
    before = copy.deepcopy(small)
    out = apply_preset(small, MINI)
    assert small == before
    assert out["variants"] == {
        "cnn_a": {"model": {"builder": "custom_cnn"}, "prepared_size": 224,
                  "train": {"epochs": 10, "optimizer": {"lr": 0.001}}},
        "cnn_b": {"model": {"builder": "custom_cnn"}, "prepared_size": 200},
    }
    assert out["prepare"]["sizes"] == [32, 200, 224]     # 32: gan.prepared_size, the FID reference's
    assert out["train"]["batch_size"] == 8
    assert out["evaluate"]["test_sets"] == {"t": {"dataset": "demo_openforensics", "split": "test_dev"}}
    rest = {k: v for k, v in out.items() if k not in ("variants", "prepare", "train", "evaluate")}
    assert rest == {k: v for k, v in small.items() if k not in ("variants", "prepare", "train", "evaluate")}
    assert parse_params(out).variant_train("cnn_a").optimizer.lr == 0.001


def test_overrides_come_after_the_preset(small):
    out = apply_preset(small, MINI, {"train.batch_size": 4, "variants.cnn_b.prepared_size": 224})
    assert out["train"]["batch_size"] == 4
    assert out["prepare"]["sizes"] == [32, 224]


def test_missing_variant_says_how_to_restore(small):
    del small["variants"]["cnn_b"]
    with pytest.raises(ParamsError) as err:
        apply_preset(small, MINI)
    assert str(err.value) == ("presets/mini.yaml: variant(s) ['cnn_b'] are not in the params (defined: "
                              "['cnn_a', 'cnn_c']); restore the demo params.yaml: git checkout params.yaml")


def test_preset_errors_start_with_the_file(small):
    preset = Preset("mini", MINI.path, PresetFile("d", "9", ["cnn_c"], {"train.epochz": 1}))
    with pytest.raises(ParamsError) as err:
        apply_preset(small, preset)
    assert str(err.value).startswith("presets/mini.yaml: train: unknown key(s) ['epochz']")


def _video_preset(name="vid"):
    return Preset(name, Path(f"presets/{name}.yaml"), PresetFile("d", "001", ["cnn_c"], {
        "enabled_sources": ["fake_video_images"],
        "face_stages": {"faces": ["fake_video_images"], "faces_yolo": []},
        "faces.detector.backend": "yunet",
        "train.datasets": ["fake_video_images"],
        "gan.datasets": ["fake_video_images"],
        "evaluate.test_sets": {"test": {"dataset": "fake_video_images", "split": "test"}}}))


def test_a_missing_slug_says_which_option_to_give(small):
    with pytest.raises(ParamsError) as err:
        apply_preset(small, _video_preset())
    assert str(err.value) == (f"presets/vid.yaml: {SLUG}: required key is missing; give it with: "
                              f"dfd preset apply vid -S {SLUG}=<owner>/<slug>")
    out = apply_preset(small, _video_preset(), {SLUG: "someone/fake-video-images"})
    assert out["sources"]["fake_video_images"]["options"] == {"dataset": "someone/fake-video-images"}


def test_parse_overrides_reads_yaml_values():
    assert parse_overrides(["train.epochs=3", "a.b=[x, 1]", f"{SLUG}=owner/slug", "e=", "f=a=b"]) == {
        "train.epochs": 3, "a.b": ["x", 1], SLUG: "owner/slug", "e": None, "f": "a=b"}
    with pytest.raises(ParamsError) as err:
        parse_overrides(["train.epochs"])
    assert str(err.value) == "-S 'train.epochs': write KEY=VALUE with a dotted params key, e.g. -S train.epochs=3"


def test_preset_file_keys_are_checked(tmp_path):
    path = tmp_path / "p.yaml"
    path.write_text("description: d\nreport: '1'\nvariants: [a]\nsett: {}\n")
    with pytest.raises(ParamsError) as err:
        load_preset(path)
    assert str(err.value) == (f"{path}: unknown key(s) ['sett']; allowed keys are "
                              "['description', 'gan_variants', 'report', 'set', 'variants']")
    path.write_text("description: d\nreport: '1'\nvariants: [a, b, a]\n")
    with pytest.raises(ParamsError) as err:
        load_preset(path)
    assert str(err.value) == f"{path}: variants: lists ['a'] twice"


def test_render_names_the_command_and_restores(small):
    text = render(apply_preset(small, MINI), MINI, "dfd preset apply mini")
    assert text.splitlines()[:5] == [
        "# GENERATED by `dfd preset apply mini` from presets/mini.yaml (report 9).",
        "# The paper-scale setup of that report: edit the preset, not this file.",
        "# `git checkout params.yaml` restores the demo params.",
        "#   two tiny variants",
        "#   at paper scale",
    ]
    assert yaml.safe_load(text) == apply_preset(small, MINI)


# --------------------------------------------------------------------------- dfd preset


@pytest.fixture()
def project(tmp_path, small):
    write_params(tmp_path / "params.yaml", small)
    (tmp_path / "presets").mkdir()
    (tmp_path / "presets" / "mini.yaml").write_text(yaml.safe_dump(
        {"description": MINI.spec.description, "report": "9", "variants": MINI.spec.variants, "set": MINI.spec.set}))
    return tmp_path


def test_cli_list_show_apply(project, small, capsys, monkeypatch):
    params = str(project / "params.yaml")
    assert cli.main(["preset", "list", "--params", params]) == 0
    assert capsys.readouterr().out == "mini  report 9  2 variant(s): cnn_a, cnn_b\n    two tiny variants\n"

    assert cli.main(["preset", "show", "mini", "--params", params, "-S", "train.epochs=3"]) == 0
    shown = capsys.readouterr().out
    assert shown.startswith(f"# GENERATED by `dfd preset apply mini -S train.epochs=3` from "
                            f"{project / 'presets' / 'mini.yaml'} (report 9).\n")
    assert yaml.safe_load(shown) == apply_preset(small, MINI, {"train.epochs": 3})
    assert yaml.safe_load((project / "params.yaml").read_text()) == small     # show writes nothing

    calls = []
    monkeypatch.setattr(cli.subprocess, "run", lambda cmd: calls.append(cmd) or subprocess.CompletedProcess(cmd, 0))
    assert cli.main(["preset", "apply", "mini", "--params", params, "-S", "train.epochs=3"]) == 0
    assert calls == []
    assert (project / "params.yaml").read_text() == shown
    assert load_params(params).variants["cnn_a"].prepared_size == 224
    assert sorted(p.name for p in project.iterdir()) == ["params.yaml", "presets"]   # no temporary left

    write_params(project / "params.yaml", small)
    assert cli.main(["preset", "apply", "mini", "--params", params, "--exp"]) == 0
    assert calls == [["dvc", "exp", "run", "--name", "mini"]]


@pytest.mark.parametrize("argv, message", [
    (["preset", "show", "nope"], "error: {p}/presets/nope.yaml: no preset 'nope'; presets in {p}/presets: ['mini']\n"),
    (["preset", "apply", "mini", "-S", "train.epochs"],
     "error: -S 'train.epochs': write KEY=VALUE with a dotted params key, e.g. -S train.epochs=3\n"),
    (["preset", "apply", "mini", "-S", "train.epochs=0"],
     "error: {p}/presets/mini.yaml: train.epochs: must be >= 1, got 0\n"),
])
def test_cli_errors_are_one_line_and_write_nothing(project, capsys, argv, message):
    before = (project / "params.yaml").read_text()
    assert cli.main([*argv, "--params", str(project / "params.yaml")]) == 2
    assert capsys.readouterr().err == message.format(p=project)
    assert (project / "params.yaml").read_text() == before


def test_cli_checks_the_base_params_first(project, small, capsys):
    small["variants"]["cnn_a"]["paper"] = {"train.epochz": 3}
    write_params(project / "params.yaml", small)
    assert cli.main(["preset", "show", "mini", "--params", str(project / "params.yaml")]) == 2
    assert capsys.readouterr().err.startswith(
        f"error: {project / 'params.yaml'}: variants.cnn_a.paper.train.epochz: train has no key 'epochz'")


# --------------------------------------------------------------------------- the repository's presets

PRESETS = {   # preset -> (its variants, the prepared sizes, the download sources, the test sets)
    "seed_000": (["resnet18_scratch", "resnet18_transfer", "resnet18_cbam", "resnet18_cutmix",
                  "resnet18_cbam_dropout"], [224, 256], ["deepfake_and_real_images"], ["test"]),
    "seed_001": (["efficientnetv2s_mixup"], [256], ["fake_video_images"], ["test"]),
    "seed_002": (["keras_cnn1", "keras_cnn2", "keras_cnn3", "keras_cnn4", "keras_cnn5", "resnet50_frozen"],
                 [64, 200, 224], ["deepfakeface"], ["faces_test", "test"]),
    "seed_003": (["mobilenetv2_finetune", "xception_finetune", "custom_cnn"], [224], ["openforensics"],
                 ["test_challenge", "test_dev"]),
    "seed_004": ([], [64], ["real_and_fake_faces"], ["test"]),
}
GAN_PRESETS = {"seed_000": ["dcgan224_anomaly"], "seed_002": ["dcgan_baseline", "dcgan_label_smoothing", "dcgan_ttur",
               "wgan_gp", "wgan_gp_ttur_slow_d", "wgan_gp_ttur_fast_d"], "seed_004": ["hybrid_resnet34_gan"]}
OVERRIDES = {"seed_001": {SLUG: "someone/fake-video-images"},
             "seed_004": {"sources.real_and_fake_faces.options.dataset": "someone/real-and-fake-faces"}}


def repo_params() -> dict:
    return yaml.safe_load((REPO / "params.yaml").read_text())


def applied(name: str) -> dict:
    return apply_preset(repo_params(), find_preset(name, presets_dir(REPO / "params.yaml")), OVERRIDES.get(name))


def test_presets_cover_every_variant_once():
    presets = list_presets(presets_dir(REPO / "params.yaml"))
    assert [p.name for p in presets] == sorted(PRESETS)
    assert [p.spec.variants for p in presets] == [PRESETS[p.name][0] for p in presets]
    names = [v for p in presets for v in p.spec.variants]
    assert sorted(names) == sorted(repo_params()["variants"]) and len(names) == len(set(names))
    assert {p.name: p.spec.gan_variants for p in presets if p.spec.gan_variants} == GAN_PRESETS
    gans = [v for p in presets for v in p.spec.gan_variants]
    assert sorted(gans) == sorted(repo_params()["gan_variants"]) and len(gans) == len(set(gans))


@pytest.mark.parametrize("name", sorted(PRESETS))
def test_preset_validates_at_paper_scale(name):
    variants, sizes, sources, test_sets = PRESETS[name]
    out = applied(name)
    p = parse_params(out)
    assert list(p.variants) == variants
    assert list(p.gan_variants) == GAN_PRESETS.get(name, [])
    assert all(gv.paper == {} for gv in p.gan_variants.values())
    assert p.prepare.sizes == sizes
    assert p.enabled_sources == sources
    assert sorted(p.evaluate.test_sets) == test_sets
    assert p.compute.cpu_isa == "native"
    assert all(v.paper == {} and "paper" not in out["variants"][n] for n, v in p.variants.items())


@pytest.mark.parametrize("name", sorted(PRESETS))
def test_preset_variants_differ_from_the_demo_only_at_paper_and_set_keys(name):
    preset = find_preset(name, presets_dir(REPO / "params.yaml"))
    demo, out = repo_params()["variants"], applied(name)["variants"]
    for v in preset.spec.variants:
        paper = demo[v].pop("paper")
        assert paper, f"{v} has no paper deltas"
        mine = {k.removeprefix(f"variants.{v}."): val for k, val in preset.spec.set.items()
                if k.startswith(f"variants.{v}.")}
        assert out[v] == apply_deltas(apply_deltas(demo[v], paper), mine), v
        assert out[v] != demo[v]


def test_seed_001_without_a_slug_says_how_to_give_it():
    preset = find_preset("seed_001", presets_dir(REPO / "params.yaml"))
    with pytest.raises(ParamsError) as err:
        apply_preset(repo_params(), preset)
    assert str(err.value) == (f"{preset.path.as_posix()}: {SLUG}: required key is missing; give it with: "
                              f"dfd preset apply seed_001 -S {SLUG}=<owner>/<slug>")


def test_seed_002_reads_one_download_as_two_datasets():
    p = parse_params(applied("seed_002"))
    assert {k: (d.layout, d.dir, d.crop) for k, d in p.sources["deepfakeface"].datasets.items()} == {
        "deepfakeface": ("deepfakeface", ".", "whole"), "deepfakeface_faces": ("deepfakeface", ".", "detector")}
    assert {v: p.variant_train(v).datasets for v in p.variants} == {
        "keras_cnn1": ["deepfakeface"], "keras_cnn2": ["deepfakeface"], "keras_cnn3": ["deepfakeface"],
        "keras_cnn4": ["deepfakeface_faces"], "keras_cnn5": ["deepfakeface_faces"], "resnet50_frozen": ["deepfakeface"]}
    assert p.faces.detector_config().backend == "yunet" and p.face_detectors == {}


# ---- the graph of each preset, built by DVC and by Snakemake in one throw-away copy of the pipeline


def _env():
    return {**os.environ, "PATH": f"{BIN}{os.pathsep}{os.environ['PATH']}", "DVC_NO_ANALYTICS": "1"}


@pytest.fixture(scope="module")
def pipeline_copy(tmp_path_factory):
    root = tmp_path_factory.mktemp("presets_graph")
    for name in ("dvc.yaml", "Snakefile"):
        shutil.copy2(REPO / name, root / name)
    for name in ("workflow", "stages", "deepfake_detection"):
        shutil.copytree(REPO / name, root / name, ignore=shutil.ignore_patterns("__pycache__"))
    subprocess.run([str(BIN / "dvc"), "init", "--no-scm", "-q"], cwd=root, env=_env(), check=True)
    return root


def expected_stages(name: str) -> list[str]:
    variants, sizes, sources, _ = PRESETS[name]
    return sorted([*(f"download@{s}" for s in sources), *(f"faces@{s}" for s in sources), "split",
                   *(f"prepare@{s}" for s in sizes), *(f"train@{v}" for v in variants), "fid_reference",
                   *(f"train_gan@{v}" for v in GAN_PRESETS.get(name, [])), "evaluate", "report"])


@pytest.mark.parametrize("name", sorted(PRESETS))
def test_preset_graph_builds_under_dvc_and_snakemake(pipeline_copy, name):
    from dvc.dependency.param import ParamsDependency
    from dvc.repo import Repo

    write_params(pipeline_copy / "params.yaml", applied(name))
    with Repo(str(pipeline_copy)) as r:
        r.index.check_graph()        # resolves every foreach, no overlapping outputs, no cycle
        stages = r.index.stages
        assert sorted(s.name for s in stages) == expected_stages(name)
        for s in stages:             # every params key a stage lists exists in params.yaml
            for d in s.deps:
                if isinstance(d, ParamsDependency):
                    assert sorted(d.read_params()) == sorted(d.params), s.name
    out = subprocess.run([str(BIN / "snakemake"), "-n", "--cores", "1", "--forceall"], cwd=pipeline_copy,
                         env=_env(), capture_output=True, text=True)
    assert out.returncode == 0, out.stdout + out.stderr
    table = out.stdout.split("Job stats:")[1].split("\n\n")[0]
    jobs = dict(re.findall(r"^(\w+)\s+(\d+)$", table, flags=re.M))
    variants, sizes, sources, _ = PRESETS[name]
    gans = GAN_PRESETS.get(name, [])
    expected = {"download": len(sources), "faces": len(sources), "split": 1, "prepare": len(sizes),
                "train": len(variants), "fid_reference": 1, "train_gan": len(gans), "evaluate": 1, "report": 1,
                "all": 1}
    expected = {k: str(v) for k, v in expected.items() if v}
    assert jobs == {**expected, "total": str(sum(int(v) for v in expected.values()))}
