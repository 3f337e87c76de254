"""A part of a video that decodes on its own: the contract between the segment planner
(:mod:`ferbatch.segments`) and a decode backend (``VideoStream`` opened with ``span=``)."""

from __future__ import annotations

from dataclasses import dataclass

from ..errors import SpanMismatchError


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
    every packet after it a larger one. A backend that decodes anything else raises
    :class:`~ferbatch.errors.SpanMismatchError`.
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


class SpanCheck:
    """Checks the frames a backend decodes for a span against the plan, as they come.

    Frames before ``warm_pts`` (decoded from the keyframe only as references) are dropped; the
    index of every other frame is ``warm_index`` plus the frames accepted before it, which the
    pts checks prove equal to its index in the whole video. Raises :class:`SpanMismatchError`
    naming ``path`` and the segment on anything the plan does not allow.
    """

    def __init__(self, span: FrameSpan, path: str) -> None:
        self.span, self.path = span, path
        self.seen = 0
        self.last_pts: int | None = None

    def _mismatch(self, what: str) -> SpanMismatchError:
        s = self.span
        return SpanMismatchError(f"{self.path}: segment {s.index} (frames "
                                 f"{s.first_index}-{s.end_index - 1}) {what}")

    def index_of(self, pts: int | None) -> int | None:
        """The global index of the decoded frame with ``pts``; ``None``: not one of the span's."""
        s = self.span
        if pts is None:
            raise self._mismatch("decoded a frame without a timestamp")
        if pts < s.warm_pts:
            return None
        if self.last_pts is not None and pts <= self.last_pts:
            raise self._mismatch(f"decoded pts {pts} after {self.last_pts} (not in order)")
        if s.end_pts is not None and pts >= s.end_pts:
            raise self._mismatch(f"decoded pts {pts} past its end pts {s.end_pts}")
        index = s.warm_index + self.seen
        if (index == s.warm_index and pts != s.warm_pts) or (
                index == s.first_index and pts != s.start_pts):
            raise self._mismatch(f"expected frame {index} but decoded pts {pts}")
        self.seen += 1
        self.last_pts = pts
        return index

    def finish(self) -> None:
        """After a clean decode: every planned frame (warm-up included) must have come."""
        expected = self.span.end_index - self.span.warm_index
        if self.seen != expected:
            raise self._mismatch(f"decoded {self.seen} frames where the plan has {expected}")
