"""Carrying detected faces from frame to frame: sparse optical flow with a forward-backward check.

Between two detections (``--detect-interval``), every face's box and its 5 landmarks are moved
by the motion of points on the face:

* points: the 5 landmarks plus up to ``_CORNERS`` Shi-Tomasi corners inside the box
  (``cv2.goodFeaturesToTrack``), and a regular grid when the face has too little texture;
* motion: pyramidal Lucas-Kanade (Bouguet 2000, ``cv2.calcOpticalFlowPyrLK``), run forward and
  backward; a point whose backward track misses its start by more than ``max_fb_error`` pixels
  is dropped (the forward-backward error of Kalal, Mikolajczyk & Matas 2010, "Forward-Backward
  Error: Automatic Detection of Tracking Failures", as in OpenCV's MedianFlow tracker);
* fit: a RANSAC similarity transform (rotation, uniform scale, shift;
  ``cv2.estimateAffinePartial2D``) from the surviving points moves the landmarks (so the eye
  angle the crop levels follows a turning head) and the box centre and size.

:meth:`FlowTracker.step` also says why the detector should look again (a face lost, its fit
degraded or its scale drifting, a face leaving the frame, a scene cut, motion in a region no
face covers); :class:`ferbatch.interval.DetectionInterval` decides what to do with it, and
may check and refine the carried boxes with the detector's last stage (:meth:`correct`). All work
is on a grey image downscaled to ``IntervalConfig.max_side``; coordinates in and out are in
pixels of the displayed frame.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

import cv2
import numpy as np

from .config import IntervalConfig
from .detect import Detections
from .prepare import downscale

log = logging.getLogger(__name__)

_CORNERS = 24  # Shi-Tomasi corners sought per face
_MIN_POINTS = 6  # fewer surviving points than this: the face is lost
_LK = dict(winSize=(15, 15), maxLevel=3,
           criteria=(cv2.TERM_CRITERIA_EPS | cv2.TERM_CRITERIA_COUNT, 20, 0.03))
_THUMB = 96  # long side of the thumbnail used for the scene-cut and new-motion checks
_CHANGED = 25  # grey levels: a thumbnail pixel that moved more than this has changed
_MAX_SCALE_DRIFT = 1.3  # box scale relative to the detection beyond which we re-detect
_MIN_INSIDE = 0.75  # share of a box's area that must stay in the frame
# the region around a tracked face whose change is its person's own motion, in box sides:
# above the box, on either side of it, below it (the body)
_HEAD, _SIDE, _BODY = 0.5, 0.75, 3.0

# reasons returned by FlowTracker.step
LOST = "face lost"
REJECTED = "face rejected by O-Net"
SCALE = "scale drift"
LEAVING = "face leaving the frame"
SCENE_CUT = "scene cut"
NEW_MOTION = "motion outside the faces"


@dataclass
class _Faces:
    """The faces being carried: full-frame boxes K×4, landmarks K×5×2, detection scores K,
    scale relative to the detection K, and their tracked points (tracking-image pixels) P×2
    with the face each belongs to P and each face's point count at detection K."""

    boxes: np.ndarray
    landmarks: np.ndarray
    scores: np.ndarray
    scale: np.ndarray
    points: np.ndarray
    owner: np.ndarray
    seeded: np.ndarray


