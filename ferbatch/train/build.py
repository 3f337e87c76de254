"""The setup shared by ``ferbatch train`` and every ``ferbatch tune`` trial.

:func:`build_training` turns a :class:`~ferbatch.train.args.TrainArgs` and the training split
into everything an epoch needs (model, optimiser, schedule, class weights, preprocessing,
augmentation, generator, device), and :func:`run_epoch` runs one epoch plus validation, so a
change to the trainer (a new optimiser, EMA weights, …) is made once and tuning measures the
trainer that ships.
"""

from __future__ import annotations

import logging
import random
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from ..devices import gradient_scaler, resolve_device
from ..errors import ConfigError
from ..models import create_model
from ..models.preprocess import Preprocess
from .args import CLASS_WEIGHTS, OPTIMIZERS, TrainArgs
from .data import FaceData
from .distill import Distillation, build_distillation, check_options
from .engine import evaluate, train_one_epoch
from .schedule import LRSchedule
from .transforms import AugmentPreset, get_preset

log = logging.getLogger(__name__)


def seed_everything(seed: int) -> torch.Generator:
    """Seed Python's, numpy's and torch's global RNGs; return a torch CPU generator seeded the
    same way (it shuffles and augments the batches)."""
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)
    gen = torch.Generator()
    gen.manual_seed(seed)
    return gen


def compute_class_weights(data: FaceData, mode: str) -> torch.Tensor | None:
    """Per-class loss weights (float32, C) from the training counts, normalised to mean 1:
    ``balanced`` ∝ 1/count, ``sqrt`` ∝ 1/√count; ``none`` → ``None``. An empty class counts 1.

    Raises :class:`ConfigError` for another ``mode``.
    """
    if mode == "none":
        return None
    counts = torch.bincount(data.hard_targets, minlength=len(data.labels)).float().clamp_min(1)
    if mode == "balanced":
        w = 1.0 / counts
    elif mode == "sqrt":
        w = 1.0 / counts.sqrt()
    else:
        raise ConfigError(f"unknown class weighting {mode!r}; choose {', '.join(CLASS_WEIGHTS)}")
    return w * (len(w) / w.sum())


def build_optimizer(model: torch.nn.Module, *, name: str, lr: float, weight_decay: float,
                    momentum: float = 0.9) -> torch.optim.Optimizer:
    """``sgd`` (Nesterov, ``momentum``) or ``adamw`` over ``model``'s parameters; weight decay
    applies to weights of 2+ dimensions only (no decay on biases and norm scales).

    Raises :class:`ConfigError` for another ``name``.
    """
    decay, no_decay = [], []
    for p in model.parameters():
        (no_decay if p.ndim <= 1 else decay).append(p)
    groups = [{"params": decay, "weight_decay": weight_decay},
              {"params": no_decay, "weight_decay": 0.0}]
    if name == "sgd":
        return torch.optim.SGD(groups, lr=lr, momentum=momentum, nesterov=True)
    if name == "adamw":
        return torch.optim.AdamW(groups, lr=lr)
    raise ConfigError(f"unknown optimizer {name!r}; choose {', '.join(OPTIMIZERS)}")


@dataclass
class Training:
    """Everything one run (or one tuning trial) trains with."""

    args: TrainArgs
    model: torch.nn.Module
    optimizer: torch.optim.Optimizer
    schedule: LRSchedule
    class_weights: torch.Tensor | None
    preprocess: Preprocess
    preset: AugmentPreset
    generator: torch.Generator
    device: torch.device
    distill: Distillation | None = None
    #: the fp16 loss scaler of the whole run (a no-op unless fp16 autocast on a GPU), so the
    #: scale it has found carries from one epoch to the next
    scaler: torch.amp.GradScaler | None = None


