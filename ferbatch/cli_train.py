"""CLI commands of the trainer: ``ferbatch train``, ``evaluate``, ``tune`` and ``models``.

Click parses; options become a typed :class:`~ferbatch.train.main.TrainArgs` (or evaluate /
tune options), which the plain ``main`` functions run. ``COMMANDS`` lists them for ``cli.py``.
"""

from __future__ import annotations

import json
from typing import Any

import click

from .errors import FerbatchError


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


@click.command("train")
@click.option("--data", required=True, help="FER2013 CSV (.csv/.csv.gz) or an image folder root.")
@click.option("--out", required=True, help="Run folder: checkpoints, metrics, curves.")
@click.option("--dataset", type=click.Choice(["fer2013", "ferplus", "folder"]), default="fer2013", show_default=True)
@click.option("--ferplus", default=None, help="fer2013new.csv (FER+ votes) for --dataset ferplus.")
@click.option("--ferplus-mode", type=click.Choice(["majority", "probability", "crossentropy"]), default="majority", show_default=True)
@click.option("--val-data", default=None, help="Validation image folder for --dataset folder.")
@click.option("--classes", default=None, help="Comma-separated subset of labels, e.g. happy,sad,surprise,neutral.")
@click.option("--model", default="vgg_gap", show_default=True, help="Architecture name (see `ferbatch models`).")
@click.option("--model-kw", multiple=True, help="Architecture option KEY=VALUE (repeatable), e.g. width=40.")
@click.option("--pretrained", default=None, help="Local ImageNet weights file for tv_* backbones.")
@click.option("--image-size", default=48, show_default=True)
@click.option("--input-size", default=40, show_default=True, help="Crop size the model sees.")
@click.option("--epochs", default=50, show_default=True)
@click.option("--batch-size", default=128, show_default=True)
@click.option("--optimizer", type=click.Choice(["sgd", "adamw"]), default="sgd", show_default=True)
@click.option("--lr", default=0.05, show_default=True)
@click.option("--momentum", default=0.9, show_default=True)
@click.option("--weight-decay", default=5e-4, show_default=True)
@click.option("--schedule", type=click.Choice(["cosine", "plateau", "none"]), default="cosine", show_default=True)
@click.option("--warmup-epochs", default=1, show_default=True)
@click.option("--augment", default="standard", show_default=True, help="none | light | standard | strong")
@click.option("--mixup", default=0.0, show_default=True, help="Mixup alpha; 0 disables.")
@click.option("--label-smoothing", default=0.1, show_default=True)
@click.option("--class-weights", type=click.Choice(["none", "balanced", "sqrt"]), default="none", show_default=True)
@click.option("--patience", default=0, show_default=True, help="Early stopping on validation accuracy (epochs); 0 = off.")
@click.option("--eval-tta", type=click.Choice(["none", "flip", "tencrop"]), default="none", show_default=True)
@click.option("--seed", default=0, show_default=True)
@click.option("--device", default="auto", show_default=True)
@click.option("--amp/--no-amp", default=True, show_default=True, help="bf16 autocast on CPU, fp16 on CUDA.")
@click.option("--channels-last/--no-channels-last", default=True, show_default=True)
@click.option("--threads", default=0, show_default=True, help="torch threads; 0 = default.")
@click.option("--resume", is_flag=True, help="Continue from OUT/last.pt.")
@click.option("--limit", default=0, help="Use only the first N training images (smoke tests).")
@click.option("--crop-scale", default=0.95, show_default=True, help="Face crop size / detector box size at inference.")
@click.option("--crop-shift-y", default=0.0, show_default=True, help="Downward shift of the crop, in box heights.")
@click.option("--quiet", is_flag=True)
def train_command(**opts: Any) -> None:
    """Train an emotion model; select it on the validation split; report the test split once."""
    from .train.main import TrainArgs, main

    opts["model_kwargs"] = parse_kv(opts.pop("model_kw"))
    opts["classes"] = _classes(opts["classes"])
    try:
        metrics = main(TrainArgs(**opts))
    except FerbatchError as exc:
        raise click.ClickException(str(exc)) from exc
    test = metrics.get("test")
    if test:
        click.echo(f"test accuracy {test['accuracy']:.4f}  macro-F1 {test['macro_f1']:.4f}  "
                   f"(best epoch {metrics['best_epoch']}) → {opts['out']}/best.pt")


@click.command("evaluate")
@click.option("--data", required=True, help="FER2013 CSV, FER+'s FER2013 CSV, or an image folder root.")
@click.option("--dataset", type=click.Choice(["fer2013", "ferplus", "folder"]), default="fer2013", show_default=True)
@click.option("--ferplus", default=None, help="fer2013new.csv (FER+ votes) for --dataset ferplus.")
@click.option("--split", type=click.Choice(["test", "val", "train"]), default="test", show_default=True,
              help="Folders: uses DATA/<split>/ when it exists, else DATA itself.")
