"""Carrying faces between detections (``ferbatch.propagate``, ``ferbatch.interval``) and the
``--detect-interval`` pipeline: tracked boxes against known positions, re-detection triggers,
``faces.box_source``, and interval 0 unchanged."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from ferbatch import process_video
from ferbatch.config import IntervalConfig, RunConfig
from ferbatch.crop import to_grey
from ferbatch.decode import Frame
from ferbatch.interval import DetectionInterval
from ferbatch.pipeline import Stages, run_provenance
from ferbatch.prepare import prepare_frame
from ferbatch.propagate import LEAVING, LOST, NEW_MOTION, SCENE_CUT, FlowTracker
from ferbatch.track import iou_matrix

from clips import face_scene
from helpers import MemoryStream

SIZE = (480, 360)


def _moving(face: np.ndarray, n: int, step: tuple[int, int], start: tuple[int, int] = (60, 40),
            face_h: int = 180) -> list[np.ndarray]:
    """Frames of a face translated by ``step`` pixels per frame: frame i at start + i·step."""
    return [face_scene(face, (start[0] + i * step[0], start[1] + i * step[1]), SIZE, face_h)
            for i in range(n)]


def test_tracker_follows_a_translating_face_within_a_pixel(stages: Stages, face_image: np.ndarray) -> None:
    """A real face moving 5 px right and 3 px down per frame: the carried box and landmarks are
    the detection's moved by the known shift, and agree with detecting each frame."""
    frames = _moving(face_image, 10, (5, 3))
    first = stages.detector([frames[0]])[0]
    assert len(first) == 1
    # the pasted photo's shoulders move too: motion outside the face is not what is tested here
    tracker = FlowTracker(IntervalConfig(detect_interval=9, new_motion=1.0))
    tracker.reset(to_grey(frames[0]), first)
    for i, frame in enumerate(frames[1:], start=1):
        det, reason = tracker.step(to_grey(frame))
        assert reason is None, (i, reason)
        shift = np.array([5 * i, 3 * i], np.float32)
        np.testing.assert_allclose(det.boxes[0], first.boxes[0] + np.tile(shift, 2), atol=1.0)
        np.testing.assert_allclose(det.landmarks[0], first.landmarks[0] + shift, atol=1.0)
        assert det.scores[0] == first.scores[0]
    truth = stages.detector([frames[-1]])[0]
    assert iou_matrix(det.boxes, truth.boxes)[0, 0] > 0.85


def test_tracker_follows_a_face_growing_on_a_video_frame(stages: Stages, face_image: np.ndarray) -> None:
    """Zooming in (the face grows 2 % a frame about a fixed point): the box grows with it."""
    frames = [face_scene(face_image, (int(150 - 2 * i), int(80 - 1.5 * i)), SIZE, int(150 * 1.02 ** i))
              for i in range(8)]
    first = stages.detector([frames[0]])[0]
    tracker = FlowTracker(IntervalConfig(new_motion=1.0))
    tracker.reset(to_grey(frames[0]), first)
    for frame in frames[1:]:
        det, reason = tracker.step(to_grey(frame))
        assert reason is None
    w0 = first.boxes[0, 2] - first.boxes[0, 0]
    w7 = det.boxes[0, 2] - det.boxes[0, 0]
    assert w7 / w0 == pytest.approx(1.02 ** 7, rel=0.04)
    truth = stages.detector([frames[-1]])[0]
    assert iou_matrix(det.boxes, truth.boxes)[0, 0] > 0.8


def test_tracker_says_when_to_detect_again(stages: Stages, face_image: np.ndarray) -> None:
    """A scene cut, a face that vanishes, a face leaving the frame, and a face appearing
    where none was tracked each give their reason."""
    frames = _moving(face_image, 2, (0, 0))
    first = stages.detector([frames[0]])[0]
    tracker = FlowTracker(IntervalConfig(new_motion=1.0))  # that check is the last one here

    tracker.reset(to_grey(frames[0]), first)
    assert tracker.step(to_grey(255 - frames[0]))[1] == SCENE_CUT

    tracker.reset(to_grey(frames[0]), first)
    noise = np.random.default_rng(0).integers(0, 255, frames[0].shape, np.uint8)
    blank = face_scene(None, size=SIZE)
    x1, y1, x2, y2 = first.boxes[0].astype(int)
    blank[y1:y2, x1:x2] = noise[y1:y2, x1:x2]  # the face replaced by texture that moves nowhere
    det, reason = tracker.step(to_grey(blank))
    assert reason == LOST and len(det) == 0

    # drawn on a wider canvas and cut to SIZE: the face slides out over the right edge
    leaving = [face_scene(face_image, (300 + 8 * i, 40), (SIZE[0] * 2, SIZE[1]), 180)[:, :SIZE[0]].copy()
               for i in range(20)]
    tracker.reset(to_grey(leaving[0]), stages.detector([leaving[0]])[0])
    reasons = [tracker.step(to_grey(f))[1] for f in leaving[1:]]
    assert LEAVING in reasons

    tracker = FlowTracker()
    empty = stages.detector([blank := face_scene(None, size=SIZE)])[0]
    tracker.reset(to_grey(blank), empty)
    assert tracker.step(to_grey(blank))[1] is None
    assert tracker.step(to_grey(frames[0]))[1] == NEW_MOTION


