"""Detection interval: which analysed frames the detector sees, and the tracker for the rest.

With ``--detect-interval N`` the detector runs on every (N+1)-th analysed frame of a video (its
first one included) and :class:`~ferbatch.propagate.FlowTracker` carries the faces over the N
frames between, like the ``interval`` of NVIDIA DeepStream's nvinfer. In adaptive mode (the
default when N > 0) the detector also runs on any frame where the tracker is unsure
(:meth:`~ferbatch.propagate.FlowTracker.step`'s reasons). Every analysed frame still gets rows.

The frames on the fixed grid are known before they are analysed, so they are still detected in
batches (and concurrently, :func:`ferbatch.pipeline.detect_batches`); only early detections
run one frame at a time. A segment (:mod:`ferbatch.segments`) starts its own tracker: its first
decoded frame and its first own frame are always detected.
"""

from __future__ import annotations

import logging
from collections import deque
from collections.abc import Iterator
from typing import Protocol

import numpy as np

from .config import DetectConfig, IntervalConfig
from .detect import Detections
from .prepare import AnalysisFrame
from .propagate import REJECTED, FlowTracker

log = logging.getLogger(__name__)


class Detector(Protocol):
    """What the schedule needs of :class:`~ferbatch.detect.FaceDetector`."""

    config: DetectConfig

    def detect_frames(self, frames: list[AnalysisFrame]) -> list[Detections]: ...

    def refine(self, frame: np.ndarray, boxes: np.ndarray,
               size: tuple[int, int] | None = None) -> Detections: ...


class DetectionInterval:
    """Splits batches of frames into the ones to detect, then completes each batch by tracking.

    Use :meth:`keyframes` on the stream of frame batches (its output goes to the detector, in
    order), then :meth:`complete` on each detected batch in the same order. ``first_index``:
    a frame index that must be detected too (a segment's first own frame).
    """

    def __init__(self, config: IntervalConfig, detector: Detector,
                 first_index: int | None = None) -> None:
        self.config = config
        self.detector = detector
        self.first_index = first_index
        self.tracker = FlowTracker(config)
        self._position = 0  # analysed frames seen by keyframes()
        self._batches: deque[tuple[list[AnalysisFrame], list[bool]]] = deque()
        self.early = 0  # detections the tracker asked for
        self.reasons: dict[str, int] = {}

    @property
    def enabled(self) -> bool:
        return self.config.detect_interval > 0

    def keyframes(self, batches: Iterator[list[AnalysisFrame]]) -> Iterator[list[AnalysisFrame]]:
        """For each batch, the frames on the detection grid (all of them when the interval is 0)."""
        period = self.config.detect_interval + 1
        for batch in batches:
            marks = []
            for frame in batch:
                marks.append(self._position % period == 0 or frame.index == self.first_index)
                self._position += 1
            self._batches.append((batch, marks))
            yield [f for f, m in zip(batch, marks) if m]

    def complete(self, detected: list[Detections]
                 ) -> Iterator[tuple[AnalysisFrame, np.ndarray, Detections, bool]]:
        """Each frame of the next batch with its grey image (H×W uint8, for the crops), its faces
        and whether they were detected on it (``False``: carried by the tracker)."""
        batch, marks = self._batches.popleft()
        found = iter(detected)
        for frame, mark in zip(batch, marks):
            grey = frame.grey
            if mark:
                det = next(found)
                if self.enabled:
                    self.tracker.reset(grey, det)
                yield frame, grey, det, True
                continue
            det, reason = self.tracker.step(grey)
            # refine (O-Net) only what is kept: an adaptive re-detection replaces it anyway
            if self.config.refine and len(det) and not (reason is not None and self.config.adaptive):
                det = self.detector.refine(frame.det_image, det.boxes, frame.size)
                ok = det.scores >= self.detector.config.min_score
                self.tracker.correct(det, ok)
                if not ok.all():
                    det = Detections(det.boxes[ok], det.scores[ok], det.landmarks[ok])
                    reason = reason or REJECTED
            if reason is not None and self.config.adaptive:
                self.early += 1
                self.reasons[reason] = self.reasons.get(reason, 0) + 1
                det = self.detector.detect_frames([frame])[0]
                self.tracker.reset(grey, det)
                yield frame, grey, det, True
                continue
            yield frame, grey, det, False