@click.option("--model", "model_path", default=None, help="Checkpoint (.pt); default: the bundled model.")
@click.option("--tta", type=click.Choice(["none", "flip", "tencrop"]), default="none", show_default=True)
@click.option("--json", "json_path", required=True, help="Write the metrics here (JSON).")
@click.option("--out-dir", default=None, help="Confusion matrix CSV/PNG folder; default: the JSON's folder.")
@click.option("--device", default="auto", show_default=True)
@click.option("--batch-size", default=512, show_default=True)
@click.option("--quiet", is_flag=True, help="Do not print the per-class table.")
def evaluate_command(model_path: str | None, data: str, dataset: str, ferplus: str | None,
                     split: str, tta: str, json_path: str, out_dir: str | None, device: str,
                     batch_size: int, quiet: bool) -> None:
    """Score a checkpoint on one split: accuracy, macro-F1, per-class metrics, confusion matrix.

    Classes are matched to the model's labels by name; classes the model lacks are skipped and
    reported, and metrics cover the dataset's classes.
    """
    from .train.evaluate import evaluate_main

    try:
        evaluate_main(model_path, data, dataset, split, tta, json_path, out_dir, ferplus,
                      device, batch_size=batch_size, quiet=quiet)
    except FerbatchError as exc:
        raise click.ClickException(str(exc)) from exc


@click.command("tune")
@click.option("--data", required=True, help="FER2013 CSV (.csv/.csv.gz) or an image folder root.")
@click.option("--out", required=True, help="Folder for Ray Tune's trial logs and tune_results.csv/.json.")
@click.option("--dataset", type=click.Choice(["fer2013", "ferplus", "folder"]), default="fer2013", show_default=True)
@click.option("--ferplus", default=None, help="fer2013new.csv (FER+ votes) for --dataset ferplus.")
@click.option("--ferplus-mode", type=click.Choice(["majority", "probability", "crossentropy"]), default="majority", show_default=True)
@click.option("--val-data", default=None, help="Validation image folder for --dataset folder.")
@click.option("--classes", default=None, help="Comma-separated subset of labels.")
@click.option("--search", type=click.Choice(["grid", "random"]), default="grid", show_default=True)
@click.option("--samples", default=1, show_default=True, help="Random: number of trials. Grid: repeats of the grid.")
@click.option("--epochs", default=10, show_default=True, help="Epochs per trial.")
@click.option("--model", default="vgg_gap", show_default=True, help="Architecture name (see `ferbatch models`).")
@click.option("--model-kw", multiple=True, help="Fixed architecture option KEY=VALUE (repeatable).")
@click.option("--lr", default="0.05", show_default=True, help="Values '0.01,0.05' or (random) a log range '1e-3:1e-1'.")
@click.option("--batch-size", default="128", show_default=True, help="Values, e.g. '64,128'.")
@click.option("--dropout", default=None, help="Model dropout values '0.2,0.4' or (random) a range '0.1:0.5'.")
@click.option("--weight-decay", default="5e-4", show_default=True, help="Values or (random) a log range.")
@click.option("--augment", default="standard", show_default=True, help="Presets, e.g. 'light,standard,strong'.")
@click.option("--scheduler", type=click.Choice(["fifo", "asha"]), default="fifo", show_default=True,
              help="asha stops weak trials early.")
@click.option("--num-cpus", default=0, show_default=True, help="CPUs Ray may use; 0 = all.")
@click.option("--cpus-per-trial", default=1, show_default=True)
@click.option("--gpus-per-trial", default=-1.0, show_default=True, help="-1: 1 when CUDA is available, else 0.")
@click.option("--max-concurrent", default=0, show_default=True, help="0 = as many as resources allow.")
@click.option("--limit", default=0, help="Use only the first N training images.")
@click.option("--seed", default=0, show_default=True)
@click.option("--set", "base", multiple=True, help="Any other `train` option KEY=VALUE, e.g. input_size=40 (repeatable).")
@click.option("--quiet", is_flag=True)
def tune_command(**opts: Any) -> None:
    """Hyperparameter search (Ray Tune) over lr, batch size, dropout, weight decay, augmentation."""
    from .train.tune import TuneOptions, tune_main

    opts["model_kwargs"] = parse_kv(opts.pop("model_kw"))
    opts["base"] = parse_kv(opts["base"])
    opts["classes"] = _classes(opts["classes"])
    try:
        tune_main(TuneOptions(**opts))
    except FerbatchError as exc:
        raise click.ClickException(str(exc)) from exc


def model_summaries() -> dict[str, str]:
    """Registered architecture name → the first line of its builder's docstring."""
    from .models import list_models
    from .models.registry import _REGISTRY

    out = {}
    for name in list_models():
        doc = (_REGISTRY[name].__doc__ or "").strip().split("\n\n")[0]
        out[name] = " ".join(doc.split())
    return out


@click.command("models")
def models_command() -> None:
    """List the registered emotion-model architectures."""
    summaries = model_summaries()
    width = max(map(len, summaries), default=0)
    for name, doc in summaries.items():
        click.echo(f"{name:<{width}}  {doc}")


@click.command("calibrate-crop")
@click.option("--data", required=True, help="FER2013 CSV whose framing the crops should match.")
@click.option("--split", type=click.Choice(["train", "val", "test"]), default="val", show_default=True)
@click.option("--n", "count", default=400, show_default=True, help="Images to measure.")
@click.option("--checkpoint", default=None, help="Write the measured framing into this checkpoint.")
def calibrate_command(data: str, split: str, count: int, checkpoint: str | None) -> None:
    """Measure how training faces are framed relative to the detector's boxes (crop geometry)."""
    from .models.checkpoint import load_checkpoint, save_checkpoint
    from .train.calibrate import calibrate_crop
    from .train.data import load_fer2013

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
    except (FerbatchError, ValueError) as exc:
        raise click.ClickException(str(exc)) from exc


COMMANDS = [train_command, evaluate_command, tune_command, models_command, calibrate_command]
