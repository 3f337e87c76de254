"""``ferbatch export``: a checkpoint → a verified, self-describing ONNX file (fp32 or int8).

Steps: export the calibrated model (:mod:`.onnx_graph`); run it in ONNX Runtime and compare its
probabilities with PyTorch's on the same inputs (max abs difference must be ≤
:data:`FP32_TOLERANCE`); with ``int8``, quantise statically on PublicTest faces
(:mod:`.quantize`) and score fp32 and int8 on PrivateTest; write the file atomically with its
metadata, which for int8 includes the calibration and the measured accuracies.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from ..classify import EmotionClassifier
from ..errors import ConfigError, ExportError
from ..models.bundled import resolve_model
from ..models.checkpoint import Checkpoint, file_sha256, load_checkpoint
from ..output.atomic import atomic_write_bytes
from .onnx_graph import calibrated_model, export_bytes, metadata, with_metadata
from .runtime import OnnxEmotionModel

log = logging.getLogger(__name__)

#: largest accepted |p_onnx − p_torch| of an fp32 export
FP32_TOLERANCE = 1e-4
#: faces checked against PyTorch when no dataset is given (deterministic noise)
NOISE_FACES = 256


@dataclass
class ExportReport:
    """What ``export_model`` wrote and measured. Accuracies are over PrivateTest (fraction)."""

    path: str
    int8: bool
    size_bytes: int
    verified_on: str
    verified_n: int
    max_abs_diff_fp32: float
    calibration_n: int = 0
    test_n: int = 0
    accuracy_fp32: float | None = None
    accuracy_int8: float | None = None
    max_abs_diff_int8: float | None = None
    top1_agreement_int8: float | None = None

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def _faces(data: str, splits: list[str], ckpt: Checkpoint) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """``split → (uint8 faces of image_size px, int targets)`` of FER2013 splits (``val``:
    PublicTest, ``test``: PrivateTest) on the model's labels, the CSV read once."""
    from ..train.datasets.fer2013 import load_fer2013
    from ..train.evaluate import for_model

    every = load_fer2013(data)
    out = {}
    for split in splits:
        faces, _ = for_model(every[split], list(ckpt.labels), ckpt.preprocess.image_size)
        out[split] = faces.images.numpy(), faces.targets.numpy()
    return out


def _torch_probs(ckpt: Checkpoint, x: np.ndarray, batch: int = 256) -> np.ndarray:
    model = calibrated_model(ckpt)
    with torch.inference_mode():
        return np.concatenate([model(torch.from_numpy(x[i:i + batch]))[1].numpy()
                               for i in range(0, len(x), batch)]) if len(x) else np.zeros((0, 0))


def _ort_probs(model: OnnxEmotionModel, x: np.ndarray, batch: int = 256) -> np.ndarray:
    return np.concatenate([model.probabilities(x[i:i + batch]) for i in range(0, len(x), batch)])


