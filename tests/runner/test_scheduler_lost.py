"""Lost workers and lost nodes in the Ray scheduler, driven by the fake port of
``test_scheduler`` (no Ray, milliseconds): a node lost mid-video costs that video one retry on
a surviving node, the lost node's idle workers get no task, a video committed before its worker
was lost is not redone, and the run's summary (``RunSummary.retried``, the summary line, the
run log in ``OUT/_logs``) counts what was retried."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from test_scheduler import FakePort, FakeWorker, make_plan, ok_row, run

from ferbatch.errors import RunError
from ferbatch.progress import format_summary
from ferbatch.runner.controller import execute
from ferbatch.runner.plan import PlannedVideo, RunPlan
from ferbatch.runner.scheduler import RayFailure, Scheduler, WorkerDied
from ferbatch.runner.worker import Committed

from helpers import Events


def _finished(video: str) -> dict[str, Any]:
    row = ok_row(video)
    row["finished_at"] = datetime.now(UTC)
    return row


def lose_node_on_first_call(port: FakePort, node: str) -> Any:
    """A worker on ``node`` loses its node on its first task (the raylet killed mid-video)."""
    def behave(worker: FakeWorker, method: str, args: tuple[Any, ...]) -> Any:
        if worker.node == node:
            port.lost_nodes.add(node)
            raise WorkerDied("The actor died because its node has died. Node Id: " + node)
        return Committed(_finished(args[0]))
    return behave


def test_a_lost_node_costs_its_video_one_retry_on_a_surviving_node(tmp_path: Path) -> None:
    """Workers on nodes b, a, b; node b is lost while its first worker analyses a.mp4 and its
    second sits idle: a.mp4 is retried once, on node a; the idle worker of b gets no task (it
    would be lost too and spend a retry) and is replaced; every video ok once."""
    plan, todo = make_plan(tmp_path, ["a.mp4", "b.mp4"])
    port = FakePort(lambda w, m, a: None, nodes=("b", "a"))
    port.behave = lose_node_on_first_call(port, "b")
    rows, events = run(port, plan, todo, workers=3, retries=2)
    assert {k: r["status"] for k, r in rows.items()} == {"a": "ok", "b": "ok"}
    assert len(events.of("done")) == 2
    (retry,) = events.of("retry")
    assert retry.attempt == 1 and retry.path.name == "a.mp4"
    assert retry.worker is not None and retry.worker.node == "b"
    assert retry.error == ("a.mp4: worker died 1 time(s), last pid 1000 on h (node b): "
                           "The actor died because its node has died. Node Id: b")
    first_b, idle_b = (w for w in port.workers[:3] if w.node == "b")
    assert [m for m, _ in first_b.calls] == ["process"] and idle_b.calls == []
    assert idle_b in port.killed  # replaced, not used
    assert all(w.node == "a" for w in port.workers[3:]) and len(port.workers) == 5
    retried_on = next(w for w in port.workers if w.node == "a" and
                      any(Path(a[0]).name == "a.mp4" for _, a in w.calls))
    assert retried_on.node == "a"


def test_a_video_committed_before_its_worker_was_lost_is_not_redone(tmp_path: Path) -> None:
    """The worker committed a.mp4, then its node died before the answer came back: the
    committed row is taken, no retry, one ``done``; b.mp4 (lost before its commit) is retried."""
    plan, todo = make_plan(tmp_path, ["a.mp4", "b.mp4"])
    calls: list[str] = []

    def behave(worker: FakeWorker, method: str, args: tuple[Any, ...]) -> Any:
        name = Path(args[0]).name
        calls.append(name)
        if calls.count(name) == 1:
            if name == "a.mp4":
                plan.store.commit(_finished(args[0]), None, None)
            raise WorkerDied("The actor died because its node has died.")
        return Committed(_finished(args[0]))

    port = FakePort(behave)
    rows, events = run(port, plan, todo, workers=1, retries=2)
    assert calls == ["a.mp4", "b.mp4", "b.mp4"]
    assert [Path(r.path).name for r in events.of("retry")] == ["b.mp4"]
    assert [Path(r["path"]).name for r in events.of("done")] == ["a.mp4", "b.mp4"]
    assert rows["a"]["status"] == rows["b"]["status"] == "ok"


def test_a_row_from_an_earlier_run_is_not_taken_for_this_runs_commit(tmp_path: Path) -> None:
    """a.mp4 failed in an earlier run (its row is still there): a worker lost on it now is a
    worker lost before its commit, so the video is retried, not taken as done."""
    plan, _ = make_plan(tmp_path, ["a.mp4"])
    earlier = ok_row(str(tmp_path / "a.mp4"), status="failed")
    earlier["finished_at"] = datetime.now(UTC) - timedelta(days=1)
    plan.store.commit(earlier, None, None)
    before = plan.store.read_status("a")
    assert before is not None
    plan.videos = [PlannedVideo(v.path, v.video_id, v.action, finished_before=before["finished_at"])
                   for v in plan.videos]
    lost: list[str] = []

    def behave(worker: FakeWorker, method: str, args: tuple[Any, ...]) -> Any:
        if not lost:
            lost.append(args[0])
            raise WorkerDied("The actor died because its node has died.")
        return Committed(_finished(args[0]))

    rows, events = run(FakePort(behave), plan, plan.todo, workers=1, retries=1)
    assert len(events.of("retry")) == 1 and rows["a"]["status"] == "ok"


class FakePoolExecutor:
    """The Ray executor's bookkeeping around the scheduler, on the fake port."""

    def __init__(self, port: FakePort, workers: int, max_retries: int) -> None:
        self.port, self.workers, self.max_retries = port, workers, max_retries
        self.retried = 0

    def execute(self, plan: RunPlan, todo: list[PlannedVideo],
                hook: Any) -> dict[str, dict[str, Any]]:
        scheduler = Scheduler(self.port, plan, todo, self.workers, self.max_retries, hook)
        try:
            return scheduler.run()
        finally:
            self.retried = len(scheduler.lost)


