"""Small, stateless PyAV helpers shared by the decoder, the segment planner and the report's
thumbnails: stream choice, time, display rotation, RGB conversion, FFmpeg's error wording."""

from __future__ import annotations

import logging
import math
from fractions import Fraction

import av
import numpy as np

from .base import VideoInfo

# Errors from av.open / decoding. av.FFmpegError covers every FFmpeg error code; the others are
# raised by PyAV itself for odd inputs (bad metadata encodings, unsupported formats).
AV_ERRORS: tuple[type[BaseException], ...] = (av.FFmpegError, OSError, ValueError, UnicodeError)


def pts_seconds(pts: int, start_pts: int | None, time_base: Fraction) -> float:
    """Seconds of ``pts`` since the stream start; the one formula decode and planning share."""
    return float((pts - (start_pts or 0)) * time_base)


def select_video_stream(container: av.container.InputContainer) -> av.video.stream.VideoStream | None:
    """The first real video stream of ``container`` (cover art is not video), or ``None``."""
    return next((s for s in container.streams.video
                 if not (s.disposition & av.stream.Disposition.attached_pic)), None)


def rotate_to_display(image: np.ndarray, rotation: int) -> np.ndarray:
    """Rotate a stored frame to how a player displays it.

    ``rotation`` is FFmpeg's display-matrix angle, counter-clockwise degrees, as returned by
    ``av_display_rotation_get`` / PyAV's ``VideoFrame.rotation`` and written by
    ``VideoStream.set_display_rotation``. The ``ffmpeg`` CLI's autorotate computes
    ``theta = -rotation`` and turns the picture *clockwise* by ``theta`` (``theta == 90`` →
    ``transpose=clock``), i.e. it turns it counter-clockwise by ``rotation``. ``np.rot90`` with
    ``k > 0`` turns counter-clockwise too, so the displayed image is ``np.rot90(image,
    rotation // 90)``. Example: a phone held upright records landscape pixels with rotation
    -90 (= 270, legacy ``rotate=90`` tag); the player turns them 90° clockwise into portrait.
    Mirroring flags in the matrix are not applied (PyAV reports only the angle).
    """
    k = (rotation // 90) % 4
    return image if k == 0 else np.rot90(image, k)


def normalise_rotation(degrees: float | int | None) -> int:
    """Round a display angle to a multiple of 90 in [0, 360) (``None``/NaN → 0)."""
    if degrees is None or not math.isfinite(degrees):
        return 0
    return int(round(degrees / 90.0)) * 90 % 360


def to_rgb(frame: av.VideoFrame) -> np.ndarray:
    """Convert a decoded frame to an H×W×3 uint8 RGB array (swscale; the costly step)."""
    return frame.to_ndarray(format="rgb24")


def av_reason(exc: BaseException) -> str:
    """FFmpeg's sentence for an av error ("Invalid data found when processing input")."""
    text = getattr(exc, "strerror", None) or str(exc) or type(exc).__name__
    return str(text).rstrip(".")


def quiet_ffmpeg() -> None:
    """Keep FFmpeg's per-packet warnings out of terminals and worker logs: the problems that
    matter reach the user through the videos table (``status``/``error``)."""
    av.logging.set_level(av.logging.PANIC)
    logging.getLogger("libav").setLevel(logging.ERROR)


def describe_stream(path: str, container: av.container.InputContainer,
                    stream: av.video.stream.VideoStream,
                    first: av.VideoFrame) -> tuple[VideoInfo, float | None]:
    """The :class:`VideoInfo` of ``stream`` (displayed size from the ``first`` frame's display
    rotation), and the duration the video stream itself promises in seconds (its own, or the
    container's when the container holds only this stream; ``None`` when unknown), which the
    truncation check compares with where decoding ended."""
    rotation = normalise_rotation(getattr(first, "rotation", 0))
    width, height = first.width, first.height
    if rotation in (90, 270):
        width, height = height, width
    rate = stream.average_rate or stream.guessed_rate
    stream_s: float | None = None
    if stream.duration and stream.time_base:
        stream_s = float(stream.duration * stream.time_base)
    elif container.duration and len(container.streams) == 1:
        stream_s = container.duration / av.time_base
    duration = stream_s
    if duration is None and container.duration:
        duration = container.duration / av.time_base
    info = VideoInfo(path=path, width=int(width), height=int(height), rotation=rotation,
                     fps=float(rate) if rate else None, duration_s=duration,
                     frame_count=int(stream.frames) if stream.frames else None,
                     codec=stream.codec_context.name)
    return info, stream_s
