"""The Ray executor's scheduler, shaped after ``ray.util.ActorPool`` and free of Ray.

Shape: idle actors, futures of running tasks, ``submit`` one task to an idle actor, wait for any
future, return the actor to the idle set. The differences are what a batch of videos needs:
typed tasks that know what follows them (:mod:`ferbatch.runner.tasks`), lost workers replaced
and their task retried, and long videos split into segments. Everything Ray-specific is behind
the small :class:`Port` (:class:`~ferbatch.runner.ray_pool.RayPort`; the tests drive
:class:`Scheduler` with a fake port in milliseconds).

Segments of a split video are queued at the front so a long video finishes early and its tables
do not linger in the object store. A segment that does not end ``ok`` or segments that cannot be
merged make the video one :class:`~.tasks.WholeTask` (``unsplit``).

A lost worker — its process killed or out of memory, or its whole node gone — is replaced (Ray
places the new one on a node with room) and its task retried first, up to ``max_retries`` times;
a video that keeps failing is committed by the driver as ``failed`` and the run goes on. When
Ray reports a node dead, the idle workers it held are replaced too before any task is sent to
them, so a lost node costs each of its videos one retry, not one per dead worker. A video whose
worker was lost after committing it (before its answer came back) is not redone: its committed
row is taken. A commit is atomic per video, so a retried video never duplicates rows.
"""

from __future__ import annotations

import dataclasses
import logging
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Protocol

from ..errors import RunError
from ..logs import REMOTE_TRACE
from ..output.schema import failed_row
from ..progress import Retry, RunHook, Unsplit, WorkerInfo
from .controller import log_video
from .plan import PlannedVideo, RunPlan
from .tasks import PlanTask, SegmentTask, Split, Task, WholeTask

log = logging.getLogger(__name__)


class WorkerDied(Exception):
    """The worker process of a task died (killed, out of memory, node lost)."""


class TaskFailed(Exception):
    """A task raised inside a live worker (e.g. its commit hit a full disk); ``trace``: the
    remote traceback, for the run's log."""

    def __init__(self, message: str, trace: str = "") -> None:
        super().__init__(message)
        self.trace = trace


class RayFailure(TaskFailed):
    """Ray failed a task with an error of its own, neither raised by the task nor a loss of its
    worker (e.g. ``ObjectStoreFullError``, ``RaySystemError``): the task is retried like one
    that raised, but its worker may be unusable too, so it is replaced, and a video committed
    before the error is not redone."""


class Port(Protocol):
    """What the scheduler needs from Ray; futures are opaque hashable handles."""

    def start(self) -> tuple[Any, Any]:
        """Start a worker: ``(actor, future of its WorkerInfo)``."""

    def call(self, actor: Any, method: str, *args: Any, num_returns: int = 1) -> Any:
        """Call ``actor.method(*args)``: a future, or a tuple of ``num_returns`` futures."""

    def wait(self, futures: list[Any], timeout: float | None = None) -> Any:
        """Block until one of ``futures`` is ready and return it; ``None`` after ``timeout``
        seconds without one."""

    def get(self, future: Any) -> Any:
        """Its value; raises :class:`WorkerDied` or :class:`TaskFailed`."""

    def kill(self, actor: Any) -> None:
        """Stop ``actor`` for good (no restart)."""

    def frames(self, actor: Any) -> int | None:
        """Frames ``actor`` has analysed so far (its lifetime count), asked while it works;
        ``None`` when it cannot tell."""

    def live_nodes(self) -> set[str] | None:
        """Ids of the cluster's live nodes (:attr:`WorkerInfo.node`); ``None``: cannot tell."""


#: seconds between two polls of the busy workers' frame counts (the progress bar)
PROGRESS_POLL_S = 1.0


@dataclass
class _Running:
    actor: Any
    task: Task
    extra: Any