def export_model(model: str | os.PathLike[str] | None, out: str | os.PathLike[str], *,
                 int8: bool = False, data: str | os.PathLike[str] | None = None,
                 calibration_n: int = 1000, verify_n: int = 1024,
                 progress: Callable[[str], None] | None = None) -> ExportReport:
    """Export ``model`` (a bundled name or checkpoint; ``None``: the default) to ``out``.

    ``data``: FER2013 CSV (``.csv`` or ``.csv.gz``). Without it the fp32 check runs on
    deterministic noise faces; with it on the first ``verify_n`` PrivateTest faces, and the
    PrivateTest accuracy is measured. ``int8`` needs ``data``: ``calibration_n`` PublicTest
    faces (a fixed random draw) calibrate the activation ranges. ``progress`` is called with
    a short line as each step starts (the CLI prints them; an int8 export takes minutes).

    Raises :class:`ConfigError` (``--int8`` without ``--data``, a bad count),
    :class:`~ferbatch.errors.ModelError` (unreadable checkpoint), :class:`~ferbatch.errors.DataError`
    (unreadable dataset), :class:`ExportError` (export failed, or fp32 differs from PyTorch by
    more than :data:`FP32_TOLERANCE`). Nothing is written unless every check passed.
    """
    if int8 and data is None:
        raise ConfigError("--int8 needs --data: a FER2013 CSV whose PublicTest faces calibrate "
                          "the quantisation")
    if calibration_n < 1 or verify_n < 1:
        raise ConfigError("--calibration-n and the verification count must be >= 1")
    step = progress or (lambda line: None)
    path = resolve_model(model)
    ckpt = load_checkpoint(path)
    sha = file_sha256(path)
    name = EmotionClassifier.model_name(ckpt.arch, path, sha)
    step(f"exporting {name} to ONNX")
    fp32 = export_bytes(ckpt)
    meta = metadata(ckpt, name, sha)
    fp32 = with_metadata(fp32, meta, doc=f"ferbatch emotion model {name}")
    session = OnnxEmotionModel(fp32)

    if data is not None:
        step(f"reading {'PublicTest and ' if int8 else ''}PrivateTest faces from {data}")
        faces = _faces(str(data), ["test", "val"] if int8 else ["test"], ckpt)
        test_faces, test_y = faces["test"]
        test_x = session.to_input(test_faces)
        check_x, verified_on = test_x[:verify_n], f"fer2013 PrivateTest (first {min(verify_n, len(test_x))})"
    else:
        rng = np.random.default_rng(0)
        size = ckpt.preprocess.image_size
        noise = rng.integers(0, 256, (NOISE_FACES, size, size), dtype=np.uint8)
        check_x, verified_on = session.to_input(noise), f"{NOISE_FACES} random noise faces"
    step(f"checking ONNX Runtime against PyTorch on {verified_on}"
         + (f", scoring fp32 on PrivateTest ({len(test_x)} faces)" if data is not None else ""))
    p_torch = _torch_probs(ckpt, check_x)
    # with --data the check faces are PrivateTest's first rows: score all of it once
    p_test = _ort_probs(session, test_x) if data is not None else None
    p_fp32 = p_test[:len(check_x)] if p_test is not None else _ort_probs(session, check_x)
    diff = float(np.abs(p_torch - p_fp32).max())
    log.info("fp32 ONNX vs PyTorch: max |dp| = %.3g on %s", diff, verified_on)
    if not diff <= FP32_TOLERANCE:
        raise ExportError(f"the ONNX export of {name} differs from PyTorch by {diff:.3g} "
                          f"(> {FP32_TOLERANCE:g}) on {verified_on}; nothing written")
    report = ExportReport(path=str(out), int8=int8, size_bytes=0, verified_on=verified_on,
                          verified_n=len(check_x), max_abs_diff_fp32=diff)
    payload = fp32
    if data is not None:
        report.test_n = len(test_y)
        report.accuracy_fp32 = float((p_test.argmax(1) == test_y).mean())
    if int8:
        payload = _int8(faces["val"][0], fp32, meta, test_x, test_y, p_test, calibration_n,
                        report, name, session.to_input, step)
    target = Path(out)
    target.parent.mkdir(parents=True, exist_ok=True)
    atomic_write_bytes(target, payload)
    report.size_bytes = target.stat().st_size
    return report


def _int8(val_faces: np.ndarray, fp32: bytes, meta: dict[str, str], test_x: np.ndarray,
          test_y: np.ndarray, p_test: np.ndarray, calibration_n: int, report: ExportReport,
          name: str, q_input: Callable[[np.ndarray], np.ndarray],
          step: Callable[[str], None]) -> bytes:
    """Quantise (calibrated on a draw of the uint8 PublicTest ``val_faces``), score on
    PrivateTest, fill ``report``; the int8 model's bytes with metadata.
    ``q_input``: uint8 faces → the model's input (the fp32 session's ``to_input``)."""
    from .quantize import quantize_int8

    pick = np.sort(np.random.default_rng(0).permutation(len(val_faces))[:calibration_n])
    calib = q_input(val_faces[pick])
    step(f"quantising to int8, calibrated on {len(calib)} PublicTest faces")
    int8 = quantize_int8(fp32, calib)
    q = OnnxEmotionModel(int8)
    step(f"scoring int8 on PrivateTest ({len(test_x)} faces)")
    p_int8 = _ort_probs(q, test_x)
    report.calibration_n = len(calib)
    report.accuracy_int8 = float((p_int8.argmax(1) == test_y).mean())
    report.max_abs_diff_int8 = float(np.abs(p_int8 - p_test).max())
    report.top1_agreement_int8 = float((p_int8.argmax(1) == p_test.argmax(1)).mean())
    drop = (report.accuracy_fp32 or 0.0) - report.accuracy_int8
    if drop > 0.01:
        log.warning("int8 PrivateTest accuracy %.2f%% is %.2f points below fp32's %.2f%%",
                    100 * report.accuracy_int8, 100 * drop, 100 * (report.accuracy_fp32 or 0))
    quant = {"mode": "static int8 (QDQ, per-channel int8 weights, uint8 activations)",
             "ops": "Conv, Gemm, MatMul", "calibration": "MinMax",
             "calibration_data": f"fer2013 PublicTest, {len(calib)} faces (seed 0)",
             "privatetest_accuracy_fp32": round(report.accuracy_fp32 or 0.0, 5),
             "privatetest_accuracy_int8": round(report.accuracy_int8, 5),
             "privatetest_n": int(len(test_y))}
    return with_metadata(int8, {**meta, "quantization": quant},
                         doc=f"ferbatch emotion model {name}, int8")
