"""``ferbatch train``: train an emotion model, select it on the validation split, report test.

``main(args)`` takes a :class:`TrainArgs`; the CLI builds one from its options. Every epoch
writes ``last.pt`` (resumable state) and, when validation accuracy improves, ``best.pt`` (a
checkpoint the pipeline can load). At the end the best model is evaluated once on the test
split and ``metrics.json``, ``history.jsonl``, ``config.json`` and ``curves.png`` are written
beside it.
"""

from __future__ import annotations

import json
import math
import os
import random
import sys
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch

from .. import __version__
from ..errors import ConfigError, DataError
from ..models import create_model
from ..models.checkpoint import Checkpoint, Preprocess, save_checkpoint
from .data import FaceData, file_hash
from .engine import EpochStats, evaluate, train_one_epoch
from .transforms import get_preset


@dataclass
class TrainArgs:
    """Every option of a training run (written to ``config.json`` beside the checkpoint)."""

    data: str
    out: str
    dataset: str = "fer2013"  # fer2013 | ferplus | folder
    ferplus: str | None = None  # path of fer2013new.csv for dataset=ferplus
    ferplus_mode: str = "majority"  # majority | probability | crossentropy
    val_data: str | None = None  # for dataset=folder: a separate validation folder
    classes: list[str] | None = None
    model: str = "vgg_gap"
    model_kwargs: dict[str, Any] = field(default_factory=dict)
    pretrained: str | None = None
    image_size: int = 48
    input_size: int = 40
    epochs: int = 50
    batch_size: int = 128
    optimizer: str = "sgd"  # sgd | adamw
    lr: float = 0.05
    momentum: float = 0.9
    weight_decay: float = 5e-4
    schedule: str = "cosine"  # cosine | plateau | none
    warmup_epochs: int = 1
    augment: str = "standard"
    mixup: float = 0.0
    label_smoothing: float = 0.1
    class_weights: str = "none"  # none | balanced | sqrt
    patience: int = 0  # early stopping on validation accuracy; 0 = off
    eval_tta: str = "none"
    seed: int = 0
    device: str = "auto"
    amp: bool = True
    channels_last: bool = True
    threads: int = 0
    resume: bool = False
    limit: int = 0  # use only the first N training images (tests, smoke runs)
    crop_scale: float = 0.95
    crop_shift_y: float = 0.0
    half_weights: bool = True  # store best.pt weights as fp16 (half the size, same accuracy)
    quiet: bool = False


def resolve_device(name: str) -> torch.device:
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if name.startswith("cuda") and not torch.cuda.is_available():
        raise ConfigError(f"device {name!r} requested but CUDA is not available")
    return torch.device(name)


def seed_everything(seed: int) -> torch.Generator:
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)
    gen = torch.Generator()
    gen.manual_seed(seed)
    return gen


def load_splits(args: TrainArgs) -> tuple[dict[str, FaceData], str]:
    """Train / val / test splits of the requested dataset and a hash of its files."""
    path = Path(args.data)
    if args.dataset == "fer2013":
        from .data import load_fer2013

        return load_fer2013(path, args.classes), file_hash(path)
    if args.dataset == "ferplus":
        from .datasets_extra import load_ferplus

        if not args.ferplus:
            raise ConfigError("--dataset ferplus needs --ferplus PATH/fer2013new.csv")
        splits = load_ferplus(path, Path(args.ferplus), args.ferplus_mode, args.classes)
        return splits, file_hash(path) + "+" + file_hash(Path(args.ferplus))
    if args.dataset == "folder":
        from .datasets_extra import load_folder_splits

        return load_folder_splits(path, args.val_data, args.classes, args.image_size, args.seed)
    raise ConfigError(f"unknown dataset kind {args.dataset!r}; choose fer2013, ferplus or folder")


def compute_class_weights(data: FaceData, mode: str) -> torch.Tensor | None:
    """Per-class loss weights from training counts: ``balanced`` (1/count) or ``sqrt``,
    normalised to mean 1."""
    if mode == "none":
        return None
    counts = torch.bincount(data.hard_targets, minlength=len(data.labels)).float().clamp_min(1)
    if mode == "balanced":
        w = 1.0 / counts
    elif mode == "sqrt":
        w = 1.0 / counts.sqrt()
    else:
        raise ConfigError(f"unknown class weighting {mode!r}; choose none, balanced or sqrt")
    return w * (len(w) / w.sum())


def build_optimizer(model: torch.nn.Module, args: TrainArgs) -> torch.optim.Optimizer:
    decay, no_decay = [], []
    for p in model.parameters():
        (no_decay if p.ndim <= 1 else decay).append(p)
    groups = [{"params": decay, "weight_decay": args.weight_decay},
              {"params": no_decay, "weight_decay": 0.0}]
    if args.optimizer == "sgd":
        return torch.optim.SGD(groups, lr=args.lr, momentum=args.momentum, nesterov=True)
    if args.optimizer == "adamw":
        return torch.optim.AdamW(groups, lr=args.lr)
    raise ConfigError(f"unknown optimizer {args.optimizer!r}; choose sgd or adamw")


