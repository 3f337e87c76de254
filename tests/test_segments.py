"""Long videos split into time segments: the plan, segment decoding, and split Ray runs.

Clips are encoded here with a keyframe every 12 frames (x264 closed GOPs with B-frames, so pts
and decode order differ), so a 4-second clip has several places to cut; ``segment_s=1`` forces
the split. A split Ray run must give the same rows as the unsplit local run.
"""

from __future__ import annotations

import math
import os
import signal
from collections.abc import Iterator
from fractions import Fraction
from pathlib import Path
from typing import Any

import av
import numpy as np
import pytest
from PIL import Image

from ferbatch.config import DecodeConfig, RunConfig
from ferbatch.decode import FrameSampler, open_video
from ferbatch.pipeline import Stages, process_video
from ferbatch.runner.local import run
from ferbatch.segments import open_segment, plan_segments

import clips

ray = pytest.importorskip("ray")
from ferbatch.runner.ray_pool import run_distributed  # noqa: E402

from helpers import Events, assert_same_frame, assert_same_output, process_segments_locally, read_output  # noqa: E402

GOP = 12
FPS = 24
N_FRAMES = 96  # 4 s at 24 fps: segment_s=1 cuts it at frames 24, 48, 72


def _encode(path: Path, images: Iterator[np.ndarray], size: tuple[int, int],
            pts: list[int], time_base: Fraction, gop: int = GOP) -> Path:
    """H.264 with a keyframe every ``gop`` frames (no scene-cut keyframes), B-frames on."""
    w, h = size
    with av.open(str(path), "w") as out:
        stream = out.add_stream("libx264", rate=FPS)
        stream.width, stream.height, stream.pix_fmt = w, h, "yuv420p"
        stream.time_base = stream.codec_context.time_base = time_base
        stream.options = {"preset": "veryfast", "crf": "20",
                          "x264-params": f"keyint={gop}:min-keyint={gop}:scenecut=0:log-level=error"}
        for p, img in zip(pts, images):
            frame = av.VideoFrame.from_ndarray(np.ascontiguousarray(img), format="rgb24")
            frame.pts, frame.time_base = p, time_base
            out.mux(stream.encode(frame))
        out.mux(stream.encode(None))
    return path


def _pattern_clip(path: Path, vfr: bool = False, gop: int = GOP) -> Path:
    """The barcode pattern of ``tests/clips.py`` (no faces): CFR, or VFR with 20/50/33 ms steps."""
    if vfr:
        cycle, pts = (20, 50, 33), [0]
        for i in range(1, N_FRAMES):
            pts.append(pts[-1] + cycle[(i - 1) % 3])
        tb = Fraction(1, 1000)
    else:
        pts, tb = list(range(N_FRAMES)), Fraction(1, FPS)
    images = (clips.render_frame(i, (160, 120)) for i in range(N_FRAMES))
    return _encode(path, images, (160, 120), pts, tb, gop)


def _two_face_clip(path: Path, face: np.ndarray) -> Path:
    """Face A drifts through the whole clip; face B shows in frames 18-44 and again 70-95.

    B is away for over a second (the tracker's memory), so it comes back with a new id; the
    cuts at 24, 48 and 72 fall while A is visible, while B is and right before B returns.
    """
    w, h = 320, 240
    big = np.asarray(Image.fromarray(face).resize((120, 128), Image.BILINEAR))
    small = np.asarray(Image.fromarray(face).resize((90, 96), Image.BILINEAR))
    yy, xx = np.mgrid[0:h, 0:w]
    background = np.stack([90 + 40 * xx / w, 100 + 30 * yy / h, np.full_like(xx, 120.0)],
                          axis=-1).astype(np.uint8)

    def images() -> Iterator[np.ndarray]:
        for i in range(N_FRAMES):
            img = background.copy()
            x = int(10 + 40 * (1 + math.sin(2 * math.pi * i / N_FRAMES)))
            img[20:148, x:x + 120] = big
            if 18 <= i <= 44 or i >= 70:
                img[130:226, 215:305] = small
            yield img

    return _encode(path, images(), (w, h), list(range(N_FRAMES)), Fraction(1, FPS))


@pytest.fixture(scope="module")
def folder(tmp_path_factory: pytest.TempPathFactory, face_image: np.ndarray) -> Path:
    root = tmp_path_factory.mktemp("segclips")
    _pattern_clip(root / "cfr.mp4")
    _pattern_clip(root / "vfr.mp4", vfr=True)
    _pattern_clip(root / "one_gop.mp4", gop=250)
    _two_face_clip(root / "faces.mp4", face_image)
    clip = _pattern_clip(root / "damaged.mp4")
    data = bytearray(clip.read_bytes())
    rng = np.random.default_rng(3)
    for frac in (0.45, 0.7):
        at = int(len(data) * frac)
        data[at:at + 400] = rng.integers(0, 256, 400, dtype=np.uint8).tobytes()
    clip.write_bytes(bytes(data))
    return root


