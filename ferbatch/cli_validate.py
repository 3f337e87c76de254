"""CLI command ``ferbatch validate OUT --annotations segments.csv``."""

from __future__ import annotations

import json
from pathlib import Path

import click

from .errors import FerbatchError
from .report.defaults import DEFAULT_MAX_GAP_S, DEFAULT_WINDOW_S


@click.command("validate")
@click.argument("out", type=click.Path(file_okay=False))
@click.option("--annotations", type=click.Path(dir_okay=False), required=True,
              help="CSV video,start_s,end_s,label[,face_id]; video = file name, path or video_id; "
                   "labels through the trainer's aliases (anger → angry, …).")
@click.option("--window", "window_s", type=float, default=DEFAULT_WINDOW_S, show_default=True,
              help="Time constant (s) of the exponential smoothing of the smoothed variants.")
@click.option("--max-gap", "max_gap_s", type=float, default=DEFAULT_MAX_GAP_S, show_default=True,
              help="Seconds: a face unseen for longer starts a new track run.")
@click.option("--min-quality", "min_quality", default="ok", show_default=True, metavar="ok|NAME=VALUE,…",
              help="Thresholds of the quality-filtered variants (as ferbatch report --min-quality).")
@click.option("--report-dir", type=click.Path(file_okay=False), default=None,
              help="Where validation.md / .html / .json go (default: OUT).")
def validate_command(out: str, annotations: str, window_s: float, max_gap_s: float,
                     min_quality: str, report_dir: str | None) -> None:
    """Compare the output folder OUT with annotated segments: per segment the predicted
    distribution and top label; accuracy, macro-F1 and confusion matrices over segments and
    over frames, raw and smoothed, with and without quality filtering. Writes
    validation.md, validation.html and validation.json and prints the metrics table."""
    from .logs import configure_console
    from .output.atomic import atomic_write_text
    from .output.read import load
    from .report.quality import resolve_min_quality
    from .validate import read_annotations, to_html, to_markdown, validate

    configure_console()
    try:
        results = load(out)
        segments = read_annotations(annotations)
        v = validate(results, segments, window_s=window_s, max_gap_s=max_gap_s,
                     thresholds=resolve_min_quality(min_quality, results.meta))
        if v.unknown_labels:  # a typo would silently count as wrong: say so on the terminal
            click.echo("ferbatch validate: WARNING: annotation labels the model does not have "
                       f"(counted as wrong): {', '.join(v.unknown_labels)}; the model's labels: "
                       f"{', '.join(v.labels)}", err=True)
        folder = Path(report_dir) if report_dir else Path(out)
        folder.mkdir(parents=True, exist_ok=True)
        md = to_markdown(v)
        atomic_write_text(folder / "validation.md", md)
        atomic_write_text(folder / "validation.html", to_html(v))
        # per segment: matched video, rows, predicted distribution (pred_<label>) and top label
        # of every variant; NaN (a segment no face row covers) becomes null
        segments = json.loads(v.segments.to_json(orient="records"))
        atomic_write_text(folder / "validation.json", json.dumps(
            {"metrics": v.metrics, "labels": v.labels, "unmatched": v.unmatched,
             "unknown_labels": v.unknown_labels, "settings": v.settings,
             "segments": segments}, indent=2))
        atomic_write_text(folder / "validation_segments.csv", v.segments.to_csv(index=False))
    except FerbatchError as exc:
        raise click.ClickException(str(exc)) from exc
    except OSError as exc:
        raise click.ClickException(f"{exc.filename or out}: {exc.strerror or exc}") from exc
    click.echo(md.split("\n## ")[0].rstrip())
    for name in ("validation.md", "validation.html", "validation.json"):
        click.echo(f"{name:>16}: {folder / name}")


COMMANDS = [validate_command]
