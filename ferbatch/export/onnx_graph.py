"""A checkpoint as an ONNX graph whose metadata says how to use it.

The graph takes the *normalised* model input — float32 ``N×1×S×S`` with ``S`` the checkpoint's
``input_size``, made by :meth:`ferbatch.models.preprocess.Preprocess.to_input` — with a dynamic
batch axis ``N``, and gives two outputs: ``logits`` (N×C) and ``probabilities``
(N×C, ``softmax(logits / T)`` with the checkpoint's calibrated temperature ``T``; temperature
scaling, Guo et al. 2017). The ONNX ``metadata_props`` carry the label order, the preprocessing
(JSON of :class:`~ferbatch.models.preprocess.Preprocess`), the temperature and the source
checkpoint's name and SHA-256, so the file alone is enough to run the model
(:mod:`ferbatch.export.runtime` reads them back).

The export uses PyTorch's TorchScript-based exporter (``dynamo=False``): it needs no extra
package and handles these convolutional nets exactly (checked against PyTorch by
:func:`ferbatch.export.export.export_model`).
"""

from __future__ import annotations

import io
import json
import warnings
from dataclasses import asdict
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from ..errors import ExportError
from ..models.checkpoint import Checkpoint

#: value of the ``ferbatch.format`` metadata key
FORMAT = "ferbatch-onnx/1"
INPUT, LOGITS, PROBS = "input", "logits", "probabilities"
#: ONNX operator set of the export (ONNX Runtime 1.17+ runs it)
OPSET = 17


class CalibratedModel(nn.Module):
    """``x → (logits, softmax(logits / T))``: the graph that is exported."""

    def __init__(self, model: nn.Module, temperature: float) -> None:
        super().__init__()
        self.model = model
        self.temperature = float(temperature)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        logits = self.model(x)
        return logits, F.softmax(logits / self.temperature, dim=1)


def calibrated_model(ckpt: Checkpoint) -> CalibratedModel:
    """The checkpoint's model (fp32, eval mode, CPU) with its temperature applied."""
    return CalibratedModel(ckpt.build().float(), ckpt.temperature).eval()


def export_bytes(ckpt: Checkpoint, opset: int = OPSET) -> bytes:
    """The serialised ONNX model of ``ckpt`` (no metadata yet: :func:`with_metadata`).

    Raises :class:`ExportError` when PyTorch cannot export the architecture."""
    size = ckpt.preprocess.input_size
    model = calibrated_model(ckpt)
    buf = io.BytesIO()
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", DeprecationWarning)  # the legacy exporter, on purpose
            torch.onnx.export(model, (torch.zeros(2, 1, size, size),), buf, input_names=[INPUT],
                              output_names=[LOGITS, PROBS], opset_version=opset,
                              dynamic_axes={INPUT: {0: "batch"}, LOGITS: {0: "batch"},
                                            PROBS: {0: "batch"}},
                              do_constant_folding=True, dynamo=False)
    except Exception as exc:  # noqa: BLE001 - the exporter raises many types
        raise ExportError(f"cannot export architecture {ckpt.arch!r} to ONNX: {exc}") from exc
    return buf.getvalue()


def metadata(ckpt: Checkpoint, name: str, sha256: str, **extra: Any) -> dict[str, str]:
    """The ``metadata_props`` of an export: every value a string (JSON for structures)."""
    meta = {
        "ferbatch.format": FORMAT,
        "labels": json.dumps(list(ckpt.labels)),
        "preprocess": json.dumps(asdict(ckpt.preprocess)),
        "temperature": repr(ckpt.temperature),
        "arch": ckpt.arch,
        "source_model": name,
        "source_sha256": sha256,
        "input": f"{INPUT}: float32 N x 1 x {ckpt.preprocess.input_size} x "
                 f"{ckpt.preprocess.input_size}, grey faces centre-cropped and normalised as "
                 f"(x / 255 - mean) / std (see preprocess)",
        "outputs": f"{LOGITS}: N x C; {PROBS}: N x C, softmax(logits / temperature), C = len(labels)",
    }
    meta.update({key: value if isinstance(value, str) else json.dumps(value)
                 for key, value in extra.items()})
    return meta


def with_metadata(model_bytes: bytes, meta: dict[str, Any], doc: str = "") -> bytes:
    """``model_bytes`` with ``meta`` as its ``metadata_props`` (replacing keys of the same name;
    values that are not strings are written as JSON)."""
    import onnx

    proto = onnx.load_from_string(model_bytes)
    kept = [p for p in proto.metadata_props if p.key not in meta]
    del proto.metadata_props[:]
    proto.metadata_props.extend(kept)
    for key, value in meta.items():
        proto.metadata_props.add(key=key, value=value if isinstance(value, str) else json.dumps(value))
    proto.producer_name = "ferbatch"
    if doc:
        proto.doc_string = doc
    return proto.SerializeToString()
