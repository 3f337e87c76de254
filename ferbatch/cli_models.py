"""CLI commands about models: ``ferbatch models``, ``calibrate-crop``,
``calibrate-temperature``, ``average-weights`` and ``ensemble``. ``COMMANDS`` lists them for ``cli.py``."""

from __future__ import annotations

from pathlib import Path

import click

from .cli_train import CACHE_HELP, FERPLUS_HELP, SPLIT_HELP, _dataset_help
from .devices import DEVICE_HELP
from .errors import FerbatchError
from .train.datasets import dataset_names, test_split_name


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
    models = bundled_models()
    arch_width = max((len(m.arch) for m in models), default=0)
    for m in models:
        acc = m.metrics.get("accuracy")
        split = test_split_name(m.metrics.get("dataset"))
        figures = [f"{split} acc {acc:.2%}" if acc is not None else "no test-split figures"]
        if "macro_f1" in m.metrics:
            figures.append(f"macro-F1 {m.metrics['macro_f1']:.2%}")
        if "temperature" in m.metrics:
            figures.append(f"temperature {m.metrics['temperature']:.3f}")
        click.echo(f"  {m.name:<10} {m.arch:<{arch_width}} {m.size_mb:4.1f} MB  {len(m.labels)} classes: "
                   f"{' '.join(m.labels)}  ({', '.join(figures)})")
    click.echo("architectures (ferbatch train --model ARCH):")
    summaries = model_summaries()
    width = max(map(len, summaries), default=0)
    for name, doc in summaries.items():
        click.echo(f"  {name:<{width}}  {doc}")


@click.command("calibrate-crop", epilog=CACHE_HELP)
@click.option("--data", required=True, help="FER2013 CSV whose framing the crops should match.")
@click.option("--split", type=click.Choice(["train", "val", "test"]), default="val", show_default=True,
              help="FER2013 split to measure: train = Training, val = PublicTest, test = PrivateTest.")
@click.option("--n", "count", default=400, show_default=True, help="Images to measure (the split's first N).")
@click.option("--checkpoint", default=None, metavar="FILE",
              help="Write the measured framing into this checkpoint.  [default: only print it]")
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


@click.command("calibrate-temperature", epilog=CACHE_HELP)
@click.option("--data", required=True, help="Dataset to fit on: FER2013 CSV, FER+'s, or an image folder.")
@click.option("--dataset", type=click.Choice(dataset_names()), default="fer2013", show_default=True,
              help=_dataset_help())
@click.option("--ferplus", default=None, metavar="FILE", help=FERPLUS_HELP)
@click.option("--split", type=click.Choice(["train", "val", "test"]), default="val", show_default=True,
              help="Split to fit on: " + SPLIT_HELP + " Fit on val; never on the test split you report.")
@click.option("--checkpoint", required=True, help="Checkpoint to calibrate (rewritten in place unless --out).")
@click.option("--out", default=None, help="Write the calibrated checkpoint here instead.  [default: --checkpoint]")
@click.option("--device", default="auto", show_default=True, help=DEVICE_HELP)
def calibrate_temperature_command(data: str, dataset: str, ferplus: str | None, split: str,
                                  checkpoint: str, out: str | None, device: str) -> None:
    """Fit the softmax temperature of a checkpoint (temperature scaling, Guo et al. 2017) on a
    held-out split and store it with the weights, so ferbatch's p_<label> columns are calibrated.

    Prints ECE (15 bins), NLL and Brier score on that split before and after; the top label of
    every face is unchanged.
    """
    from .devices import resolve_device
    from .models.checkpoint import load_checkpoint, save_checkpoint
    from .train.calibration import calibrate_temperature, ece_warning
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
    if warning := ece_warning(cal):
        click.echo(f"warning: {warning}", err=True)
    click.echo(f"wrote the calibration into {target}")


def _check_writable(out: str) -> None:
    """A :class:`click.ClickException` naming ``out`` when no file can be written there (an
    empty path, an existing special file such as ``/dev/full``, a folder that cannot be created
    or written); creates the folder."""
    import tempfile

    if not out.strip():
        raise click.ClickException("cannot write an empty path: give --out a file name")
    target = Path(out)
    if target.exists() and not target.is_file():  # a device or other special file: never replace it
        raise click.ClickException(f"cannot write {out}: it exists and is not a regular file")
    folder = target.parent
    if folder.exists() and not folder.is_dir():
        raise click.ClickException(f"cannot write {out}: {folder} is a file, not a folder")
    try:
        folder.mkdir(parents=True, exist_ok=True)
        with tempfile.NamedTemporaryFile(dir=folder, prefix=".ferbatch-probe-"):
            pass
    except OSError as exc:
        raise click.ClickException(f"cannot write {out}: {exc.strerror or exc}") from exc


