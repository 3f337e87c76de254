"""CLI commands of the trainer: ``ferbatch train``, ``evaluate``, ``tune``, ``models`` and
``calibrate-crop``.

Click parses; options become a typed :class:`~ferbatch.train.args.TrainArgs` (or evaluate /
tune options), which the plain ``main`` functions run. Every default is read from the dataclass
that owns it (:func:`~ferbatch.train.args.field_default`), never written here a second time.
Training progress is logged; without ``--quiet`` the commands show it on stderr.
``COMMANDS`` lists the commands for ``cli.py``.
"""

from __future__ import annotations

import contextlib
import json
import logging
import sys
from collections.abc import Iterator
from typing import Any

import click
from click.core import ParameterSource

from .errors import FerbatchError
from .train.args import (
    CLASS_WEIGHTS,
    FERPLUS_MODES,
    OPTIMIZERS,
    SCHEDULES,
    TTA_MODES,
    TrainArgs,
    field_default,
)
from .train.datasets import dataset_names
from .train.tune_space import DEFAULT_LR, DEFAULT_SPACE, SCHEDULERS, SEARCHED, SEARCHES, TuneOptions


def _train(name: str) -> Any:
    return field_default(TrainArgs, name)


def _tune(name: str) -> Any:
    return field_default(TuneOptions, name)


