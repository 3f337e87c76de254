"""Running an exported emotion model with ONNX Runtime, configured by its own metadata.

:class:`OnnxEmotionModel` opens an ONNX file (or bytes) written by ``ferbatch export`` and reads
the labels, preprocessing and temperature from its metadata (:mod:`.onnx_graph`); called with
uint8 grey face crops it gives the same probabilities as
:class:`ferbatch.classify.EmotionClassifier` (the preprocessing is the same function).
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from ..errors import ExportError, ModelError
from ..models.preprocess import Preprocess
from .onnx_graph import FORMAT, INPUT, PROBS


@dataclass(frozen=True)
class OnnxModelInfo:
    """What an exported model's metadata says."""

    labels: list[str]
    preprocess: Preprocess
    temperature: float
    source_model: str
    source_sha256: str
    quantization: dict[str, Any] = field(default_factory=dict)

    @classmethod
    def from_metadata(cls, meta: dict[str, str], where: str) -> OnnxModelInfo:
        """Parse ``metadata_props``; :class:`ModelError` naming ``where`` when they are not a
        ferbatch export's."""
        if meta.get("ferbatch.format") != FORMAT:
            raise ModelError(f"{where}: not an ONNX model exported by ferbatch "
                             f"(metadata ferbatch.format {meta.get('ferbatch.format')!r}, "
                             f"{FORMAT!r} expected)")
        try:
            return cls(labels=list(json.loads(meta["labels"])),
                       preprocess=Preprocess(**json.loads(meta["preprocess"])),
                       temperature=float(meta["temperature"]),
                       source_model=meta.get("source_model", ""),
                       source_sha256=meta.get("source_sha256", ""),
                       quantization=json.loads(meta.get("quantization", "{}")))
        except (KeyError, TypeError, ValueError) as exc:
            raise ModelError(f"{where}: bad ferbatch metadata: {exc}") from exc


def session_options(threads: int | None = None) -> Any:
    """ONNX Runtime session options: ``threads`` intra-op threads (``None``: ORT's choice,
    one per core), one inter-op thread, all graph optimisations."""
    import onnxruntime as ort

    opts = ort.SessionOptions()
    opts.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    opts.inter_op_num_threads = 1
    if threads:
        opts.intra_op_num_threads = threads
    opts.log_severity_level = 3  # errors only: ORT's warnings go to stderr, not to logging
    return opts


class OnnxEmotionModel:
    """An exported emotion model in an ONNX Runtime CPU session.

    ``source``: a ``.onnx`` path or the model's bytes. ``threads``: intra-op threads (``None``:
    ONNX Runtime's default). Raises :class:`ModelError` for a file that is missing, not ONNX or
    not a ferbatch export; :class:`ExportError` when onnxruntime is not installed.
    """

    def __init__(self, source: str | os.PathLike[str] | bytes, threads: int | None = None) -> None:
        try:
            import onnxruntime as ort
        except ImportError as exc:
            raise ExportError("onnxruntime is not installed: pip install 'ferbatch[export]'") from exc
        where = "<in-memory ONNX model>" if isinstance(source, bytes) else os.fspath(source)
        try:
            self.session = ort.InferenceSession(
                source if isinstance(source, bytes) else os.fspath(source),
                session_options(threads), providers=["CPUExecutionProvider"])
        except Exception as exc:  # noqa: BLE001 - ORT raises its own Fail/InvalidGraph types
            raise ModelError(f"cannot load ONNX model {where}: {exc}") from exc
        meta = self.session.get_modelmeta().custom_metadata_map
        self.info = OnnxModelInfo.from_metadata(meta, where)
        self.labels = self.info.labels
        self.preprocess = self.info.preprocess

    def probabilities(self, x: np.ndarray) -> np.ndarray:
        """Normalised float32 N×1×S×S model input → float32 N×C calibrated probabilities."""
        if len(x) == 0:
            return np.zeros((0, len(self.labels)), np.float32)
        return self.session.run([PROBS], {INPUT: np.ascontiguousarray(x, np.float32)})[0]

    def to_input(self, faces: np.ndarray) -> np.ndarray:
        """uint8 N×S×S grey face crops (S = ``preprocess.image_size``, aligned as
        :func:`ferbatch.crop.crop_faces` makes them; one S×S crop is a batch of one) → the
        model's float32 N×1×s×s input. Raises ``ValueError`` for another dtype or size (a
        different size or float input would be classified, wrongly, without complaint)."""
        import torch

        faces = np.asarray(faces)
        size = self.preprocess.image_size
        if faces.ndim == 2:
            faces = faces[None]
        if faces.dtype != np.uint8 or faces.ndim != 3 or faces.shape[1:] != (size, size):
            raise ValueError(f"face crops must be uint8 N×{size}×{size} (grey, aligned as "
                             f"ferbatch.crop.crop_faces makes them), got {faces.dtype} "
                             f"{'×'.join(map(str, faces.shape))}")
        faces = np.require(faces, requirements=["C_CONTIGUOUS", "WRITEABLE"])
        return self.preprocess.to_input(torch.from_numpy(faces)).numpy()

    def __call__(self, faces: np.ndarray) -> np.ndarray:
        """uint8 N×S×S face crops → float32 N×C probabilities (label order: :attr:`labels`);
        see :meth:`to_input`."""
        return self.probabilities(self.to_input(faces))
