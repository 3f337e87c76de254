"""Models shipped inside the package, chosen by name: ``--model default`` (or a checkpoint path).

Every ``ferbatch/models/weights/<name>.pt`` is a bundled model called ``<name>``; nothing is
downloaded at run time. :func:`resolve_model` turns what a user typed into a checkpoint path,
:func:`bundled_models` describes each (labels, size, the metrics stored with its weights) for
``ferbatch models``. Importing this module does not import torch.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..errors import ModelError

WEIGHTS_DIR = Path(__file__).parent / "weights"
DEFAULT_MODEL = "default"


def bundled_names() -> list[str]:
    """Names of the bundled models, sorted (``default`` first)."""
    names = sorted(p.stem for p in WEIGHTS_DIR.glob("*.pt"))
    return sorted(names, key=lambda n: (n != DEFAULT_MODEL, n))


def resolve_model(model: str | os.PathLike[str] | None) -> Path:
    """The checkpoint file of ``model``: ``None`` → the default; an existing file → itself; a
    bundled name → its weights. Raises :class:`ModelError` naming the valid names otherwise."""
    if model is None:
        model = DEFAULT_MODEL
    path = Path(model)
    if path.is_file():
        return path
    text = os.fspath(model)
    if text in bundled_names():
        return WEIGHTS_DIR / f"{text}.pt"
    raise ModelError(f"model {text!r} is neither a checkpoint file nor a bundled model; "
                     f"bundled: {', '.join(bundled_names())}")


@dataclass(frozen=True)
class BundledModel:
    """What ``ferbatch models`` shows of one bundled model."""

    name: str
    path: Path
    arch: str
    labels: list[str]
    size_mb: float
    metrics: dict[str, Any]


def bundled_models() -> list[BundledModel]:
    """Every bundled model with its labels, file size and headline metrics: test-split
    accuracy and macro-F1 with the dataset they were measured on, and the calibration record
    (temperature, ECE after fitting)."""
    from .checkpoint import load_checkpoint

    out = []
    for name in bundled_names():
        path = WEIGHTS_DIR / f"{name}.pt"
        ckpt = load_checkpoint(path)
        test = ckpt.metrics.get("test", {})
        metrics: dict[str, Any] = {k: test[k] for k in ("accuracy", "macro_f1") if k in test}
        if test:  # the dataset of that evaluation (recorded by `ferbatch evaluate --record`)
            metrics["dataset"] = test.get("dataset") or ckpt.train_config.get("dataset")
        if ckpt.calibration:
            metrics["temperature"] = ckpt.temperature
            metrics["ece_fitted_split"] = ckpt.calibration.get("after", {}).get("ece")
        out.append(BundledModel(name, path, ckpt.arch, list(ckpt.labels),
                                path.stat().st_size / 1e6, metrics))
    return out
