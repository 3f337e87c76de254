"""The prepare stage (``ferbatch.prepare``) and the bounded frame path of the pipeline: frames
handed downstream of the decoder hold the detection-size image and the full-resolution grey
one, never the full RGB frame; detections from them equal full-resolution detection; boxes are
in displayed pixels; unsampled frames are never converted (issue 14)."""

from __future__ import annotations

import threading
import time
from pathlib import Path

import cv2
import numpy as np
import pytest

from ferbatch import process_video
from ferbatch.config import DecodeConfig, RunConfig
from ferbatch.crop import to_grey
from ferbatch.decode import Frame, FrameSampler, open_video
from ferbatch.decode import pyav as pyav_backend
from ferbatch.pipeline import Stages
from ferbatch.prepare import QUEUED_BATCHES, AnalysisFrame, detection_size, prepare_frame, prepared_batches

import clips
from clips import face_scene
from helpers import MemoryStream

FULL_HD = (1920, 1080)


def _held_arrays(frame: AnalysisFrame) -> list[np.ndarray]:
    return [v for v in vars(frame).values() if isinstance(v, np.ndarray)]


def test_detection_size_caps_the_longer_side() -> None:
    assert detection_size(1920, 1080, 640) == (pytest.approx(1 / 3), (640, 360))
    assert detection_size(1080, 1920, 640) == (pytest.approx(1 / 3), (360, 640))
    assert detection_size(3840, 2160, 640)[1] == (640, 360)
    assert detection_size(640, 360, 640) == (1.0, (640, 360))
    assert detection_size(320, 240, 640) == (1.0, (320, 240))


def test_prepared_frame_holds_no_full_resolution_rgb(face_image: np.ndarray) -> None:
    image = face_scene(face_image, (1300, 500), FULL_HD, 400)
    frame = prepare_frame(Frame(index=7, timestamp_s=0.28, image=image), 640)
    assert (frame.index, frame.timestamp_s) == (7, 0.28)
    assert frame.det_image.shape == (360, 640, 3) and frame.det_image.flags.c_contiguous
    assert frame.grey.shape == (1080, 1920) and frame.grey.dtype == np.uint8
    assert frame.size == FULL_HD and frame.shape == (1080, 1920, 3)
    # 1 byte a full-resolution pixel + the 640×360 RGB image: not the 3 bytes of the RGB frame
    assert frame.nbytes == 1920 * 1080 + 640 * 360 * 3 < image.nbytes / 2
    assert all(a.nbytes <= 1920 * 1080 and a.base is not image for a in _held_arrays(frame))
    # exactly what the detector and the crops computed from the RGB frame
    assert np.array_equal(frame.det_image, cv2.resize(image, (640, 360), interpolation=cv2.INTER_AREA))
    assert np.array_equal(frame.grey, to_grey(image))
    small = face_scene(face_image, (40, 20), (320, 240), 150)
    kept = prepare_frame(Frame(index=0, timestamp_s=0.0, image=small), 640)
    assert kept.det_image is small and kept.size == (320, 240)


def test_detections_of_prepared_frames_equal_full_resolution_detection(
        stages: Stages, face_image: np.ndarray) -> None:
    """Same faces, same boxes and landmarks (display pixels of the 1920×1080 frame), same
    scores as detecting on the full-resolution RGB frames; O-Net refinement too."""
    images = [face_scene(face_image, at, FULL_HD, 400) for at in [(1300, 500), None, (200, 80)]]
    frames = [prepare_frame(Frame(index=i, timestamp_s=i / 25, image=im), 640)
              for i, im in enumerate(images)]
    detector = stages.detector
    full = detector(images)
    prepared = detector.detect_frames(frames)
    assert [len(d) for d in prepared] == [len(d) for d in full] == [1, 0, 1]
    for a, b in zip(full, prepared):
        np.testing.assert_array_equal(a.boxes, b.boxes)
        np.testing.assert_array_equal(a.landmarks, b.landmarks)
        np.testing.assert_array_equal(a.scores, b.scores)
    box = prepared[0].boxes[0]
    assert 1300 <= box[0] and box[2] <= 1300 + 400 and 500 <= box[1] < box[3] <= 900  # display px
    assert box[2] > 640  # not the detection image's pixels
    mixed = detector.detect_frames([frames[0], Frame(index=9, timestamp_s=0.0, image=images[2])])
    np.testing.assert_array_equal(mixed[1].boxes, full[2].boxes)
    moved = prepared[0].boxes + np.array([6, -4, 6, -4], np.float32)
    a = detector.refine(images[0], moved)
    b = detector.refine(frames[0].det_image, moved, frames[0].size)
    np.testing.assert_array_equal(a.boxes, b.boxes)
    np.testing.assert_array_equal(a.scores, b.scores)
    with pytest.raises(ValueError, match="640x360"):
        detector.detect_scaled([images[0]], FULL_HD)
    with pytest.raises(ValueError, match="the frame is 1920x1080, not the 640x360 detection image"):
        detector.refine(images[0], moved, FULL_HD)  # the full frame, said to be downscaled
    with pytest.raises(ValueError, match="not the 640x360 detection image"):
        detector.refine(images[0], moved[:0], FULL_HD)  # even without boxes


