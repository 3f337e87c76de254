"""The checkpoint format: weights plus everything needed to use them.

A checkpoint is a plain dict that ``torch.load(weights_only=True)`` can read (tensors, str,
int, float, lists, dicts). Besides the weights it carries the architecture name and options,
the label set, the preprocessing (:class:`~ferbatch.models.preprocess.Preprocess`: input size,
normalisation, how faces are cropped — the very object the trainer used), the training config,
the data hash, metrics and code version, so inference cannot drift from training and the
pipeline needs nothing else.
"""

from __future__ import annotations

import hashlib
import os
import re
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import torch
from torch import nn

from ..errors import ModelError
from ..output.atomic import atomic_write
from .preprocess import Preprocess
from .registry import create_model
from .validate import check_checkpoint

__all__ = ["FORMAT", "DEFAULT_WEIGHTS", "Checkpoint", "Preprocess", "save_checkpoint",
           "load_checkpoint", "checkpoint_from_dict", "file_sha256", "safe_torch_load"]

FORMAT = "ferbatch-checkpoint/1"
DEFAULT_WEIGHTS = Path(__file__).parent / "weights" / "default.pt"


@dataclass
class Checkpoint:
    """A loaded (or to-be-saved) emotion model and its metadata."""

    arch: str
    arch_kwargs: dict[str, Any]
    labels: list[str]
    preprocess: Preprocess
    state_dict: dict[str, torch.Tensor]
    train_config: dict[str, Any] = field(default_factory=dict)
    data_hash: str = ""
    metrics: dict[str, Any] = field(default_factory=dict)
    code_version: str = ""
    extra: dict[str, Any] = field(default_factory=dict)
    #: probability calibration fitted after training, e.g. ``{"method": "temperature",
    #: "temperature": 0.87, "fitted_on": "PublicTest", ...}`` (:mod:`ferbatch.train.calibration`)
    calibration: dict[str, Any] = field(default_factory=dict)

    @property
    def temperature(self) -> float:
        """The softmax temperature to apply to the logits (1.0: uncalibrated)."""
        return float(self.calibration.get("temperature", 1.0))

    def weights_sha256(self) -> str:
        """SHA-256 of the weights alone (each tensor's name, dtype, shape and bytes, in name
        order): it names the network evaluated whatever file it sits in and survives what
        rewriting metadata changes (recorded metrics, calibration, crop geometry)."""
        digest = hashlib.sha256()
        for name in sorted(self.state_dict):
            tensor = self.state_dict[name].detach().cpu().contiguous()
            digest.update(f"{name}\0{tensor.dtype}\0{tuple(tensor.shape)}\0".encode())
            digest.update(tensor.reshape(-1).view(torch.uint8).numpy().tobytes())
        return digest.hexdigest()

    def build(self) -> nn.Module:
        """The model with its weights loaded, in eval mode, on the CPU."""
        model = create_model(self.arch, num_classes=len(self.labels),
                             input_size=self.preprocess.input_size, **self.arch_kwargs)
        try:
            model.load_state_dict(self.state_dict)
        except RuntimeError as exc:
            raise ModelError(self._head_mismatch(model) or
                             f"weights do not fit architecture {self.arch!r}: {exc}") from exc
        return model.eval()

    def _head_mismatch(self, model: nn.Module) -> str | None:
        """Why the weights do not load when it is the label count: the last linear layer (the
        classifier) of the stored weights has another number of outputs than ``labels``."""
        heads = [name for name, m in model.named_modules() if isinstance(m, nn.Linear)]
        stored = self.state_dict.get(f"{heads[-1]}.weight") if heads else None
        if stored is None or stored.ndim != 2 or stored.shape[0] == len(self.labels):
            return None
        return (f"the checkpoint lists {len(self.labels)} labels ({', '.join(self.labels)}) but "
                f"its classifier ({heads[-1]}) outputs {stored.shape[0]} classes: labels and "
                "weights do not belong together")

    def to_dict(self) -> dict[str, Any]:
        return {
            "format": FORMAT,
            "arch": self.arch,
            "arch_kwargs": self.arch_kwargs,
            "labels": list(self.labels),
            "preprocess": asdict(self.preprocess),
            "state_dict": self.state_dict,
            "train_config": self.train_config,
            "data_hash": self.data_hash,
            "metrics": self.metrics,
            "code_version": self.code_version,
            "extra": self.extra,
            "calibration": self.calibration,
        }


def save_checkpoint(ckpt: Checkpoint, path: str | os.PathLike[str]) -> Path:
    """Write ``ckpt`` to ``path`` atomically (:func:`ferbatch.output.atomic.atomic_write`),
    creating the folder; returns the path."""
    target = Path(path)
    data = ckpt.to_dict()
    check_checkpoint(data, target)  # never write a checkpoint that loading would refuse
    target.parent.mkdir(parents=True, exist_ok=True)
    atomic_write(target, lambda tmp: torch.save(data, tmp))
    return target


