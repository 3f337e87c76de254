"""Inputs that must never stop a batch (issue 10, kinds 7–9): a file name that is not UTF-8, a
symlink loop, anything that is not a regular file; and the rule behind them — one input's
problem, even a bug while writing its rows, becomes that input's ``failed`` row, the traceback
goes to the run's log in ``OUT/_logs`` and every other video keeps its rows."""

from __future__ import annotations

import os
import re
import shutil
import socket
from pathlib import Path
from typing import Any

import pandas as pd
import pytest
from click.testing import CliRunner
from test_plan import guarded

from ferbatch.cli import cli
from ferbatch.config import PoolConfig, RunConfig
from ferbatch.output.commit import OutputStore
from ferbatch.output.layout import readable, video_id_for
from ferbatch.pipeline import Stages
from ferbatch.progress import format_summary
from ferbatch.runner.local import run
from ferbatch.runner.plan import FOLDER_NAMED_LIKE_A_VIDEO, LINK_NAMED_LIKE_A_VIDEO, find_inputs
from ferbatch.segments import header_duration, plan_segments

import clips

SAFE_ID = re.compile(r"^[A-Za-z0-9_.-]+-[0-9a-f]{10}$")


def _cli(*args: str) -> tuple[int, str]:
    result = CliRunner().invoke(cli, ["run", *args, "-q", "--local", "--device", "cpu"])
    return result.exit_code, result.output


@pytest.fixture(scope="module")
def good(tmp_path_factory: pytest.TempPathFactory, face_image: Any) -> Path:
    """A tiny face clip: 6 frames at 6 fps, 160×120."""
    path = tmp_path_factory.mktemp("good") / "good.mp4"
    clips.make_face_clip(path, face_image, n_frames=6, fps=6, size=(160, 120))
    return path


def _videos(out: Path) -> pd.DataFrame:
    return pd.read_parquet(out / "videos.parquet").set_index("path_bytes")


# -- kind 7: a file name that is not UTF-8 ------------------------------------------------------
def test_a_name_that_is_not_utf8_gets_its_row_beside_a_good_file(good: Path, tmp_path: Path) -> None:
    folder = tmp_path / "in"
    folder.mkdir()
    shutil.copy(good, folder / "good.mp4")
    latin1 = os.fsencode(folder) + b"/caf\xe9.mp4"  # "café.mp4" written by a Latin-1 system
    shutil.copy(good, latin1)
    out = tmp_path / "out"
    code, text = _cli(str(folder), "--out", str(out))
    assert code == 0, text
    videos = _videos(out)
    assert len(videos) == 2 and set(videos["status"]) == {"ok"}
    row = videos.loc[latin1]  # the exact bytes, kept losslessly
    assert row["path"] == f"{folder}/caf\\xe9.mp4"  # readable: the bad byte shown as \xe9
    assert os.path.exists(os.fsdecode(row.name))  # path_bytes names the very file
    assert row["video_id"] == video_id_for(os.fsdecode(latin1)) and SAFE_ID.match(row["video_id"])
    assert row["video_id"].startswith("caf-") and row["frames_analyzed"] == 6
    assert videos.loc[os.fsencode(folder / "good.mp4"), "frames_analyzed"] == 6
    faces = pd.read_parquet(out / "faces")
    assert set(faces["video_id"]) == set(videos["video_id"])  # both partitions readable
    # stable: a second run finds both done and skips them
    code, text = _cli(str(folder), "--out", str(out))
    assert code == 0 and "2 already done" in text, text
    assert (OutputStore(out).read_status(row["video_id"]) or {}).get("path") == row["path"]