def test_the_summary_counts_the_videos_retried_after_a_lost_node(tmp_path: Path) -> None:
    """Node b is lost under two running videos: both are retried on node a; the summary
    (``retried``, its line, the run log in OUT) says 2; a third video is not counted."""
    plan, todo = make_plan(tmp_path, ["a.mp4", "b.mp4", "c.mp4"])
    port = FakePort(lambda w, m, a: None, nodes=("b", "b", "a"))
    port.behave = lose_node_on_first_call(port, "b")  # a.mp4 and b.mp4 run on b, c.mp4 on a
    summary = execute(plan, FakePoolExecutor(port, workers=3, max_retries=2), Events())
    assert [r["status"] for r in summary.rows] == ["ok", "ok", "ok"]
    assert summary.retried == 2 and summary.exit_code == 0
    assert "; 2 videos/segments retried after a lost worker or node" in format_summary(summary)
    (log_file,) = (tmp_path / "out" / "_logs").glob("run-*.log")
    assert "2 videos/segments retried after a lost worker or node" in log_file.read_text()
    summary.retried = 1
    assert "; 1 video/segment retried after a lost worker or node" in format_summary(summary)
    summary.retried = 0
    assert "retried" not in format_summary(summary)


def test_a_segment_lost_with_its_node_is_retried_and_the_video_merged_once(tmp_path: Path) -> None:
    """A split video: the worker on node b is lost with its segment; that segment alone is
    retried on node a, the video is merged once, and the count says one segment."""
    from test_scheduler import _split_behaviour

    plan, todo = make_plan(tmp_path, ["long.mp4"], segment_s=10.0, duration=35.0)
    split = _split_behaviour()

    def behave(worker: FakeWorker, method: str, args: tuple[Any, ...]) -> Any:
        if worker.node == "b" and method == "segment":
            port.lost_nodes.add("b")
            raise WorkerDied("The actor died because its node has died.")
        return split(worker, method, args)

    port = FakePort(behave, nodes=("a", "b"))
    scheduler = Scheduler(port, plan, todo, 2, 2, events := Events())
    rows = scheduler.run()
    assert rows["long"]["status"] == "ok" and len(events.of("done")) == 1
    (retry,) = events.of("retry")
    lost_index = next(a[1].index for w in port.workers if w.node == "b"
                      for m, a in w.calls if m == "segment")
    assert retry.error.startswith(f"long.mp4 segment {lost_index}: worker died 1 time(s)")
    assert scheduler.lost == {("long", f" segment {lost_index}")}
    calls = [m for w in port.workers if w.node == "a" for m, _ in w.calls]
    assert sorted(calls).count("segment") == 3 and calls.count("merge") == 1
    assert not events.of("unsplit")


def test_a_node_lost_while_its_worker_is_idle_gets_no_new_task(tmp_path: Path) -> None:
    """Node b dies while its worker waits and nothing of it runs (no task reports the loss);
    the segments queued next (the plan of a split video, done on node a) go to node a only:
    no task is lost, no retry is spent, the idle worker of b is replaced."""
    from test_scheduler import _split_behaviour

    plan, todo = make_plan(tmp_path, ["long.mp4"], segment_s=10.0, duration=35.0)
    split = _split_behaviour()

    def behave(worker: FakeWorker, method: str, args: tuple[Any, ...]) -> Any:
        if method == "plan_or_process":
            port.lost_nodes.add("b")  # while node a plans, node b goes down
        return split(worker, method, args)

    port = FakePort(behave, nodes=("a", "b"))
    scheduler = Scheduler(port, plan, todo, 2, 0, events := Events())  # no retry to spend
    rows = scheduler.run()
    assert rows["long"]["status"] == "ok" and not events.of("retry") and not scheduler.lost
    idle_b = next(w for w in port.workers if w.node == "b")
    assert idle_b.calls == [] and idle_b in port.killed
    calls = [m for w in port.workers if w.node == "a" for m, _ in w.calls]
    assert sorted(calls) == ["merge", "plan_or_process", "segment", "segment", "segment"]


