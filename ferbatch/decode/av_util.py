"""Small, stateless PyAV helpers shared by the decoder, the segment planner and the report's
thumbnails: stream choice, time, display rotation, RGB conversion, FFmpeg's error wording, and
the description of a stream (:func:`describe_stream`)."""

from __future__ import annotations

import logging
import math
from dataclasses import dataclass
from fractions import Fraction

import av
import numpy as np

from .base import VideoInfo
from .display import (
    DisplayTransform,
    display_size,
    format_sar,
    frame_transform,
    sample_aspect_ratio,
)
from .timing import stream_duration

#: FFmpeg's demuxers of raw video elementary streams: their average frame rate is their own
#: ``-framerate`` option (25 by default), not the stream's
ELEMENTARY_STREAM_FORMATS = frozenset({"h264", "hevc", "m4v", "mpegvideo", "vvc", "avs2", "cavsvideo"})

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
    This handles a pure rotation only; :mod:`ferbatch.decode.display` handles the whole
    display matrix (mirrors too) and the sample aspect ratio.
    """
    k = (rotation // 90) % 4
    return image if k == 0 else np.rot90(image, k)


def normalise_rotation(degrees: float | int | None) -> int:
    """Round a display angle to a multiple of 90 in [0, 360) (``None``/NaN → 0)."""
    if degrees is None or not math.isfinite(degrees):
        return 0
    return int(round(degrees / 90.0)) * 90 % 360


def to_rgb(frame: av.VideoFrame, size: tuple[int, int] | None = None) -> np.ndarray:
    """Convert a decoded frame to an H×W×3 uint8 RGB array (swscale; the costly step),
    resampled to ``size`` = (width, height) in the same pass when given (bilinear)."""
    if size is None:
        return frame.to_ndarray(format="rgb24")
    return frame.to_ndarray(format="rgb24", width=size[0], height=size[1])


def display_frame(frame: av.VideoFrame, stream: av.video.stream.VideoStream,
                  rotation: int | None = None) -> np.ndarray:
    """One decoded frame as the decoder shows it (H×W×3 uint8 RGB): resampled to the
    stream's sample aspect ratio, turned and mirrored by the frame's display matrix
    (:mod:`.display`). ``rotation`` (e.g. the videos table's) overrides the angle; the
    frame's mirror is kept only when the angles agree."""
    transform = frame_transform(frame)
    if rotation is not None and int(rotation) % 360 != transform.rotation:
        transform = DisplayTransform(int(rotation) % 360)
    sar = sample_aspect_ratio(stream.sample_aspect_ratio, stream.codec_context.sample_aspect_ratio)
    size = display_size(frame.width, frame.height, sar)
    image = to_rgb(frame, size if size != (frame.width, frame.height) else None)
    return np.ascontiguousarray(transform.apply(image))


def av_reason(exc: BaseException) -> str:
    """FFmpeg's sentence for an av error ("Invalid data found when processing input")."""
    text = getattr(exc, "strerror", None) or str(exc) or type(exc).__name__
    return str(text).rstrip(".")


def quiet_ffmpeg() -> None:
    """Keep FFmpeg's per-packet warnings out of terminals and worker logs: the problems that
    matter reach the user through the videos table (``status``/``error``).

    PyAV's own "ignore everything" callback (level ``None``), not a level such as ``PANIC``:
    any level installs PyAV's Python callback, which still passes every ``AV_LOG_ERROR``
    message to Python and so takes the GIL from FFmpeg's decoder threads. A frame thread that
    logs while the main thread frees the codec context (``avcodec_free_context``, called with
    the GIL held) then waits for the GIL forever: the process hangs when a video is closed
    (seen with threaded vp9/hevc decoding; PyAV documents the same deadlock for threads and
    logging). Error *codes* still reach the exceptions (``av_reason``)."""
    av.logging.set_level(None)
    logging.getLogger("libav").setLevel(logging.ERROR)


@dataclass(frozen=True)
class StreamDescription:
    """What :func:`describe_stream` finds: the :class:`VideoInfo`, the duration the video
    stream itself promises (``None``: unknown; the truncation check compares it with where
    decoding ended), the display ``transform``, the size the stored frame is resampled to
    for its sample aspect ratio (``None``: not resampled), the nominal frame duration in
    seconds (``None``: unknown)."""

    info: VideoInfo
    stream_s: float | None
    transform: DisplayTransform
    scaled_size: tuple[int, int] | None
    frame_s: float | None


def describe_stream(path: str, container: av.container.InputContainer,
                    stream: av.video.stream.VideoStream,
                    first: av.VideoFrame) -> StreamDescription:
    """Describe ``stream`` from its header and its ``first`` decoded frame: the display
    matrix and sample aspect ratio (:mod:`.display`) give the displayed size, the video
    stream's own duration and frame rate come from :mod:`.timing`. A stream without
    timestamps (raw h264) is timed by the codec (the frame's duration, the SPS frame rate),
    not by the demuxer's 25 fps guess; so is the frame rate of any raw elementary stream
    (``.m4v``/``.m2v`` ones have pts from the parser, at the codec's rate)."""
    transform = frame_transform(first)
    sar = sample_aspect_ratio(stream.sample_aspect_ratio,
                              stream.codec_context.sample_aspect_ratio)
    width, height = display_size(first.width, first.height, sar)
    scaled = (width, height) if (width, height) != (first.width, first.height) else None
    if transform.swaps_axes:
        width, height = height, width
    no_pts = first.pts is None and stream.start_time is None
    rate: Fraction | None = stream.average_rate or stream.guessed_rate
    if no_pts:
        tb = first.time_base or stream.time_base
        if first.duration and tb:
            rate = 1 / (first.duration * tb)
        else:
            rate = stream.codec_context.framerate or stream.guessed_rate or rate
    elif container.format.name in ELEMENTARY_STREAM_FORMATS:
        # the demuxer reports its own -framerate option (25) as the average rate, whatever the
        # codec says; the parser's pts (.m4v, .m2v) follow the codec's timing (sequence header)
        rate = stream.codec_context.framerate or stream.guessed_rate or rate
    stream_s = stream_duration(container, stream)
    info = VideoInfo(path=path, width=int(width), height=int(height), rotation=transform.rotation,
                     fps=float(rate) if rate else None, duration_s=stream_s,
                     frame_count=int(stream.frames) if stream.frames else None,
                     codec=stream.codec_context.name, flip=transform.flip,
                     sample_aspect_ratio=format_sar(sar))
    return StreamDescription(info, stream_s, transform, scaled, 1.0 / float(rate) if rate else None)
