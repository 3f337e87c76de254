"""What went wrong while decoding one file, kept apart from the decoding itself.

A :class:`DamageLog` counts damaged packets (and those in a row, against the
``max_consecutive_errors`` budget), remembers the first, records why decoding stopped and
whether the file ended early, and renders all of it as the one message a
:class:`~ferbatch.decode.base.VideoStream` reports in ``error`` (one part per kind of
trouble, in the order they happened).
"""

from __future__ import annotations

from .av_util import av_reason


class DamageLog:
    """Damage of one decode; ``max_consecutive``: failures in a row before giving up."""

    def __init__(self, max_consecutive: int) -> None:
        self.max_consecutive = max(1, int(max_consecutive))
        self.damaged = 0
        self.consecutive = 0
        self.tail_cut = False  # the last packet was incomplete (file cut short)
        self._parts: dict[str, str] = {}
        self._last_exc: BaseException | None = None
        self._first = ""

    @property
    def error(self) -> str | None:
        """Everything that went wrong, one sentence per kind; ``None`` for a clean decode."""
        return "; ".join(self._parts.values()) or None

    @property
    def stopped(self) -> bool:
        """True once decoding was given up on purpose."""
        return "stop" in self._parts

    @property
    def exhausted(self) -> bool:
        """True when the budget of failures in a row is spent."""
        return self.consecutive >= self.max_consecutive

    def good_packet(self) -> None:
        """A packet decoded: the run of failures is over."""
        self.consecutive = 0

    def note(self, exc: BaseException, doing: str, where: str) -> None:
        """One more damaged packet (or frame), at ``where`` (``"frame 12 (t=0.40 s)"``)."""
        if self.stopped:
            return  # errors while draining the decoder after giving up add nothing
        self.damaged += 1
        self.consecutive += 1
        self._last_exc = exc
        if self.damaged == 1:
            self._first = f"{where}: {av_reason(exc)}"
        self._set(f"skipped {self.damaged} damaged packet(s) ({doing}), the first at {self._first}",
                  key="damage")

    def stop(self, exc: BaseException | None, where: str, context: str = "") -> None:
        """Decoding gives up at ``where`` because of ``exc`` (else the last damage seen)."""
        exc = exc or self._last_exc
        reason = av_reason(exc) if exc is not None else "unknown error"
        if self.consecutive > 1:
            context += f" ({self.consecutive} damaged packets in a row)"
        if self.damaged == self.consecutive:  # no earlier, recovered damage worth its own note
            self._parts.pop("damage", None)
        self._set(f"decoding stopped at {where}: {reason}{context}", key="stop")

    def check_complete(self, decoded: int, last_t: float, fps: float | None,
                       promised_s: float | None, frame_count: int | None) -> None:
        """At the end of the file: say so if it was cut short.

        Two signs: the demuxer flagged the last packet incomplete (MP4/MOV cut short:
        :attr:`tail_cut`), or the decode ended cleanly but long before the length the container
        promises (Matroska and AVI files cut short end without any FFmpeg error). The promised
        length is the video stream's own duration (:func:`~ferbatch.decode.timing.stream_duration`:
        the track's, Matroska's ``DURATION`` tag, the container's when it holds only this
        stream; with none of those, the container's when the file's data stops before it
        together with the video, see :mod:`~ferbatch.decode.packets`), whatever other streams
        the file holds, else the frame-count estimate; only a shortfall beyond max(0.5 s, 2 %, 3
        frames) counts, so frame-count estimates that are a few frames off, and trimmed phone
        videos (edit lists report the trimmed duration), do not trip it.
        """
        if self.stopped:
            return  # already explained: we gave up on purpose
        frame_s = 1.0 / fps if fps else 0.0
        ended = last_t + frame_s
        if promised_s:
            got = f"decoded {decoded} frames up to t={ended:.2f} s of {promised_s:.2f} s"
            short = ended < promised_s - max(0.5, 0.02 * promised_s, 3 * frame_s)
        else:
            got = f"decoded {decoded} frames up to t={ended:.2f} s"
            if frame_count:
                got = f"decoded {decoded} of ~{frame_count} frames up to t={ended:.2f} s"
            short = bool(frame_count) and decoded < frame_count - max(3, 0.02 * frame_count)
        if self.tail_cut:
            self._set(f"file cut short: its last packet is incomplete; {got}", key="end")
        elif short:
            self._set(f"file ends early: {got} (truncated file?)", key="end")

    def _set(self, message: str, key: str) -> None:
        self._parts[key] = message
