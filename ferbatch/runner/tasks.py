"""Typed tasks of the Ray scheduler (:mod:`ferbatch.runner.scheduler`), one class per kind.

Each task knows how to start itself on an actor (``submit``) and what follows its result
(``on_result``), so the scheduler has no ladder of task kinds:

* :class:`WholeTask` — analyse and commit a video (splitting off, or a split gone wrong);
* :class:`PlanTask` — a video the plan found long enough to split: the worker plans it with a
  packet-only pass and either returns the plan (:class:`~.worker.Planned`) or, when it cannot
  be cut, analyses it whole right away (:class:`~.worker.Committed`);
* :class:`SegmentTask` — one segment; its tables stay in the object store until
* :class:`MergeTask` — merges the segments, re-links face ids and commits the video once.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from ..output.schema import STATUS_OK
from ..progress import SegmentStart
from .plan import PlannedVideo
from .worker import Committed, Fallback, Planned, SegmentDone

if TYPE_CHECKING:
    from .scheduler import Port, Scheduler


@dataclass
class Split:
    """A video being analysed in segments: what came back so far."""

    plan: Any  # SegmentPlan
    rows: list[dict[str, Any] | None]
    parts: list[Any]  # future of each segment's (frames, faces) tables, or None

    @property
    def complete(self) -> bool:
        return all(r is not None for r in self.rows)


@dataclass
class Task:
    """One unit of work on one video; ``attempt`` counts this very task's retries."""

    video: PlannedVideo
    attempt: int = 0

    @property
    def where(self) -> str:
        """Which part of the video, for error messages."""
        return ""

    def wanted(self, sched: Scheduler) -> bool:
        """False once the result no longer matters (its split was given up)."""
        return True

    def submit(self, port: Port, actor: Any, sched: Scheduler) -> tuple[Any, Any]:
        """Start the task on ``actor``: ``(future, extra)``."""
        raise NotImplementedError

    def on_result(self, value: Any, extra: Any, sched: Scheduler) -> None:
        raise NotImplementedError

    def on_task_error(self, error: str, sched: Scheduler) -> None:
        sched.retry_or_fail(self, error, front=False)

    def committed(self, sched: Scheduler) -> dict[str, Any] | None:
        """Its video's row when this task (lost with its worker) had committed it already."""
        return None


@dataclass
class WholeTask(Task):
    def submit(self, port: Port, actor: Any, sched: Scheduler) -> tuple[Any, Any]:
        sched.hook.on_video(self.video.path)
        return port.call(actor, "process", self.video.abspath), None

    def on_result(self, value: Committed, extra: Any, sched: Scheduler) -> None:
        sched.finish(self.video, value.row, value.traceback)

    def committed(self, sched: Scheduler) -> dict[str, Any] | None:
        return sched.committed_row(self.video)


@dataclass
class PlanTask(WholeTask):
    def submit(self, port: Port, actor: Any, sched: Scheduler) -> tuple[Any, Any]:
        sched.hook.on_video(self.video.path)
        return port.call(actor, "plan_or_process", self.video.abspath, sched.plan.segment_s,
                         self.video.duration_s), None

    def on_result(self, value: Planned | Committed, extra: Any, sched: Scheduler) -> None:
        if isinstance(value, Committed):
            sched.finish(self.video, value.row, value.traceback)
        else:
            sched.start_split(self.video, value.plan)


@dataclass
class SegmentTask(Task):
    split: Split | None = None
    index: int = 0

    @property
    def where(self) -> str:
        return f" segment {self.index}"

    def wanted(self, sched: Scheduler) -> bool:
        return sched.splits.get(self.video.video_id) is self.split

    def submit(self, port: Port, actor: Any, sched: Scheduler) -> tuple[Any, Any]:
        assert self.split is not None
        spans = self.split.plan.spans
        row_future, parts = port.call(actor, "segment", self.video.abspath, spans[self.index],
                                      num_returns=2)
        sched.hook.on_segment(SegmentStart(self.video.path, self.index, len(spans), self.attempt))
        return row_future, parts

    def on_result(self, value: SegmentDone, extra: Any, sched: Scheduler) -> None:
        assert self.split is not None
        row = value.row
        if row["status"] != STATUS_OK:
            sched.unsplit(self, f"segment {self.index} ended {row['status']}: {row.get('error')}")
            return
        self.split.rows[self.index], self.split.parts[self.index] = row, extra
        if self.split.complete:
            sched.queue.appendleft(MergeTask(self.video, split=self.split))


@dataclass
class MergeTask(SegmentTask):
    @property
    def where(self) -> str:
        return " (merging)"

    def submit(self, port: Port, actor: Any, sched: Scheduler) -> tuple[Any, Any]:
        assert self.split is not None
        return port.call(actor, "merge", self.split.plan, self.split.rows, self.split.parts), None

    def on_result(self, value: Committed | Fallback, extra: Any, sched: Scheduler) -> None:
        if isinstance(value, Fallback):
            sched.unsplit(self, value.reason)
        else:
            sched.finish(self.video, value.row, value.traceback)

    def committed(self, sched: Scheduler) -> dict[str, Any] | None:
        return sched.committed_row(self.video)

    def on_task_error(self, error: str, sched: Scheduler) -> None:
        if self.attempt < sched.max_retries:  # e.g. segment tables lost with a node
            sched.unsplit(self, error, self.attempt + 1)
        else:
            sched.retry_or_fail(self, error, front=False)
