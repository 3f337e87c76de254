"""``ferbatch calibrate-crop``'s measurement (``ferbatch.train.calibrate``) on a real face."""

from __future__ import annotations

import numpy as np
import pytest

from ferbatch.errors import DataError
from ferbatch.train.calibrate import calibrate_crop

from clips import face_scene


def test_calibrate_crop_measures_the_training_framing(stages, face_image: np.ndarray) -> None:
    """FER2013-like crops (face filling ~0.95 of the image) → a crop_scale near that framing."""
    import cv2

    frame = face_scene(face_image, (100, 80))
    (d,) = stages.detector([frame])
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

    with pytest.raises(DataError, match="no face"):
        calibrate_crop(np.full((2, 48, 48), 128, np.uint8))