def _foreign_kind(head: bytes) -> str | None:
    """What a file starting with ``head`` is, when it is clearly not a PyTorch file (those are
    zip archives, or pickles in the legacy format); ``None`` when it may be one."""
    if head.startswith((b"PK\x03\x04", b"\x80")):
        return None
    text = head.lstrip(b"\xef\xbb\xbf \t\r\n")
    if text[:1] in (b"{", b"["):
        return "a JSON file?"
    if head.startswith(b"\x89PNG") or head.startswith(b"\xff\xd8\xff"):
        return "an image"
    if text[:1] == b"<":
        return "an HTML or XML file?"
    if all(32 <= c < 127 or c in (9, 10, 13) for c in head):
        return "a text file"
    return f"unknown format, starts with {head[:8].hex(' ')}"


def _load_reason(exc: BaseException) -> str:
    """Why ``torch.load(weights_only=True)`` failed, in a user's words: never PyTorch's advice
    to load with ``weights_only=False`` (ferbatch does not run code from model files)."""
    text = str(exc)
    refused = re.search(r"Unsupported global: GLOBAL ([\w.]+)", text)
    if refused:
        return (f"it holds Python objects a safe load refuses ({refused.group(1)}); a ferbatch "
                "checkpoint holds only tensors, numbers, text, lists and dicts")
    if "weights_only" in text or "WeightsUnpickler" in text:
        return "not a PyTorch checkpoint a safe load can read (not a ferbatch checkpoint?)"
    if "zip archive" in text or isinstance(exc, EOFError):
        return "truncated or corrupt (cut short while copying?)"
    first = text.strip().splitlines()[0] if text.strip() else type(exc).__name__
    return first[:200]


def safe_torch_load(path: str | os.PathLike[str], what: str = "model checkpoint") -> Any:
    """``torch.load(path, weights_only=True)`` on the CPU; any failure is a :class:`ModelError`
    naming the file and the reason (``empty file``, ``not a PyTorch checkpoint (a JSON file?)``,
    ``truncated or corrupt``…)."""
    file = Path(path)
    prefix = f"cannot read {what} {file}"
    try:
        size = file.stat().st_size
        with open(file, "rb") as fh:
            head = fh.read(16)
    except OSError as exc:
        raise ModelError(f"{prefix}: {exc.strerror or exc}") from exc
    if size == 0:
        raise ModelError(f"{prefix}: empty file (0 bytes)")
    kind = _foreign_kind(head)
    if kind is not None:
        raise ModelError(f"{prefix}: not a PyTorch checkpoint ({kind})")
    try:
        return torch.load(file, map_location="cpu", weights_only=True)
    except Exception as exc:  # noqa: BLE001 - corrupt or foreign file
        raise ModelError(f"{prefix}: {_load_reason(exc)}") from exc


def load_checkpoint(path: str | os.PathLike[str] | None = None) -> Checkpoint:
    """Read a checkpoint safely (``weights_only=True``): a file, or a bundled model's name
    (:func:`~ferbatch.models.bundled.resolve_model`; ``None``: the bundled default). Raises
    :class:`ModelError` for a missing, empty, unreadable or foreign file or an unknown name,
    with the reason (:func:`safe_torch_load`), and for a field no run could use (duplicate
    labels, a 20000 px face size…), naming the field (:mod:`ferbatch.models.validate`)."""
    from .bundled import resolve_model

    file = resolve_model(path)
    return checkpoint_from_dict(safe_torch_load(file), file)


def checkpoint_from_dict(data: Any, file: str | os.PathLike[str]) -> Checkpoint:
    """The :class:`Checkpoint` of ``data`` as ``torch.load`` read it from ``file`` (named in
    errors), its fields checked. Raises :class:`ModelError` like :func:`load_checkpoint`."""
    if not isinstance(data, dict) or data.get("format") != FORMAT:
        raise ModelError(f"{file} is not a ferbatch checkpoint (format {FORMAT!r} expected)")
    check_checkpoint(data, file)
    try:
        return Checkpoint(
            arch=data["arch"],
            arch_kwargs=dict(data.get("arch_kwargs", {})),
            labels=list(data["labels"]),
            preprocess=Preprocess(**data["preprocess"]),
            state_dict=data["state_dict"],
            train_config=dict(data.get("train_config", {})),
            data_hash=data.get("data_hash", ""),
            metrics=dict(data.get("metrics", {})),
            code_version=data.get("code_version", ""),
            extra=dict(data.get("extra", {})),
            calibration=dict(data.get("calibration", {})),
        )
    except (KeyError, TypeError) as exc:
        raise ModelError(f"{file} is missing checkpoint field {exc}") from exc


def file_sha256(path: str | os.PathLike[str]) -> str:
    """SHA-256 of a file, for provenance columns and skip decisions."""
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()
