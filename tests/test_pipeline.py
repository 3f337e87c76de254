"""One video through every stage (``ferbatch.pipeline``): sampling, damage, rotation, frames
without faces, and concurrent detection."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import numpy as np
import pytest

from ferbatch import process_video
from ferbatch.config import DecodeConfig, RunConfig
from ferbatch.detect import Detections
from ferbatch.pipeline import Stages

import clips
from clips import face_scene
from helpers import MemoryStream


def test_fps_sampling_uses_time(user_folder: Path) -> None:
    cfg = RunConfig(decode=DecodeConfig(fps=4))
    result = process_video(user_folder / "face.mp4", cfg, Stages(cfg))
    ts = result.frames.column("timestamp_s").to_numpy()
    assert len(ts) == 12  # 3 s at 4 fps
    np.testing.assert_allclose(np.diff(ts), 0.25, atol=0.05)


def test_truncated_video_is_partial_and_keeps_decoded_frames(tmp_path: Path, stages: Stages,
                                                             face_image: np.ndarray) -> None:
    path = tmp_path / "cut.mkv"  # streamable: a cut file still opens (an .mp4 cut before its index cannot)
    clips.make_face_clip(path, face_image, n_frames=48, fps=12, size=(320, 240))
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])
    result = process_video(path, RunConfig(), stages)
    assert result.status == "partial"
    assert "cut.mkv" in result.row["error"]
    assert 0 < result.row["frames_analyzed"] < 48
    assert result.faces.num_rows > 0


def test_rotated_phone_clip_is_analysed_upright(tmp_path: Path, stages: Stages,
                                                face_image: np.ndarray) -> None:
    path = clips.make_face_clip(tmp_path / "phone.mp4", face_image, n_frames=10, fps=10,
                                size=(320, 240), rotation=90).path
    result = process_video(path, RunConfig(), stages)
    assert (result.row["width"], result.row["height"], result.row["rotation"]) == (320, 240, 90)
    assert result.row["faces_detected"] >= 9


def _memory_opener(stream: MemoryStream):
    def opener(path, decode):
        return stream
    return opener


def test_frames_without_faces_in_a_batch_keep_their_rows(stages: Stages,
                                                         face_image: np.ndarray) -> None:
    """A whole batch without a face, then faces and empty frames mixed: every frame has its
    row, only the faces have face rows, and the face keeps its id across the empty frame."""
    blank = face_scene(None, size=(320, 240))
    face = face_scene(face_image, (80, 40), size=(320, 240), face_h=160)
    has_face = [False] * stages.detect_batch + [True, False, True, True]
    stream = MemoryStream("/in/mixed.mp4", [face if f else blank for f in has_face], fps=10)
    result = process_video("/in/mixed.mp4", RunConfig(device="cpu"), stages,
                           opener=_memory_opener(stream))
    assert result.status == "ok", result.row["error"]
    assert stream.closed
    frames = result.frames.to_pydict()
    assert frames["frame_index"] == list(range(len(has_face)))
    assert frames["num_faces"] == [int(f) for f in has_face]
    faces = result.faces.to_pydict()
    assert faces["frame_index"] == [i for i, f in enumerate(has_face) if f]
    assert faces["face_id"] == [0, 0, 0] and result.row["tracks"] == 1
    assert result.row["faces_detected"] == 3 and result.row["frames_analyzed"] == len(has_face)
    np.testing.assert_allclose(
        np.sum([faces[f"p_{label}"] for label in stages.labels], axis=0), 1.0, atol=1e-5)


def test_a_video_without_any_face_gives_typed_empty_face_rows(stages: Stages) -> None:
    blank = face_scene(None, size=(160, 120))
    stream = MemoryStream("/in/empty.mp4", [blank] * 5, fps=5, error="ends early at 1.0 s")
    result = process_video("/in/empty.mp4", RunConfig(device="cpu"), stages,
                           opener=_memory_opener(stream))
    assert result.status == "partial" and "ends early" in result.row["error"]
    assert result.frames.num_rows == 5 and result.frames.column("num_faces").to_pylist() == [0] * 5
    assert result.faces.num_rows == 0 and result.row["tracks"] == 0
    assert result.faces.schema.equals(stages.faces_schema.remove(0))


def test_concurrent_detection_keeps_order_results_and_thread_count(stages: Stages,
                                                                   face_image: np.ndarray) -> None:
    """Batches detected in threads come back in input order, equal to one-at-a-time
    detection, and the process-wide torch thread count is restored afterwards."""
    import torch

    from ferbatch.decode import Frame
    from ferbatch.pipeline import detect_batches

    detector = stages.detector
    places = [(100, 80), None, (220, 100), (40, 20), None, (180, 60), (60, 120)]
    batches = [[Frame(index=2 * i + j, timestamp_s=0.0, image=face_scene(face_image, p))
                for j, p in enumerate(places[2 * i:2 * i + 2])] for i in range((len(places) + 1) // 2)]
    threads = torch.get_num_threads()
    one = list(detect_batches(iter(batches), detector.detect_frames, 1))
    many = list(detect_batches(iter(batches), detector.detect_frames, 3))
    assert torch.get_num_threads() == threads
    assert [[f.index for f in b] for b, _ in many] == [[f.index for f in b] for b in batches]
    assert [len(d) for _, dets in many for d in dets] == [0 if p is None else 1 for p in places]
    for (_, a), (_, b) in zip(one, many):
        for da, db in zip(a, b):
            np.testing.assert_allclose(da.boxes, db.boxes, atol=1e-3)
            np.testing.assert_allclose(da.scores, db.scores, atol=1e-5)

    def failing(frames: list[Frame]) -> list[Detections]:
        if frames[0].image.shape[0] == 7:
            raise RuntimeError("boom")
        return detector.detect_frames(frames)

    bad = [*batches[:2], [Frame(index=99, timestamp_s=0.0, image=np.zeros((7, 7, 3), np.uint8))]]
    with pytest.raises(RuntimeError, match="boom"):
        list(detect_batches(iter(bad), failing, 2))
    assert torch.get_num_threads() == threads


def test_video_result_to_pandas_matches_load(user_folder: Path, tmp_path: Path, stages: Stages) -> None:
    """process_video gives pyarrow tables; to_pandas() gives the frames ferbatch.load gives for
    the same video written by a run, dtypes included; a failed video converts too."""
    import pyarrow as pa

    import ferbatch

    result = process_video(user_folder / "face.mp4", RunConfig(device="cpu"), stages)
    assert isinstance(result.frames, pa.Table) and isinstance(result.faces, pa.Table)
    mine = result.to_pandas()
    ferbatch.run([user_folder / "face.mp4"], tmp_path / "out", RunConfig(device="cpu"), stages=stages)
    loaded = ferbatch.load(tmp_path / "out")
    assert mine.out is None and mine.labels == loaded.labels == list(stages.labels)
    for name in ("videos", "frames", "faces"):
        ours, theirs = getattr(mine, name), getattr(loaded, name)
        assert list(ours.columns) == list(theirs.columns), name
        assert ours.dtypes.astype(str).tolist() == theirs.dtypes.astype(str).tolist(), name
        assert len(ours) == len(theirs), name
    failed = process_video(user_folder / "random.mp4", RunConfig(device="cpu"), stages).to_pandas()
    assert failed.videos["status"].tolist() == ["failed"] and failed.faces.empty
    assert str(failed.videos["width"].dtype) == "Int32"


def test_a_call_with_its_own_options_records_them_not_the_stages(user_folder: Path,
                                                                  stages: Stages) -> None:
    """Stages loaded once (a server replica) and a call with other sampling options: the row's
    ``sampling`` and ``settings_fingerprint`` are the call's, so a run resumed with the same
    options skips it and one with others does not."""
    config = RunConfig(device="cpu", decode=DecodeConfig(every=3))
    row = process_video(user_folder / "face.mp4", config, stages).row
    assert row["sampling"] == "every=3" and stages.provenance.sampling == "all"
    assert row["settings_fingerprint"] == config.fingerprint(stages.classifier.sha256)
    assert row["settings_fingerprint"] != stages.fingerprint
    # the detector's settings are the loaded ones: a call's own are neither used nor recorded
    other = RunConfig(device="cpu", detect=dataclasses.replace(stages.config.detect, max_side=960))
    result = process_video(user_folder / "face.mp4", other, stages)
    assert result.row["status"] == "ok" and result.row["settings_fingerprint"] == stages.fingerprint


def test_dir_lists_the_lazy_api() -> None:
    import ferbatch

    assert {"run", "run_videos", "load", "process_video", "RunConfig", "plan_run"} <= set(dir(ferbatch))