class LRSchedule:
    """Per-iteration linear warm-up then cosine decay; or plateau (per epoch) / constant."""

    def __init__(self, optimizer: torch.optim.Optimizer, args: TrainArgs, steps_per_epoch: int) -> None:
        self.optimizer = optimizer
        self.args = args
        self.total = max(1, args.epochs * steps_per_epoch)
        self.warmup = args.warmup_epochs * steps_per_epoch
        self.step_count = 0
        self.scale = 1.0  # plateau multiplier
        self.best = -math.inf
        self.bad_epochs = 0
        self._apply()

    def _apply(self) -> None:
        lr = self.args.lr * self.scale
        if self.step_count < self.warmup:
            lr *= (self.step_count + 1) / self.warmup
        elif self.args.schedule == "cosine":
            progress = (self.step_count - self.warmup) / max(1, self.total - self.warmup)
            lr *= 0.5 * (1 + math.cos(math.pi * min(1.0, progress)))
        for group in self.optimizer.param_groups:
            group["lr"] = lr

    def step(self) -> None:
        self.step_count += 1
        self._apply()

    def epoch_end(self, val_accuracy: float) -> None:
        if self.args.schedule != "plateau":
            return
        if val_accuracy > self.best + 1e-4:
            self.best, self.bad_epochs = val_accuracy, 0
        else:
            self.bad_epochs += 1
            if self.bad_epochs >= 3:
                self.scale *= 0.5
                self.bad_epochs = 0
        self._apply()

    def state_dict(self) -> dict[str, float]:
        return {"step_count": self.step_count, "scale": self.scale, "best": self.best,
                "bad_epochs": self.bad_epochs}

    def load_state_dict(self, state: dict[str, float]) -> None:
        self.step_count = int(state["step_count"])
        self.scale = float(state["scale"])
        self.best = float(state["best"])
        self.bad_epochs = int(state["bad_epochs"])
        self._apply()


def _log(args: TrainArgs, message: str) -> None:
    if not args.quiet:
        print(message, file=sys.stderr, flush=True)


def make_checkpoint(model: torch.nn.Module, args: TrainArgs, labels: list[str], data_hash: str,
                    metrics: dict[str, Any], half: bool = False) -> Checkpoint:
    state = {k: v.detach().cpu().clone() for k, v in model.state_dict().items()}
    if half:
        state = {k: v.half() if v.is_floating_point() else v for k, v in state.items()}
    preprocess = Preprocess(image_size=args.image_size, input_size=args.input_size,
                            crop_scale=args.crop_scale, crop_shift_y=args.crop_shift_y)
    return Checkpoint(arch=args.model, arch_kwargs=dict(args.model_kwargs), labels=list(labels),
                      preprocess=preprocess, state_dict=state, train_config=asdict(args),
                      data_hash=data_hash, metrics=metrics, code_version=__version__)


