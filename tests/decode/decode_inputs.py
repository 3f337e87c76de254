"""Writers for the small inputs of the geometry, time and truncation tests
(``test_geometry_time.py``, ``test_duration_truncation.py``): each writes a real file with PyAV
the way a camera, a muxer or a broken tool would; :func:`decode` reads one back whole.

* :func:`write_video`: any container, any display matrix (rotation + mirrors, through
  ``VideoStream.set_display_rotation``, which writes the MP4 ``tkhd`` matrix / Matroska
  projection as FFmpeg does), a sample aspect ratio (h264 VUI, MP4 ``pasp``), chosen pts,
  a time base, muxer options, and an interleaved audio track (AAC or MP2) of any length.
* :func:`stored_from_displayed`: the stored pixels that *display* as a given picture.
* :func:`cut_before_video_packet`: cut a file at the byte where a video packet starts.
* :func:`hide_duration_tags`: rename Matroska ``DURATION`` tags, as muxers that write their
  tags at the end of the file leave a truncated file without them.
"""

from __future__ import annotations

from collections.abc import Sequence
from fractions import Fraction
from pathlib import Path
from typing import Any

import av
import numpy as np


def stored_from_displayed(image: np.ndarray, rotation: int = 0, hflip: bool = False,
                          vflip: bool = False) -> np.ndarray:
    """Stored pixels that show as ``image`` after a counter-clockwise ``rotation`` followed by
    the mirrors (the inverse of what a player does)."""
    out = image
    if vflip:
        out = out[::-1]
    if hflip:
        out = out[:, ::-1]
    return np.ascontiguousarray(np.rot90(out, -(rotation // 90)))


def write_video(path: Path, frames: Sequence[np.ndarray], fps: int = 10, *,
                fmt: str | None = None, codec: str = "libx264", rotation: int = 0,
                hflip: bool = False, vflip: bool = False, sar: Fraction | None = None,
                pts: Sequence[int] | None = None, time_base: Fraction | None = None,
                options: dict[str, str] | None = None, audio_s: float | None = None,
                gop: int | None = None, matrix: Sequence[int] | None = None,
                audio_codec: str = "aac") -> Path:
    """Encode ``frames`` (stored RGB arrays) into ``path``; ``pts`` in ``time_base`` units
    (default ``0, 1, 2…`` in 1/fps). ``audio_s``: add that many seconds of audio (``audio_codec``: AAC, or mp2…), interleaved.
    ``gop``: a keyframe exactly every ``gop`` frames (x264), so the clip can be cut.
    ``matrix``: a raw display matrix (9 ints, FFmpeg layout: 16.16 fixed point, the last
    column 2.30) instead of ``rotation``/``hflip``/``vflip``, e.g. with a translation."""
    h, w = frames[0].shape[:2]
    tb = time_base or Fraction(1, fps)
    pts = list(pts) if pts is not None else [int(i / (fps * tb)) for i in range(len(frames))]
    rate = 8000 if audio_codec == "aac" else 16000  # mp2 has no 8 kHz
    with av.open(str(path), "w", format=fmt, options=options or {}) as out:
        stream = out.add_stream(codec, rate=fps)
        stream.width, stream.height, stream.pix_fmt = w, h, "yuv420p"
        stream.options = {"preset": "veryfast", "crf": "18"} if codec == "libx264" else {}
        if gop:
            stream.options["x264-params"] = f"keyint={gop}:min-keyint={gop}:scenecut=0"
        stream.codec_context.time_base = tb
        stream.time_base = tb
        if sar is not None:
            stream.codec_context.sample_aspect_ratio = sar
        if matrix is not None:
            stream.set_display_matrix(matrix)
        elif rotation or hflip or vflip:
            stream.set_display_rotation(rotation, hflip=hflip, vflip=vflip)
        audio = None
        if audio_s:
            audio = out.add_stream(audio_codec, rate=rate)
            audio.layout = "mono"
            audio.format = "fltp" if audio_codec == "aac" else "s16"
        samples_done = 0
        n_samples = int((audio_s or 0) * rate)

        def audio_until(t: float) -> None:
            nonlocal samples_done
            while audio is not None and samples_done < min(n_samples, int(t * rate)):
                n = min(1024, n_samples - samples_done)
                fmt = audio.format.name
                chunk = np.zeros((1, n), np.float32 if fmt == "fltp" else np.int16)
                af = av.AudioFrame.from_ndarray(chunk, format=fmt, layout="mono")
                af.rate, af.pts = rate, samples_done
                samples_done += n
                for packet in audio.encode(af):
                    out.mux(packet)

        for p, img in zip(pts, frames):
            frame = av.VideoFrame.from_ndarray(np.ascontiguousarray(img), format="rgb24")
            frame.pts, frame.time_base = p, tb
            for packet in stream.encode(frame):
                out.mux(packet)
            audio_until(float(p * tb) + 1 / fps)
        for packet in stream.encode(None):
            out.mux(packet)
        if audio is not None:
            audio_until(float(n_samples) / rate + 1)
            for packet in audio.encode(None):
                out.mux(packet)
    return path


def cut_before_video_packet(path: Path, k: int, out: Path) -> Path:
    """Copy ``path`` to ``out`` cut at the first byte of its ``k``-th video packet (0-based,
    file order): the file ends before that packet, the way an interrupted download ends."""
    with av.open(str(path)) as container:
        stream = container.streams.video[0]
        positions = [p.pos for p in container.demux(stream) if p.size and p.pos is not None]
    out.write_bytes(path.read_bytes()[: positions[k]])
    return out


def hide_duration_tags(path: Path) -> Path:
    """Rename every Matroska ``DURATION`` tag (same length, so the file stays valid): the
    track durations are then unknown, as in a truncated file whose muxer wrote its tags last."""
    data = path.read_bytes()
    assert b"DURATION" in data
    path.write_bytes(data.replace(b"DURATION", b"XURATION"))
    return path


def decode(path: Path) -> tuple[Any, list[Any]]:
    """``(video, frames)`` of a whole decode of ``path`` with ferbatch's decoder."""
    from ferbatch.decode import open_video

    with open_video(path) as video:
        frames = list(video.frames())
    return video, frames


def corner_image(w: int = 64, h: int = 48) -> np.ndarray:
    """Grey picture with a red block in the displayed top-left corner (orientation probe)."""
    img = np.full((h, w, 3), 128, np.uint8)
    img[: h // 3, : w // 4] = (230, 20, 20)
    return img
