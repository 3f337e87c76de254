"""Unit tests of the pipeline stages on real images: detect, track, crop, classify, write."""

from __future__ import annotations

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from ferbatch.classify import EmotionClassifier
from ferbatch.config import DetectConfig, TrackConfig
from ferbatch.crop import crop_faces, face_transform, to_grey
from ferbatch.demo import astronaut_face
from ferbatch.detect import Detections, FaceDetector
from ferbatch.models.checkpoint import Preprocess, load_checkpoint
from ferbatch.output.commit import OutputStore
from ferbatch.output.schema import VIDEOS_SCHEMA
from ferbatch.track import IoUTracker, iou_matrix


@pytest.fixture(scope="module")
def detector() -> FaceDetector:
    return FaceDetector(DetectConfig())


def _scene(face_at: tuple[int, int] | None, size: tuple[int, int] = (480, 360),
           face_h: int = 200) -> np.ndarray:
    """A grey-blue frame with the astronaut's head pasted at ``face_at`` (top-left)."""
    import cv2

    w, h = size
    frame = np.full((h, w, 3), (70, 90, 120), np.uint8)
    if face_at is not None:
        face = astronaut_face()
        fw = int(face_h * face.shape[1] / face.shape[0])
        x, y = face_at
        frame[y:y + face_h, x:x + fw] = cv2.resize(face, (fw, face_h))
    return frame


def test_detector_finds_the_real_face_with_landmarks(detector: FaceDetector) -> None:
    frame = _scene((100, 80))
    (det,) = detector([frame])
    assert len(det) == 1
    x1, y1, x2, y2 = det.boxes[0]
    assert 100 <= x1 < x2 <= 100 + 200 * 290 / 310 + 5 and 80 <= y1 < y2 <= 285
    assert det.scores[0] > 0.95
    left_eye, right_eye, nose = det.landmarks[0][:3]
    assert left_eye[0] < nose[0] < right_eye[0]  # left eye is on the image's left
    assert left_eye[1] < nose[1] and right_eye[1] < nose[1]  # eyes above the nose
    assert x1 <= nose[0] <= x2 and y1 <= nose[1] <= y2


def test_detector_batch_mixes_faces_and_empty_frames(detector: FaceDetector) -> None:
    """facenet-pytorch's own wrapper fails here (issue #224); every frame needs a result."""
    frames = [_scene((100, 80)), _scene(None), _scene((220, 100)), _scene(None)]
    dets = detector(frames)
    assert [len(d) for d in dets] == [1, 0, 1, 0]
    assert dets[2].boxes[0][0] > dets[0].boxes[0][0] + 80


