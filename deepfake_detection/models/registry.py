"""Name -> builder registry with one factory, after timm's ``create_model``.

A builder is ``fn(input_size: int, num_outputs: int, **kwargs) -> nn.Module``; a variant in
params.yaml names a builder and its kwargs (checked at params load by
``deepfake_detection.model_specs``, which reads the ``@register_model`` functions' signatures
from source so that loading params imports no torch). ``num_outputs`` 2 means softmax over
(real, fake) trained with cross-entropy; 1 means a single fake logit trained with BCE.
"""

from __future__ import annotations

from typing import Callable

import torch
from torch import nn

Builder = Callable[..., nn.Module]
_BUILDERS: dict[str, Builder] = {}


def register_model(fn: Builder) -> Builder:
    if fn.__name__ in _BUILDERS:
        raise ValueError(f"model builder {fn.__name__!r} registered twice")
    _BUILDERS[fn.__name__] = fn
    return fn


def list_models() -> list[str]:
    """Every registered builder name (the package ``__init__`` registers them on import)."""
    return sorted(_BUILDERS)


def get_builder(name: str) -> Builder:
    if name not in _BUILDERS:
        raise ValueError(f"unknown model builder {name!r}; registered: {sorted(_BUILDERS)}")
    return _BUILDERS[name]


def create_model(name: str, input_size: int, num_outputs: int = 2, **kwargs) -> nn.Module:
    builder = get_builder(name)
    try:
        return builder(input_size=input_size, num_outputs=num_outputs, **kwargs)
    except TypeError as exc:
        raise ValueError(f"model builder {name!r}: bad kwargs {sorted(kwargs)}: {exc}") from exc


def fake_probability(logits: torch.Tensor) -> torch.Tensor:
    """P(fake) from (N, 2) softmax logits or (N, 1) sigmoid logits."""
    if logits.shape[1] == 1:
        return torch.sigmoid(logits[:, 0].float())
    return torch.softmax(logits.float(), dim=1)[:, 1]


MODEL_FILE_KEYS = ("state_dict", "builder", "kwargs", "normalize", "input_size", "augment")


def load_trained_model(path, device: torch.device | str = "cpu") -> tuple[nn.Module, dict]:
    """Rebuild a model saved by the train stage; returns (model in eval mode, its metadata).

    The file is read with ``weights_only=True`` (:func:`deepfake_detection.io.load_torch`): a
    file holding anything but tensors and plain data raises ``UnsafeFileError`` naming it.
    """
    from ..io import load_torch

    meta = load_torch(path, "model file")
    missing = [k for k in MODEL_FILE_KEYS if not isinstance(meta, dict) or k not in meta]
    if missing:
        raise ValueError(f"{path}: not a model file written by the train stage (missing {missing}); "
                         f"re-run train")
    kwargs = dict(meta["kwargs"])
    if "pretrained" in kwargs:
        kwargs["pretrained"] = False   # the saved state_dict replaces them: never fetch weights here
    model = create_model(meta["builder"], input_size=meta["input_size"], **kwargs)
    model.load_state_dict(meta["state_dict"])
    return model.to(device).eval(), {k: v for k, v in meta.items() if k != "state_dict"}
