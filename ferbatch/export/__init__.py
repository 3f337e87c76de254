"""Export of emotion models to ONNX (fp32 and static int8) and ONNX Runtime inference.

* :mod:`.onnx_graph` — the PyTorch → ONNX export with self-describing metadata;
* :mod:`.runtime` — :class:`OnnxEmotionModel`, an ONNX Runtime session that reads that metadata;
* :mod:`.quantize` — int8 static quantisation calibrated on FER2013 PublicTest faces;
* :mod:`.export` — ``ferbatch export``'s whole job: export, verify against PyTorch, quantise,
  score on PrivateTest, write atomically.

onnx / onnxruntime are an optional extra (``pip install ferbatch[export]``): importing this
package does not import them.
"""

from __future__ import annotations

__all__ = ["export_model", "ExportReport", "OnnxEmotionModel"]


def __getattr__(name: str):  # lazy: onnx / onnxruntime load only when used
    if name in ("export_model", "ExportReport"):
        from . import export

        return getattr(export, name)
    if name == "OnnxEmotionModel":
        from .runtime import OnnxEmotionModel

        return OnnxEmotionModel
    raise AttributeError(name)
