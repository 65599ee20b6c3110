"""The ``dfd`` command: small helpers around the pipeline (the stages themselves run via DVC).

    dfd check [params.yaml]   validate params.yaml and print what the graph will run
    dfd models                list the registered classifier builders
"""

from __future__ import annotations

import argparse
import sys

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


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(prog="dfd", description=__doc__.splitlines()[0])
    sub = ap.add_subparsers(dest="cmd", required=True)
    check = sub.add_parser("check", help="validate params.yaml")
    check.add_argument("params", nargs="?", default="params.yaml")
    sub.add_parser("models", help="list registered classifier builders and their metadata")
    args = ap.parse_args(argv)
    if args.cmd == "check":
        return _check(args.params)
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
