"""The training loop's two plain functions: ``train_one_epoch`` and ``evaluate``.

Both take the run's :class:`~ferbatch.models.preprocess.Preprocess` (the one the checkpoint
stores), so training, validation and the pipeline normalise faces the same way; reduced
precision follows :func:`ferbatch.devices.training_autocast`.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from ..devices import gradient_scaler, training_autocast
from ..models.preprocess import Preprocess, center_crop
from .calibration import calibration_metrics, reliability_bins
from .data import FaceData
from .distill import Distillation, kd_loss
from .metrics import classification_report, confusion_matrix
from .transforms import AugmentPreset, augment_batch, mixup, ten_crop_views


@dataclass
class EpochStats:
    """One training epoch: mean loss, accuracy (0–1, on augmented batches), the rate at its
    end, throughput and wall time (s). ``label_loss``: with distillation, the mean of the label
    term alone (the cross-entropy a run without teachers reports as ``loss``); else ``None``."""

    loss: float
    accuracy: float
    lr: float
    images_per_s: float
    seconds: float
    label_loss: float | None = None


def _batches(n: int, batch_size: int, shuffle: bool, generator: torch.Generator | None,
             drop_last: bool = False) -> Iterator[torch.Tensor]:
    order = torch.randperm(n, generator=generator) if shuffle else torch.arange(n)
    stop = n - (n % batch_size) if drop_last and n >= batch_size else n
    for start in range(0, stop, batch_size):
        yield order[start:start + batch_size]


def soft_cross_entropy(logits: torch.Tensor, target: torch.Tensor,
                       weight: torch.Tensor | None = None) -> torch.Tensor:
    """Cross-entropy against soft targets (N×C), with optional per-class weights."""
    logp = F.log_softmax(logits.float(), dim=1)
    if weight is not None:
        logp = logp * weight.view(1, -1)
    return -(target * logp).sum(1).mean()


def train_one_epoch(model: nn.Module, data: FaceData, optimizer: torch.optim.Optimizer, *,
                    device: torch.device, batch_size: int, preprocess: Preprocess,
                    preset: AugmentPreset, class_weights: torch.Tensor | None,
                    label_smoothing: float, mixup_alpha: float, amp: bool,
                    channels_last: bool, generator: torch.Generator,
                    scheduler_step: Callable[[], None] | None = None,
                    progress: Callable[[int], None] | None = None,
                    distill: Distillation | None = None,
                    scaler: torch.amp.GradScaler | None = None) -> EpochStats:
    """One pass over ``data`` (full batches of ``batch_size``, shuffled by ``generator``) with
    batch augmentation to ``preprocess.input_size`` px and ``preprocess``'s normalisation.

    ``class_weights``: C per-class loss weights or ``None``; ``scheduler_step`` is called after
    every optimiser step (per-iteration schedules); ``progress(n)`` after each batch of ``n``.
    ``distill``: the teachers' logits for ``data`` (row-aligned); the loss is then
    ``(1 - alpha) · CE + alpha · T² · KL`` (:mod:`ferbatch.train.distill`). ``scaler``: the
    run's fp16 loss scaler (:func:`~ferbatch.devices.gradient_scaler`), kept across epochs so
    its scale carries over; ``None`` makes a fresh one for this epoch.
    """
    model.train()
    if scaler is None:
        scaler = gradient_scaler(device, amp)
    num_classes = len(data.labels)
    weight = class_weights.to(device) if class_weights is not None else None
    total_loss, total_label, correct, seen = 0.0, 0.0, 0, 0
    start = time.perf_counter()
    for idx in _batches(len(data), batch_size, True, generator, drop_last=True):
        images = data.images[idx].to(device, non_blocking=True)
        target = data.targets[idx]
        if data.soft_sampling and target.ndim == 2:  # FER+ "probability": sample a hard label
            target = torch.multinomial(target.float(), 1, generator=generator).squeeze(1)
        target = target.to(device, non_blocking=True)
        x = preprocess.normalize(augment_batch(images, preprocess.input_size, preset))
        soft = target.float() if target.ndim == 2 else F.one_hot(target, num_classes).float()
        if label_smoothing > 0:
            soft = soft * (1 - label_smoothing) + label_smoothing / num_classes
        if mixup_alpha > 0:
            x, soft = mixup(x, soft, mixup_alpha)
        if channels_last:
            x = x.contiguous(memory_format=torch.channels_last)
        with training_autocast(device, amp):
            logits = model(x)
        loss = label_loss = soft_cross_entropy(logits, soft, weight)
        if distill is not None:
            teacher = distill.logits[idx].to(device, non_blocking=True)
            loss = ((1 - distill.alpha) * label_loss
                    + distill.alpha * kd_loss(logits, teacher, distill.temperature))
        optimizer.zero_grad(set_to_none=True)
        scaler.scale(loss).backward()
        scaler.step(optimizer)
        scaler.update()
        if scheduler_step is not None:
            scheduler_step()
        n = idx.numel()
        total_loss += float(loss.detach()) * n
        if distill is not None:
            total_label += float(label_loss.detach()) * n
        correct += int((logits.argmax(1) == (target if target.ndim == 1 else target.argmax(1))).sum())
        seen += n
        if progress is not None:
            progress(n)
    seconds = time.perf_counter() - start
    return EpochStats(loss=total_loss / max(seen, 1), accuracy=correct / max(seen, 1),
                      lr=float(optimizer.param_groups[0]["lr"]),
                      images_per_s=seen / max(seconds, 1e-9), seconds=seconds,
                      label_loss=total_label / max(seen, 1) if distill is not None else None)


@torch.inference_mode()
def predict_proba(model: nn.Module, images: torch.Tensor, *, device: torch.device,
                  preprocess: Preprocess, batch_size: int = 512, tta: str = "none",
                  amp: bool = False, channels_last: bool = False,
                  temperature: float = 1.0, logits: bool = False) -> torch.Tensor:
    """float32 N×C class probabilities (on the CPU) for uint8 N×H×W faces, centre-cropped and
    normalised as ``preprocess`` says; ``tta``: ``none``, ``flip`` or ``tencrop`` (averaged).

    ``temperature``: softmax temperature (calibration). ``logits=True``: the raw logits of the
    views averaged instead of probabilities (what :func:`~ferbatch.train.calibration.fit_temperature`
    fits on)."""
    input_size = preprocess.input_size
    model.eval()
    outputs = []
    for idx in _batches(images.shape[0], batch_size, False, None):
        batch = images[idx].to(device)
        if tta == "tencrop":
            views = ten_crop_views(batch, input_size)
        else:
            views = [center_crop(batch, input_size)]
            if tta == "flip":
                views.append(views[0].flip(-1))
        probs = 0
        for view in views:
            x = preprocess.normalize(view)
            if channels_last:
                x = x.contiguous(memory_format=torch.channels_last)
            with training_autocast(device, amp):
                out = model(x).float()
            probs = probs + (out if logits else F.softmax(out / temperature, dim=1))
        outputs.append((probs / len(views)).cpu())
    return torch.cat(outputs) if outputs else torch.empty(0, 0)


def evaluate(model: nn.Module, data: FaceData, *, device: torch.device, preprocess: Preprocess,
             tta: str = "none", amp: bool = False, channels_last: bool = False,
             batch_size: int = 512, temperature: float = 1.0) -> dict:
    """Accuracy, macro-F1, per-class metrics and confusion matrix of ``model`` on ``data``
    (see :func:`~ferbatch.train.metrics.classification_report`); also ``loss`` (cross-entropy
    of the averaged probabilities), ``tta`` and ``calibration`` (ECE, NLL, Brier and the
    reliability bins of the probabilities at ``temperature``, :mod:`ferbatch.train.calibration`)."""
    probs = predict_proba(model, data.images, device=device, preprocess=preprocess,
                          batch_size=batch_size, tta=tta, amp=amp, channels_last=channels_last,
                          temperature=temperature)
    y = data.hard_targets
    pred = probs.argmax(1)
    cm = confusion_matrix(y.numpy(), pred.numpy(), len(data.labels))
    report = classification_report(cm, data.labels)
    picked = probs[torch.arange(len(y)), y].clamp_min(1e-8)
    report["loss"] = float(-np.log(picked.numpy()).mean()) if len(y) else 0.0
    report["tta"] = tta
    report["calibration"] = {"temperature": float(temperature),
                             **calibration_metrics(probs.numpy(), y.numpy()),
                             "reliability": reliability_bins(probs.numpy(), y.numpy())}
    return report