def test_concurrent_detection_keeps_order_results_and_thread_count(detector: FaceDetector) -> None:
    """Batches detected in threads come back in input order, equal to one-at-a-time
    detection, and the process-wide torch thread count is restored afterwards."""
    import torch

    from ferbatch.decode import Frame
    from ferbatch.pipeline import detect_batches

    places = [(100, 80), None, (220, 100), (40, 20), None, (180, 60), (60, 120)]
    batches = [[Frame(index=2 * i + j, timestamp_s=0.0, image=_scene(p) if p else _scene(None))
                for j, p in enumerate(places[2 * i:2 * i + 2])] for i in range((len(places) + 1) // 2)]
    threads = torch.get_num_threads()
    one = list(detect_batches(iter(batches), detector, 1))
    many = list(detect_batches(iter(batches), detector, 3))
    assert torch.get_num_threads() == threads
    assert [[f.index for f in b] for b, _ in many] == [[f.index for f in b] for b in batches]
    assert [len(d) for _, dets in many for d in dets] == [0 if p is None else 1 for p in places]
    for (_, a), (_, b) in zip(one, many):
        for da, db in zip(a, b):
            np.testing.assert_allclose(da.boxes, db.boxes, atol=1e-3)
            np.testing.assert_allclose(da.scores, db.scores, atol=1e-5)

    def failing(frames: list[np.ndarray]) -> list[Detections]:
        if frames[0].shape[0] == 7:
            raise RuntimeError("boom")
        return detector(frames)

    bad = [*batches[:2], [Frame(index=99, timestamp_s=0.0, image=np.zeros((7, 7, 3), np.uint8))]]
    with pytest.raises(RuntimeError, match="boom"):
        list(detect_batches(iter(bad), failing, 2))  # type: ignore[arg-type]
    assert torch.get_num_threads() == threads


def test_detector_handles_tiny_frames_and_empty_batches(detector: FaceDetector) -> None:
    assert detector([]) == []
    (det,) = detector([np.zeros((10, 10, 3), np.uint8)])  # smaller than the minimum face
    assert len(det) == 0


def test_detector_downscales_large_frames_and_maps_boxes_back() -> None:
    small = FaceDetector(DetectConfig(max_side=640))
    frame = _scene((600, 200), size=(1920, 1080), face_h=600)
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
    import subprocess
    import sys

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


def test_calibrate_crop_measures_the_training_framing() -> None:
    """FER2013-like crops (face filling ~0.95 of the image) → a crop_scale near that framing."""
    import cv2

    from ferbatch.train.calibrate import calibrate_crop

    det = FaceDetector()
    frame = _scene((100, 80))
    (d,) = det([frame])
    x1, y1, x2, y2 = d.boxes[0]
    images = []
    for factor in (0.9, 1.0, 1.1):
        side = factor * max(x2 - x1, y2 - y1)
        cx, cy = (x1 + x2) / 2, (y1 + y2) / 2
        a, b = int(cx - side / 2), int(cy - side / 2)
        grey = cv2.cvtColor(frame[b:b + int(side), a:a + int(side)], cv2.COLOR_RGB2GRAY)
        images.append(cv2.resize(grey, (48, 48), interpolation=cv2.INTER_AREA))
    result = calibrate_crop(np.stack(images))
    assert result.found == 3 and result.total == 3
    assert 0.85 <= result.crop_scale <= 1.15
    assert abs(result.crop_shift_y) < 0.15
    from ferbatch.errors import DataError

    with pytest.raises(DataError, match="no face"):
        calibrate_crop(np.full((2, 48, 48), 128, np.uint8))


def test_batch_buckets_are_few_and_padding_is_bounded() -> None:
    import torch

    from ferbatch.batching import bucket_rows, pad_rows

    assert [bucket_rows(n) for n in (0, 1, 2, 3, 5, 64, 65, 128, 129)] == [0, 1, 2, 4, 8, 64, 128, 128, 192]
    sizes = {bucket_rows(n) for n in range(1, 1025)}
    assert len(sizes) == 7 + 15  # 1..64 as powers of two, then multiples of 64 up to 1024
    assert all(n <= bucket_rows(n) < 2 * n for n in range(1, 1025))
    x = torch.ones(5, 3)
    padded = pad_rows(x)
    assert padded.shape == (8, 3) and bool((padded[5:] == 0).all()) and pad_rows(padded) is padded


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


def test_crop_levels_the_eyes_and_keeps_the_face_centred() -> None:
    pre = Preprocess(image_size=48, input_size=40, crop_scale=1.0, align_eyes=True)
    grey = np.zeros((200, 200), np.uint8)
    grey[90:110, 40:160] = 255  # a bright bar through the centre, tilted by the landmarks
    box = np.array([[50, 50, 150, 150]], np.float32)
    marks = np.array([[[70, 80], [130, 80], [100, 100], [80, 120], [120, 120]]], np.float32)
    crop = crop_faces(grey, box, marks, pre)
    assert crop.shape == (1, 48, 48) and crop.dtype == np.uint8
    assert crop[0, 24, :].mean() > 200  # the horizontal bar crosses the middle row
    assert crop[0, 2, :].mean() < 30
    # a 20° eye tilt rotates the crop by 20°
    tilted = np.array([[[70, 80], [130, 80 + 60 * np.tan(np.radians(20))], [100, 100], [80, 120], [120, 120]]], np.float32)
    m = face_transform(box[0], tilted[0], pre, 48)
    angle = np.degrees(np.arctan2(m[1, 0], m[0, 0]))
    assert angle == pytest.approx(-20, abs=0.5)


def test_crop_scale_and_border_handling() -> None:
    pre = Preprocess(image_size=48, crop_scale=2.0, align_eyes=False)
    grey = np.full((100, 100), 128, np.uint8)
    # a face box touching the frame corner: the crop extends outside and replicates the border
    crop = crop_faces(grey, np.array([[0, 0, 40, 40]], np.float32), None, pre)
    assert crop.shape == (1, 48, 48)
    assert abs(int(crop.mean()) - 128) <= 1
    assert to_grey(np.zeros((4, 4, 3), np.uint8)).shape == (4, 4)


def test_classifier_uses_the_checkpoint_labels_and_returns_probabilities() -> None:
    clf = EmotionClassifier(None, device="cpu", batch_size=7)
    assert clf.labels == load_checkpoint(None).labels
    rng = np.random.default_rng(0)
    faces = rng.integers(0, 255, (20, 48, 48), dtype=np.uint8)
    probs = clf(faces)
    assert probs.shape == (20, len(clf.labels)) and probs.dtype == np.float32
    np.testing.assert_allclose(probs.sum(1), 1.0, atol=1e-5)
    # batching does not change results
    np.testing.assert_allclose(EmotionClassifier(None, device="cpu", batch_size=256)(faces), probs, atol=1e-5)
    assert clf(np.zeros((0, 48, 48), np.uint8)).shape == (0, len(clf.labels))


def test_classifier_reads_a_smiling_real_face_as_happy() -> None:
    """The astronaut (Eileen Collins) smiles broadly in the photo: the bundled model says so."""
    det = FaceDetector()
    frame = _scene((100, 80))
    (d,) = det([frame])
    clf = EmotionClassifier(None, device="cpu")
    crops = crop_faces(to_grey(frame), d.boxes, d.landmarks, clf.preprocess)
    probs = clf(crops)
    assert clf.labels[int(probs[0].argmax())] == "happy"


def _row(video_id: str, status: str = "ok") -> dict:
    row = {name: None for name in VIDEOS_SCHEMA.names}
    row.update(video_id=video_id, path=f"/x/{video_id}.mp4", status=status)
    return row


def test_output_store_commits_partitions_atomically(tmp_path) -> None:
    store = OutputStore(tmp_path / "out")
    store.write_manifest(["happy", "sad"], "m")
    frames = pa.table({"frame_index": [0, 1], "timestamp_s": [0.0, 0.5], "num_faces": pa.array([1, 0], pa.int16())})
    faces = pa.table({"frame_index": [0], "p_happy": [0.7], "p_sad": [0.3]})
    store.commit(_row("a-1"), frames, faces)
    store.commit(_row("b-2", "failed"), None, None)
    table = store.write_videos_table()
    assert table.column("video_id").to_pylist() == ["a-1", "b-2"]
    assert pq.read_table(tmp_path / "out/frames/video_id=a-1").num_rows == 2
    assert not (tmp_path / "out/frames/video_id=b-2").exists()
    # a crashed writer's temp folder is invisible to readers and cleaned up next run
    (tmp_path / "out/faces/.tmp-c-3-dead").mkdir()
    import pandas as pd

    df = pd.read_parquet(tmp_path / "out/faces")
    assert df["video_id"].astype(str).tolist() == ["a-1"]
    store.recover()
    assert not (tmp_path / "out/faces/.tmp-c-3-dead").exists()
    # re-committing replaces the partition, never appends
    store.commit(_row("a-1"), frames.slice(0, 1), faces)
    assert pq.read_table(tmp_path / "out/frames/video_id=a-1").num_rows == 1


def test_output_store_refuses_a_different_label_set(tmp_path) -> None:
    from ferbatch.errors import ConfigError

    store = OutputStore(tmp_path)
    store.write_manifest(["happy", "sad"], "m1")
    with pytest.raises(ConfigError, match="labels"):
        store.write_manifest(["happy", "sad", "angry"], "m2")
    store.write_manifest(["happy", "sad", "angry"], "m2", overwrite=True)


def test_detections_empty_shapes() -> None:
    d = Detections.empty()
    assert len(d) == 0 and d.landmarks.shape == (0, 5, 2)