class DiesWhileStarting(FakePort):
    """The first ``lost`` workers started are lost before their models are loaded (their node
    died, or Ray cancelled them) — a ``WorkerDied`` from their start."""

    def __init__(self, lost: int, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.lost = lost

    def start(self) -> tuple[FakeWorker, Any]:
        worker, future = super().start()
        if worker.n < self.lost:
            def died() -> Any:
                raise WorkerDied("The actor never ran - it was cancelled before it started running.")
            future.run = died
        return worker, future


def test_a_worker_lost_while_starting_is_replaced(tmp_path: Path) -> None:
    """Both workers are lost while starting: two others take their place and do every video
    (the pool does not shrink, no retry of a video is spent)."""
    plan, todo = make_plan(tmp_path, ["a.mp4", "b.mp4", "c.mp4"])
    port = DiesWhileStarting(2, lambda w, m, a: Committed(_finished(a[0])))
    rows, events = run(port, plan, todo, workers=2, retries=1)
    assert sorted(r["status"] for r in rows.values()) == ["ok"] * 3 and not events.of("retry")
    assert len(port.workers) == 4
    assert {w.n for w in port.workers if w.calls} <= {2, 3} and port.workers[2].calls


def test_workers_lost_while_starting_are_replaced_a_bounded_number_of_times(tmp_path: Path) -> None:
    """Every worker is lost while starting: after ``workers × retries`` replacements the run
    stops with the last error instead of starting workers for ever."""
    plan, todo = make_plan(tmp_path, ["a.mp4"])
    port = DiesWhileStarting(10**6, lambda w, m, a: Committed(_finished(a[0])))
    with pytest.raises(RunError, match="cancelled before it started"):
        run(port, plan, todo, workers=2, retries=2)
    assert len(port.workers) == 2 + 2 * 2


def test_workers_lost_while_starting_are_replaced_even_without_retries(tmp_path: Path) -> None:
    """``max_retries`` 0 spends no retry of a video, but still replaces each worker lost while
    starting once (the pool does not shrink for good)."""
    plan, todo = make_plan(tmp_path, ["a.mp4", "b.mp4"])
    port = DiesWhileStarting(2, lambda w, m, a: Committed(_finished(a[0])))
    rows, _ = run(port, plan, todo, workers=2, retries=0)
    assert sorted(r["status"] for r in rows.values()) == ["ok", "ok"] and len(port.workers) == 4
    assert port.workers[0] in port.killed and port.workers[1] in port.killed  # not left holding a CPU


def test_a_ray_failure_replaces_the_worker_and_retries_after_the_queue(tmp_path: Path) -> None:
    """Ray's own error for a task (not raised by it, not a lost worker): the worker, maybe
    unusable, is stopped and replaced; the video is retried after the rest of the queue."""
    plan, todo = make_plan(tmp_path, ["a.mp4", "b.mp4"])
    calls: list[str] = []

    def behave(worker: FakeWorker, method: str, args: tuple[Any, ...]) -> Any:
        calls.append(Path(args[0]).name)
        if calls == ["a.mp4"]:
            raise RayFailure("ObjectStoreFullError: the object store is full")
        return Committed(_finished(args[0]))

    port = FakePort(behave)
    rows, events = run(port, plan, todo, workers=1, retries=1)
    assert calls == ["a.mp4", "b.mp4", "a.mp4"]
    assert rows["a"]["status"] == rows["b"]["status"] == "ok"
    assert port.workers[0] in port.killed and len(port.workers) == 2
    assert [w.n for w in port.workers if w.calls] == [0, 1]  # b and a's retry on the new one
    (retry,) = events.of("retry")
    assert retry.error == "a.mp4: ObjectStoreFullError: the object store is full"


def test_a_ray_failure_after_the_commit_does_not_redo_the_video(tmp_path: Path) -> None:
    """The task committed its video, then Ray failed it (say, returning the result): the
    committed row is taken, the video is not analysed again."""
    plan, todo = make_plan(tmp_path, ["a.mp4"])
    calls: list[str] = []

    def behave(worker: FakeWorker, method: str, args: tuple[Any, ...]) -> Any:
        calls.append(Path(args[0]).name)
        plan.store.commit(_finished(args[0]), None, None)
        raise RayFailure("RaySystemError: lost the result")

    port = FakePort(behave)
    rows, events = run(port, plan, todo, workers=1, retries=1)
    assert calls == ["a.mp4"] and rows["a"]["status"] == "ok" and not events.of("retry")
