"""Face tracking: a stable integer ``face_id`` per person within one video.

Greedy IoU matching against the tracks seen in the last ``max_gap_s`` seconds, so a person who
stays in view keeps one id through brief misses (a hand over the face, a blink of the
detector). When frames are sampled sparsely (``--fps 1``) boxes move between samples; a
detection whose centre stays within half a box of a recent track, at a similar size, still
matches it.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .config import TrackConfig


def iou_matrix(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Pairwise IoU of boxes ``a`` (N×4) and ``b`` (M×4), x1 y1 x2 y2."""
    if len(a) == 0 or len(b) == 0:
        return np.zeros((len(a), len(b)), dtype=np.float32)
    lt = np.maximum(a[:, None, :2], b[None, :, :2])
    rb = np.minimum(a[:, None, 2:], b[None, :, 2:])
    inter = np.clip(rb - lt, 0, None).prod(axis=2)
    area_a = (a[:, 2] - a[:, 0]) * (a[:, 3] - a[:, 1])
    area_b = (b[:, 2] - b[:, 0]) * (b[:, 3] - b[:, 1])
    return inter / np.maximum(area_a[:, None] + area_b[None, :] - inter, 1e-6)


def _proximity(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """1 - (centre distance / half the mean box side) where sizes agree within 1.5×, else 0."""
    if len(a) == 0 or len(b) == 0:
        return np.zeros((len(a), len(b)), dtype=np.float32)
    ca = (a[:, :2] + a[:, 2:]) / 2
    cb = (b[:, :2] + b[:, 2:]) / 2
    sa = np.sqrt((a[:, 2] - a[:, 0]) * (a[:, 3] - a[:, 1]))
    sb = np.sqrt((b[:, 2] - b[:, 0]) * (b[:, 3] - b[:, 1]))
    dist = np.linalg.norm(ca[:, None] - cb[None, :], axis=2)
    half = np.maximum((sa[:, None] + sb[None, :]) / 4, 1e-6)
    ratio = np.maximum(sa[:, None], sb[None, :]) / np.maximum(np.minimum(sa[:, None], sb[None, :]), 1e-6)
    return np.where(ratio <= 1.5, np.clip(1 - dist / half, 0, None), 0.0)


@dataclass
class _Track:
    face_id: int
    box: np.ndarray
    last_seen_s: float
    hits: int = 1


class IoUTracker:
    """Assigns face ids frame by frame; call :meth:`update` in timestamp order."""

    def __init__(self, config: TrackConfig | None = None) -> None:
        self.config = config or TrackConfig()
        self._tracks: list[_Track] = []
        self._next_id = 0

    @property
    def num_tracks(self) -> int:
        """Number of distinct face ids handed out so far."""
        return self._next_id

    def update(self, boxes: np.ndarray, timestamp_s: float) -> np.ndarray:
        """Face ids (int32, one per row of ``boxes``) for the detections of one frame."""
        ids = np.full(len(boxes), -1, dtype=np.int32)
        live = [t for t in self._tracks if timestamp_s - t.last_seen_s <= self.config.max_gap_s]
        self._tracks = live
        if live and len(boxes):
            prev = np.stack([t.box for t in live])
            iou = iou_matrix(boxes, prev)
            # IoU decides; proximity only fills in where boxes moved too far to overlap much.
            score = np.where(iou >= self.config.iou_threshold, 1.0 + iou, _proximity(boxes, prev) * 0.99)
            for d, t in greedy_assign(score, above=0.2):
                ids[d] = live[t].face_id
                live[t].box = boxes[d].copy()
                live[t].last_seen_s = timestamp_s
                live[t].hits += 1
        for d in np.flatnonzero(ids < 0):
            ids[d] = self._next_id
            self._tracks.append(_Track(self._next_id, boxes[d].copy(), timestamp_s))
            self._next_id += 1
        return ids


def greedy_assign(score: np.ndarray, above: float | None = None,
                  at_least: float | None = None) -> list[tuple[int, int]]:
    """Greedy one-to-one matching of rows to columns by descending ``score`` (R×C).

    Pairs are taken best first, each row and each column once, while the score is ``> above``
    (or ``>= at_least``). Used by the tracker (detections × tracks) and by the segment merge
    (warm-up detections × merged detections, :func:`ferbatch.segments.merge_segments`).
    """
    pairs: list[tuple[int, int]] = []
    used_rows: set[int] = set()
    used_cols: set[int] = set()
    for flat in np.argsort(score, axis=None)[::-1]:
        r, c = divmod(int(flat), score.shape[1])
        value = score[r, c]
        if (above is not None and value <= above) or (at_least is not None and value < at_least):
            break
        if r in used_rows or c in used_cols:
            continue
        used_rows.add(r)
        used_cols.add(c)
        pairs.append((r, c))
    return pairs
