"""The Ray executor (``ferbatch.runner.ray_pool``): same output as the local runner, bad files,
killed workers, resume, ``ray job submit``, pool sizing, and ``ferbatch run`` choosing it.

One local Ray instance (2 CPUs, 127.0.0.1 only, its own temp dir) serves the whole test session;
the ``ray job submit`` test starts a real head node of its own in a subprocess and stops exactly
the processes it started.
"""

from __future__ import annotations

import os
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pyarrow.parquet as pq
import pytest

from ferbatch.config import RunConfig
from ferbatch.output.layout import video_id_for
from ferbatch.pipeline import Stages
from ferbatch.runner.local import run

import clips

ray = pytest.importorskip("ray")
from ferbatch.runner.ray_pool import run_distributed  # noqa: E402

from helpers import REPO_ROOT, Events, assert_same_frame, read_output  # noqa: E402


@pytest.fixture(scope="module")
def local_out(clip_folder: Path, tmp_path_factory: pytest.TempPathFactory, stages: Stages) -> Path:
    out = tmp_path_factory.mktemp("local") / "out"
    run([clip_folder], out, stages=stages)
    return out


@pytest.fixture(scope="module")
def ray_run(clip_folder: Path, tmp_path_factory: pytest.TempPathFactory,
            ray_session: None) -> tuple[Path, Any, Events]:
    out = tmp_path_factory.mktemp("ray") / "out"
    events = Events()
    summary = run_distributed([clip_folder], out, workers=2, hook=events)
    return out, summary, events


def test_ray_run_matches_the_local_runner(ray_run: tuple[Path, Any, Events],
                                          local_out: Path) -> None:
    out, summary, _ = ray_run
    ours, theirs = read_output(out), read_output(local_out)
    for name in ("videos", "frames", "faces"):
        assert_same_frame(ours[name], theirs[name], atol=1e-4)
    assert summary.frames == 48 and len(ours["frames"]) == 48


def test_bad_file_fails_alone_and_hooks_report_progress(ray_run: tuple[Path, Any, Events]) -> None:
    out, summary, events = ray_run
    status = {Path(r["path"]).name: r["status"] for r in summary.rows}
    assert status == {"a.mp4": "ok", "b.mp4": "ok", "bad.mp4": "failed"}
    assert [Path(r["path"]).name for r in summary.rows] == ["a.mp4", "b.mp4", "bad.mp4"]
    bad = next(r for r in summary.rows if r["status"] == "failed")
    assert "bad.mp4" in bad["error"] and "Traceback" not in bad["error"]
    assert events.of("start") == [3]
    assert len(events.of("worker")) == 2 and len({w.pid for w in events.of("worker")}) == 2
    assert sorted(Path(p).name for p in events.of("video")) == ["a.mp4", "b.mp4", "bad.mp4"]
    assert len(events.of("done")) == 3 and sum(events.of("frames")) == 48
    assert not events.of("retry")
    assert not summary.all_ok and len(summary.failed) == 1


def test_killed_worker_is_replaced_and_video_retried_without_duplicates(
        clip_folder: Path, tmp_path: Path, ray_session: None) -> None:
    """Kill the worker right after a video is handed to it (SIGKILL, as an OOM kill would).

    a.mp4: killed on its first attempt only → retried on a fresh worker → ok.
    b.mp4: killed on every attempt → failed after ``max_retries`` retries; the run goes on.
    """
    attempts: dict[str, int] = {}

    def react(kind: str, payload: Any) -> None:
        if kind == "video":
            name = Path(payload).name
            attempts[name] = attempts.get(name, 0) + 1
            if name == "b.mp4" or attempts[name] == 1:
                os.kill(events.pids[-1], signal.SIGKILL)

    events = Events(react)

    out = tmp_path / "out"
    summary = run_distributed([clip_folder / "a.mp4", clip_folder / "b.mp4"], out, workers=1,
                              max_retries=1, hook=events)
    status = {Path(r["path"]).name: r for r in summary.rows}
    assert status["a.mp4"]["status"] == "ok", status["a.mp4"]["error"]
    assert status["b.mp4"]["status"] == "failed" and "worker died" in status["b.mp4"]["error"]
    assert status["b.mp4"]["settings_fingerprint"] == status["a.mp4"]["settings_fingerprint"]
    assert attempts == {"a.mp4": 2, "b.mp4": 2}
    assert len(events.of("retry")) == 2 and len(set(events.pids)) == 3  # replaced while work is left
    assert all(r.worker is not None and r.worker.pid in events.pids for r in events.of("retry"))
    assert summary.retried == 2  # a.mp4 and b.mp4, once each: the summary's count
    faces = pd.read_parquet(out / "faces")
    frames = pd.read_parquet(out / "frames")
    assert not faces.duplicated(["video_id", "frame_index", "face_id"]).any()
    assert frames["frame_index"].tolist() == list(range(24))
    assert set(frames["video_id"].astype(str)) == {video_id_for(clip_folder / "a.mp4")}
    videos = pq.read_table(out / "videos.parquet").to_pandas()
    assert sorted(videos["status"]) == ["failed", "ok"]
    _wait_for_cpus(2)  # every actor of the run was released


