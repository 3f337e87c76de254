"""Face crops made the way the emotion model was trained.

FER2013 faces are loosely framed 48×48 grey images. The checkpoint's :class:`Preprocess`
says how much larger than the detector's box the crop is (``crop_scale``), how far it moves
down (``crop_shift_y``) and whether the eyes are levelled (``align_eyes``); this module turns
detector boxes + landmarks into ``image_size``² uint8 crops with one affine warp per face.
"""

from __future__ import annotations

import math

import cv2
import numpy as np

from .models.checkpoint import Preprocess

_SUPERSAMPLE = 2  # warp at 2× then area-downscale: avoids aliasing on large faces


def to_grey(frame_rgb: np.ndarray) -> np.ndarray:
    """RGB uint8 H×W×3 → grey uint8 H×W (ITU-R 601 luma, as FER2013's greyscale)."""
    return cv2.cvtColor(frame_rgb, cv2.COLOR_RGB2GRAY)


def face_transform(box: np.ndarray, landmarks: np.ndarray | None, pre: Preprocess,
                   out_size: int) -> np.ndarray:
    """2×3 affine matrix mapping frame pixels to an ``out_size``² face crop."""
    x1, y1, x2, y2 = (float(v) for v in box)
    w, h = x2 - x1, y2 - y1
    side = max(w, h) * pre.crop_scale
    cx = (x1 + x2) / 2
    cy = (y1 + y2) / 2 + pre.crop_shift_y * h
    angle = 0.0
    if pre.align_eyes and landmarks is not None and np.all(np.isfinite(landmarks[:2])):
        (lx, ly), (rx, ry) = landmarks[0], landmarks[1]
        if rx - lx > 1e-3:
            angle = math.degrees(math.atan2(ry - ly, rx - lx))
            angle = max(-45.0, min(45.0, angle))
    scale = out_size / max(side, 1e-3)
    # rotate about the face centre by the eye angle, scale, then move the centre to the middle
    m = cv2.getRotationMatrix2D((cx, cy), angle, scale)
    m[0, 2] += out_size / 2 - cx
    m[1, 2] += out_size / 2 - cy
    return m


def crop_faces(grey: np.ndarray, boxes: np.ndarray, landmarks: np.ndarray | None,
               pre: Preprocess) -> np.ndarray:
    """Crops of every face in one grey frame: uint8 K×S×S with S = ``pre.image_size``.

    Pixels outside the frame are filled by replicating the border (FER2013 has no black bars).
    """
    size = pre.image_size
    out = np.empty((len(boxes), size, size), dtype=np.uint8)
    big = size * _SUPERSAMPLE
    for k, box in enumerate(boxes):
        marks = landmarks[k] if landmarks is not None and len(landmarks) > k else None
        m = face_transform(box, marks, pre, big)
        warped = cv2.warpAffine(grey, m, (big, big), flags=cv2.INTER_LINEAR,
                                borderMode=cv2.BORDER_REPLICATE)
        out[k] = cv2.resize(warped, (size, size), interpolation=cv2.INTER_AREA)
    return out
