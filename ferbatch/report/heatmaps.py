"""Grad-CAM overlays of the report's "most confident moment" thumbnails.

The model that explains a video's thumbnails is the one that produced its rows: the videos
table's ``model`` column (``<arch>:<file name>:<sha256[:12]>``) is looked up among the bundled
models (:mod:`ferbatch.models.bundled`); a model that is not bundled (a user's checkpoint) or
whose file changed gets no overlays, and the page says why. Each model is loaded once per report.
"""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np

log = logging.getLogger(__name__)

__all__ = ["ReportExplainer"]


class ReportExplainer:
    """Makes :data:`~ferbatch.report.thumbnails.Explainer` callables per model name, loading
    each model once; :meth:`for_model` returns ``(explainer or None, reason when None)``."""

    def __init__(self) -> None:
        self._loaded: dict[str, object] = {}

    @staticmethod
    def checkpoint_of(model: str) -> Path | None:
        """The bundled checkpoint file whose name and SHA-256 prefix match ``model``."""
        from ..models.bundled import WEIGHTS_DIR
        from ..models.checkpoint import file_sha256

        parts = str(model).split(":")
        if len(parts) < 3:
            return None
        path = WEIGHTS_DIR / parts[-2]
        if not path.is_file() or not file_sha256(path).startswith(parts[-1]):
            return None
        return path

    def for_model(self, model: str | None):  # noqa: ANN201 - Explainer | None, str | None
        if not model:
            return None, "no model recorded"
        if model not in self._loaded:
            path = self.checkpoint_of(model)
            if path is None:
                self._loaded[model] = f"model {model} is not a bundled model: no heat maps"
            else:
                from ..saliency import load_explainer

                self._loaded[model] = load_explainer(path)
        clf = self._loaded[model]
        if isinstance(clf, str):
            return None, clf

        def explainer(img: np.ndarray, box: tuple, marks: tuple | None, height: int) -> bytes:
            from ..saliency import explain_face, overlay
            from .thumbnails import crop_face

            ex = explain_face(img, clf, box=np.asarray(box, float),
                              landmarks=None if marks is None else np.asarray(marks, float).reshape(5, 2))
            return crop_face(overlay(img, ex.map), box, height=height)

        return explainer, None