def test_resume_redoes_only_the_uncommitted_video(ray_run: tuple[Path, Any, Events], clip_folder: Path,
                                                  tmp_path: Path) -> None:
    """A driver killed before a's status row was written: the next run redoes a, skips b."""
    src, _, _ = ray_run
    out = tmp_path / "out"
    shutil.copytree(src, out)
    (out / "_status" / f"{video_id_for(clip_folder / 'a.mp4')}.parquet").unlink()
    events = Events()
    summary = run_distributed([clip_folder / "a.mp4", clip_folder / "b.mp4"], out, hook=events)
    assert [Path(p).name for p in events.of("video")] == ["a.mp4"]
    assert summary.skipped == [str(clip_folder / "b.mp4")] and summary.frames == 24
    assert len(events.of("worker")) == 1  # one video to do: one worker
    after = read_output(out)
    assert_same_frame(after["faces"], read_output(src)["faces"], atol=1e-4)
    assert len(after["videos"]) == 3  # bad.mp4's row from the first run stays


def _wait_for_cpus(n: float, timeout: float = 20) -> None:
    deadline = time.monotonic() + timeout
    while ray.available_resources().get("CPU", 0) < n:
        assert time.monotonic() < deadline, ray.available_resources()
        time.sleep(0.2)


@pytest.mark.slow
def test_driver_killed_midway_then_rerun_completes_only_what_is_missing(
        tmp_path: Path, face_image: np.ndarray) -> None:
    """SIGKILL a real `ferbatch run --ray` driver (and its private Ray) after its first commit;
    the re-run skips the committed videos, redoes the rest, and no row is lost or doubled."""
    videos = tmp_path / "videos"
    videos.mkdir()
    n_frames = 72  # a second or more per video: the kill lands while the next one is in flight
    for i in range(4):
        clips.make_face_clip(videos / f"v{i}.mp4", face_image, n_frames=n_frames, fps=12, size=(320, 240))
    out = tmp_path / "out"
    cmd = [str(Path(sys.executable).with_name("ferbatch")), "run", str(videos), "--out", str(out),
           "--ray", "--workers", "1", "-q"]
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    env.pop("RAY_ADDRESS", None)
    driver = subprocess.Popen(cmd, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                              text=True, start_new_session=True)
    try:
        deadline = time.monotonic() + 120
        while not list((out / "_status").glob("*.parquet")):
            assert driver.poll() is None, driver.stdout.read() if driver.stdout else ""
            assert time.monotonic() < deadline, "no video committed within 120 s"
            time.sleep(0.1)
        _kill_tree(driver.pid)  # the driver and every process of the Ray it started, at once
        driver.wait(timeout=30)
    finally:
        _stop_group(driver.pid)
    done_before = {p.stem: p.stat().st_mtime_ns for p in (out / "_status").glob("*.parquet")}
    assert 1 <= len(done_before) < 4

    rerun = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=300)
    assert rerun.returncode == 0, rerun.stdout + rerun.stderr
    table = pd.read_parquet(out / "videos.parquet")
    assert len(table) == 4 and set(table["status"]) == {"ok"}
    assert f"{len(done_before)} already done" in rerun.stdout, rerun.stdout
    for vid, mtime in done_before.items():  # committed before the kill: not redone
        assert (out / "_status" / f"{vid}.parquet").stat().st_mtime_ns == mtime
    faces = pd.read_parquet(out / "faces")
    frames = pd.read_parquet(out / "frames")
    assert len(frames) == 4 * n_frames and len(faces) == 4 * n_frames
    assert not faces.duplicated(["video_id", "frame_index", "face_id"]).any()
    assert not [p for p in out.rglob("*") if p.name.startswith(".tmp")]


