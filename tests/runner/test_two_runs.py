"""Two runs on one output (issue 10, kind 10): the lock on ``OUT/_lock``
(:mod:`ferbatch.output.lock`). The interleavings are driven from outside the process: run A
stops itself (SIGSTOP) right after writing a hidden temp partition, with its commit marker
in place; the test then starts run B, resumes or kills A, and checks every committed row."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pandas as pd
import pyarrow.fs as pafs
import pytest
from click.testing import CliRunner

from ferbatch.cli import cli
from ferbatch.output.layout import video_id_for
from ferbatch.output.location import OutputLocation, resolve_output
from ferbatch.output.lock import LEASE_S, OutputBusyError, output_lock, read_holder

from helpers import REPO_ROOT

#: run A: ``ferbatch run VIDEO --out OUT --local``, stopping itself once, just after the temp
#: partition of the frames table is written and before it is renamed into place
RUN_A = """
import os, signal, sys
import ferbatch.output.committers as committers
real = committers.LocalCommitter.delete_dir
state = {"stopped": False}
def delete_dir(self, path):
    if not state["stopped"] and "/frames/video_id=" in path:
        state["stopped"] = True
        os.kill(os.getpid(), signal.SIGSTOP)
    real(self, path)
committers.LocalCommitter.delete_dir = delete_dir
from ferbatch.cli import cli
cli(["run", sys.argv[1], "--out", sys.argv[2], "--local", "--device", "cpu", "-q"])
"""


def _start_a(video: Path, out: Path) -> subprocess.Popen[str]:
    env = dict(os.environ, PYTHONPATH=str(REPO_ROOT))
    return subprocess.Popen([sys.executable, "-c", RUN_A, str(video), str(out)], env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)


def _wait_stopped(proc: subprocess.Popen[str], timeout: float = 300.0) -> None:
    """Until ``proc`` is stopped (state ``T`` in /proc); fails the test if it exits first."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            pytest.fail(f"run A ended before stopping: {proc.stdout.read() if proc.stdout else ''}")
        state = Path(f"/proc/{proc.pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
        if state == "T":
            return
        time.sleep(0.05)
    proc.kill()
    pytest.fail("run A did not reach its stop point")


def _in_flight(out: Path, video_id: str) -> list[str]:
    """A's work in flight: its temp partition folders and its commit marker."""
    temp = [p.name for p in (out / "frames").iterdir() if p.name.startswith(".tmp-")]
    marker = out / "_status" / f"{video_id}.pending"
    return temp + ([marker.name] if marker.exists() else [])


@pytest.fixture()
def video(clip_folder: Path) -> Path:
    return clip_folder / "a.mp4"  # 24 frames


def test_a_second_run_refuses_while_the_first_is_stopped_and_nothing_is_lost(
        video: Path, tmp_path: Path) -> None:
    out = tmp_path / "out"
    video_id = video_id_for(video)
    a = _start_a(video, out)
    try:
        _wait_stopped(a)
        before = _in_flight(out, video_id)
        assert len(before) == 2 and before[0].startswith(f".tmp-{video_id}-")
        holder = read_holder(resolve_output(str(out)))
        assert holder is not None and holder["pid"] == a.pid
        b = CliRunner().invoke(cli, ["run", str(video), "--out", str(out), "--local", "-q",
                                     "--device", "cpu"])
        assert b.exit_code == 1, b.output
        assert (f"another ferbatch run is writing this output (pid {a.pid} on "
                f"{holder['host']}, started {holder['started']})") in b.output
        assert _in_flight(out, video_id) == before  # B touched nothing of A's
    finally:
        os.kill(a.pid, signal.SIGCONT)
        output = a.communicate(timeout=300)[0]
    assert a.returncode == 0, output
    videos = pd.read_parquet(out / "videos.parquet")
    assert videos["status"].tolist() == ["ok"] and videos["frames_analyzed"].tolist() == [24]
    frames = pd.read_parquet(out / "frames")
    assert len(frames) == 24 and frames["frame_index"].is_unique
    assert _in_flight(out, video_id) == []
    again = CliRunner().invoke(cli, ["run", str(video), "--out", str(out), "--local", "-q",
                                     "--device", "cpu"])
    assert again.exit_code == 0 and "1 already done" in again.output, again.output
    assert len(pd.read_parquet(out / "frames")) == 24


def test_a_killed_run_frees_the_output_and_the_next_run_cleans_its_debris(
        video: Path, clip_folder: Path, tmp_path: Path) -> None:
    """Variant: A dies (SIGKILL) at the same point; its lock goes with it, so B may and does
    remove A's temp partition and settle its marker, then commits each video once."""
    out = tmp_path / "out"
    a = _start_a(video, out)
    _wait_stopped(a)
    assert len(_in_flight(out, video_id_for(video))) == 2
    a.kill()
    a.communicate(timeout=60)
    b = CliRunner().invoke(cli, ["run", str(video), str(clip_folder / "b.mp4"), "--out", str(out),
                                 "--local", "-q", "--device", "cpu"])
    assert b.exit_code == 0, b.output
    assert _in_flight(out, video_id_for(video)) == []
    frames = pd.read_parquet(out / "frames")
    assert frames.groupby("video_id").size().to_dict() == {video_id_for(video): 24,
                                                            video_id_for(clip_folder / "b.mp4"): 24}
    assert not frames.duplicated(["video_id", "frame_index"]).any()


def test_the_lock_is_exclusive_across_processes_and_released(tmp_path: Path) -> None:
    location = resolve_output(str(tmp_path / "out"))
    holder = ("import sys, time\nfrom ferbatch.output.location import resolve_output\n"
              "from ferbatch.output.lock import output_lock\n"
              "with output_lock(resolve_output(sys.argv[1])):\n"
              "    print('held', flush=True); time.sleep(60)\n")
    proc = subprocess.Popen([sys.executable, "-c", holder, str(tmp_path / "out")],
                            env=dict(os.environ, PYTHONPATH=str(REPO_ROOT)),
                            stdout=subprocess.PIPE, text=True)
    try:
        assert proc.stdout is not None and proc.stdout.readline() == "held\n"
        with pytest.raises(OutputBusyError, match=f"pid {proc.pid} on"):
            with output_lock(location):
                pass
    finally:
        proc.kill()
        proc.wait()
    with output_lock(location):  # the dead holder's lock is gone
        assert read_holder(location)["pid"] == os.getpid()  # type: ignore[index]
    with output_lock(location):  # and ours was released
        pass


def test_an_object_store_lease_refuses_a_live_holder_and_takes_a_stale_one(tmp_path: Path) -> None:
    """The lease of object stores, on a filesystem that is not local (a SubTreeFileSystem)."""
    (tmp_path / "bucket").mkdir()
    fs = pafs.SubTreeFileSystem(str(tmp_path / "bucket"), pafs.LocalFileSystem())
    location = OutputLocation(fs, "out", None)
    assert not location.is_local
    with output_lock(location):
        held: dict[str, Any] = read_holder(location) or {}
        assert held["pid"] == os.getpid()
        with pytest.raises(OutputBusyError, match="another ferbatch run is writing"):
            with output_lock(location):
                pass
    assert read_holder(location) is None  # released: the lease object is gone
    stale = dict(held, renewed=time.time() - LEASE_S - 1, pid=1)
    fs.create_dir("out")
    with fs.open_output_stream("out/_lock") as stream:
        stream.write(json.dumps(stale).encode())
    with output_lock(location):  # a lease nobody renewed: a dead run's
        assert (read_holder(location) or {})["pid"] == os.getpid()
