"""Decode: geometry and time (issue 10, kinds 1-4), each from a generated input.

1. display matrix with mirrors; 2. non-square pixels (SAR); 3. streams without timestamps;
4. missing / negative pts at the start (kinds 5 and 6, duration and hidden truncation:
``test_duration_truncation.py``). Inputs are written by ``decode_inputs.py`` (PyAV).
"""

from __future__ import annotations

import itertools
from fractions import Fraction
from pathlib import Path

import numpy as np
import pytest
from decode_inputs import (
    corner_image,
    cut_before_video_packet,
    decode,
    stored_from_displayed,
    write_video,
)

from ferbatch import process_video
from ferbatch.config import DecodeConfig, RunConfig
from ferbatch.decode import open_video
from ferbatch.decode.display import DisplayTransform, transform_from_matrix
from ferbatch.decode.timing import sort_pts
from ferbatch.segments import open_segment, plan_segments

import clips


def _red_corner(img: np.ndarray) -> str:
    h, w = img.shape[:2]
    corners = {"tl": img[: h // 6, : w // 8], "tr": img[: h // 6, -w // 8:],
               "bl": img[-h // 6:, : w // 8], "br": img[-h // 6:, -w // 8:]}
    return max(corners, key=lambda k: corners[k][..., 0].mean() - corners[k][..., 1].mean())


# --------------------------------------------------------------------------- 1 display matrix
@pytest.mark.parametrize("rotation,hflip,vflip", list(itertools.product((0, 90, 180, 270),
                                                                         (False, True),
                                                                         (False, True))))
def test_every_display_matrix_shows_frames_as_displayed(rotation, hflip, vflip, tmp_path) -> None:
    """All 16 rotate/flip combinations (8 orientations): the red block written into the
    displayed top-left corner comes back there, size as displayed, transform recorded."""
    shown = corner_image()
    stored = stored_from_displayed(shown, rotation, hflip, vflip)
    path = write_video(tmp_path / "m.mp4", [stored] * 2, rotation=rotation, hflip=hflip,
                       vflip=vflip)
    video, frames = decode(path)
    assert frames[0].image.shape[:2] == (48, 64)
    assert (video.info.width, video.info.height) == (64, 48)
    assert _red_corner(frames[0].image) == "tl"
    t = DisplayTransform(video.info.rotation, video.info.flip)
    expected = np.rot90(np.arange(12).reshape(3, 4), rotation // 90)
    expected = expected[:, ::-1] if hflip else expected
    expected = expected[::-1] if vflip else expected
    assert np.array_equal(t.apply(np.arange(12).reshape(3, 4)), expected)


def test_matrix_names_are_canonical() -> None:
    """A mirror is not reported as a turn: hflip matrix (a = -1) is rotation 0 + horizontal."""
    one = 1 << 16
    assert transform_from_matrix((-one, 0, 0, 0, one, 0, 0, 0, 1 << 30)) == \
        DisplayTransform(0, "horizontal")
    assert transform_from_matrix((one, 0, 0, 0, -one, 0, 0, 0, 1 << 30)) == \
        DisplayTransform(0, "vertical")
    assert transform_from_matrix((-one, 0, 0, 0, -one, 0, 0, 0, 1 << 30)) == DisplayTransform(180)
    assert transform_from_matrix(None) == DisplayTransform()


#: the issue's tkhd matrix: a = -1, x-translation = width (640), 16.16 fixed point
MIRROR_640 = (-1 << 16, 0, 0, 0, 1 << 16, 0, 640 << 16, 0, 1 << 30)


@pytest.mark.parametrize("name,kw,matrix", [
    ("hflip.mp4", {"hflip": True}, MIRROR_640),
    ("rot90-hflip.mov", {"rotation": 90, "hflip": True}, None)])
def test_mirrored_face_is_analysed_as_displayed(name, kw, matrix, tmp_path, stages,
                                                face_image) -> None:
    """Issue example (640x360 h264, tkhd horizontal mirror with x-translation = width) and a
    rotate-90 + mirror .mov: the smiling face is found upright, happy, at its displayed
    position; the videos row says rotation and flip."""
    shown = clips.face_scene(face_image, (40, 60), size=(640, 360), face_h=240)
    path = write_video(tmp_path / name, [stored_from_displayed(shown, **kw)] * 3, matrix=matrix,
                       **kw)
    result = process_video(path, RunConfig(device="cpu"), stages)
    row = result.row
    assert row["status"] == "ok", row["error"]
    assert (row["width"], row["height"]) == (640, 360)
    assert (row["rotation"], row["flip"]) == (kw.get("rotation", 0), "horizontal")
    faces = result.faces.to_pydict()
    assert len(faces["x1"]) == 3
    assert set(faces["emotion"]) == {"happy"}
    cx = (np.array(faces["x1"]) + np.array(faces["x2"])) / 2
    assert np.all(cx < 320), cx  # the face is on the displayed left, not the stored right


# --------------------------------------------------------------------------- 2 SAR
@pytest.mark.parametrize("size,sar,shown", [((720, 576), Fraction(64, 45), (1024, 576)),
                                            ((352, 288), Fraction(16, 11), (512, 288)),
                                            ((400, 240), Fraction(3, 4), (300, 240))])
def test_non_square_pixels_are_resampled_to_display(size, sar, shown, tmp_path) -> None:
    """PAL 16:9 (64:45, the issue's), CIF 16:11 (mkv) and a squeezing SAR 3:4: frames come at
    the display size, the red block keeps its displayed proportion."""
    w, h = size
    stored = corner_image(w, h)
    ext = ".mkv" if sar == Fraction(16, 11) else ".mp4"
    path = write_video(tmp_path / f"sar{ext}", [stored] * 2, sar=sar)
    video, frames = decode(path)
    assert (video.info.width, video.info.height) == shown
    assert frames[0].image.shape == (shown[1], shown[0], 3)
    assert video.info.sample_aspect_ratio == f"{sar.numerator}:{sar.denominator}"
    red = frames[0].image[..., 0] > 180
    cols = np.flatnonzero(red.any(axis=0))
    assert abs((cols[-1] + 1) - shown[0] / 4) <= 3  # block spans a quarter of the width


def test_sar_face_box_in_display_pixels(tmp_path, stages, face_image) -> None:
    """720x576 SAR 64:45: row width 1024, the face box in displayed pixels (not 70 % of 720)."""
    shown = clips.face_scene(face_image, (600, 150), size=(1024, 576), face_h=300)
    import cv2
    stored = cv2.resize(shown, (720, 576), interpolation=cv2.INTER_AREA)
    path = write_video(tmp_path / "pal.mp4", [stored] * 2, sar=Fraction(64, 45))
    result = process_video(path, RunConfig(device="cpu"), stages)
    row = result.row
    assert (row["status"], row["width"], row["height"], row["sample_aspect_ratio"]) == \
        ("ok", 1024, 576, "64:45")
    faces = result.faces.to_pydict()
    assert len(faces["x1"]) == 2
    face_w = 300 * face_image.shape[1] / face_image.shape[0]
    cx = (np.array(faces["x1"]) + np.array(faces["x2"])) / 2
    assert np.all(np.abs(cx - (600 + face_w / 2)) < 40), cx


# --------------------------------------------------------------------------- 3 no timestamps
@pytest.mark.parametrize("fmt,ext,fps", [("h264", ".h264", 10), ("hevc", ".hevc", 8)])
def test_elementary_stream_is_timed_by_the_codec(fmt, ext, fps, tmp_path) -> None:
    """Raw h264 (the issue's: 20 frames at 10 fps) and raw hevc at 8 fps: no pts at all; fps
    from the codec, timestamps i/fps, the stream says time was inferred."""
    codec = "libx264" if fmt == "h264" else "libx265"
    if not clips.encoder_available(codec):
        pytest.skip(f"{codec} not in this PyAV build")
    path = write_video(tmp_path / f"raw{ext}", [corner_image()] * 20, fps=fps, fmt=fmt,
                       codec=codec)
    video, frames = decode(path)
    assert video.info.fps == pytest.approx(fps)
    np.testing.assert_allclose([f.timestamp_s for f in frames], np.arange(20) / fps, atol=1e-6)
    assert (video.time_source, video.frames_time_inferred) == ("durations", 20)
    assert video.info.duration_s == pytest.approx(20 / fps)
    assert video.row_fields()["time_source"] == "durations"


@pytest.mark.parametrize("fmt,codec,ext,fps", [
    ("m4v", "mpeg4", ".m4v", 15), ("m4v", "mpeg4", ".m4v", Fraction(30000, 1001)),
    ("m4v", "mpeg4", ".m4v", Fraction(25, 2)), ("mpeg2video", "mpeg2video", ".m2v", 24),
    ("mpeg2video", "mpeg2video", ".m2v", Fraction(30000, 1001))])
def test_raw_streams_with_parser_pts_report_their_real_frame_rate(fmt, codec, ext, fps,
                                                                 tmp_path) -> None:
    """Variant: raw MPEG-4 part 2 (.m4v) and MPEG-2 (.m2v) streams get pts from FFmpeg's parser
    while the demuxer reports its 25 fps default as the average rate, and mpeg4's header gives
    30000 for 29.97 fps and its frame durations 1/25 for 12.5 fps: the row's fps and duration
    follow the timestamps i/fps."""
    path = write_video(tmp_path / f"raw{ext}", [corner_image()] * 20, fps=fps, fmt=fmt,
                       codec=codec)
    video, frames = decode(path)
    np.testing.assert_allclose([f.timestamp_s for f in frames],
                               np.arange(20) / float(fps), atol=1e-5)
    assert video.info.fps == pytest.approx(float(fps), rel=1e-5)
    assert video.row_fields()["fps"] == pytest.approx(float(fps), rel=1e-5)
    assert video.info.duration_s == pytest.approx(20 / float(fps), rel=1e-4)


def test_avi_with_b_frames_is_timed_in_presentation_order(tmp_path) -> None:
    """Variant: AVI stores no pts; FFmpeg numbers h264 packets in decode order, so B-frames
    come out with permuted numbers (1, 4, 3, 5, 2, …). Times are sorted back: 1/fps apart."""
    path = write_video(tmp_path / "b.avi", [corner_image()] * 20, fps=10)
    video, frames = decode(path)
    ts = np.array([f.timestamp_s for f in frames])
    np.testing.assert_allclose(np.diff(ts), 0.1, atol=1e-6)
    assert 0.0 <= ts[0] <= 0.1 + 1e-6  # FFmpeg's own numbering may start one frame late
    assert video.info.duration_s == pytest.approx(2.0)


def test_sort_pts_restores_presentation_order() -> None:
    from types import SimpleNamespace as F

    frames = [F(pts=p) for p in (1, 4, 3, 5, 2, 8, 7, 9, 6, None, 10)]
    assert [p for _, p in sort_pts(frames, 4)] == [1, 2, 3, 4, 5, 6, 7, 8, 9, None, 10]
    assert [p for _, p in sort_pts([F(pts=p) for p in (0, 2, 5)], 4)] == [0, 2, 5]


# --------------------------------------------------------------------------- 4 negative pts
@pytest.mark.parametrize("first_pts,n_neg", [(-5, 5), (-2, 2)])
def test_negative_start_pts_give_distinct_increasing_times(first_pts, n_neg, tmp_path) -> None:
    """.mkv with the first frames at negative pts (time base 1/10, avoid_negative_ts disabled:
    the demuxer hands them over without pts): times i/10, strictly increasing; the frames
    with a pts keep their own time."""
    tb = Fraction(1, 10)
    path = write_video(tmp_path / "neg.mkv", [corner_image()] * 20, fps=10, time_base=tb,
                       pts=range(first_pts, first_pts + 20),
                       options={"avoid_negative_ts": "disabled"})
    video, frames = decode(path)
    ts = np.array([f.timestamp_s for f in frames])
    assert len(ts) == 20 and np.all(np.diff(ts) > 0)
    np.testing.assert_allclose(ts, np.arange(20) / 10, atol=1e-6)
    assert video.time_source == "pts+durations"
    assert 1 <= video.frames_time_inferred <= n_neg
    assert video.info.duration_s == pytest.approx(2.0)


def test_repeated_pts_are_spread_by_frame_duration() -> None:
    """A pts that does not increase is replaced by the previous time plus its duration."""
    from types import SimpleNamespace as F

    from ferbatch.decode.timing import Timeline

    frames = [F(pts=p, duration=1) for p in (0, 1, 1, 3, None, 5)]
    times = [t for _, t in Timeline(Fraction(1, 10), 0, 0.1).times(frames)]
    np.testing.assert_allclose(times, [0.0, 0.1, 0.2, 0.3, 0.4, 0.5])


# --------------------------------------------------------------------------- segments
@pytest.mark.parametrize("name,kw,shown", [
    ("mirror-sar.mkv", {"hflip": True, "sar": Fraction(16, 11), "audio_s": 3.0},
     (0, "horizontal", 140, 64)),
    ("rot90-vflip.mp4", {"rotation": 90, "vflip": True}, (270, "horizontal", 96, 64)),
])
def test_segments_decode_like_the_whole_video(name, kw, shown, tmp_path) -> None:
    """A mirrored, non-square (with audio) and a turned + mirrored clip cut into segments:
    every segment yields the frames, timestamps and displayed pixels of the whole decode."""
    geometry = {k: v for k, v in kw.items() if k in ("rotation", "hflip", "vflip")}
    images = [stored_from_displayed(clips.render_frame(i, (96, 64)), **geometry)
              for i in range(48)]
    path = write_video(tmp_path / name, images, fps=24, gop=12, **kw)
    decode_cfg = DecodeConfig()
    with open_video(path, decode_cfg) as video:
        whole = {f.index: (f.timestamp_s, f.image) for f in video.frames()}
        info = video.info
    assert (info.rotation, info.flip, info.width, info.height) == shown
    plan = plan_segments(path, RunConfig(), segment_s=0.5)
    assert plan.split, plan.reason
    seen = set()
    for span in plan.spans:
        with open_segment(path, span, decode_cfg) as seg:
            assert seg.info == info
            for f in seg.frames():
                t, img = whole[f.index]
                assert f.timestamp_s == pytest.approx(t, abs=1e-9)
                assert np.array_equal(f.image, img)
                if f.index >= span.first_index:
                    seen.add(f.index)
    assert seen == set(whole) == set(range(48))


# --------------------------------------------------------------------------- report thumbnails
@pytest.mark.parametrize("kw", [{"hflip": True, "sar": Fraction(4, 3)},
                                {"rotation": 90, "hflip": True}])
def test_thumbnails_cut_the_displayed_pixels(kw, tmp_path) -> None:
    """The report's thumbnails show frames as the decoder does: a box around the displayed
    top-left red block of a mirrored, non-square (or turned + mirrored) clip crops red."""
    import io

    from PIL import Image

    from ferbatch.report.thumbnails import ThumbRequest, extract_thumbnails

    geometry = {k: v for k, v in kw.items() if k in ("rotation", "hflip")}
    path = write_video(tmp_path / "t.mp4", [stored_from_displayed(corner_image(), **geometry)] * 2,
                       **kw)
    with open_video(path) as video:
        info = video.info
    w, h = info.width, info.height
    box = (0.0, 0.0, w / 4 - 4, h / 3 - 4)
    got = extract_thumbnails(path, [ThumbRequest(("a",), 0.0, box)], size=(w, h),
                             rotation=info.rotation)[("a",)]
    assert got.error is None
    crop = np.asarray(Image.open(io.BytesIO(got.jpeg)).convert("RGB")).astype(int)
    centre = crop[crop.shape[0] // 3: 2 * crop.shape[0] // 3, crop.shape[1] // 3: 2 * crop.shape[1] // 3]
    assert centre[..., 0].mean() > 180 and centre[..., 1].mean() < 80


# --------------------------------------------------------------------------- a whole run
def test_run_on_a_folder_records_geometry_and_time(tmp_path, stages) -> None:
    """A folder run (the local runner) picks up a raw .h264 stream, a negative-pts .mkv, a
    cut .mkv with audio and a mirrored .mp4: videos.parquet says how each was read, the frames
    table holds the inferred times, the cut one is partial and the run's exit code is 1."""
    import pandas as pd

    from ferbatch.runner.local import run

    src = tmp_path / "in"
    src.mkdir()
    img = corner_image()
    write_video(src / "raw.h264", [img] * 20, fps=10, fmt="h264")
    write_video(src / "neg.mkv", [img] * 20, fps=10, time_base=Fraction(1, 10),
                pts=range(-5, 15), options={"avoid_negative_ts": "disabled"})
    full = write_video(tmp_path / "full.mkv", [img] * 40, fps=10, audio_s=4.0)
    cut_before_video_packet(full, 20, src / "cut.mkv")
    write_video(src / "mirror.mp4", [stored_from_displayed(img, hflip=True)] * 5, hflip=True,
                sar=Fraction(4, 3))
    summary = run([src], tmp_path / "out", RunConfig(device="cpu"), stages=stages)
    assert summary.exit_code == 1
    videos = pd.read_parquet(tmp_path / "out" / "videos.parquet").set_index(
        pd.read_parquet(tmp_path / "out" / "videos.parquet")["path"].map(lambda p: Path(p).name))
    raw, neg, cut, mirror = (videos.loc[n] for n in ("raw.h264", "neg.mkv", "cut.mkv", "mirror.mp4"))
    assert (raw.status, raw.fps, raw.time_source, raw.frames_time_inferred) == ("ok", 10.0, "durations", 20)
    assert raw.duration_s == pytest.approx(2.0)
    assert (neg.status, neg.time_source, neg.duration_s) == ("ok", "pts+durations", pytest.approx(2.0))
    assert cut.status == "partial" and "ends early" in cut.error
    assert (mirror.status, mirror.rotation, mirror.flip, mirror.sample_aspect_ratio, mirror.width) == \
        ("ok", 0, "horizontal", "4:3", 85)
    frames = pd.read_parquet(tmp_path / "out" / "frames")
    ts = frames[frames["video_id"].astype(str) == raw.video_id].sort_values("frame_index")["timestamp_s"]
    np.testing.assert_allclose(ts.to_numpy(), np.arange(20) / 10, atol=1e-6)


def test_quiet_ffmpeg_never_calls_into_python_from_decoder_threads(tmp_path) -> None:
    """quiet_ffmpeg installs PyAV's no-op log callback (level None), not a level: any level
    sends FFmpeg's ERROR messages through Python, and a decoder thread logging while the
    codec context is freed then deadlocks on the GIL. Errors still name their reason."""
    import av

    from ferbatch.decode.av_util import quiet_ffmpeg
    from ferbatch.errors import VideoOpenError

    quiet_ffmpeg()
    assert av.logging.get_level() is None
    bad = tmp_path / "bad.mp4"
    bad.write_bytes(b"\x00" * 4096)
    with pytest.raises(VideoOpenError, match="bad.mp4: not a video file: Invalid data"):
        open_video(bad)
