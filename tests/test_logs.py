"""Logging (``ferbatch.logs``): the log every run writes to ``OUT/_logs``, with the traceback
of a video that failed unexpectedly, and the console that shows tracebacks only with ``-v``."""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner

from ferbatch.cli import cli
from ferbatch.config import RunConfig
from ferbatch.detect import FaceDetector
from ferbatch.pipeline import Stages
from ferbatch.runner.local import run


def _exploding_detector(frames: list[np.ndarray]) -> list:
    raise RuntimeError("detector exploded")


@pytest.mark.allow_error_logs
def test_the_run_log_holds_the_traceback_of_a_failed_video(
        user_folder: Path, tmp_path: Path, stages: Stages, monkeypatch: pytest.MonkeyPatch,
        no_error_logs: list[logging.LogRecord]) -> None:
    monkeypatch.setattr(stages.detector, "detect_frames", _exploding_detector)
    out = tmp_path / "out"
    video, bad = user_folder / "noface.mkv", user_folder / "random.mp4"
    summary = run([video, bad], out, RunConfig(device="cpu"), stages=stages)
    rows = {Path(r["path"]).name: r for r in summary.rows}
    assert rows["noface.mkv"]["status"] == "failed"
    assert rows["noface.mkv"]["error"] == "noface.mkv: RuntimeError: detector exploded"
    assert rows["random.mp4"]["status"] == "failed"  # a bad file: not a bug, no ERROR record
    (record,) = no_error_logs  # the unexpected exception, logged once, with its stack
    assert str(video) in record.getMessage() and record.exc_info is not None

    (log_file,) = (out / "_logs").glob("run-*.log")
    text = log_file.read_text(encoding="utf-8")
    assert "Traceback (most recent call last)" in text
    assert "RuntimeError: detector exploded" in text and "_exploding_detector" in text
    assert f"ERROR   ferbatch.pipeline: {video} failed: RuntimeError: detector exploded" in text
    assert "random.mp4" in text and "not a video file" in text  # INFO records are kept too
    assert "run finished" in text
    assert "Traceback" not in rows["noface.mkv"]["error"]  # the row keeps one line


def test_every_run_writes_a_log_without_changing_the_logger(user_folder: Path, tmp_path: Path,
                                                            stages: Stages) -> None:
    logger = logging.getLogger("ferbatch")
    before = logger.level, logger.handlers[:]
    summary = run([user_folder / "noface.mkv"], tmp_path / "out", stages=stages)
    assert summary.all_ok
    (log_file,) = (tmp_path / "out" / "_logs").glob("run-*.log")
    text = log_file.read_text(encoding="utf-8")
    assert "1 input(s): 1 to analyse" in text and "run finished" in text
    assert "Traceback" not in text and " ERROR " not in text
    assert (logger.level, logger.handlers) == before  # the file handler is gone again


@pytest.mark.allow_error_logs
def test_cli_shows_the_traceback_only_with_verbose(user_folder: Path, tmp_path: Path,
                                                   monkeypatch: pytest.MonkeyPatch) -> None:
    # every detection path runs the cascade in detect_scaled
    monkeypatch.setattr(FaceDetector, "detect_scaled", lambda self, small, size: _exploding_detector(small))
    runner = CliRunner()
    video = str(user_folder / "noface.mkv")
    quiet = runner.invoke(cli, ["run", video, "--out", str(tmp_path / "a"), "-q", "--local"])
    assert quiet.exit_code == 1
    assert "ferbatch: ERROR:" in quiet.stderr and "RuntimeError: detector exploded" in quiet.stderr
    assert "Traceback" not in quiet.output
    verbose = runner.invoke(cli, ["run", video, "--out", str(tmp_path / "b"), "-q", "--local", "-v"])
    assert verbose.exit_code == 1
    assert "Traceback (most recent call last)" in verbose.stderr
    for out in ("a", "b"):  # the full story is in the run's log either way
        (log_file,) = (tmp_path / out / "_logs").glob("run-*.log")
        assert "Traceback (most recent call last)" in log_file.read_text(encoding="utf-8")
