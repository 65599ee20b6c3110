"""Registered classifier builders and their keyword arguments, read without importing them.

``params.py`` checks every variant's ``model.builder`` and ``model.kwargs`` when params.yaml is
loaded, which every stage does first. Importing the builders for that would import torch into the
download stage (seconds) and, worse, make every stage's code deps include the model code, so an
edit to a classifier would rerun the download. This module instead reads the source of
``deepfake_detection/models/*.py`` with :mod:`ast` and collects each function decorated with
``@register_model(...)``: its name, its keyword parameters (the factory passes ``input_size``,
``num_outputs`` and ``weights_file`` itself), whether it takes ``**kwargs``, and the metadata the
decorator declares (head, normalisation, Grad-CAM layer, input side, frozen parts, weights key),
which must be literals (read with :func:`ast.literal_eval`). ``tests/test_params.py`` checks the
result against ``inspect.signature`` and ``model_info`` of the live registry.
"""

from __future__ import annotations

import ast
import functools
from dataclasses import dataclass
from pathlib import Path

MODELS_DIR = Path(__file__).resolve().parent / "models"
FACTORY_ARGS = ("input_size", "num_outputs", "weights_file")   # passed by create_model, never by params.yaml
HEADS = {"softmax2": 2, "logit": 1}              # head -> number of outputs
NORMALIZATIONS = ("half", "imagenet", "unit")    # mean=std=0.5 | ImageNet mean/std | pixels in [0, 1]
METADATA = ("head", "normalize", "gradcam_layer", "default_size", "frozen", "weights")


@dataclass(frozen=True)
class BuilderSpec:
    name: str
    kwargs: tuple[str, ...]      # keyword arguments a variant may set
    head: str                    # the metadata ``@register_model`` declares (see models.registry.ModelInfo)
    normalize: str
    gradcam_layer: str
    default_size: int
    frozen: tuple = ()
    weights: str | None = None
    var_kwargs: bool = False     # the builder takes **kwargs (any key is accepted)

    @property
    def num_outputs(self) -> int:
        return HEADS[self.head]


def _register_call(decorator: ast.expr) -> ast.Call | None:
    call = decorator if isinstance(decorator, ast.Call) else None
    target = call.func if call is not None else decorator
    name = target.attr if isinstance(target, ast.Attribute) else getattr(target, "id", "")
    if name != "register_model":
        return None
    if call is None:
        raise ValueError(f"line {decorator.lineno}: @register_model needs its metadata, e.g. "
                         f"@register_model(head=..., normalize=..., gradcam_layer=..., default_size=...)")
    return call


def _metadata(call: ast.Call, fn_name: str) -> dict:
    try:
        meta = {kw.arg: ast.literal_eval(kw.value) for kw in call.keywords}
    except ValueError as exc:
        raise ValueError(f"@register_model of {fn_name!r}: every argument must be a literal ({exc})") from exc
    unknown = sorted(set(meta) - set(METADATA))
    if call.args or unknown or None in meta:
        raise ValueError(f"@register_model of {fn_name!r}: takes only the keywords {list(METADATA)}, "
                         f"got {len(call.args)} positional and {unknown} unknown")
    missing = [k for k in METADATA[:4] if k not in meta]
    if missing:
        raise ValueError(f"@register_model of {fn_name!r}: missing {missing}")
    return meta


def keyword_params(fn: ast.FunctionDef, factory_args: tuple[str, ...]) -> tuple[tuple[str, ...], bool]:
    """(the parameters a params.yaml entry may set, whether ``fn`` takes ``**kwargs``)."""
    args = fn.args
    names = [a.arg for a in args.posonlyargs + args.args + args.kwonlyargs]
    return tuple(n for n in names if n not in factory_args), args.kwarg is not None


def decorated_functions(paths, register_call) -> list[tuple[ast.FunctionDef, ast.Call]]:
    """(function, decorator call) of every function in ``paths`` that ``register_call`` recognises.

    ``register_call(decorator)`` returns the decorator's :class:`ast.Call` when it registers the
    function, else None; the first registering decorator of a function counts. Shared by this
    module and ``gan_specs``.
    """
    found = []
    for path in paths:
        for node in ast.walk(ast.parse(Path(path).read_text(), filename=str(path))):
            if isinstance(node, ast.FunctionDef):
                calls = [c for c in map(register_call, node.decorator_list) if c is not None]
                if calls:
                    found.append((node, calls[0]))
    return found


def unaccepted_kwargs(name: str, kwargs: dict, accepted: tuple[str, ...], var_kwargs: bool, where: str,
                      factory_note: str) -> str | None:
    """The one-line error for ``kwargs`` that builder ``name`` does not take, or None."""
    bad = sorted(set(kwargs) - set(accepted))
    if bad and not var_kwargs:
        return (f"{where}.kwargs: {name} takes no argument(s) {bad}; it accepts "
                f"{list(accepted) or 'none'} ({factory_note})")
    return None


def _spec(fn: ast.FunctionDef, call: ast.Call) -> BuilderSpec:
    kwargs, var_kwargs = keyword_params(fn, FACTORY_ARGS)
    return BuilderSpec(fn.name, kwargs, **_metadata(call, fn.name), var_kwargs=var_kwargs)


@functools.cache
def builder_specs(models_dir: Path = MODELS_DIR) -> dict[str, BuilderSpec]:
    """Builder name -> spec, for every ``@register_model`` function under ``models_dir``."""
    return {fn.name: _spec(fn, call)
            for fn, call in decorated_functions(sorted(models_dir.glob("*.py")), _register_call)}


def check_builder(name: str, kwargs: dict, where: str) -> str | None:
    """None if builder ``name`` exists and accepts ``kwargs``; else a one-line error for ``where``."""
    specs = builder_specs()
    if name not in specs:
        return f"{where}.builder: unknown builder {name!r}; registered: {sorted(specs)}"
    spec = specs[name]
    return unaccepted_kwargs(name, kwargs, spec.kwargs, spec.var_kwargs, where,
                             f"{', '.join(FACTORY_ARGS[:-1])} and {FACTORY_ARGS[-1]} come from the pipeline")