# -- a real cluster head and `ray job submit` ----------------------------------------------------
def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _process_tree(root: int, seeds: Any = ()) -> dict[int, Any]:
    """One pass over the process table: the members of the process group or session ``root``
    leads (``start_new_session=True``), ``seeds`` (pids), and all their descendants, as
    psutil.Process objects by pid. A reaped ``root``'s pid, reused by another process, matches
    neither, so that process is left alone."""
    import psutil

    psutil.process_iter.cache_clear()  # a cached entry can hide a new process with a reused pid
    procs: dict[int, psutil.Process] = {}
    children: dict[int, list[int]] = {}
    todo = list(seeds)
    for proc in psutil.process_iter(["ppid"]):
        procs[proc.pid] = proc
        children.setdefault(proc.info["ppid"], []).append(proc.pid)
        try:
            if root in (os.getpgid(proc.pid), os.getsid(proc.pid)):
                todo.append(proc.pid)
        except OSError:
            continue
    tree: set[int] = set()
    while todo:
        pid = todo.pop()
        if pid not in tree:
            tree.add(pid)
            todo.extend(children.get(pid, []))
    return {pid: procs[pid] for pid in tree if pid in procs}


def _kill_tree(root: int) -> None:
    """SIGKILL a process, its process group and session and all their descendants as one crash
    would, and wait until they are gone.

    Ray's workers are not in the driver's process group: killing only the group orphans a worker
    that can still commit the video it holds a moment later. Each pass over the process table
    suspends (SIGSTOP) what it finds, so a stopped raylet cannot start another worker; the search
    ends after two passes in a row find nothing new, and whatever was stopped is killed even if
    the search fails. Signals go through psutil, which checks that a pid was not reused.
    """
    import psutil

    found: dict[int, psutil.Process] = {}
    deadline = time.monotonic() + 30
    try:
        quiet = 0
        while quiet < 2:
            assert time.monotonic() < deadline, f"the process tree of {root} kept changing for 30 s"
            new = [proc for pid, proc in _process_tree(root, found).items() if pid not in found]
            quiet = 0 if new else quiet + 1
            for proc in new:
                try:
                    proc.suspend()
                    found[proc.pid] = proc
                except psutil.Error:
                    continue
    finally:
        for proc in found.values():
            try:
                proc.kill()
            except psutil.Error:
                continue
    others = [p for pid, p in found.items() if pid != root]  # the root is the test's child: wait() reaps it
    while alive := [p for p in others if _running(p)]:
        assert time.monotonic() < deadline + 30, f"still running after SIGKILL: {alive}"
        time.sleep(0.05)


def _running(proc: Any) -> bool:
    """True while ``proc`` (a psutil.Process) runs; a zombie (killed, not yet reaped) is done."""
    import psutil

    try:
        return proc.is_running() and proc.status() != psutil.STATUS_ZOMBIE
    except psutil.Error:
        return False


def _stop_group(pgid: int) -> None:
    """Stop the processes of one `ray start` (its process group and session and their
    descendants): SIGTERM, then SIGKILL for what is left after 10 s."""
    import psutil

    procs = list(_process_tree(pgid).values())
    for p in procs:
        try:
            p.terminate()
        except psutil.Error:
            pass
    _, alive = psutil.wait_procs(procs, timeout=10)
    for p in alive:
        try:
            p.kill()
        except psutil.Error:
            pass


