"""The Ray executor: a pool of :class:`~ferbatch.runner.worker.VideoWorker` actors fed by the
``ActorPool``-shaped :class:`~ferbatch.runner.scheduler.Scheduler` through :class:`RayPort`.

:class:`RayPort` is all the scheduler sees of Ray: it starts actors, calls them, and turns Ray's
errors into the scheduler's: :class:`~.scheduler.WorkerDied` (the actor, its process or its
node was lost: the task is retried first, on another worker), :class:`~.scheduler.TaskFailed`
(the task raised in a live worker: retried after the rest of the queue) and its kind
:class:`~.scheduler.RayFailure` (another Ray error: retried so, on a new worker). :func:`shape_pool` sizes the pool for the cluster; :class:`RayExecutor` runs a plan.
"""

from __future__ import annotations

import dataclasses
import logging
import os
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from ..config import PoolConfig, RunConfig
from ..errors import ConfigError
from ..output.location import OutputLocation
from ..progress import RunHook
from .controller import execute
from .plan import PlannedVideo, RunPlan, plan_run
from .scheduler import PROGRESS_POLL_S, Port, RayFailure, Scheduler, TaskFailed, WorkerDied
from .summary import RunSummary

__all__ = ["Port", "RayExecutor", "RayPort", "Scheduler", "TaskFailed", "WorkerDied",
           "run_distributed", "shape_pool"]

log = logging.getLogger(__name__)


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
        """The task's value. Raises :class:`WorkerDied` when the actor, its process or its node
        was lost (``ActorDiedError``, ``ActorUnavailableError``: the actor is killed by the
        scheduler before a retry, so a task still running there cannot commit twice;
        ``WorkerCrashedError``, ``OutOfMemoryError``: Ray killed the process) or the result was
        lost with its node (``ObjectLostError`` and its kinds, ``NodeDiedError``,
        ``LocalRayletDiedError``); :class:`TaskFailed` when the task raised in a live worker;
        :class:`RayFailure` (a ``TaskFailed``) for any other Ray error: retried as a failed
        task, on a new worker."""
        from ray import exceptions as rx

        try:
            return self._ray.get(future)
        except rx.RayActorError as exc:
            raise WorkerDied(_short(exc)) from exc
        except rx.RayTaskError as exc:
            raise TaskFailed(_short(exc), str(exc)) from exc
        except (rx.ObjectLostError, rx.NodeDiedError, rx.LocalRayletDiedError,
                rx.WorkerCrashedError, rx.OutOfMemoryError) as exc:
            raise WorkerDied(f"{type(exc).__name__}: {_short(exc)}") from exc
        except rx.RayError as exc:
            raise RayFailure(f"{type(exc).__name__}: {_short(exc)}", str(exc)) from exc

    def frames(self, actor: Any) -> int | None:
        """Frames ``actor`` analysed so far (its ``progress`` concurrency group answers while
        a task runs); ``None`` when it does not answer within ``PROGRESS_POLL_S`` seconds."""
        try:
            ref = actor.frames.options(concurrency_group="progress").remote()
            return int(self._ray.get(ref, timeout=PROGRESS_POLL_S))
        except Exception:  # noqa: BLE001 - a dead or busy worker: its result will tell
            return None

    def kill(self, actor: Any) -> None:
        """Stop ``actor`` for good (no restart); one already gone is fine."""
        from ray.exceptions import GetTimeoutError, RayActorError

        try:
            self._ray.kill(actor, no_restart=True)
        except (RayActorError, ValueError, GetTimeoutError):
            pass

    def live_nodes(self) -> set[str] | None:
        """Node ids Ray reports alive; ``None`` when the GCS cannot be asked."""
        try:
            return {node["NodeID"] for node in self._ray.nodes() if node.get("Alive")}
        except Exception:  # noqa: BLE001 - the GCS unreachable: the futures will tell
            return None


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
    """Analyses the plan's videos on a pool of Ray actors (joined or started for the run).
    :attr:`retried`: videos and segments the last :meth:`execute` retried after their worker
    or its node was lost."""

    def __init__(self, pool: PoolConfig | None = None) -> None:
        self.pool = (pool or PoolConfig()).validate()
        self.retried = 0

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
            try:
                return scheduler.run()
            finally:
                self.retried = len(scheduler.lost)


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
