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
