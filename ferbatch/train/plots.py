"""Training figures: learning curves and confusion matrices as PNG (matplotlib, Agg)."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np


def _pyplot():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def plot_curves(history: Sequence[dict[str, Any]], path: Path) -> Path:
    """Loss and accuracy per epoch, train vs validation. A distilled run (records with
    ``train_label_loss``; a run resumed with or without ``--teacher`` may have some) shows its
    label cross-entropy term, the one comparable with validation and with undistilled runs,
    beside the objective it minimised (CE + KD)."""
    plt = _pyplot()
    epochs = [h["epoch"] for h in history]
    fig, (ax_loss, ax_acc) = plt.subplots(1, 2, figsize=(10, 4))
    if any("train_label_loss" in h for h in history):  # epochs without teachers: a gap
        ax_loss.plot(epochs, [h.get("train_label_loss", np.nan) for h in history],
                     label="train (label CE)")
        ax_loss.plot(epochs, [h["train_loss"] for h in history], linestyle=":",
                     label="train objective (CE + KD)")
    else:
        ax_loss.plot(epochs, [h["train_loss"] for h in history], label="train")
    if "val_loss" in history[0]:
        ax_loss.plot(epochs, [h["val_loss"] for h in history], label="validation")
    ax_loss.set_xlabel("epoch")
    ax_loss.set_ylabel("loss")
    ax_loss.legend()
    ax_acc.plot(epochs, [h["train_acc"] for h in history], label="train (augmented)")
    if "val_acc" in history[0]:
        ax_acc.plot(epochs, [h["val_acc"] for h in history], label="validation")
    ax_acc.set_xlabel("epoch")
    ax_acc.set_ylabel("accuracy")
    ax_acc.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return path


def plot_confusion(cm: np.ndarray, labels: Sequence[str], path: Path, title: str = "") -> Path:
    """Row-normalised confusion matrix with counts, true labels on rows."""
    plt = _pyplot()
    cm = np.asarray(cm)
    rows = cm.sum(axis=1, keepdims=True)
    norm = np.divide(cm, rows, out=np.zeros_like(cm, dtype=float), where=rows > 0)
    fig, ax = plt.subplots(figsize=(1.0 * len(labels) + 2, 1.0 * len(labels) + 1.5))
    ax.imshow(norm, cmap="Blues", vmin=0, vmax=1)
    ax.set_xticks(range(len(labels)), labels, rotation=45, ha="right")
    ax.set_yticks(range(len(labels)), labels)
    ax.set_xlabel("predicted")
    ax.set_ylabel("true")
    for i in range(len(labels)):
        for j in range(len(labels)):
            ax.text(j, i, f"{norm[i, j]:.2f}\n{cm[i, j]}", ha="center", va="center", fontsize=7,
                    color="white" if norm[i, j] > 0.5 else "black")
    if title:
        ax.set_title(title)
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return path


def plot_reliability(calibration: dict[str, Any], path: Path, title: str = "") -> Path:
    """Reliability diagram: accuracy against mean confidence per confidence bin (bars, with the
    diagonal of perfect calibration), sample counts below; ECE / NLL / Brier in the title."""
    plt = _pyplot()
    rel = calibration["reliability"]
    edges = np.asarray(rel["edges"])
    centers = (edges[:-1] + edges[1:]) / 2
    width = edges[1] - edges[0]
    acc = np.nan_to_num(np.asarray(rel["accuracy"], dtype=float))
    conf = np.asarray(rel["confidence"], dtype=float)
    count = np.asarray(rel["count"], dtype=float)
    fig, (ax, ax_n) = plt.subplots(2, 1, figsize=(5, 6), height_ratios=[3, 1], sharex=True)
    ax.bar(centers, acc, width=width * 0.95, color="#4c72b0", label="accuracy")
    gap_bottom = np.where(np.isnan(conf), 0, np.minimum(acc, np.nan_to_num(conf)))
    ax.bar(centers, np.abs(np.nan_to_num(conf) - acc), bottom=gap_bottom, width=width * 0.95,
           color="#dd8452", alpha=0.5, label="gap to confidence")
    ax.plot([0, 1], [0, 1], "k--", linewidth=1, label="perfect calibration")
    ax.set_ylabel("accuracy")
    ax.set_xlim(0, 1)
    ax.set_ylim(0, 1)
    ax.legend(loc="upper left", fontsize=8)
    ax.set_title((f"{title}\n" if title else "") +
                 f"ECE {calibration['ece']:.3f}  NLL {calibration['nll']:.3f}  "
                 f"Brier {calibration['brier']:.3f}  T {calibration.get('temperature', 1.0):.3f}",
                 fontsize=9)
    ax_n.bar(centers, count, width=width * 0.95, color="#8c8c8c")
    ax_n.set_xlabel("confidence (top-class probability)")
    ax_n.set_ylabel("samples")
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return path