def _decode(path: Path, decode: DecodeConfig) -> tuple[list[tuple[int, float, np.ndarray]], int]:
    with open_video(path, decode) as stream:
        frames = [(f.index, f.timestamp_s, f.image) for f in stream.frames(FrameSampler.from_config(decode))]
        assert stream.error is None
        return frames, stream.frames_decoded


# -- the plan -----------------------------------------------------------------------------------
@pytest.mark.parametrize("name", ["cfr.mp4", "vfr.mp4"])
def test_plan_cuts_at_keyframes_and_covers_every_frame(folder: Path, name: str) -> None:
    path = folder / name
    plan = plan_segments(path, RunConfig(), segment_s=1.0)
    assert plan.split, plan.reason
    with av.open(str(path)) as c:
        packets = [p for p in c.demux(c.streams.video[0]) if p.size]
    keyframes = {p.pts for p in packets if p.is_keyframe}
    frame_pts = sorted(p.pts for p in packets)
    assert plan.n_frames == len(frame_pts) == _decode(path, DecodeConfig())[1] == N_FRAMES
    starts = [s.first_index for s in plan.spans]
    assert starts[0] == 0 and all(s % GOP == 0 for s in starts)
    assert [(s.first_index, s.end_index) for s in plan.spans] == list(
        zip(starts, [*starts[1:], N_FRAMES]))  # a partition of every frame, in order
    for span in plan.spans[1:]:
        assert span.start_pts in keyframes and span.start_pts == frame_pts[span.first_index]
        if span.key_pts is None:  # the warm-up reaches back into the first GOP: no seek
            assert span.warm_index < GOP
        else:
            assert span.key_pts in keyframes and span.key_pts <= frame_pts[span.warm_index]
        assert span.warm_index < span.first_index
    assert plan.spans[-1].is_last and plan.spans[-1].end_pts is None
    assert len(plan.spans) in (3, 4)  # ~1 s each on 4 s of video


def test_short_or_uncuttable_videos_are_not_split(folder: Path) -> None:
    assert not plan_segments(folder / "cfr.mp4", RunConfig(), segment_s=0).split
    short = plan_segments(folder / "cfr.mp4", RunConfig(), segment_s=3.0)
    assert not short.split and "shorter than 2 x 3 s" in short.reason
    assert not plan_segments(folder / "one_gop.mp4", RunConfig(), segment_s=1.0).split
    bad = folder / "bad.mp4"
    clips.make_random_bytes(bad)
    assert not plan_segments(bad, RunConfig(), segment_s=1.0).split


@pytest.mark.parametrize("name", ["cfr.mp4", "vfr.mp4"])
@pytest.mark.parametrize("decode", [DecodeConfig(), DecodeConfig(every=5), DecodeConfig(fps=7)],
                         ids=["all", "every5", "fps7"])
def test_segments_decode_exactly_the_frames_of_a_whole_decode(folder: Path, name: str,
                                                               decode: DecodeConfig) -> None:
    """Same indices, timestamps and pixels; sampling decisions as over the whole video."""
    path = folder / name
    whole, n_decoded = _decode(path, decode)
    by_index = {i: (t, img) for i, t, img in whole}
    plan = plan_segments(path, RunConfig(decode=decode), segment_s=1.0)
    own: list[int] = []
    decoded = 0
    for span in plan.spans:
        with open_segment(path, span, decode) as stream:
            got = list(stream.frames(FrameSampler.from_config(decode)))
            assert stream.error is None
            decoded += stream.frames_decoded
        for f in got:
            t, img = by_index[f.index]
            assert f.timestamp_s == t and np.array_equal(f.image, img), (span.index, f.index)
        assert all(span.warm_index <= f.index < span.end_index for f in got)
        own += [f.index for f in got if f.index >= span.first_index]
        if span.index:  # the warm-up holds the frames the tracker's memory reaches back to
            assert any(f.index < span.first_index for f in got)
    assert own == [i for i, _, _ in whole] and decoded == n_decoded


def test_split_in_process_with_fps_sampling_matches_whole(folder: Path) -> None:
    """Every segment here, then the merge == process_video, sampled at 8 fps."""
    from ferbatch.config import TrackConfig

    config = RunConfig(decode=DecodeConfig(fps=8), track=TrackConfig(max_gap_s=0.5),
                       device="cpu").validate()
    stages = Stages(config)
    video = folder / "faces.mp4"
    plan = plan_segments(video, config, segment_s=1.0)
    assert plan.split and all(s.sampler_state is not None for s in plan.spans[1:])
    whole = process_video(video, config, stages)
    split = process_segments_locally(video, plan, config, stages)
    for key in ("status", "frames_decoded", "frames_analyzed", "faces_detected", "tracks",
                "sampling"):
        assert split.row[key] == whole.row[key], key
    assert whole.row["frames_analyzed"] == 32 and whole.row["tracks"] == 3
    for name in ("frames", "faces"):
        assert_same_frame(getattr(split, name).to_pandas(), getattr(whole, name).to_pandas())


