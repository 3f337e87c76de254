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

from ferbatch.config import DecodeConfig, RunConfig
from ferbatch.output.schema import LANDMARK_COLUMNS
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
                *LANDMARK_COLUMNS, "emotion", "confidence", *[f"p_{label}" for label in labels], "video_id"]
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
