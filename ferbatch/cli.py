"""ferbatch's command line.

Three layers, as in PySceneDetect: click parses options → they become one validated
:class:`~ferbatch.config.RunConfig` (and :class:`~ferbatch.config.PoolConfig`) → the controller
(:func:`ferbatch.runner.controller.run_videos`: plan, executor, output) does the work.
"""

from __future__ import annotations

import contextlib
import signal
import sys
import threading
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import click

from . import __version__
from .config import (
    BACKENDS,
    ClassifyConfig,
    DecodeConfig,
    DetectConfig,
    IntervalConfig,
    PoolConfig,
    RunConfig,
    TrackConfig,
)
from .devices import CPU_CLASSIFY_BATCH, CPU_DETECT_BATCH, DEVICE_HELP, GPU_CLASSIFY_BATCH, GPU_DETECT_BATCH
from .errors import FerbatchError


class Terminated(BaseException):
    """SIGTERM arrived: raised in the main thread, like KeyboardInterrupt for SIGINT."""


#: what an interrupted command leaves, per command (one line on stderr)
_AFTER_INTERRUPT = {
    "run": "videos committed so far are kept; the same command skips them and does the rest",
    "train": "OUT/last.pt holds the last finished epoch: the same command with --resume goes on",
}


def _terminate(signum: int, frame: Any) -> None:
    raise Terminated()


@contextlib.contextmanager
def interruptible(command: str | Callable[[], str]) -> Iterator[None]:
    """Exit 130 on Ctrl-C (SIGINT) and 143 on SIGTERM, with one line on stderr, instead of a
    traceback or click's "Aborted!". The commit protocol keeps the output consistent whenever
    the exception arrives (README, Output contract). ``command``: its name (or a function
    giving it when the interrupt comes), for the message."""
    previous = None
    if threading.current_thread() is threading.main_thread():
        previous = signal.signal(signal.SIGTERM, _terminate)
    try:
        yield
    except (KeyboardInterrupt, Terminated) as exc:
        name, code = (("Ctrl-C", 130) if isinstance(exc, KeyboardInterrupt) else ("SIGTERM", 143))
        command = command if isinstance(command, str) else command()
        after = _AFTER_INTERRUPT.get(command)
        who = " ".join(filter(None, ["ferbatch", command]))
        end_bar = "\n" if sys.stderr.isatty() else ""  # a progress bar may hold the line
        click.echo(f"{end_bar}{who}: interrupted by {name}" + (f"; {after}" if after else ""),
                   err=True)
        raise click.exceptions.Exit(code) from None
    finally:
        if previous is not None:
            signal.signal(signal.SIGTERM, previous)


class _Group(click.Group):
    """The ``ferbatch`` group: every command exits 130/143 when interrupted
    (:func:`interruptible`)."""

    def invoke(self, ctx: click.Context) -> Any:
        with interruptible(lambda: ctx.invoked_subcommand or ""):
            return super().invoke(ctx)


@click.group(cls=_Group, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="ferbatch")
def cli() -> None:
    """Facial-emotion timelines for folders of video, written to Parquet."""


def exit_codes_help() -> str:
    """The exit codes, for the help of ``ferbatch run`` and the Ray job."""
    from .runner.summary import EXIT_CODES

    return "Exit codes:\n\n\b\n" + "\n".join(f"{code:>3}  {text}" for code, text in EXIT_CODES.items())


def build_config(opts: dict[str, Any]) -> RunConfig:
    """Turn parsed CLI options into a validated RunConfig (raises ConfigError; a
    :class:`click.UsageError` for ``--detect-fixed``/``--detect-adaptive`` given without a
    detection interval, which would otherwise be ignored)."""
    adaptive = opts["detect_adaptive"]  # None: neither flag given
    if adaptive is not None and not opts["detect_interval"]:
        raise click.UsageError("--detect-fixed / --detect-adaptive apply only with "
                               "--detect-interval N > 0 (0, the default, detects every frame)")
    config = RunConfig(
        decode=DecodeConfig(fps=opts["fps"], every=opts["every"], threads=opts["decode_threads"]),
        detect=DetectConfig(min_face_size=opts["min_face"], thresholds=tuple(opts["thresholds"]),
                            min_score=opts["min_score"], max_side=opts["det_max_side"],
                            batch_size=opts["det_batch"]),
        track=TrackConfig(iou_threshold=opts["track_iou"], max_gap_s=opts["track_gap"]),
        classify=ClassifyConfig(model=opts["model"], batch_size=opts["cls_batch"],
                                tta_flip=opts["tta_flip"], backend=opts["backend"]),
        device=opts["device"],
        interval=IntervalConfig(detect_interval=opts["detect_interval"],
                                adaptive=IntervalConfig.adaptive if adaptive is None else adaptive),
    )
    return config.validate()


