"""Probability calibration: how far to trust ``p_<label>``, and temperature scaling to fix it.

* :func:`calibration_metrics` — expected calibration error (ECE, equal-width confidence bins,
  15 by default, as in Guo et al. 2017, "On Calibration of Modern Neural Networks"), negative
  log-likelihood (NLL) and the multi-class Brier score (Brier 1950: mean over samples of the
  squared distance between the probability vector and the one-hot truth);
* :func:`reliability_bins` — per-bin confidence and accuracy for a reliability diagram;
* :func:`fit_temperature` — the single temperature ``T`` that minimises the NLL of
  ``softmax(logits / T)`` on held-out data (Guo et al. 2017). Dividing logits by one positive
  number never changes the argmax, so accuracy and every label stay as they were.

The temperature is fitted on the validation split (FER2013 PublicTest) and stored in the
checkpoint (``Checkpoint.calibration``); :class:`~ferbatch.classify.EmotionClassifier` and the
trainer's evaluation apply it.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F

DEFAULT_BINS = 15


def reliability_bins(probs: np.ndarray, targets: np.ndarray,
                     bins: int = DEFAULT_BINS) -> dict[str, list[float]]:
    """Equal-width bins of top-class confidence over (0, 1]: per bin the sample count, mean
    confidence and accuracy (``nan`` where empty). ``probs``: N×C, ``targets``: N class indices."""
    probs = np.asarray(probs, dtype=np.float64)
    targets = np.asarray(targets, dtype=np.int64)
    conf = probs.max(1) if len(probs) else np.zeros(0)
    correct = (probs.argmax(1) == targets) if len(probs) else np.zeros(0, bool)
    edges = np.linspace(0.0, 1.0, bins + 1)
    which = np.clip(np.searchsorted(edges, conf, side="left") - 1, 0, bins - 1)
    count = np.bincount(which, minlength=bins).astype(np.float64)
    conf_sum = np.bincount(which, weights=conf, minlength=bins)
    acc_sum = np.bincount(which, weights=correct.astype(np.float64), minlength=bins)
    with np.errstate(invalid="ignore", divide="ignore"):
        mean_conf = np.where(count > 0, conf_sum / count, np.nan)
        accuracy = np.where(count > 0, acc_sum / count, np.nan)
    return {"edges": edges.tolist(), "count": count.tolist(), "confidence": mean_conf.tolist(),
            "accuracy": accuracy.tolist()}


def calibration_metrics(probs: np.ndarray, targets: np.ndarray,
                        bins: int = DEFAULT_BINS) -> dict[str, Any]:
    """``ece`` (0–1), ``mce`` (largest bin gap), ``nll`` (nats), ``brier`` (0–2) and ``bins``
    of N×C probabilities against N class indices."""
    probs = np.asarray(probs, dtype=np.float64)
    targets = np.asarray(targets, dtype=np.int64)
    n = len(targets)
    if n == 0:
        return {"ece": 0.0, "mce": 0.0, "nll": 0.0, "brier": 0.0, "bins": bins, "n": 0}
    rel = reliability_bins(probs, targets, bins)
    count = np.asarray(rel["count"])
    gap = np.abs(np.nan_to_num(np.asarray(rel["accuracy"]) - np.asarray(rel["confidence"])))
    onehot = np.zeros_like(probs)
    onehot[np.arange(n), targets] = 1.0
    picked = np.clip(probs[np.arange(n), targets], 1e-12, 1.0)
    return {
        "ece": float((count / n * gap).sum()),
        "mce": float(gap[count > 0].max()) if (count > 0).any() else 0.0,
        "nll": float(-np.log(picked).mean()),
        "brier": float(((probs - onehot) ** 2).sum(1).mean()),
        "bins": bins,
        "n": n,
    }


def fit_temperature(logits: torch.Tensor, targets: torch.Tensor, max_iter: int = 200) -> float:
    """The temperature ``T > 0`` minimising the NLL of ``softmax(logits / T)`` (N×C logits,
    N class indices). Optimised over ``log T`` with L-BFGS, so ``T`` stays positive."""
    logits = logits.detach().double()
    targets = targets.detach().long()
    if len(targets) == 0:
        return 1.0
    log_t = torch.zeros(1, dtype=torch.float64, requires_grad=True)
    optimizer = torch.optim.LBFGS([log_t], lr=0.1, max_iter=max_iter, line_search_fn="strong_wolfe")

    def closure() -> torch.Tensor:
        optimizer.zero_grad()
        loss = F.cross_entropy(logits / log_t.exp(), targets)
        loss.backward()
        return loss

    optimizer.step(closure)
    temperature = float(log_t.detach().exp())
    if not math.isfinite(temperature) or temperature <= 0:
        return 1.0
    return temperature


def softmax_t(logits: torch.Tensor, temperature: float) -> torch.Tensor:
    """``softmax(logits / temperature)`` over the last dimension, in float32."""
    return F.softmax(logits.float() / float(temperature), dim=-1)


#: an ECE rise smaller than this (0.05 points) is not worth a warning
ECE_WARN_TOLERANCE = 5e-4


def ece_warning(cal: dict[str, Any]) -> str | None:
    """A warning (no ``warning:`` prefix) when the temperature fit ``cal``
    (:func:`calibrate_temperature`'s record) lowered the NLL on its split but raised the ECE
    there by :data:`ECE_WARN_TOLERANCE` or more; ``None`` otherwise. The fit minimises NLL,
    not ECE; on a few hundred faces the binned ECE is noisy and the two can disagree."""
    before, after, n = cal["before"], cal["after"], cal["n"]
    if after["ece"] - before["ece"] < ECE_WARN_TOLERANCE or after["nll"] >= before["nll"]:
        return None
    bins = cal.get("bins", DEFAULT_BINS)
    return (f"temperature scaling raised the ECE on {cal['fitted_on']} "
            f"({before['ece']:.4f} -> {after['ece']:.4f}, {n} faces) while lowering the NLL "
            f"({before['nll']:.4f} -> {after['nll']:.4f}); the temperature is stored anyway"
            + (f" (too few faces for a reliable {bins}-bin ECE)" if n < 1000 else ""))


def calibrate_temperature(ckpt: Any, data: Any, device: torch.device, split_name: str,
                          batch_size: int = 512) -> dict[str, Any]:
    """Fit the temperature of checkpoint ``ckpt`` on ``data`` (a :class:`FaceData` split with
    the model's labels, e.g. FER2013 PublicTest), set ``ckpt.calibration`` and return it.

    Fitted on the single-crop logits the pipeline computes. The record holds the method, the
    temperature, the split and its size, and ECE / NLL / Brier on that split before and after.
    :func:`ece_warning` says when the fit raised the ECE.
    """
    from .engine import predict_proba

    model = ckpt.build().to(device)
    logits = predict_proba(model, data.images, device=device, preprocess=ckpt.preprocess,
                           batch_size=batch_size, logits=True)
    targets = data.hard_targets
    temperature = fit_temperature(logits, targets)
    before = calibration_metrics(softmax_t(logits, 1.0).numpy(), targets.numpy())
    after = calibration_metrics(softmax_t(logits, temperature).numpy(), targets.numpy())
    ckpt.calibration = {
        "method": "temperature", "temperature": temperature, "fitted_on": split_name,
        "n": int(len(targets)), "bins": DEFAULT_BINS,
        "before": {k: before[k] for k in ("ece", "nll", "brier")},
        "after": {k: after[k] for k in ("ece", "nll", "brier")},
    }
    return ckpt.calibration
