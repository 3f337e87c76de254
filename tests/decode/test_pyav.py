"""The PyAV backend (``ferbatch.decode.pyav``): expected properties per clip, table-driven
(PySceneDetect style).

Every clip is encoded by ``tests/clips.py`` at test time, so the expected frame count, rate,
displayed size, rotation and timestamps are known exactly; each frame carries its own number as
a barcode, so order and identity are checked too.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from ferbatch.config import DecodeConfig
from ferbatch.decode import FrameSampler, VideoInfo, VideoStream, open_video
from ferbatch.decode import pyav as pyav_backend
from ferbatch.errors import ConfigError, DecodeError, VideoOpenError

import clips

N, FPS = 60, 30  # 2-second clips


@dataclass(frozen=True)
class Case:
    """One clip to encode and the settings to encode it with."""

    id: str
    filename: str
    codec: str
    kwargs: dict[str, Any] = field(default_factory=dict)

    @property
    def vfr(self) -> bool:
        return bool(self.kwargs.get("vfr"))


CASES = [
    Case("h264-mp4", "h264.mp4", "libx264"),
    Case("mpeg4-avi", "mpeg4.avi", "mpeg4"),
    Case("vp9-webm", "vp9.webm", "libvpx-vp9"),
    Case("hevc-mkv", "hevc.mkv", "libx265"),
    Case("hevc-mov", "hevc.mov", "libx265"),
    Case("h264-rot90-mp4", "rot90.mp4", "libx264", {"rotation": 90}),
    Case("h264-rot180-mov", "rot180.mov", "libx264", {"rotation": 180}),
    Case("h264-rot270-mp4", "rot270.mp4", "libx264", {"rotation": 270}),
    Case("h264-vfr-mp4", "vfr.mp4", "libx264", {"vfr": True}),
    Case("h264-vfr-mkv", "vfr.mkv", "libx264", {"vfr": True}),
]
CFR_CASES = [c for c in CASES if not c.vfr]
VFR_CASES = [c for c in CASES if c.vfr]


@pytest.fixture(scope="session")
def encoded(clips_dir: Path):
    """Encode each case once per session, on first use."""
    cache: dict[str, clips.ClipSpec] = {}

    def get(case: Case) -> clips.ClipSpec:
        if not clips.encoder_available(case.codec):
            pytest.skip(f"encoder {case.codec} not in this PyAV build")
        if case.id not in cache:
            cache[case.id] = clips.make_clip(
                clips_dir / case.filename, n_frames=N, fps=FPS, codec=case.codec, **case.kwargs
            )
        return cache[case.id]

    return get


def decode_all(path: Path, sampler: FrameSampler | None = None, **config: Any):
    """Decode a file; return (stream, frames) with the stream already closed."""
    with open_video(path, DecodeConfig(**config)) as video:
        frames = list(video.frames(sampler))
    return video, frames


def stored_number(image: np.ndarray, rotation: int) -> int:
    """Undo the display rotation and read the frame-number barcode."""
    return clips.read_frame_number(np.rot90(image, -(rotation // 90)))


# ---------------------------------------------------------------------------- per-clip table
@pytest.mark.parametrize("case", CASES, ids=lambda c: c.id)
def test_info_matches_encoded_clip(case: Case, encoded) -> None:
    spec = encoded(case)
    with open_video(spec.path) as video:
        info = video.info
    assert isinstance(info, VideoInfo)
    assert info.path == str(spec.path)
    assert (info.width, info.height) == (spec.width, spec.height)
    assert info.rotation == spec.rotation
    assert info.codec == spec.codec
    assert info.frame_count in (spec.n_frames, None)  # Matroska/WebM carry no count
    assert info.duration_s == pytest.approx(spec.pts_s[-1] + 1 / FPS, abs=0.05)
    if not case.vfr:
        assert info.fps == pytest.approx(FPS, rel=1e-3)
    else:
        assert info.fps is not None and 25 < info.fps <= 31  # mean rate (MP4) or nominal (MKV)


@pytest.mark.parametrize("case", CASES, ids=lambda c: c.id)
def test_all_frames_in_order_with_encoded_timestamps(case: Case, encoded) -> None:
    spec = encoded(case)
    video, frames = decode_all(spec.path)
    assert video.error is None
    assert video.frames_decoded == len(frames) == spec.n_frames
    assert [f.index for f in frames] == list(range(spec.n_frames))
    times = [f.timestamp_s for f in frames]
    assert times == sorted(times)
    assert times == pytest.approx(spec.pts_s, abs=1e-3)  # WebM/MKV store milliseconds
    for f in frames:
        assert f.image.dtype == np.uint8 and f.image.flags.c_contiguous
        assert f.image.shape == (spec.height, spec.width, 3)
    assert [stored_number(f.image, spec.rotation) for f in frames] == list(range(spec.n_frames))


@pytest.mark.parametrize("case", CASES, ids=lambda c: c.id)
def test_pixels_as_displayed(case: Case, encoded) -> None:
    """The decoded image is the source turned by the display rotation (np.rot90, CCW)."""
    spec = encoded(case)
    _, frames = decode_all(spec.path, FrameSampler(every=20))
    k = spec.rotation // 90
    for f in frames:
        expected = np.rot90(clips.render_frame(f.index), k).astype(np.int16)
        assert np.abs(f.image.astype(np.int16) - expected).mean() < 6


@pytest.mark.parametrize("case", CASES, ids=lambda c: c.id)
def test_every_3(case: Case, encoded) -> None:
    spec = encoded(case)
    video, frames = decode_all(spec.path, FrameSampler(every=3))
    assert [f.index for f in frames] == list(range(0, spec.n_frames, 3))
    assert len(frames) == math.ceil(spec.n_frames / 3)
    assert video.frames_decoded == spec.n_frames


@pytest.mark.parametrize("case", CFR_CASES, ids=lambda c: c.id)
def test_fps_5_on_30fps_keeps_10_evenly(case: Case, encoded) -> None:
    spec = encoded(case)
    _, frames = decode_all(spec.path, FrameSampler(fps=5))
    assert abs(len(frames) - 10) <= 1
    gaps = np.diff([f.timestamp_s for f in frames])
    assert np.allclose(gaps, 0.2, atol=1 / FPS + 1e-6)


@pytest.mark.parametrize("case", VFR_CASES, ids=lambda c: c.id)
def test_fps_sampling_on_vfr_uses_time(case: Case, encoded) -> None:
    """Each 1/fps slot gets the first frame at or after it: the kept set follows time, not index."""
    spec = encoded(case)
    rate = 10.0
    _, frames = decode_all(spec.path, FrameSampler(fps=rate))
    t = spec.pts_s
    slots = [k / rate for k in range(int(t[-1] * rate) + 1)]
    expected = sorted({next(i for i, ti in enumerate(t) if ti >= s - 1e-6) for s in slots})
    assert [f.index for f in frames] == expected
    every_n = list(range(0, spec.n_frames, round(len(t) / len(expected))))
    assert expected != every_n  # would be equal if the sampler counted frames


@pytest.mark.parametrize("case", CASES, ids=lambda c: c.id)
def test_threaded_equals_unthreaded(case: Case, encoded) -> None:
    spec = encoded(case)
    v1, single = decode_all(spec.path, threads=1)
    v0, threaded = decode_all(spec.path, threads=0)
    assert len(single) == len(threaded) == spec.n_frames
    assert v1.error is None and v0.error is None
    for a, b in zip(single, threaded):
        assert a.index == b.index and a.timestamp_s == b.timestamp_s
        assert np.array_equal(a.image, b.image)


@pytest.mark.parametrize("threads", [0, 1])
@pytest.mark.parametrize("case", [CASES[0], CASES[3]], ids=lambda c: c.id)
def test_early_stop_closes_cleanly(case: Case, threads: int, encoded) -> None:
    spec = encoded(case)
    with open_video(spec.path, DecodeConfig(threads=threads)) as video:
        for f in video.frames():
            if f.index == 4:
                break
        assert video.frames_decoded == 5
    assert video._container is None  # the generator's finally / close() released it
    video.close()  # idempotent
    with pytest.raises(DecodeError):
        video.frames()

    # closing from inside the loop body, without a with-block
    video = open_video(spec.path, DecodeConfig(threads=threads))
    seen = 0
    for _ in video.frames():
        seen += 1
        video.close()
    assert seen == 1 and video._container is None


def test_skipped_frames_are_not_converted(encoded, monkeypatch: pytest.MonkeyPatch) -> None:
    spec = encoded(CASES[0])
    calls = []
    real = pyav_backend.to_rgb
    monkeypatch.setattr(pyav_backend, "to_rgb",
                        lambda fr, size=None: calls.append(1) or real(fr, size))
    video, frames = decode_all(spec.path, FrameSampler(every=4))
    assert len(calls) == len(frames) == 15
    assert video.frames_decoded == N


def test_rotation_convention(encoded) -> None:
    """stored bottom-left marker + CCW 90 display rotation -> marker bottom-right, barcode left."""
    spec = encoded(CASES[5])  # rotation=90 written with set_display_rotation(90)
    _, frames = decode_all(spec.path, FrameSampler(every=N))
    img = frames[0].image.astype(int)
    assert img.shape == (160, 120, 3)  # portrait
    red = lambda px: px[0] > 150 and px[1] < 90 and px[2] < 90  # noqa: E731
    assert red(img[-8, -8]) and not red(img[-8, 8]) and not red(img[8, -8])
    # frame 0's barcode is all black: the stored top band now runs down the left edge
    assert img[:, : clips.BAND - 4].mean() < 30 and img[: clips.BAND - 4, 20:].mean() > 30


# ---------------------------------------------------------------------------- bad inputs
BAD_INPUTS = [
    ("missing.mp4", None, "file not found"),
    ("empty.mp4", clips.make_zero_byte, "empty file (0 bytes)"),
    ("random.mp4", clips.make_random_bytes, "not a video file"),
    ("notes.mov", clips.make_text_as_mov, "not a video file"),
    ("song.mp4", clips.make_audio_only, "no video stream (audio only)"),
]


@pytest.mark.parametrize("name,make,reason", BAD_INPUTS, ids=[b[0] for b in BAD_INPUTS])
def test_bad_input_raises_video_open_error(name, make, reason, tmp_path: Path) -> None:
    path = tmp_path / name
    if make is not None:
        make(path)
    with pytest.raises(VideoOpenError) as exc_info:
        open_video(path)
    message = str(exc_info.value)
    assert name in message and reason in message
    if make not in (None, clips.make_zero_byte):
        assert exc_info.value.__cause__ is not None or "audio only" in message


def test_directory_is_not_a_video(tmp_path: Path) -> None:
    (tmp_path / "folder.mp4").mkdir()
    with pytest.raises(VideoOpenError, match="folder.mp4: not a regular file"):
        open_video(tmp_path / "folder.mp4")


def test_unknown_backend_lists_valid_ones(encoded) -> None:
    with pytest.raises(ConfigError, match="valid: pyav"):
        open_video(encoded(CASES[0]).path, backend="opencv")


# ---------------------------------------------------------------------------- damage
@pytest.mark.parametrize("threads", [0, 1])
@pytest.mark.parametrize("filename,codec", [("cut.mp4", "libx264"), ("cut.mkv", "libx264"),
                                            ("cut.webm", "libvpx-vp9")])
def test_truncated_clip_keeps_frames_and_sets_error(filename, codec, threads, clips_dir) -> None:
    path = clips_dir / f"t{threads}_{filename}"
    spec = clips.make_truncated_clip(path, fraction=0.4, n_frames=90, codec=codec)
    video, frames = decode_all(path, threads=threads)
    assert 10 < len(frames) < spec.n_frames
    assert [clips.read_frame_number(f.image) for f in frames] == list(range(len(frames)))
    assert video.error is not None
    assert "cut short" in video.error or "ends early" in video.error


def test_truncated_mp4_threaded_keeps_the_buffered_frames(clips_dir) -> None:
    """Regression: decoding the incomplete last packet with frame threads lost 2 frames."""
    path = clips_dir / "cut_threads.mp4"
    clips.make_truncated_clip(path, fraction=0.4, n_frames=90)
    counts = {t: decode_all(path, FrameSampler(every=1000), threads=t)[0].frames_decoded
              for t in (0, 1)}
    assert counts[0] == counts[1] > 0


def test_damaged_middle_skips_packets_and_goes_on(clips_dir) -> None:
    path = clips_dir / "damaged.mp4"
    spec = clips.make_damaged_clip(path, n_frames=90)
    video, frames = decode_all(path, threads=1)
    assert video.frames_decoded > 0.8 * spec.n_frames
    assert frames[-1].timestamp_s > 2.5  # got past all three damaged spots
    assert video.error and "damaged packet" in video.error

    stopped, few = decode_all(path, threads=1, max_consecutive_errors=1)
    assert 0 < len(few) < len(frames)
    assert stopped.error and stopped.error.startswith("decoding stopped at frame")
    assert "ends early" not in stopped.error  # giving up on purpose is not reported as truncation


# ---------------------------------------------------------------------------- the interface
def test_pyav_stream_is_a_video_stream_iterated_once(encoded) -> None:
    """Iterating the stream itself (the base class's ``__iter__``) is ``frames()`` without a
    sampler; the context manager closes it, and a closed stream refuses to decode again."""
    spec = encoded(CASES[0])
    with open_video(spec.path) as video:
        assert isinstance(video, VideoStream) and str(spec.path) in repr(video)
        frames = list(video)
        assert video.frames_decoded == spec.n_frames and video.error is None
    assert [f.index for f in frames] == list(range(spec.n_frames))
    assert [stored_number(f.image, spec.rotation) for f in frames] == list(range(spec.n_frames))
    assert video._container is None
    with pytest.raises(DecodeError):
        list(video)


# ---------------------------------------------------------------------------- ../shared clips
def test_shared_wolfgang_langer(shared_dir: Path) -> None:
    path = shared_dir / "videos" / "WolfgangLanger_Pexels.mp4"
    if not path.is_file():
        pytest.skip(f"{path} not found")
    video, frames = decode_all(path, FrameSampler(every=50))
    assert (video.info.width, video.info.height, video.info.rotation) == (640, 360, 0)
    assert video.info.fps == pytest.approx(23.976, abs=0.01)
    assert video.frames_decoded == 472 and video.error is None
    assert len(frames) == 10
    assert frames[-1].timestamp_s == pytest.approx(450 / (24000 / 1001), abs=1e-3)


def test_shared_wolfgang_cut_to_a_third(shared_dir: Path, tmp_path: Path) -> None:
    src = shared_dir / "videos" / "WolfgangLanger_Pexels.mp4"
    if not src.is_file():
        pytest.skip(f"{src} not found")
    data = src.read_bytes()
    path = tmp_path / "wolfgang_third.mp4"
    path.write_bytes(data[: len(data) // 3])
    for threads in (0, 1):
        video, frames = decode_all(path, FrameSampler(every=1000), threads=threads)
        assert video.frames_decoded == 145  # plain container.decode() raises after 143
        assert video.error and "cut short" in video.error


def test_shared_face_noface_hevc_mov(shared_dir: Path) -> None:
    path = shared_dir / "videos" / "face_noface.mov"
    if not path.is_file():
        pytest.skip(f"{path} not found")
    video, frames = decode_all(path, FrameSampler(every=40))
    assert video.info.codec == "hevc"
    assert (video.info.width, video.info.height) == (960, 540)
    assert video.frames_decoded == 169 and video.error is None
    assert frames[0].image.shape == (540, 960, 3)


def test_face_clip_helper(clips_dir: Path) -> None:
    """make_face_clip writes a decodable clip whose pasted-face boxes stay inside the frame."""
    skimage_data = pytest.importorskip("skimage.data")
    spec = clips.make_face_clip(clips_dir / "face.mp4", skimage_data.astronaut(), n_frames=12,
                                fps=24, size=(320, 240))
    video, frames = decode_all(spec.path)
    assert len(frames) == 12 and video.error is None
    assert len(spec.boxes) == 12
    assert all(0 <= x1 < x2 <= 320 and 0 <= y1 < y2 <= 240 for x1, y1, x2, y2 in spec.boxes)
    assert len({b for b in spec.boxes}) > 1  # it moves
