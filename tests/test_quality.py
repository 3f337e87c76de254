"""Per-face quality signals (ferbatch.quality) and their columns in the pipeline's output."""

from __future__ import annotations

import json
from pathlib import Path

import cv2
import numpy as np
import pytest

from ferbatch.config import RunConfig
from ferbatch.output.schema import faces_schema
from ferbatch.quality import (
    DEFAULT_THRESHOLDS,
    FACE_MODEL_MM,
    QUALITY_COLUMNS,
    QualityThresholds,
    crop_signals,
    face_quality,
    head_pose,
)


def _project(yaw: float, pitch: float, roll: float, w: int = 640, h: int = 480) -> np.ndarray:
    """The generic face's five points seen at this pose, 600 mm from a camera with f = w."""
    def rot(axis: int, deg: float) -> np.ndarray:
        v = np.zeros(3)
        v[axis] = np.radians(deg)
        return cv2.Rodrigues(v)[0]

    r = rot(2, roll) @ rot(1, yaw) @ rot(0, pitch)
    k = np.array([[max(w, h), 0, w / 2], [0, max(w, h), h / 2], [0, 0, 1]], float)
    pts, _ = cv2.projectPoints(FACE_MODEL_MM, cv2.Rodrigues(r)[0], np.array([0, 0, 600.0]), k, None)
    return pts.reshape(5, 2)


def test_quality_columns_end_the_faces_schema_in_order() -> None:
    names = faces_schema(["a", "b"]).names
    assert tuple(names[-len(QUALITY_COLUMNS):]) == QUALITY_COLUMNS
    assert names[-len(QUALITY_COLUMNS) - 2:-len(QUALITY_COLUMNS)] == ["p_a", "p_b"]


@pytest.mark.parametrize("pose", [(0, 0, 0), (30, 0, 0), (-25, 10, 0), (0, -20, 15), (15, 10, -30)])
def test_head_pose_recovers_the_pose_of_projected_landmarks(pose: tuple[float, float, float]) -> None:
    got = head_pose(_project(*pose)[None], (480, 640))[0]
    np.testing.assert_allclose(got, pose, atol=0.5)


def test_head_pose_signs_follow_the_image() -> None:
    """Positive roll turns the eye line clockwise in the image (right eye lower); positive
    yaw turns the nose towards the image's left."""
    marks = _project(0, 0, 20)
    assert marks[1, 1] > marks[0, 1]
    marks = _project(30, 0, 0)
    eye_mid = (marks[0, 0] + marks[1, 0]) / 2
    assert marks[2, 0] < eye_mid


def test_head_pose_of_missing_landmarks_is_nan() -> None:
    marks = np.stack([_project(0, 0, 0), np.full((5, 2), np.nan)])
    got = head_pose(marks, (480, 640))
    assert np.isfinite(got[0]).all() and np.isnan(got[1]).all()


def test_crop_signals_on_a_real_face(face_image: np.ndarray) -> None:
    """Blur lowers sharpness, darkening lowers brightness, a flat patch on one side raises
    occlusion; a flat crop has contrast 0; brightness and contrast are grey levels / 255."""
    grey = cv2.cvtColor(face_image, cv2.COLOR_RGB2GRAY)
    face = cv2.resize(grey, (48, 48), interpolation=cv2.INTER_AREA)
    blurred = cv2.GaussianBlur(face, (0, 0), 2.0)
    dark = (face * 0.3).astype(np.uint8)
    patched = face.copy()
    patched[:, :20] = 128
    flat = np.full((48, 48), 51, np.uint8)
    s = crop_signals(np.stack([face, blurred, dark, patched, flat]))
    assert s["sharpness"][1] < 0.5 * s["sharpness"][0]
    assert s["brightness"][2] < 0.4 * s["brightness"][0]
    assert s["occlusion"][3] > s["occlusion"][0]
    assert s["brightness"][4] == pytest.approx(0.2, abs=1e-6) and s["contrast"][4] < 1e-6
    assert s["brightness"][0] == pytest.approx(face.mean() / 255, rel=1e-5)
    assert s["contrast"][0] == pytest.approx(face.std() / 255, rel=1e-4)
    assert all(np.isfinite(v).all() and v.dtype == np.float32 for v in s.values())


def test_face_quality_gives_every_signal_per_face() -> None:
    crops = np.random.default_rng(0).integers(0, 256, (2, 48, 48), dtype=np.uint8)
    boxes = np.array([[10, 20, 60, 90], [100, 100, 130, 120]], np.float32)
    marks = np.stack([_project(0, 0, 0), _project(20, 0, 0)])
    q = face_quality(crops, boxes, marks, (480, 640, 3))
    assert list(q) == list(QUALITY_COLUMNS[:-1])
    assert q["face_px"].tolist() == [70.0, 30.0]
    assert abs(q["yaw"][1] - 20) < 0.5
    empty = face_quality(np.zeros((0, 48, 48), np.uint8), np.zeros((0, 4)), np.zeros((0, 5, 2)), (10, 10))
    assert all(len(v) == 0 for v in empty.values())


