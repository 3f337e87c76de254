"""Planning a run (``ferbatch.runner.plan``): discovery, and each input's decision — skip it,
fail it without opening it (a FIFO), or analyse it, with the container header read only when
splitting is on."""

from __future__ import annotations

import dataclasses
import errno
import os
import shutil
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

import ferbatch.segments
from ferbatch.config import RunConfig
from ferbatch.errors import ConfigError
from ferbatch.output.commit import OutputStore
from ferbatch.output.layout import video_id_for
from ferbatch.output.schema import STATUS_FAILED, STATUS_OK, new_video_row
from ferbatch.pipeline import Stages
from ferbatch.runner.local import run
from ferbatch.runner.plan import Action, describe, discover_videos, plan_run


def guarded(fn: Callable[[], Any], fifos: list[Path], timeout: float = 60.0) -> Any:
    """``fn()``, failing the test (instead of hanging it) when ``fn`` opens one of ``fifos``
    for reading: such an open blocks until a writer comes, so after ``timeout`` seconds the
    FIFOs are opened for writing here, which releases the reader. Afterwards no reader may
    still hold a FIFO open."""
    box: dict[str, Any] = {}

    def target() -> None:
        try:
            box["value"] = fn()
        except BaseException as exc:  # noqa: BLE001 - re-raised in the test's thread
            box["error"] = exc

    thread = threading.Thread(target=target, name="guarded", daemon=True)
    thread.start()
    thread.join(timeout)
    if thread.is_alive():
        for fifo in fifos:
            try:
                os.close(os.open(fifo, os.O_WRONLY | os.O_NONBLOCK))
            except OSError:
                pass
        thread.join(30)
        pytest.fail(f"still running after {timeout} s: blocked opening a FIFO for reading")
    if "error" in box:
        raise box["error"]
    for fifo in fifos:  # ENXIO: nobody has the FIFO open for reading
        with pytest.raises(OSError) as info:
            os.close(os.open(fifo, os.O_WRONLY | os.O_NONBLOCK))
        assert info.value.errno == errno.ENXIO
    return box["value"]


@pytest.fixture()
def video(tmp_path: Path, user_folder: Path) -> Path:
    """A copy of ``face.mp4`` (3 s, 36 frames) that a test may touch."""
    path = tmp_path / "in" / "face.mp4"
    path.parent.mkdir()
    shutil.copy(user_folder / "face.mp4", path)
    return path


@pytest.fixture()
def fifo(tmp_path: Path) -> Path:
    """A named pipe called like a video (opening it for reading blocks until a writer comes)."""
    if not hasattr(os, "mkfifo"):
        pytest.skip("no os.mkfifo on this platform")
    path = tmp_path / "pipe.mp4"
    os.mkfifo(path)
    return path


@pytest.fixture()
def header_reads(monkeypatch: pytest.MonkeyPatch) -> list[Path]:
    """Every path whose container header the plan reads (``segments.header_duration``)."""
    calls: list[Path] = []
    real = ferbatch.segments.header_duration

    def spy(path: Any) -> Any:
        calls.append(Path(path))
        return real(path)

    monkeypatch.setattr(ferbatch.segments, "header_duration", spy)
    return calls


def test_discover_is_recursive_and_only_picks_videos(user_folder: Path) -> None:
    names = sorted(p.name for p in discover_videos([user_folder]))
    assert names == ["audio.mp4", "empty.mp4", "face.mp4", "noface.mkv", "notes.mov",
                     "phone.mov", "random.mp4"]


def test_discover_refuses_a_missing_input_and_drops_duplicates(user_folder: Path,
                                                               tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="input not found"):
        discover_videos([tmp_path / "nope.mp4"])
    twice = discover_videos([user_folder / "face.mp4", user_folder, user_folder / "." / "face.mp4"])
    assert [p.name for p in twice].count("face.mp4") == 1 and len(twice) == 7
    text = tmp_path / "notes.txt"
    text.write_text("named explicitly: kept, whatever the extension")
    assert discover_videos([text]) == [text]


def test_a_fifo_fails_without_being_opened_and_a_video_is_analysed(
        video: Path, fifo: Path, tmp_path: Path, stages: Stages, header_reads: list[Path]) -> None:
    out = tmp_path / "out"
    plan = guarded(lambda: plan_run([video, fifo], out, provenance=stages.provenance,
                                    segment_s=1.0), [fifo])
    by_name = {v.path.name: v for v in plan.videos}
    face, pipe = by_name["face.mp4"], by_name["pipe.mp4"]
    assert face.action is Action.PROCESS and face.row is None
    assert face.video_id == video_id_for(video)
    assert pipe.action is Action.FAIL and pipe.row is not None
    assert pipe.row["status"] == STATUS_FAILED and pipe.row["video_id"] == pipe.video_id
    assert "a FIFO (named pipe)" in pipe.row["error"] and str(fifo) in pipe.row["error"]
    assert pipe.row["settings_fingerprint"] == stages.fingerprint
    assert pipe.row["finished_at"] is not None
    assert header_reads == []  # planning opens nothing; a decision reads a header once
    assert plan.todo == [face] and plan.duration(face) is not None and plan.duration(face)
    assert header_reads == [video]  # read once, never the FIFO's
    assert describe(plan) == "2 input(s): 1 to analyse, 0 already done, 1 cannot be read"
    assert not out.exists()  # planning reads the output, never writes it


