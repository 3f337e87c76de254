"""End-to-end runs on clips the tests encode: contract, bad input, resume, sampling, CLI."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow.parquet as pq
import pytest
from click.testing import CliRunner

from ferbatch import process_video
from ferbatch.cli import cli
from ferbatch.config import DecodeConfig, RunConfig
from ferbatch.demo import astronaut_face
from ferbatch.output.schema import LANDMARK_COLUMNS
from ferbatch.pipeline import Stages
from ferbatch.runner.local import run
from ferbatch.runner.plan import discover_videos

import clips


@pytest.fixture(scope="module")
def stages() -> Stages:
    return Stages(RunConfig())


@pytest.fixture(scope="module")
def folder(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A folder like a user's: good clips (one in a subfolder), bad files, a non-video."""
    root = tmp_path_factory.mktemp("videos")
    face = astronaut_face()
    clips.make_face_clip(root / "face.mp4", face, n_frames=36, fps=12, size=(320, 240))
    (root / "sub").mkdir()
    clips.make_face_clip(root / "sub" / "phone.mov", face, n_frames=24, fps=12, size=(320, 240),
                         codec="libx264")
    clips.make_clip(root / "noface.mkv", n_frames=20, fps=10, size=(160, 120))
    clips.make_zero_byte(root / "empty.mp4")
    clips.make_random_bytes(root / "random.mp4")
    clips.make_text_as_mov(root / "notes.mov")
    clips.make_audio_only(root / "audio.mp4")
    (root / "readme.txt").write_text("not picked up: not a video extension")
    return root


def test_discover_is_recursive_and_only_picks_videos(folder: Path) -> None:
    names = sorted(p.name for p in discover_videos([folder]))
    assert names == ["audio.mp4", "empty.mp4", "face.mp4", "noface.mkv", "notes.mov",
                     "phone.mov", "random.mp4"]


def test_run_writes_the_output_contract(folder: Path, tmp_path: Path, stages: Stages) -> None:
    out = tmp_path / "out"
    summary = run([folder], out, stages=stages)
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
                *LANDMARK_COLUMNS, "emotion", "confidence", *[f"p_{l}" for l in labels], "video_id"]
    assert list(faces.columns) == expected
    np.testing.assert_allclose(faces[[f"p_{l}" for l in labels]].sum(axis=1), 1.0, atol=1e-4)
    assert (faces["confidence"] == faces[[f"p_{l}" for l in labels]].max(axis=1)).all()
    assert set(faces["emotion"]) <= set(labels)
    f = frames[frames.video_id == face["video_id"]].sort_values("frame_index")
    assert f["frame_index"].tolist() == list(range(36))
    np.testing.assert_allclose(f["timestamp_s"], np.arange(36) / 12, atol=1e-3)
    per_frame = faces.groupby("video_id", observed=True).size()
    assert per_frame[face["video_id"]] == face["faces_detected"]
    assert (faces["x2"] <= 320).all() and (faces["y2"] <= 240).all()


def test_rerun_skips_complete_videos_and_redoes_failed_ones(folder: Path, tmp_path: Path,
                                                            stages: Stages) -> None:
    out = tmp_path / "out"
    first = run([folder / "face.mp4", folder / "empty.mp4"], out, stages=stages)
    assert first.skipped == []
    before = (out / "faces").stat().st_mtime_ns, pq.read_table(out / "videos.parquet").num_rows
    second = run([folder / "face.mp4", folder / "empty.mp4"], out, stages=stages)
    assert second.skipped == [str(folder / "face.mp4")]  # the failed one is tried again
    third = run([folder / "face.mp4"], out, stages=stages, overwrite=True)
    assert third.skipped == []
    assert before[1] == 2 and pq.read_table(out / "videos.parquet").num_rows == 2


def test_changed_settings_redo_the_video(folder: Path, tmp_path: Path, stages: Stages) -> None:
    out = tmp_path / "out"
    run([folder / "face.mp4"], out, stages=stages)
    cfg = RunConfig(decode=DecodeConfig(every=3))
    other = Stages(cfg)
    summary = run([folder / "face.mp4"], out, cfg, stages=other)
    assert summary.skipped == []
    assert summary.rows[0]["frames_analyzed"] == 12 and summary.rows[0]["sampling"] == "every=3"


