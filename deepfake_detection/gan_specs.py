"""Registered GAN generator/discriminator builders and their keyword arguments, read without importing them.

The GAN counterpart of ``model_specs`` (and for the same reasons: checking params.yaml must not
import torch into every stage, nor make the GAN code a dependency of every stage). It reads
``deepfake_detection/gan/nets.py`` with :mod:`ast` and collects each function decorated with
``@register_gan_net(...)``: its name, its keyword parameters (``weights_file`` comes from the
pipeline, never from params.yaml), whether it takes ``**kwargs``, and the literal metadata (kind,
pixel range, default size, weights key), with ``model_specs``' source readers. It imports nothing
from the package but ``model_specs`` (which imports nothing), so ``params.py`` may import it; ``tests/test_gan_specs.py`` checks it against the live registry.
"""

from __future__ import annotations

import ast
import functools
from dataclasses import dataclass
from pathlib import Path

from .model_specs import decorated_functions, keyword_params, unaccepted_kwargs

NETS_FILE = Path(__file__).resolve().parent / "gan" / "nets.py"
FACTORY_ARGS = ("weights_file",)              # passed by create_gan_net, never by params.yaml
METADATA = ("kind", "pixels", "default_size", "weights")
KINDS = ("generator", "discriminator")
# The classifier builder (models/gan_discriminators.py) that rebuilds each scoring discriminator for
# the evaluate stage (anomaly and hybrid variants), and the discriminator kwarg that becomes its
# input_size (the prepared side), if any.
CLASSIFIER_OF = {"dcgan224_discriminator": ("dcgan_realness", "size"),
                 "hybrid_resnet34_discriminator": ("hybrid_resnet34", None)}


@dataclass(frozen=True)
class GanNetSpec:
    name: str
    kwargs: tuple[str, ...]      # keyword arguments a variant may set
    kind: str                    # the metadata @register_gan_net declares (see gan.nets.GanNetInfo)
    pixels: str
    default_size: int
    weights: str | None = None
    var_kwargs: bool = False


def _register_call(decorator: ast.expr) -> ast.Call | None:
    if not isinstance(decorator, ast.Call):
        return None
    func = decorator.func
    name = func.attr if isinstance(func, ast.Attribute) else getattr(func, "id", "")
    return decorator if name == "register_gan_net" else None


def _spec(fn: ast.FunctionDef, call: ast.Call) -> GanNetSpec:
    try:
        meta = {kw.arg: ast.literal_eval(kw.value) for kw in call.keywords}
    except ValueError as exc:
        raise ValueError(f"@register_gan_net of {fn.name!r}: every argument must be a literal ({exc})") from exc
    if call.args or set(meta) - set(METADATA) or None in meta:
        raise ValueError(f"@register_gan_net of {fn.name!r}: takes only the keywords {list(METADATA)}")
    kwargs, var_kwargs = keyword_params(fn, FACTORY_ARGS)
    return GanNetSpec(fn.name, kwargs, **meta, var_kwargs=var_kwargs)


@functools.cache
def gan_net_specs(nets_file: Path = NETS_FILE) -> dict[str, GanNetSpec]:
    """Builder name -> spec, for every ``@register_gan_net`` function in ``nets_file``."""
    return {fn.name: _spec(fn, call) for fn, call in decorated_functions([nets_file], _register_call)}


def check_gan_net(name: str, kwargs: dict, kind: str, where: str) -> str | None:
    """None if ``name`` is a registered ``kind`` builder accepting ``kwargs``; else a one-line error for ``where``."""
    if kind not in KINDS:
        raise ValueError(f"kind {kind!r} is not one of {KINDS}")
    specs = {n: s for n, s in gan_net_specs().items() if s.kind == kind}
    if name not in specs:
        return f"{where}.builder: unknown {kind} {name!r}; registered: {sorted(specs)}"
    spec = specs[name]
    return unaccepted_kwargs(name, kwargs, spec.kwargs, spec.var_kwargs, where, "weights_file comes from the pipeline")
