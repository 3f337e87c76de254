"""Model registry: ``@register_model`` adds a builder by name, ``create_model`` builds one.

Every builder takes ``num_classes`` and ``input_size`` (square, 1-channel grey input) plus its
own keyword options, so the trainer and the pipeline build any model the same way. The public
look-ups follow timm: :func:`list_models`, :func:`is_model`, :func:`model_entrypoint` (the
builder itself, e.g. to inspect its options) and :func:`create_model`.

The built-in architectures (:mod:`.archs`, which imports torch) are registered on the first
look-up, so importing this module stays cheap.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from ..errors import ModelError

if TYPE_CHECKING:
    from torch import nn

ModelBuilder = Callable[..., "nn.Module"]

_REGISTRY: dict[str, ModelBuilder] = {}
_BUILTIN_LOADED = False


def _load_builtin() -> None:
    """Import :mod:`.archs` once (its decorators fill the registry)."""
    global _BUILTIN_LOADED
    if not _BUILTIN_LOADED:
        importlib.import_module(f"{__package__}.archs")
        _BUILTIN_LOADED = True


def register_model(fn: ModelBuilder) -> ModelBuilder:
    """Decorator: make ``fn`` buildable as ``create_model(fn.__name__, ...)``.

    Raises :class:`ValueError` when the name is already taken (a programming error).
    """
    name = fn.__name__
    if name in _REGISTRY:
        raise ValueError(f"model {name!r} is registered twice")
    _REGISTRY[name] = fn
    return fn


def list_models() -> list[str]:
    """Names of every registered architecture, sorted."""
    _load_builtin()
    return sorted(_REGISTRY)


def is_model(name: str) -> bool:
    """Whether ``name`` is a registered architecture."""
    _load_builtin()
    return name in _REGISTRY


def model_entrypoint(name: str) -> ModelBuilder:
    """The builder registered as ``name``; an unknown name is a :class:`ModelError` that lists
    the valid ones."""
    _load_builtin()
    try:
        return _REGISTRY[name]
    except KeyError:
        raise ModelError(f"unknown model {name!r}; available: {', '.join(list_models())}") from None


def create_model(name: str, *, num_classes: int, input_size: int = 48, **kwargs: Any) -> nn.Module:
    """Build the registered architecture ``name`` for ``num_classes`` outputs and
    ``input_size``² grey input.

    Raises :class:`ModelError` for an unknown name (listing the valid ones) or options the
    builder does not take.
    """
    builder = model_entrypoint(name)
    try:
        return builder(num_classes=num_classes, input_size=input_size, **kwargs)
    except TypeError as exc:
        raise ModelError(f"bad options for model {name!r}: {exc}") from exc
