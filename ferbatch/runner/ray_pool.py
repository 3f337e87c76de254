"""The Ray executor: a pool of worker actors fed by an ``ActorPool``-shaped scheduler.

Shape (after ``ray.util.ActorPool``): idle actors, futures of running tasks, ``submit`` one task
to an idle actor, wait for any future, return the actor to the idle set. The differences are
what a batch of videos needs: typed tasks that know what follows them, dead workers replaced and
their task retried, and long videos split into segments. Everything Ray-specific is behind the
small :class:`Port` (:class:`RayPort` here; the tests drive :class:`Scheduler` with a fake port
in milliseconds).

Tasks are typed (:mod:`ferbatch.runner.tasks`). Segments of a split video are queued at the
front so a long video finishes early and its tables do not linger in the object store. A segment that does not end ``ok`` or segments that cannot be merged make the video one
:class:`WholeTask` (``unsplit``). A worker that dies is replaced and its task retried up to
``max_retries`` times; a video that keeps failing is committed by the driver as ``failed`` and
the run goes on. A commit is atomic per video, so a retried video never duplicates rows.
"""

from __future__ import annotations

import dataclasses
import logging
import os
from collections import deque
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, Protocol

from ..config import PoolConfig, RunConfig
from ..errors import ConfigError, RunError
from ..output.location import OutputLocation
from ..output.schema import failed_row
from ..progress import Retry, RunHook, Unsplit, WorkerInfo
from .controller import execute, log_video
from .plan import PlannedVideo, RunPlan, plan_run
from .summary import RunSummary
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
    keep failing are committed here, on the driver, through ``plan.store``.
    """

    def __init__(self, port: Port, plan: RunPlan, todo: list[PlannedVideo], n_workers: int,
                 max_retries: int, hook: RunHook) -> None:
        self.port, self.plan, self.hook = port, plan, hook
        self.n_workers, self.max_retries = n_workers, max_retries
        self.queue: deque[Task] = deque(
            PlanTask(v) if plan.may_split(v) else WholeTask(v) for v in todo)
        self.splits: dict[str, Split] = {}
        self.results: dict[str, dict[str, Any]] = {}
        self._starting: dict[Any, Any] = {}  # future of info() -> actor
        self._running: dict[Any, _Running] = {}  # future of a task -> what runs
        self._idle: deque[Any] = deque()
        self._last_error = ""
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

    def _dispatch(self) -> None:
        while self.queue and self._idle:
            task = self.queue.popleft()
            if not task.wanted(self):
                continue  # its video was given up (run whole instead, or failed) meanwhile
            actor = self._idle.popleft()
            future, extra = task.submit(self.port, actor, self)
            self._running[future] = _Running(actor, task, extra)

    # -- events -----------------------------------------------------------------------------------
    def on_worker_ready(self, future: Any) -> None:
        """A worker finished loading its models, or failed to."""
        actor = self._starting.pop(future)
        try:
            info: WorkerInfo = self.port.get(future)
        except (WorkerDied, TaskFailed) as exc:
            self._last_error = str(exc)
            log.warning("a worker failed to start: %s", exc)
            return
        self._idle.append(actor)
        log.info("worker ready: pid %d on %s (%s)", info.pid, info.host, info.device)
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
            self.on_worker_died(running, str(exc))
            return
        except TaskFailed as exc:
            self._idle.append(running.actor)
            if task.wanted(self):
                log.warning("%s%s failed in its worker: %s\n%s", task.video.path, task.where, exc,
                            exc.trace.rstrip())
                task.on_task_error(f"{task.video.path.name}{task.where}: {exc}", self)
            return
        self._idle.append(running.actor)
        if task.wanted(self):
            task.on_result(value, running.extra, self)

    def on_worker_died(self, running: _Running, error: str) -> None:
        """Replace the worker; retry its task (first in the queue)."""
        self.port.kill(running.actor)
        self._seen.pop(running.actor, None)
        task = running.task
        if task.wanted(self):
            self.retry_or_fail(task, f"{task.video.path.name}{task.where}: worker died "
                                     f"{task.attempt + 1} time(s): {error}", front=True)
        if self.queue or self._running:
            self._spawn()

    # -- decisions --------------------------------------------------------------------------------
    def finish(self, video: PlannedVideo, row: dict[str, Any], trace: str | None = None) -> None:
        self.splits.pop(video.video_id, None)
        self.results[video.video_id] = row
        if trace:
            log.error("%s failed in its worker:\n%s", video.path, trace.rstrip())
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

    def retry_or_fail(self, task: Task, error: str, front: bool) -> None:
        """Queue ``task`` again (one more attempt) or record its video as failed."""
        if task.attempt >= self.max_retries:
            self.fail(task.video, error)
            return
        log.info("retrying: %s", error)
        self.hook.on_retry(Retry(task.video.path, task.attempt + 1, error))
        again = dataclasses.replace(task, attempt=task.attempt + 1)
        (self.queue.appendleft if front else self.queue.append)(again)

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
        self.hook.on_unsplit(Unsplit(task.video.path, reason))
        self.queue.appendleft(WholeTask(task.video, attempt))


# -- Ray --------------------------------------------------------------------------------------------
def _short(exc: BaseException, limit: int = 300) -> str:
    """The last line of a (remote) exception, for a row's ``error`` column."""
    text = str(exc).strip().splitlines()
    line = next((t for t in reversed(text) if t.strip()), type(exc).__name__)
    return line.strip()[:limit]


