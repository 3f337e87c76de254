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
* **Rotation** is applied to the pixels, see :func:`rotate_to_display`.
* **Time** is ``(pts - stream.start_time) * time_base`` (frame index ≠ time on VFR video),
  kept non-decreasing.
* **Spans**: ``PyAVStream(path, span=FrameSpan(...))`` decodes one part of a video on its own
  (planned by :mod:`ferbatch.segments`): it seeks to a keyframe, decodes until the next span's
  keyframe, and yields frames with the same ``index``, ``timestamp_s`` and pixels as a decode of
  the whole file. Anything that contradicts the plan raises :class:`SpanMismatchError`.
"""

from __future__ import annotations

import math
import os
from collections.abc import Iterator
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path

import av
import numpy as np

from ..config import DecodeConfig
from ..errors import DecodeError, VideoOpenError
from .base import Frame, FrameSampler, VideoInfo, VideoStream

# Errors from av.open / decoding. av.FFmpegError covers every FFmpeg error code; the others are
# raised by PyAV itself for odd inputs (bad metadata encodings, unsupported formats).
_AV_ERRORS: tuple[type[BaseException], ...] = (av.FFmpegError, OSError, ValueError, UnicodeError)


class SpanMismatchError(DecodeError):
    """A span decoded differently from its plan (frame count, order or timestamps)."""


@dataclass(frozen=True)
class FrameSpan:
    """A contiguous run of a video's frames that decodes on its own; pts in stream time base.

    Own frames are ``[first_index, end_index)`` (presentation order, global indices).
    ``[warm_index, first_index)`` are warm-up frames before it, yielded too (for a tracker to
    catch up), and ``sampler_state`` is the :attr:`FrameSampler.state` just before frame
    ``warm_index``. Decoding starts at the keyframe packet with pts ``key_pts`` (found by seeking
    to ``seek_ts``; ``None``: read from the start of the file, no seek) and stops before the
    keyframe packet with pts ``end_pts`` (``None``: the end of the file). The planner guarantees
    both keyframes are *clean cuts*: every packet before one in decode order has a smaller pts,
    every packet after it a larger one.
    """

    index: int
    first_index: int
    end_index: int
    warm_index: int
    warm_pts: int
    start_pts: int
    end_pts: int | None
    key_pts: int | None
    seek_ts: int | None
    sampler_state: float | None
    is_last: bool

    @property
    def n_frames(self) -> int:
        """Frames the span owns (warm-up excluded)."""
        return self.end_index - self.first_index


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


def _to_rgb(frame: av.VideoFrame) -> np.ndarray:
    """Convert a decoded frame to an H×W×3 uint8 RGB array (swscale; the costly step)."""
    return frame.to_ndarray(format="rgb24")


def _normalise_rotation(degrees: float | int | None) -> int:
    """Round a display angle to a multiple of 90 in [0, 360)."""
    if degrees is None or not math.isfinite(degrees):
        return 0
    return int(round(degrees / 90.0)) * 90 % 360


def _reason(exc: BaseException) -> str:
    """FFmpeg's sentence for an av error ("Invalid data found when processing input")."""
    text = getattr(exc, "strerror", None) or str(exc) or type(exc).__name__
    return str(text).rstrip(".")