def run_options(fn: Any) -> Any:
    """The options shared by ``ferbatch run`` and the Ray job entrypoint."""
    options = [
        click.option("--out", "-o", required=True, metavar="OUT",
                     help="Output folder (Parquet dataset): a local path, or a URI pyarrow "
                          "understands (s3://bucket/prefix, gs://bucket/prefix, file:///abs/path; "
                          "credentials from the environment)."),
        click.option("--fps", type=float, default=None, metavar="N",
                     help="Analyse N frames per second of video (time-based, correct on variable "
                          "frame rate).  [default: every frame]"),
        click.option("--every", type=int, default=None, metavar="N",
                     help="Analyse every N-th decoded frame.  [default: every frame]"),
        click.option("--model", default=None, metavar="NAME|PATH",
                     help="Emotion model: a bundled model's name (`ferbatch models`) or a "
                          "checkpoint file.  [default: default]"),
        click.option("--device", default=RunConfig.device, show_default=True, help=DEVICE_HELP),
        click.option("--min-face", default=DetectConfig.min_face_size, show_default=True,
                     metavar="PX", help="Smallest face found, in pixels of the displayed frame."),
        click.option("--det-max-side", default=DetectConfig.max_side, show_default=True,
                     metavar="PX",
                     help="Downscale frames so their long side is at most this many pixels "
                          "before detection (boxes are mapped back to the full frame)."),
        click.option("--thresholds", nargs=3, type=float, default=DetectConfig.thresholds,
                     show_default=True, metavar="P R O",
                     help="MTCNN P-, R- and O-Net score thresholds, each in (0, 1)."),
        click.option("--min-score", default=DetectConfig.min_score, show_default=True,
                     help="Drop faces with a lower detection score, in [0, 1)."),
        click.option("--det-batch", type=click.IntRange(min=1), default=None, metavar="N",
                     help=f"Frames per detection batch.  [default: {CPU_DETECT_BATCH} on the CPU, "
                          f"one batch per core at once; {GPU_DETECT_BATCH} on a GPU]"),
        click.option("--cls-batch", type=click.IntRange(min=1), default=None, metavar="N",
                     help=f"Faces classified at once.  [default: {GPU_CLASSIFY_BATCH} on a GPU, "
                          f"{CPU_CLASSIFY_BATCH} on the CPU]"),
        click.option("--tta-flip", is_flag=True,
                     help="Average the emotion over the mirrored face too (about 2x the "
                          "classification time).  [default: off]"),
        click.option("--detect-interval", type=click.IntRange(min=0),
                     default=IntervalConfig.detect_interval, show_default=True, metavar="N",
                     help="Run the face detector on every (N+1)-th analysed frame; an optical-flow "
                          "tracker carries the faces (boxes and landmarks) over the N between. "
                          "0 = detect on every frame. Rows say where a box came from "
                          "(faces.box_source: detected | tracked)."),
        click.option("--detect-adaptive/--detect-fixed", default=None,
                     show_default="adaptive" if IntervalConfig.adaptive else "fixed",
                     help="With --detect-interval: also detect early when tracking is unsure (a "
                          "face lost or leaving, a scene cut, motion where no face is), or only "
                          "on the fixed grid."),
        click.option("--backend", type=click.Choice(BACKENDS),
                     default=ClassifyConfig.backend, show_default=True,
                     help="Classification backend: PyTorch, or ONNX Runtime (CPU only; the model "
                          "is exported to ONNX in memory at start; needs ferbatch[export])."),
        click.option("--track-iou", default=TrackConfig.iou_threshold, show_default=True,
                     help="Smallest box overlap (intersection over union, in (0, 1)) for a "
                          "detection to continue a face's track, i.e. keep its face_id."),
        click.option("--track-gap", default=TrackConfig.max_gap_s, show_default=True,
                     metavar="SECONDS", help="Seconds a face may be unseen and keep its face_id."),
        click.option("--decode-threads", default=DecodeConfig.threads, show_default=True,
                     metavar="N", help="FFmpeg decoding threads per video; 0 = FFmpeg's choice."),
        click.option("--overwrite", is_flag=True,
                     help="Redo every video, also those already complete in OUT.  [default: "
                          "skip complete ones]"),
        click.option("--retry-partial", is_flag=True,
                     help="Redo videos that ended partial (frames lost to damage) instead of "
                          "skipping them like complete ones.  [default: skip them]"),
        click.option("--quiet", "-q", is_flag=True, help="No progress bar."),
        click.option("--verbose", "-v", count=True,
                     help="More messages on stderr: -v progress and tracebacks, -vv debugging. "
                          "Every run also writes its full log to OUT/_logs/."),
    ]
    return _apply(options, fn)


def _apply(options: list[Callable[[Any], Any]], fn: Any) -> Any:
    for option in reversed(options):
        fn = option(fn)
    return fn


