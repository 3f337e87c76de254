"""Time: each decoded frame's presentation time, and the video stream's own duration.

**Timestamps** (:class:`Timeline`). A frame's time is ``(pts - origin) * time_base`` (PTS,
presentation timestamp; frame index ≠ time on variable-frame-rate video). ``origin`` is the
stream's ``start_time``, or the first frame's pts when that is earlier (a Matroska file whose
first frames have negative pts reports a later ``start_time``). Frames without a usable pts get
one *inferred* from their neighbours and frame durations, so timestamps are strictly
increasing and distinct:

* a frame without pts (raw h264/hevc elementary streams have none; Matroska drops negative
  ones) or whose pts does not increase gets the previous frame's time plus the previous
  frame's duration (``AVFrame.duration``, else the nominal 1/frame-rate);
* pts handed out in decode order (AVI with B-frames) are sorted back into presentation order
  over a few frames (:func:`sort_pts`);
* frames without pts at the *start* wait (at most :data:`LOOKAHEAD` frames) for the first
  frame with one, and are placed before it, back from its pts by their durations;
* a stream with no pts at all runs from 0 by frame durations (the codec's frame rate, e.g. the
  h264 SPS timing, not the demuxer's 25 fps guess).

The timeline reports how many frames' times were inferred and a ``time_source``:
``"pts"`` (every frame its own pts), ``"pts+durations"`` (some inferred) or ``"durations"``
(none had a pts).

**Duration** (:func:`stream_duration`): the video stream's own, never the longest stream's —
a 2 s video with 5 s of audio lasts 2 s: the stream's duration (MP4/MOV track; for an AVI
shorter than its RIFF header says, at least its header's frame count at its frame rate),
else Matroska/WebM's per-track ``DURATION`` tag, else the container's duration when the file
holds only this stream; otherwise unknown until decoded (then the last frame's time plus its
duration).
"""

from __future__ import annotations

import heapq
import re
from collections import deque
from collections.abc import Iterable, Iterator
from fractions import Fraction
from typing import Any

import av

#: most frames without pts held back at the start of a stream, waiting for the first pts
LOOKAHEAD = 16
#: frames looked ahead to put the pts of a stream back in presentation order (AVI stores no
#: pts: FFmpeg numbers its packets in decode order, so frames with B-frames come out permuted)
REORDER = 4

TIME_PTS = "pts"
TIME_MIXED = "pts+durations"
TIME_DURATIONS = "durations"

_DURATION_TAG = re.compile(r"^\s*(\d+):(\d{1,2}):(\d{1,2}(?:\.\d+)?)\s*$")


def parse_duration_tag(text: str | None) -> float | None:
    """Seconds of a Matroska ``DURATION`` tag (``"00:00:02.000000000"``), ``None`` if absent
    or malformed."""
    if not text:
        return None
    m = _DURATION_TAG.match(str(text))
    if not m:
        return None
    h, mi, s = int(m.group(1)), int(m.group(2)), float(m.group(3))
    seconds = h * 3600 + mi * 60 + s
    return seconds if seconds > 0 else None


def stream_duration(container: Any, stream: Any) -> float | None:
    """The video stream's own duration in seconds (see the module doc), ``None`` if unknown."""
    if stream.duration and stream.time_base:
        seconds = float(stream.duration * stream.time_base)
        if stream.frames and stream.average_rate and avi_cut_short(container):
            # A cut-short AVI has lost its index (idx1 comes last), so FFmpeg measured the
            # duration from the packets it found; the header's frame count (strh dwLength) at
            # its frame rate still says how long the stream was meant to be.
            seconds = max(seconds, float(stream.frames / stream.average_rate))
        return seconds
    metadata = getattr(stream, "metadata", None) or {}
    for key in ("DURATION", "duration"):
        tag = parse_duration_tag(metadata.get(key))
        if tag is not None:
            return tag
    if len(container.streams) == 1:
        return container_duration(container)
    return None


def avi_cut_short(container: Any) -> bool:
    """True for an AVI file shorter than its RIFF header says (``RIFF`` size + 8 > file size):
    cut short, its index lost. Never raises (``False`` when it cannot tell)."""
    if "avi" not in str(getattr(container.format, "name", "")).split(","):
        return False
    try:
        with open(container.name, "rb") as fh:
            head = fh.read(12)
            size = fh.seek(0, 2)
    except (OSError, TypeError, ValueError):
        return False
    if len(head) < 12 or head[:4] != b"RIFF" or head[8:12] != b"AVI ":
        return False
    return int.from_bytes(head[4:8], "little") + 8 > size


def container_duration(container: Any) -> float | None:
    """The container's duration (the longest stream) in seconds, ``None`` if unknown."""
    return container.duration / av.time_base if container.duration else None


