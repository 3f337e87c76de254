"""Measure how FER2013-style faces are framed relative to the pipeline's detector boxes.

The pipeline crops video faces around MTCNN boxes; to crop "the way the model was trained" the
crop must frame a face the way the training images do. This runs the pipeline's own detector
on training-style images (upscaled, border-replicated so a tightly cut face is still found) and
measures the image side relative to the detected box and the vertical offset of the box centre.
The medians become the checkpoint's ``crop_scale`` / ``crop_shift_y``.
"""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np

from ..config import DetectConfig
from ..detect import FaceDetector
from ..errors import DataError


@dataclass
class CropCalibration:
    """The measured framing (medians over the faces found) and how many were found."""

    crop_scale: float  # training image side / detector box long side (median)
    crop_shift_y: float  # (image centre − box centre) / box height (median), positive = down
    found: int
    total: int
    scale_iqr: tuple[float, float]


def calibrate_crop(images: np.ndarray, upscale: int = 4, batch_size: int = 16) -> CropCalibration:
    """Detect faces on uint8 N×S×S grey training images and return the median framing.

    Each image is upscaled ``upscale`` times and border-padded before detection (``batch_size``
    images per detector call). Raises :class:`DataError` when no face is found at all.
    """
    size = images.shape[-1] * upscale
    pad = size // 2
    detector = FaceDetector(DetectConfig(min_face_size=40, max_side=4 * size, min_score=0.9))
    scale, shift = [], []
    for start in range(0, len(images), batch_size):
        batch = []
        for im in images[start:start + batch_size]:
            big = cv2.resize(np.asarray(im), (size, size), interpolation=cv2.INTER_CUBIC)
            big = cv2.copyMakeBorder(big, pad, pad, pad, pad, cv2.BORDER_REPLICATE)
            batch.append(np.repeat(big[:, :, None], 3, axis=2))
        for det in detector(batch):
            if len(det):
                x1, y1, x2, y2 = det.boxes[0] - pad
                w, h = x2 - x1, y2 - y1
                scale.append(size / max(w, h))
                shift.append((size / 2 - (y1 + y2) / 2) / h)
    if not scale:
        raise DataError(f"no face detected in the {len(images)} calibration image(s)")
    s = np.array(scale)
    return CropCalibration(crop_scale=float(np.median(s)), crop_shift_y=float(np.median(shift)),
                           found=len(s), total=len(images),
                           scale_iqr=(float(np.percentile(s, 25)), float(np.percentile(s, 75))))
