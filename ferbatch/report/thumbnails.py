"""Face thumbnails cut from the source video at chosen moments, for the per-video report.

Frames are found and shown as the pipeline's decoder (:mod:`ferbatch.decode.pyav`) finds and
shows them, through its own helpers: the same video stream (:func:`select_video_stream`), the
same clock (:func:`pts_seconds`) and the same display geometry (:func:`display_frame`: sample
aspect ratio, display matrix rotation and mirror, with the angle the pipeline recorded in the
videos table when the caller passes it). Seek to the timestamp (PyAV lands on an earlier
keyframe), decode forward to the first frame at or after it, show it as displayed, crop the face box (displayed-frame pixels, as in the faces table) with a margin, and
encode a small JPEG. A missing or unreadable video never fails the report: the affected
thumbnails come back as ``None`` with a reason, and a warning names the file and the reason.
"""

from __future__ import annotations

import io
import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path

import av
import numpy as np

from ..decode.av_util import display_frame, pts_seconds, select_video_stream

log = logging.getLogger(__name__)

__all__ = ["ThumbRequest", "ThumbResult", "extract_thumbnails", "crop_face", "frame_at"]


@dataclass(frozen=True)
class ThumbRequest:
    """One thumbnail to cut: the face box at time ``timestamp_s``."""

    key: tuple
    timestamp_s: float
    box: tuple[float, float, float, float]  # x1, y1, x2, y2 in displayed-frame pixels
    landmarks: tuple[float, ...] | None = None  # the five landmarks, x, y each (for Grad-CAM)


@dataclass
class ThumbResult:
    """A JPEG (``jpeg`` bytes) or the reason there is none (``error``)."""

    jpeg: bytes | None
    error: str | None = None
    frame_time_s: float | None = None
    heat_jpeg: bytes | None = None  # the same crop with its Grad-CAM map overlaid


#: ``(frame RGB H×W×3, box, landmarks or None, height)`` → JPEG of the crop with its heat map
Explainer = Callable[[np.ndarray, tuple, "tuple | None", int], bytes]


def crop_face(
    image: np.ndarray,
    box: tuple[float, float, float, float],
    *,
    margin: float = 0.15,
    height: int = 112,
    quality: int = 85,
) -> bytes:
    """JPEG bytes of ``box`` (plus ``margin`` of its size on each side) of an RGB image."""
    from PIL import Image

    h, w = image.shape[:2]
    x1, y1, x2, y2 = (float(v) for v in box)
    if not all(np.isfinite([x1, y1, x2, y2])) or x2 <= x1 or y2 <= y1:
        raise ValueError(f"invalid box {box}")
    mx, my = (x2 - x1) * margin, (y2 - y1) * margin
    left, top = max(0, int(np.floor(x1 - mx))), max(0, int(np.floor(y1 - my)))
    right, bottom = min(w, int(np.ceil(x2 + mx))), min(h, int(np.ceil(y2 + my)))
    if right <= left or bottom <= top:
        raise ValueError(f"box {box} lies outside the {w}×{h} frame")
    crop = Image.fromarray(np.ascontiguousarray(image[top:bottom, left:right, :3]))
    scale = height / crop.height
    crop = crop.resize((max(1, round(crop.width * scale)), height), Image.BILINEAR)
    buf = io.BytesIO()
    crop.save(buf, format="JPEG", quality=quality)
    return buf.getvalue()


def extract_thumbnails(
    path: str | Path,
    requests: Sequence[ThumbRequest],
    *,
    size: tuple[int | None, int | None] | None = None,
    rotation: int | None = None,
    height: int = 112,
    max_frames: int = 20_000,
    explainer: Explainer | None = None,
) -> dict[tuple, ThumbResult]:
    """Cut one JPEG per request from the video at ``path``; never raises for a bad video.

    ``size``: the displayed (width, height) the boxes refer to (the videos table's); when the
    decoded frame differs, boxes are scaled to it. ``rotation``: the display rotation the
    pipeline applied (the videos table's ``rotation``); None: the frame's own. ``max_frames``:
    most frames decoded forward from a seek point for one request (a file without a seek index
    seeks to its start). Thumbnails that cannot be cut are logged as one warning per file.
    ``explainer``: also make each thumbnail's Grad-CAM overlay (``heat_jpeg``; a failure there
    is logged and leaves it ``None``).
    """
    if not requests:
        return {}
    results = _extract(Path(path), requests, size, rotation, height, max_frames, explainer)
    failed = [r for r in results.values() if r.error]
    if failed:
        log.warning("%s: %d of %d thumbnail(s) not extracted: %s", path, len(failed), len(results),
                    "; ".join(sorted({r.error for r in failed}))[:300])
    return results


