"""The IoU tracker (``ferbatch.track``): known IoUs, ids through misses, sparse sampling, and
frames without a detection."""

from __future__ import annotations

import numpy as np

from ferbatch.config import TrackConfig
from ferbatch.crop import crop_faces
from ferbatch.detect import Detections
from ferbatch.models.preprocess import Preprocess
from ferbatch.track import IoUTracker, iou_matrix


def test_iou_matrix_known_values() -> None:
    a = np.array([[0, 0, 10, 10]], np.float32)
    b = np.array([[0, 0, 10, 10], [5, 0, 15, 10], [20, 20, 30, 30]], np.float32)
    np.testing.assert_allclose(iou_matrix(a, b), [[1.0, 50 / 150, 0.0]], rtol=1e-6)


def test_tracker_keeps_ids_through_brief_misses_and_separates_people() -> None:
    tracker = IoUTracker(TrackConfig(iou_threshold=0.3, max_gap_s=1.0))
    left = np.array([[10, 10, 60, 60]], np.float32)
    right = np.array([[200, 10, 250, 60]], np.float32)
    assert tracker.update(np.concatenate([left, right]), 0.0).tolist() == [0, 1]
    assert tracker.update(left + 3, 0.1).tolist() == [0]  # right face missed
    assert tracker.update(np.concatenate([right + 2, left + 6]), 0.5).tolist() == [1, 0]
    assert tracker.update(np.zeros((0, 4), np.float32), 0.6).tolist() == []
    # unseen for longer than max_gap: a new id
    assert tracker.update(left, 2.0).tolist() == [2]
    assert tracker.num_tracks == 3


def test_tracker_matches_moved_boxes_when_sampling_is_sparse() -> None:
    tracker = IoUTracker()
    tracker.update(np.array([[100, 100, 200, 200]], np.float32), 0.0)
    moved = np.array([[135, 110, 235, 210]], np.float32)  # IoU ≈ 0.45 → 0.39, still close
    assert tracker.update(moved, 1.0).tolist() == [0]
    far = np.array([[400, 100, 500, 200]], np.float32)
    assert tracker.update(far, 1.5).tolist() == [1]


def test_an_empty_detection_goes_through_the_tracker_and_the_crop() -> None:
    """A frame without a face (``Detections.empty()``, what the detector returns for it) gives
    zero ids and zero crops, and does not disturb the tracks around it."""
    tracker = IoUTracker(TrackConfig(max_gap_s=1.0))
    face = np.array([[40, 40, 120, 120]], np.float32)
    assert tracker.update(face, 0.0).tolist() == [0]
    empty = Detections.empty()
    ids = tracker.update(empty.boxes, 0.1)
    assert ids.shape == (0,) and np.issubdtype(ids.dtype, np.integer)
    grey = np.full((160, 160), 100, np.uint8)
    pre = Preprocess()
    crops = crop_faces(grey, empty.boxes, empty.landmarks, pre)
    assert crops.shape == (0, pre.image_size, pre.image_size) and crops.dtype == np.uint8
    assert crop_faces(grey, empty.boxes, None, pre).shape[0] == 0
    assert tracker.update(face + 2, 0.2).tolist() == [0]  # the same face, the same id
    assert tracker.num_tracks == 1