class RayPort:
    """:class:`Port` on Ray actors of :class:`~ferbatch.runner.worker.VideoWorker`."""

    def __init__(self, out: Any, config: RunConfig, cpus: float, gpus: float) -> None:
        import ray

        from .worker import VideoWorker

        self._ray = ray
        remote = ray.remote(concurrency_groups={"progress": 1})(VideoWorker)  # type: ignore[call-overload]
        self._cls = remote.options(  # one task at a time; frames() answers beside it
            num_cpus=cpus, num_gpus=gpus, max_restarts=0, max_task_retries=0, max_concurrency=1)
        self._args = (out, config.to_dict())

    def start(self) -> tuple[Any, Any]:
        actor = self._cls.remote(*self._args)
        return actor, actor.info.remote()

    def call(self, actor: Any, method: str, *args: Any, num_returns: int = 1) -> Any:
        remote = getattr(actor, method)
        if num_returns != 1:
            remote = remote.options(num_returns=num_returns)
        return remote.remote(*args)

    def wait(self, futures: list[Any], timeout: float | None = None) -> Any:
        ready, _ = self._ray.wait(futures, num_returns=1, timeout=timeout)
        return ready[0] if ready else None

    def get(self, future: Any) -> Any:
        from ray.exceptions import RayActorError, RayTaskError

        try:
            return self._ray.get(future)
        except RayActorError as exc:
            raise WorkerDied(_short(exc)) from exc
        except RayTaskError as exc:
            raise TaskFailed(_short(exc), str(exc)) from exc

    def frames(self, actor: Any) -> int | None:
        try:
            ref = actor.frames.options(concurrency_group="progress").remote()
            return int(self._ray.get(ref, timeout=PROGRESS_POLL_S))
        except Exception:  # noqa: BLE001 - a dead or busy worker: its result will tell
            return None

    def kill(self, actor: Any) -> None:
        from ray.exceptions import GetTimeoutError, RayActorError

        try:
            self._ray.kill(actor, no_restart=True)
        except (RayActorError, ValueError, GetTimeoutError):
            pass


@dataclass(frozen=True)
class PoolShape:
    """How many workers, what each reserves, and the device they run on."""

    workers: int
    cpus: float
    gpus: float
    device: str