@pytest.mark.slow
def test_ray_job_submit_runs_the_entrypoint(clip_folder: Path, tmp_path: Path) -> None:
    ray_exe = Path(sys.executable).with_name("ray")
    if not ray_exe.is_file():
        pytest.skip(f"no `ray` executable next to {sys.executable}")
    temp = tempfile.mkdtemp(prefix="fbhead-", dir="/tmp")
    dash = _free_port()
    env = {**os.environ, "PATH": f"{ray_exe.parent}{os.pathsep}{os.environ.get('PATH', '')}",
           "RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER": "0",  # bind every server to 127.0.0.1
           "RAY_AUTH_MODE": "token", "RAY_AUTH_TOKEN": secrets.token_hex(16),
           "OMP_NUM_THREADS": "1"}
    env.pop("RAY_ADDRESS", None)
    head = subprocess.Popen(
        [str(ray_exe), "start", "--head", "--node-ip-address=127.0.0.1", f"--port={_free_port()}",
         "--dashboard-host=127.0.0.1", f"--dashboard-port={dash}", "--num-cpus=2",
         f"--ray-client-server-port={_free_port()}", f"--dashboard-agent-listen-port={_free_port()}",
         f"--metrics-export-port={_free_port()}", f"--temp-dir={temp}", "--disable-usage-stats"],
        env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
        start_new_session=True)
    try:
        log, _ = head.communicate(timeout=120)
        if head.returncode != 0:
            pytest.skip(f"`ray start --head` failed here: {log[-800:]}")
        out = tmp_path / "out"
        job = subprocess.run(  # the command documented in jobs/README.md
            [str(ray_exe), "job", "submit", f"--address=http://127.0.0.1:{dash}",
             "--runtime-env", "jobs/runtime_env.yaml", "--", "python", "jobs/process_videos.py",
             str(clip_folder / "a.mp4"), str(clip_folder / "bad.mp4"), "--out", str(out), "--fps", "6"],
            env=env, cwd=REPO_ROOT, capture_output=True, text=True, timeout=240)
        text = job.stdout + job.stderr
        assert job.returncode != 0, text  # bad.mp4 failed: the job reports FAILED
        assert "2/2 videos" in text and "1 failed" in text, text[-3000:]
        videos = pd.read_parquet(out / "videos.parquet")
        assert sorted(videos["status"]) == ["failed", "ok"]
        frames = pd.read_parquet(out / "frames")
        assert len(frames) == 12 and videos["sampling"].tolist() == ["fps=6", "fps=6"]
    finally:
        _stop_group(head.pid)
        shutil.rmtree(temp, ignore_errors=True)


# -- pool sizing, devices and `ferbatch run` through Ray ------------------------------------------------
def test_default_workers_follow_cluster_resources() -> None:
    from ferbatch.runner.ray_pool import default_workers

    assert default_workers({"CPU": 8}, 1, 0, 100) == 8
    assert default_workers({"CPU": 8}, 2, 0, 100) == 4
    assert default_workers({"CPU": 8}, 1, 0, 3) == 3  # never more workers than videos
    assert default_workers({"CPU": 16, "GPU": 2}, 1, 0.5, 100) == 4
    assert default_workers({"CPU": 0.5}, 1, 0, 10) == 1


def test_cuda_without_gpus_is_a_config_error(clip_folder: Path, tmp_path: Path,
                                             ray_session: None) -> None:
    from ferbatch.errors import ConfigError

    if ray.cluster_resources().get("GPU", 0):
        pytest.skip("this Ray instance has GPUs")
    with pytest.raises(ConfigError, match="gpus-per-worker"):
        run_distributed([clip_folder / "a.mp4"], tmp_path / "o", RunConfig(device="cuda"))


def test_cli_run_goes_through_ray_for_two_videos(clip_folder: Path, tmp_path: Path, ray_session: None,
                                                 monkeypatch: pytest.MonkeyPatch) -> None:
    from click.testing import CliRunner

    from ferbatch.cli import cli
    from ferbatch.runner.ray_pool import RayExecutor

    pools: list[Any] = []
    execute = RayExecutor.execute

    def spy(self: RayExecutor, *args: Any) -> Any:
        pools.append(self.pool)
        return execute(self, *args)

    monkeypatch.setattr(RayExecutor, "execute", spy)
    monkeypatch.delenv("RAY_ADDRESS", raising=False)
    result = CliRunner().invoke(cli, ["run", str(clip_folder / "a.mp4"), str(clip_folder / "b.mp4"),
                                      "--out", str(tmp_path / "o"), "-q", "--workers", "1",
                                      "--cpus-per-worker", "2"])
    assert result.exit_code == 0, result.output
    assert "2 videos: 2 ok" in result.output
    assert len(pools) == 1 and pools[0].workers == 1 and pools[0].cpus_per_worker == 2
    assert ray.is_initialized()  # the session's instance was reused, not shut down
