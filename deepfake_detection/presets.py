"""Paper presets: turn the demo ``params.yaml`` into one report's full-scale setup.

A preset is ``presets/<name>.yaml`` beside params.yaml::

    description: what it runs (several lines)
    report: "000"
    variants: [resnet18_scratch, ...]        # the report's variants; the others are dropped
    gan_variants: [dcgan224_anomaly]         # the report's GAN variants (default none)
    set: {train.datasets: [...], gan.datasets: [...], ...}   # dotted params keys -> values (replace whole)

:func:`apply_preset` keeps the preset's classifier and GAN variants, applies each one's ``paper``
deltas (the report's values where the demo scale differs) and drops them, applies ``set`` and then
any command-line overrides, derives ``prepare.sizes`` from the variants' and ``gan``'s
``prepared_size`` and validates the result with the params reader. ``dfd preset apply <name>`` writes it over
params.yaml (``git checkout params.yaml`` restores the demo) and, with ``--exp``, runs it as a
DVC experiment so ``dvc exp show`` / ``dvc exp diff`` compare reports and the demo.
"""

from __future__ import annotations

import copy
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from .params import ParamsError, apply_deltas, check, from_dict, parse_params

RESTORE = "restore the demo params.yaml: git checkout params.yaml"


@dataclass
class PresetFile:
    """The keys of a preset file (unknown keys are errors)."""

    description: str
    report: str
    variants: list[str]
    set: dict[str, Any] = field(default_factory=dict)
    gan_variants: list[str] = field(default_factory=list)

    def validate(self, where: str) -> None:
        check(bool(self.variants) or bool(self.gan_variants), f"{where}.variants",
              "list at least one variant (or GAN variant) of the report")
        for key in ("variants", "gan_variants"):
            names = getattr(self, key)
            doubled = sorted({v for v in names if names.count(v) > 1})
            check(not doubled, f"{where}.{key}", f"lists {doubled} twice")
        bad = [k for k in self.set if not isinstance(k, str)]
        check(not bad, f"{where}.set", f"keys must be dotted params keys (strings), got {bad}")


@dataclass(frozen=True)
class Preset:
    name: str              # the file's stem: dfd preset apply <name>
    path: Path
    spec: PresetFile


def presets_dir(params_path: str | Path = "params.yaml") -> Path:
    """Presets live in ``presets/`` beside the params file they apply to."""
    return Path(params_path).parent / "presets"


def load_preset(path: str | Path) -> Preset:
    """Read and check one preset file; ParamsError names the file and the key."""
    path = Path(path)
    try:
        raw = yaml.safe_load(path.read_text())
    except FileNotFoundError:
        raise ParamsError(f"{path}: preset file not found") from None
    except yaml.YAMLError as exc:
        raise ParamsError(f"{path}: not valid YAML: {exc}") from None
    try:
        spec = from_dict(PresetFile, raw, "")
    except ParamsError as exc:
        raise ParamsError(f"{path}: {str(exc).lstrip('.').removeprefix(': ')}") from None
    return Preset(path.stem, path, spec)


def list_presets(directory: str | Path) -> list[Preset]:
    """Every ``*.yaml`` preset in ``directory``, by name."""
    return [load_preset(p) for p in sorted(Path(directory).glob("*.yaml"))]


def find_preset(name: str, directory: str | Path) -> Preset:
    """Preset ``name`` of ``directory`` (or a path to a preset file)."""
    path = Path(directory) / f"{name}.yaml"
    if not path.is_file() and Path(name).is_file():
        path = Path(name)
    if not path.is_file():
        known = sorted(p.stem for p in Path(directory).glob("*.yaml"))
        raise ParamsError(f"{path}: no preset {name!r}; presets in {directory}: {known}")
    return load_preset(path)


def _missing_key_hint(message: str, name: str) -> str:
    """For a required key the preset cannot know (a Kaggle slug): the -S that gives it."""
    match = re.match(r"([\w.\-]+): required key is missing$", message)
    if not match:
        return ""
    key = match.group(1)
    value = "<owner>/<slug>" if key.startswith("sources.") and key.endswith(".options.dataset") else "<value>"
    return f"; give it with: dfd preset apply {name} -S {key}={value}"


def apply_preset(base_raw: dict, preset: Preset, overrides: dict[str, Any] | None = None) -> dict:
    """The params mapping of ``preset`` over the demo params ``base_raw`` (not modified).

    Keeps only the preset's variants and GAN variants, each with its ``paper`` deltas applied and
    removed; then ``set`` and ``overrides`` (dotted keys, each value replaces the old one whole);
    ``prepare.sizes`` becomes the sorted set of the variants', GAN variants' and ``gan``'s
    ``prepared_size``. The result is
    validated by the params reader; every error starts with the preset file.
    """
    where = preset.path.as_posix()
    out = copy.deepcopy(base_raw)
    for section in ("variants", "gan_variants"):
        defined = (base_raw or {}).get(section) or {}
        missing = [v for v in getattr(preset.spec, section) if v not in defined]
        if missing:
            label = "variant(s)" if section == "variants" else "GAN variant(s)"
            raise ParamsError(f"{where}: {label} {missing} are not in the params (defined: {sorted(defined)}); "
                              f"{RESTORE}")
        out[section] = {}
    try:
        for section in ("variants", "gan_variants"):
            for name in getattr(preset.spec, section):
                raw = copy.deepcopy(base_raw[section][name])
                paper = raw.pop("paper", None) or {}
                out[section][name] = apply_deltas(raw, paper, f"{section}.{name}.paper")
        out = apply_deltas(out, preset.spec.set, "set")
        out = apply_deltas(out, overrides or {}, "-S")
        sizes = [v.get("prepared_size") if isinstance(v, dict) else None
                 for section in ("variants", "gan_variants") for v in out[section].values()]
        if isinstance(out.get("gan"), dict):
            sizes.append(out["gan"].get("prepared_size", 64))
        if all(isinstance(s, int) and not isinstance(s, bool) for s in sizes):
            # a bad prepared_size is left for the params reader, which names the variant
            out = apply_deltas(out, {"prepare.sizes": sorted(set(sizes))})
        parse_params(out)
    except ParamsError as exc:
        raise ParamsError(f"{where}: {exc}{_missing_key_hint(str(exc), preset.name)}") from None
    return out


def parse_overrides(items: list[str]) -> dict[str, Any]:
    """``["a.b=1", "c=[x, y]"]`` -> ``{"a.b": 1, "c": ["x", "y"]}`` (values parsed as YAML)."""
    out = {}
    for item in items:
        key, sep, value = item.partition("=")
        if not sep or not key.strip():
            raise ParamsError(f"-S {item!r}: write KEY=VALUE with a dotted params key, e.g. -S train.epochs=3")
        try:
            out[key.strip()] = yaml.safe_load(value)
        except yaml.YAMLError as exc:
            raise ParamsError(f"-S {item!r}: the value is not valid YAML: {exc}") from None
    return out


def render(raw: dict, preset: Preset, command: str) -> str:
    """params.yaml text of an applied preset, with a header naming the ``command`` that made it."""
    header = [
        f"# GENERATED by `{command}` from {preset.path.as_posix()} (report {preset.spec.report}).",
        "# The paper-scale setup of that report: edit the preset, not this file.",
        "# `git checkout params.yaml` restores the demo params.",
        *[f"#   {line}".rstrip() for line in preset.spec.description.strip().splitlines()],
    ]
    return "\n".join(header) + "\n" + yaml.safe_dump(raw, sort_keys=False, width=100)
