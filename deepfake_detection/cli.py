"""The ``dfd`` command: small helpers around the pipeline (the stages themselves run via DVC).

    dfd check [params.yaml]   validate params.yaml and print what the graph will run
    dfd models                list the registered classifier builders
    dfd preset list           the paper presets (presets/*.yaml), one per report
    dfd preset show NAME      the params a preset makes from params.yaml, as YAML on stdout
    dfd preset apply NAME [--params params.yaml] [-S key=value ...] [--exp]
                              write them over params.yaml (git checkout params.yaml restores
                              the demo); --exp then runs `dvc exp run --name NAME`
"""

from __future__ import annotations

import argparse
import shlex
import subprocess
import sys
from pathlib import Path

import yaml

from .params import ParamsError, load_params


def _check(path: str) -> int:
    try:
        p = load_params(path)
    except ParamsError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    print(f"{path}: ok")
    print(f"  sources:   {', '.join(p.enabled_sources)} -> datasets {', '.join(sorted(p.dataset_ids()))}")
    print(f"  train on:  {', '.join(p.train.datasets)}")
    for name, v in sorted(p.variants.items()):
        cfg = p.variant_train(name)
        print(f"  variant:   {name} ({v.model.builder}, {v.prepared_size} px, {cfg.epochs} epochs, "
              f"lr {cfg.optimizer.lr:g})")
    print(f"  prepared:  {', '.join(f'{s} px' for s in p.prepare.sizes)}")
    print(f"  test sets: {', '.join(sorted(p.evaluate.test_sets))}")
    return 0


def _preset_params(args) -> tuple:
    """(preset, applied params mapping, params.yaml text) for ``dfd preset show/apply``."""
    from . import presets

    preset = presets.find_preset(args.name, presets.presets_dir(args.params))
    load_params(args.params)   # the demo params first: their errors name the file (and paper keys)
    base = yaml.safe_load(Path(args.params).read_text())
    raw = presets.apply_preset(base, preset, presets.parse_overrides(args.set))
    command = shlex.join(["dfd", "preset", "apply", args.name, *(a for s in args.set for a in ("-S", s))])
    return preset, raw, presets.render(raw, preset, command)


def _preset(args) -> int:
    from . import presets
    from .io import write_text

    try:
        if args.action == "list":
            for p in presets.list_presets(presets.presets_dir(args.params)):
                first = p.spec.description.strip().splitlines()[0] if p.spec.description.strip() else ""
                gans = f"; GAN: {', '.join(p.spec.gan_variants)}" if p.spec.gan_variants else ""
                print(f"{p.name}  report {p.spec.report}  {len(p.spec.variants)} variant(s): "
                      f"{', '.join(p.spec.variants)}{gans}\n    {first}")
            return 0
        preset, _, text = _preset_params(args)
    except ParamsError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    if args.action == "show":
        sys.stdout.write(text)
        return 0
    write_text(args.params, text)
    print(f"{args.params}: preset {preset.name} (report {preset.spec.report}) written; "
          "`git checkout params.yaml` restores the demo")
    if args.exp:
        return subprocess.run(["dvc", "exp", "run", "--name", preset.name]).returncode
    return 0


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(prog="dfd", description=__doc__.splitlines()[0])
    sub = ap.add_subparsers(dest="cmd", required=True)
    check = sub.add_parser("check", help="validate params.yaml")
    check.add_argument("params", nargs="?", default="params.yaml")
    sub.add_parser("models", help="list registered classifier builders and their metadata")
    preset = sub.add_parser("preset", help="paper presets: one command per report")
    actions = preset.add_subparsers(dest="action", required=True)
    for action, text in (("list", "list the presets"), ("show", "print the params a preset makes"),
                         ("apply", "write the params a preset makes over params.yaml")):
        cmd = actions.add_parser(action, help=text)
        cmd.add_argument("--params", default="params.yaml", help="the demo params to start from (and write)")
        if action == "list":
            continue
        cmd.add_argument("name", help="preset name (presets/<name>.yaml) or a preset file")
        cmd.add_argument("-S", "--set", action="append", default=[], metavar="KEY=VALUE",
                         help="set a dotted params key after the preset (value parsed as YAML); repeatable")
        if action == "apply":
            cmd.add_argument("--exp", action="store_true", help="then run `dvc exp run --name NAME`")
    args = ap.parse_args(argv)
    if args.cmd == "check":
        return _check(args.params)
    if args.cmd == "preset":
        return _preset(args)
    print("\n".join(_model_lines()))
    return 0


def _model_lines() -> list[str]:
    """One line per registered builder: its declared metadata and the kwargs a variant may set."""
    from .model_specs import builder_specs   # read from source: no torch import

    return [f"{s.name}: head={s.head} normalize={s.normalize} default_size={s.default_size} "
            f"weights={s.weights or '-'} frozen={','.join(s.frozen) or '-'} gradcam={s.gradcam_layer} "
            f"kwargs={','.join(s.kwargs) or '-'}" for s in sorted(builder_specs().values(), key=lambda s: s.name)]


if __name__ == "__main__":
    sys.exit(main())
