"""``ferbatch train``: train an emotion model, select it on the validation split, report test.

``main(args)`` takes a :class:`~ferbatch.train.args.TrainArgs`; the CLI builds one from its
options. Every epoch writes ``last.pt`` (resumable state, :mod:`.resume`), from epoch
``snapshot_from`` on also ``snapshots/epochNN.pt`` (weights only, for :mod:`.average`), and,
when validation accuracy improves, ``best.pt`` (a checkpoint the pipeline can load). At the end the best model
is evaluated once on the test split and ``metrics.json``, ``history.jsonl``, ``config.json``
and ``curves.png`` are written beside it. Every file is written atomically
(:mod:`ferbatch.output.atomic`); progress is logged to ``ferbatch.train.main`` at INFO
(at DEBUG with ``quiet``).
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable, Collection
from pathlib import Path
from typing import Any

import numpy as np
import torch

from .. import __version__
from ..errors import ConfigError, DataError
from ..models.checkpoint import Checkpoint, Preprocess, save_checkpoint
from ..output.atomic import atomic_write_text
from .args import TrainArgs, non_default
from .build import Training, build_training, run_epoch
from .data import FaceData
from .datasets import check_dataset_options, get_dataset
from .distill import CACHE as TEACHER_CACHE
from .engine import evaluate
from .resume import (
    CONFIG,
    LAST,
    Progress,
    clear_snapshots,
    load_last,
    reconcile_resume,
    save_last,
    save_snapshot,
    stored_config,
)

__all__ = ["TrainArgs", "main", "finalize", "make_checkpoint", "load_splits"]

log = logging.getLogger(__name__)


def _say(args: TrainArgs, message: str) -> None:
    """Progress: INFO, or DEBUG for a quiet run."""
    log.log(logging.DEBUG if args.quiet else logging.INFO, message)


def load_splits(args: TrainArgs) -> tuple[dict[str, FaceData], str]:
    """Train / val / test splits of ``args.dataset`` (the registry in
    :mod:`ferbatch.train.datasets`) and a hash of its data. Raises :class:`ConfigError` for an
    unknown dataset or an option of another dataset (``--ferplus``, ``--val-data``) or an
    ``input_size`` above ``image_size``, :class:`DataError` for unreadable data. Faces are
    resized to ``args.image_size`` px when the dataset stores another size."""
    check_dataset_options(args.dataset, args.ferplus, args.val_data)
    if args.input_size > args.image_size:
        raise ConfigError(f"--input-size {args.input_size} is larger than --image-size "
                          f"{args.image_size}: the model's crops are cut from the faces")
    splits, data_hash = get_dataset(args.dataset).train_splits(args)
    # FER2013 and FER+ are 48 px: a run at another --image-size gets them resized
    return {name: data.at_size(args.image_size) for name, data in splits.items()}, data_hash


def make_checkpoint(model: torch.nn.Module, args: TrainArgs, labels: list[str], data_hash: str,
                    metrics: dict[str, Any], preprocess: Preprocess,
                    half: bool = False) -> Checkpoint:
    """A :class:`Checkpoint` of ``model``'s current weights (CPU copies; fp16 floats with
    ``half``) with the run's ``preprocess``, ``args`` as its train config and ``metrics``."""
    state = {k: v.detach().cpu().clone() for k, v in model.state_dict().items()}
    if half:
        state = {k: v.half() if v.is_floating_point() else v for k, v in state.items()}
    return Checkpoint(arch=args.model, arch_kwargs=dict(args.model_kwargs), labels=list(labels),
                      preprocess=preprocess, state_dict=state, train_config=args.to_dict(),
                      data_hash=data_hash, metrics=metrics, code_version=__version__)


