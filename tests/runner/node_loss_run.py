"""A two-node Ray cluster on this machine that loses its second node mid-run (run by
``test_node_loss.py`` in a process of its own, so it never meets the suite's shared Ray).

``python node_loss_run.py TEMP OUT VIDEO…``: starts a head node and a second node (1 CPU each,
127.0.0.1 only, Ray's files under TEMP, node failure detected within ~2 s), runs
:func:`ferbatch.runner.controller.run_videos` on the cluster with one worker per node, kills the
second node's raylet (SIGKILL) as soon as the first video is committed, and prints one JSON
line: the summary's rows, the retries the scheduler reported and the nodes that were alive.
"""

from __future__ import annotations

import json
import os
import socket
import sys
import threading
from typing import Any

os.environ["RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER"] = "0"  # loopback only (ferbatch.runner.ray_setup)

import ray  # noqa: E402
from ray._private import ray_constants  # noqa: E402
from ray.cluster_utils import Cluster  # noqa: E402

from ferbatch.config import PoolConfig, RunConfig  # noqa: E402
from ferbatch.progress import RunHook  # noqa: E402
from ferbatch.runner.controller import run_videos  # noqa: E402

FAST_FAILURE = {"health_check_initial_delay_ms": 0, "health_check_period_ms": 500,
                "health_check_timeout_ms": 500, "health_check_failure_threshold": 2}


class KillOnFirstCommit(RunHook):
    def __init__(self, node: Any) -> None:
        self.node = node
        self.done = 0
        self.retries: list[str] = []
        self.killed = threading.Event()

    def on_done(self, row: dict[str, Any]) -> None:
        self.done += 1
        if not self.killed.is_set():
            self.killed.set()
            raylet = self.node.all_processes[ray_constants.PROCESS_TYPE_RAYLET][0].process
            raylet.kill()

    def on_retry(self, retry: Any) -> None:
        self.retries.append(retry.error)


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


def main(temp: str, out: str, videos: list[str]) -> None:
    common = {"num_cpus": 1, "node_ip_address": "127.0.0.1", "include_dashboard": False}
    cluster = Cluster(initialize_head=True, head_node_args={
        **common, **_agent_ports(), "temp_dir": temp, "_system_config": FAST_FAILURE})
    try:
        second = cluster.add_node(**common, **_agent_ports())
        cluster.wait_for_nodes()
        hook = KillOnFirstCommit(second)
        summary = run_videos(videos, out, RunConfig(device="cpu"), use_ray=True, hook=hook,
                             pool=PoolConfig(address=cluster.address, workers=2, segment_s=0,
                                             max_retries=2))
        print(json.dumps({
            "rows": [{k: r[k] for k in ("video_id", "status", "frames_analyzed", "error")}
                     for r in summary.rows],
            "retries": hook.retries, "killed": hook.killed.is_set(),
            "exit_code": summary.exit_code}), flush=True)
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
