"""int8 static quantisation of an exported model with ``onnxruntime.quantization``.

Weights become int8 per output channel, activations uint8 with ranges calibrated (min/max) on
real faces passed through the model — FER2013 PublicTest, the split the temperature was fitted
on, never the PrivateTest split the result is scored on. The format is QDQ (QuantizeLinear /
DequantizeLinear pairs around Conv, Gemm and MatMul), which ONNX Runtime fuses into integer
kernels; the softmax stays in float.
"""

from __future__ import annotations

import logging
import tempfile
from collections.abc import Iterator
from pathlib import Path

import numpy as np

from ..errors import ExportError
from .onnx_graph import INPUT

log = logging.getLogger(__name__)

#: the operators whose inputs are quantised
QUANTIZED_OPS = ["Conv", "Gemm", "MatMul"]


def _reader(inputs: np.ndarray, batch: int):  # noqa: ANN202 - ORT's base class is imported late
    from onnxruntime.quantization import CalibrationDataReader

    class FaceReader(CalibrationDataReader):
        """Feeds the calibration faces in batches of ``batch``."""

        def __init__(self) -> None:
            self._batches: Iterator[np.ndarray] = (inputs[i:i + batch]
                                                   for i in range(0, len(inputs), batch))

        def get_next(self) -> dict[str, np.ndarray] | None:
            nxt = next(self._batches, None)
            return None if nxt is None else {INPUT: np.ascontiguousarray(nxt, np.float32)}

    return FaceReader()


def quantize_int8(fp32: bytes, calibration: np.ndarray, batch: int = 64) -> bytes:
    """The int8 (QDQ, per-channel) version of the serialised fp32 model ``fp32``.

    ``calibration``: normalised float32 N×1×S×S model inputs of real faces. Metadata is not kept
    by the quantiser: the caller writes it again. Raises :class:`ExportError` on failure.
    """
    from onnxruntime.quantization import CalibrationMethod, QuantFormat, QuantType, quantize_static
    from onnxruntime.quantization.shape_inference import quant_pre_process

    if len(calibration) == 0:
        raise ExportError("int8 quantisation needs calibration faces, got none")
    with tempfile.TemporaryDirectory(prefix="ferbatch-quant-") as tmp:
        src, pre, out = Path(tmp, "fp32.onnx"), Path(tmp, "pre.onnx"), Path(tmp, "int8.onnx")
        src.write_bytes(fp32)
        try:
            quant_pre_process(str(src), str(pre), skip_symbolic_shape=True)
            quantize_static(str(pre), str(out), _reader(calibration, batch),
                            quant_format=QuantFormat.QDQ, per_channel=True,
                            activation_type=QuantType.QUInt8, weight_type=QuantType.QInt8,
                            op_types_to_quantize=QUANTIZED_OPS,
                            calibrate_method=CalibrationMethod.MinMax)
        except Exception as exc:  # noqa: BLE001 - onnxruntime.quantization raises many types
            raise ExportError(f"int8 quantisation failed: {type(exc).__name__}: {exc}") from exc
        log.info("int8: calibrated on %d faces", len(calibration))
        return out.read_bytes()