def _extract(path: Path, requests: Sequence[ThumbRequest], size, rotation: int | None,
             height: int, max_frames: int, explainer: Explainer | None = None,
             ) -> dict[tuple, ThumbResult]:
    if not path.is_file():
        return {r.key: ThumbResult(None, "video not found") for r in requests}
    try:
        container = av.open(str(path), metadata_errors="replace")
    except Exception as exc:  # av.error.* and OSError: any unreadable file
        return {r.key: ThumbResult(None, f"cannot open video: {exc}") for r in requests}
    results: dict[tuple, ThumbResult] = {}
    try:
        stream = select_video_stream(container)
        if stream is None:
            return {r.key: ThumbResult(None, "no video stream") for r in requests}
        stream.thread_type = "NONE"  # we stop early: frame threading can drop/deadlock
        for req in sorted(requests, key=lambda r: r.timestamp_s):
            try:
                results[req.key] = _one(container, stream, req, size, rotation, height, max_frames,
                                        explainer)
            except Exception as exc:  # a corrupt stretch: this thumbnail only
                results[req.key] = ThumbResult(None, f"decode failed: {exc}")
    except Exception as exc:
        for req in requests:
            results.setdefault(req.key, ThumbResult(None, f"decode failed: {exc}"))
    finally:
        container.close()
    return results


def _decode_at(container, stream, target: float, rotation: int | None,
               max_frames: int) -> tuple[np.ndarray, float] | None:
    """The first frame at or after ``target`` seconds (or the last one decoded within
    ``max_frames`` of the seek point), RGB as displayed (:func:`display_frame`), with its time; None: none."""
    tb = stream.time_base or Fraction(1, 90000)
    start = stream.start_time or 0
    # the inverse of pts_seconds: the pts of the target time
    container.seek(int(max(target, 0.0) / tb) + start, stream=stream, backward=True, any_frame=False)
    best = None
    best_t = None
    for n, frame in enumerate(container.decode(stream)):
        if frame.pts is None:
            continue
        best, best_t = frame, pts_seconds(frame.pts, stream.start_time, tb)
        if best_t >= target - 1e-3 or n >= max_frames:
            break
    if best is None:
        return None
    return display_frame(best, stream, rotation), best_t


def frame_at(path: str | Path, timestamp_s: float, *, rotation: int | None = None,
             max_frames: int = 20_000) -> tuple[np.ndarray, float]:
    """The displayed RGB frame (H×W×3 uint8) of ``path`` at ``timestamp_s`` seconds from the
    stream start (the first frame at or after it, as the pipeline counts time) and its time.

    Raises :class:`~ferbatch.errors.VideoOpenError` naming the file when it cannot be opened,
    has no video stream or no frame at that time.
    """
    from ..errors import VideoOpenError

    path = Path(path)
    if not path.is_file():
        raise VideoOpenError(f"{path}: no such file")
    try:
        container = av.open(str(path), metadata_errors="replace")
    except Exception as exc:  # av.error.* and OSError: any unreadable file
        raise VideoOpenError(f"{path}: cannot open video: {exc}") from exc
    try:
        stream = select_video_stream(container)
        if stream is None:
            raise VideoOpenError(f"{path}: no video stream")
        stream.thread_type = "NONE"
        try:
            got = _decode_at(container, stream, float(timestamp_s), rotation, max_frames)
        except VideoOpenError:
            raise
        except Exception as exc:
            raise VideoOpenError(f"{path}: decode failed at {timestamp_s} s: {exc}") from exc
    finally:
        container.close()
    if got is None:
        raise VideoOpenError(f"{path}: no frame decoded at {timestamp_s} s")
    if got[1] < float(timestamp_s) - 0.5:  # decoding ran out: the video ends before that time
        raise VideoOpenError(f"{path}: no frame at {timestamp_s} s: the video ends at "
                             f"{got[1]:.2f} s")
    return got


def _one(container, stream, req: ThumbRequest, size, rotation: int | None, height: int,
         max_frames: int, explainer: Explainer | None = None) -> ThumbResult:
    got = _decode_at(container, stream, float(req.timestamp_s), rotation, max_frames)
    if got is None:
        return ThumbResult(None, "no frame decoded at that time")
    img, best_t = got
    box, marks = req.box, req.landmarks
    if size and size[0] and size[1]:
        h, w = img.shape[:2]
        sx, sy = w / float(size[0]), h / float(size[1])
        if abs(sx - 1) > 1e-3 or abs(sy - 1) > 1e-3:
            box = (box[0] * sx, box[1] * sy, box[2] * sx, box[3] * sy)
            marks = None if marks is None else tuple(
                v * (sx if i % 2 == 0 else sy) for i, v in enumerate(marks))
    result = ThumbResult(crop_face(img, box, height=height), None, best_t)
    if explainer is not None:
        try:
            result.heat_jpeg = explainer(img, box, marks, height)
        except Exception as exc:  # noqa: BLE001 - the plain thumbnail stays; the reason is logged
            log.warning("Grad-CAM of the thumbnail at %.2f s failed: %s", best_t, exc)
    return result
