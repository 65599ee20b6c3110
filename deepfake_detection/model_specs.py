"""Registered classifier builders and their keyword arguments, read without importing them.

``params.py`` checks every variant's ``model.builder`` and ``model.kwargs`` when params.yaml is
loaded, which every stage does first. Importing the builders for that would import torch into the
download stage (seconds) and, worse, make every stage's code deps include the model code, so an
edit to a classifier would rerun the download. This module instead reads the source of
``deepfake_detection/models/*.py`` with :mod:`ast` and collects each function decorated with
``@register_model`` (bare or called): its name, its keyword parameters (the factory passes
``input_size`` and ``num_outputs`` itself) and whether it takes ``**kwargs``.
``tests/test_params.py`` checks the result against ``inspect.signature`` of the live registry.
"""

from __future__ import annotations

import ast
import functools
from dataclasses import dataclass
from pathlib import Path

MODELS_DIR = Path(__file__).resolve().parent / "models"
FACTORY_ARGS = ("input_size", "num_outputs")   # passed by create_model, never by params.yaml


@dataclass(frozen=True)
class BuilderSpec:
    name: str
    kwargs: tuple[str, ...]      # keyword arguments a variant may set
    var_kwargs: bool = False     # the builder takes **kwargs (any key is accepted)


def _is_register(decorator: ast.expr) -> bool:
    target = decorator.func if isinstance(decorator, ast.Call) else decorator
    name = target.attr if isinstance(target, ast.Attribute) else getattr(target, "id", "")
    return name == "register_model"


def _spec(fn: ast.FunctionDef) -> BuilderSpec:
    args = fn.args
    names = [a.arg for a in args.posonlyargs + args.args + args.kwonlyargs]
    return BuilderSpec(fn.name, tuple(n for n in names if n not in FACTORY_ARGS), args.kwarg is not None)


@functools.cache
def builder_specs(models_dir: Path = MODELS_DIR) -> dict[str, BuilderSpec]:
    """Builder name -> spec, for every ``@register_model`` function under ``models_dir``."""
    specs: dict[str, BuilderSpec] = {}
    for path in sorted(models_dir.glob("*.py")):
        for node in ast.walk(ast.parse(path.read_text(), filename=str(path))):
            if isinstance(node, ast.FunctionDef) and any(_is_register(d) for d in node.decorator_list):
                specs[node.name] = _spec(node)
    return specs


def check_builder(name: str, kwargs: dict, where: str) -> str | None:
    """None if builder ``name`` exists and accepts ``kwargs``; else a one-line error for ``where``."""
    specs = builder_specs()
    if name not in specs:
        return f"{where}.builder: unknown builder {name!r}; registered: {sorted(specs)}"
    spec = specs[name]
    bad = sorted(set(kwargs) - set(spec.kwargs))
    if bad and not spec.var_kwargs:
        return (f"{where}.kwargs: {name} takes no argument(s) {bad}; it accepts "
                f"{list(spec.kwargs) or 'none'} ({' and '.join(FACTORY_ARGS)} come from the pipeline)")
    return None