def test_pipeline_frames_are_prepared_and_the_queue_is_bounded(face_image: np.ndarray) -> None:
    """What the decode thread hands downstream holds no full RGB frame, and it runs at most
    the queued batches plus the one it fills ahead of a consumer that stops reading."""
    images = [face_scene(face_image, (100 + 10 * i, 60), (1280, 720), 300) for i in range(40)]
    stream = MemoryStream("/in/hd.mp4", images)
    stop = threading.Event()
    batches = prepared_batches(stream, FrameSampler(), 4, 640, stop)
    first = next(batches)
    assert all(isinstance(f, AnalysisFrame) and f.det_image.shape == (360, 640, 3)
               and f.grey.shape == (720, 1280) for f in first)
    time.sleep(0.5)  # let the producer run as far ahead as it may
    # consumed batch + queued batches + the batch being filled + the frame being prepared
    assert stream.frames_decoded <= 4 * (QUEUED_BATCHES + 2) + 1
    batches.close()


def test_1080p_clip_rows_in_display_pixels(tmp_path: Path, stages: Stages,
                                           face_image: np.ndarray) -> None:
    """A phone-style 1080×1920 (displayed) clip: rows equal detecting on the decoded
    full-resolution frames, boxes lie on the pasted face in displayed pixels."""
    path = tmp_path / "portrait.mp4"
    spec = clips.make_face_clip(path, face_image, n_frames=3, fps=25, size=(1080, 1920),
                                face_height=0.3, rotation=270)
    result = process_video(path, RunConfig(device="cpu"), stages)
    assert result.status == "ok" and (result.row["width"], result.row["height"]) == (1080, 1920)
    faces = result.faces.to_pydict()
    assert faces["frame_index"] == [0, 1, 2]
    with open_video(path) as video:
        decoded = [f.image for f in video.frames()]
    assert decoded[0].shape == (1920, 1080, 3)
    straight = stages.detector(decoded)
    for i, det in enumerate(straight):
        got = np.array([faces[c][i] for c in ("x1", "y1", "x2", "y2")], np.float32)
        np.testing.assert_allclose(got, det.boxes[0], atol=1e-3)
        x1, y1, x2, y2 = spec.boxes[i]
        assert x1 - 8 <= got[0] < got[2] <= x2 + 8 and y1 - 8 <= got[1] < got[3] <= y2 + 8


def test_unsampled_frames_are_neither_converted_nor_prepared(
        user_folder: Path, stages: Stages, monkeypatch: pytest.MonkeyPatch) -> None:
    """At --fps N, only the analysed frames are converted to RGB (decoder) and prepared."""
    import ferbatch.prepare as prepare

    converted, prepared = [], []
    real_rgb, real_prepare = pyav_backend.to_rgb, prepare.prepare_frame
    monkeypatch.setattr(pyav_backend, "to_rgb",
                        lambda fr, size=None: converted.append(1) or real_rgb(fr, size))
    monkeypatch.setattr(prepare, "prepare_frame",
                        lambda fr, side: prepared.append(fr.index) or real_prepare(fr, side))
    cfg = RunConfig(decode=DecodeConfig(fps=2))
    result = process_video(user_folder / "face.mp4", cfg, stages)
    analysed = result.frames.column("frame_index").to_pylist()
    assert result.row["frames_decoded"] > 4 * len(analysed) > 0
    assert len(converted) == len(analysed) and prepared == analysed
