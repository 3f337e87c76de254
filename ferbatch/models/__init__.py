"""Emotion model zoo: a registry of architectures and the checkpoint format."""

from . import archs as _archs  # noqa: F401  (registers the architectures)
from .registry import create_model, list_models, register_model

__all__ = ["create_model", "list_models", "register_model"]
