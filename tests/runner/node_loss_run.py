"""A Ray cluster on this machine that loses a node mid-video (run by ``test_node_loss.py`` in a
process of its own, so it never meets the suite's shared Ray).

``python node_loss_run.py TEMP OUT VIDEO…``: starts a head node without CPUs and a second node
with 1 CPU (127.0.0.1 only, Ray's files under TEMP, a node's failure detected within ~1 s) and
runs :func:`ferbatch.runner.controller.run_videos` on the cluster with two workers of 1 CPU:
the first starts on the second node, the other waits for a CPU. So the second node's worker
surely gets videos, whatever the machine's speed. A watcher thread waits until that worker
has one of the videos open (``/proc/PID/fd``: it is decoding it, nothing committed yet), then
the node is lost as a machine is: its raylet and that worker are SIGKILLed at once, and a
third node (1 CPU) joins, where the waiting worker starts and finishes the run. Prints one JSON
line: the rows, the retries the scheduler reported (with the lost worker's node), the video in
flight on the lost node, the workers that became ready and on which node, the summary's count
and line, the exit code.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

os.environ["RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER"] = "0"  # loopback only (ferbatch.runner.ray_setup)

import ray  # noqa: E402
from ray._private import ray_constants  # noqa: E402
from ray.cluster_utils import Cluster  # noqa: E402

from ferbatch.config import PoolConfig, RunConfig  # noqa: E402
from ferbatch.progress import Retry, RunHook, WorkerInfo, format_summary  # noqa: E402
from ferbatch.runner.controller import run_videos  # noqa: E402

FAST_FAILURE = {"health_check_initial_delay_ms": 0, "health_check_period_ms": 500,
                "health_check_timeout_ms": 500, "health_check_failure_threshold": 2}

#: seconds the watcher waits for the second node's worker to open a video
WATCH_S = 120.0


def open_files(pid: int) -> set[str]:
    """The files process ``pid`` has open (Linux ``/proc``); empty once it is gone."""
    found = set()
    try:
        for fd in os.listdir(f"/proc/{pid}/fd"):
            try:
                found.add(os.readlink(f"/proc/{pid}/fd/{fd}"))
            except OSError:
                continue
    except OSError:
        pass
    return found


class LoseNodeMidVideo(RunHook):
    """Records the run's workers and retries; once the worker on ``node`` is decoding one of
    ``videos``, kills the node's raylet and that worker (SIGKILL) and calls ``then()`` (which
    adds the node the run finishes on)."""

    def __init__(self, node: Any, videos: list[str], then: Callable[[], Any]) -> None:
        self.node = node
        self.then = then
        self.spare: Any = None
        self.videos = {str(Path(v).resolve()) for v in videos}
        self.workers: list[dict[str, Any]] = []
        self.retries: list[dict[str, Any]] = []
        self.in_flight: str | None = None
        self.killed_at: float | None = None
        self.found = threading.Event()
        self.started = time.monotonic()

    def on_worker(self, info: WorkerInfo) -> None:
        self.workers.append({"pid": info.pid, "node": info.node,
                             "ready_s": round(time.monotonic() - self.started, 1)})
        if info.node == self.node.node_id:
            threading.Thread(target=self._watch, args=(info.pid,), daemon=True).start()

    def _watch(self, pid: int) -> None:
        deadline = time.monotonic() + WATCH_S
        while time.monotonic() < deadline:
            busy = open_files(pid) & self.videos
            if busy:
                self.in_flight = busy.pop()
                raylet = self.node.all_processes[ray_constants.PROCESS_TYPE_RAYLET][0].process
                raylet.kill()  # the node's raylet, and with it the machine's worker:
                try:
                    os.kill(pid, signal.SIGKILL)
                except ProcessLookupError:
                    pass
                self.killed_at = time.monotonic()
                self.found.set()
                try:
                    self.spare = self.then()
                except Exception as exc:  # noqa: BLE001 - the run would wait for it for ever
                    print(f"the spare node did not start: {type(exc).__name__}: {exc}",
                          file=sys.stderr, flush=True)
                    os._exit(3)
                return
            time.sleep(0.02)

    def on_retry(self, retry: Retry) -> None:
        self.retries.append({"path": str(Path(retry.path).resolve()), "error": retry.error,
                             "attempt": retry.attempt,
                             "node": retry.worker.node if retry.worker else None})


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _agent_ports() -> dict[str, int]:
    """Fixed ports for a node's agents: with them the raylet does not wait for the agents'
    port files, which it gives up on after a hard-coded 15 s (ray-project/ray#65983) when a
    loaded machine starts the Python agents slowly."""
    return {name: _free_port() for name in ("metrics_agent_port", "metrics_export_port",
                                            "dashboard_agent_listen_port",
                                            "runtime_env_agent_port")}


def persist_agent_ports_first() -> None:
    """Write each node's agent port files before its raylet starts, with the fixed ports of
    :func:`_agent_ports` (the agents write the same numbers once up). Ray 2.60's raylet
    waits at most a hard-coded 15 s for those files and then dies (ray-project/ray#65983,
    with the dashboard agent's listen port even when it is fixed); on a loaded 2-core machine
    the Python agents often take longer than that to start."""
    from ray import _raylet
    from ray._private.node import Node

    start_raylet = Node.start_raylet

    def start(node: Any, *args: Any, **kwargs: Any) -> Any:
        params = node._ray_params
        for name, port in ((_raylet.METRICS_AGENT_PORT_NAME, params.metrics_agent_port),
                           (_raylet.METRICS_EXPORT_PORT_NAME, params.metrics_export_port),
                           (_raylet.DASHBOARD_AGENT_LISTEN_PORT_NAME,
                            params.dashboard_agent_listen_port),
                           (_raylet.RUNTIME_ENV_AGENT_PORT_NAME, params.runtime_env_agent_port)):
            if port:
                _raylet.persist_port(node._session_dir, node._node_id, name, int(port))
        return start_raylet(node, *args, **kwargs)

    Node.start_raylet = start  # type: ignore[method-assign]


def main(temp: str, out: str, videos: list[str]) -> None:
    persist_agent_ports_first()
    started = time.monotonic()
    common = {"node_ip_address": "127.0.0.1", "include_dashboard": False}
    cluster = Cluster(initialize_head=True, head_node_args={
        **common, "num_cpus": 0, **_agent_ports(), "temp_dir": temp,
        "_system_config": FAST_FAILURE})
    try:
        second = cluster.add_node(**common, num_cpus=1, **_agent_ports())
        cluster.wait_for_nodes()
        up = time.monotonic()

        def add_spare() -> Any:
            # from the watcher thread: a node started there cannot install Ray's signal and
            # exit hooks (main thread only); cluster.shutdown() below still stops it
            cluster._shutdown_at_exit = False
            return cluster.add_node(**common, num_cpus=1, **_agent_ports())

        hook = LoseNodeMidVideo(second, videos, then=add_spare)
        summary = run_videos(videos, out, RunConfig(device="cpu"), use_ray=True, hook=hook,
                             pool=PoolConfig(address=cluster.address, workers=2, segment_s=0,
                                             max_retries=2))
        counts = format_summary(summary).splitlines()[2 + len(summary.rows)]
        print(json.dumps({
            "rows": [{k: r[k] for k in ("path", "status", "frames_analyzed", "error")}
                     for r in summary.rows],
            "retries": hook.retries, "in_flight": hook.in_flight, "workers": hook.workers,
            "lost": second.node_id, "spare": hook.spare.node_id if hook.spare else None,
            "retried": summary.retried, "counts": counts, "exit_code": summary.exit_code,
            "seconds": {"cluster_up": round(up - started, 1),
                        "lost_after": round((hook.killed_at or up) - up, 1),
                        "run": round(time.monotonic() - up, 1)}}),
            flush=True)
    finally:
        if ray.is_initialized():
            ray.shutdown()
        cluster.shutdown()
        address_file = ray._private.utils.get_ray_address_file(None)  # Cluster wrote it
        try:
            with open(address_file) as fh:
                ours = fh.read() == cluster.address
            if ours:
                os.unlink(address_file)
        except OSError:
            pass


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2], sys.argv[3:])
