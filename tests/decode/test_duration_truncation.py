"""Decode: the video stream's own duration and truncation hidden by another stream (issue 10,
kinds 5 and 6), each from a generated input (``decode_inputs.py``, PyAV).
"""

from __future__ import annotations

import pytest
from decode_inputs import corner_image, cut_before_video_packet, decode, hide_duration_tags, write_video

from ferbatch import process_video
from ferbatch.config import RunConfig
from ferbatch.segments import header_duration

import clips


# --------------------------------------------------------------------------- 5 duration
@pytest.mark.parametrize("ext", [".mkv", ".mp4", ".mov", ".avi", ".webm"])
def test_duration_is_the_video_streams(ext, tmp_path) -> None:
    """2.0 s of video with 5 s of audio: duration_s 2.0 in every container, also from the
    header the segment planner reads (.webm: vp9 alone, WebM takes no AAC)."""
    codec = "libvpx-vp9" if ext == ".webm" else "libx264"
    if not clips.encoder_available(codec):
        pytest.skip(f"{codec} not in this PyAV build")
    audio = None if ext == ".webm" else 5.0
    path = write_video(tmp_path / f"a{ext}", [corner_image()] * 20, fps=10, codec=codec,
                       audio_s=audio)
    video, _ = decode(path)
    assert video.info.duration_s == pytest.approx(2.0, abs=0.01)
    assert header_duration(path) == pytest.approx(2.0, abs=0.01)
    assert video.error is None


def test_duration_without_tags_comes_from_the_last_frame(tmp_path) -> None:
    """.mkv whose DURATION tags are gone (muxers that write tags last): the header has no
    video duration, the decoded last frame's end gives it (not the 5 s audio)."""
    path = write_video(tmp_path / "a.mkv", [corner_image()] * 20, fps=10, audio_s=5.0)
    hide_duration_tags(path)
    assert header_duration(path) is None
    video, _ = decode(path)
    assert video.info.duration_s == pytest.approx(2.0)
    assert video.error is None  # the video simply ends before the audio: not cut


# --------------------------------------------------------------------------- 6 hidden cut
@pytest.mark.parametrize("ext", [".mkv", ".mp4", ".mov", ".avi"])
def test_truncation_hidden_by_audio_is_partial(ext, tmp_path, stages) -> None:
    """h264 + AAC, 40 video packets at 10 fps, cut before the 21st: partial with the reason,
    20 frames kept, in mkv, mp4 (moov first), mov and avi."""
    opts = {"movflags": "faststart"} if ext in (".mp4", ".mov") else None
    full = write_video(tmp_path / f"full{ext}", [corner_image()] * 40, fps=10, audio_s=4.0,
                       options=opts)
    cut = cut_before_video_packet(full, 20, tmp_path / f"cut{ext}")
    result = process_video(cut, RunConfig(device="cpu"), stages)
    row = result.row
    assert row["status"] == "partial", row
    assert f"cut{ext}" in row["error"] and ("ends early" in row["error"] or "cut short" in row["error"])
    assert 17 <= row["frames_decoded"] <= 20
    full_row = process_video(full, RunConfig(device="cpu"), stages).row
    assert (full_row["status"], full_row["frames_decoded"]) == ("ok", 40)


@pytest.mark.parametrize("codec,audio_s", [("mpeg4", 4.0), ("libx264", 4.0), ("mpeg4", None)])
def test_avi_cut_at_a_packet_boundary_is_partial_by_its_header(codec, audio_s, tmp_path) -> None:
    """Variant: an AVI (mpeg4 or h264, with MP2 audio or none) cut at a packet boundary loses
    its index; FFmpeg then measures the stream from the packets left (2.0–2.2 s with MP2
    audio), but the header's 40 frames at 10 fps say 4 s: partial, of 4.00 s."""
    full = write_video(tmp_path / "full.avi", [corner_image()] * 40, fps=10, audio_s=audio_s,
                       codec=codec, audio_codec="mp2")
    cut = cut_before_video_packet(full, 20, tmp_path / "cut.avi")
    video, frames = decode(cut)
    assert len(frames) == 20
    assert video.error is not None and "ends early" in video.error and "of 4.00 s" in video.error
    assert video.info.duration_s == pytest.approx(4.0)
    whole, frames = decode(full)
    assert whole.error is None and len(frames) == 40


def test_truncation_without_duration_tags_is_partial(tmp_path) -> None:
    """Variant: the cut .mkv has lost its DURATION tags too: the file's data stops at 2 s of
    the 4 s its header promises, with the video running to the cut: still partial."""
    full = write_video(tmp_path / "full.mkv", [corner_image()] * 40, fps=10, audio_s=4.0)
    cut = hide_duration_tags(cut_before_video_packet(full, 20, tmp_path / "cut.mkv"))
    video, frames = decode(cut)
    assert len(frames) == 20
    assert video.error is not None and "ends early" in video.error


def test_only_an_avi_shorter_than_its_riff_header_counts_as_cut(tmp_path) -> None:
    """The header's frame count is trusted over FFmpeg's measured duration only for an AVI
    whose data stops before its RIFF size: not for a complete AVI, nor for other containers."""
    import av

    from ferbatch.decode.timing import avi_cut_short

    full = write_video(tmp_path / "full.avi", [corner_image()] * 20, fps=10)
    cut = cut_before_video_packet(full, 10, tmp_path / "cut.avi")
    mp4 = write_video(tmp_path / "v.mp4", [corner_image()] * 20, fps=10)
    flags = {}
    for path in (full, cut, mp4):
        with av.open(str(path)) as container:
            flags[path.name] = avi_cut_short(container)
    assert flags == {"full.avi": False, "cut.avi": True, "v.mp4": False}
