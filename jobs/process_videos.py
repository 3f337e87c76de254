"""Ray job entrypoint: analyse video files/folders on a Ray cluster into one Parquet output.

Submit it from the repository root (see jobs/README.md)::

    ray job submit --address http://HEAD:8265 --working-dir jobs -- \\
        python process_videos.py /shared/videos --out /shared/out --fps 5

It takes the same analysis options as ``ferbatch run`` (``ferbatch.cli.run_options``) plus the
Ray pool options, joins the cluster the job runs on (``--address auto``), logs one line per
finished video, and exits 1 unless every video is ``ok`` (the rule of ``ferbatch run``), so
``ray job status`` shows FAILED; exit codes as ``ferbatch run`` (130 / 143 when interrupted by
SIGINT / SIGTERM, e.g. ``ray job stop``). Paths must be absolute paths that the driver
and every worker can read (a shared filesystem): the job's working directory is a temporary copy.
``--out`` may also be an object-store URI pyarrow understands (``s3://bucket/prefix``,
``gs://bucket/prefix``); the driver and each worker read its credentials from their environment.
ferbatch itself must be installed on every node (bake it into the image, docker/).
"""

from __future__ import annotations

import sys
from typing import Any

import click

from ferbatch.cli import build_config, build_pool, exit_codes_help, interruptible, ray_options, run_options
from ferbatch.errors import FerbatchError


@click.command(context_settings={"help_option_names": ["-h", "--help"]}, epilog=exit_codes_help())
@click.argument("inputs", nargs=-1, required=True, type=click.Path())
@run_options
@ray_options(local_flag=False)
def main(inputs: tuple[str, ...], **opts: Any) -> None:
    """Analyse INPUTS (video files and folders, recursively) into Parquet timelines in OUT."""
    from ferbatch.decode.av_util import quiet_ffmpeg
    from ferbatch.logs import configure_console
    from ferbatch.progress import LineProgress, RunHook, format_summary
    from ferbatch.runner.controller import run_videos

    quiet_ffmpeg()
    configure_console(max(opts["verbose"], 0 if opts["quiet"] else 1))
    try:
        config = build_config(opts)
        pool = build_pool(opts)
        hook = RunHook() if opts["quiet"] else LineProgress()
        with interruptible("run"):
            summary = run_videos(list(inputs), opts["out"], config, overwrite=opts["overwrite"],
                                 pool=pool, use_ray=True, hook=hook,
                                 retry_partial=opts["retry_partial"])
    except FerbatchError as exc:
        raise click.ClickException(str(exc)) from exc
    print(format_summary(summary), flush=True)
    sys.exit(summary.exit_code)


if __name__ == "__main__":
    main()
