"""The Ray executor's scheduler driven by a fake port: no Ray, milliseconds per test.

The fake port runs each task synchronously when the scheduler asks for its result, through a
``behave(worker, method, args)`` function per test, and hands futures back in submission order.
What is checked: every video ends with one row, dead workers are replaced and their task
retried (then failed, committed by the driver), task errors are retried at the back, split
videos go plan → segments → merge, and a segment or merge that goes wrong runs the video whole.
"""

from __future__ import annotations

import itertools
import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest

from ferbatch.config import RunConfig
from ferbatch.errors import RunError
from ferbatch.output.commit import OutputStore
from ferbatch.output.schema import Provenance, new_video_row
from ferbatch.progress import WorkerInfo
from ferbatch.runner.plan import Action, PlannedVideo, RunPlan
from ferbatch.runner.scheduler import Scheduler, TaskFailed, WorkerDied
from ferbatch.runner.worker import Committed, Fallback, Planned, SegmentDone

from helpers import Events

PROVENANCE = Provenance(model="m", model_sha256="0" * 64, labels=("happy", "sad"),
                        detector="d", sampling="all", settings_fingerprint="f")


@dataclass(eq=False)
class FakeWorker:
    n: int
    node: str = "n0"
    dead: bool = False
    calls: list[tuple[str, tuple[Any, ...]]] = field(default_factory=list)


@dataclass(eq=False)
class Future:
    run: Callable[[], Any]


class FakePort:
    """A :class:`~ferbatch.runner.ray_pool.Port` whose workers run ``behave`` synchronously."""

    def __init__(self, behave: Callable[[FakeWorker, str, tuple[Any, ...]], Any],
                 start_fails: bool = False, nodes: tuple[str, ...] = ("n0",)) -> None:
        self.behave = behave
        self.start_fails = start_fails
        self.nodes = nodes  # workers are placed on the live ones in turn
        self.lost_nodes: set[str] = set()
        self.workers: list[FakeWorker] = []
        self.killed: list[FakeWorker] = []
        self._ids = itertools.count()

    def start(self) -> tuple[FakeWorker, Future]:
        n = next(self._ids)
        live = [node for node in self.nodes if node not in self.lost_nodes]
        worker = FakeWorker(n, node=live[n % len(live)])
        self.workers.append(worker)

        def info() -> WorkerInfo:
            if self.start_fails:
                raise TaskFailed("ModelError: no checkpoint")
            return WorkerInfo(pid=1000 + worker.n, host="h", device="cpu", node=worker.node)

        return worker, Future(info)

    def call(self, worker: FakeWorker, method: str, *args: Any, num_returns: int = 1) -> Any:
        worker.calls.append((method, args))

        def run() -> Any:
            if worker.dead or worker.node in self.lost_nodes:
                raise WorkerDied("the actor died")
            return self.behave(worker, method, args)

        if num_returns == 2:
            return Future(run), f"tables of {args[1]}"
        return Future(run)

    def wait(self, futures: list[Future], timeout: float | None = None) -> Future | None:
        return futures[0]

    def frames(self, worker: FakeWorker) -> int | None:
        return None

    def get(self, future: Future) -> Any:
        return future.run()

    def kill(self, worker: FakeWorker) -> None:
        worker.dead = True
        self.killed.append(worker)

    def live_nodes(self) -> set[str] | None:
        return set(self.nodes) - self.lost_nodes


def ok_row(video: str, status: str = "ok") -> dict[str, Any]:
    row = new_video_row(Path(video), Path(video).stem, PROVENANCE)
    row.update(status=status, frames_analyzed=10)
    return row


def make_plan(tmp_path: Path, names: list[str], segment_s: float = 0.0,
              duration: float | None = None) -> tuple[RunPlan, list[PlannedVideo]]:
    store = OutputStore(tmp_path / "out")
    store.write_manifest(PROVENANCE.labels, PROVENANCE.model)
    plan = RunPlan(store, RunConfig(), PROVENANCE, segment_s=segment_s)
    plan.videos = [PlannedVideo(tmp_path / n, Path(n).stem, Action.PROCESS, duration_s=duration)
                   for n in names]
    return plan, plan.todo


def run(port: FakePort, plan: RunPlan, todo: list[PlannedVideo], workers: int = 2,
        retries: int = 1) -> tuple[dict[str, dict[str, Any]], Events]:
    events = Events()
    rows = Scheduler(port, plan, todo, workers, retries, events).run()
    return rows, events


def test_every_video_gets_its_row_and_every_worker_is_stopped(tmp_path: Path) -> None:
    plan, todo = make_plan(tmp_path, ["a.mp4", "b.mp4", "c.mp4"])
    port = FakePort(lambda w, m, args: Committed(ok_row(args[0])))
    rows, events = run(port, plan, todo)
    assert sorted(rows) == ["a", "b", "c"] and {r["status"] for r in rows.values()} == {"ok"}
    assert [Path(p).name for p in events.of("video")] == ["a.mp4", "b.mp4", "c.mp4"]
    assert len(events.of("worker")) == 2 and sum(events.of("frames")) == 30
    assert set(port.killed) == set(port.workers)  # the pool is released at the end
    assert all(m == "process" for w in port.workers for m, _ in w.calls)