def test_schedule_detects_every_n_plus_first_and_a_segment_start(stages: Stages,
                                                                 face_image: np.ndarray) -> None:
    images = _moving(face_image, 9, (2, 1))
    frames = [prepare_frame(Frame(index=10 + i, timestamp_s=i / 10, image=im), 640)
              for i, im in enumerate(images)]
    schedule = DetectionInterval(IntervalConfig(detect_interval=3, adaptive=False), stages.detector,
                                 first_index=12)
    keyed = list(schedule.keyframes(iter([frames[:5], frames[5:]])))
    assert [[f.index for f in batch] for batch in keyed] == [[10, 12, 14], [18]]
    sources = []
    for batch in keyed:
        for frame, grey, det, detected in schedule.complete(stages.detector.detect_frames(batch)):
            assert grey.shape == frame.shape[:2] and len(det) == 1
            sources.append(detected)
    assert sources == [True, False, True, False, True, False, False, False, True]


def test_interval_rows_say_where_the_box_came_from(stages: Stages, face_image: np.ndarray) -> None:
    """Every frame still gets its face row; detected rows are on the grid, the rest tracked,
    one face id; the boxes stay on the face (IoU with detecting every frame)."""
    images = _moving(face_image, 12, (4, 2))
    every = process_video("/in/move.mp4", RunConfig(device="cpu"), stages,
                          opener=lambda p, d: MemoryStream("/in/move.mp4", images))
    config = RunConfig(device="cpu", interval=IntervalConfig(detect_interval=2))
    tracked = process_video("/in/move.mp4", config, stages,
                            opener=lambda p, d: MemoryStream("/in/move.mp4", images))
    assert tracked.status == "ok", tracked.row["error"]
    assert "interval=2 adaptive" in run_provenance(config).detector
    assert run_provenance(config).settings_fingerprint != run_provenance(RunConfig()).settings_fingerprint
    faces = tracked.faces.to_pydict()
    assert faces["frame_index"] == list(range(12)) and set(faces["face_id"]) == {0}
    assert faces["box_source"] == ["detected" if i % 3 == 0 else "tracked" for i in range(12)]
    assert every.faces.column("box_source").to_pylist() == ["detected"] * 12

    def boxes(t):
        return np.stack([t.column(c).to_numpy() for c in ("x1", "y1", "x2", "y2")], 1)
    iou = np.diag(iou_matrix(boxes(tracked.faces), boxes(every.faces)))
    assert iou.min() > 0.8


def test_interval_zero_is_every_frame_detection(stages: Stages, face_image: np.ndarray) -> None:
    """The default: every frame detected, rows equal to the detector's own output."""
    images = _moving(face_image, 10, (3, 0))
    result = process_video("/in/still.mp4", RunConfig(device="cpu"), stages,
                           opener=lambda p, d: MemoryStream("/in/still.mp4", images))
    assert RunConfig().interval.detect_interval == 0
    assert result.faces.column("box_source").to_pylist() == ["detected"] * 10
    want = np.concatenate([d.boxes for i in range(0, 10, stages.detect_batch)
                           for d in stages.detector(images[i:i + stages.detect_batch])])
    got = np.stack([result.faces.column(c).to_numpy() for c in ("x1", "y1", "x2", "y2")], 1)
    np.testing.assert_allclose(got, want, atol=1e-3)


def test_cli_run_writes_box_source(tmp_path: Path, user_folder: Path) -> None:
    import pandas as pd
    from click.testing import CliRunner

    from ferbatch.cli import cli

    out = tmp_path / "out"
    res = CliRunner().invoke(cli, ["run", str(user_folder / "face.mp4"), "--out", str(out), "-q",
                                   "--device", "cpu", "--detect-interval", "3", "--detect-fixed"])
    assert res.exit_code == 0, res.output
    faces = pd.read_parquet(out / "faces")
    assert len(faces) == 36
    assert (faces.box_source == "detected").sum() == 9 and (faces.box_source == "tracked").sum() == 27
    bad = CliRunner().invoke(cli, ["run", str(user_folder / "face.mp4"), "--out", str(tmp_path / "b"),
                                   "--detect-interval", "-1"])
    assert bad.exit_code != 0 and "--detect-interval" in bad.output
    for flag in ("--detect-fixed", "--detect-adaptive"):  # alone they would be silently ignored
        alone = CliRunner().invoke(cli, ["run", str(user_folder / "face.mp4"), "--out",
                                         str(tmp_path / "c"), flag])
        assert alone.exit_code == 2, alone.output
        assert "apply only with --detect-interval N > 0" in alone.output
        assert "Traceback" not in alone.output and not (tmp_path / "c").exists()


def test_detect_adaptive_is_the_default_and_detect_fixed_turns_it_off() -> None:
    from ferbatch.cli import build_config, cli

    def config(*args: str) -> IntervalConfig:
        ctx = cli.commands["run"].make_context("run", ["v.mp4", "--out", "o", *args])
        return build_config(ctx.params).interval

    assert config() == IntervalConfig(detect_interval=0, adaptive=IntervalConfig.adaptive)
    assert config("--detect-interval", "3").adaptive is IntervalConfig.adaptive is True
    assert config("--detect-interval", "3", "--detect-fixed").adaptive is False
    assert config("--detect-interval", "3", "--detect-adaptive").adaptive is True


def test_interval_settings_travel_to_ray_workers() -> None:
    """Workers rebuild the config from its dict (``RunConfig.from_dict``)."""
    config = RunConfig(interval=IntervalConfig(detect_interval=4, adaptive=False))
    assert RunConfig.from_dict(config.to_dict()) == config
    with pytest.raises(Exception, match="--detect-interval"):
        RunConfig(interval=IntervalConfig(detect_interval=-1)).validate()
