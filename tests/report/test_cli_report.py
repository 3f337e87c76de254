"""The ``report`` command (``ferbatch.cli_report``): registration, printed paths, options,
errors and defaults."""

from __future__ import annotations

import shutil
import subprocess
import sys

from click.testing import CliRunner

from ferbatch.cli_report import COMMANDS, report_command
from ferbatch.report.defaults import (
    DEFAULT_MAX_GAP_S,
    DEFAULT_METHOD,
    DEFAULT_MIN_EPISODE_S,
    DEFAULT_WINDOW_S,
    METHODS,
)


def test_cli_prints_paths_and_is_registered(report):
    info, output = report
    assert COMMANDS == [report_command] and report_command.name == "report"
    for name in ("summary.parquet", "summary.csv", "summary_faces.parquet", "episodes.parquet",
                 "report/index.html"):
        assert str(info.out / name) in output
        assert (info.out / name).is_file()
    assert "4 videos (2 ok, 1 partial, 1 failed)" in output


def test_cli_options_and_errors(tmp_path, report):
    info, _ = report
    out = tmp_path / "out"
    shutil.copytree(info.out, out, ignore=shutil.ignore_patterns("report", "summary*", "episodes*"))
    r = CliRunner().invoke(report_command, [str(out), "--smooth", "moving", "--window", "2",
                                            "--min-episode", "0.5", "--no-thumbnails", "-q"])
    assert r.exit_code == 0, r.output
    assert "thumbnails disabled" in (out / "report" / "alpha.html").read_text(encoding="utf-8")
    r = CliRunner().invoke(report_command, [str(out), "--no-html", "-q"])
    assert r.exit_code == 0 and "index.html" not in r.output
    r = CliRunner().invoke(report_command, [str(tmp_path / "nothing")])
    assert r.exit_code != 0 and "no such folder" in r.output
    r = CliRunner().invoke(report_command, [str(out), "--window", "0"])
    assert r.exit_code != 0 and "window must be > 0" in r.output
    r = CliRunner().invoke(report_command, [str(out), "--smooth", "kalman"])
    assert r.exit_code != 0


def test_cli_defaults_are_the_report_constants():
    params = {p.name: p for p in report_command.params}
    assert params["smooth_method"].default == DEFAULT_METHOD
    assert tuple(params["smooth_method"].type.choices) == METHODS
    assert params["window_s"].default == DEFAULT_WINDOW_S
    assert params["min_episode_s"].default == DEFAULT_MIN_EPISODE_S
    assert params["max_gap_s"].default == DEFAULT_MAX_GAP_S
    # the defaults come without the data stack: `ferbatch --help` stays light
    code = ("import sys, ferbatch.cli_report; "
            "print(sorted(m for m in ('pandas', 'pyarrow', 'matplotlib', 'jinja2') if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]", out.stdout + out.stderr


def test_face_time_and_episodes_end_with_the_video(user_folder, tmp_path):
    """Every 7th frame of a 3 s clip: the last analysed frame (2.92 s) stands for the time up
    to the video's end, not one sampling interval (0.58 s) beyond it."""
    import pandas as pd

    from ferbatch.cli import cli

    out = tmp_path / "out"
    run = CliRunner().invoke(cli, ["run", str(user_folder / "face.mp4"), "--out", str(out),
                                   "--every", "7", "-q", "--local"])
    assert run.exit_code == 0, run.output
    result = CliRunner().invoke(cli, ["report", str(out), "--no-html", "-q", "--smooth", "none",
                                      "--min-episode", "0"])
    assert result.exit_code == 0, result.output
    video = pd.read_parquet(out / "summary.parquet").iloc[0]
    assert video["duration_s"] == 3.0 and video["face_ids"] >= 1
    faces = pd.read_parquet(out / "summary_faces.parquet")
    assert (faces["seen_s"] <= 3.0 + 1e-9).all()
    assert video["face_seconds"] <= 3.0 * video["face_ids"] + 1e-9
    episodes = pd.read_parquet(out / "episodes.parquet")
    assert len(episodes) and episodes["end_s"].max() == 3.0  # the face is there until the end
