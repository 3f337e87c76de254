"""Face detection (``ferbatch.detect``, ``ferbatch.mtcnn_nets``) on real images."""

from __future__ import annotations

import subprocess
import sys

import numpy as np
import pytest

from ferbatch.config import DetectConfig
from ferbatch.detect import FaceDetector

from clips import face_scene


@pytest.fixture()
def detector(stages) -> FaceDetector:
    """The session's CPU detector (default settings)."""
    return stages.detector


def test_detector_finds_the_real_face_with_landmarks(detector: FaceDetector,
                                                     face_image: np.ndarray) -> None:
    frame = face_scene(face_image, (100, 80))
    (det,) = detector([frame])
    assert len(det) == 1
    x1, y1, x2, y2 = det.boxes[0]
    assert 100 <= x1 < x2 <= 100 + 200 * 290 / 310 + 5 and 80 <= y1 < y2 <= 285
    assert det.scores[0] > 0.95
    left_eye, right_eye, nose = det.landmarks[0][:3]
    assert left_eye[0] < nose[0] < right_eye[0]  # left eye is on the image's left
    assert left_eye[1] < nose[1] and right_eye[1] < nose[1]  # eyes above the nose
    assert x1 <= nose[0] <= x2 and y1 <= nose[1] <= y2


def test_detector_batch_mixes_faces_and_empty_frames(detector: FaceDetector,
                                                     face_image: np.ndarray) -> None:
    """facenet-pytorch's own wrapper fails here (issue #224); every frame needs a result."""
    frames = [face_scene(face_image, (100, 80)), face_scene(None),
              face_scene(face_image, (220, 100)), face_scene(None)]
    dets = detector(frames)
    assert [len(d) for d in dets] == [1, 0, 1, 0]
    assert dets[2].boxes[0][0] > dets[0].boxes[0][0] + 80
    for empty in (dets[1], dets[3]):  # the shapes the tracker and the crop expect
        assert empty.boxes.shape == (0, 4) and empty.scores.shape == (0,)
        assert empty.landmarks.shape == (0, 5, 2)


def test_detector_handles_tiny_frames_and_empty_batches(detector: FaceDetector) -> None:
    assert detector([]) == []
    (det,) = detector([np.zeros((10, 10, 3), np.uint8)])  # smaller than the minimum face
    assert len(det) == 0


def test_detector_downscales_large_frames_and_maps_boxes_back(face_image: np.ndarray) -> None:
    small = FaceDetector(DetectConfig(max_side=640))
    frame = face_scene(face_image, (600, 200), size=(1920, 1080), face_h=600)
    (det,) = small([frame])
    assert len(det) == 1
    x1, y1, x2, y2 = det.boxes[0]
    assert 600 <= x1 and x2 <= 600 + 600 * 290 / 310 + 10 and 200 <= y1 and y2 <= 820


def test_mtcnn_nets_equal_facenet_pytorch() -> None:
    """Our P/R/O-Net modules with the wheel's weights give facenet-pytorch's exact outputs."""
    import torch
    from facenet_pytorch.models.mtcnn import ONet, PNet, RNet

    from ferbatch.mtcnn_nets import load_nets

    torch.manual_seed(0)
    shapes = [(2, 3, 30, 41), (5, 3, 24, 24), (5, 3, 48, 48)]
    for mine, ref, shape in zip(load_nets(torch.device("cpu")), (PNet(), RNet(), ONet()), shapes):
        x = torch.randn(shape)
        with torch.no_grad():
            for a, b in zip(mine(x), ref.eval()(x), strict=True):
                torch.testing.assert_close(a, b, rtol=0, atol=1e-6)


def test_detector_does_not_import_torchvision_or_facenet_packages() -> None:
    """Their package imports pull in torch._dynamo (~170 MB, ~1 s per worker process)."""
    code = ("import sys, numpy as np; from ferbatch.detect import FaceDetector; "
            "d = FaceDetector(); d([np.zeros((120, 160, 3), np.uint8)]); "
            "print(sorted(m for m in ('torchvision', 'facenet_pytorch', 'torch._dynamo') "
            "if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]", out.stdout + out.stderr


def test_batched_nms_keeps_groups_apart() -> None:
    import torch

    from ferbatch.detect import _batched_nms

    boxes = torch.tensor([[0, 0, 10, 10], [1, 1, 10, 10], [0, 0, 10, 10], [-5, -5, 3, 3.]])
    scores = torch.tensor([0.9, 0.8, 0.7, 0.6])
    keep = _batched_nms(boxes, scores, torch.tensor([0, 0, 1, 1]), 0.5)
    assert sorted(keep.tolist()) == [0, 2, 3]  # box 1 overlaps box 0 in its own group only
    assert _batched_nms(boxes[:0], scores[:0], torch.zeros(0, dtype=torch.long), 0.5).numel() == 0


def test_downscale_shrinks_the_long_side_and_keeps_small_images() -> None:
    from ferbatch.prepare import downscale

    frame = np.arange(1080 * 1920 * 3, dtype=np.uint32).astype(np.uint8).reshape(1080, 1920, 3)
    small, ratio = downscale(frame, 640)
    assert small.shape == (360, 640, 3) and ratio == pytest.approx(1 / 3)
    grey, ratio = downscale(frame[:7, :1000, 0], 100)  # a side never rounds to 0
    assert grey.shape == (1, 100) and ratio == pytest.approx(0.1)
    same, ratio = downscale(frame[:100, :200], 640)
    assert ratio == 1.0 and np.shares_memory(same, frame)  # returned as it is, not copied