def _one_face(crop: np.ndarray, box: np.ndarray, marks: np.ndarray, hw: tuple[int, int]) -> dict[str, float]:
    """The signals of one face written out from the module doc's definitions, face by face."""
    x = crop.astype(np.float64) / 255.0
    lap = cv2.filter2D(x, -1, np.array([[0, 1, 0], [1, -4, 1], [0, 1, 0]], np.float64))[1:-1, 1:-1]
    s = x.shape[0] // 4
    cells = [x[i * s:(i + 1) * s, j * s:(j + 1) * s].std() for i in range(4) for j in range(4)]
    h, w = hw
    camera = np.array([[max(h, w), 0, w / 2], [0, max(h, w), h / 2], [0, 0, 1]], np.float64)
    _, rvec, _ = cv2.solvePnP(FACE_MODEL_MM, marks.astype(np.float64), camera, None,
                              flags=cv2.SOLVEPNP_SQPNP)
    r = cv2.Rodrigues(rvec)[0]
    return {"face_px": max(box[2] - box[0], box[3] - box[1]),
            "sharpness": lap.var() / max(x.var(), 1e-6), "brightness": x.mean(), "contrast": x.std(),
            "yaw": np.degrees(np.arcsin(-r[2, 0])), "pitch": np.degrees(np.arctan2(r[2, 1], r[2, 2])),
            "roll": np.degrees(np.arctan2(r[1, 0], r[0, 0])),
            "occlusion": 1 - min(cells) / max(float(np.median(cells)), 1e-3)}


def test_a_batch_of_faces_from_several_frames_gives_each_face_its_own_signals(face_image: np.ndarray) -> None:
    """The pipeline measures a classifier batch at once (faces of several frames and sizes):
    every face's signals equal the per-face formula, to float round-off."""
    rng = np.random.default_rng(3)
    grey = cv2.cvtColor(face_image, cv2.COLOR_RGB2GRAY)
    crops = np.stack([cv2.resize(grey, (48, 48), interpolation=cv2.INTER_AREA),
                      cv2.GaussianBlur(cv2.resize(grey, (48, 48)), (0, 0), 1.5),
                      *rng.integers(0, 256, (3, 48, 48), dtype=np.uint8)])
    boxes = np.array([[10, 20, 60, 90], [5, 5, 40, 30], [0, 0, 30, 30], [1, 2, 3, 4], [7, 9, 70, 50]],
                     np.float32)
    sizes = [(480, 640), (480, 640), (720, 1280), (720, 1280), (1080, 1920)]
    marks = np.stack([_project(y, p, r, w, h) for (y, p, r), (h, w) in
                      zip([(0, 0, 0), (15, -5, 3), (-25, 10, 0), (5, 20, -8), (30, 0, 12)], sizes)])
    got = face_quality(crops, boxes, marks, np.array(sizes))
    for k in range(len(crops)):
        want = _one_face(crops[k], boxes[k], marks[k], sizes[k])
        for name, value in want.items():
            assert got[name][k] == pytest.approx(value, rel=1e-4, abs=1e-4), (k, name)
    one = face_quality(crops[2:4], boxes[2:4], marks[2:4], (720, 1280, 3))  # one frame's shape
    assert all(np.array_equal(one[name], got[name][2:4]) for name in one)


def test_thresholds_fail_bad_or_missing_values_and_round_trip() -> None:
    t = QualityThresholds(min_face_px=40, max_abs_yaw=30)
    signals = {"face_px": [80, 20, 80, 80], "sharpness": [2, 2, 2, 2], "brightness": [.5] * 4,
               "contrast": [.2] * 4, "yaw": [0, 0, 50, np.nan], "pitch": [0] * 4, "roll": [0] * 4,
               "occlusion": [.4] * 4}
    assert t.ok(signals).tolist() == [True, False, False, False]
    assert QualityThresholds.from_dict(json.loads(json.dumps(t.to_dict()))) == t
    with pytest.raises(ValueError, match="unknown quality threshold"):
        QualityThresholds.from_dict({"min_size": 3})


def test_pipeline_rows_carry_quality_and_the_manifest_its_thresholds(
        user_folder: Path, tmp_path: Path, stages) -> None:  # noqa: ANN001
    import ferbatch

    ferbatch.run([user_folder / "face.mp4"], tmp_path / "out", RunConfig(device="cpu"), stages=stages)
    faces = ferbatch.load(tmp_path / "out").faces
    assert len(faces) > 0
    for name in QUALITY_COLUMNS[:-1]:
        assert np.isfinite(faces[name].to_numpy(float)).all(), name
    side = np.maximum(faces["x2"] - faces["x1"], faces["y2"] - faces["y1"])
    np.testing.assert_allclose(faces["face_px"], side, rtol=1e-5)
    assert (faces["yaw"].abs() < 30).all()  # the astronaut faces the camera
    assert faces["quality_ok"].astype(bool).tolist() == DEFAULT_THRESHOLDS.ok(faces).tolist()
    meta = json.loads((tmp_path / "out" / "_ferbatch.json").read_text())
    assert meta["quality_thresholds"] == DEFAULT_THRESHOLDS.to_dict()
