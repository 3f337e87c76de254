"""``ferbatch export``: a model as a self-describing ONNX file (fp32 or int8). ``COMMANDS`` lists
the commands for ``cli.py``."""

from __future__ import annotations

import click

from .errors import FerbatchError


@click.command("export")
@click.option("--model", default=None, metavar="NAME|PATH",
              help="Emotion model: a bundled model's name (`ferbatch models`) or a checkpoint "
                   "file.  [default: default]")
@click.option("--format", "fmt", type=click.Choice(["onnx"]), default="onnx", show_default=True,
              help="Export format.")
@click.option("--int8", is_flag=True,
              help="Quantise to int8 (static, calibrated on --data's PublicTest faces).  "
                   "[default: fp32]")
@click.option("--out", "-o", required=True, type=click.Path(dir_okay=False), metavar="FILE",
              help="The .onnx file to write (atomically; only after every check passed).")
@click.option("--data", default=None, type=click.Path(dir_okay=False), metavar="CSV",
              help="FER2013 CSV (.csv or .csv.gz): PublicTest calibrates --int8, PrivateTest "
                   "checks the export and measures its accuracy. Needed with --int8.  "
                   "[default: check on noise faces only]")
@click.option("--calibration-n", type=click.IntRange(min=1), default=1000, show_default=True,
              metavar="N", help="PublicTest faces used to calibrate --int8.")
@click.option("--quiet", "-q", is_flag=True, help="No progress lines on stderr (the results are still printed).")
def export_command(model: str | None, fmt: str, int8: bool, out: str, data: str | None,
                   calibration_n: int, quiet: bool) -> None:
    """Export an emotion model to ONNX, verified against PyTorch with ONNX Runtime.

    The graph takes normalised N×1×S×S faces (dynamic batch) and gives logits and calibrated
    probabilities; labels, preprocessing and temperature are in the file's metadata. fp32 must
    match PyTorch's probabilities within 1e-4.
    """
    from .export import export_model

    del fmt  # one format so far
    try:
        r = export_model(model, out, int8=int8, data=data, calibration_n=calibration_n,
                         progress=None if quiet else lambda line: click.echo(f"{line} …", err=True))
    except FerbatchError as exc:
        raise click.ClickException(str(exc)) from exc
    click.echo(f"wrote {r.path} ({'int8' if r.int8 else 'fp32'}, {r.size_bytes / 1e6:.2f} MB)")
    click.echo(f"fp32 ONNX Runtime vs PyTorch: max |dp| {r.max_abs_diff_fp32:.2g} on {r.verified_on}")
    if r.accuracy_fp32 is not None:
        click.echo(f"PrivateTest accuracy (n {r.test_n}): ONNX fp32 {r.accuracy_fp32:.2%}")
    if r.accuracy_int8 is not None:
        drop = 100 * ((r.accuracy_fp32 or 0.0) - r.accuracy_int8)
        click.echo(f"int8 (calibrated on {r.calibration_n} PublicTest faces): accuracy "
                   f"{r.accuracy_int8:.2%} ({drop:+.2f} points below fp32), top-1 agreement "
                   f"with fp32 {r.top1_agreement_int8:.2%}, max |dp| {r.max_abs_diff_int8:.2g}")


COMMANDS = [export_command]