def sort_pts(frames: Iterable[Any], depth: int) -> Iterator[tuple[Any, int | None]]:
    """``(frame, pts)`` pairs where each frame with a pts gets the smallest pts among itself
    and the next ``depth`` frames (a sliding sort): frames whose pts increase keep their own;
    decode-order numbers handed out to reordered frames (AVI with B-frames: 1, 4, 3, 5, 2, …)
    come back sorted. Frames without pts keep ``None``."""
    held: deque[Any] = deque()
    pool: list[int] = []
    for frame in frames:
        held.append(frame)
        if frame.pts is not None:
            heapq.heappush(pool, int(frame.pts))
        if len(held) > depth:
            out = held.popleft()
            yield out, (heapq.heappop(pool) if out.pts is not None else None)
    while held:
        out = held.popleft()
        yield out, (heapq.heappop(pool) if out.pts is not None else None)


class Timeline:
    """Presentation times of one stream's decoded frames, in order (see the module doc).

    ``time_base``: the stream's; ``start_pts``: its ``start_time`` (``None``: unknown);
    ``nominal``: the nominal frame duration in seconds (``None``: unknown, then 0 is used and
    the inferred time only keeps order). :meth:`times` pairs each frame with its time.
    """

    def __init__(self, time_base: Fraction, start_pts: int | None, nominal: float | None,
                 origin: int | None = None) -> None:
        self.tb = Fraction(time_base)
        self.start_pts = start_pts
        self.nominal_pts = Fraction(nominal) / self.tb if nominal else Fraction(0)
        self.origin: Fraction | None = Fraction(origin) if origin is not None else None
        self.inferred = 0
        self.seen = 0
        self._last: Fraction | None = None  # pts (exact, stream time base) of the last frame
        self._last_dur = Fraction(0)
        self._first: Fraction | None = None  # … and of the first

    @property
    def time_source(self) -> str:
        """``"pts"``, ``"pts+durations"`` or ``"durations"`` (see the module doc)."""
        if not self.inferred:
            return TIME_PTS
        return TIME_DURATIONS if self.inferred >= self.seen else TIME_MIXED

    @property
    def end_s(self) -> float | None:
        """Where the last frame emitted ends (its time plus its duration), ``None`` before any."""
        if self._last is None or self.origin is None:
            return None
        return self._seconds(self._last + self._last_dur)

    @property
    def frame_s(self) -> float | None:
        """The last frame's duration in seconds (``None`` before any)."""
        return None if self._last is None else float(self._last_dur * self.tb)

    @property
    def spacing_s(self) -> float | None:
        """The mean gap between the frames' own pts in seconds (``None`` with fewer than two
        frames, or when any time was inferred): the frame rate the timestamps really follow."""
        if self.inferred or self.seen < 2 or self._first is None or self._last is None:
            return None
        gap = float((self._last - self._first) * self.tb) / (self.seen - 1)
        return gap if gap > 0 else None

    def _duration(self, frame: Any) -> Fraction:
        d = getattr(frame, "duration", None)
        return Fraction(int(d)) if d and d > 0 else self.nominal_pts

    def _seconds(self, pts: Fraction) -> float:
        assert self.origin is not None
        return float((pts - self.origin) * self.tb)

    def _emit(self, frame: Any, pts: Fraction, inferred: bool) -> tuple[Any, float]:
        if self._first is None:
            self._first = pts
        self._last, self._last_dur = pts, self._duration(frame)
        self.seen += 1
        self.inferred += int(inferred)
        return frame, self._seconds(pts)

    def times(self, frames: Iterable[Any]) -> Iterator[tuple[Any, float]]:
        """``(frame, seconds since the stream start)`` for each frame of ``frames``; frames
        without pts at the start are held back (at most :data:`LOOKAHEAD`)."""
        waiting: deque[Any] = deque()
        for frame, pts in sort_pts(frames, REORDER):
            if self._last is None:  # nothing emitted yet: settle the origin first
                if pts is None:
                    waiting.append(frame)
                    if len(waiting) > LOOKAHEAD:
                        yield from self._release(waiting, None)
                    continue
                yield from self._release(waiting, Fraction(int(pts)))
                if self._last is not None and pts <= self._last:  # released frames ran past it
                    yield self._emit(frame, self._last + self._last_dur, True)
                    continue
                if self.origin is None or pts < self.origin:  # never before the origin
                    self.origin = Fraction(int(pts)) if self.start_pts is None \
                        else Fraction(min(int(pts), int(self.start_pts)))
                yield self._emit(frame, Fraction(int(pts)), False)
                continue
            if pts is None or pts <= self._last:
                yield self._emit(frame, self._last + self._last_dur, True)
            else:
                yield self._emit(frame, Fraction(int(pts)), False)
        yield from self._release(waiting, None)

    def _release(self, waiting: deque[Any], next_pts: Fraction | None) -> Iterator[tuple[Any, float]]:
        """Emit the held-back frames: back from ``next_pts`` by their durations, or (no pts
        seen) forward from the origin."""
        if not waiting:
            return
        if next_pts is not None:
            back = sum((self._duration(f) for f in waiting), Fraction(0))
            first = next_pts - back
        else:
            first = Fraction(int(self.start_pts)) if self.start_pts is not None else Fraction(0)
        if self.origin is None:
            self.origin = first if self.start_pts is None else min(first, Fraction(int(self.start_pts)))
        pts = first
        while waiting:
            frame = waiting.popleft()
            yield self._emit(frame, pts, True)
            pts = pts + self._last_dur