def test_names_differing_only_in_bad_bytes_keep_apart_and_errors_stay_readable(
        good: Path, tmp_path: Path) -> None:
    """Variant: two names whose bad bytes differ get distinct ids; a FIFO and a folder with a
    bad byte in their names fail with a readable message; the run log is readable text."""
    folder = os.fsencode(tmp_path) + b"/in\xff"  # the folder's name too
    os.mkdir(folder)
    shutil.copy(good, folder + b"/caf\xe9.mp4")
    shutil.copy(good, folder + b"/caf\xe8.mp4")
    fifo = folder + b"/pipe\xe9.mp4"
    os.mkfifo(fifo)
    out = tmp_path / "out"
    summary = guarded(lambda: run([os.fsdecode(folder), os.fsdecode(fifo)], out,
                                  RunConfig(device="cpu")), [Path(os.fsdecode(fifo))])
    videos = _videos(out)
    ids = {name: videos.loc[folder + name, "video_id"] for name in (b"/caf\xe9.mp4", b"/caf\xe8.mp4")}
    assert len(set(ids.values())) == 2 and all(SAFE_ID.match(i) for i in ids.values())
    failed = videos.loc[fifo]
    assert failed["status"] == "failed"
    assert failed["error"] == (f"{tmp_path}/in\\xff/pipe\\xe9.mp4: not a regular file "
                               "(a FIFO (named pipe)); ferbatch reads video files only")
    assert summary.exit_code == 1 and len(summary.rows) == 3
    (log_file,) = (out / "_logs").glob("run-*.log")
    log_file.read_text(encoding="utf-8")  # valid UTF-8: the bad bytes are escaped