def test_a_dead_worker_is_replaced_and_its_video_retried_then_failed(
        tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    plan, todo = make_plan(tmp_path, ["a.mp4", "b.mp4"])
    deaths: dict[str, int] = {}

    def behave(worker: FakeWorker, method: str, args: tuple[Any, ...]) -> Any:
        name = Path(args[0]).name
        deaths[name] = deaths.get(name, 0) + 1
        if name == "b.mp4" or deaths[name] == 1:
            raise WorkerDied("SIGKILL")
        return Committed(ok_row(args[0]))

    port = FakePort(behave)
    with caplog.at_level(logging.INFO, logger="ferbatch"):
        rows, events = run(port, plan, todo, workers=1, retries=1)
    # each retry logged once, with its attempt
    assert [r.getMessage() for r in caplog.records if "retry" in r.getMessage()] == [
        "retry 1: a.mp4: worker died 1 time(s), last pid 1000 on h (node n0): SIGKILL",
        "retry 1: b.mp4: worker died 1 time(s), last pid 1001 on h (node n0): SIGKILL"]
    assert rows["a"]["status"] == "ok"
    assert rows["b"]["status"] == "failed" and rows["b"]["error"] == (
        "b.mp4: worker died 2 time(s), last pid 1002 on h (node n0): SIGKILL")
    assert rows["b"]["settings_fingerprint"] == "f"  # the driver's row carries the provenance
    assert deaths == {"a.mp4": 2, "b.mp4": 2}
    assert [r.attempt for r in events.of("retry")] == [1, 1]
    assert len(port.workers) == 3  # the first, and one per death while work was left (2 of 3)
    committed = plan.store.read_status("b")  # failed rows are committed by the driver
    assert committed is not None and committed["status"] == "failed"


def test_a_task_error_is_retried_after_the_rest_of_the_queue(tmp_path: Path) -> None:
    plan, todo = make_plan(tmp_path, ["a.mp4", "b.mp4"])
    order: list[str] = []

    def behave(worker: FakeWorker, method: str, args: tuple[Any, ...]) -> Any:
        name = Path(args[0]).name
        order.append(name)
        if name == "a.mp4" and order.count(name) == 1:
            raise TaskFailed("OutputError: disk full")
        return Committed(ok_row(args[0]))

    port = FakePort(behave)
    rows, events = run(port, plan, todo, workers=1)
    assert order == ["a.mp4", "b.mp4", "a.mp4"]  # retried at the back, on the same live worker
    assert len(port.workers) == 1 and rows["a"]["status"] == "ok"
    assert "disk full" in events.of("retry")[0].error


def _split_behaviour(segment_status: Callable[[int], str] = lambda i: "ok",
                     merge: Callable[[], Any] | None = None) -> Callable[..., Any]:
    def behave(worker: FakeWorker, method: str, args: tuple[Any, ...]) -> Any:
        if method == "plan_or_process":
            spans = tuple(SimpleNamespace(index=i) for i in range(3))
            return Planned(SimpleNamespace(spans=spans, reason="3 segments"))
        if method == "segment":
            return SegmentDone(ok_row(args[0], segment_status(args[1].index)))
        if method == "merge":
            if merge is not None:
                return merge()
            return Committed(ok_row("/v/long.mp4"))
        return Committed(ok_row(args[0]))
    return behave


def test_a_split_video_is_planned_segmented_and_merged_once(tmp_path: Path) -> None:
    plan, todo = make_plan(tmp_path, ["long.mp4"], segment_s=10.0, duration=35.0)
    port = FakePort(_split_behaviour())
    rows, events = run(port, plan, todo, workers=2)
    calls = [m for w in port.workers for m, _ in w.calls]
    assert sorted(calls) == ["merge", "plan_or_process", "segment", "segment", "segment"]
    assert [(s.index, s.of) for s in events.of("segment")] == [(0, 3), (1, 3), (2, 3)]
    merge_args = next(a for w in port.workers for m, a in w.calls if m == "merge")
    assert merge_args[2] == ["tables of " + str(SimpleNamespace(index=i)) for i in range(3)]
    assert rows["long"]["status"] == "ok" and not events.of("unsplit")


def test_a_segment_that_is_not_ok_makes_the_video_run_whole(
        tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    plan, todo = make_plan(tmp_path, ["long.mp4"], segment_s=10.0, duration=35.0)
    port = FakePort(_split_behaviour(segment_status=lambda i: "partial" if i == 1 else "ok"))
    with caplog.at_level(logging.INFO, logger="ferbatch"):
        rows, events = run(port, plan, todo, workers=1)
    (logged,) = [r.getMessage() for r in caplog.records if "analysing it whole" in r.getMessage()]
    assert logged.startswith("long.mp4: analysing it whole, its segments could not be merged: "
                             "segment 1 ended partial")
    calls = [m for w in port.workers for m, _ in w.calls]
    assert "merge" not in calls and calls[-1] == "process"
    assert events.of("unsplit")[0].reason.startswith("segment 1 ended partial")
    assert rows["long"]["status"] == "ok"


@pytest.mark.parametrize("outcome", ["fallback", "task_error"])
def test_a_merge_that_fails_makes_the_video_run_whole(tmp_path: Path, outcome: str) -> None:
    plan, todo = make_plan(tmp_path, ["long.mp4"], segment_s=10.0, duration=35.0)

    def merge() -> Any:
        if outcome == "fallback":
            return Fallback("segment 2 decoded 9 frames, the plan has 10")
        raise TaskFailed("ObjectLostError: segment tables lost with their node")

    port = FakePort(_split_behaviour(merge=merge))
    rows, events = run(port, plan, todo, workers=1)
    assert [m for w in port.workers for m, _ in w.calls][-1] == "process"
    assert len(events.of("unsplit")) == 1 and rows["long"]["status"] == "ok"


def test_videos_too_short_to_split_are_analysed_whole_without_planning(tmp_path: Path) -> None:
    plan, todo = make_plan(tmp_path, ["short.mp4"], segment_s=10.0, duration=12.0)
    port = FakePort(_split_behaviour())
    run(port, plan, todo, workers=1)
    assert [m for w in port.workers for m, _ in w.calls] == ["process"]


def test_no_worker_can_start_is_a_run_error(tmp_path: Path) -> None:
    plan, todo = make_plan(tmp_path, ["a.mp4"])
    port = FakePort(_split_behaviour(), start_fails=True)
    with pytest.raises(RunError, match="no checkpoint"):
        run(port, plan, todo, workers=2)


class PollingPort(FakePort):
    """Each task's first wait times out, so the scheduler polls the busy workers' frame
    counts once (4 frames per poll) before the result comes."""

    def __init__(self, behave: Callable[[FakeWorker, str, tuple[Any, ...]], Any]) -> None:
        super().__init__(behave)
        self.timed_out: set[int] = set()
        self.counts: dict[int, int] = {}

    def wait(self, futures: list[Future], timeout: float | None = None) -> Future | None:
        fresh = [f for f in futures if id(f) not in self.timed_out]
        if timeout is not None and fresh:
            self.timed_out.update(id(f) for f in fresh)
            return None
        return futures[0]

    def frames(self, worker: FakeWorker) -> int | None:
        self.counts[worker.n] = self.counts.get(worker.n, 0) + 4
        return self.counts[worker.n]


def test_frames_of_busy_workers_are_polled_and_never_counted_twice(tmp_path: Path) -> None:
    """Under Ray the progress bar moves while a video runs: the driver polls each busy
    worker's frame counter; at the end it adds only the frames not polled yet."""
    plan, todo = make_plan(tmp_path, ["a.mp4", "b.mp4", "c.mp4"])
    port = PollingPort(lambda w, m, args: Committed(ok_row(args[0])))
    rows, events = run(port, plan, todo)
    assert len(rows) == 3
    frames = events.of("frames")
    assert 4 in frames and sum(frames) == 30  # 10 frames per video, polled ones included
    first_done = next(i for i, (kind, _) in enumerate(events.events) if kind == "done")
    assert any(kind == "frames" for kind, _ in events.events[:first_done])  # before any video ended


@pytest.mark.allow_error_logs  # the unexpected exception is logged at ERROR, on purpose
def test_a_worker_traceback_goes_to_the_run_log_and_to_the_console_only_with_verbose(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """A stage that raised in a Ray worker: the row's one line on the console (as ``--local``
    shows it), the worker's traceback in ``OUT/_logs`` (and on the console with ``-v``)."""
    from ferbatch.logs import configure_console, run_log

    trace = 'Traceback (most recent call last):\n  File "stage.py", line 3\nZeroDivisionError: boom\n'

    def behave(w: FakeWorker, m: str, args: tuple[Any, ...]) -> Committed:
        row = ok_row(args[0], status="failed")
        row["error"] = f"{Path(args[0]).name}: ZeroDivisionError: boom"
        return Committed(row, trace)

    logger = logging.getLogger("ferbatch")
    for verbosity, shown in ((0, False), (1, True)):
        plan, todo = make_plan(tmp_path / str(verbosity), ["boom.mp4"])
        console = configure_console(verbosity)
        try:
            with run_log(plan.location):
                rows, _ = run(FakePort(behave), plan, todo)
        finally:
            logger.removeHandler(console)
        assert rows["boom"]["status"] == "failed"
        err = capsys.readouterr().err
        line = f"ferbatch: ERROR: {tmp_path / str(verbosity) / 'boom.mp4'} failed in its worker: " \
               "ZeroDivisionError: boom\n"
        assert line in err
        assert ("Traceback (most recent call last)" in err) is shown, err
        assert ('File "stage.py", line 3' in err) is shown
        (log_file,) = (tmp_path / str(verbosity) / "out" / "_logs").glob("run-*.log")
        text = log_file.read_text()
        assert "failed in its worker: ZeroDivisionError: boom\nTraceback" in text
        assert 'File "stage.py", line 3\nZeroDivisionError: boom' in text