def test_split_with_a_detection_interval_detects_at_each_segment_start(folder: Path,
                                                                       stages: Stages) -> None:
    """``--detect-interval``: every segment's first own frame is detected (its tracker starts
    there), the rest as in the whole run: same frames, faces and ids, boxes on the same faces."""
    from ferbatch.config import IntervalConfig, TrackConfig
    from ferbatch.track import iou_matrix

    config = RunConfig(decode=DecodeConfig(fps=8), track=TrackConfig(max_gap_s=0.5), device="cpu",
                       interval=IntervalConfig(detect_interval=3)).validate()
    video = folder / "faces.mp4"
    plan = plan_segments(video, config, segment_s=1.0)
    whole = process_video(video, config, stages)
    split = process_segments_locally(video, plan, config, stages)
    for key in ("status", "frames_analyzed", "faces_detected", "tracks"):
        assert split.row[key] == whole.row[key], key
    faces = split.faces.to_pandas()
    starts = [s.first_index for s in plan.spans]
    assert set(faces.loc[faces.frame_index.isin(starts), "box_source"]) == {"detected"}
    assert set(faces.box_source) == {"detected", "tracked"}
    other = whole.faces.to_pandas()
    assert (faces.frame_index.to_numpy() == other.frame_index.to_numpy()).all()
    assert (faces.face_id.to_numpy() == other.face_id.to_numpy()).all()
    cols = ["x1", "y1", "x2", "y2"]
    assert np.diag(iou_matrix(faces[cols].to_numpy(), other[cols].to_numpy())).min() > 0.8


# -- split Ray runs -----------------------------------------------------------------------------
def test_split_ray_run_matches_the_unsplit_local_run(folder: Path, tmp_path: Path,
                                                     stages: Stages, ray_session: None) -> None:
    video = folder / "faces.mp4"
    run([video], tmp_path / "local", stages=stages)
    events = Events()
    summary = run_distributed([video], tmp_path / "ray", workers=2, segment_s=1.0, hook=events)
    assert summary.all_ok and summary.frames == N_FRAMES
    segments = events.of("segment")
    assert len(segments) == segments[0].of >= 3 and not events.of("unsplit")
    assert len(events.of("worker")) == 2  # 1 video, but several work units
    assert_same_output(tmp_path / "ray", tmp_path / "local")
    faces = read_output(tmp_path / "ray")["faces"]
    # A throughout, B twice: the second time after more than the tracker's memory, a new id
    assert sorted(faces["face_id"].unique()) == [0, 1, 2]
    assert set(faces.loc[faces["frame_index"] >= 70, "face_id"]) == {0, 2}


def test_killed_worker_mid_segment_retries_only_that_segment(folder: Path, tmp_path: Path,
                                                             stages: Stages,
                                                             ray_session: None) -> None:
    video = folder / "cfr.mp4"
    def react(kind: str, payload: Any) -> None:
        if kind == "segment" and payload.index == 1 and payload.attempt == 0:
            os.kill(events.pids[-1], signal.SIGKILL)

    events = Events(react)

    run([video], tmp_path / "local", stages=stages)
    summary = run_distributed([video], tmp_path / "ray", workers=1, segment_s=1.0, hook=events,
                              max_retries=1)
    assert summary.all_ok
    assert [r.error for r in events.of("retry")] and len(events.of("retry")) == 1
    assert "segment 1" in events.of("retry")[0].error
    assert [(s.index, s.attempt) for s in events.of("segment")][:3] == [(0, 0), (1, 0), (1, 1)]
    assert len(set(events.pids)) == 2
    assert_same_output(tmp_path / "ray", tmp_path / "local")


def test_damaged_segment_makes_the_video_run_whole(folder: Path, tmp_path: Path,
                                                   stages: Stages, ray_session: None) -> None:
    """Decode damage inside a segment: no merge; the whole video is redone, as unsplit."""
    video = folder / "damaged.mp4"
    assert plan_segments(video, RunConfig(), segment_s=1.0).split
    run([video], tmp_path / "local", stages=stages)
    local = read_output(tmp_path / "local")["videos"]
    assert local["status"].tolist() == ["partial"], local["error"].tolist()
    events = Events()
    summary = run_distributed([video], tmp_path / "ray", workers=2, segment_s=1.0, hook=events)
    assert [r["status"] for r in summary.rows] == ["partial"]
    # whichever damaged segment returns first: decode errors (partial), or a frame short (failed)
    assert len(events.of("unsplit")) == 1
    assert events.of("unsplit")[0].reason.startswith("segment ")
    assert_same_output(tmp_path / "ray", tmp_path / "local")
