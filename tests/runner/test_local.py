"""The in-process executor and ``ferbatch.run`` (``ferbatch.runner.local``): the output
contract on a user's folder, re-runs, changed settings, and no pandas import."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow.parquet as pq
import pytest
from click.testing import CliRunner

from ferbatch.cli import cli
from ferbatch.config import DecodeConfig, RunConfig
from ferbatch.output.schema import LANDMARK_COLUMNS, QUALITY_COLUMNS
from ferbatch.pipeline import Stages
from ferbatch.runner.local import run


def test_run_writes_the_output_contract(user_folder: Path, tmp_path: Path, stages: Stages) -> None:
    out = tmp_path / "out"
    summary = run([user_folder], out, stages=stages)
    videos = pd.read_parquet(out / "videos.parquet")
    assert len(videos) == 7 and videos["video_id"].is_unique
    by_name = {Path(p).name: row for p, row in zip(videos["path"], videos.to_dict("records"))}
    for bad, reason in [("empty.mp4", "empty"), ("random.mp4", "not a video"),
                        ("notes.mov", "not a video"), ("audio.mp4", "no video stream")]:
        row = by_name[bad]
        assert row["status"] == "failed", bad
        assert bad in row["error"] and reason in row["error"].lower(), row["error"]
        assert "Traceback" not in row["error"]
    face = by_name["face.mp4"]
    assert face["status"] == "ok" and pd.isna(face["error"])
    assert (face["frames_decoded"], face["frames_analyzed"]) == (36, 36)
    assert (face["width"], face["height"]) == (320, 240)
    assert face["fps"] == pytest.approx(12)
    assert face["faces_detected"] >= 34 and face["tracks"] == 1
    assert by_name["noface.mkv"]["faces_detected"] == 0 and by_name["noface.mkv"]["status"] == "ok"
    assert not summary.all_ok and len(summary.failed) == 4

    frames = pd.read_parquet(out / "frames")
    faces = pd.read_parquet(out / "faces")
    assert set(frames["video_id"].astype(str)) == set(videos.loc[videos.status == "ok", "video_id"])
    assert list(frames.columns) == ["frame_index", "timestamp_s", "num_faces", "video_id"]
    labels = stages.labels
    expected = ["frame_index", "timestamp_s", "face_id", "det_score", "x1", "y1", "x2", "y2",
                *LANDMARK_COLUMNS, "emotion", "confidence", "box_source", *[f"p_{label}" for label in labels], *QUALITY_COLUMNS, "video_id"]
    assert list(faces.columns) == expected
    np.testing.assert_allclose(faces[[f"p_{label}" for label in labels]].sum(axis=1), 1.0, atol=1e-4)
    assert (faces["confidence"] == faces[[f"p_{label}" for label in labels]].max(axis=1)).all()
    assert set(faces["emotion"]) <= set(labels)
    f = frames[frames.video_id == face["video_id"]].sort_values("frame_index")
    assert f["frame_index"].tolist() == list(range(36))
    np.testing.assert_allclose(f["timestamp_s"], np.arange(36) / 12, atol=1e-3)
    per_frame = faces.groupby("video_id", observed=True).size()
    assert per_frame[face["video_id"]] == face["faces_detected"]
    assert (faces["x2"] <= 320).all() and (faces["y2"] <= 240).all()


def test_rerun_skips_complete_videos_and_redoes_failed_ones(user_folder: Path, tmp_path: Path,
                                                            stages: Stages) -> None:
    out = tmp_path / "out"
    first = run([user_folder / "face.mp4", user_folder / "empty.mp4"], out, stages=stages)
    assert first.skipped == []
    before = (out / "faces").stat().st_mtime_ns, pq.read_table(out / "videos.parquet").num_rows
    second = run([user_folder / "face.mp4", user_folder / "empty.mp4"], out, stages=stages)
    assert second.skipped == [str(user_folder / "face.mp4")]  # the failed one is tried again
    third = run([user_folder / "face.mp4"], out, stages=stages, overwrite=True)
    assert third.skipped == []
    assert before[1] == 2 and pq.read_table(out / "videos.parquet").num_rows == 2


def test_changed_settings_redo_the_video(user_folder: Path, tmp_path: Path, stages: Stages) -> None:
    out = tmp_path / "out"
    run([user_folder / "face.mp4"], out, stages=stages)
    cfg = RunConfig(decode=DecodeConfig(every=3))
    other = Stages(cfg)
    summary = run([user_folder / "face.mp4"], out, cfg, stages=other)
    assert summary.skipped == []
    assert summary.rows[0]["frames_analyzed"] == 12 and summary.rows[0]["sampling"] == "every=3"


def test_a_run_and_a_rerun_do_not_import_pandas(user_folder: Path, tmp_path: Path) -> None:
    """pyarrow's pandas import costs a short run ~0.5 s and ~50 MB (see ferbatch.output.arrow)."""
    code = ("import sys; from ferbatch.runner.local import run; "
            f"s = [run([{str(user_folder / 'face.mp4')!r}], {str(tmp_path / 'o')!r}) for _ in range(2)]; "
            "print([x.rows[0]['status'] for x in s], [len(x.skipped) for x in s], "
            "'pandas' in sys.modules)")
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.split("\n")[-2] == "['ok', 'ok'] [0, 1] False"
    faces = pd.read_parquet(tmp_path / "o" / "faces")
    assert len(faces) > 0 and faces["emotion"].notna().all()


@pytest.mark.allow_error_logs  # an unexpected exception in a stage is logged at ERROR, on purpose
def test_a_bug_in_one_video_fails_that_video_and_the_run_goes_on(
        clip_folder: Path, tmp_path: Path, stages: Stages, monkeypatch: pytest.MonkeyPatch) -> None:
    """Any exception (here a KeyError from the tracker on a.mp4) becomes one failed row with
    the stack in the run's log; b.mp4 is still analysed and every row is committed."""
    import ferbatch.pipeline as pipeline

    real = pipeline.IoUTracker.update
    calls = {"n": 0}

    def broken(self, boxes, t):
        calls["n"] += 1
        if calls["n"] == 1:
            raise KeyError("tracker state")
        return real(self, boxes, t)

    monkeypatch.setattr(pipeline.IoUTracker, "update", broken)
    out = tmp_path / "out"
    summary = run([clip_folder / "a.mp4", clip_folder / "b.mp4"], out, stages=stages)
    status = {Path(r["path"]).name: r for r in summary.rows}
    assert status["a.mp4"]["status"] == "failed" and "KeyError" in status["a.mp4"]["error"]
    assert status["b.mp4"]["status"] == "ok"
    assert len(pq.read_table(out / "videos.parquet")) == 2
    log = next((out / "_logs").glob("run-*.log")).read_text()
    assert "Traceback" in log and "tracker state" in log
    assert f"ok {clip_folder / 'b.mp4'}: 24 frames" in log  # one line per finished video


def test_a_bad_device_fails_before_the_output_is_touched(clip_folder: Path, tmp_path: Path) -> None:
    import torch

    if torch.cuda.is_available():
        pytest.skip("this machine has CUDA")
    out = tmp_path / "out"
    result = CliRunner().invoke(cli, ["run", str(clip_folder / "a.mp4"), "--out", str(out),
                                      "--device", "cuda", "--local", "-q"])
    assert result.exit_code == 1 and "CUDA is not available" in result.output
    assert "Traceback" not in result.output and not out.exists()
