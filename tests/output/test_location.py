"""Outputs addressed by URI (``ferbatch.output.location``): ``file://`` URIs through
``ferbatch.run``, the Ray executor and ``ferbatch.load``; unknown schemes give a clean error,
never a traceback or the URI's credentials."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest
from click.testing import CliRunner

import ferbatch
from ferbatch.cli import cli
from ferbatch.errors import OutputError
from ferbatch.output.commit import OutputStore
from ferbatch.output.layout import video_id_for
from ferbatch.output.location import resolve_output
from ferbatch.pipeline import Stages
from ferbatch.runner.local import run

from helpers import output_files

LABELS = ["happy", "sad"]


def test_file_uri_run_is_readable_by_pandas_and_load(inputs: dict[str, Path], tmp_path: Path,
                                                     stages: Stages) -> None:
    folder = tmp_path / "out"
    uri = folder.as_uri()
    assert uri.startswith("file:///")
    summary = run([inputs["face"], inputs["bad"]], uri, stages=stages)
    assert summary.out == folder  # a local filesystem: shown as a Path
    face_row = next(r for r in summary.rows if r["path"].endswith("face.mp4"))
    assert face_row["status"] == "ok" and face_row["faces_detected"] >= 6

    videos = pd.read_parquet(folder / "videos.parquet")
    faces = pd.read_parquet(folder / "faces")
    assert sorted(videos["status"]) == ["failed", "ok"]
    assert len(faces) == face_row["faces_detected"]
    vid = video_id_for(inputs["face"])
    assert output_files(resolve_output(uri), "faces") == [f"video_id={vid}/part-0.parquet"]
    assert not list(folder.rglob("*.pending")) and not list(folder.rglob(".*"))

    for out in (uri, folder, str(folder)):
        res = ferbatch.load(out)
        assert res.out == folder
        assert len(res.videos) == 2 and len(res.faces) == face_row["faces_detected"]
        assert res.labels == list(stages.labels)
    again = run([inputs["face"]], uri, stages=stages)
    assert again.skipped == [str(inputs["face"])]
    cli_run = CliRunner().invoke(cli, ["run", str(inputs["face"]), "--out", uri, "-q", "--local"])
    assert cli_run.exit_code == 0, cli_run.output
    assert f"results: {folder}/videos.parquet" in cli_run.output


def test_ray_workers_resolve_a_file_uri(inputs: dict[str, Path], tmp_path: Path,
                                        ray_session: None) -> None:
    from ferbatch.runner.ray_pool import run_distributed

    folder = tmp_path / "out"
    summary = run_distributed([inputs["face"], inputs["bad"]], folder.as_uri(), workers=1)
    assert summary.out == folder
    assert sorted(r["status"] for r in summary.rows) == ["failed", "ok"]
    res = ferbatch.load(folder.as_uri())
    assert len(res.faces) == next(r["faces_detected"] for r in summary.rows if r["status"] == "ok")
    assert not list(folder.rglob("*.pending"))


def test_bad_scheme_is_a_clean_cli_error(inputs: dict[str, Path]) -> None:
    runner = CliRunner()
    result = runner.invoke(cli, ["run", str(inputs["face"]), "--out",
                                 "nosuch://user:secret@bucket/out", "-q", "--local"])
    assert result.exit_code == 1 and isinstance(result.exception, SystemExit)
    assert "nosuch://bucket/out" in result.output
    assert "Unrecognized filesystem" in result.output
    assert "secret" not in result.output and "Traceback" not in result.output
    report = runner.invoke(cli, ["report", "s3://bucket/out"])
    assert report.exit_code == 1 and isinstance(report.exception, SystemExit)
    assert "s3://bucket/out" in report.output and "local output folders only" in report.output


def test_bad_uris_raise_ferbatch_errors(tmp_path: Path) -> None:
    with pytest.raises(OutputError, match="nosuch://b/x"):
        resolve_output("nosuch://b/x")
    with pytest.raises(OutputError, match="nosuch://b/x"):
        ferbatch.load("nosuch://b/x")
    with pytest.raises(OutputError, match="no such folder"):
        ferbatch.load((tmp_path / "missing").as_uri())
    blocker = tmp_path / "file"
    blocker.write_text("a file where the output folder should be")
    with pytest.raises(OutputError, match="cannot write the output"):
        OutputStore(blocker.as_uri()).write_manifest(LABELS, "m")
