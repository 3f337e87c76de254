"""Classification metrics from a confusion matrix: accuracy, per-class precision / recall / F1
and support, macro-F1. Plain numpy so they are easy to check against scikit-learn."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np


def confusion_matrix(y_true: Sequence[int] | np.ndarray, y_pred: Sequence[int] | np.ndarray,
                     num_classes: int) -> np.ndarray:
    """``cm[i, j]`` = number of samples of true class ``i`` predicted as ``j``."""
    t = np.asarray(y_true, dtype=np.int64)
    p = np.asarray(y_pred, dtype=np.int64)
    if t.shape != p.shape:
        raise ValueError(f"y_true and y_pred differ in shape: {t.shape} vs {p.shape}")
    return np.bincount(t * num_classes + p, minlength=num_classes * num_classes).reshape(
        num_classes, num_classes)


def _safe_div(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    return np.divide(a, b, out=np.zeros_like(a, dtype=np.float64), where=b > 0)


def classification_report(cm: np.ndarray, labels: Sequence[str]) -> dict[str, Any]:
    """Metrics of a confusion matrix, as a JSON-ready dict.

    Keys: ``accuracy``, ``macro_f1``, ``macro_precision``, ``macro_recall``, ``weighted_f1``,
    ``per_class`` (label → precision/recall/f1/support), ``confusion_matrix``, ``labels``, ``n``.
    Macro averages run over classes with support > 0 or predictions (scikit-learn's convention
    counts every label; classes absent from both sides contribute 0 there, and are skipped here).
    """
    cm = np.asarray(cm, dtype=np.int64)
    tp = np.diag(cm).astype(np.float64)
    support = cm.sum(axis=1).astype(np.float64)
    predicted = cm.sum(axis=0).astype(np.float64)
    precision = _safe_div(tp, predicted)
    recall = _safe_div(tp, support)
    f1 = _safe_div(2 * precision * recall, precision + recall)
    present = (support > 0) | (predicted > 0)
    n = int(cm.sum())
    return {
        "accuracy": float(tp.sum() / n) if n else 0.0,
        "macro_f1": float(f1[present].mean()) if present.any() else 0.0,
        "macro_precision": float(precision[present].mean()) if present.any() else 0.0,
        "macro_recall": float(recall[present].mean()) if present.any() else 0.0,
        "weighted_f1": float((f1 * support).sum() / support.sum()) if support.sum() else 0.0,
        "per_class": {
            label: {"precision": float(precision[i]), "recall": float(recall[i]),
                    "f1": float(f1[i]), "support": int(support[i])}
            for i, label in enumerate(labels)
        },
        "confusion_matrix": cm.tolist(),
        "labels": list(labels),
        "n": n,
    }
