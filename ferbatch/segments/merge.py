"""Analysing one segment and merging a video's segments (see :mod:`ferbatch.segments`)."""

from __future__ import annotations

import os
from collections.abc import Callable, Sequence
from datetime import UTC, datetime
from typing import TYPE_CHECKING

import numpy as np

from ..config import DecodeConfig, RunConfig
from ..decode.pyav import PyAVStream
from ..decode.span import FrameSpan
from ..errors import SegmentError
from ..output.arrow import from_numpy
from .plan import SegmentPlan

if TYPE_CHECKING:
    from ..pipeline import Stages, VideoResult

#: a warm-up detection and an already merged one on the same frame are the same face from this IoU
LINK_IOU = 0.5


def open_segment(path: str | os.PathLike[str], span: FrameSpan,
                 decode: DecodeConfig) -> PyAVStream:
    """Open ``path`` decoding only ``span`` (warm-up included), with ``decode``'s settings."""
    decode.validate()
    return PyAVStream.from_config(path, decode, span=span)


def process_segment(path: str | os.PathLike[str], span: FrameSpan, config: RunConfig,
                    stages: Stages, progress: Callable[[int], None] | None = None) -> VideoResult:
    """Analyse one segment with the usual pipeline; its tables keep the warm-up rows.

    The row's ``frames_decoded`` counts the segment's own frames; the other counts include the
    warm-up and are recomputed by :func:`merge_segments`. ``progress``: as
    :func:`~ferbatch.pipeline.process_video`'s.
    """
    from ..pipeline import process_video

    return process_video(path, config, stages, progress=progress,
                         opener=lambda p, decode: open_segment(p, span, decode))



def _link(warm_frames: np.ndarray, warm_ids: np.ndarray, warm_boxes: np.ndarray,
          g_frames: np.ndarray, g_ids: np.ndarray, g_boxes: np.ndarray) -> dict[int, int]:
    """Local id -> global id, from detections matched on the warm-up frames, latest first
    (each local and each global id linked once)."""
    from ..track import greedy_assign, iou_matrix

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


def _renumber(local_ids: np.ndarray, mapping: dict[int, int], next_id: int) -> tuple[np.ndarray, int]:
    """Global ids of ``local_ids``: linked ones from ``mapping``, the others numbered from
    ``next_id`` in order of appearance (``mapping`` grows); returns the ids and the next free."""
    out = np.empty(len(local_ids), np.int64)
    for j, local in enumerate(local_ids.tolist()):
        if local not in mapping:
            mapping[local] = next_id
            next_id += 1
        out[j] = mapping[local]
    return out, next_id


def _check_results(plan: SegmentPlan, results: Sequence[VideoResult]) -> None:
    """Raise :class:`SegmentError` unless every segment ended ``ok`` with the planned frames
    of the file as planned."""
    from ..output.schema import STATUS_OK

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


def merge_segments(plan: SegmentPlan, results: Sequence[VideoResult],
                   extra_s: float = 0.0) -> VideoResult:
    """One video's result from its segments' results (in plan order); see the module doc.

    Raises :class:`SegmentError` when the segments cannot stand for the whole video (one is not
    ``ok``, frame counts differ from the plan, the file changed after planning).
    """
    import pyarrow as pa
    import pyarrow.compute as pc

    from ..output.schema import STATUS_OK
    from ..pipeline import VideoResult

    _check_results(plan, results)
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
        new_ids, next_id = _renumber(ids[own], mapping, next_id)
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
    durations = [r.row["duration_s"] for r in results if r.row.get("duration_s") is not None]
    row.update(duration_s=max(durations, default=None),  # the last segment's end, if longer
               frames_decoded=sum(r.row["frames_decoded"] for r in results),
               frames_analyzed=frames_t.num_rows, faces_detected=faces_t.num_rows,
               tracks=next_id, status=STATUS_OK, error=None,
               processing_s=round(sum(r.row["processing_s"] or 0.0 for r in results) + extra_s, 4),
               finished_at=datetime.now(UTC))
    if row["frames_decoded"] != plan.n_frames:
        raise SegmentError(f"{plan.path}: segments decoded {row['frames_decoded']} frames, "
                           f"the plan has {plan.n_frames}")
    return VideoResult(row, frames_t, faces_t)
