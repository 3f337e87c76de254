"""PyAV (FFmpeg) decode backend.

Design notes, each one a pitfall met on real files:

* **Opening** checks the file, opens the container, picks the first real video stream (cover
  art is not video) and decodes the first frame right away. That frame tells the display
  rotation (FFmpeg attaches it to frames, PyAV exposes no stream side data) and proves the file
  really decodes, so every "this is not a usable video" case is a :class:`VideoOpenError` at
  open time, chained ``from`` the av exception, with a message naming the file.
* **Threading**: ``thread_type = "AUTO"`` (frame + slice threads) unless ``threads == 1``.
  Frames buffered in the decoder are drained with an explicit flush at end of file, also when
  reading stopped on an error, so threaded decoding yields the same frames as unthreaded.
* **Damage**: packets are demuxed and decoded one by one, so a packet that fails to decode is
  skipped and decoding goes on; after ``max_consecutive_errors`` failures in a row the rest is
  given up. An *incomplete last packet* (FFmpeg flags it corrupt when the file is cut short) is
  dropped instead of decoded: with frame threading, decoding it silently discards the frames
  still buffered before it. A file cut short may also simply end without any error (Matroska,
  AVI); that is caught by comparing where decoding ended with the duration (or frame count) the
  container promises. Either way :attr:`PyAVStream.error` says what happened and the iterator
  ends normally with everything decoded before. Positions in messages ("frame 143") are the
  frames output so far; with frame threading the decoder runs a few frames ahead, so they can
  differ by a few frames between thread settings. Some damage is concealed by FFmpeg without
  any error (garbled pixels, no message): that cannot be reported.
* **Geometry**: frames are resampled to their sample aspect ratio and turned/mirrored by their
  display matrix, as a player shows them (:mod:`ferbatch.decode.display`).
* **Time** is ``(pts - origin) * time_base`` (frame index ≠ time on VFR video), strictly
  increasing; frames without a usable pts get one from frame durations
  (:class:`~ferbatch.decode.timing.Timeline`).
* **Spans**: ``PyAVStream(path, span=FrameSpan(...))`` decodes one part of a video on its own
  (planned by :mod:`ferbatch.segments`): it seeks to a keyframe, decodes until the next span's
  keyframe, and yields frames with the same ``index``, ``timestamp_s`` and pixels as a decode of
  the whole file. Anything that contradicts the plan raises :class:`SpanMismatchError`.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from dataclasses import replace
from fractions import Fraction
from pathlib import Path

import av
import numpy as np

from ..config import DecodeConfig
from ..errors import DecodeError, SpanMismatchError, VideoOpenError
from .av_util import (
    AV_ERRORS,
    ELEMENTARY_STREAM_FORMATS,
    av_reason,
    describe_stream,
    pts_seconds,
    quiet_ffmpeg,
    rotate_to_display,
    select_video_stream,
    to_rgb,
)
from .base import Frame, FrameSampler, VideoStream
from .damage import DamageLog
from .packets import PacketReader
from .span import FrameSpan, SpanCheck
from .timing import Timeline, stream_duration

# re-exported: the names callers used before the helpers moved to av_util / span
__all__ = ["PyAVStream", "FrameSpan", "SpanMismatchError", "pts_seconds", "select_video_stream",
           "rotate_to_display", "quiet_ffmpeg"]
_AV_ERRORS = AV_ERRORS
_reason = av_reason

class PyAVStream(PacketReader, VideoStream):
    """A video opened with PyAV; see the module docstring for the behaviour on damaged files.

    ``threads``: decoder threads, 0 lets FFmpeg choose, 1 disables threading.
    ``max_consecutive_errors``: packets in a row that may fail to decode before the rest of the
    file is given up. Frames are read once: call :meth:`frames` a single time.
    ``span``: decode only that part of the video (see :class:`FrameSpan`); then
    :attr:`frames_decoded` counts the span's own frames, warm-up excluded.
    """

    def __init__(
        self, path: str | os.PathLike[str], threads: int = 0, max_consecutive_errors: int = 8,
        span: FrameSpan | None = None,
    ) -> None:
        self.path = str(path)
        self.span = span
        self._stop_pts = span.end_pts if span is not None else None
        self.threads = int(threads)
        self.max_consecutive_errors = max(1, int(max_consecutive_errors))
        self.frames_decoded = 0
        self._damage = DamageLog(self.max_consecutive_errors)
        self._container: av.container.InputContainer | None = None
        self._raw: Iterator[av.VideoFrame] | None = None
        self._first: av.VideoFrame | None = None
        self._gen: Iterator[Frame] | None = None
        self._started = False
        self._flushed = False
        self._last_t = 0.0
        self._conversion_stopped = False  # set by _display_image when it gives up
        self._open()

    @property
    def error(self) -> str | None:  # type: ignore[override]
        """Why decoding ended early or what it skipped (:class:`DamageLog`); ``None``: clean."""
        return self._damage.error

    @classmethod
    def from_config(cls, path: str | os.PathLike[str], config: DecodeConfig,
                    span: FrameSpan | None = None) -> PyAVStream:
        """Open ``path`` (or one ``span`` of it) with the threading and error budget of ``config``."""
        return cls(path, threads=config.threads, max_consecutive_errors=config.max_consecutive_errors,
                   span=span)

    # ------------------------------------------------------------------ opening
    def _fail_open(self, reason: str, cause: BaseException | None = None) -> VideoOpenError:
        self._close_container()
        err = VideoOpenError(f"{self.path}: {reason}")
        err.__cause__ = cause
        return err

    def _open(self) -> None:
        p = Path(self.path)
        if not p.exists():
            raise VideoOpenError(f"{self.path}: file not found")
        if not p.is_file():
            raise VideoOpenError(f"{self.path}: not a regular file")
        try:
            size = p.stat().st_size
        except OSError as exc:
            raise VideoOpenError(f"{self.path}: cannot read file: {_reason(exc)}") from exc
        if size == 0:
            raise VideoOpenError(f"{self.path}: empty file (0 bytes)")
        try:
            self._container = av.open(self.path, mode="r", metadata_errors="replace")
        except PermissionError as exc:
            raise VideoOpenError(f"{self.path}: cannot read file: {_reason(exc)}") from exc
        except _AV_ERRORS as exc:
            raise VideoOpenError(f"{self.path}: not a video file: {_reason(exc)}") from exc
        try:
            self._setup()
        except VideoOpenError:
            raise
        except _AV_ERRORS as exc:  # anything FFmpeg says while probing: still "cannot open"
            raise self._fail_open(f"not a video file: {_reason(exc)}", exc) from exc
        except BaseException:
            self._close_container()
            raise

    def _setup(self) -> None:
        container = self._container
        assert container is not None
        stream = select_video_stream(container)
        if stream is None:
            raise self._fail_open(self._no_video_reason(container))
        if stream.codec_context is None:
            raise self._fail_open("no decoder for its video codec")
        self._stream = stream
        cc = stream.codec_context
        if self.threads == 1:
            cc.thread_type = "NONE"
            cc.thread_count = 1
        else:
            cc.thread_type = "AUTO"
            cc.thread_count = self.threads  # 0: FFmpeg picks one per core
        self._tb = stream.time_base or Fraction(1, 90000)
        self._elementary = container.format.name in ELEMENTARY_STREAM_FORMATS

        # no duration of its own: learn where the file's data ends from every stream
        self.watch_other_streams = (stream_duration(container, stream) is None
                                    and len(container.streams) > 1 and bool(container.duration))
        self._raw = self._decode_packets()
        self._first = next(self._raw, None)
        if self._first is None:
            why = self.error or "the video stream holds no frames"
            raise self._fail_open(f"no decodable video frames ({why})")

        desc = describe_stream(self.path, container, stream, self._first)
        self.info, self._stream_duration_s = desc.info, desc.stream_s
        self._transform, self._scaled = desc.transform, desc.scaled_size
        first_pts = self._first.pts
        origin = None if first_pts is None else (
            first_pts if stream.start_time is None else min(first_pts, stream.start_time))
        self._timeline = Timeline(self._tb, stream.start_time, desc.frame_s, origin=origin)
        span = self.span
        if span is not None and span.key_pts is not None:
            self._seek_to(span)

    def _seek_to(self, span: FrameSpan) -> None:
        """Drop the probe frame, seek to the span's keyframe, decode onwards from it."""
        assert self._container is not None and span.key_pts is not None
        self._first = None
        self._raw = None
        target = span.seek_ts if span.seek_ts is not None else span.key_pts
        try:
            self._container.seek(target, backward=True, any_frame=False, stream=self._stream)
        except _AV_ERRORS as exc:
            raise SpanMismatchError(f"{self.path}: cannot seek to pts {target}: {_reason(exc)}") from exc
        self._raw = self._decode_packets(skip_until_pts=span.key_pts)

    @staticmethod
    def _no_video_reason(container: av.container.InputContainer) -> str:
        if container.streams.audio:
            return "no video stream (audio only)"
        if container.streams.video:
            return "no video stream (only cover art)"
        kinds = sorted({s.type for s in container.streams})
        if kinds:
            return f"no video stream (only {', '.join(kinds)} streams)"
        return "no video stream (the container holds no streams)"

    # ------------------------------------------------------------------ decoding
    def frames(self, sampler: FrameSampler | None = None) -> Iterator[Frame]:
        """Yield the frames ``sampler`` keeps, rotated to display, with their timestamps.

        Frames the sampler skips are counted in :attr:`frames_decoded` but never converted to
        RGB. Damaged data ends the iterator normally and sets :attr:`error`. Stopping early
        (``break``) closes the file; so does :meth:`close`.
        """
        if self._started:
            raise DecodeError(f"{self.path}: frames() can be iterated only once; open the video again")
        if self._container is None:
            raise DecodeError(f"{self.path}: the video is closed")
        self._started = True
        sampler = sampler if sampler is not None else FrameSampler()
        if self.span is None:
            sampler.reset()
            self._gen = self._frames(sampler)
        else:
            sampler.resume(self.span.sampler_state)
            self._gen = self._span_frames(sampler, self.span)
        return self._gen

    def _frames(self, sampler: FrameSampler) -> Iterator[Frame]:
        timed = self._timeline.times(self._all_av_frames())
        try:
            for av_frame, t in timed:
                index = self.frames_decoded
                self.frames_decoded += 1
                self._last_t = t
                if not sampler.keep(index, t):
                    continue
                image = self._display_image(av_frame)
                if image is None:
                    if self._conversion_stopped:
                        break
                    continue
                yield Frame(index=index, timestamp_s=t, image=image)
            else:
                self._end_of_stream()
                self._check_complete()
        finally:
            self._gen = None
            timed.close()  # release the frames the timeline holds back before the decoder
            self._close_container()

    def _span_frames(self, sampler: FrameSampler, span: FrameSpan) -> Iterator[Frame]:
        """Frames ``[warm_index, end_index)`` of ``span``, checked against the plan as they come
        (:class:`~ferbatch.decode.span.SpanCheck`)."""
        check = SpanCheck(span, self.path)
        timed = self._timeline.times(self._all_av_frames())
        try:
            for av_frame, t in timed:
                index = check.index_of(av_frame.pts)
                if index is None:
                    continue  # decoded from the keyframe only as a reference
                self._last_t = t
                if index >= span.first_index:
                    self.frames_decoded += 1
                if not sampler.keep(index, t):
                    continue
                image = self._display_image(av_frame)
                if image is None:
                    if self._conversion_stopped:
                        break
                    continue
                yield Frame(index=index, timestamp_s=t, image=image)
            else:
                if self.error is None:
                    check.finish()
                self._end_of_stream()
                if span.is_last:
                    self._check_complete(decoded=span.end_index)
        finally:
            self._gen = None
            timed.close()  # release the frames the timeline holds back before the decoder
            self._close_container()

    def _all_av_frames(self) -> Iterator[av.VideoFrame]:
        first, self._first = self._first, None
        if first is not None:
            yield first
        if self._raw is not None:
            yield from self._raw

    def _end_of_stream(self) -> None:
        """Decoding reached the end: record how time was found, and the duration when the
        file did not say, or when frames whose time was inferred run past it (the last
        frame's time plus its duration; Matroska's ``DURATION`` tag leaves out frames with
        negative pts)."""
        tl = self._timeline
        self.time_source, self.frames_time_inferred = tl.time_source, tl.inferred
        end, known = tl.end_s, self.info.duration_s
        spacing = tl.spacing_s if self._elementary else None
        if spacing is not None and tl.end_s is not None:
            # a raw stream whose parser gave every frame its pts (.m4v, .m2v): those are right
            # where the header's rate (mpeg4's time-increment resolution) and the frames'
            # durations may not be; the rate and the end follow them
            self.info = replace(self.info, fps=round(1.0 / spacing, 6))
            end = tl.end_s - (tl.frame_s or 0.0) + spacing
        if end is not None and (known is None or (
                tl.inferred and end > known + 0.5 * (tl.frame_s or 0.0))):
            self.info = replace(self.info, duration_s=round(end, 6))

    def _display_image(self, av_frame: av.VideoFrame) -> np.ndarray | None:
        """The frame as displayed (RGB, rotation applied), or ``None`` when it cannot be
        converted (e.g. a pixel format swscale rejects): noted as damage, and after
        ``max_consecutive_errors`` in a row decoding stops (``_conversion_stopped``)."""
        self._conversion_stopped = False
        try:
            image = to_rgb(av_frame, self._scaled)
        except _AV_ERRORS as exc:
            self._damage.note(exc, "converting a frame", self._where())
            if self._damage.exhausted:
                self._damage.stop(exc, self._where(), " while converting frames to RGB")
                self._conversion_stopped = True
            return None
        return np.ascontiguousarray(self._transform.apply(image))

    def _check_complete(self, decoded: int | None = None) -> None:
        """At the end of the file: let the damage log say whether it was cut short."""
        promised = self._stream_duration_s
        if promised is None:
            promised = self._hidden_cut_s()
        self._damage.check_complete(self.frames_decoded if decoded is None else decoded,
                                    self._last_t, self.info.fps, promised, self.info.frame_count)

    # ------------------------------------------------------------------ closing
    def _close_container(self) -> None:
        self._raw = None
        self._first = None
        container, self._container = self._container, None
        if container is not None:
            try:
                container.close()
            except _AV_ERRORS:
                pass

    def close(self) -> None:
        """Stop any running iteration and release the file; safe to call repeatedly."""
        gen, self._gen = self._gen, None
        if gen is not None:
            try:
                gen.close()  # runs the generator's finally
            except ValueError:  # "generator already executing": called from within it
                pass
        self._close_container()
