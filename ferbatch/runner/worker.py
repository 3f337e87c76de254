"""The Ray actor: loaded models plus the output store; analyses and commits videos and segments.

Wrapped with ``ray.remote`` by :class:`~ferbatch.runner.ray_pool.RayPort`, so importing this
module does not import Ray. A worker loads the detector and the classifier once, decodes its
own videos (or segments of one), and commits each video itself on the shared output
(:meth:`~ferbatch.output.commit.OutputStore.commit`): only small typed results travel back
through Ray, never frames. A segment's tables (rows, not pixels) stay in the object store until
one worker merges them.
"""

from __future__ import annotations

import logging
import os
import socket
import time
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from ..config import RunConfig
from ..progress import WorkerInfo

if TYPE_CHECKING:
    from ..decode.span import FrameSpan
    from ..output.location import OutputLocation
    from ..segments import SegmentPlan

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Committed:
    """A video analysed (or merged) and committed: its row; ``traceback`` of an unexpected
    failure, for the driver's log."""

    row: dict[str, Any]
    traceback: str | None = None


@dataclass(frozen=True)
class Planned:
    """A video long enough to split: its segment plan (nothing analysed yet)."""

    plan: SegmentPlan


@dataclass(frozen=True)
class SegmentDone:
    """One segment analysed: its row (its tables are the task's second return value)."""

    row: dict[str, Any]


@dataclass(frozen=True)
class Fallback:
    """A split video's segments cannot stand for the whole video: analyse it whole."""

    reason: str


class VideoWorker:
    """One worker actor. ``out``: the output's path/URI (or location); ``config``:
    :meth:`RunConfig.to_dict` of the run (the device already resolved by the driver).

    :attr:`frames_done` counts the frames this worker analysed, batch by batch; the driver
    polls it through :meth:`frames` (in the actor's ``progress`` concurrency group, while a
    video is being analysed) for its progress bar — a number, never frames, crosses Ray.
    """

    def __init__(self, out: str | OutputLocation, config: dict[str, Any]) -> None:
        from ..decode.av_util import quiet_ffmpeg
        from ..output.commit import OutputStore
        from ..pipeline import Stages

        quiet_ffmpeg()
        self.config = RunConfig.from_dict(config).validate()
        self.stages = Stages(self.config)
        self.store = OutputStore(out)
        self.frames_done = 0

    def _count(self, n: int) -> None:
        self.frames_done += int(n)

    def frames(self) -> int:
        """Frames analysed by this worker so far (segments' warm-up frames included)."""
        return self.frames_done

    def info(self) -> WorkerInfo:
        """Who this worker is: pid, host, device and Ray node id."""
        import ray

        node = ray.get_runtime_context().get_node_id() if ray.is_initialized() else ""
        return WorkerInfo(pid=os.getpid(), host=socket.gethostname(),
                          device=str(self.stages.device), node=node or "")

    def process(self, path: str) -> Committed:
        """Analyse ``path`` whole, commit its partitions and status row."""
        from ..pipeline import process_video

        result = process_video(path, self.config, self.stages, progress=self._count)
        self.store.commit(result.row, result.frames, result.faces)
        return Committed(result.row, result.traceback)

    def plan_or_process(self, path: str, segment_s: float,
                        duration_s: float | None) -> Planned | Committed:
        """Plan ``path`` (a packet-only pass): a video worth splitting comes back as
        :class:`Planned`, unprocessed; any other is analysed and committed here.
        ``duration_s``: the header's duration, read by the driver's plan."""
        from ..segments import plan_segments

        plan = plan_segments(path, self.config, segment_s, duration_s=duration_s)
        if plan.split:
            return Planned(plan)
        log.debug("%s runs whole: %s", path, plan.reason)
        return self.process(path)

    def segment(self, path: str, span: FrameSpan) -> tuple[SegmentDone, Any]:
        """Analyse one segment; returns its row and its (frames, faces) tables (or ``None``).

        Called with ``num_returns=2``: the driver fetches only the row; the tables stay in the
        object store until a :meth:`merge` reads them.
        """
        from ..segments import process_segment

        result = process_segment(path, span, self.config, self.stages, progress=self._count)
        tables = (result.frames, result.faces) if result.frames is not None else None
        return SegmentDone(result.row), tables

    def merge(self, plan: SegmentPlan, rows: list[dict[str, Any]],
              parts: list[Any]) -> Committed | Fallback:
        """Merge a video's segments (``parts``: ObjectRefs of their tables) and commit it once,
        or say why the segments cannot stand for the whole video (nothing committed then)."""
        import ray

        from ..errors import SegmentError
        from ..pipeline import VideoResult
        from ..segments import merge_segments

        started = time.perf_counter()
        tables = ray.get(parts)
        results = [VideoResult(row, *(t if t is not None else (None, None)))
                   for row, t in zip(rows, tables)]
        try:
            merged = merge_segments(plan, results)
        except SegmentError as exc:
            return Fallback(str(exc))
        merged.row["processing_s"] = round(merged.row["processing_s"]
                                           + time.perf_counter() - started, 4)
        self.store.commit(merged.row, merged.frames, merged.faces)
        return Committed(merged.row)