class PyAVStream(VideoStream):
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
        self.error: str | None = None
        self._error_parts: dict[str, str] = {}  # one message per kind of trouble, in order
        self._last_exc: BaseException | None = None
        self._first_damage = ""
        self._tail_cut = False  # the last packet was incomplete (file cut short)
        self._container: av.container.InputContainer | None = None
        self._raw: Iterator[av.VideoFrame] | None = None
        self._first: av.VideoFrame | None = None
        self._gen: Iterator[Frame] | None = None
        self._started = False
        self._flushed = False
        self._last_t = 0.0
        self._damaged = 0
        self._consecutive = 0
        self._conversion_stopped = False  # set by _display_image when it gives up
        self._open()

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
        self._start_pts = stream.start_time

        self._raw = self._decode_packets()
        self._first = next(self._raw, None)
        if self._first is None:
            why = self.error or "the video stream holds no frames"
            raise self._fail_open(f"no decodable video frames ({why})")
        if self._start_pts is None:
            self._start_pts = self._first.pts if self._first.pts is not None else 0

        rotation = _normalise_rotation(getattr(self._first, "rotation", 0))
        width, height = self._first.width, self._first.height
        if rotation in (90, 270):
            width, height = height, width
        rate = stream.average_rate or stream.guessed_rate
        fps = float(rate) if rate else None
        self._stream_duration_s: float | None = None
        if stream.duration and stream.time_base:
            self._stream_duration_s = float(stream.duration * stream.time_base)
        elif container.duration and len(container.streams) == 1:
            self._stream_duration_s = container.duration / av.time_base
        duration = self._stream_duration_s
        if duration is None and container.duration:
            duration = container.duration / av.time_base
        self._rotation = rotation
        self.info = VideoInfo(
            path=self.path,
            width=int(width),
            height=int(height),
            rotation=rotation,
            fps=fps,
            duration_s=duration,
            frame_count=int(stream.frames) if stream.frames else None,
            codec=cc.name,
        )
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
        try:
            for av_frame in self._all_av_frames():
                index = self.frames_decoded
                t = self._timestamp(av_frame, index)
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
                self._check_complete()
        finally:
            self._gen = None
            self._close_container()

    def _span_frames(self, sampler: FrameSampler, span: FrameSpan) -> Iterator[Frame]:
        """Frames ``[warm_index, end_index)`` of ``span``, checked against the plan as they come.

        Frames before ``warm_pts`` (decoded from the keyframe only as references) are dropped
        unseen by the sampler; the index of every other frame is ``warm_index`` plus the frames
        yielded before it, which the pts checks prove equal to its index in the whole video.
        """
        seen = 0
        last_pts: int | None = None
        expected = span.end_index - span.warm_index

        def mismatch(what: str) -> SpanMismatchError:
            return SpanMismatchError(f"{self.path}: segment {span.index} (frames "
                                     f"{span.first_index}-{span.end_index - 1}) {what}")

        try:
            for av_frame in self._all_av_frames():
                pts = av_frame.pts
                if pts is None:
                    raise mismatch("decoded a frame without a timestamp")
                if pts < span.warm_pts:
                    continue
                if last_pts is not None and pts <= last_pts:
                    raise mismatch(f"decoded pts {pts} after {last_pts} (not in order)")
                if span.end_pts is not None and pts >= span.end_pts:
                    raise mismatch(f"decoded pts {pts} past its end pts {span.end_pts}")
                index = span.warm_index + seen
                if (index == span.warm_index and pts != span.warm_pts) or (
                        index == span.first_index and pts != span.start_pts):
                    raise mismatch(f"expected frame {index} but decoded pts {pts}")
                seen += 1
                last_pts = pts
                t = self._timestamp(av_frame, index)
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
                if self.error is None and seen != expected:
                    raise mismatch(f"decoded {seen} frames where the plan has {expected}")
                if span.is_last:
                    self._check_complete(decoded=span.end_index)
        finally:
            self._gen = None
            self._close_container()

    def _all_av_frames(self) -> Iterator[av.VideoFrame]:
        first, self._first = self._first, None
        if first is not None:
            yield first
        if self._raw is not None:
            yield from self._raw

    def _timestamp(self, frame: av.VideoFrame, index: int) -> float:
        """Seconds since the stream start; never decreases (broken pts are clamped)."""
        pts = frame.pts
        if pts is not None:
            t = pts_seconds(pts, self._start_pts, self._tb)
        elif self.info.fps:
            t = index / self.info.fps
        else:
            t = self._last_t
        return max(t, self._last_t) if index else max(t, 0.0)

    def _decode_packets(self, skip_until_pts: int | None = None) -> Iterator[av.VideoFrame]:
        """Demux and decode packet by packet, skipping damaged ones; always drain the decoder.

        ``skip_until_pts``: after a seek, packets before the one with that pts are not decoded.
        Demuxing stops at the packet whose pts is ``self._stop_pts`` (a span's end keyframe).
        """
        assert self._container is not None
        stream = self._stream
        held = None  # a packet the demuxer flagged corrupt, kept until we know what follows
        demux = self._container.demux(stream)
        while True:
            try:
                packet = next(demux)
            except StopIteration:
                break
            except _AV_ERRORS as exc:  # the container itself is damaged here
                self._stop(exc, " while reading the file")
                break
            if skip_until_pts is not None:
                if packet.pts != skip_until_pts or packet.size == 0:
                    continue
                skip_until_pts = None
            if self._stop_pts is not None and packet.pts == self._stop_pts and packet.size:
                if held is not None:  # a span ends here: whatever came before is not its tail
                    yield from self._decode(held)
                    held = None
                break
            # PyAV ends demuxing with an empty, timestamp-less packet that drains the decoder.
            # Other empty packets (AVI "dropped frame" chunks) must not reach the decoder: an
            # empty packet is FFmpeg's end-of-stream signal and would end decoding early.
            is_flush = packet.size == 0 and packet.pts is None and packet.dts is None
            if packet.size == 0 and not is_flush:
                continue
            if held is not None:
                if is_flush:
                    self._note_truncated_tail()
                else:
                    yield from self._decode(held)
                held = None
            if packet.is_corrupt and not is_flush:
                held = packet
                continue
            if is_flush:
                self._flushed = True
            yield from self._decode(packet)
            if self._consecutive >= self.max_consecutive_errors:
                self._stop(None)
                break
        if held is not None:
            self._note_truncated_tail()
        if not self._flushed:
            self._flushed = True
            yield from self._decode(None)

    def _decode(self, packet: av.Packet | None) -> Iterator[av.VideoFrame]:
        try:
            decoded = self._stream.decode(packet)
        except av.error.EOFError:
            return  # decoder already drained
        except _AV_ERRORS as exc:
            self._note_damage(exc, "decoding")
            return
        if packet is not None and packet.size:
            self._consecutive = 0
        yield from decoded

    # ------------------------------------------------------------------ error reporting
    def _where(self) -> str:
        return f"frame {self.frames_decoded} (t={self._last_t:.2f} s)"

    def _note_damage(self, exc: BaseException, doing: str) -> None:
        if "stop" in self._error_parts:
            return  # errors while draining the decoder after giving up add nothing
        self._damaged += 1
        self._consecutive += 1
        self._last_exc = exc
        if self._damaged == 1:
            self._first_damage = f"{self._where()}: {_reason(exc)}"
        self._set_error(f"skipped {self._damaged} damaged packet(s) ({doing}), "
                        f"the first at {self._first_damage}", key="damage")

    def _display_image(self, av_frame: av.VideoFrame) -> np.ndarray | None:
        """The frame as displayed (RGB, rotation applied), or ``None`` when it cannot be
        converted (e.g. a pixel format swscale rejects): noted as damage, and after
        ``max_consecutive_errors`` in a row decoding stops (``_conversion_stopped``)."""
        self._conversion_stopped = False
        try:
            image = _to_rgb(av_frame)
        except _AV_ERRORS as exc:
            self._note_damage(exc, "converting a frame")
            if self._consecutive >= self.max_consecutive_errors:
                self._stop(exc, " while converting frames to RGB")
                self._conversion_stopped = True
            return None
        return np.ascontiguousarray(rotate_to_display(image, self._rotation))

    def _stop(self, exc: BaseException | None, context: str = "") -> None:
        exc = exc or self._last_exc
        reason = _reason(exc) if exc is not None else "unknown error"
        if self._consecutive > 1:
            context += f" ({self._consecutive} damaged packets in a row)"
        if self._damaged == self._consecutive:  # no earlier, recovered damage worth its own note
            self._error_parts.pop("damage", None)
        self._set_error(f"decoding stopped at {self._where()}: {reason}{context}", key="stop")

    def _note_truncated_tail(self) -> None:
        self._tail_cut = True

    def _check_complete(self, decoded: int | None = None) -> None:
        """At the end of the file: say so if it was cut short.

        Two signs: the demuxer flagged the last packet incomplete (MP4/MOV cut short), or the
        decode ended cleanly but long before the length the container promises (Matroska and
        AVI files cut short end without any FFmpeg error). The promised length is the video
        stream's duration (or the container's, when it holds only this stream), else the
        frame-count estimate; only a shortfall beyond max(0.5 s, 2 %, 3 frames) counts, so
        frame-count estimates that are a few frames off, and trimmed phone videos (edit lists
        report the trimmed duration), do not trip it.
        """
        if "stop" in self._error_parts:
            return  # already explained: we gave up on purpose
        decoded = self.frames_decoded if decoded is None else decoded
        fps = self.info.fps
        frame_s = 1.0 / fps if fps else 0.0
        ended = self._last_t + frame_s
        promised = self._stream_duration_s
        count = self.info.frame_count
        if promised:
            got = f"decoded {decoded} frames up to t={ended:.2f} s of {promised:.2f} s"
            short = ended < promised - max(0.5, 0.02 * promised, 3 * frame_s)
        else:
            got = f"decoded {decoded} frames up to t={ended:.2f} s"
            if count:
                got = f"decoded {decoded} of ~{count} frames up to t={ended:.2f} s"
            short = bool(count) and decoded < count - max(3, 0.02 * count)
        if self._tail_cut:
            self._set_error(f"file cut short: its last packet is incomplete; {got}", key="end")
        elif short:
            self._set_error(f"file ends early: {got} (truncated file?)", key="end")

    def _set_error(self, message: str, key: str) -> None:
        self._error_parts[key] = message
        self.error = "; ".join(self._error_parts.values())

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


def quiet_ffmpeg() -> None:
    """Keep FFmpeg's per-packet warnings out of terminals and worker logs: the problems that
    matter reach the user through the videos table (``status``/``error``)."""
    import logging

    av.logging.set_level(av.logging.PANIC)
    logging.getLogger("libav").setLevel(logging.ERROR)