def parse_kv(pairs: tuple[str, ...]) -> dict[str, Any]:
    """``("width=48", "dropout=0.2")`` → ``{"width": 48, "dropout": 0.2}`` (JSON values)."""
    out: dict[str, Any] = {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        if not sep or not key:
            raise click.BadParameter(f"expected KEY=VALUE, got {pair!r}")
        try:
            out[key] = json.loads(value)
        except json.JSONDecodeError:
            out[key] = value
    return out


def _classes(value: str | None) -> list[str] | None:
    return [c.strip() for c in value.split(",") if c.strip()] if value else None


class _ProgressFormatter(logging.Formatter):
    """INFO records as bare lines; warnings and errors prefixed with their level."""

    def format(self, record: logging.LogRecord) -> str:
        text = super().format(record)
        return text if record.levelno < logging.WARNING else f"{record.levelname.lower()}: {text}"


def _console_handler(logger: logging.Logger, level: int) -> bool:
    """Whether a handler on ``logger`` or its ancestors writes records of ``level`` to the
    console (stderr or stdout)."""
    current: logging.Logger | None = logger
    while current is not None:
        for handler in current.handlers:
            stream = getattr(handler, "stream", None)
            if stream in (sys.stderr, sys.stdout) and handler.level <= level:
                return True
        current = current.parent if current.propagate else None
    return False


@contextlib.contextmanager
def progress_logging(quiet: bool) -> Iterator[None]:
    """Show the trainer's INFO records (per-epoch progress) on stderr during a command,
    unless ``quiet``.

    Adds a plain handler to the ``ferbatch.train`` logger only when no console handler shows
    INFO already (one that shows warnings keeps them: this one then passes INFO only), and
    lowers that logger's level to INFO; both are restored afterwards.
    """
    logger = logging.getLogger("ferbatch.train")
    if quiet:
        yield
        return
    level = logger.level
    handler = None
    if not _console_handler(logger, logging.INFO):
        handler = logging.StreamHandler(sys.stderr)
        handler.setLevel(logging.INFO)
        handler.setFormatter(_ProgressFormatter("%(message)s"))
        if _console_handler(logger, logging.WARNING):
            handler.addFilter(lambda record: record.levelno < logging.WARNING)
        logger.addHandler(handler)
    if logger.getEffectiveLevel() > logging.INFO:
        logger.setLevel(logging.INFO)
    try:
        yield
    finally:
        if handler is not None:
            logger.removeHandler(handler)
        logger.setLevel(level)


def _explicit(ctx: click.Context, names: list[str]) -> set[str]:
    """The :class:`TrainArgs` fields the user gave on the command line (or environment)."""
    given = set()
    for name in names:
        if ctx.get_parameter_source(name) not in (ParameterSource.DEFAULT,
                                                  ParameterSource.DEFAULT_MAP):
            given.add("model_kwargs" if name == "model_kw" else name)
    return given


@click.command("train")
@click.option("--data", required=True, help="FER2013 CSV (.csv/.csv.gz) or an image folder root.")
@click.option("--out", required=True, help="Run folder: checkpoints, metrics, curves.")
@click.option("--dataset", type=click.Choice(dataset_names()), default=_train("dataset"), show_default=True)
@click.option("--ferplus", default=_train("ferplus"), help="fer2013new.csv (FER+ votes) for --dataset ferplus.")
@click.option("--ferplus-mode", type=click.Choice(FERPLUS_MODES), default=_train("ferplus_mode"), show_default=True)
@click.option("--val-data", default=_train("val_data"), help="Validation image folder for --dataset folder.")
@click.option("--classes", default=None, help="Comma-separated subset of labels, e.g. happy,sad,surprise,neutral.")
@click.option("--model", default=_train("model"), show_default=True, help="Architecture name (see `ferbatch models`).")
@click.option("--model-kw", multiple=True, help="Architecture option KEY=VALUE (repeatable), e.g. width=40.")
@click.option("--pretrained", default=_train("pretrained"), help="Local ImageNet weights file for tv_* backbones.")
@click.option("--image-size", default=_train("image_size"), show_default=True, help="Face side (px) the data are resized to.")
@click.option("--input-size", default=_train("input_size"), show_default=True, help="Crop side (px) the model sees.")
@click.option("--mean", default=_train("mean"), show_default=True, help="Normalisation mean of grey levels in [0, 1].")
@click.option("--std", default=_train("std"), show_default=True, help="Normalisation std of grey levels in [0, 1].")
@click.option("--epochs", default=_train("epochs"), show_default=True)
@click.option("--batch-size", default=_train("batch_size"), show_default=True)
@click.option("--optimizer", type=click.Choice(OPTIMIZERS), default=_train("optimizer"), show_default=True)
@click.option("--lr", default=_train("lr"), show_default=True, help="Peak learning rate.")
@click.option("--momentum", default=_train("momentum"), show_default=True)
@click.option("--weight-decay", default=_train("weight_decay"), show_default=True)
@click.option("--schedule", type=click.Choice(SCHEDULES), default=_train("schedule"), show_default=True)
@click.option("--warmup-epochs", default=_train("warmup_epochs"), show_default=True)
@click.option("--augment", default=_train("augment"), show_default=True, help="none | light | standard | strong")
@click.option("--mixup", default=_train("mixup"), show_default=True, help="Mixup alpha; 0 disables.")
@click.option("--label-smoothing", default=_train("label_smoothing"), show_default=True)
@click.option("--class-weights", type=click.Choice(CLASS_WEIGHTS), default=_train("class_weights"), show_default=True)
@click.option("--patience", default=_train("patience"), show_default=True, help="Early stopping on validation accuracy (epochs); 0 = off.")
@click.option("--eval-tta", type=click.Choice(TTA_MODES), default=_train("eval_tta"), show_default=True)
@click.option("--seed", default=_train("seed"), show_default=True)
@click.option("--device", default=_train("device"), show_default=True, help="auto | cpu | cuda[:N]")
@click.option("--amp/--no-amp", default=_train("amp"), show_default=True, help="fp16 autocast on CUDA; bf16 on CPUs with native bf16 (AVX512-BF16/AMX), else fp32.")
@click.option("--channels-last/--no-channels-last", default=_train("channels_last"), show_default=True)
@click.option("--threads", default=_train("threads"), show_default=True, help="torch threads; 0 = default.")
@click.option("--resume", is_flag=True, default=_train("resume"),
              help="Continue from OUT/last.pt; model, its options, sizes, normalisation and "
                   "classes come from the run's config.json.")
@click.option("--limit", default=_train("limit"), help="Use only the first N training images (smoke tests).")
@click.option("--crop-scale", default=_train("crop_scale"), show_default=True, help="Face crop size / detector box size at inference.")
@click.option("--crop-shift-y", default=_train("crop_shift_y"), show_default=True, help="Downward shift of the crop, in box heights.")
@click.option("--half-weights/--no-half-weights", default=_train("half_weights"), show_default=True, help="Store best.pt weights as fp16.")
@click.option("--quiet", is_flag=True, default=_train("quiet"), help="No per-epoch progress on stderr.")
def train_command(**opts: Any) -> None:
    """Train an emotion model; select it on the validation split; report the test split once."""
    from .train.main import main

    explicit = _explicit(click.get_current_context(), list(opts))
    opts["model_kwargs"] = parse_kv(opts.pop("model_kw"))
    opts["classes"] = _classes(opts["classes"])
    try:
        with progress_logging(opts["quiet"]):
            metrics = main(TrainArgs(**opts), explicit=explicit)
    except FerbatchError as exc:
        raise click.ClickException(str(exc)) from exc
    test = metrics.get("test")
    if test:
        click.echo(f"test accuracy {test['accuracy']:.4f}  macro-F1 {test['macro_f1']:.4f}  "
                   f"(best epoch {metrics['best_epoch']}) → {opts['out']}/best.pt")


@click.command("evaluate")
@click.option("--data", required=True, help="FER2013 CSV, FER+'s FER2013 CSV, or an image folder root.")
@click.option("--dataset", type=click.Choice(dataset_names()), default=_train("dataset"), show_default=True)
@click.option("--ferplus", default=None, help="fer2013new.csv (FER+ votes) for --dataset ferplus.")
@click.option("--split", type=click.Choice(["test", "val", "train"]), default="test", show_default=True,
              help="Folders: uses DATA/<split>/ when it exists, else DATA itself.")
@click.option("--model", "model_path", default=None, metavar="NAME|PATH", help="A bundled model's name (`ferbatch models`) or a checkpoint file; default: the bundled default.")
@click.option("--tta", type=click.Choice(TTA_MODES), default="none", show_default=True)
@click.option("--json", "json_path", required=True, help="Write the metrics here (JSON).")
@click.option("--out-dir", default=None, help="Confusion matrix CSV/PNG folder; default: the JSON's folder.")
@click.option("--device", default=_train("device"), show_default=True, help="auto | cpu | cuda[:N]")
@click.option("--batch-size", default=512, show_default=True)
@click.option("--quiet", is_flag=True, help="Print only accuracy and macro-F1, not the per-class table.")
def evaluate_command(model_path: str | None, data: str, dataset: str, ferplus: str | None,
                     split: str, tta: str, json_path: str, out_dir: str | None, device: str,
                     batch_size: int, quiet: bool) -> None:
    """Score a checkpoint on one split: accuracy, macro-F1, per-class metrics, confusion matrix.

    Classes are matched to the model's labels by name; classes the model lacks are skipped and
    reported, and metrics cover the dataset's classes.
    """
    from .train.evaluate import evaluate_main, format_report

    try:
        report = evaluate_main(model_path, data, dataset=dataset, split=split, tta=tta,
                               json_path=json_path, out_dir=out_dir, ferplus=ferplus,
                               device=device, batch_size=batch_size)
    except FerbatchError as exc:
        raise click.ClickException(str(exc)) from exc
    click.echo(format_report(report, per_class=not quiet))


def _space_help(name: str, what: str) -> str:
    return (f"{what}. Random search default: {DEFAULT_SPACE[name]}; grid default: the "
            "`ferbatch train` value.")


@click.command("tune")
@click.option("--data", required=True, help="FER2013 CSV (.csv/.csv.gz) or an image folder root.")
@click.option("--out", required=True, help="Folder for Ray Tune's trial logs and tune_results.csv/.json.")
@click.option("--dataset", type=click.Choice(dataset_names()), default=_tune("dataset"), show_default=True)
@click.option("--ferplus", default=_tune("ferplus"), help="fer2013new.csv (FER+ votes) for --dataset ferplus.")
@click.option("--ferplus-mode", type=click.Choice(FERPLUS_MODES), default=_tune("ferplus_mode"), show_default=True)
@click.option("--val-data", default=_tune("val_data"), help="Validation image folder for --dataset folder.")
@click.option("--classes", default=None, help="Comma-separated subset of labels.")
@click.option("--search", type=click.Choice(SEARCHES), default=_tune("search"), show_default=True)
@click.option("--samples", default=_tune("samples"), show_default=True, help="Random: number of trials. Grid: repeats of the grid.")
@click.option("--epochs", default=_tune("epochs"), show_default=True, help="Epochs per trial.")
@click.option("--model", default=_tune("model"), show_default=True, help="Architecture name (see `ferbatch models`).")
@click.option("--model-kw", multiple=True, help="Fixed architecture option KEY=VALUE (repeatable).")
@click.option("--lr", default=None, help=_space_help("lr", "Values '0.01,0.05' or (random) a log range '1e-3:1e-1'") + f" (AdamW: {DEFAULT_LR['adamw']}).")
@click.option("--batch-size", default=None, help=_space_help("batch_size", "Values, e.g. '64,128', or (random) a log range"))
@click.option("--dropout", default=None, help=_space_help("dropout", "Model dropout values '0.2,0.4' or (random) a range '0.1:0.5'") + " Only for models with dropout.")
@click.option("--weight-decay", default=None, help=_space_help("weight_decay", "Values or (random) a log range"))
@click.option("--augment", default=None, help=_space_help("augment", "Augmentation presets, e.g. 'light,standard,strong'"))
@click.option("--scheduler", type=click.Choice(SCHEDULERS), default=_tune("scheduler"), show_default=True,
              help="asha stops weak trials early.")
@click.option("--num-cpus", default=_tune("num_cpus"), show_default=True, help="CPUs Ray may use; 0 = all.")
@click.option("--cpus-per-trial", default=_tune("cpus_per_trial"), show_default=True)
@click.option("--gpus-per-trial", default=float(_tune("gpus_per_trial")), show_default=True, help="-1: 1 when CUDA is available, else 0.")
@click.option("--max-concurrent", default=_tune("max_concurrent"), show_default=True, help="0 = as many as resources allow.")
@click.option("--limit", default=_tune("limit"), help="Use only the first N training images.")
@click.option("--seed", default=_tune("seed"), show_default=True)
@click.option("--set", "base", multiple=True, help="Any other `train` option KEY=VALUE, e.g. input_size=40 (repeatable); fixes a searched one.")
@click.option("--quiet", is_flag=True, default=_tune("quiet"), help="No progress or summary output.")
def tune_command(**opts: Any) -> None:
    """Hyperparameter search (Ray Tune) over learning rate, batch size, dropout, weight decay
    and augmentation strength.

    Random search (--search random --samples N) draws every dimension not given from its
    default range, shown with each option: lr and weight decay log-uniform, dropout uniform
    (models with a dropout option only), batch size and augmentation preset from a list.
    Grid search tries every combination of the values listed; dimensions not listed keep the
    `ferbatch train` default. `--set NAME=VALUE` fixes a dimension in both.
    """
    from .train.tune import tune_main

    opts["model_kwargs"] = parse_kv(opts.pop("model_kw"))
    opts["base"] = parse_kv(opts["base"])
    opts["classes"] = _classes(opts["classes"])
    try:
        with progress_logging(opts["quiet"]):
            summary = tune_main(TuneOptions(**opts))
    except FerbatchError as exc:
        raise click.ClickException(str(exc)) from exc
    if not opts["quiet"]:
        best = summary["best"]
        searched = ", ".join(f"{k}={best[k]}" for k in SEARCHED if k in best)
        click.echo(f"best of {len(summary['trials'])} trial(s): val accuracy "
                   f"{best['best_val_acc']:.4f} at epoch {best['best_epoch']} with {searched}")
        click.echo(f"retrain: {summary['train_command']}")
        click.echo(f"results: {opts['out']}/tune_results.csv")


def model_summaries() -> dict[str, str]:
    """Registered architecture name → the first paragraph of its builder's docstring."""
    from .models import list_models, model_entrypoint

    out = {}
    for name in list_models():
        doc = (model_entrypoint(name).__doc__ or "").strip().split("\n\n")[0]
        out[name] = " ".join(doc.split())
    return out


@click.command("models")
def models_command() -> None:
    """List the bundled models (usable as --model NAME) and the registered architectures."""
    from .models.bundled import bundled_models

    click.echo("bundled models (--model NAME):")
    for m in bundled_models():
        acc = m.metrics.get("accuracy")
        figures = [f"test acc {acc:.2%}" if acc is not None else "test acc -"]
        if "macro_f1" in m.metrics:
            figures.append(f"macro-F1 {m.metrics['macro_f1']:.2%}")
        if "temperature" in m.metrics:
            figures.append(f"temperature {m.metrics['temperature']:.3f}")
        click.echo(f"  {m.name:<10} {m.arch:<10} {m.size_mb:4.1f} MB  {len(m.labels)} classes: "
                   f"{' '.join(m.labels)}  ({', '.join(figures)})")
    click.echo("architectures (ferbatch train --model ARCH):")
    summaries = model_summaries()
    width = max(map(len, summaries), default=0)
    for name, doc in summaries.items():
        click.echo(f"  {name:<{width}}  {doc}")


@click.command("calibrate-crop")
@click.option("--data", required=True, help="FER2013 CSV whose framing the crops should match.")
@click.option("--split", type=click.Choice(["train", "val", "test"]), default="val", show_default=True)
@click.option("--n", "count", default=400, show_default=True, help="Images to measure.")
@click.option("--checkpoint", default=None, help="Write the measured framing into this checkpoint.")
def calibrate_command(data: str, split: str, count: int, checkpoint: str | None) -> None:
    """Measure how training faces are framed relative to the detector's boxes (crop geometry)."""
    from .models.checkpoint import load_checkpoint, save_checkpoint
    from .train.calibrate import calibrate_crop
    from .train.datasets.fer2013 import load_fer2013

    try:
        images = load_fer2013(data)[split].images[:count].numpy()
        result = calibrate_crop(images)
        click.echo(f"faces found in {result.found}/{result.total} images; crop_scale "
                   f"{result.crop_scale:.3f} (IQR {result.scale_iqr[0]:.3f}-{result.scale_iqr[1]:.3f}), "
                   f"crop_shift_y {result.crop_shift_y:+.3f}")
        if checkpoint:
            ckpt = load_checkpoint(checkpoint)
            ckpt.preprocess.crop_scale = round(result.crop_scale, 3)
            ckpt.preprocess.crop_shift_y = round(result.crop_shift_y, 3)
            ckpt.extra["crop_calibration"] = {"data": data, "split": split, "n": count,
                                              "found": result.found}
            save_checkpoint(ckpt, checkpoint)
            click.echo(f"wrote crop_scale/crop_shift_y into {checkpoint}")
    except FerbatchError as exc:
        raise click.ClickException(str(exc)) from exc


@click.command("calibrate-temperature")
@click.option("--data", required=True, help="Dataset to fit on: FER2013 CSV, FER+'s, or an image folder.")
@click.option("--dataset", type=click.Choice(dataset_names()), default="fer2013", show_default=True)
@click.option("--ferplus", default=None, help="fer2013new.csv (FER+ votes) for --dataset ferplus.")
@click.option("--split", type=click.Choice(["train", "val", "test"]), default="val", show_default=True,
              help="Fit on the validation split (FER2013 PublicTest); never on the test split you report.")
@click.option("--checkpoint", required=True, help="Checkpoint to calibrate (rewritten in place unless --out).")
@click.option("--out", default=None, help="Write the calibrated checkpoint here instead.")
@click.option("--device", default="auto", show_default=True)
def calibrate_temperature_command(data: str, dataset: str, ferplus: str | None, split: str,
                                  checkpoint: str, out: str | None, device: str) -> None:
    """Fit the softmax temperature of a checkpoint (temperature scaling, Guo et al. 2017) on a
    held-out split and store it with the weights, so ferbatch's p_<label> columns are calibrated.

    Prints ECE (15 bins), NLL and Brier score on that split before and after; the top label of
    every face is unchanged.
    """
    from .devices import resolve_device
    from .models.checkpoint import load_checkpoint, save_checkpoint
    from .train.calibration import calibrate_temperature
    from .train.evaluate import load_eval_data

    try:
        ckpt = load_checkpoint(checkpoint)
        face, skipped = load_eval_data(data, dataset, split, ckpt.labels,
                                       ckpt.preprocess.image_size, ferplus)
        cal = calibrate_temperature(ckpt, face, resolve_device(device), f"{dataset}:{split}")
        cal["data"] = str(data)
        target = out or checkpoint
        save_checkpoint(ckpt, target)
    except FerbatchError as exc:
        raise click.ClickException(str(exc)) from exc
    b, a = cal["before"], cal["after"]
    click.echo(f"temperature {cal['temperature']:.4f} fitted on {cal['n']} faces ({dataset} {split})"
               + (f"; skipped classes: {', '.join(skipped)}" if skipped else ""))
    click.echo(f"ECE {b['ece']:.4f} -> {a['ece']:.4f}  NLL {b['nll']:.4f} -> {a['nll']:.4f}  "
               f"Brier {b['brier']:.4f} -> {a['brier']:.4f}")
    click.echo(f"wrote the calibration into {target}")


COMMANDS = [train_command, evaluate_command, tune_command, models_command, calibrate_command,
            calibrate_temperature_command]
