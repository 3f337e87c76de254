"""Planning the segments of one video: a packet-only pass, clean keyframe cuts, warm-ups
(see :mod:`ferbatch.segments`)."""

from __future__ import annotations

import os
import stat
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from ..config import DecodeConfig, RunConfig
from ..decode.av_util import pts_seconds, select_video_stream
from ..decode.base import FrameSampler
from ..decode.span import FrameSpan
from ..decode.timing import stream_duration


@dataclass(frozen=True)
class SegmentPlan:
    """How one video is cut: its spans in order (one span = not split) and why."""

    path: str
    n_frames: int
    spans: tuple[FrameSpan, ...]
    reason: str
    file_size: int | None = None
    file_mtime_ns: int | None = None

    @property
    def split(self) -> bool:
        """True when the video is cut into two or more segments."""
        return len(self.spans) > 1


def _whole(path: str, reason: str) -> SegmentPlan:
    return SegmentPlan(path=path, n_frames=0, spans=(), reason=reason)


def header_duration(path: str | os.PathLike[str]) -> float | None:
    """The video *stream's* duration in seconds from the header (no demuxing), if the file
    says (:func:`ferbatch.decode.timing.stream_duration`: never the audio's or the container's
    when other streams run longer). ``None`` without opening anything that is not a regular
    file (a FIFO would block)."""
    import av

    try:
        if not stat.S_ISREG(os.stat(path).st_mode):
            return None
        with av.open(str(path), metadata_errors="replace") as container:
            stream = select_video_stream(container)
            if stream is None:
                return None
            return stream_duration(container, stream)
    except (av.FFmpegError, OSError, ValueError, UnicodeError):
        return None


@dataclass
class _Packets:
    pts: np.ndarray  # int64, decode order, empty packets left out
    dts: list[int | None]
    key: np.ndarray  # bool
    discard: np.ndarray  # bool


def _read_packets(container: Any, stream: Any) -> _Packets | str:
    """Every non-empty packet of ``stream`` (decode order), or why the video cannot be cut."""
    import av

    pts: list[int] = []
    dts: list[int | None] = []
    key: list[bool] = []
    discard: list[bool] = []
    try:
        for packet in container.demux(stream):
            if packet.size == 0:
                continue
            if packet.pts is None:
                return "a packet has no pts"
            if packet.is_corrupt:
                return "a packet is flagged corrupt"
            pts.append(int(packet.pts))
            dts.append(None if packet.dts is None else int(packet.dts))
            key.append(bool(packet.is_keyframe))
            discard.append(bool(packet.is_discard))
    except (av.FFmpegError, OSError, ValueError) as exc:
        return f"demuxing failed: {exc}"
    return _Packets(np.asarray(pts, np.int64), dts, np.asarray(key, bool), np.asarray(discard, bool))


def _clean_cuts(pk: _Packets) -> list[tuple[int, int]]:
    """(decode position, frame index) of every clean keyframe after the first frame.

    Clean: a keyframe, not discarded, every packet before it has a smaller pts and every packet
    after it a larger one, and no discarded packet (edit-list trim) follows it. Its frame index
    is then the number of kept packets before it.
    """
    n = len(pk.pts)
    if n < 2:
        return []
    prefix_max = np.maximum.accumulate(pk.pts)
    suffix_min = np.minimum.accumulate(pk.pts[::-1])[::-1]
    discard_after = np.cumsum(pk.discard[::-1])[::-1]  # discarded packets at positions >= j
    kept_before = np.concatenate([[0], np.cumsum(~pk.discard)[:-1]])
    cuts: list[tuple[int, int]] = []
    for j in np.flatnonzero(pk.key[1:]) + 1:
        if (not pk.discard[j] and prefix_max[j - 1] < pk.pts[j] and suffix_min[j] == pk.pts[j]
                and discard_after[j] == 0 and kept_before[j] > 0):
            cuts.append((int(j), int(kept_before[j])))
    return cuts


