"""How :meth:`RayPort.get` sorts Ray's errors: a lost actor, process, node or result is a
:class:`WorkerDied` (the scheduler replaces the worker and retries the task first), a task that
raised a :class:`TaskFailed` (the worker is kept), any other Ray error a :class:`RayFailure`
(retried as a failed task, on a new worker). Ray's own exception
classes, raised by a stand-in for ``ray.get`` (no cluster needed)."""

from __future__ import annotations

from typing import Any

import pytest

ray_exceptions = pytest.importorskip("ray.exceptions")

from ferbatch.runner.ray_pool import RayPort  # noqa: E402
from ferbatch.runner.scheduler import RayFailure, TaskFailed, WorkerDied  # noqa: E402


class _Raises:
    def __init__(self, exc: BaseException) -> None:
        self.exc = exc

    def get(self, future: Any) -> Any:
        raise self.exc


def _port(exc: BaseException) -> RayPort:
    port = RayPort.__new__(RayPort)  # only get() is used: no actor class, no cluster
    port._ray = _Raises(exc)
    return port


LOST = [
    ray_exceptions.ActorDiedError(),
    ray_exceptions.ActorUnavailableError("the actor's node is unreachable", None),
    ray_exceptions.NodeDiedError("node 1234 died"),
    ray_exceptions.ObjectLostError("ab" * 14, "owner", "call site"),
    ray_exceptions.OwnerDiedError("ab" * 14, "owner", "call site"),
    ray_exceptions.WorkerCrashedError(),
    ray_exceptions.OutOfMemoryError("Task was killed due to the node running low on memory."),
    ray_exceptions.LocalRayletDiedError(),
]
OTHER = [
    ray_exceptions.ObjectStoreFullError("the object store is full"),
    ray_exceptions.RuntimeEnvSetupError("pip failed"),
    ray_exceptions.RaySystemError("gRPC failed"),
]


@pytest.mark.parametrize("exc", LOST, ids=lambda e: type(e).__name__)
def test_a_lost_actor_process_node_or_result_is_a_lost_worker(exc: BaseException) -> None:
    with pytest.raises(WorkerDied) as info:
        _port(exc).get(object())
    assert info.value.__cause__ is exc


@pytest.mark.parametrize("exc", OTHER, ids=lambda e: type(e).__name__)
def test_any_other_ray_error_is_a_ray_failure_of_the_task(exc: BaseException) -> None:
    with pytest.raises(RayFailure, match=type(exc).__name__) as info:
        _port(exc).get(object())
    assert isinstance(info.value, TaskFailed) and info.value.__cause__ is exc


def test_an_error_raised_by_the_task_fails_the_task() -> None:
    cause = ray_exceptions.RayTaskError("process", "Traceback…\nValueError: bad frame", ValueError("bad frame"))
    with pytest.raises(TaskFailed) as info:
        _port(cause).get(object())
    assert "bad frame" in str(info.value) and not isinstance(info.value, WorkerDied | RayFailure)