def test_a_complete_video_is_skipped_unless_anything_about_it_changed(
        video: Path, tmp_path: Path, stages: Stages) -> None:
    out = tmp_path / "out"
    provenance = stages.provenance

    def action(**kw: Any) -> Action:
        kw.setdefault("provenance", provenance)
        (planned,) = plan_run([video], out, **kw).videos
        return planned.action

    assert action() is Action.PROCESS  # nothing committed yet
    store = OutputStore(out)
    store.write_manifest(provenance.labels, provenance.model)
    row = new_video_row(video, video_id_for(video), provenance)
    row["status"] = STATUS_OK
    store.commit(row, None, None)
    (planned,) = plan_run([video], out, provenance=provenance).videos
    assert planned.action is Action.SKIP and planned.row is not None
    assert planned.row["status"] == STATUS_OK and planned.row["path"] == str(video)
    assert action(overwrite=True) is Action.PROCESS
    other = dataclasses.replace(provenance, settings_fingerprint="other settings")
    assert action(provenance=other) is Action.PROCESS
    stat = video.stat()
    os.utime(video, ns=(stat.st_atime_ns, stat.st_mtime_ns + 1_000_000_000))  # the file changed
    assert action() is Action.PROCESS
    row.update(file_mtime_ns=video.stat().st_mtime_ns)
    store.commit(row, None, None)
    assert action() is Action.SKIP
    store.commit(dict(row, status=STATUS_FAILED, error="boom"), None, None)
    assert action() is Action.PROCESS  # a failed video is tried again


def test_the_header_is_read_once_and_only_when_a_decision_needs_it(
        video: Path, tmp_path: Path, stages: Stages, header_reads: list[Path]) -> None:
    out = tmp_path / "out"
    unsplit = plan_run([video], out, provenance=stages.provenance)
    (whole,) = unsplit.videos
    assert not unsplit.splittable(whole) and not unsplit.may_split(whole)
    assert unsplit.expected_units(whole) == 1 and unsplit.duration(whole) is None
    assert header_reads == [] and whole.duration_s is None  # splitting off: never read

    split = plan_run([video], out, provenance=stages.provenance, segment_s=1.0)
    (planned,) = split.videos
    assert header_reads == [] and split.may_split(planned)  # unknown: a worker would plan it
    assert split.splittable(planned) and split.expected_units(planned) == 3
    assert split.duration(planned) == pytest.approx(3.0, abs=0.1)  # 36 frames at 12 fps
    assert header_reads == [video]  # read once for all those questions
    assert split.count_units(cap=2) == 2 and split.count_units(cap=8) == 3
    long_segments = plan_run([video], out, provenance=stages.provenance, segment_s=2.0)
    assert not long_segments.splittable(long_segments.videos[0])  # shorter than 2 × 2 s
    assert long_segments.expected_units(long_segments.videos[0]) == 1
    with pytest.raises(ConfigError, match="segment-s"):
        plan_run([video], out, provenance=stages.provenance, segment_s=-1)


def test_a_run_of_a_folder_holding_a_fifo_finishes(user_folder: Path, fifo: Path,
                                                   tmp_path: Path, stages: Stages) -> None:
    """In a folder a FIFO is not picked up; named explicitly it is committed as failed, and
    the run goes on with the other videos."""
    folder = fifo.parent
    shutil.copy(user_folder / "noface.mkv", folder / "noface.mkv")
    config = RunConfig(device="cpu")
    summary = guarded(lambda: run([folder], tmp_path / "a", config, stages=stages), [fifo])
    assert [(Path(r["path"]).name, r["status"]) for r in summary.rows] == [("noface.mkv", "ok")]
    assert summary.exit_code == 0

    summary = guarded(lambda: run([folder / "noface.mkv", fifo], tmp_path / "b", config,
                                  stages=stages), [fifo])
    assert [(Path(r["path"]).name, r["status"]) for r in summary.rows] == [
        ("noface.mkv", "ok"), ("pipe.mp4", "failed")]
    assert "not a regular file" in summary.failed[0]["error"] and summary.exit_code == 1
    committed = OutputStore(tmp_path / "b").read_status(video_id_for(fifo))
    assert committed is not None and committed["status"] == STATUS_FAILED
