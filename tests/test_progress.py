"""Progress observers (``ferbatch.progress``): the console bar, one log line per video for job
logs, and the final summary table."""

from __future__ import annotations

import logging
import re
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest

import ferbatch.progress
from ferbatch.progress import ConsoleProgress, LineProgress, Retry, Unsplit, WorkerInfo, format_summary
from ferbatch.runner.plan import FOLDER_NAMED_LIKE_A_VIDEO
from ferbatch.runner.summary import RunSummary


def _row(name: str, status: str = "ok", frames: int = 0, error: str | None = None) -> dict[str, Any]:
    return {"path": f"/in/{name}", "status": status, "frames_analyzed": frames, "error": error,
            "processing_s": 1.0, "faces_detected": frames, "tracks": 1}


def test_console_progress_counts_frames_and_videos_and_prints_failures(
        capsys: pytest.CaptureFixture[str]) -> None:
    with ConsoleProgress(live=True) as progress:
        progress.on_start(3)
        progress.on_skip(_row("a.mp4", frames=7))  # already done: counts as a finished video
        progress.on_video(Path("/in/b.mp4"))
        progress.on_frames(10)
        progress.on_frames(5)
        progress.on_done(_row("b.mp4", frames=15))
        progress.on_video(Path("/in/c.mp4"))
        progress.on_retry(Retry(Path("/in/c.mp4"), 1, "c.mp4: worker died 1 time(s), last pid 7 "
                                "on h (node 1a2b3c4d): its node has died",
                                WorkerInfo(pid=7, host="h", device="cpu", node="1a2b3c4d5e")))
        progress.on_done(_row("c.mp4", "failed", error="c.mp4: not a video file"))
        bar = progress.bar
        assert bar is not None and bar.n == 15 and progress.done == 3
        assert bar.desc.startswith("3/3 videos")
    out = capsys.readouterr()
    assert out.out == ""  # stdout is the summary's
    assert "FAILED c.mp4: not a video file\n" in out.err
    assert "RETRY c.mp4: worker died 1 time(s), last pid 7 on h (node 1a2b3c4d): its node has died\n" in out.err
    assert "FAILED" not in out.err.replace("FAILED c.mp4", "")  # the ok videos print nothing
    assert re.search(r"3/3 videos \| 15 frames", out.err)  # the closed bar's last state
    assert "b.mp4" in out.err  # the video being analysed is shown


def test_console_progress_line_has_no_doubled_colon(capsys: pytest.CaptureFixture[str]) -> None:
    with ConsoleProgress(live=True) as progress:
        progress.on_start(2)
        progress.on_frames(7)
        progress.on_done(_row("a.mp4", frames=7))
    err = capsys.readouterr().err
    assert "1/2 videos | 7 frames" in err and ": :" not in err


def test_console_progress_without_a_terminal_prints_one_plain_line_per_video(
        capsys: pytest.CaptureFixture[str]) -> None:
    with ConsoleProgress() as progress:  # capsys's stderr is no terminal
        assert not progress.live
        progress.on_start(3)
        progress.on_skip(_row("a.mp4", frames=7))
        progress.on_video(Path("/in/b.mp4"))
        progress.on_frames(10)
        progress.on_done(_row("b.mp4", frames=10))
        progress.on_retry(Retry(Path("/in/c.mp4"), 1, "c.mp4: worker died"))
        progress.on_done(_row("c.mp4", "failed", error="c.mp4: not a video file"))
        assert progress.bar is None
    out = capsys.readouterr()
    assert out.out == "" and "\r" not in out.err
    assert out.err.splitlines() == ["1/3 videos | 0 frames | already done a.mp4",
                                    "2/3 videos | 10 frames | ok b.mp4",
                                    "RETRY c.mp4: worker died",
                                    "FAILED c.mp4: not a video file"]


def test_disabled_console_progress_prints_nothing(capsys: pytest.CaptureFixture[str]) -> None:
    with ConsoleProgress(enabled=False) as progress:
        progress.on_start(1)
        progress.on_video(Path("/in/c.mp4"))
        progress.on_frames(3)
        progress.on_done(_row("c.mp4", "failed", error="c.mp4: broken"))
        assert progress.bar is None
    assert capsys.readouterr() == ("", "")


