"""Fixtures of the report tests: the synthetic output (``tests/synth_output.py``) with a real
clip for ``alpha``, reported once through the CLI, and its loaded, summarised view."""

from __future__ import annotations

import pytest
from click.testing import CliRunner

from ferbatch.cli_report import report_command
from ferbatch.output.read import load
from ferbatch.report import summarize
from ferbatch.report.view import timelines_by_video

from synth_output import write_synthetic_output


@pytest.fixture(scope="session")
def report(tmp_path_factory):
    """Synthetic output + alpha clip, reported through the CLI (default EMA smoothing)."""
    root = tmp_path_factory.mktemp("html")
    info = write_synthetic_output(root / "out", video_dir=root / "videos")
    result = CliRunner().invoke(report_command, [str(info.out)])
    assert result.exit_code == 0, result.output
    return info, result.output


@pytest.fixture(scope="session")
def model(report):
    """The synthetic output loaded and summarised (default settings), with its timelines."""
    info, _ = report
    results = load(info.out)
    summary = summarize(results)
    return info, results, summary, timelines_by_video(summary)
