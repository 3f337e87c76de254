"""Face crops (``ferbatch.crop``): eye levelling, centring, scale and the frame's border."""

from __future__ import annotations

import numpy as np
import pytest

from ferbatch.crop import crop_faces, face_transform, to_grey
from ferbatch.models.preprocess import Preprocess


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