def test_line_progress_logs_one_line_per_video_with_rate_eta_and_failures(
        monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture) -> None:
    clock = iter([100.0, 102.0, 104.0])  # worker ready, first video done, second video done
    monkeypatch.setattr(ferbatch.progress, "time", SimpleNamespace(perf_counter=lambda: next(clock)))
    progress = LineProgress()
    with caplog.at_level(logging.INFO, logger="ferbatch.progress"):
        progress.on_start(3)
        progress.on_skip(_row("a.mp4", frames=99))  # skipped: not part of throughput or ETA
        progress.on_worker(WorkerInfo(pid=1, host="h", device="cpu"))
        progress.on_worker(WorkerInfo(pid=2, host="h", device="cpu"))  # the clock started once
        progress.on_done(_row("b.mp4", frames=10))
        progress.on_unsplit(Unsplit(Path("/in/c.mp4"), "segment 1 ended partial"))
        progress.on_retry(Retry(Path("/in/c.mp4"), 1, "c.mp4: worker died 1 time(s), last pid 7"))
        progress.on_done(_row("c.mp4", "failed", error="c.mp4: not a video file"))
    lines = [r.getMessage() for r in caplog.records if r.name == "ferbatch.progress"]
    assert lines == [
        "1/2 videos | 10 frames, 5.0 frames/s | ETA 2 s | 0 failed | ok b.mp4",
        "2/2 videos | 10 frames, 2.5 frames/s | ETA 0 s | 1 failed | failed c.mp4 "
        "(c.mp4: not a video file)",
    ]
    assert all(r.levelno == logging.INFO for r in caplog.records)


def test_line_progress_names_the_error_of_a_partial_video(caplog: pytest.LogCaptureFixture) -> None:
    progress = LineProgress()
    with caplog.at_level(logging.INFO, logger="ferbatch.progress"):
        progress.on_start(1)
        progress.on_done(_row("d.mp4", "partial", frames=4, error="d.mp4: cut short at 2.0 s"))
    (line,) = [r.getMessage() for r in caplog.records]
    assert line.startswith("1/1 videos | 4 frames, ")
    assert line.endswith("| 0 failed | partial d.mp4 (d.mp4: cut short at 2.0 s)")


def test_summary_table_marks_skipped_videos_given_by_relative_path(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Rows hold absolute paths; inputs may be relative (`ferbatch run ../videos`)."""

    monkeypatch.chdir(tmp_path)
    row = {"status": "ok", "path": str(tmp_path / "v" / "a.mp4"), "processing_s": 1.0,
           "frames_analyzed": 10, "faces_detected": 10, "tracks": 1}
    table = format_summary(RunSummary(out=tmp_path, rows=[row, {**row, "path": str(tmp_path / "b.mp4")}],
                                      skipped=["v/../v/a.mp4"]))
    lines = table.splitlines()[2:]
    assert lines[0].startswith("ok* ") and lines[1].startswith("ok ")


def test_summary_table_words_and_skipped_files() -> None:
    """``proc f/s`` (processing speed, not the video's fps), "1 video" / "2 videos", "(*);",
    and the files left out with the reason."""
    row = {"status": "ok", "path": "/in/a.mp4", "processing_s": 2.0, "frames_analyzed": 10,
           "faces_detected": 10, "tracks": 1, "error": None}
    one = format_summary(RunSummary(out="/o", rows=[row], frames=1, seconds=2.0)).splitlines()
    assert one[0].split()[-3:] == ["proc", "f/s", "video"] and " fps " not in one[0]
    assert one[2].split()[5] == "5.0"  # 10 frames in 2 s of work
    assert one[3] == "1 video: 1 ok, 0 partial, 0 failed; 0 already done (*); 1 frame in 2.0 s"
    two = format_summary(RunSummary(out="/o", rows=[row, row], frames=20, ignored=[
        ("/in/link.mp4", "same file as /in/a.mp4"), ("/in/.draft.mp4", "hidden")]))
    assert "2 videos: 2 ok" in two and "20 frames in" in two
    assert ("2 files skipped: /in/link.mp4 (same file as /in/a.mp4), /in/.draft.mp4 (hidden)"
            in two.splitlines())
    many = format_summary(RunSummary(out="/o", rows=[row], ignored=[
        (f"/in/.{k}.mp4", "hidden") for k in range(7)])).splitlines()
    assert ("7 files skipped: /in/.0.mp4 (hidden), /in/.1.mp4 (hidden), /in/.2.mp4 (hidden), "
            "/in/.3.mp4 (hidden), /in/.4.mp4 (hidden), … (7 in all)") in many
    # a folder named like a video in a searched folder was searched, not skipped
    folder = format_summary(RunSummary(out="/o", rows=[row], ignored=[
        ("/in/clip.mp4", FOLDER_NAMED_LIKE_A_VIDEO), ("/in/.x.mp4", "hidden")])).splitlines()
    assert ("1 file skipped: /in/.x.mp4 (hidden); 1 folder named like a video searched: "
            "/in/clip.mp4") in folder
    only = format_summary(RunSummary(out="/o", rows=[row], ignored=[
        ("/in/clip.mp4", FOLDER_NAMED_LIKE_A_VIDEO)])).splitlines()
    assert "1 folder named like a video searched: /in/clip.mp4" in only
    assert not any("skipped" in line for line in only)


def test_short_list_gives_the_first_items_and_the_count() -> None:
    from ferbatch.text import short_list

    assert short_list([]) == ""
    assert short_list(["a", "b", "c", "d", "e"]) == "a, b, c, d, e"
    assert short_list(["a", "b", "c", "d", "e", "f"]) == "a, b, c, d, e, … (6 in all)"
    assert short_list(["a", "b", "c"], limit=2) == "a, b, … (3 in all)"
