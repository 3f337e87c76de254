"""Emotion classification stage: batched PyTorch inference on face crops.

Loads a checkpoint once (``None`` = the bundled default); its label set and preprocessing
travel with it, and the centre crop and normalisation are :mod:`ferbatch.models.preprocess`'s,
the functions the trainer runs, so inference cannot drift from training. Batches are padded to a few bucketed sizes
(:mod:`ferbatch.batching`) so the CPU backend's per-shape kernel cache stays small.

For inference, each BatchNorm that follows a convolution is folded into it
(:func:`fold_batch_norm`): the same function of the input, one pass over memory fewer per layer.

Backends: ``torch`` (PyTorch, any device) or ``onnxruntime`` (CPU only: the checkpoint is
exported to ONNX in memory once at load, :mod:`ferbatch.export`, and run by ONNX Runtime; its
probabilities match PyTorch's within 1e-4).
"""

from __future__ import annotations

import copy
import logging
import os
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from .batching import pad_rows
from .config import BACKENDS
from .devices import inference_autocast, resolve_device, upload
from .errors import ConfigError
from .models.bundled import resolve_model
from .models.checkpoint import Checkpoint, file_sha256, load_checkpoint
from .models.preprocess import center_crop, normalize

_BUCKET = 32
log = logging.getLogger(__name__)


def fold_batch_norm(model: nn.Module) -> nn.Module:
    """An inference copy of ``model`` (in eval mode) with every BatchNorm that directly follows
    a convolution folded into that convolution's weights and bias, computing the same function
    (float rounding aside: logits within 1e-5 of the original's for the bundled models) with
    one pass over the activations fewer per folded layer: +4 to +27 % faces/s (mostly +4 to
    +12 %) for the bundled ``vgg_gap`` on a 2-core CPU (``bench/bench_models.py``, its ``unfolded`` column).

    The folding is PyTorch's own (``torch.fx.experimental.optimization.fuse``, the method of
    PyTorch's "Conv/BN fusion" tutorial): it traces the model with ``torch.fx``. A model that
    cannot be traced is returned unchanged (logged at DEBUG); ``model`` itself is never
    modified, so Grad-CAM (:mod:`ferbatch.saliency`) and export keep the network as trained.
    """
    from torch.fx.experimental.optimization import fuse

    try:
        return fuse(copy.deepcopy(model).eval())
    except Exception as exc:  # noqa: BLE001 - fx cannot trace every model: run it unfolded
        log.debug("%s: BatchNorm not folded (%s: %s)", type(model).__name__, type(exc).__name__, exc)
        return model


class EmotionClassifier:
    """Callable stage: uint8 N×S×S grey face crops → float32 N×C class probabilities.

    The probabilities are ``softmax(logits / T)`` with the checkpoint's calibrated temperature
    ``T`` (temperature scaling, Guo et al. 2017; ``T = 1`` for an uncalibrated checkpoint),
    so the ``p_<label>`` columns can be read as probabilities; the top label is unchanged.
    """

    def __init__(self, checkpoint: str | os.PathLike[str] | None = None, device: str = "auto",
                 batch_size: int = 256, tta_flip: bool = False, backend: str = "torch") -> None:
        path = resolve_model(checkpoint)
        self.checkpoint: Checkpoint = load_checkpoint(path)
        self.path = path
        self.sha256 = file_sha256(path)
        self.device = resolve_device(device)
        self.batch_size = batch_size
        self.tta_flip = tta_flip
        self.labels: list[str] = list(self.checkpoint.labels)
        self.preprocess = self.checkpoint.preprocess
        #: softmax temperature stored with the weights (1.0: the checkpoint is uncalibrated)
        self.temperature = self.checkpoint.temperature
        #: the network as trained (Grad-CAM and export use it)
        self.model = self.checkpoint.build().to(self.device)
        #: what :meth:`__call__` runs: ``model`` with BatchNorm folded (:func:`fold_batch_norm`)
        self.inference_model = fold_batch_norm(self.model)
        if self.device.type == "cpu":
            self.model = self.model.to(memory_format=torch.channels_last)
            self.inference_model = self.inference_model.to(memory_format=torch.channels_last)
        self.name = self.model_name(self.checkpoint.arch, path, self.sha256)
        self.backend = backend
        self._onnx = None
        if backend == "onnxruntime":
            self._onnx = self._onnx_session()
        elif backend != "torch":
            raise ConfigError(f"--backend: unknown backend {backend!r}; choose {', '.join(BACKENDS)}")

    def _onnx_session(self):  # noqa: ANN202 - OnnxEmotionModel, imported late (optional extra)
        if self.device.type != "cpu":
            raise ConfigError(f"--backend onnxruntime runs on the CPU only, not on {self.device}")
        try:
            import onnx  # noqa: F401 - with_metadata needs it
            import onnxruntime  # noqa: F401
        except ImportError as exc:
            raise ConfigError("--backend onnxruntime needs onnx and onnxruntime: "
                              "pip install 'ferbatch[export]'") from exc
        from .export.onnx_graph import export_bytes, metadata, with_metadata
        from .export.runtime import OnnxEmotionModel

        blob = with_metadata(export_bytes(self.checkpoint),
                             metadata(self.checkpoint, self.name, self.sha256))
        return OnnxEmotionModel(blob, threads=torch.get_num_threads())

    @staticmethod
    def model_name(arch: str, path: Path, sha256: str) -> str:
        """The ``model`` column: ``<arch>:<file name>:<sha256[:12]>``."""
        return f"{arch}:{path.name}:{sha256[:12]}"

    def top_labels(self, probs: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """The top label (object array of str) and its probability (float32) per row of an
        N×C array of this model's probabilities."""
        if not len(probs):
            return np.zeros(0, dtype=object), np.zeros(0, np.float32)
        top = probs.argmax(1)
        return (np.asarray(self.labels, dtype=object)[top],
                probs[np.arange(len(probs)), top].astype(np.float32))

    @torch.inference_mode()
    def __call__(self, faces: np.ndarray) -> np.ndarray:
        n = len(faces)
        if n == 0:
            return np.zeros((0, len(self.labels)), dtype=np.float32)
        pre = self.preprocess
        out = np.empty((n, len(self.labels)), dtype=np.float32)
        for start in range(0, n, self.batch_size):
            batch = torch.from_numpy(np.ascontiguousarray(faces[start:start + self.batch_size]))
            rows = len(batch)
            batch = pad_rows(batch, _BUCKET)
            x = normalize(center_crop(upload(batch, self.device), pre.input_size), pre.mean, pre.std)
            if self._onnx is not None:
                out[start:start + rows] = self._onnx_probs(x[:rows].numpy())
                continue
            if self.device.type == "cpu":
                x = x.contiguous(memory_format=torch.channels_last)
            t = self.temperature
            with inference_autocast(self.device):
                probs = F.softmax(self.inference_model(x).float() / t, dim=1)
                if self.tta_flip:
                    probs = (probs + F.softmax(self.inference_model(x.flip(-1)).float() / t,
                                               dim=1)) / 2
            out[start:start + rows] = probs[:rows].cpu().numpy()
        return out

    def _onnx_probs(self, x: np.ndarray) -> np.ndarray:
        probs = self._onnx.probabilities(x)
        if self.tta_flip:
            probs = (probs + self._onnx.probabilities(np.ascontiguousarray(x[..., ::-1]))) / 2
        return probs
