"""ferbatch's command line.

Three layers, as in PySceneDetect: click parses options → they become one validated
:class:`~ferbatch.config.RunConfig` → a controller (:func:`ferbatch.runner.run`) does the work.
"""

from __future__ import annotations

import logging
import sys
from pathlib import Path
from typing import Any

import click

from . import __version__
from .config import ClassifyConfig, DecodeConfig, DetectConfig, RunConfig, TrackConfig
from .distributed import ray_options
from .errors import FerbatchError


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="ferbatch")
def cli() -> None:
    """Facial-emotion timelines for folders of video, written to Parquet."""


def build_config(opts: dict[str, Any]) -> RunConfig:
    """Turn parsed CLI options into a validated RunConfig (raises ConfigError)."""
    config = RunConfig(
        decode=DecodeConfig(fps=opts["fps"], every=opts["every"], threads=opts["decode_threads"]),
        detect=DetectConfig(min_face_size=opts["min_face"], thresholds=tuple(opts["thresholds"]),
                            min_score=opts["min_score"], max_side=opts["det_max_side"],
                            batch_size=opts["det_batch"]),
        track=TrackConfig(iou_threshold=opts["track_iou"], max_gap_s=opts["track_gap"]),
        classify=ClassifyConfig(model=opts["model"], batch_size=opts["cls_batch"],
                                tta_flip=opts["tta_flip"]),
        device=opts["device"],
    )
    return config.validate()


def run_options(fn: Any) -> Any:
    """The options shared by ``ferbatch run`` and the Ray job entrypoint."""
    options = [
        click.option("--out", "-o", required=True, metavar="OUT",
                     help="Output folder (Parquet dataset): a local path, or a URI pyarrow "
                          "understands (s3://bucket/prefix, gs://bucket/prefix, file:///abs/path; "
                          "credentials from the environment)."),
        click.option("--fps", type=float, default=None, help="Analyse N frames per second (time-based)."),
        click.option("--every", type=int, default=None, help="Analyse every N-th frame."),
        click.option("--model", default=None, help="Emotion checkpoint (default: the bundled model)."),
        click.option("--device", default="auto", show_default=True, help="auto | cpu | cuda[:N]"),
        click.option("--min-face", default=DetectConfig.min_face_size, show_default=True,
                     help="Smallest face, in pixels of the displayed frame."),
        click.option("--det-max-side", default=DetectConfig.max_side, show_default=True,
                     help="Downscale frames so their long side is at most this before detection."),
        click.option("--thresholds", nargs=3, type=float, default=DetectConfig.thresholds,
                     show_default=True, help="MTCNN P/R/O-Net thresholds."),
        click.option("--min-score", default=DetectConfig.min_score, show_default=True,
                     help="Drop faces with a lower detection score."),
        click.option("--det-batch", type=click.IntRange(min=1), default=None,
                     help="Frames per detection batch.  [default: 8 on the CPU, one batch per "
                          "core at once; 32 on a GPU]"),
        click.option("--cls-batch", type=click.IntRange(min=1), default=None,
                     help="Faces classified at once.  [default: 256 on a GPU, 32 on the CPU]"),
        click.option("--tta-flip", is_flag=True, help="Average the emotion over the mirrored face too."),
        click.option("--track-iou", default=TrackConfig.iou_threshold, show_default=True),
        click.option("--track-gap", default=TrackConfig.max_gap_s, show_default=True,
                     help="Seconds a face may be unseen and keep its id."),
        click.option("--decode-threads", default=0, show_default=True, help="0 = FFmpeg's choice."),
        click.option("--overwrite", is_flag=True, help="Redo videos already complete in OUT."),
        click.option("--quiet", "-q", is_flag=True, help="No progress bar."),
    ]
    for option in reversed(options):
        fn = option(fn)
    return fn


@cli.command("run")
@click.argument("inputs", nargs=-1, required=True, type=click.Path())
@run_options
@ray_options()
def run_command(inputs: tuple[str, ...], **opts: Any) -> None:
    """Analyse video files and folders (recursively) into Parquet timelines in OUT."""
    from .distributed import ray_kwargs, run_distributed, wants_ray
    from .progress import ConsoleProgress, print_summary
    from .runner import run

    quiet_ffmpeg()
    try:
        config = build_config(opts)
        use_ray = wants_ray(opts["use_ray"], opts["address"], inputs, opts["segment_s"])
        with ConsoleProgress(enabled=not opts["quiet"]) as progress:
            if use_ray:
                summary = run_distributed(list(inputs), opts["out"], config,
                                          overwrite=opts["overwrite"], hook=progress, log=False,
                                          **ray_kwargs(opts))
            else:
                summary = run(list(inputs), opts["out"], config, overwrite=opts["overwrite"],
                              hook=progress)
    except FerbatchError as exc:
        raise click.ClickException(str(exc)) from exc
    print_summary(summary)
    if not summary.all_ok:
        sys.exit(1)


@cli.command("demo")
@click.option("--out", "-o", default="demo_out", show_default=True, type=click.Path(file_okay=False))
@click.option("--quiet", "-q", is_flag=True)
def demo_command(out: str, quiet: bool) -> None:
    """Write demo clips of a real face (scikit-image's astronaut photo) and analyse them."""
    from .demo import run_demo

    quiet_ffmpeg()
    try:
        code = run_demo(Path(out), quiet=quiet)
    except FerbatchError as exc:
        raise click.ClickException(str(exc)) from exc
    sys.exit(code)


def quiet_ffmpeg() -> None:
    """FFmpeg's own per-packet warnings go to the log, not the terminal; errors reach the
    user through the videos table."""
    import av.logging

    av.logging.set_level(av.logging.PANIC)
    logging.getLogger("libav").setLevel(logging.ERROR)


def _register_optional() -> None:
    """Attach the commands of the trainer and the report modules."""
    from .cli_report import COMMANDS as report_commands
    from .cli_train import COMMANDS as train_commands

    for command in [*train_commands, *report_commands]:
        cli.add_command(command)


_register_optional()


def main() -> None:
    cli()


if __name__ == "__main__":
    main()
