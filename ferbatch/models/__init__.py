"""Emotion model zoo: a registry of architectures, the preprocessing and the checkpoint format.

Importing the package is cheap (no torch): the architectures register on the first registry
look-up, the checkpoint format lives in :mod:`.checkpoint`, the preprocessing in
:mod:`.preprocess`.
"""

from .registry import create_model, is_model, list_models, model_entrypoint, register_model

__all__ = ["create_model", "is_model", "list_models", "model_entrypoint", "register_model"]
