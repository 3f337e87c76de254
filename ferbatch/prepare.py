"""Prepare stage: a decoded frame → what the analysis keeps of it (issue 14, bounded memory).

A decoded frame is a full-resolution RGB image (3 bytes a pixel: 6.2 MB at 1080p, 24.9 MB at
4K). The analysis never needs it whole: the detector sees the frame downscaled so its longer
side is at most ``--det-max-side`` (:func:`detection_size`; MTCNN's own first step), and the
crops, the tracker and the quality signals use the full-resolution grey image (ITU-R 601 luma,
:func:`ferbatch.crop.to_grey`). :func:`prepare_frame` makes both from the RGB image in the
decode thread, right after it is decoded, and drops the RGB image: a frame waiting in a queue
or in a detection batch then holds 1 byte a pixel plus a ≤ 640-pixel RGB image (2.8 MB at 1080p,
9 MB at 4K, instead of 6.2 and 24.9 MB).

Both images are computed exactly as the detector and the crops computed them from the RGB
frame before (same OpenCV calls, same sizes), so the rows are identical.
"""

from __future__ import annotations

import queue
import threading
from collections.abc import Generator
from dataclasses import dataclass

import cv2
import numpy as np

from .crop import to_grey
from .decode import Frame, FrameSampler, VideoStream


def detection_size(width: int, height: int, max_side: int) -> tuple[float, tuple[int, int]]:
    """(ratio, (w, h)): the scale factor (≤ 1) and the size a ``width``×``height`` frame is
    downscaled to for detection, so that its longer side is at most ``max_side`` pixels
    (ratio 1 and the frame's own size when it is small enough)."""
    ratio = min(1.0, max_side / max(height, width))
    if ratio >= 1.0:
        return 1.0, (width, height)
    return ratio, (max(1, round(width * ratio)), max(1, round(height * ratio)))


def downscale(image: np.ndarray, max_side: int) -> tuple[np.ndarray, float]:
    """Shrink an H×W or H×W×C image so its longer side is at most ``max_side`` pixels
    (:func:`detection_size`), by pixel-area averaging (``cv2.INTER_AREA``).

    Returns the image (``image`` itself when it is small enough already) and the ratio (≤ 1)
    from ``image``'s pixels to the returned image's; divide coordinates by it to map them back.
    Used for the detector's input and the flow tracker's images (:mod:`ferbatch.propagate`).
    """
    h, w = image.shape[:2]
    ratio, size = detection_size(w, h, max_side)
    if ratio >= 1.0:
        return image, 1.0
    return cv2.resize(image, size, interpolation=cv2.INTER_AREA), ratio


@dataclass
class AnalysisFrame:
    """One sampled frame as the analysis holds it.

    ``index`` / ``timestamp_s`` as in :class:`~ferbatch.decode.Frame`. ``det_image``: the
    displayed frame as RGB uint8 h×w×3 downscaled for detection (longer side ≤
    ``max_side``, :func:`detection_size`). ``grey``: the displayed frame's luma, uint8 H×W at
    full resolution (what the face crops are cut from). ``size``: the displayed frame's
    (width, height) in pixels, the space every box and landmark is given in.
    """

    index: int
    timestamp_s: float
    det_image: np.ndarray
    grey: np.ndarray

    @property
    def size(self) -> tuple[int, int]:
        """(width, height) of the displayed frame in pixels."""
        return int(self.grey.shape[1]), int(self.grey.shape[0])

    @property
    def shape(self) -> tuple[int, int, int]:
        """(H, W, 3): the shape of the displayed RGB frame (not held)."""
        return int(self.grey.shape[0]), int(self.grey.shape[1]), 3

    @property
    def nbytes(self) -> int:
        """Bytes of pixel data held."""
        return int(self.det_image.nbytes + self.grey.nbytes)


def prepare_frame(frame: Frame, max_side: int) -> AnalysisFrame:
    """The :class:`AnalysisFrame` of a decoded ``frame`` (RGB uint8 H×W×3); the RGB image is
    not kept. ``max_side``: ``--det-max-side``."""
    image = frame.image
    return AnalysisFrame(index=frame.index, timestamp_s=frame.timestamp_s,
                         det_image=np.ascontiguousarray(downscale(image, max_side)[0]),
                         grey=to_grey(image))


#: prepared batches waiting between the decode thread and detection: decoding (≈ 500 frames/s
#: at 360p on one core) outruns detection, so one batch ready ahead keeps the detector fed; more
#: would only hold frames (memory grows with resolution, issue 14)
QUEUED_BATCHES = 1


def prepared_batches(stream: VideoStream, sampler: FrameSampler, size: int, max_side: int,
                     stop: threading.Event) -> Generator[list[AnalysisFrame], None, None]:
    """Decoded frames, prepared for analysis (:func:`prepare_frame`: the detection-size RGB
    image and the full-resolution grey one; the full RGB frame is dropped in the decode
    thread), in lists of ``size``, produced by a background thread. At most
    :data:`QUEUED_BATCHES` lists wait in the queue, plus the one being filled."""
    q: queue.Queue[list[AnalysisFrame] | BaseException | None] = queue.Queue(maxsize=QUEUED_BATCHES)

    def produce() -> None:
        batch: list[AnalysisFrame] = []
        try:
            for frame in stream.frames(sampler):
                if stop.is_set():
                    break
                batch.append(prepare_frame(frame, max_side))
                del frame  # the full-resolution RGB image: not held while waiting on the queue
                if len(batch) == size:
                    q.put(batch)
                    batch = []
            if batch:
                q.put(batch)
            q.put(None)
        except BaseException as exc:  # noqa: BLE001 - handed to the consumer thread
            q.put(exc)

    thread = threading.Thread(target=produce, name="ferbatch-decode", daemon=True)
    thread.start()
    try:
        while True:
            item = q.get()
            if item is None:
                return
            if isinstance(item, BaseException):
                raise item
            yield item
    finally:
        stop.set()
        while thread.is_alive():  # unblock a producer waiting on a full queue
            try:
                q.get(timeout=0.05)
            except queue.Empty:
                pass
        thread.join()