class FlowTracker:
    """Moves the faces of the last detection onto each following frame.

    Call :meth:`reset` with a frame's grey image and its detections, then :meth:`step` with each
    following frame's grey image, in order. Not thread-safe; one per video.
    """

    def __init__(self, config: IntervalConfig | None = None) -> None:
        self.config = config or IntervalConfig()
        self._prev: np.ndarray | None = None  # the last frame's tracking image
        self._prev_thumb: np.ndarray | None = None
        self._ref_thumb: np.ndarray | None = None
        self._faces: _Faces | None = None
        self._ratio = 1.0
        self._size = (0, 0)

    def _small(self, grey: np.ndarray) -> np.ndarray:
        h, w = grey.shape[:2]
        self._size = (w, h)
        small, self._ratio = downscale(grey, self.config.max_side)
        return small

    @staticmethod
    def _thumb(small: np.ndarray) -> np.ndarray:
        return downscale(small, _THUMB)[0].astype(np.int16)

    def reset(self, grey: np.ndarray, detections: Detections) -> None:
        """Start carrying ``detections`` (in frame pixels), found on the H×W uint8 ``grey``."""
        small = self._small(grey)
        self._prev = small
        self._prev_thumb = self._ref_thumb = self._thumb(small)
        points, owner, seeded = [], [], []
        for k in range(len(detections)):
            pts = self._seed(small, detections.boxes[k] * self._ratio,
                             detections.landmarks[k] * self._ratio)
            points.append(pts)
            owner.append(np.full(len(pts), k))
            seeded.append(len(pts))
        n = len(detections)
        self._faces = _Faces(
            boxes=detections.boxes.astype(np.float32).copy(),
            landmarks=detections.landmarks.astype(np.float32).copy(),
            scores=detections.scores.astype(np.float32).copy(),
            scale=np.ones(n, np.float32),
            points=np.concatenate(points).astype(np.float32) if n else np.zeros((0, 2), np.float32),
            owner=np.concatenate(owner) if n else np.zeros(0, np.int64),
            seeded=np.array(seeded, np.int64))

    @staticmethod
    def _seed(small: np.ndarray, box: np.ndarray, marks: np.ndarray) -> np.ndarray:
        """Points to follow on one face (tracking-image pixels): landmarks, corners, a grid."""
        h, w = small.shape[:2]
        x1, y1, x2, y2 = box
        # the inner part of the box: its border often holds background
        ix1, iy1 = max(0, int(x1 + 0.15 * (x2 - x1))), max(0, int(y1 + 0.1 * (y2 - y1)))
        ix2, iy2 = min(w, int(x2 - 0.15 * (x2 - x1))), min(h, int(y2 - 0.05 * (y2 - y1)))
        pts = [marks.reshape(-1, 2)]
        if ix2 - ix1 >= 4 and iy2 - iy1 >= 4:
            side = max(ix2 - ix1, iy2 - iy1)
            corners = cv2.goodFeaturesToTrack(small[iy1:iy2, ix1:ix2], _CORNERS, 0.01, max(2.0, side / 10))
            if corners is not None:
                corners = corners.reshape(-1, 2) + np.array([ix1, iy1], np.float32)
                pts.append(corners)
            if corners is None or len(corners) < _CORNERS // 2:
                gx, gy = np.meshgrid(np.linspace(ix1, ix2 - 1, 4), np.linspace(iy1, iy2 - 1, 4))
                pts.append(np.stack([gx.ravel(), gy.ravel()], 1))
        return np.concatenate(pts).astype(np.float32)

    def step(self, grey: np.ndarray) -> tuple[Detections, str | None]:
        """The carried faces on the next frame (H×W uint8 ``grey``), and why the detector should
        look at this frame (``None``: tracking is sure). Faces that were lost are left out.

        Raises ``RuntimeError`` if :meth:`reset` was never called.
        """
        if self._faces is None or self._prev is None:
            raise RuntimeError("FlowTracker.step before reset")
        small = self._small(grey)
        thumb = self._thumb(small)
        reason = None
        if thumb.shape == self._prev_thumb.shape and (
                np.abs(thumb - self._prev_thumb).mean() > self.config.scene_cut * 255):
            reason = SCENE_CUT
        faces = self._faces
        keep = np.ones(len(faces.boxes), bool)
        if len(faces.points):
            reason = reason or self._move(small, faces, keep)
        self._prev, self._prev_thumb = small, thumb
        if reason is None and self._new_motion(thumb, faces.boxes[keep]):
            reason = NEW_MOTION
        self._drop(keep)  # lost faces stop being carried
        boxes = self._faces.boxes.copy()  # carried unclipped, so a face can be seen leaving
        boxes[:, 0::2] = boxes[:, 0::2].clip(0, self._size[0])
        boxes[:, 1::2] = boxes[:, 1::2].clip(0, self._size[1])
        return Detections(boxes, self._faces.scores.copy(), self._faces.landmarks.copy()), reason

    def correct(self, detections: Detections, keep: np.ndarray) -> None:
        """Replace the boxes, scores and landmarks of the faces :meth:`step` just returned by
        ``detections`` (the same faces in the same order, e.g. refined by O-Net) and stop
        carrying those where ``keep`` (bool, one per face) is false. Their points stay."""
        faces = self._faces
        if faces is None or len(detections) != len(faces.boxes) or len(keep) != len(faces.boxes):
            raise ValueError("FlowTracker.correct needs one detection per carried face")
        faces.boxes[:] = detections.boxes
        faces.scores[:] = detections.scores
        faces.landmarks[:] = detections.landmarks
        self._drop(np.asarray(keep, bool))

    def _drop(self, keep: np.ndarray) -> None:
        faces = self._faces
        if faces is None or keep.all():
            return
        gone = np.flatnonzero(~keep)
        remap = np.cumsum(keep) - 1
        alive = ~np.isin(faces.owner, gone)
        self._faces = _Faces(faces.boxes[keep], faces.landmarks[keep], faces.scores[keep],
                             faces.scale[keep], faces.points[alive],
                             remap[faces.owner[alive]], faces.seeded[keep])

    def _move(self, small: np.ndarray, faces: _Faces, keep: np.ndarray) -> str | None:
        """Move every face in place (``keep`` cleared for lost ones); the first reason found."""
        p0 = faces.points.reshape(-1, 1, 2)
        p1, st1, _ = cv2.calcOpticalFlowPyrLK(self._prev, small, p0, None, **_LK)
        back, st2, _ = cv2.calcOpticalFlowPyrLK(small, self._prev, p1, None, **_LK)
        fb = np.linalg.norm((p0 - back).reshape(-1, 2), axis=1)
        good = (st1.ravel() == 1) & (st2.ravel() == 1) & (fb <= self.config.max_fb_error)
        p0, p1 = p0.reshape(-1, 2), p1.reshape(-1, 2)
        reason = None
        w, h = self._size
        r = self._ratio
        for k in range(len(faces.boxes)):
            mine = faces.owner == k
            ok = mine & good
            n_ok = int(ok.sum())
            if n_ok < max(_MIN_POINTS, self.config.min_tracked * faces.seeded[k]):
                keep[k] = False
                reason = reason or LOST
                continue
            m, inliers = cv2.estimateAffinePartial2D(p0[ok], p1[ok], method=cv2.RANSAC,
                                                     ransacReprojThreshold=2.0)
            if m is None or inliers is None or inliers.mean() < 0.5:
                keep[k] = False
                reason = reason or LOST
                continue
            s = float(np.sqrt(abs(np.linalg.det(m[:, :2]))))
            mf = m.copy()
            mf[:, 2] /= r  # the same motion in frame pixels
            box = faces.boxes[k]
            c = mf[:, :2] @ ((box[:2] + box[2:]) / 2) + mf[:, 2]
            half = (box[2:] - box[:2]) / 2 * s
            faces.boxes[k] = np.concatenate([c - half, c + half])
            faces.landmarks[k] = faces.landmarks[k] @ mf[:, :2].T + mf[:, 2]
            faces.scale[k] *= s
            if not 1 / _MAX_SCALE_DRIFT <= faces.scale[k] <= _MAX_SCALE_DRIFT:
                reason = reason or SCALE
            b = faces.boxes[k]
            area = max((b[2] - b[0]) * (b[3] - b[1]), 1e-6)
            inside = max(0.0, min(b[2], w) - max(b[0], 0)) * max(0.0, min(b[3], h) - max(b[1], 0))
            if inside / area < _MIN_INSIDE:
                reason = reason or LEAVING
        faces.points[:] = p1
        alive = good & keep[faces.owner]
        faces.points, faces.owner = faces.points[alive], faces.owner[alive]
        return reason

    def _new_motion(self, thumb: np.ndarray, boxes: np.ndarray) -> bool:
        """Whether the image outside ``boxes`` changed enough since the last detection that a
        face may have come into view."""
        ref = self._ref_thumb
        if ref is None or ref.shape != thumb.shape:
            return False
        changed = np.abs(thumb - ref) > _CHANGED
        th, tw = thumb.shape
        sx, sy = tw / max(self._size[0], 1), th / max(self._size[1], 1)
        for b in boxes:  # the motion of a tracked person (head, shoulders, body) does not count
            bw, bh = b[2] - b[0], b[3] - b[1]
            changed[max(0, int((b[1] - _HEAD * bh) * sy)):int(np.ceil((b[3] + _BODY * bh) * sy)),
                    max(0, int((b[0] - _SIDE * bw) * sx)):int(np.ceil((b[2] + _SIDE * bw) * sx))] = False
        return bool(changed.mean() > self.config.new_motion)
