"""SIGTERM to a Ray-mode driver (issue 10, kind 13): one line on stderr, exit 143 as
``--local`` does, the Ray instance and its workers stopped, committed videos intact (and
listed in ``videos.parquet``), the same command then finishing the rest."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pandas as pd
import psutil
import pytest

import clips
from helpers import REPO_ROOT, ray_could_not_start


@pytest.fixture(scope="module")
def four_clips(tmp_path_factory: pytest.TempPathFactory, face_image: Any) -> Path:
    root = tmp_path_factory.mktemp("four")
    for i in range(4):
        clips.make_face_clip(root / f"v{i}.mp4", face_image, n_frames=36, fps=12, size=(160, 120))
    return root


def _driver(args: list[str]) -> subprocess.Popen[str]:
    env = dict(os.environ, PYTHONPATH=str(REPO_ROOT))
    env.pop("RAY_ADDRESS", None)
    return subprocess.Popen([sys.executable, "-m", "ferbatch.cli", "run", *args], env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def _terminate_with_one_line(driver: subprocess.Popen[str]) -> None:
    """SIGTERM ``driver``: it exits 143 with the CLI's one line on stderr, nothing else."""
    driver.send_signal(signal.SIGTERM)
    _, stderr = driver.communicate(timeout=120)
    assert driver.returncode == 143, stderr
    lines = [line for line in stderr.splitlines() if line.strip()]
    assert lines == ["ferbatch run: interrupted by SIGTERM; videos committed so far are kept; "
                     "the same command skips them and does the rest"], stderr


@pytest.mark.slow
def test_sigterm_to_a_ray_driver_exits_143_with_one_line_and_stops_ray(
        four_clips: Path, tmp_path: Path) -> None:
    out = tmp_path / "out"
    args = [str(four_clips), "--out", str(out), "--workers", "1", "--device", "cpu", "-q"]
    driver = _driver(args)
    status = out / "_status"
    deadline = time.monotonic() + 240
    while not (status.is_dir() and any(p.suffix == ".parquet" for p in status.iterdir())):
        if driver.poll() is not None:
            stderr = driver.communicate()[1]
            if ray_could_not_start(stderr):
                pytest.skip("Ray could not start on this machine (the raylet gives up on slow "
                            "agents after a hard-coded 15 s: ray-project/ray#65983)")
            pytest.fail(f"the run ended before SIGTERM: {stderr[-3000:]}")
        assert time.monotonic() < deadline, "no video committed in 240 s"
        time.sleep(0.2)
    ray_processes = psutil.Process(driver.pid).children(recursive=True)
    assert any("raylet" in " ".join(p.cmdline()) for p in ray_processes)  # Ray mode indeed
    _terminate_with_one_line(driver)
    gone, alive = psutil.wait_procs(ray_processes, timeout=30)
    assert alive == [], [" ".join(p.cmdline())[:120] for p in alive]
    videos = pd.read_parquet(out / "videos.parquet")  # rebuilt on the way out
    assert len(videos) >= 1 and set(videos["status"]) == {"ok"}
    assert set(videos["frames_analyzed"]) == {36}
    frames = pd.read_parquet(out / "frames")
    assert frames.groupby("video_id").size().to_dict() == dict.fromkeys(videos["video_id"], 36)
    again = _driver(args)
    stdout, stderr = again.communicate(timeout=300)
    assert again.returncode == 0, stderr
    assert f"{len(videos)} already done" in stdout
    frames = pd.read_parquet(out / "frames")
    assert len(frames) == 4 * 36 and not frames.duplicated(["video_id", "frame_index"]).any()


@pytest.mark.slow
def test_sigterm_while_ray_starts_exits_143_with_one_line_and_leaves_no_ray_process(
        four_clips: Path, tmp_path: Path) -> None:
    """SIGTERM while ``ray.init`` starts the private instance: Ray's own handler (``sys.exit(15)``
    at whatever the driver runs) is kept out, the signal is handled when ``ray.init`` returns:
    exit 143 and the one line, every Ray process stopped, nothing committed."""
    out = tmp_path / "out"
    driver = _driver([str(four_clips), "--out", str(out), "--workers", "1", "--device", "cpu", "-q"])
    deadline = time.monotonic() + 240
    seen: list[psutil.Process] = []
    while not seen:  # the GCS is the first process ray.init starts
        assert driver.poll() is None, driver.communicate()[1][-3000:]
        assert time.monotonic() < deadline, "Ray's GCS did not start in 240 s"
        try:
            seen = [p for p in psutil.Process(driver.pid).children(recursive=True)
                    if "gcs_server" in " ".join(p.cmdline())]
        except psutil.Error:
            pass
        time.sleep(0.05)
    temp = re.search(r"/ferray-[^/\s]+", " ".join(seen[0].cmdline()))  # this instance's dir
    assert temp is not None, seen[0].cmdline()
    _terminate_with_one_line(driver)

    def left() -> list[str]:  # every process of this Ray instance, started before or after
        found = []
        for proc in psutil.process_iter(["cmdline"]):
            line = " ".join(proc.info["cmdline"] or [])
            if temp.group(0) in line:
                found.append(line[:120])
        return found

    deadline = time.monotonic() + 60
    while left() and time.monotonic() < deadline:
        time.sleep(0.5)
    assert left() == []
    assert not (out / "frames").exists() or not any((out / "frames").iterdir())


class _Stop(BaseException):
    pass


def test_a_sigterm_during_ray_init_is_deferred_to_the_processs_own_handler() -> None:
    """``keep_sigterm_handler`` around a stand-in for ``ray.init``: Ray's handler is not
    installed, the signal waits for the block's end, then the process's handler runs once."""
    import ray._private.utils as ray_utils
    from ray._private import ray_constants

    from ferbatch.runner.ray_setup import keep_sigterm_handler

    disabled = ray_constants.RAY_DISABLE_FAILURE_SIGNAL_HANDLER

    calls: list[int] = []

    def ours(signum: int, frame: Any) -> None:
        calls.append(signum)
        raise _Stop

    before = signal.signal(signal.SIGTERM, ours)
    try:
        install = ray_utils.set_sigterm_handler
        with pytest.raises(_Stop), keep_sigterm_handler():
            ray_utils.set_sigterm_handler(lambda signum, frame: sys.exit(signum))  # as ray.init does
            os.kill(os.getpid(), signal.SIGTERM)
            time.sleep(0.05)  # Python runs handlers between bytecodes: it was only recorded
            assert calls == []
        assert calls == [signal.SIGTERM]
        assert signal.getsignal(signal.SIGTERM) is ours and ray_utils.set_sigterm_handler is install
        with keep_sigterm_handler():  # no signal: nothing runs, everything is put back
            assert ray_constants.RAY_DISABLE_FAILURE_SIGNAL_HANDLER is True  # no C++ crash dump
        assert calls == [signal.SIGTERM] and signal.getsignal(signal.SIGTERM) is ours
        assert ray_constants.RAY_DISABLE_FAILURE_SIGNAL_HANDLER is disabled
        with pytest.raises(_Stop), keep_sigterm_handler():  # a second SIGTERM does not wait
            os.kill(os.getpid(), signal.SIGTERM)
            time.sleep(0.05)
            assert calls == [signal.SIGTERM]
            os.kill(os.getpid(), signal.SIGTERM)
            time.sleep(0.05)
            pytest.fail("the second SIGTERM was not handled at once")
        assert calls == [signal.SIGTERM] * 2 and signal.getsignal(signal.SIGTERM) is ours
    finally:
        signal.signal(signal.SIGTERM, before)