def main(args: TrainArgs) -> dict[str, Any]:
    """Train, select on ``val``, evaluate the selected model once on ``test``; return metrics."""
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    if args.threads:
        torch.set_num_threads(args.threads)
    device = resolve_device(args.device)
    amp = args.amp
    generator = seed_everything(args.seed)
    preset = get_preset(args.augment)
    splits, data_hash = load_splits(args)
    train = splits["train"]
    if args.limit:
        train = train.subset(torch.arange(min(args.limit, len(train))))
    val, test = splits.get("val"), splits.get("test")
    if len(train) == 0:
        raise DataError(f"{args.data}: the training split is empty")
    labels = train.labels
    model = create_model(args.model, num_classes=len(labels), input_size=args.input_size,
                         **({"pretrained_path": args.pretrained} if args.pretrained else {}),
                         **args.model_kwargs).to(device)
    if args.channels_last:
        model = model.to(memory_format=torch.channels_last)
    optimizer = build_optimizer(model, args)
    steps = max(1, len(train) // args.batch_size)
    schedule = LRSchedule(optimizer, args, steps)
    weights = compute_class_weights(train, args.class_weights)
    (out / "config.json").write_text(json.dumps(asdict(args), indent=2))

    history: list[dict[str, Any]] = []
    start_epoch, best_acc, best_epoch = 0, -1.0, -1
    last_path = out / "last.pt"
    if args.resume and last_path.is_file():
        state = torch.load(last_path, map_location="cpu", weights_only=True)
        model.load_state_dict(state["model"])
        optimizer.load_state_dict(state["optimizer"])
        schedule.load_state_dict(state["schedule"])
        generator.set_state(state["generator"])
        torch.set_rng_state(state["torch_rng"])
        start_epoch, best_acc, best_epoch = state["epoch"] + 1, state["best_acc"], state["best_epoch"]
        history = json.loads(state["history"])
        _log(args, f"resumed from {last_path} at epoch {start_epoch}")
    elif args.resume:
        _log(args, f"--resume: no {last_path} yet, starting from scratch")

    hist_file = out / "history.jsonl"
    hist_file.write_text("".join(json.dumps(h) + "\n" for h in history))
    eval_kw = dict(device=device, input_size=args.input_size, mean=0.5, std=0.25,
                   channels_last=args.channels_last)
    for epoch in range(start_epoch, args.epochs):
        stats: EpochStats = train_one_epoch(
            model, train, optimizer, device=device, batch_size=args.batch_size,
            input_size=args.input_size, mean=0.5, std=0.25, preset=preset,
            class_weights=weights, label_smoothing=args.label_smoothing, mixup_alpha=args.mixup,
            amp=amp, channels_last=args.channels_last, generator=generator,
            scheduler_step=schedule.step)
        record: dict[str, Any] = {"epoch": epoch + 1, "train_loss": stats.loss,
                                  "train_acc": stats.accuracy, "lr": stats.lr,
                                  "images_per_s": stats.images_per_s, "seconds": stats.seconds}
        if val is not None and len(val):
            report = evaluate(model, val, **eval_kw)
            record.update(val_loss=report["loss"], val_acc=report["accuracy"],
                          val_macro_f1=report["macro_f1"])
            schedule.epoch_end(report["accuracy"])
            improved = report["accuracy"] > best_acc
        else:
            improved = True
        if improved:
            best_acc, best_epoch = record.get("val_acc", 0.0), epoch + 1
            save_checkpoint(make_checkpoint(model, args, labels, data_hash,
                                            {"val": record}, half=args.half_weights),
                            out / "best.pt")
        history.append(record)
        with hist_file.open("a") as fh:
            fh.write(json.dumps(record) + "\n")
        _log(args, f"epoch {epoch + 1}/{args.epochs} loss {stats.loss:.4f} acc {stats.accuracy:.4f} "
                   f"val_acc {record.get('val_acc', float('nan')):.4f} lr {stats.lr:.4g} "
                   f"{stats.images_per_s:.0f} img/s {stats.seconds:.0f}s"
                   + (" *" if improved else ""))
        state = {"model": model.state_dict(), "optimizer": optimizer.state_dict(),
                 "schedule": schedule.state_dict(), "generator": generator.get_state(),
                 "torch_rng": torch.get_rng_state(), "epoch": epoch, "best_acc": best_acc,
                 "best_epoch": best_epoch, "history": json.dumps(history)}
        tmp = last_path.with_suffix(".tmp")
        torch.save(state, tmp)
        os.replace(tmp, last_path)
        if args.patience and epoch + 1 - best_epoch >= args.patience:
            _log(args, f"early stop: no validation gain for {args.patience} epochs")
            break

    return finalize(out, args, labels, data_hash, history, best_epoch, test, device)


def finalize(out: Path, args: TrainArgs, labels: list[str], data_hash: str,
             history: list[dict[str, Any]], best_epoch: int, test: FaceData | None,
             device: torch.device) -> dict[str, Any]:
    """Evaluate ``best.pt`` once on the test split; write metrics JSON and curves PNG."""
    from ..models.checkpoint import load_checkpoint
    from .plots import plot_confusion, plot_curves

    ckpt = load_checkpoint(out / "best.pt")
    model = ckpt.build().to(device)
    metrics: dict[str, Any] = {"best_epoch": best_epoch, "epochs_run": len(history),
                               "val": history[best_epoch - 1] if best_epoch > 0 else {},
                               "mean_images_per_s": float(np.mean([h["images_per_s"] for h in history])) if history else 0.0}
    if test is not None and len(test):
        kw = dict(device=device, input_size=args.input_size, mean=0.5, std=0.25)
        metrics["test"] = evaluate(model, test, **kw)
        if args.eval_tta != "none":
            metrics[f"test_{args.eval_tta}"] = evaluate(model, test, tta=args.eval_tta, **kw)
        plot_confusion(np.array(metrics["test"]["confusion_matrix"]), labels,
                       out / "confusion_test.png", title="test split")
    ckpt.metrics = metrics
    save_checkpoint(ckpt, out / "best.pt")
    (out / "metrics.json").write_text(json.dumps(metrics, indent=2))
    if history:
        plot_curves(history, out / "curves.png")
    _log(args, f"best epoch {best_epoch}; "
               + (f"test accuracy {metrics['test']['accuracy']:.4f} macro-F1 {metrics['test']['macro_f1']:.4f}"
                  if "test" in metrics else "no test split"))
    return metrics
