"""``ferbatch serve`` as a process: SIGTERM (``docker stop``) and Ctrl-C (SIGINT) stop it
as they stop ``ferbatch run`` — one line on stderr, exit 143 or 130 — with the application
removed and its private Ray instance stopped, nothing left running. A process of its own with
a private Ray instance (not the suite's shared one)."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import psutil
import pytest

from helpers import REPO_ROOT, free_port, ray_could_not_start


def _serve(port: int, stderr: Path) -> subprocess.Popen[str]:
    env = dict(os.environ, PYTHONPATH=str(REPO_ROOT))
    env.pop("RAY_ADDRESS", None)  # a private local Ray instance
    with stderr.open("w") as err:
        return subprocess.Popen(
            [sys.executable, "-m", "ferbatch.cli", "serve", "--port", str(port), "--device",
             "cpu", "--cpus-per-replica", "0"], env=env, stdout=subprocess.DEVNULL, stderr=err,
            text=True, preexec_fn=_default_sigint)


def _default_sigint() -> None:
    """A suite started in the background (``make test &``) ignores SIGINT, and a child inherits
    that, so Python would install no KeyboardInterrupt handler: give the server the default."""
    signal.signal(signal.SIGINT, signal.SIG_DFL)


@pytest.mark.slow
@pytest.mark.parametrize(("sig", "name", "code"), [(signal.SIGTERM, "SIGTERM", 143),
                                                   (signal.SIGINT, "Ctrl-C", 130)],
                         ids=["SIGTERM", "SIGINT"])
def test_serve_stops_cleanly_on_sigterm_and_ctrl_c(sig: signal.Signals, name: str, code: int,
                                                   tmp_path: Path) -> None:
    port = free_port()
    log = tmp_path / "stderr.txt"
    server = _serve(port, log)
    try:
        deadline = time.monotonic() + 240
        while True:  # up: it answers, and it said so (the line that tells a user Ctrl-C stops it)
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/healthz", timeout=5) as r:
                    assert json.loads(r.read()) == {"status": "ok"}
                    if "Ctrl-C stops it" in log.read_text():
                        break
            except OSError:
                pass
            if server.poll() is not None:
                stderr = log.read_text()
                if ray_could_not_start(stderr):
                    pytest.skip("Ray could not start on this loaded machine")
                pytest.fail(f"ferbatch serve ended before it answered: {stderr[-3000:]}")
            assert time.monotonic() < deadline, "ferbatch serve did not answer in 240 s"
            time.sleep(0.5)
        family = psutil.Process(server.pid).children(recursive=True)
        assert any("raylet" in " ".join(p.cmdline()) for p in family)  # its own Ray instance
        server.send_signal(sig)
        # Serve's shutdown takes seconds on an idle machine, minutes on two loaded cores
        server.wait(timeout=300)
    finally:
        if server.poll() is None:
            server.kill()
            server.wait()
    stderr = log.read_text()
    assert server.returncode == code, stderr[-3000:]
    assert f"interrupted by {name}" in stderr
    assert "Traceback" not in stderr
    _, alive = psutil.wait_procs(family, timeout=30)  # children may take a moment under load
    assert not [p for p in alive if p.is_running() and p.status() != psutil.STATUS_ZOMBIE], \
        "Ray processes of the server left running"
