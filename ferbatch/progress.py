"""What a run tells its observer, and the two observers ferbatch ships.

:class:`RunHook` is the typed progress protocol of both executors: one method per event, each a
no-op here, so an observer overrides only what it shows. :class:`ConsoleProgress` is the tqdm
bar of ``ferbatch run``; :class:`LineProgress` writes one log line per finished video (for Ray
job logs, where a bar is noise). :func:`format_summary` renders the final table.
"""

from __future__ import annotations

import logging
import os
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from .output.layout import readable
from .output.schema import STATUS_FAILED, STATUS_OK, STATUS_PARTIAL
from .text import plural

if TYPE_CHECKING:
    from .runner.summary import RunSummary

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class WorkerInfo:
    """A Ray worker that finished loading its models; ``node``: its Ray node id (hex, ``""``
    when unknown)."""

    pid: int
    host: str
    device: str
    node: str = ""

    def describe(self) -> str:
        """``pid 4242 on host (node 1a2b3c4d)``: the worker, for messages."""
        return f"pid {self.pid} on {self.host}" + (f" (node {self.node[:8]})" if self.node else "")


@dataclass(frozen=True)
class Retry:
    """A task whose worker died or failed, queued again. ``worker``: the worker that was lost
    with its task (killed, out of memory, its node gone); ``None`` when the task raised in a
    live worker."""

    path: Path
    attempt: int
    error: str
    worker: WorkerInfo | None = None


@dataclass(frozen=True)
class SegmentStart:
    """Segment ``index`` of ``of`` of a split video handed to a worker (``attempt`` from 0)."""

    path: Path
    index: int
    of: int
    attempt: int


@dataclass(frozen=True)
class Unsplit:
    """A split video whose segments could not be merged: it is analysed whole instead."""

    path: Path
    reason: str


class RunHook:
    """Progress events of a run (every method a no-op; override what you need)."""

    def on_start(self, n_videos: int) -> None:
        """The run begins with ``n_videos`` inputs (skipped ones included)."""

    def on_skip(self, row: dict[str, Any]) -> None:
        """An input already complete in the output; ``row`` is its committed row."""

    def on_video(self, path: Path) -> None:
        """A video is handed to the pipeline (in-process) or to a worker."""

    def on_frames(self, n: int) -> None:
        """``n`` more frames were analysed."""

    def on_done(self, row: dict[str, Any]) -> None:
        """A video is committed (or failed): its ``videos.parquet`` row."""

    def on_worker(self, info: WorkerInfo) -> None:
        """A Ray worker is ready."""

    def on_retry(self, retry: Retry) -> None:
        """A task is retried after its worker died or it failed."""

    def on_segment(self, segment: SegmentStart) -> None:
        """A segment of a split video is handed to a worker."""

    def on_unsplit(self, unsplit: Unsplit) -> None:
        """A split video is analysed whole instead."""


class ConsoleProgress(RunHook):
    """Progress of ``ferbatch run`` on stderr: a line per failed video and per retry (a lost Ray
    worker or node) and, on a terminal, a tqdm bar over all frames with frames/s.

    ``live``: draw the bar; ``None`` = when stderr is a terminal. Without one (stderr redirected
    to a file, a CI or ``nohup`` log) a bar's carriage-return redraws would fill the file, so
    each finished video gets one plain line instead (``2/5 videos | 300 frames | ok a.mp4``).
    """

    def __init__(self, enabled: bool = True, live: bool | None = None) -> None:
        self.enabled = enabled and sys.stderr is not None
        self.live = self.enabled and (live if live is not None else _is_terminal(sys.stderr))
        self.bar: Any = None
        self.total = 0
        self.done = 0
        self.frames = 0

    def __enter__(self) -> ConsoleProgress:
        return self

    def __exit__(self, *exc: object) -> None:
        if self.bar is not None:
            self.bar.close()

    def _write(self, line: str) -> None:
        if self.bar is not None:
            self.bar.write(line, file=sys.stderr)
        elif self.enabled:
            print(line, file=sys.stderr, flush=True)

    def on_start(self, n_videos: int) -> None:
        self.total = n_videos
        if not self.live:
            return
        from tqdm import tqdm

        self.bar = tqdm(total=None, unit="frame", dynamic_ncols=True, file=sys.stderr,
                        desc=f"0/{self.total} videos",
                        bar_format="{desc} | {n_fmt} frames [{elapsed}, {rate_fmt}]{postfix}")

    def on_video(self, path: Path) -> None:
        if self.bar is not None:
            self.bar.set_postfix_str(readable(Path(path).name)[:40])  # as the summary shows it

    def on_frames(self, n: int) -> None:
        self.frames += int(n)
        if self.bar is not None:
            self.bar.update(int(n))

    def on_skip(self, row: dict[str, Any]) -> None:
        self.on_done(row, skipped=True)

    def on_retry(self, retry: Retry) -> None:
        self._write(f"RETRY {retry.error}")

    def on_done(self, row: dict[str, Any], skipped: bool = False) -> None:
        self.done += 1
        if self.bar is not None:
            self.bar.set_description_str(f"{self.done}/{self.total} videos")
        if row["status"] == STATUS_FAILED:
            self._write(f"FAILED {row['error']}")
        elif self.enabled and not self.live:
            state = "already done" if skipped else row["status"]
            self._write(f"{self.done}/{self.total} videos | {self.frames} frames | {state} "
                        f"{readable(Path(row['path']).name)}")