def test_fps_sampling_uses_time(folder: Path, stages: Stages) -> None:
    cfg = RunConfig(decode=DecodeConfig(fps=4))
    result = process_video(folder / "face.mp4", cfg, Stages(cfg))
    ts = result.frames.column("timestamp_s").to_numpy()
    assert len(ts) == 12  # 3 s at 4 fps
    np.testing.assert_allclose(np.diff(ts), 0.25, atol=0.05)


def test_truncated_video_is_partial_and_keeps_decoded_frames(tmp_path: Path, stages: Stages) -> None:
    path = tmp_path / "cut.mkv"  # streamable: a cut file still opens (an .mp4 cut before its index cannot)
    clips.make_face_clip(path, astronaut_face(), n_frames=48, fps=12, size=(320, 240))
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])
    result = process_video(path, RunConfig(), stages)
    assert result.status == "partial"
    assert "cut.mkv" in result.row["error"]
    assert 0 < result.row["frames_analyzed"] < 48
    assert result.faces.num_rows > 0


def test_rotated_phone_clip_is_analysed_upright(tmp_path: Path, stages: Stages) -> None:
    from ferbatch.demo import write_face_clip

    path = write_face_clip(tmp_path / "phone.mp4", seconds=1.0, fps=10, size=(320, 240), rotation=90)
    result = process_video(path, RunConfig(), stages)
    assert (result.row["width"], result.row["height"], result.row["rotation"]) == (320, 240, 90)
    assert result.row["faces_detected"] >= 9


def test_cli_run_exit_codes_and_summary(folder: Path, tmp_path: Path) -> None:
    runner = CliRunner()
    ok = runner.invoke(cli, ["run", str(folder / "face.mp4"), "--out", str(tmp_path / "a"), "-q"])
    assert ok.exit_code == 0, ok.output
    assert "1 videos: 1 ok" in ok.output
    bad = runner.invoke(cli, ["run", str(folder / "face.mp4"), str(folder / "random.mp4"),
                              "--out", str(tmp_path / "b"), "-q"])
    assert bad.exit_code == 1
    assert "failed: " in bad.output and "random.mp4" in bad.output
    assert "Traceback" not in bad.output
    usage = runner.invoke(cli, ["run", str(folder), "--out", str(tmp_path / "c"), "--fps", "2",
                                "--every", "2"])
    assert usage.exit_code != 0 and "either --fps or --every" in usage.output
    missing = runner.invoke(cli, ["run", str(tmp_path / "nope.mp4"), "--out", str(tmp_path / "d")])
    assert missing.exit_code != 0 and "input not found" in missing.output


def test_ferbatch_executable_runs_as_a_process(folder: Path, tmp_path: Path) -> None:
    proc = subprocess.run([sys.executable, "-m", "ferbatch.cli", "run", str(folder / "noface.mkv"),
                           "--out", str(tmp_path / "o"), "-q"], capture_output=True, text=True,
                          timeout=300)
    assert proc.returncode == 0, proc.stderr
    assert "1 ok" in proc.stdout


def test_a_run_and_a_rerun_do_not_import_pandas(folder: Path, tmp_path: Path) -> None:
    """pyarrow's pandas import costs a short run ~0.5 s and ~50 MB (see ferbatch.output.arrow)."""
    code = ("import sys; from ferbatch.runner.local import run; "
            f"s = [run([{str(folder / 'face.mp4')!r}], {str(tmp_path / 'o')!r}) for _ in range(2)]; "
            "print([x.rows[0]['status'] for x in s], [len(x.skipped) for x in s], "
            "'pandas' in sys.modules)")
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.split("\n")[-2] == "['ok', 'ok'] [0, 1] False"
    faces = pd.read_parquet(tmp_path / "o" / "faces")
    assert len(faces) > 0 and faces["emotion"].notna().all()


def test_summary_table_marks_skipped_videos_given_by_relative_path(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Rows hold absolute paths; inputs may be relative (`ferbatch run ../videos`)."""
    from ferbatch.progress import format_summary
    from ferbatch.runner.summary import RunSummary

    monkeypatch.chdir(tmp_path)
    row = {"status": "ok", "path": str(tmp_path / "v" / "a.mp4"), "processing_s": 1.0,
           "frames_analyzed": 10, "faces_detected": 10, "tracks": 1}
    table = format_summary(RunSummary(out=tmp_path, rows=[row, {**row, "path": str(tmp_path / "b.mp4")}],
                                      skipped=["v/../v/a.mp4"]))
    lines = table.splitlines()[2:]
    assert lines[0].startswith("ok* ") and lines[1].startswith("ok ")
