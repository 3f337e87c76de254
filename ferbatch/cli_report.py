"""CLI command ``ferbatch report OUT``: summary tables and a static HTML report of an output folder."""

from __future__ import annotations

import click

from .errors import FerbatchError
from .report.defaults import (
    DEFAULT_MAX_GAP_S,
    DEFAULT_METHOD,
    DEFAULT_MIN_EPISODE_S,
    DEFAULT_WINDOW_S,
    METHODS,
)


@click.command("report")
@click.argument("out", type=click.Path(file_okay=False))  # a str: a URI gets a clear error
@click.option("--smooth", "smooth_method", type=click.Choice(METHODS), default=DEFAULT_METHOD,
              show_default=True,
              help="Smoothing of per-face probabilities: causal exponential (time constant = window), "
                   "centred moving average, or none.")
@click.option("--window", "window_s", type=float, default=DEFAULT_WINDOW_S, show_default=True,
              help="Smoothing window / time constant in seconds.")
@click.option("--min-episode", "min_episode_s", type=float, default=DEFAULT_MIN_EPISODE_S,
              show_default=True,
              help="Shortest run of one dominant emotion reported as an episode, in seconds.")
@click.option("--max-gap", "max_gap_s", type=float, default=DEFAULT_MAX_GAP_S, show_default=True,
              help="Seconds: a face unseen for longer than this (and than 2 sampling intervals) starts a new "
                   "track run: smoothing restarts and episodes end.")
@click.option("--min-quality", "min_quality", metavar="ok|NAME=VALUE,…", default=None,
              help="Leave face rows of low quality out of shares, episodes and the HTML: 'ok' uses the "
                   "thresholds the run wrote into _ferbatch.json; NAME=VALUE pairs override some "
                   "(min_face_px, min_sharpness, min_brightness, max_brightness, min_contrast, "
                   "max_abs_yaw, max_abs_pitch, max_occlusion; 'none' switches one off). The excluded "
                   "face-time is reported (README, Face quality). Default: every row counts.")
@click.option("--no-html", is_flag=True, help="Write only the summary tables.")
@click.option("--no-thumbnails", is_flag=True, help="Do not open the source videos for face thumbnails.")
@click.option("--no-explain", is_flag=True,
              help="No Grad-CAM heat maps beside the thumbnails (they need the run's bundled model).")
@click.option("-q", "--quiet", is_flag=True, help="Print only the paths written.")
def report_command(out: str, smooth_method: str, window_s: float, min_episode_s: float,
                   max_gap_s: float, min_quality: str | None, no_html: bool, no_thumbnails: bool, no_explain: bool,
                   quiet: bool) -> None:
    """Summarise the ferbatch output folder OUT: per-video and per-face emotion shares and
    episodes (summary.parquet/.csv, summary_faces.parquet, episodes.parquet) and a static HTML
    report in OUT/report/. Works on runs with failed or partial videos."""
    from .logs import configure_console
    from .report import build_report
    from .text import plural

    if not quiet:
        configure_console()  # warnings (e.g. thumbnails that could not be cut) on stderr

    def progress(video_id: str) -> None:
        if not quiet:
            click.echo(f"  page {video_id}", err=True)

    try:
        rep = build_report(out, smooth_method=smooth_method, window_s=window_s,  # type: ignore[arg-type]
                           min_episode_s=min_episode_s, max_gap_s=max_gap_s, html=not no_html,
                           thumbnails=not no_thumbnails, progress=progress, min_quality=min_quality,
                           explain=not no_explain)
    except FerbatchError as exc:
        raise click.ClickException(str(exc)) from exc
    v = rep.summary.videos
    if not quiet:
        counts = v["status"].fillna("unknown").value_counts()
        click.echo(f"{plural(len(v), 'video')} (" + ", ".join(f"{n} {s}" for s, n in counts.items())
                   + f"), {plural(len(rep.summary.faces), 'face')}, "
                   f"{plural(len(rep.summary.episodes), 'episode')}")
        if "excluded_face_seconds" in v:
            click.echo(f"--min-quality excluded {int(v['excluded_rows'].sum())} face rows, "
                       f"{v['excluded_face_seconds'].sum():.1f} s of face-time")
    names = {"summary": "summary", "summary_csv": "summary (CSV)", "summary_faces": "per face",
             "episodes": "episodes", "html": "HTML report"}
    for key, path in rep.files.items():
        click.echo(f"{names.get(key, key):>15}: {path}")


COMMANDS = [report_command]