def _is_terminal(stream: Any) -> bool:
    try:
        return bool(stream.isatty())
    except (AttributeError, ValueError):  # no isatty, or a closed stream
        return False


class LineProgress(RunHook):
    """One INFO log line per finished video: done/total, frames/s, ETA, failures (job logs;
    retries and videos analysed whole are logged by the scheduler itself, once).

    The clock starts when the first worker is ready: Ray's start-up is not throughput.
    """

    def __init__(self) -> None:
        self.total = 0
        self.started: float | None = None
        self.done = self.frames = self.failures = 0

    def on_start(self, n_videos: int) -> None:
        self.total = n_videos

    def on_skip(self, row: dict[str, Any]) -> None:
        self.total -= 1  # only analysed videos count towards throughput and ETA

    def on_worker(self, info: WorkerInfo) -> None:
        if self.started is None:
            self.started = time.perf_counter()

    def on_done(self, row: dict[str, Any]) -> None:
        self.done += 1
        self.frames += int(row.get("frames_analyzed") or 0)
        self.failures += row["status"] == STATUS_FAILED
        if self.started is None:
            self.started = time.perf_counter()
        elapsed = time.perf_counter() - self.started
        eta = elapsed / self.done * max(0, self.total - self.done)
        detail = f" ({row['error']})" if row["status"] != STATUS_OK and row.get("error") else ""
        log.info("%d/%d videos | %d frames, %.1f frames/s | ETA %.0f s | %d failed | %s %s%s",
                 self.done, self.total, self.frames, self.frames / max(elapsed, 1e-9), eta,
                 self.failures, row["status"], Path(row["path"]).name, detail)


def _fmt(value: Any, spec: str = "") -> str:
    if value is None:
        return "-"
    return format(value, spec) if spec else str(value)


def format_summary(summary: RunSummary) -> str:
    """A plain-text table: one line per video with status, frames, faces, ids, seconds and
    processing speed (``proc f/s``: frames analysed per second of work, not the video's frame
    rate, which is ``fps`` in ``videos.parquet``); then the counts (with the videos or segments
    retried after their Ray worker or its node was lost, when any), the files skipped and the
    reasons of videos not ``ok``."""
    header = f"{'status':8} {'frames':>7} {'faces':>7} {'ids':>4} {'sec':>7} {'proc f/s':>8}  video"
    lines = [header, "-" * len(header)]
    skipped = {os.path.abspath(p) for p in summary.skipped}  # rows hold absolute paths
    for row in summary.rows:
        secs = row.get("processing_s") or 0.0
        speed = (row.get("frames_analyzed") or 0) / secs if secs > 0 else None
        status = row["status"] + ("*" if os.path.abspath(row["path"]) in skipped else "")
        lines.append(f"{status:8} {_fmt(row.get('frames_analyzed')):>7} "
                     f"{_fmt(row.get('faces_detected')):>7} {_fmt(row.get('tracks')):>4} "
                     f"{secs:7.1f} {_fmt(speed, '8.1f'):>8}  {row['path']}")
    n_ok = sum(r["status"] == STATUS_OK for r in summary.rows)
    n_partial = sum(r["status"] == STATUS_PARTIAL for r in summary.rows)
    counts = (f"{plural(len(summary.rows), 'video')}: {n_ok} ok, {n_partial} partial, "
              f"{len(summary.failed)} failed; {len(skipped)} already done (*); "
              f"{plural(summary.frames, 'frame')} in {summary.seconds:.1f} s")
    if summary.retried:
        counts += f"; {summary.retried_text}"
    lines.append(counts)
    if summary.ignored:
        lines.append(summary.ignored_text)
    for row in summary.rows:
        if row["status"] != STATUS_OK:
            lines.append(f"  {row['status']}: {row['error']}")
    lines.append(f"results: {summary.out}/videos.parquet, {summary.out}/frames/, {summary.out}/faces/")
    return "\n".join(lines)
