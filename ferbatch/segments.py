"""Split one long video into time segments that separate workers analyse, then merge them.

Plan (:func:`plan_segments`): one cheap demux pass over the video's packets, no decoding. Every
packet's pts gives, once sorted, each frame's global ``frame_index`` and ``timestamp_s`` (the
same formula the decoder uses, so it holds on variable frame rate too). The video is cut at
*clean* keyframes only: a keyframe packet that every packet before it (in decode order) precedes
in time and every packet after it follows, so "the packets from this keyframe to the next cut"
are exactly "the frames with pts in [cut, next cut)" and decode from that keyframe alone
(open-GOP leading pictures and edit-list discards rule a keyframe out). Cuts land near equal
frame counts, about ``segment_s`` seconds apart; a video shorter than twice ``segment_s``, or
whose packets are not clean (missing or repeated pts, corrupt packets, no usable keyframe), is
not split and runs whole as before. The frame sampler's state at each cut (``--fps`` is
time-based and stateful) is computed in the plan, so a segment keeps exactly the frames a run
over the whole video keeps.

Segments (:func:`process_segment`): a worker seeks to the segment's keyframe and runs the usual
pipeline (:func:`ferbatch.pipeline.process_video`) over its frames, so frames stay where they are
decoded; only the segment's Arrow tables (rows, not pixels) go back. A segment other than the
first also analyses a *warm-up* before its start: the sampled frames of the last
``--track-gap`` seconds (from the first sampled frame after the last one more than ``max_gap_s``
before the cut). Every track the tracker of a whole-video run still remembers at the cut was
seen in that window, so the segment's tracker starts the cut in the same state, up to the
numbering of its ids. Warm-up rows are used for re-linking and then dropped.

Merge (:func:`merge_segments`): segments are taken in order. On every warm-up frame the
segment's detections are matched (IoU >= 0.5) to the rows already merged for that frame; a local
id takes the global id of its detection on the latest warm-up frame where it was seen (each
global id once). Other local ids get new global ids in order of first appearance, as a
whole-video tracker would hand them out. The merged video is committed once, atomically, by
:meth:`ferbatch.write.OutputStore.commit`, with the same ``videos.parquet`` row as an unsplit run
(``processing_s`` is the worker time summed over the segments and the merge).

Boundary behaviour: the rows are identical to an unsplit run (floats to rounding, as between
any two runs with different batch sizes), except in one case: within the warm-up window before
a cut, a whole-video run also remembers tracks last seen *before* the window, and if such a
stale track, rather than a track of the window, would have taken a detection (two tracks
competing for one face), ids after the cut can differ from the unsplit run. A face that is
unseen for the whole warm-up window had expired by the cut in the unsplit run too, so it gets a
new id either way. A segment that does not decode as planned (damage, a plan/decoder
disagreement, a file changed meanwhile) makes the driver redo the whole video unsplit, so damaged
or truncated files get exactly the unsplit result.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import TYPE_CHECKING, Any

import numpy as np

from .config import DecodeConfig, RunConfig
from .decode.av_util import pts_seconds, select_video_stream
from .decode.base import FrameSampler
from .decode.pyav import PyAVStream
from .decode.span import FrameSpan
from .errors import SegmentError
from .output.arrow import from_numpy

if TYPE_CHECKING:
    import pyarrow as pa

    from .pipeline import Stages, VideoResult

#: a warm-up detection and an already merged one on the same frame are the same face from this IoU
LINK_IOU = 0.5


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
    """The video's duration in seconds from the container header (no demuxing), if any."""
    import av

    try:
        with av.open(str(path), metadata_errors="replace") as container:
            stream = select_video_stream(container)
            if stream is None:
                return None
            if stream.duration and stream.time_base:
                return float(stream.duration * stream.time_base)
            if container.duration:
                return container.duration / av.time_base
    except (av.FFmpegError, OSError, ValueError, UnicodeError):
        return None
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
    times = _timestamps(frame_pts, start_pts, time_base)
    span_s = max((times[-1] - times[0]) * n / (n - 1), duration or 0.0)  # the last frame lasts too
    n_segments = int(span_s // segment_s)
    if n_segments < 2:
        return _whole(path, f"{span_s:.1f} s of frames is shorter than 2 x {segment_s:g} s")
    cuts = _clean_cuts(packets)
    starts = _choose_starts(cuts, n, n_segments)
    if not starts:
        return _whole(path, "no keyframe where it could be cut")
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
    return SegmentPlan(path=path, n_frames=n, spans=tuple(spans),
                       reason=f"{len(spans)} segments cut at keyframes {starts}",
                       file_size=st.st_size, file_mtime_ns=st.st_mtime_ns)


def _timestamps(frame_pts: np.ndarray, start_pts: int, time_base: Any) -> list[float]:
    """The decoder's timestamps: :func:`pts_seconds`, clamped to be non-decreasing from 0."""
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


# -- analysing one segment ----------------------------------------------------------------------
def open_segment(path: str | os.PathLike[str], span: FrameSpan,
                 decode: DecodeConfig) -> PyAVStream:
    """Open ``path`` decoding only ``span`` (warm-up included), with ``decode``'s settings."""
    decode.validate()
    return PyAVStream.from_config(path, decode, span=span)


def process_segment(path: str | os.PathLike[str], span: FrameSpan, config: RunConfig,
                    stages: Stages) -> VideoResult:
    """Analyse one segment with the usual pipeline; its tables keep the warm-up rows.

    The row's ``frames_decoded`` counts the segment's own frames; the other counts include the
    warm-up and are recomputed by :func:`merge_segments`.
    """
    from .pipeline import process_video

    return process_video(path, config, stages,
                         opener=lambda p, decode: open_segment(p, span, decode))


# -- merging ----------------------------------------------------------------------------------
def _link(warm_frames: np.ndarray, warm_ids: np.ndarray, warm_boxes: np.ndarray,
          g_frames: np.ndarray, g_ids: np.ndarray, g_boxes: np.ndarray) -> dict[int, int]:
    """Local id -> global id, from detections matched on the warm-up frames, latest first
    (each local and each global id linked once)."""
    from .track import greedy_assign, iou_matrix

    mapping: dict[int, int] = {}
    for f in np.unique(warm_frames)[::-1]:
        local = np.flatnonzero(warm_frames == f)
        lo, hi = np.searchsorted(g_frames, [f, f + 1])
        if hi <= lo:
            continue
        iou = iou_matrix(warm_boxes[local].astype(np.float64), g_boxes[lo:hi].astype(np.float64))
        taken = set(mapping.values())
        iou[[warm_ids[i] in mapping for i in local], :] = -1.0  # linked on a later frame
        iou[:, [g in taken for g in g_ids[lo:hi]]] = -1.0
        for d, g in greedy_assign(iou, at_least=LINK_IOU):
            mapping[int(warm_ids[local[d]])] = int(g_ids[lo + g])
    return mapping


def merge_segments(plan: SegmentPlan, results: Sequence[VideoResult],
                   extra_s: float = 0.0) -> VideoResult:
    """One video's result from its segments' results (in plan order); see the module doc.

    Raises :class:`SegmentError` when the segments cannot stand for the whole video (one is not
    ``ok``, frame counts differ from the plan, the file changed after planning).
    """
    import pyarrow as pa
    import pyarrow.compute as pc

    from .output.schema import STATUS_OK
    from .pipeline import VideoResult

    if len(results) != len(plan.spans):
        raise SegmentError(f"{plan.path}: {len(results)} segment results for {len(plan.spans)} segments")
    for span, res in zip(plan.spans, results):
        row = res.row
        if row["status"] != STATUS_OK or res.frames is None or res.faces is None:
            raise SegmentError(f"segment {span.index} ended {row['status']}: {row.get('error')}")
        if (row.get("file_size"), row.get("file_mtime_ns")) != (plan.file_size, plan.file_mtime_ns):
            raise SegmentError(f"{plan.path}: the file changed after it was planned")
        if row["frames_decoded"] != span.n_frames:
            raise SegmentError(f"segment {span.index} decoded {row['frames_decoded']} frames, "
                               f"the plan has {span.n_frames}")
    frames_parts: list[pa.Table] = []
    faces_parts: list[pa.Table] = []
    g_frames = np.zeros(0, np.int64)
    g_ids = np.zeros(0, np.int64)
    g_boxes = np.zeros((0, 4), np.float64)
    next_id = 0
    for span, res in zip(plan.spans, results):
        assert res.frames is not None and res.faces is not None
        frames = res.frames.filter(pc.greater_equal(res.frames["frame_index"], span.first_index))
        faces = res.faces
        f_idx = faces["frame_index"].to_numpy()
        ids = faces["face_id"].to_numpy().astype(np.int64)
        boxes = np.stack([faces[c].to_numpy() for c in ("x1", "y1", "x2", "y2")], axis=1) \
            if faces.num_rows else np.zeros((0, 4), np.float32)
        warm = f_idx < span.first_index
        mapping = _link(f_idx[warm], ids[warm], boxes[warm], g_frames, g_ids, g_boxes) \
            if warm.any() else {}
        own = ~warm
        new_ids = np.empty(int(own.sum()), np.int64)
        for j, local in enumerate(ids[own].tolist()):
            if local not in mapping:
                mapping[local] = next_id
                next_id += 1
            new_ids[j] = mapping[local]
        faces = faces.filter(from_numpy(own, pa.bool_())).set_column(
            faces.schema.get_field_index("face_id"), "face_id",
            from_numpy(new_ids, faces.schema.field("face_id").type))
        frames_parts.append(frames)
        faces_parts.append(faces)
        g_frames = np.concatenate([g_frames, f_idx[own]])
        g_ids = np.concatenate([g_ids, new_ids])
        g_boxes = np.concatenate([g_boxes, boxes[own].astype(np.float64)])
    frames_t = pa.concat_tables(frames_parts)
    faces_t = pa.concat_tables(faces_parts)
    first = results[0].row
    row = dict(first)
    row.update(frames_decoded=sum(r.row["frames_decoded"] for r in results),
               frames_analyzed=frames_t.num_rows, faces_detected=faces_t.num_rows,
               tracks=next_id, status=STATUS_OK, error=None,
               processing_s=round(sum(r.row["processing_s"] or 0.0 for r in results) + extra_s, 4),
               finished_at=datetime.now(timezone.utc))
    if row["frames_decoded"] != plan.n_frames:
        raise SegmentError(f"{plan.path}: segments decoded {row['frames_decoded']} frames, "
                           f"the plan has {plan.n_frames}")
    return VideoResult(row, frames_t, faces_t)