def build_training(args: TrainArgs, train: FaceData, device: torch.device | None = None,
                   teacher_cache: Path | None = None) -> Training:
    """Seed, then build the model for ``train.labels`` on ``device`` (default: ``args.device``
    through :func:`ferbatch.devices.resolve_device`), its optimiser, the per-step schedule
    (``len(train) // batch_size`` steps an epoch), class weights, preprocessing and preset;
    with ``args.teacher`` also the teachers' logits for ``train``
    (:func:`~ferbatch.train.distill.build_distillation`, cached in ``teacher_cache``).

    Raises :class:`ConfigError` / :class:`~ferbatch.errors.ModelError` for bad options.
    """
    if args.teacher:
        check_options(args.kd_alpha, args.kd_temperature, args.mixup)
    device = device if device is not None else resolve_device(args.device)
    preset = get_preset(args.augment)
    generator = seed_everything(args.seed)  # before the model: its initial weights are drawn
    extra = {"pretrained_path": args.pretrained} if args.pretrained else {}
    model = create_model(args.model, num_classes=len(train.labels), input_size=args.input_size,
                         **extra, **args.model_kwargs).to(device)
    if args.init:
        from .finetune import init_weights, load_init

        init_weights(model, load_init(args.init), train.labels)
    if args.channels_last:
        model = model.to(memory_format=torch.channels_last)
    optimizer = build_optimizer(model, name=args.optimizer, lr=args.lr,
                                weight_decay=args.weight_decay, momentum=args.momentum)
    steps = max(1, len(train) // args.batch_size)
    schedule = LRSchedule(optimizer, base_lr=args.lr, total_steps=args.epochs * steps,
                          warmup_steps=args.warmup_epochs * steps, mode=args.schedule)
    distill = None
    if args.teacher and args.kd_alpha == 0:
        log.warning("--kd-alpha 0: the teachers would not count; training on the labels only")
    elif args.teacher:
        distill = build_distillation(args.teacher, train, alpha=args.kd_alpha,
                                     temperature=args.kd_temperature, device=device,
                                     cache=teacher_cache)
    return Training(args=args, model=model, optimizer=optimizer, schedule=schedule,
                    class_weights=compute_class_weights(train, args.class_weights),
                    preprocess=args.preprocess(), preset=preset, generator=generator,
                    device=device, distill=distill, scaler=gradient_scaler(device, args.amp))


def run_epoch(run: Training, train: FaceData, val: FaceData | None, epoch: int,
              tta: str = "none") -> dict[str, Any]:
    """Train one epoch, then validate on ``val`` (with ``tta``) and feed the schedule.

    Returns the history record: ``epoch`` (1-based), ``train_loss``, ``train_acc``, ``lr``,
    ``images_per_s``, ``seconds``, with teachers ``train_label_loss`` (the label term of
    ``train_loss``) and, with a non-empty ``val``, ``val_loss``, ``val_acc``, ``val_macro_f1``.
    """
    args = run.args
    stats = train_one_epoch(
        run.model, train, run.optimizer, device=run.device, batch_size=args.batch_size,
        preprocess=run.preprocess, preset=run.preset, class_weights=run.class_weights,
        label_smoothing=args.label_smoothing, mixup_alpha=args.mixup, amp=args.amp,
        channels_last=args.channels_last, generator=run.generator,
        scheduler_step=run.schedule.step, distill=run.distill, scaler=run.scaler)
    record: dict[str, Any] = {"epoch": epoch, "train_loss": stats.loss,
                              "train_acc": stats.accuracy, "lr": stats.lr,
                              "images_per_s": stats.images_per_s, "seconds": stats.seconds}
    if stats.label_loss is not None:  # distilled: the label term alone, comparable across runs
        record["train_label_loss"] = stats.label_loss
    if val is not None and len(val):
        report = evaluate(run.model, val, device=run.device, preprocess=run.preprocess, tta=tta,
                          channels_last=args.channels_last)
        record.update(val_loss=report["loss"], val_acc=report["accuracy"],
                      val_macro_f1=report["macro_f1"])
        run.schedule.epoch_end(report["accuracy"])
    return record