def plan_segments(path: str | os.PathLike[str], config: RunConfig | None = None,
                  segment_s: float = 300.0, duration_s: float | None = None) -> SegmentPlan:
    """Plan how to cut ``path`` into segments of about ``segment_s`` seconds (see module doc).

    Never raises for a bad file: the plan then has no spans and ``reason`` says why (the video
    is analysed whole, which reports the problem as usual). ``config`` supplies the frame
    sampling and the tracker's memory (warm-up length). ``duration_s``: the header's duration
    when the caller has read it already (:mod:`ferbatch.runner.plan`), else it is read here.
    """
    import av

    config = config or RunConfig()
    path = str(path)
    if segment_s <= 0:
        return _whole(path, "splitting is off")
    try:
        st = os.stat(path)
    except OSError as exc:
        return _whole(path, f"cannot stat: {exc}")
    if not stat.S_ISREG(st.st_mode):  # a FIFO blocks av.open: the decoder fails it unopened
        return _whole(path, "not a regular file")
    duration = duration_s if duration_s is not None else header_duration(path)
    if duration is not None and duration < 2 * segment_s:
        return _whole(path, f"{duration:.1f} s is shorter than 2 x {segment_s:g} s")
    try:
        container = av.open(path, metadata_errors="replace")
    except (av.FFmpegError, OSError, ValueError, UnicodeError) as exc:
        return _whole(path, f"cannot open: {exc}")
    with container:
        stream = select_video_stream(container)
        if stream is None:
            return _whole(path, "no video stream")
        if stream.start_time is None:
            return _whole(path, "the stream has no start time")
        start_pts = int(stream.start_time)
        time_base = stream.time_base
        packets = _read_packets(container, stream)
    if isinstance(packets, str):
        return _whole(path, packets)
    frame_pts = np.sort(packets.pts[~packets.discard])
    n = len(frame_pts)
    if n < 2 or len(np.unique(frame_pts)) != n:
        return _whole(path, "too few frames or repeated pts")
    times = _timestamps(frame_pts, min(start_pts, int(frame_pts[0])), time_base)
    span_s = max((times[-1] - times[0]) * n / (n - 1), duration or 0.0)  # the last frame lasts too
    n_segments = int(span_s // segment_s)
    if n_segments < 2:
        return _whole(path, f"{span_s:.1f} s of frames is shorter than 2 x {segment_s:g} s")
    cuts = _clean_cuts(packets)
    starts = _choose_starts(cuts, n, n_segments)
    if not starts:
        return _whole(path, "no keyframe where it could be cut")
    spans = _make_spans(packets, cuts, starts, frame_pts, times, config)
    return SegmentPlan(path=path, n_frames=n, spans=tuple(spans),
                       reason=f"{len(spans)} segments cut at keyframes {starts}",
                       file_size=st.st_size, file_mtime_ns=st.st_mtime_ns)


def _make_spans(packets: _Packets, cuts: list[tuple[int, int]], starts: list[int],
                frame_pts: np.ndarray, times: list[float], config: RunConfig) -> list[FrameSpan]:
    """One :class:`FrameSpan` per segment starting at ``starts`` (frame indices), each with the
    warm-up its tracker needs and the keyframe its decode starts from."""
    n = len(frame_pts)
    kept, states = _simulate_sampler(config.decode, times)
    decode_pos = {index: pos for pos, index in cuts}
    cut_indices = [0, *decode_pos]
    bounds = [0, *starts, n]
    spans: list[FrameSpan] = []
    for k in range(len(bounds) - 1):
        s, e = bounds[k], bounds[k + 1]
        warm = 0 if k == 0 else _warm_start(s, times, kept, config.track.max_gap_s)
        key = max((c for c in cut_indices if c <= warm), default=0)
        pos = decode_pos.get(key)
        spans.append(FrameSpan(
            index=k, first_index=s, end_index=e, warm_index=warm, warm_pts=int(frame_pts[warm]),
            start_pts=int(frame_pts[s]), end_pts=int(frame_pts[e]) if e < n else None,
            key_pts=None if key == 0 or pos is None else int(packets.pts[pos]),
            seek_ts=None if key == 0 or pos is None else packets.dts[pos],
            sampler_state=states[warm], is_last=e == n))
    return spans


def _timestamps(frame_pts: np.ndarray, start_pts: int, time_base: Any) -> list[float]:
    """The decoder's timestamps (:class:`~ferbatch.decode.timing.Timeline`): the pts are
    distinct and sorted here, so each is :func:`pts_seconds` from the origin (the stream's
    start or its first frame, whichever is earlier); kept clamped as before."""
    out: list[float] = []
    last = 0.0
    for i, pts in enumerate(frame_pts.tolist()):
        t = pts_seconds(pts, start_pts, time_base)
        last = max(t, last) if i else max(t, 0.0)
        out.append(last)
    return out


def _choose_starts(cuts: list[tuple[int, int]], n: int, n_segments: int) -> list[int]:
    """Segment start frames: the clean cut nearest to each of ``n_segments`` equal shares."""
    if not cuts:
        return []
    indices = np.array([index for _, index in cuts])
    chosen = {int(indices[np.abs(indices - round(i * n / n_segments)).argmin()])
              for i in range(1, n_segments)}
    return sorted(c for c in chosen if 0 < c < n)


def _simulate_sampler(decode: DecodeConfig, times: Sequence[float]
                      ) -> tuple[list[bool], list[float | None]]:
    """Which frames a whole-video run keeps, and the sampler's state before each frame."""
    sampler = FrameSampler.from_config(decode)
    kept: list[bool] = []
    states: list[float | None] = []
    for i, t in enumerate(times):
        states.append(sampler.state)
        kept.append(sampler.keep(i, t))
    return kept, states


def _warm_start(start: int, times: Sequence[float], kept: Sequence[bool], max_gap_s: float) -> int:
    """First frame of the warm-up before the cut at frame ``start``.

    A whole-video tracker forgets a track ``max_gap_s`` seconds after it was last seen. Let
    ``p`` be the last sampled frame that is more than that before the cut: every track seen at
    or before ``p`` is forgotten by the cut, so the warm-up starts at the first sampled frame
    after ``p`` (the first sampled frame of the video when there is no ``p``).
    """
    t0 = times[start]
    warm = start
    for i in range(start - 1, -1, -1):
        if not kept[i]:
            continue
        if t0 - times[i] > max_gap_s:
            break
        warm = i
    return warm