def _prepare_args(args: TrainArgs, out: Path, given: set[str]) -> TrainArgs:
    """On a real resume (``last.pt`` exists) keep the stored run's identity options; with
    ``--init`` take architecture and preprocessing from that checkpoint unless ``given``
    (the option names the user chose)."""
    if args.init and not (args.resume and (out / LAST).is_file()):
        from .finetune import args_from_init, load_init

        return args_from_init(args, load_init(args.init), given)
    if not (args.resume and (out / LAST).is_file()):
        return args
    stored = stored_config(out)
    if stored is None:
        return args
    if list(stored.get("teacher") or []) != list(args.teacher):
        log.warning("--resume: the previous part of this run trained with --teacher %s, this "
                    "part trains with %s", " ".join(stored.get("teacher") or []) or "none",
                    " ".join(args.teacher) or "none")
    return reconcile_resume(args, stored, given)


def _splits(args: TrainArgs) -> tuple[FaceData, FaceData | None, FaceData | None, str]:
    splits, data_hash = load_splits(args)
    train = splits["train"]
    if args.limit:
        train = train.subset(torch.arange(min(args.limit, len(train))))
    if len(train) == 0:
        raise DataError(f"{args.data}: the training split is empty")
    return train, splits.get("val"), splits.get("test"), data_hash


def _start(run: Training, out: Path) -> Progress:
    args = run.args
    last = out / LAST
    if args.resume and last.is_file():
        progress = load_last(last, run)
        _say(args, f"resumed from {last} at epoch {progress.start_epoch}")
        return progress
    if args.resume:
        _say(args, f"--resume: no {last} yet, starting from scratch")
    return Progress()


def _epoch_line(record: dict[str, Any], epochs: int, improved: bool) -> str:
    val_acc = record.get("val_acc", float("nan"))
    return (f"epoch {record['epoch']}/{epochs} loss {record['train_loss']:.4f} "
            f"acc {record['train_acc']:.4f} val_acc {val_acc:.4f} lr {record['lr']:.4g} "
            f"{record['images_per_s']:.0f} img/s {record['seconds']:.0f}s"
            + (" *" if improved else ""))


def main(args: TrainArgs, explicit: Collection[str] | None = None) -> dict[str, Any]:
    """Train, select on ``val`` and fit the temperature there; with ``args.eval_test`` evaluate
    the selected model once on ``test``. Return metrics (``best_epoch``, ``epochs_run``, ``val``,
    ``mean_images_per_s``, and ``test`` with ``eval_test``).

    ``explicit``: the option names the user gave (the CLI passes them); with ``None`` the fields
    that differ from their defaults count. It matters on ``--resume``, see
    :func:`ferbatch.train.resume.reconcile_resume`. Raises :class:`ConfigError`,
    :class:`DataError`, :class:`~ferbatch.errors.ModelError` or :class:`TrainError`.
    """
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    given = non_default(args) if explicit is None else set(explicit)
    args = _prepare_args(args, out, given)
    if not args.teacher and given & {"kd_alpha", "kd_temperature"}:
        log.warning("--kd-alpha / --kd-temperature have no effect without --teacher")
    if not args.eval_test and args.eval_tta != "none":
        log.warning("--eval-tta %s has no effect without --eval-test", args.eval_tta)
    if args.threads:
        torch.set_num_threads(args.threads)
    train, val, test, data_hash = _splits(args)
    run = build_training(args, train, teacher_cache=out / TEACHER_CACHE)
    atomic_write_text(out / CONFIG, json.dumps(args.to_dict(), indent=2))
    progress = _start(run, out)
    if progress.start_epoch == 0 and clear_snapshots(out):
        _say(args, f"removed the snapshots of an earlier run in {out}")
    if args.snapshot_from > args.epochs:
        log.warning("--snapshot-from %d is after the last epoch (%d): no snapshot will be kept",
                    args.snapshot_from, args.epochs)
    hist_file = out / "history.jsonl"
    atomic_write_text(hist_file, "".join(json.dumps(h) + "\n" for h in progress.history))
    for epoch in range(progress.start_epoch, args.epochs):
        record = run_epoch(run, train, val, epoch + 1)
        improved = "val_acc" not in record or record["val_acc"] > progress.best_acc
        if improved:
            progress.best_acc, progress.best_epoch = record.get("val_acc", 0.0), epoch + 1
            save_checkpoint(make_checkpoint(run.model, args, train.labels, data_hash,
                                            {"val": record}, run.preprocess,
                                            half=args.half_weights), out / "best.pt")
        progress.history.append(record)
        with hist_file.open("a") as fh:
            fh.write(json.dumps(record) + "\n")
        _say(args, _epoch_line(record, args.epochs, improved))
        if args.snapshot_from and epoch + 1 >= args.snapshot_from:  # before last.pt: never lost
            save_snapshot(out, run, epoch, train.labels)
        save_last(out / LAST, run, epoch, progress)
        if args.patience and epoch + 1 - progress.best_epoch >= args.patience:
            _say(args, f"early stop: no validation gain for {args.patience} epochs")
            break
    return finalize(out, args, train.labels, progress.history, progress.best_epoch,
                    test if args.eval_test else None, run.device, run.preprocess, val=val)


