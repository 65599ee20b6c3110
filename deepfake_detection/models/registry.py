"""Name -> builder registry with one factory, after timm's ``create_model``; builders declare metadata.

A builder is ``fn(input_size: int, num_outputs: int, [weights_file: Path | None = None,] **own
kwargs) -> nn.Module``, registered with ``@register_model(head=..., normalize=..., ...)``. The
decorator's arguments are the builder's :class:`ModelInfo`: what the rest of the pipeline needs to
know about it (its head and loss, its default normalisation, its Grad-CAM layer, its input side,
its frozen parts, its pretrained-weights key) instead of guessing it from output shapes. They
must be literals in the source: ``deepfake_detection.model_specs`` reads them with ``ast`` so that
loading params imports no torch (``tests/test_params.py`` checks both views agree).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import torch
from torch import nn

from ..model_specs import HEADS, NORMALIZATIONS
from .blocks import PartlyFrozen

Builder = Callable[..., nn.Module]
_BUILDERS: dict[str, tuple[Builder, "ModelInfo"]] = {}


@dataclass(frozen=True)
class ModelInfo:
    """What a builder declares about the models it builds (see the module docstring)."""

    name: str
    head: str            # "softmax2": 2 logits (real, fake), cross-entropy | "logit": 1 fake logit, BCE-with-logits
    normalize: str       # default normalisation: "half" (mean=std=0.5) | "imagenet" | "unit" (pixels in [0,1])
    gradcam_layer: str   # dotted path for gradcam_target(); a component "-k" means the k-th child from the end;
                         # "last_conv" = the last nn.Conv2d
    default_size: int    # the report's input side
    frozen: tuple = ()   # dotted submodule paths whose parameters never train (and whose BatchNorm stays in eval mode)
    weights: str | None = None   # key into models.weights.WEIGHTS; None = no pretrained weights exist for it

    @property
    def num_outputs(self) -> int:
        return HEADS[self.head]


def _check_info(info: ModelInfo) -> None:
    where = f"@register_model of {info.name!r}"
    if info.head not in HEADS:
        raise ValueError(f"{where}: head {info.head!r} is not one of {sorted(HEADS)}")
    if info.normalize not in NORMALIZATIONS:
        raise ValueError(f"{where}: normalize {info.normalize!r} is not one of {list(NORMALIZATIONS)}")
    if not isinstance(info.default_size, int) or info.default_size < 8:
        raise ValueError(f"{where}: default_size must be an int >= 8, got {info.default_size!r}")
    if not isinstance(info.frozen, tuple) or not all(isinstance(p, str) and p for p in info.frozen):
        raise ValueError(f"{where}: frozen must be a tuple of dotted module paths, got {info.frozen!r}")
    if not isinstance(info.gradcam_layer, str) or not info.gradcam_layer:
        raise ValueError(f"{where}: gradcam_layer must be a dotted module path or 'last_conv'")


def register_model(*, head: str, normalize: str, gradcam_layer: str, default_size: int,
                   frozen: tuple = (), weights: str | None = None) -> Callable[[Builder], Builder]:
    """Decorator factory: register ``fn`` under its name with this metadata (literals only)."""

    def register(fn: Builder) -> Builder:
        if fn.__name__ in _BUILDERS:
            raise ValueError(f"model builder {fn.__name__!r} registered twice")
        info = ModelInfo(fn.__name__, head, normalize, gradcam_layer, default_size, frozen, weights)
        _check_info(info)
        _BUILDERS[fn.__name__] = (fn, info)
        return fn

    return register


def list_models() -> list[str]:
    """Every registered builder name (the package ``__init__`` registers them on import)."""
    return sorted(_BUILDERS)


def _entry(name: str) -> tuple[Builder, ModelInfo]:
    if name not in _BUILDERS:
        raise ValueError(f"unknown model builder {name!r}; registered: {sorted(_BUILDERS)}")
    return _BUILDERS[name]


def get_builder(name: str) -> Builder:
    return _entry(name)[0]


def model_info(name: str) -> ModelInfo:
    """The metadata builder ``name`` declared; ValueError naming the registered builders if unknown."""
    return _entry(name)[1]


def with_weights_file(what: str, weights_key: str | None, weights_file, kwargs: dict) -> dict:
    """``kwargs`` plus ``weights_file`` (as a Path) when one is given; ValueError naming ``what``
    when it declares no pretrained weights (``weights_key`` None). Shared with ``gan.nets``."""
    if weights_file is None:
        return kwargs
    if weights_key is None:
        raise ValueError(f"{what} has no pretrained weights; build it without weights_file (got {str(weights_file)!r})")
    return {**kwargs, "weights_file": Path(weights_file)}


def create_model(name: str, input_size: int, weights_file: str | Path | None = None, **kwargs) -> nn.Module:
    """Build ``name`` for ``input_size`` with its declared number of outputs and frozen parts.

    ``weights_file`` (a resolved pretrained file, see ``models.weights``) goes only to builders
    that declare ``weights=``; the builder loads it into its backbone before replacing the head.
    """
    builder, info = _entry(name)
    kwargs = with_weights_file(f"model builder {name!r}", info.weights, weights_file, kwargs)
    try:
        model = builder(input_size=input_size, num_outputs=info.num_outputs, **kwargs)
    except TypeError as exc:
        raise ValueError(f"model builder {name!r}: bad kwargs {sorted(kwargs)}: {exc}") from exc
    if info.frozen:
        if not isinstance(model, PartlyFrozen):
            raise TypeError(f"model builder {name!r} declares frozen={info.frozen} but returns a "
                            f"{type(model).__name__}, not a PartlyFrozen module")
        model.freeze(info.frozen)
    return model


def fake_probability(logits: torch.Tensor, head: str) -> torch.Tensor:
    """P(fake) as float32 from a model with ``head`` "softmax2" (N, 2) or "logit" (N, 1)."""
    if head not in HEADS:
        raise ValueError(f"head {head!r} is not one of {sorted(HEADS)}")
    if logits.ndim != 2 or logits.shape[1] != HEADS[head]:
        raise ValueError(f"head {head!r} expects logits of shape (N, {HEADS[head]}), got {tuple(logits.shape)}")
    if head == "logit":
        return torch.sigmoid(logits[:, 0].float())
    return torch.softmax(logits.float(), dim=1)[:, 1]


def _child(module: nn.Module, part: str, path: str) -> nn.Module:
    children = dict(module.named_children())
    if part.startswith("-") and part[1:].isdigit():
        if len(children) < int(part[1:]):
            raise ValueError(f"gradcam layer {path!r}: {type(module).__name__} has {len(children)} children, "
                             f"too few for {part!r}")
        return list(children.values())[int(part)]
    if part not in children:
        raise ValueError(f"gradcam layer {path!r}: {type(module).__name__} has no child {part!r} "
                         f"(children: {list(children)})")
    return children[part]


def gradcam_target(model: nn.Module, info: ModelInfo) -> nn.Module:
    """The module whose activations Grad-CAM weighs: ``info.gradcam_layer`` resolved in ``model``."""
    if info.gradcam_layer == "last_conv":
        convs = [m for m in model.modules() if isinstance(m, nn.Conv2d)]
        if not convs:
            raise ValueError(f"{info.name}: gradcam layer 'last_conv' but the model has no nn.Conv2d")
        return convs[-1]
    module = model
    for part in info.gradcam_layer.split("."):
        module = _child(module, part, info.gradcam_layer)
    return module


MODEL_FILE_KEYS = ("state_dict", "builder", "kwargs", "normalize", "input_size", "augment")


def load_trained_model(path, device: torch.device | str = "cpu") -> tuple[nn.Module, dict]:
    """Rebuild a model saved by the train stage; returns (model in eval mode, its metadata).

    The saved state_dict replaces any pretrained weights, so the model is rebuilt without them
    (no weights file is looked up). The file is read with ``weights_only=True``
    (:func:`deepfake_detection.io.load_torch`): a file holding anything but tensors and plain
    data raises ``UnsafeFileError`` naming it.
    """
    from ..io import load_torch

    meta = load_torch(path, "model file")
    missing = [k for k in MODEL_FILE_KEYS if not isinstance(meta, dict) or k not in meta]
    if missing:
        raise ValueError(f"{path}: not a model file written by the train stage (missing {missing}); "
                         f"re-run train")
    model = create_model(meta["builder"], input_size=meta["input_size"], weights_file=None, **dict(meta["kwargs"]))
    model.load_state_dict(meta["state_dict"])
    return model.to(device).eval(), {k: v for k, v in meta.items() if k != "state_dict"}
