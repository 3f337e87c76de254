"""Model registry: ``@register_model`` adds a builder by name, ``create_model`` builds one.

Every builder takes ``num_classes`` and ``input_size`` (square, 1-channel grey input) plus its
own keyword options, so the trainer and the pipeline build any model the same way.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from torch import nn

from ..errors import ModelError

ModelBuilder = Callable[..., nn.Module]

_REGISTRY: dict[str, ModelBuilder] = {}


def register_model(fn: ModelBuilder) -> ModelBuilder:
    """Decorator: make ``fn`` buildable as ``create_model(fn.__name__, ...)``."""
    name = fn.__name__
    if name in _REGISTRY:
        raise ValueError(f"model {name!r} is registered twice")
    _REGISTRY[name] = fn
    return fn


def list_models() -> list[str]:
    """Names of every registered architecture, sorted."""
    return sorted(_REGISTRY)


def create_model(name: str, *, num_classes: int, input_size: int = 48, **kwargs: Any) -> nn.Module:
    """Build the registered architecture ``name``; an unknown name lists the valid ones."""
    try:
        builder = _REGISTRY[name]
    except KeyError:
        raise ModelError(
            f"unknown model {name!r}; available: {', '.join(list_models())}"
        ) from None
    try:
        return builder(num_classes=num_classes, input_size=input_size, **kwargs)
    except TypeError as exc:
        raise ModelError(f"bad options for model {name!r}: {exc}") from exc