def _plot(plot: Callable[..., Any], path: Path, *args: Any, **kwargs: Any) -> None:
    """``plot(*args, path, **kwargs)``; without matplotlib (a bare GPU machine with only torch,
    numpy and pandas) a warning instead: a run needs matplotlib for its figures alone."""
    try:
        plot(*args, path, **kwargs)
    except ImportError as exc:
        log.warning("%s not written: matplotlib cannot be imported (%s)", path, exc)


def finalize(out: Path, args: TrainArgs, labels: list[str], history: list[dict[str, Any]],
             best_epoch: int, test: FaceData | None, device: torch.device,
             preprocess: Preprocess, val: FaceData | None = None) -> dict[str, Any]:
    """Fit ``best.pt``'s softmax temperature on the validation split (temperature scaling,
    :mod:`ferbatch.train.calibration`); when ``test`` is given, evaluate it once there with the
    run's ``preprocess`` (and ``args.eval_tta``); store the metrics in it and in
    ``metrics.json``; plot the curves."""
    from ..models.checkpoint import load_checkpoint
    from .calibration import calibrate_temperature, ece_warning
    from .plots import plot_confusion, plot_curves

    ckpt = load_checkpoint(out / "best.pt")
    if val is not None and len(val):
        cal = calibrate_temperature(ckpt, val, device, "val")
        _say(args, f"temperature {cal['temperature']:.3f} fitted on the validation split: "
                   f"ECE {cal['before']['ece']:.4f} -> {cal['after']['ece']:.4f}")
        if warning := ece_warning(cal):
            log.warning("%s", warning)
    model = ckpt.build().to(device)
    speeds = [h["images_per_s"] for h in history]
    metrics: dict[str, Any] = {"best_epoch": best_epoch, "epochs_run": len(history),
                               "val": history[best_epoch - 1] if best_epoch > 0 else {},
                               "mean_images_per_s": float(np.mean(speeds)) if speeds else 0.0}
    if test is not None and len(test):
        t = ckpt.temperature
        metrics["test"] = evaluate(model, test, device=device, preprocess=preprocess, temperature=t)
        if args.eval_tta != "none":
            metrics[f"test_{args.eval_tta}"] = evaluate(model, test, device=device,
                                                        preprocess=preprocess, tta=args.eval_tta,
                                                        temperature=t)
        _plot(plot_confusion, out / "confusion_test.png",
              np.array(metrics["test"]["confusion_matrix"]), labels, title="test split")
    ckpt.metrics = metrics
    save_checkpoint(ckpt, out / "best.pt")
    atomic_write_text(out / "metrics.json", json.dumps(metrics, indent=2))
    if history:
        _plot(plot_curves, out / "curves.png", history)
    test_line = (f"test accuracy {metrics['test']['accuracy']:.4f} "
                 f"macro-F1 {metrics['test']['macro_f1']:.4f}" if "test" in metrics
                 else "no test split" if args.eval_test else "test split left alone (no --eval-test)")
    _say(args, f"best epoch {best_epoch}; {test_line}")
    return metrics