def default_workers(resources: dict[str, float], cpus_per_worker: float,
                    gpus_per_worker: float, n_units: int) -> int:
    """As many workers as the cluster's CPUs (and GPUs, if asked for) hold, at most one a unit."""
    n = int(resources.get("CPU", 1) // cpus_per_worker) if cpus_per_worker > 0 else n_units
    if gpus_per_worker > 0:
        n = min(n, int(resources.get("GPU", 0) // gpus_per_worker))
        if n < 1:
            raise ConfigError(f"--gpus-per-worker {gpus_per_worker} but the Ray cluster has "
                              f"{resources.get('GPU', 0):g} GPUs")
    return max(1, min(n, n_units))


def shape_pool(pool: PoolConfig, device: str, resources: dict[str, float], units: int) -> PoolShape:
    """Size the pool for ``units`` work units on a cluster with ``resources``.

    ``gpus_per_worker=None``: one GPU per worker when the cluster has GPUs and ``device`` is not
    ``cpu``, else none; workers without a GPU run on the CPU (Ray 2.60 no longer hides the GPUs
    from actors that reserved none). Raises :class:`ConfigError` when a worker asks for more
    than the cluster has, or for ``cuda`` without GPUs reserved.
    """
    gpus = pool.gpus_per_worker
    if gpus is None:
        gpus = 1.0 if device != "cpu" and resources.get("GPU", 0) >= 1 else 0.0
    if gpus == 0:
        if device.startswith("cuda"):
            raise ConfigError(f"--device {device} needs --gpus-per-worker > 0 "
                              f"(the Ray cluster has {resources.get('GPU', 0):g} GPUs)")
        device = "cpu"  # not a GPU it did not reserve
    for kind, need in (("CPU", pool.cpus_per_worker), ("GPU", gpus)):
        if need > resources.get(kind, 0):
            raise ConfigError(f"each worker asks for {need:g} {kind}s but the Ray cluster has "
                              f"{resources.get(kind, 0):g}")
    n = pool.workers or default_workers(resources, pool.cpus_per_worker, gpus, units)
    return PoolShape(workers=max(1, min(n, units)), cpus=pool.cpus_per_worker, gpus=gpus,
                     device=device)


class RayExecutor:
    """Analyses the plan's videos on a pool of Ray actors (joined or started for the run)."""

    def __init__(self, pool: PoolConfig | None = None) -> None:
        self.pool = (pool or PoolConfig()).validate()

    def execute(self, plan: RunPlan, todo: list[PlannedVideo],
                hook: RunHook) -> dict[str, dict[str, Any]]:
        import ray

        from .ray_setup import connect, deferred_sigterm

        with connect(self.pool.address), deferred_sigterm() as check_signals:
            resources = ray.cluster_resources()
            cap = self.pool.workers or max(1, int(resources.get("CPU", 1)))
            shape = shape_pool(self.pool, plan.config.device, resources, plan.count_units(cap))
            config = dataclasses.replace(plan.config, device=shape.device)
            log.info("Ray pool: %d worker(s), %g CPU and %g GPU each, on %s", shape.workers,
                     shape.cpus, shape.gpus, shape.device)
            port = RayPort(plan.location.for_worker(), config, shape.cpus, shape.gpus)
            scheduler = Scheduler(port, plan, todo, shape.workers, self.pool.max_retries, hook)
            scheduler.check_signals = check_signals
            return scheduler.run()


def run_distributed(inputs: Sequence[str | os.PathLike[str]],
                    out: str | os.PathLike[str] | OutputLocation, config: RunConfig | None = None,
                    *, overwrite: bool = False, hook: RunHook | None = None,
                    retry_partial: bool = False, **pool_options: Any) -> RunSummary:
    """Process every video under ``inputs`` into ``out`` with a pool of Ray worker actors.

    Same plan, skip rules, output and :class:`RunSummary` as :func:`ferbatch.run`;
    ``pool_options`` are :class:`PoolConfig` fields (``address``, ``workers``,
    ``cpus_per_worker``, ``gpus_per_worker``, ``max_retries``, ``segment_s``). The inputs must
    be paths every worker can read (one machine, or a shared filesystem); so must ``out``, or
    it is an object-store URI each worker resolves with the credentials of its environment.
    """
    pool = PoolConfig(**pool_options).validate()
    plan = plan_run(inputs, out, config, overwrite=overwrite, segment_s=pool.segment_s,
                    retry_partial=retry_partial)
    return execute(plan, RayExecutor(pool), hook)