class Scheduler:
    """Feeds the tasks of ``todo`` to ``n_workers`` actors through ``port`` (module doc).

    :meth:`run` returns each video's committed row by ``video_id``. The rows of videos that
    keep failing are committed here, on the driver, through ``plan.store``. :attr:`lost`: the
    videos and segments (``(video_id, where)``) retried after their worker was lost.
    """

    def __init__(self, port: Port, plan: RunPlan, todo: list[PlannedVideo], n_workers: int,
                 max_retries: int, hook: RunHook) -> None:
        self.port, self.plan, self.hook = port, plan, hook
        self.n_workers, self.max_retries = n_workers, max_retries
        self.queue: deque[Task] = deque(
            PlanTask(v) if plan.may_split(v) else WholeTask(v) for v in todo)
        self.splits: dict[str, Split] = {}
        self.results: dict[str, dict[str, Any]] = {}
        self.lost: set[tuple[str, str]] = set()
        self._starting: dict[Any, Any] = {}  # future of info() -> actor
        self._running: dict[Any, _Running] = {}  # future of a task -> what runs
        self._idle: deque[Any] = deque()
        self._info: dict[Any, WorkerInfo] = {}  # actor -> who it is (pid, host, node)
        self._last_error = ""
        self._restarts = 0  # workers replaced after being lost while starting
        self._seen: dict[Any, int] = {}  # actor -> frame count last polled
        self._reported: dict[str, int] = {}  # video_id -> frames reported while it ran
        self.check_signals: Callable[[], None] = lambda: None  # ray_setup.deferred_sigterm

    # -- the loop ---------------------------------------------------------------------------------
    def run(self) -> dict[str, dict[str, Any]]:
        for _ in range(self.n_workers):
            self._spawn()
        try:
            while self.queue or self._running:
                self.check_signals()
                self._dispatch()
                waiting = [*self._starting, *self._running]
                if not waiting:
                    if not self.queue:  # the last tasks were given up (their video ran whole)
                        break
                    raise RunError(f"no Ray worker could start: {self._last_error}")
                future = self.port.wait(waiting, PROGRESS_POLL_S)  # finite: signals get handled
                if future is None:
                    self.poll_frames()
                elif future in self._starting:
                    self.on_worker_ready(future)
                else:
                    self.on_result(future)
        finally:
            for actor in [*self._starting.values(), *self._idle,
                          *(r.actor for r in self._running.values())]:
                self.port.kill(actor)
        return self.results

    def _spawn(self) -> None:
        actor, future = self.port.start()
        self._starting[future] = actor

    def _has_work(self) -> bool:
        """Tasks wait in the queue or run: a lost worker is worth replacing."""
        return bool(self.queue or self._running)

    def _forget(self, actor: Any) -> WorkerInfo | None:
        """Stop a lost (or doomed) worker; what it was."""
        self.port.kill(actor)
        self._seen.pop(actor, None)
        return self._info.pop(actor, None)

    def _dispatch(self) -> None:
        # A node can die while its workers sit idle (nothing of it running, so no task reports
        # the loss): check before handing them work (one query of Ray's node table per round).
        if self.queue and self._idle:
            self._drop_dead_nodes()
        while self.queue and self._idle:
            task = self.queue.popleft()
            if not task.wanted(self):
                continue  # its video was given up (run whole instead, or failed) meanwhile
            actor = self._idle.popleft()
            future, extra = task.submit(self.port, actor, self)
            self._running[future] = _Running(actor, task, extra)

    # -- events -----------------------------------------------------------------------------------
    def on_worker_ready(self, future: Any) -> None:
        """A worker finished loading its models, or failed to (it is then stopped). One lost
        while starting (its process or node died, or Ray cancelled it) is replaced while work
        remains, at most ``n_workers × max(1, max_retries)`` times in a run; one whose start
        raised is not (the next would raise too)."""
        actor = self._starting.pop(future)
        try:
            info: WorkerInfo = self.port.get(future)
        except (WorkerDied, TaskFailed) as exc:
            self.port.kill(actor)  # may still hold its CPU/GPU reservation
            self._last_error = str(exc)
            budget = self.n_workers * max(1, self.max_retries)
            if isinstance(exc, WorkerDied) and self._has_work() and self._restarts < budget:
                self._restarts += 1
                log.warning("a worker was lost while starting, another is started: %s", exc)
                self._spawn()
            else:
                log.warning("a worker failed to start: %s", exc)
            return
        self._idle.append(actor)
        self._info[actor] = info
        log.info("worker ready: %s, %s", info.describe(), info.device)
        self.hook.on_worker(info)

    def poll_frames(self) -> None:
        """Report the frames the busy workers analysed since the last poll (each worker counts
        them per batch; only the numbers cross Ray)."""
        for running in list(self._running.values()):
            count = self.port.frames(running.actor)
            if count is None:
                continue
            delta = count - self._seen.get(running.actor, 0)
            self._seen[running.actor] = count
            if delta > 0:
                video_id = running.task.video.video_id
                self._reported[video_id] = self._reported.get(video_id, 0) + delta
                self.hook.on_frames(delta)

    def on_result(self, future: Any) -> None:
        """A task came back: record it and queue what follows."""
        running = self._running.pop(future)
        task = running.task
        try:
            value = self.port.get(future)
        except WorkerDied as exc:
            self.on_worker_unusable(running, str(exc), lost=True)
            return
        except RayFailure as exc:
            self.on_worker_unusable(running, str(exc), exc.trace, lost=False)
            return
        except TaskFailed as exc:
            self._idle.append(running.actor)
            if task.wanted(self):
                self._task_error(task, str(exc), exc.trace)
            return
        self._idle.append(running.actor)
        if task.wanted(self):
            task.on_result(value, running.extra, self)

    def on_worker_unusable(self, running: _Running, error: str, trace: str = "", *,
                           lost: bool) -> None:
        """The worker of ``running`` is gone (``lost``: its process or node died) or may be
        unusable (Ray failed its task with an error of its own, :class:`RayFailure`): stop it,
        spawn a replacement while work remains and retry its task — first in the queue after a
        loss, as a failed task after a Ray error — unless its video was committed before. Idle
        workers of nodes Ray now reports dead are replaced as well."""
        info = self._forget(running.actor)
        who = info.describe() if info is not None else "unknown"
        task = running.task
        if task.wanted(self):
            row = task.committed(self)
            if row is not None:
                log.info("%s: its worker (%s) was %s after committing it, not redone: %s",
                         task.video.path.name, who, "lost" if lost else "replaced", error)
                self.finish(task.video, row)
            elif not lost:
                self._task_error(task, error, trace)
            elif self.retry_or_fail(task, f"{task.video.path.name}{task.where}: worker died "
                                          f"{task.attempt + 1} time(s), last {who}: {error}",
                                    front=True, worker=info):
                self.lost.add((task.video.video_id, task.where))
        if lost:
            self._drop_dead_nodes()
        if self._has_work():
            self._spawn()

    def _task_error(self, task: Task, error: str, trace: str) -> None:
        """``task`` raised in its worker (``trace``: the remote traceback, for the log)."""
        log.warning("%s%s failed in its worker: %s", task.video.path, task.where, error,
                    extra={REMOTE_TRACE: trace})
        task.on_task_error(f"{task.video.path.name}{task.where}: {error}", self)

    def _drop_dead_nodes(self) -> None:
        """Replace the idle workers whose node is gone: a task sent to one would be lost too."""
        if not self._idle:
            return
        live = self.port.live_nodes()
        if live is None:
            return
        for actor in list(self._idle):
            info = self._info.get(actor)
            if info is not None and info.node and info.node not in live:
                self._idle.remove(actor)
                self._forget(actor)
                log.info("worker %s replaced: its node is gone", info.describe())
                if self._has_work():
                    self._spawn()

    # -- decisions --------------------------------------------------------------------------------
    def finish(self, video: PlannedVideo, row: dict[str, Any], trace: str | None = None) -> None:
        """``video`` is done with its committed ``row``: record it, log it (with the worker's
        ``trace`` when it failed there), report its frames not polled yet and the row to the
        hook."""
        self.splits.pop(video.video_id, None)
        self.results[video.video_id] = row
        if trace:
            error = str(row.get("error") or "")
            error = error.removeprefix(f"{video.path.name}: ")  # the line names the file already
            log.error("%s failed in its worker: %s", video.path, error,
                      extra={REMOTE_TRACE: trace})
        log_video(row)
        rest = int(row.get("frames_analyzed") or 0) - self._reported.pop(video.video_id, 0)
        if rest > 0:  # the frames not polled yet (all of them with a fast video)
            self.hook.on_frames(rest)
        self.hook.on_done(row)

    def fail(self, video: PlannedVideo, error: str) -> None:
        """Commit ``video`` as failed from the driver and go on."""
        log.warning("%s", error)
        row = failed_row(video.path, video.video_id, self.plan.provenance, error)
        self.plan.store.commit(row, None, None)
        self.finish(video, row)

    def committed_row(self, video: PlannedVideo) -> dict[str, Any] | None:
        """``video``'s status row if a worker of this run committed it (its ``finished_at``
        differs from the row the plan found), else ``None``."""
        row = self.plan.store.read_status(video.video_id)
        if row is None or row.get("finished_at") == video.finished_before:
            return None
        return row

    def retry_or_fail(self, task: Task, error: str, front: bool,
                      worker: WorkerInfo | None = None) -> bool:
        """Queue ``task`` again (one more attempt; ``True``) or record its video as failed.
        ``worker``: the worker lost with it, if that is why."""
        if task.attempt >= self.max_retries:
            self.fail(task.video, error)
            return False
        log.info("retry %d: %s", task.attempt + 1, error)
        self.hook.on_retry(Retry(task.video.path, task.attempt + 1, error, worker))
        again = dataclasses.replace(task, attempt=task.attempt + 1)
        (self.queue.appendleft if front else self.queue.append)(again)
        return True

    def start_split(self, video: PlannedVideo, plan: Any) -> None:
        """Queue the segments of ``video`` at the front (so its tables do not linger)."""
        k = len(plan.spans)
        split = Split(plan, [None] * k, [None] * k)
        self.splits[video.video_id] = split
        log.info("%s: %s", video.path.name, plan.reason)
        self.queue.extendleft(SegmentTask(video, split=split, index=i) for i in reversed(range(k)))

    def unsplit(self, task: Task, reason: str, attempt: int = 0) -> None:
        """Give up the segments of ``task``'s video: analyse it whole, next."""
        self.splits.pop(task.video.video_id, None)
        log.info("%s: analysing it whole, its segments could not be merged: %s",
                 task.video.path.name, reason)
        self.hook.on_unsplit(Unsplit(task.video.path, reason))
        self.queue.appendleft(WholeTask(task.video, attempt))
