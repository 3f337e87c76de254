"""Face thumbnails (``ferbatch.report.thumbnails``): the right frame, display rotation, and
never an exception for a bad video."""

from __future__ import annotations

import io
import os

import numpy as np
import pytest

from ferbatch.report.thumbnails import ThumbRequest, extract_thumbnails

from synth_output import ALPHA_BOXES


def _jpeg_grey(data: bytes) -> float:
    from PIL import Image

    img = np.asarray(Image.open(io.BytesIO(data)).convert("L"), float)
    h, w = img.shape
    return float(img[h // 3: 2 * h // 3, w // 3: 2 * w // 3].mean())


def test_thumbnails_come_from_the_right_frame(report):
    info, _ = report
    path = info.video_paths["alpha"]
    reqs = [ThumbRequest(("happy",), 4.0, ALPHA_BOXES[0]),   # frame 40 → grey 100
            ThumbRequest(("surprise",), 3.0, ALPHA_BOXES[1]),  # frame 30 → grey 80
            ThumbRequest(("late",), 9.9, ALPHA_BOXES[0]),      # frame 99 → grey 218
            ThumbRequest(("early",), 0.0, ALPHA_BOXES[1]),     # frame 0 → grey 20 (after a later seek)
            ThumbRequest(("bad box",), 1.0, (50.0, 50.0, 10.0, 10.0))]
    got = extract_thumbnails(path, reqs, size=(160, 120))
    for key, grey in ((("happy",), 100), (("surprise",), 80), (("late",), 218), (("early",), 20)):
        assert got[key].error is None, got[key].error
        assert abs(_jpeg_grey(got[key].jpeg) - grey) < 6, (key, _jpeg_grey(got[key].jpeg))
    assert got[("bad box",)].jpeg is None and "invalid box" in got[("bad box",)].error


def test_thumbnails_never_raise_on_bad_videos(tmp_path):
    reqs = [ThumbRequest(("a",), 1.0, (0.0, 0.0, 10.0, 10.0))]
    garbage = tmp_path / "garbage.mp4"
    garbage.write_bytes(os.urandom(4096))
    empty = tmp_path / "empty.mov"
    empty.write_bytes(b"")
    for path in (tmp_path / "missing.mp4", garbage, empty, tmp_path):
        got = extract_thumbnails(path, reqs)
        assert got[("a",)].jpeg is None and got[("a",)].error


def test_thumbnail_follows_display_rotation(tmp_path):
    from PIL import Image

    from clips import encoder_available, make_clip

    if not encoder_available("libx264"):
        pytest.skip("libx264 encoder not in this PyAV build")
    spec = make_clip(tmp_path / "rot.mp4", n_frames=5, size=(160, 120), rotation=90, pattern="moving")
    assert (spec.width, spec.height) == (120, 160)
    whole = [ThumbRequest(("all",), 0.0, (0.0, 0.0, 120.0, 160.0))]
    # rotation=None: the frame's own display matrix; 90: what the pipeline recorded for it
    for rotation in (None, 90):
        got = extract_thumbnails(spec.path, whole, size=(spec.width, spec.height), rotation=rotation)
        img = np.asarray(Image.open(io.BytesIO(got[("all",)].jpeg)).convert("RGB"), float)
        h, w, _ = img.shape
        assert h > w  # portrait, as displayed
        # the red marker of the stored bottom-left corner is bottom-right after a 90° CCW rotation
        corner = img[int(h * 0.9):, int(w * 0.85):].mean(axis=(0, 1))
        assert corner[0] > 150 and corner[1] < 100, corner
    # the videos table's rotation wins over the file's: 0 recorded → the stored, landscape pixels
    got = extract_thumbnails(spec.path, [ThumbRequest(("all",), 0.0, (0.0, 0.0, 160.0, 120.0))],
                             size=(160, 120), rotation=0)
    img = np.asarray(Image.open(io.BytesIO(got[("all",)].jpeg)).convert("RGB"), float)
    assert img.shape[1] > img.shape[0]
