"""Fixtures of the runner tests."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

import clips


@pytest.fixture(scope="session")
def clip_folder(tmp_path_factory: pytest.TempPathFactory, face_image: Any) -> Path:
    """Two small face clips of 2 s (24 frames at 12 fps; 320×240 and 160×120) and one file
    that is not a video: ``a.mp4``, ``b.mp4``, ``bad.mp4``."""
    root = tmp_path_factory.mktemp("dvideos")
    clips.make_face_clip(root / "a.mp4", face_image, n_frames=24, fps=12, size=(320, 240))
    clips.make_face_clip(root / "b.mp4", face_image, n_frames=24, fps=12, size=(160, 120))
    clips.make_random_bytes(root / "bad.mp4")
    return root
