"""Integration on the real clips in ../shared/videos (skipped, with the reason, when absent).

Expected properties per clip, PySceneDetect style: one table, one test per row.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import pytest

from ferbatch.config import RunConfig
from ferbatch.pipeline import Stages, VideoResult, process_video


@dataclass(frozen=True)
class Expect:
    file: str
    frames: int
    size: tuple[int, int]
    min_face_share: float  # share of analysed frames with ≥ 1 face
    max_face_share: float
    max_ids: int


CLIPS = [
    Expect("WolfgangLanger_Pexels.mp4", 472, (640, 360), 0.95, 1.0, 3),
    Expect("single_face.mp4", 72, (640, 360), 0.95, 1.0, 2),
    Expect("no_face.mp4", 95, (960, 540), 0.0, 0.0, 0),
    Expect("face_noface.mov", 169, (960, 540), 0.2, 0.9, 3),
    Expect("phone_woman.mp4", 115, (596, 336), 0.5, 1.0, 3),
]


@pytest.fixture(scope="module")
def results(shared_dir: Path, stages: Stages) -> dict[str, VideoResult]:
    return {c.file: process_video(shared_dir / "videos" / c.file, RunConfig(), stages) for c in CLIPS}


@pytest.mark.parametrize("clip", CLIPS, ids=[c.file for c in CLIPS])
def test_clip_properties(clip: Expect, results: dict[str, VideoResult]) -> None:
    r = results[clip.file]
    assert r.status == "ok", r.row["error"]
    assert r.row["frames_analyzed"] == clip.frames
    assert (r.row["width"], r.row["height"]) == clip.size
    frames = r.frames.to_pandas()
    share = float((frames.num_faces > 0).mean())
    assert clip.min_face_share <= share <= clip.max_face_share, share
    assert r.row["tracks"] <= clip.max_ids


def test_smiles_read_as_happy(results: dict[str, VideoResult]) -> None:
    """The woman in WolfgangLanger_Pexels.mp4 cries, then smiles: the last quarter is happy."""
    faces = results["WolfgangLanger_Pexels.mp4"].faces.to_pandas()
    end = faces[faces.timestamp_s > faces.timestamp_s.max() * 0.75]
    assert end["emotion"].value_counts().idxmax() == "happy"
    start = faces[faces.timestamp_s < 4.0]
    assert start["p_happy"].mean() < end["p_happy"].mean() - 0.3