# -- kind 8: a symlink loop ----------------------------------------------------------------------
def test_a_symlink_loop_named_explicitly_fails_and_the_good_file_is_analysed(
        good: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    shutil.copy(good, "good.mp4")
    os.symlink("loop.mp4", "loop.mp4")  # ln -s loop.mp4 loop.mp4
    code, text = _cli("loop.mp4", "good.mp4", "--out", "out")
    assert code == 1, text  # one input failed
    videos = pd.read_parquet("out/videos.parquet").set_index("path")
    loop = videos.loc[str(tmp_path / "loop.mp4")]
    assert loop["status"] == "failed" and loop["error"] == (
        "loop.mp4: not a regular file (a symlink loop); ferbatch reads video files only")
    assert SAFE_ID.match(loop["video_id"])
    assert videos.loc[str(tmp_path / "good.mp4"), "status"] == "ok"
    assert videos.loc[str(tmp_path / "good.mp4"), "frames_analyzed"] == 6
    assert "failed: loop.mp4: not a regular file (a symlink loop)" in text


def test_a_two_link_cycle_in_a_folder_is_skipped_with_its_reason(good: Path, tmp_path: Path) -> None:
    """Variant: ``a.mp4 → b.mp4 → a.mp4`` and a link to its own folder inside a searched folder."""
    folder = tmp_path / "in"
    folder.mkdir()
    shutil.copy(good, folder / "good.mp4")
    os.symlink("b.mp4", folder / "a.mp4")
    os.symlink("a.mp4", folder / "b.mp4")
    os.symlink(".", folder / "again")
    summary = run([folder], tmp_path / "out", RunConfig(device="cpu"))
    assert [(Path(r["path"]).name, r["status"]) for r in summary.rows] == [("good.mp4", "ok")]
    assert sorted(summary.ignored) == [(str(folder / "a.mp4"), "not a regular file (a symlink loop)"),
                                       (str(folder / "b.mp4"), "not a regular file (a symlink loop)")]


# -- kind 9: FIFOs, sockets, devices, folders on every path ---------------------------------------
@pytest.fixture()
def specials(tmp_path: Path) -> dict[str, Path]:
    """A FIFO, a Unix socket, a link to /dev/zero (reading never ends) and a folder, each
    named like a video."""
    folder = tmp_path / "special"
    folder.mkdir()
    made = {"fifo": folder / "f.mp4", "socket": folder / "s.mp4", "device": folder / "zero.mp4",
            "folder": folder / "d.mp4"}
    os.mkfifo(made["fifo"])
    server = socket.socket(socket.AF_UNIX)
    server.bind(str(made["socket"]))
    server.close()
    os.symlink("/dev/zero", made["device"])
    made["folder"].mkdir()
    return made


def test_segment_planning_and_header_reads_never_open_a_special_file(
        specials: dict[str, Path]) -> None:
    """The worker's segment planner (and the plan's header probe) given a special file
    directly: nothing is opened, the video is left whole (its decoder fails it unopened)."""
    for path in specials.values():
        plan = guarded(lambda p=path: plan_segments(p, RunConfig(), segment_s=0.5), [specials["fifo"]])
        assert not plan.split and plan.reason == "not a regular file", path
        assert guarded(lambda p=path: header_duration(p), [specials["fifo"]]) is None


def test_special_files_fail_unopened_in_ray_default_mode(
        specials: dict[str, Path], clip_folder: Path, tmp_path: Path, ray_session: None) -> None:
    """Default mode with two good videos goes through Ray, with segment splitting on: each
    special file named explicitly fails with its kind before anything opens it; the special
    files inside a searched folder are skipped with a reason — once: one also named on its own
    is that input's failed row only."""
    from ferbatch.runner.controller import run_videos

    named = [specials["fifo"], specials["device"]]
    inputs = [clip_folder / "a.mp4", clip_folder / "b.mp4", *named, specials["folder"].parent]
    summary = guarded(lambda: run_videos(inputs, tmp_path / "out", RunConfig(device="cpu"),
                                         pool=PoolConfig(workers=1, segment_s=0.5)),
                      [specials["fifo"]], timeout=240)
    rows = {Path(r["path"]).name: r for r in summary.rows}
    assert rows["a.mp4"]["status"] == rows["b.mp4"]["status"] == "ok"
    kinds = {"f.mp4": "a FIFO (named pipe)", "zero.mp4": "a character device"}
    for name, kind in kinds.items():
        assert rows[name]["status"] == "failed"
        assert f"not a regular file ({kind})" in rows[name]["error"]
    assert len(summary.rows) == 4 and summary.exit_code == 1
    assert sorted(summary.ignored) == sorted([  # only in the folder: left out, with the reason
        (str(specials["socket"]), "not a regular file (a socket)"),
        (str(specials["folder"]), FOLDER_NAMED_LIKE_A_VIDEO)])


def test_a_folder_named_like_a_video(good: Path, tmp_path: Path, stages: Stages) -> None:
    """Kind 9, a folder named ``*.mp4``. Named explicitly it is the video file the user named:
    ``failed`` with the reason and how to search it instead. Inside a searched folder it is
    listed with the reason and searched like any folder (the video in it is found); a link to
    such a folder is listed, not followed. ``x.mp4/`` with a trailing slash is searched."""
    folder = tmp_path / "in"
    folder.mkdir()
    shutil.copy(good, folder / "good.mp4")
    inner = folder / "clip.mp4"
    inner.mkdir()
    shutil.copy(good, inner / "inner.mp4")
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    shutil.copy(good, elsewhere / "far.mp4")
    os.symlink(elsewhere, folder / "link.mp4")
    named = tmp_path / "named.mp4"
    named.mkdir()
    shutil.copy(good, named / "x.mp4")
    summary = run([folder, named], tmp_path / "out", stages=stages)
    rows = {Path(r["path"]).name: r for r in summary.rows}
    assert sorted(rows) == ["good.mp4", "inner.mp4", "named.mp4"]
    assert rows["good.mp4"]["status"] == rows["inner.mp4"]["status"] == "ok"
    assert rows["named.mp4"]["status"] == "failed" and rows["named.mp4"]["error"] == (
        f"{named}: not a regular file (a folder); ferbatch reads video files only (to search "
        f"it for videos, give it with a trailing slash: {named}/)")
    assert sorted(summary.ignored) == [(str(inner), FOLDER_NAMED_LIKE_A_VIDEO),
                                       (str(folder / "link.mp4"), LINK_NAMED_LIKE_A_VIDEO)]
    text = format_summary(summary).splitlines()
    assert (f"1 file skipped: {folder / 'link.mp4'} ({LINK_NAMED_LIKE_A_VIDEO}); "
            f"1 folder named like a video searched: {inner}") in text
    assert summary.exit_code == 1
    assert find_inputs([f"{named}{os.sep}"]) == ([named / "x.mp4"], [])
    assert find_inputs([named]) == ([named], [])


# -- the rule: a bug in one video's stage or its rows fails that video alone ----------------------
@pytest.mark.allow_error_logs  # the deliberate bug is logged at ERROR
def test_a_bug_while_writing_one_videos_rows_fails_that_video_alone(
        clip_folder: Path, tmp_path: Path, stages: Stages, monkeypatch: pytest.MonkeyPatch,
        no_error_logs: list[Any]) -> None:
    """Variant of ``test_a_bug_in_one_video_fails_that_video_and_the_run_goes_on``: the stage
    that raises is the commit of one video's tables (a bug, not the output failing)."""
    bad = video_id_for(clip_folder / "a.mp4")
    real = OutputStore.commit

    def commit(self: OutputStore, row: dict[str, Any], frames: Any, faces: Any) -> None:
        if row["video_id"] == bad and frames is not None:
            raise ValueError("deliberate bug in the writer")
        real(self, row, frames, faces)

    monkeypatch.setattr(OutputStore, "commit", commit)
    out = tmp_path / "out"
    summary = run([clip_folder / "a.mp4", clip_folder / "b.mp4"], out, stages=stages)
    rows = {Path(r["path"]).name: r for r in summary.rows}
    assert rows["a.mp4"]["status"] == "failed" and rows["a.mp4"]["error"] == (
        "a.mp4: cannot write its rows: ValueError: deliberate bug in the writer")
    assert rows["a.mp4"]["frames_analyzed"] == 0
    assert rows["b.mp4"]["status"] == "ok" and rows["b.mp4"]["frames_analyzed"] == 24
    videos = pd.read_parquet(out / "videos.parquet").set_index("path")
    assert videos.loc[str(clip_folder / "a.mp4"), "status"] == "failed"
    assert set(pd.read_parquet(out / "frames")["video_id"]) == {video_id_for(clip_folder / "b.mp4")}
    (log_file,) = (out / "_logs").glob("run-*.log")
    text = log_file.read_text()
    assert "Traceback (most recent call last)" in text and "deliberate bug in the writer" in text
    assert len(no_error_logs) == 1
    assert readable("caf\udce9") == "caf\\xe9"


def test_ray_that_cannot_start_is_one_clear_error_and_keeps_the_rows_already_decided(
        good: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A local Ray instance that cannot start (a loaded machine: its raylet gives up after a
    hard-coded 15 s) is one ``Error:`` line naming the way out (``--local``), exit 1, no
    traceback; the rows decided before Ray (a folder named as a video: failed) are in
    videos.parquet."""
    import ray

    from ferbatch.runner import ray_setup

    def timed_out(*args: Any, **kwargs: Any) -> str:
        raise Exception("The current node timed out during startup.")  # what Ray raises

    stopped: list[bool] = []
    monkeypatch.setattr(ray, "is_initialized", lambda: False)  # as in a fresh process
    monkeypatch.setattr(ray, "shutdown", lambda: stopped.append(True))  # not the suite's Ray
    monkeypatch.setattr(ray_setup, "init_local", timed_out)
    out, folder = tmp_path / "out", tmp_path / "y.mp4"
    folder.mkdir()
    result = CliRunner().invoke(cli, ["run", str(good), str(folder), "--out", str(out), "-q",
                                      "--ray", "--device", "cpu"])
    assert result.exit_code == 1, result.output
    assert "Error: could not start a local Ray instance: The current node timed out during " \
        "startup.; run again with --local" in result.output
    assert "Traceback" not in result.output and not isinstance(result.exception, AssertionError)
    videos = pd.read_parquet(out / "videos.parquet")
    assert list(videos["status"]) == ["failed"] and videos["path"][0] == str(folder)
    assert stopped  # what a half-started node left is stopped