def ray_options(local_flag: bool = True) -> Callable[[Any], Any]:
    """click options of the Ray executor's pool (:class:`PoolConfig`). ``local_flag``: add
    ``--ray/--local`` (``ferbatch run``); without it (the Ray job) ``--address`` defaults to
    ``auto``, the cluster the job runs on."""
    address_help = ("Ray cluster to join: auto, HOST:PORT or ray://HOST:PORT (default: "
                    + ("$RAY_ADDRESS, else a private local instance)." if local_flag else
                       "auto, the cluster this job runs on)."))
    options = [
        click.option("--address", default=None if local_flag else "auto", metavar="ADDR",
                     help=address_help),
        click.option("--workers", type=click.IntRange(min=1), default=None, metavar="N",
                     help="Worker actors (default: cluster CPUs // --cpus-per-worker, at most "
                          "one per work unit: a video, or a segment of a split one)."),
        click.option("--cpus-per-worker", type=click.FloatRange(min=0),
                     default=PoolConfig.cpus_per_worker, show_default=True, metavar="N",
                     help="CPUs each worker reserves (its torch threads)."),
        click.option("--gpus-per-worker", type=click.FloatRange(min=0), default=None, metavar="N",
                     help="GPUs each worker reserves; 0.5 puts two workers on a GPU "
                          "(default: 1 when the cluster has GPUs and --device is not cpu, else 0)."),
        click.option("--max-retries", type=click.IntRange(min=0), default=PoolConfig.max_retries,
                     show_default=True, metavar="N",
                     help="Times a video (or one of its segments) is retried after its worker "
                          "died or its task raised (e.g. a full disk at commit); then it is "
                          "recorded as failed."),
        click.option("--segment-s", type=click.FloatRange(min=0), default=PoolConfig.segment_s,
                     show_default=True, metavar="SECONDS",
                     help="Split a video at least twice this long into segments of about this "
                          "many seconds, cut at keyframes, that several workers analyse; the "
                          "merged rows match an unsplit run (README). 0: never split."),
    ]
    if local_flag:
        options.insert(0, click.option(
            "--ray/--local", "use_ray", default=None,
            help="Run through Ray worker actors, or in this process. Default: Ray when "
                 "--address/$RAY_ADDRESS is given, the inputs hold more than one video to "
                 "analyse, or one video is long enough to split (--segment-s)."))
    return lambda fn: _apply(options, fn)


def build_pool(opts: dict[str, Any]) -> PoolConfig:
    """The validated :class:`PoolConfig` of parsed :func:`ray_options`."""
    return PoolConfig(address=opts["address"], workers=opts["workers"],
                      cpus_per_worker=opts["cpus_per_worker"],
                      gpus_per_worker=opts["gpus_per_worker"], max_retries=opts["max_retries"],
                      segment_s=opts["segment_s"]).validate()


@cli.command("run", epilog=exit_codes_help())
@click.argument("inputs", nargs=-1, required=True, type=click.Path())
@run_options
@ray_options()
def run_command(inputs: tuple[str, ...], **opts: Any) -> None:
    """Analyse video files and folders (recursively) into Parquet timelines in OUT.

    Folders are searched for .mp4 .mov .mkv .webm .avi .m4v .mpg .mpeg .ts files and raw
    .h264 .264 .hevc .h265 .265 .m2v streams (hidden ones skipped); files named explicitly are
    always tried. Videos already complete in OUT (same
    file, model and settings; ok or partial) are skipped. No video files at all is an error.
    """
    from .decode.av_util import quiet_ffmpeg
    from .logs import configure_console
    from .progress import ConsoleProgress, format_summary
    from .runner.controller import run_videos

    quiet_ffmpeg()
    configure_console(opts["verbose"])
    try:
        config = build_config(opts)
        pool = build_pool(opts)
        with ConsoleProgress(enabled=not opts["quiet"]) as progress:
            summary = run_videos(list(inputs), opts["out"], config, overwrite=opts["overwrite"],
                                 pool=pool, use_ray=opts["use_ray"], hook=progress,
                                 retry_partial=opts["retry_partial"])
    except FerbatchError as exc:
        raise click.ClickException(str(exc)) from exc
    click.echo(format_summary(summary))
    sys.exit(summary.exit_code)


@cli.command("demo")
@click.option("--out", "-o", default="demo_out", show_default=True, type=click.Path(file_okay=False),
              help="Folder for the demo clips (OUT/input) and their results (OUT/results).")
@click.option("--quiet", "-q", is_flag=True, help="No progress bar.")
def demo_command(out: str, quiet: bool) -> None:
    """Write demo clips of a real face (scikit-image's astronaut photo) and analyse them."""
    from .decode.av_util import quiet_ffmpeg
    from .demo import run_demo

    quiet_ffmpeg()
    try:
        code = run_demo(Path(out), quiet=quiet)
    except FerbatchError as exc:
        raise click.ClickException(str(exc)) from exc
    sys.exit(code)


def _register_commands() -> None:
    """Attach the commands of the trainer and the report modules."""
    from .cli_export import COMMANDS as export_commands
    from .cli_models import COMMANDS as model_commands
    from .cli_quality import COMMANDS as quality_commands  # explain, validate
    from .cli_report import COMMANDS as report_commands
    from .cli_serve import COMMANDS as serve_commands
    from .cli_train import COMMANDS as train_commands

    for command in [*train_commands, *model_commands, *report_commands, *quality_commands,
                    *export_commands, *serve_commands]:
        cli.add_command(command)


_register_commands()


def main() -> None:
    cli()


if __name__ == "__main__":
    main()