@click.command("average-weights", epilog=CACHE_HELP)
@click.argument("snapshots", nargs=-1, required=True, metavar="SNAPSHOT...")
@click.option("--template", required=True, metavar="FILE",
              help="A checkpoint of the same run (e.g. its best.pt): architecture, labels, "
                   "preprocessing, augmentation and data splits come from it, not its weights.")
@click.option("--data", default=None,
              help="The run's training data, when it moved.  [default: the template's]")
@click.option("--dataset", type=click.Choice(dataset_names()), default=None,
              help=_dataset_help() + "  [default: the template's]")
@click.option("--ferplus", default=None, metavar="FILE",
              help="fer2013new.csv, the FER+ votes, when it moved.  [default: the template's]")
@click.option("--out", required=True, type=click.Path(dir_okay=False), metavar="FILE",
              help="Where to write the averaged checkpoint.")
@click.option("--seed", default=0, show_default=True, help="Seed of the batch-norm pass's augmentation.")
@click.option("--device", default="auto", show_default=True, help=DEVICE_HELP)
def average_weights_command(snapshots: tuple[str, ...], template: str, data: str | None,
                            dataset: str | None, ferplus: str | None, out: str, seed: int,
                            device: str) -> None:
    """Average the weights of a run's epoch snapshots (SWA, Izmailov et al. 2018).

    SNAPSHOT: `ferbatch train --snapshot-from`'s OUT/snapshots/epochNN.pt, a copy of the run's
    last.pt taken after an epoch, or a checkpoint of the same run. Batch-norm statistics are
    recomputed on the run's training split; the temperature is fitted on its validation split.
    Prints the validation accuracy of the template and of the average: choose the snapshots on
    the validation split, never on the test split you report.
    """
    from .train.average import average_main, describe

    _check_writable(out)  # now, not after the batch-norm pass
    try:
        res = average_main(snapshots, template, out, data=data, dataset=dataset,
                           ferplus=ferplus, seed=seed, device=device,
                           announce=lambda line: click.echo(line, err=True),
                           warn=lambda line: click.echo(f"warning: {line}", err=True))
    except FerbatchError as exc:
        raise click.ClickException(str(exc)) from exc
    click.echo(f"validation split ({res.n_val} faces): template {describe(res.template)}; "
               f"average of {res.n_snapshots} {describe(res.average)}")
    cal = res.calibration
    click.echo(f"temperature {cal['temperature']:.4f} fitted on the validation split: "
               f"ECE {cal['before']['ece']:.4f} -> {cal['after']['ece']:.4f}")
    click.echo(f"wrote {out}")


@click.command("ensemble")
@click.argument("members", nargs=-1, required=True, metavar="MEMBER...")
@click.option("--out", required=True, type=click.Path(dir_okay=False), metavar="FILE",
              help="Where to write the ensemble's checkpoint.")
def ensemble_command(members: tuple[str, ...], out: str) -> None:
    """Combine trained vgg_gap checkpoints into one model whose logits are their mean.

    MEMBER: a checkpoint file or a bundled model's name; at least two, with the same labels,
    depth, input size and normalisation. The result is an ordinary checkpoint (--model FILE);
    fit its crop and temperature next (`ferbatch calibrate-crop`, `calibrate-temperature`).
    Choose the members on the validation split, never on the test split you report.
    """
    from .models.checkpoint import save_checkpoint
    from .models.ensemble import load_members, make_ensemble

    _check_writable(out)
    try:
        ensemble = make_ensemble(load_members(members))
        save_checkpoint(ensemble, out)
    except FerbatchError as exc:
        raise click.ClickException(str(exc)) from exc
    except OSError as exc:
        raise click.ClickException(f"cannot write {out}: {exc.strerror or exc}") from exc
    widths = ensemble.arch_kwargs["widths"]
    click.echo(f"wrote {out}: {len(widths)} members (vgg_gap widths {widths}), "
               f"{len(ensemble.labels)} classes")


COMMANDS = [models_command, calibrate_command, calibrate_temperature_command,
            average_weights_command, ensemble_command]
