"""CLI commands of the trainer: ``ferbatch train``, ``evaluate`` and ``tune`` (the model
commands ``models``, ``calibrate-crop`` and ``calibrate-temperature``: :mod:`ferbatch.cli_models`).

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

from .devices import DEVICE_HELP
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
from .train.datasets.infer import SPLIT_CHOICES
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


def train_args(params: dict[str, Any]) -> TrainArgs:
    """The :class:`TrainArgs` of ``ferbatch train``'s parsed click parameters (``--model-kw``
    pairs, comma-separated ``--classes``, repeated ``--teacher``)."""
    opts = dict(params)
    opts["model_kwargs"] = parse_kv(opts.pop("model_kw"))
    opts["classes"] = _classes(opts["classes"])
    opts["teacher"] = list(opts["teacher"])
    return TrainArgs(**opts)


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


#: the splits, in the words of FER2013 (every command with --split says it)
SPLIT_HELP = ("FER2013 and FER+: train = Training, val = PublicTest, test = PrivateTest (FER+'s "
              "FER2013Train/Valid/Test); image folders: DATA/<split>/ when it exists, else DATA "
              "itself.")
FERPLUS_HELP = ("fer2013new.csv, the FER+ votes (row-aligned with the FER2013 CSV of --data); "
                "required by --dataset ferplus, an error with any other dataset.  [default: none]")
CACHE_HELP = ("Parsed FER2013 CSVs (~85 MB each) and each --teacher's logits on the "
              "training images (~1 MB) are cached in $FERBATCH_CACHE_DIR "
              "(FERBATCH_CACHE_DIR=off: no cache), else $XDG_CACHE_HOME/ferbatch, else "
              "~/.cache/ferbatch.")


def _dataset_help() -> str:
    from .train.datasets import DATASETS

    return "Format of --data: " + "; ".join(f"{k.name}: {k.summary}" for k in DATASETS.values()) + "."


FERPLUS_MODE_HELP = ("How FER+ votes become targets: majority (one label, rows without a clear "
                     "majority dropped), probability (a label drawn from the votes each batch), "
                     "crossentropy (the vote distribution as soft target).")


def dataset_options(default: Any) -> Any:
    """The dataset options ``train`` and ``tune`` share (``--dataset``, ``--ferplus``,
    ``--ferplus-mode``, ``--val-data``), defaults read through ``default(field_name)``."""
    options = [
        click.option("--dataset", type=click.Choice(dataset_names()), default=default("dataset"),
                     show_default=True, help=_dataset_help()),
        click.option("--ferplus", default=default("ferplus"), metavar="FILE", help=FERPLUS_HELP),
        click.option("--ferplus-mode", type=click.Choice(FERPLUS_MODES),
                     default=default("ferplus_mode"), show_default=True, help=FERPLUS_MODE_HELP),
        click.option("--val-data", default=default("val_data"), metavar="DIR",
                     help="Validation image folder, for --dataset folder only.  [default: DATA/val/ "
                          "when it exists, else a seeded 10 % of the training images]"),
    ]

    def decorate(fn: Any) -> Any:
        for option in reversed(options):
            fn = option(fn)
        return fn

    return decorate
TTA_HELP = "Test-time augmentation: none (one centre crop), flip (+ its mirror), tencrop (10 crops)."


@click.command("train", epilog=CACHE_HELP)
@click.option("--data", required=True, help="FER2013 CSV (.csv/.csv.gz) or an image folder root.")
@click.option("--out", required=True, help="Run folder: checkpoints, metrics, curves.")
@dataset_options(_train)
@click.option("--classes", default=None, metavar="A,B,…",
              help="Comma-separated subset of labels to train on, e.g. happy,sad,surprise,neutral "
                   "(rows of other classes are dropped).  [default: every class of the dataset]")
@click.option("--model", default=_train("model"), show_default=True, help="Architecture name (see `ferbatch models`).")
@click.option("--model-kw", multiple=True, metavar="KEY=VALUE",
              help="Architecture option (repeatable), e.g. width=40.  [default: the architecture's own]")
@click.option("--pretrained", default=_train("pretrained"), metavar="FILE",
              help="Local ImageNet weights file for tv_* backbones.  [default: random init]")
@click.option("--init", default=_train("init"), metavar="NAME|PATH",
              help="Fine-tune: start from this checkpoint's weights (a bundled model's name or a "
                   "file); its architecture and preprocessing are used unless given; classifier "
                   "rows are copied by label name.  [default: none]")
@click.option("--image-size", default=_train("image_size"), show_default=True, help="Face side (px) the data are resized to.")
@click.option("--input-size", default=_train("input_size"), show_default=True, help="Crop side (px) the model sees.")
@click.option("--mean", default=_train("mean"), show_default=True, help="Normalisation mean of grey levels in [0, 1].")
@click.option("--std", default=_train("std"), show_default=True, help="Normalisation std of grey levels in [0, 1].")
@click.option("--epochs", default=_train("epochs"), show_default=True, help="Training epochs (passes over the training split).")
@click.option("--batch-size", default=_train("batch_size"), show_default=True, help="Images per training batch.")
@click.option("--optimizer", type=click.Choice(OPTIMIZERS), default=_train("optimizer"), show_default=True,
              help="sgd: SGD with Nesterov momentum; adamw: AdamW.")
@click.option("--lr", default=_train("lr"), show_default=True, help="Peak learning rate (after warm-up).")
@click.option("--momentum", default=_train("momentum"), show_default=True, help="SGD momentum (sgd only).")
@click.option("--weight-decay", default=_train("weight_decay"), show_default=True,
              help="L2 weight decay (decoupled for adamw).")
@click.option("--schedule", type=click.Choice(SCHEDULES), default=_train("schedule"), show_default=True,
              help="Learning-rate schedule after warm-up: cosine decay to 0, plateau (cut when "
                   "validation accuracy stalls), or none (constant).")
@click.option("--warmup-epochs", default=_train("warmup_epochs"), show_default=True,
              help="Epochs of linear learning-rate warm-up from 0.")
@click.option("--augment", default=_train("augment"), show_default=True,
              help="Augmentation preset: none | light | standard | strong (scale/shift/rotation, "
                   "flip, brightness/contrast, random erasing; README).")
@click.option("--mixup", default=_train("mixup"), show_default=True, help="Mixup alpha; 0 disables.")
@click.option("--label-smoothing", default=_train("label_smoothing"), show_default=True,
              help="Label smoothing of the cross-entropy targets, in [0, 1).")
@click.option("--class-weights", type=click.Choice(CLASS_WEIGHTS), default=_train("class_weights"), show_default=True,
              help="Loss weight per class: none, balanced (1/count) or sqrt (1/sqrt(count)).")
@click.option("--patience", default=_train("patience"), show_default=True,
              help="Early stopping: stop after this many epochs without a validation-accuracy "
                   "gain; 0 = off (train all --epochs).")
@click.option("--eval-test/--no-eval-test", default=_train("eval_test"), show_default=True,
              help="At the end, evaluate best.pt once on the test split (FER2013: PrivateTest) "
                   "into metrics.json. Off by default: the held-out split is scored once, on "
                   "purpose, e.g. with `ferbatch evaluate --record`, not after every run.")
@click.option("--eval-tta", type=click.Choice(TTA_MODES), default=_train("eval_tta"), show_default=True,
              help="With --eval-test, also report the test split with this TTA: "
                   + TTA_HELP.split(": ", 1)[1])
@click.option("--seed", default=_train("seed"), show_default=True, help="Random seed (data order, augmentation, init).")
@click.option("--device", default=_train("device"), show_default=True, help=DEVICE_HELP)
@click.option("--amp/--no-amp", default=_train("amp"), show_default=True, help="Mixed precision: bf16 autocast on GPUs with native bf16 (else fp16 with loss scaling) and on CPUs with native bf16 (AVX512-BF16/AMX), else fp32.")
@click.option("--channels-last/--no-channels-last", default=_train("channels_last"), show_default=True,
              help="Store images and weights channels-last (faster convolutions on the CPU).")
@click.option("--threads", default=_train("threads"), show_default=True, help="torch threads; 0 = torch's default (one per core).")
@click.option("--resume", is_flag=True, default=_train("resume"),
              help="Continue from OUT/last.pt; model, its options, sizes, normalisation and "
                   "classes come from the run's config.json.")
@click.option("--limit", default=_train("limit"), show_default=True,
              help="Use only the first N training images (smoke tests); 0 = all.")
@click.option("--crop-scale", default=_train("crop_scale"), show_default=True, help="Face crop size / detector box size at inference.")
@click.option("--crop-shift-y", default=_train("crop_shift_y"), show_default=True, help="Downward shift of the crop, in box heights.")
@click.option("--half-weights/--no-half-weights", default=_train("half_weights"), show_default=True, help="Store best.pt weights as fp16.")
@click.option("--snapshot-from", type=click.IntRange(min=0), default=_train("snapshot_from"),
              show_default=True, metavar="EPOCH",
              help="Also keep the weights after every epoch from EPOCH on, in "
                   "OUT/snapshots/epochNN.pt (for `ferbatch average-weights`); 0 = none.")
@click.option("--teacher", multiple=True, metavar="NAME|PATH",
              help="Knowledge distillation: learn also from this checkpoint's softened outputs "
                   "(repeat for an ensemble; logits averaged, computed once per training image "
                   "and cached in OUT/teacher_logits.pt, and each teacher's in the dataset cache "
                   "for later runs).  [default: none]")
@click.option("--kd-alpha", type=click.FloatRange(0, 1), default=_train("kd_alpha"), show_default=True,
              help="Weight of the distillation term: (1 - a)·CE(labels) + a·T²·KL(teachers).")
@click.option("--kd-temperature", type=click.FloatRange(min=0, min_open=True),
              default=_train("kd_temperature"), show_default=True,
              help="Softmax temperature T of the distillation term (Hinton et al., 2015).")
@click.option("--quiet", is_flag=True, default=_train("quiet"), help="No per-epoch progress on stderr.")
def train_command(**opts: Any) -> None:
    """Train an emotion model; select it on the validation split (and, with --eval-test,
    report the test split once).

    FER2013's splits: Training trains, PublicTest (val) selects the epoch and fits the
    temperature, PrivateTest (test) is left alone unless --eval-test asks for it.
    """
    from .train.main import main

    explicit = _explicit(click.get_current_context(), list(opts))
    args = train_args(opts)
    try:
        with progress_logging(args.quiet):
            metrics = main(args, explicit=explicit)
    except FerbatchError as exc:
        raise click.ClickException(str(exc)) from exc
    test = metrics.get("test")
    if test:
        click.echo(f"test accuracy {test['accuracy']:.4f}  macro-F1 {test['macro_f1']:.4f}  "
                   f"(best epoch {metrics['best_epoch']}) → {opts['out']}/best.pt")
    elif "val_acc" in metrics["val"]:
        click.echo(f"validation accuracy {metrics['val']['val_acc']:.4f}  (best epoch "
                   f"{metrics['best_epoch']}) → {opts['out']}/best.pt")


@click.command("evaluate", epilog=CACHE_HELP)
@click.option("--data", required=True, help="FER2013 CSV, FER+'s FER2013 CSV, or an image folder root.")
@click.option("--dataset", type=click.Choice(dataset_names()), default=None,
              help=_dataset_help() + " [default: from --data: a folder, a FER2013 CSV, or FER+'s "
                   "votes file (the FER2013 CSV beside it is read)]")
@click.option("--ferplus", default=None, metavar="FILE", help=FERPLUS_HELP)
@click.option("--split", type=click.Choice(SPLIT_CHOICES, case_sensitive=False), default="test",
              show_default=True, help=SPLIT_HELP + " FER2013's and FER+'s names are accepted too.")
@click.option("--model", "model_path", default=None, metavar="NAME|PATH", help="A bundled model's name (`ferbatch models`) or a checkpoint file.  [default: default]")
@click.option("--tta", type=click.Choice(TTA_MODES), default="none", show_default=True, help=TTA_HELP)
@click.option("--json", "json_path", default=None, metavar="FILE",
              help="Also write the metrics here (JSON), and the confusion matrix and reliability "
                   "diagram beside it.  [default: print only]")
@click.option("--out-dir", default=None, metavar="DIR",
              help="Folder of <stem>_confusion.csv/.png and <stem>_reliability.png, <stem> being "
                   "the JSON file's name without .json (without --json: <split>_<tta>).  "
                   "[default: the JSON's folder; without --json none are written]")
@click.option("--device", default=_train("device"), show_default=True, help=DEVICE_HELP)
@click.option("--batch-size", default=512, show_default=True, help="Faces per inference batch.")
@click.option("--quiet", is_flag=True, help="Print only the headline figures (accuracy, macro-F1, calibration), not the per-class table.")
@click.option("--record", is_flag=True,
              help="Also store the headline figures in the checkpoint file (metrics[<split>]), "
                   "where `ferbatch models` reads them; the trainer's figure is kept beside.")
def evaluate_command(model_path: str | None, data: str, dataset: str | None, ferplus: str | None,
                     split: str, tta: str, json_path: str | None, out_dir: str | None, device: str,
                     batch_size: int, quiet: bool, record: bool) -> None:
    """Score a checkpoint on one split: accuracy, macro-F1, per-class metrics, confusion matrix.

    Classes are matched to the model's labels by name; classes the model lacks are skipped and
    reported, and metrics cover the dataset's classes.
    """
    from .train.evaluate import evaluate_main, format_report

    try:
        report = evaluate_main(model_path, data, dataset=dataset, split=split, tta=tta,
                               json_path=json_path, out_dir=out_dir, ferplus=ferplus,
                               device=device, batch_size=batch_size, record=record)
    except FerbatchError as exc:
        raise click.ClickException(str(exc)) from exc
    click.echo(format_report(report, per_class=not quiet))


def _space_help(name: str, what: str) -> str:
    return (f"{what}. Random search default: {DEFAULT_SPACE[name]}; grid default: the "
            "`ferbatch train` value.")


@click.command("tune", epilog=CACHE_HELP)
@click.option("--data", required=True, help="FER2013 CSV (.csv/.csv.gz) or an image folder root.")
@click.option("--out", required=True, help="Folder for Ray Tune's trial logs and tune_results.csv/.json.")
@dataset_options(_tune)
@click.option("--classes", default=None, metavar="A,B,…",
              help="Comma-separated subset of labels.  [default: every class of the dataset]")
@click.option("--search", type=click.Choice(SEARCHES), default=_tune("search"), show_default=True,
              help="grid: every combination of the values listed; random: --samples draws.")
@click.option("--samples", default=_tune("samples"), show_default=True, help="Random: number of trials. Grid: repeats of the grid.")
@click.option("--epochs", default=_tune("epochs"), show_default=True, help="Epochs per trial.")
@click.option("--model", default=_tune("model"), show_default=True, help="Architecture name (see `ferbatch models`).")
@click.option("--model-kw", multiple=True, metavar="KEY=VALUE",
              help="Fixed architecture option (repeatable).  [default: the architecture's own]")
@click.option("--lr", default=None, help=_space_help("lr", "Values '0.01,0.05' or (random) a log range '1e-3:1e-1'") + f" (AdamW: {DEFAULT_LR['adamw']}).")
@click.option("--batch-size", default=None, help=_space_help("batch_size", "Values, e.g. '64,128', or (random) a log range"))
@click.option("--dropout", default=None, help=_space_help("dropout", "Model dropout values '0.2,0.4' or (random) a range '0.1:0.5'") + " Only for models with dropout.")
@click.option("--weight-decay", default=None, help=_space_help("weight_decay", "Values or (random) a log range"))
@click.option("--augment", default=None, help=_space_help("augment", "Augmentation presets, e.g. 'light,standard,strong'"))
@click.option("--scheduler", type=click.Choice(SCHEDULERS), default=_tune("scheduler"), show_default=True,
              help="fifo runs every trial to the end; asha stops weak trials early.")
@click.option("--num-cpus", default=_tune("num_cpus"), show_default=True, help="CPUs Ray may use; 0 = all.")
@click.option("--cpus-per-trial", default=_tune("cpus_per_trial"), show_default=True,
              help="CPUs each trial reserves (its torch threads).")
@click.option("--gpus-per-trial", default=float(_tune("gpus_per_trial")), show_default=True, help="GPUs each trial reserves; -1: 1 when CUDA is available, else 0.")
@click.option("--max-concurrent", default=_tune("max_concurrent"), show_default=True, help="Trials at once; 0 = as many as resources allow.")
@click.option("--limit", default=_tune("limit"), show_default=True, help="Use only the first N training images; 0 = all.")
@click.option("--seed", default=_tune("seed"), show_default=True, help="Seed of the trial draws and of each trial's training.")
@click.option("--set", "base", multiple=True, metavar="KEY=VALUE",
              help="Any other `train` option (repeatable), e.g. input_size=40; fixes a searched one.")
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


COMMANDS = [train_command, evaluate_command, tune_command]
