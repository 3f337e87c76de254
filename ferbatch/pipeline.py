"""One video through every stage: decode → detect → track → crop → classify → tables.

:class:`Stages` holds the loaded models (loaded once, reused for every video in a process or
Ray actor); :func:`process_video` composes the stages for one file and returns its rows. It owns
no image logic: each step is a call into its stage module. Decoding runs in a background thread
(PyAV releases the GIL) so it overlaps detection; that thread also prepares each frame
(:mod:`ferbatch.prepare`), so no full-resolution RGB frame waits in a queue or a batch.
"""

from __future__ import annotations

import logging
import os
import threading
import time
import traceback
from collections import deque
from collections.abc import Callable, Generator, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from contextlib import closing
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

import numpy as np
import pyarrow as pa
import torch

from .classify import EmotionClassifier
from .config import DecodeConfig, RunConfig
from .crop import crop_faces
from .decode import FrameSampler, VideoStream, open_video
from .detect import Detections, FaceDetector
from .devices import (
    default_batch_sizes,
    detect_concurrency,
    out_of_memory_message,
    release_memory,
    resolve_device,
    shared_threads,
)
from .errors import FerbatchError
from .interval import DetectionInterval
from .models.bundled import resolve_model
from .models.checkpoint import file_sha256, load_checkpoint
from .output.arrow import from_columns
from .output.layout import video_id_for
from .output.schema import (
    BOX_DETECTED,
    BOX_TRACKED,
    FRAMES_SCHEMA,
    LANDMARK_COLUMNS,
    STATUS_FAILED,
    STATUS_OK,
    STATUS_PARTIAL,
    Provenance,
    faces_schema,
    new_video_row,
    prob_column,
)
from .prepare import prepared_batches
from .quality import face_quality, quality_columns
from .track import IoUTracker

if TYPE_CHECKING:
    from .output.results import Results

log = logging.getLogger(__name__)

ProgressFn = Callable[[int], None]


def make_provenance(config: RunConfig, model_name: str, model_sha256: str,
                    labels: list[str]) -> Provenance:
    """The :class:`Provenance` of a run of ``config`` with the model so identified."""
    return Provenance(model=model_name, model_sha256=model_sha256, labels=tuple(labels),
                      detector=config.detect.describe() + config.interval.describe(),
                      sampling=FrameSampler.from_config(config.decode).describe(),
                      settings_fingerprint=config.fingerprint(model_sha256))


def run_provenance(config: RunConfig) -> Provenance:
    """The :class:`Provenance` of a run, from the checkpoint's metadata (no model is built,
    no detector loaded): what a driver needs to skip finished videos and write failure rows.

    Raises :class:`~ferbatch.errors.ModelError` for a missing or unreadable checkpoint.
    """
    path = resolve_model(config.classify.model)
    ckpt = load_checkpoint(path)
    sha = file_sha256(path)
    return make_provenance(config, EmotionClassifier.model_name(ckpt.arch, path, sha), sha,
                           list(ckpt.labels))


class Stages:
    """The loaded models of a run: one detector and one classifier, built once."""

    def __init__(self, config: RunConfig) -> None:
        self.config = config
        self.device = resolve_device(config.device)
        sizes = default_batch_sizes(self.device, config.detect.batch_size,
                                    config.classify.batch_size)
        self.detect_batch, self.classify_batch = sizes.detect, sizes.classify
        self.detector = FaceDetector(config.detect, device=self.device)
        self.classifier = EmotionClassifier(config.classify.model, device=str(self.device),
                                            batch_size=self.classify_batch,
                                            tta_flip=config.classify.tta_flip,
                                            backend=config.classify.backend)
        self.labels = self.classifier.labels
        self.provenance = make_provenance(config, self.classifier.name, self.classifier.sha256,
                                          self.labels)
        self.fingerprint = self.provenance.settings_fingerprint
        self.faces_schema = faces_schema(self.labels)


@dataclass
class VideoResult:
    """Everything one video produced: its ``videos.parquet`` row (a dict) and its ``frames``
    and ``faces`` tables as **pyarrow** Tables without the ``video_id`` column (``None`` for a
    failed video); :meth:`to_pandas` gives pandas frames. ``traceback`` is the formatted stack
    of an unexpected failure (for the run's log, never in a row)."""

    row: dict[str, Any]
    frames: pa.Table | None
    faces: pa.Table | None
    traceback: str | None = None

    @property
    def status(self) -> str:
        return self.row["status"]

    def to_pandas(self) -> Results:
        """This video as a :class:`~ferbatch.output.results.Results` — typed pandas frames
        ``videos`` (one row), ``frames`` and ``faces``, ``labels`` — with the dtypes
        :func:`ferbatch.load` gives for an output folder (``out`` is ``None``)."""
        from .output.arrow import from_rows
        from .output.results import assemble, typed_videos, with_video_id
        from .output.schema import VIDEOS_SCHEMA, labels_from_columns

        video_id = self.row["video_id"]
        faces = self.faces if self.faces is not None else faces_schema([]).empty_table()
        labels = labels_from_columns(faces.column_names)

        def with_id(table: pa.Table | None, schema: pa.Schema) -> pa.Table:
            return schema.empty_table() if table is None else with_video_id(table, video_id)

        videos = typed_videos(from_rows([self.row], VIDEOS_SCHEMA))
        return assemble(None, videos, with_id(self.frames, FRAMES_SCHEMA),
                        with_id(self.faces, faces_schema(labels)), labels, shown=str(self.row["path"]))


@dataclass
class _Columns:
    """Column buffers, appended per batch and turned into Arrow tables once."""

    frame_index: list[np.ndarray] = field(default_factory=list)
    frame_ts: list[np.ndarray] = field(default_factory=list)
    num_faces: list[np.ndarray] = field(default_factory=list)
    face_frame: list[np.ndarray] = field(default_factory=list)
    face_ts: list[np.ndarray] = field(default_factory=list)
    face_id: list[np.ndarray] = field(default_factory=list)
    det_score: list[np.ndarray] = field(default_factory=list)
    boxes: list[np.ndarray] = field(default_factory=list)
    landmarks: list[np.ndarray] = field(default_factory=list)
    probs: list[np.ndarray] = field(default_factory=list)
    quality: list[dict[str, np.ndarray]] = field(default_factory=list)
    detected: list[np.ndarray] = field(default_factory=list)


def _cat(parts: list[np.ndarray], dtype: Any, shape: tuple[int, ...] = ()) -> np.ndarray:
    return np.concatenate(parts).astype(dtype) if parts else np.zeros((0, *shape), dtype=dtype)


B = TypeVar("B")


def detect_batches(batches: Iterator[list[B]], detect: Callable[[list[B]], list[Detections]],
                   workers: int) -> Generator[tuple[list[B], list[Detections]], None, None]:
    """Each batch of frames with its detections (``detect(batch)``, e.g.
    :meth:`FaceDetector.detect_frames <ferbatch.detect.FaceDetector.detect_frames>`), in order.

    With ``workers`` > 1, batches are detected concurrently in threads, the intra-op thread
    count divided among them for the duration: MTCNN is many small ops plus Python glue, which
    leave cores idle under intra-op parallelism alone (1.2–1.7× faster detection on 2 cores,
    ``bench/bench_pipeline.py``). ``torch.set_num_threads`` is process-wide, hence restored.
    At most ``workers`` + 1 batches are held at once (those in flight and the one yielded).
    """
    if workers <= 1:
        for batch in batches:
            yield batch, detect(batch)
        return
    inflight: deque[tuple[list[B], Future[list[Detections]]]] = deque()
    with shared_threads(workers), ThreadPoolExecutor(
            workers, thread_name_prefix="ferbatch-detect") as pool:
        try:
            for batch in batches:
                inflight.append((batch, pool.submit(detect, batch)))
                if len(inflight) > workers:
                    done, future = inflight.popleft()
                    yield done, future.result()
            while inflight:
                done, future = inflight.popleft()
                yield done, future.result()
        finally:
            for _, future in inflight:
                future.cancel()


def process_video(path: str | os.PathLike[str], config: RunConfig | None = None,
                  stages: Stages | None = None, progress: ProgressFn | None = None,
                  opener: Callable[[str | os.PathLike[str], DecodeConfig], VideoStream] | None = None,
                  video_id: str | None = None) -> VideoResult:
    """Analyse one video file; never raises for bad input (the row says ``failed``/``partial``).

    Returns a :class:`VideoResult`: the ``videos.parquet`` row and the frames / faces rows as
    pyarrow Tables, nothing written (:meth:`VideoResult.to_pandas` for pandas frames;
    :func:`ferbatch.run_videos` writes an output folder). ``stages`` lets a caller reuse loaded
    models across videos; ``progress`` is called with the number of frames analysed after each
    batch. ``opener(path, decode_config)`` replaces
    :func:`~ferbatch.decode.open_video` (:mod:`ferbatch.segments` opens one time segment).
    ``video_id``: the id the run's plan gave the file (default: :func:`video_id_for`). With
    ``stages``, only ``config``'s decode, interval and track settings apply (the detector's and
    classifier's are those the stages were loaded with), and the row records what applied.
    """
    config = (config or RunConfig()).validate()
    stages = stages or Stages(config)
    # the loaded models' settings (detect, classify, device) are the stages'; a call chooses how
    # frames are sampled, carried between detections and tracked: its row records exactly that
    config = replace(stages.config, decode=config.decode, interval=config.interval,
                     track=config.track)
    started = time.perf_counter()
    sampler = FrameSampler.from_config(config.decode)
    provenance = stages.provenance if config == stages.config else make_provenance(
        config, stages.classifier.name, stages.classifier.sha256, stages.labels)
    row = new_video_row(path, video_id or video_id_for(path), provenance)
    frames_t = faces_t = None
    trace: str | None = None
    try:
        with (opener or open_video)(path, config.decode) as stream:
            info = stream.info
            row.update(duration_s=info.duration_s, fps=info.fps, width=info.width,
                       height=info.height, rotation=info.rotation, codec=info.codec)
            cols, tracker = _analyse(stream, sampler, config, stages, progress)
            row["frames_decoded"] = stream.frames_decoded
            decode_error = stream.error
            row.update(stream.row_fields())  # final duration, time source (after decoding)
        frames_t, faces_t = _tables(cols, stages)
        row.update(frames_analyzed=frames_t.num_rows, faces_detected=faces_t.num_rows,
                   tracks=tracker.num_tracks)
        if decode_error:
            row.update(status=STATUS_PARTIAL, error=f"{Path(path).name}: {decode_error}")
        else:
            row["status"] = STATUS_OK
    except FerbatchError as exc:  # the file's own problem: the message says it all
        row["error"] = str(exc)
        log.info("%s failed: %s", path, exc, exc_info=True)
    except torch.OutOfMemoryError:  # the device's limit, not the file's fault
        row["error"] = out_of_memory_message(path, stages.device)
        log.warning("%s", row["error"], exc_info=True)
        release_memory(stages.device)
    except Exception as exc:  # a bug or the machine, not the file: one row, the stack in the log
        row["error"] = f"{Path(path).name}: {type(exc).__name__}: {exc}"
        trace = traceback.format_exc()
        log.error("%s failed: %s: %s", path, type(exc).__name__, exc, exc_info=True)
    row["processing_s"] = round(time.perf_counter() - started, 4)
    row["finished_at"] = datetime.now(UTC)
    if row["status"] == STATUS_FAILED:
        frames_t = faces_t = None
    return VideoResult(row, frames_t, faces_t, trace)


def _analyse(stream: VideoStream, sampler: FrameSampler, config: RunConfig, stages: Stages,
             progress: ProgressFn | None) -> tuple[_Columns, IoUTracker]:
    """Run detect → track → crop over batches of frames; classify crops in large batches."""
    tracker = IoUTracker(config.track)
    cols = _Columns()
    # per frame: face crops waiting for the classifier, their boxes, landmarks, the frame's (H, W)
    pending: list[tuple[np.ndarray, np.ndarray, np.ndarray, tuple[int, int]]] = []
    pending_n = 0
    pre = stages.classifier.preprocess
    stop = threading.Event()

    def flush() -> None:
        """Classify the waiting crops and measure their quality, one batch for both."""
        nonlocal pending, pending_n
        if pending:
            crops, boxes, marks, sizes = zip(*pending)
            batch = np.concatenate(crops)
            cols.probs.append(stages.classifier(batch))
            frame_sizes = np.repeat(np.array(sizes), [len(b) for b in boxes], axis=0)
            cols.quality.append(face_quality(batch, np.concatenate(boxes), np.concatenate(marks),
                                             frame_sizes))
            pending, pending_n = [], 0

    workers = detect_concurrency(stages.device)
    span = getattr(stream, "span", None)
    interval = DetectionInterval(config.interval, stages.detector,
                                 first_index=span.first_index if span is not None else None)
    # both generators are closed on the way out, whatever raised: the detection threads finish
    # and the decode thread stops here, before the caller closes ``stream`` — not whenever the
    # garbage collector reaches them (at interpreter exit, perhaps, with the thread frozen)
    with (closing(prepared_batches(stream, sampler, stages.detect_batch, config.detect.max_side,
                                   stop)) as batches,
          closing(detect_batches(interval.keyframes(batches), stages.detector.detect_frames,
                                 workers)) as found):
        for _, detections in found:
            analysed = 0
            for frame, grey, det, detected in interval.complete(detections):
                analysed += 1
                n = len(det)
                cols.frame_index.append(np.array([frame.index]))
                cols.frame_ts.append(np.array([frame.timestamp_s]))
                cols.num_faces.append(np.array([n]))
                if n == 0:
                    tracker.update(det.boxes, frame.timestamp_s)
                    continue
                cols.face_id.append(tracker.update(det.boxes, frame.timestamp_s))
                cols.face_frame.append(np.full(n, frame.index))
                cols.face_ts.append(np.full(n, frame.timestamp_s))
                cols.det_score.append(det.scores)
                cols.boxes.append(det.boxes)
                cols.landmarks.append(det.landmarks.reshape(n, 10))
                cols.detected.append(np.full(n, detected))
                crops = crop_faces(grey, det.boxes, det.landmarks, pre)
                pending.append((crops, det.boxes, det.landmarks, frame.shape[:2]))
                pending_n += n
            if pending_n >= stages.classify_batch:
                flush()
            if progress is not None:
                progress(analysed)
    flush()
    if interval.early:
        log.debug("%s: %d early detections (%s)", stream.info.path, interval.early, interval.reasons)
    return cols, tracker


def _tables(cols: _Columns, stages: Stages) -> tuple[pa.Table, pa.Table]:
    """Arrow tables of the frames and faces partitions (video_id comes from the folder)."""
    frames = from_columns({
        "frame_index": _cat(cols.frame_index, np.int64),
        "timestamp_s": _cat(cols.frame_ts, np.float64),
        "num_faces": _cat(cols.num_faces, np.int16),
    }, FRAMES_SCHEMA.remove(0))
    labels = stages.labels
    probs = _cat(cols.probs, np.float32, (len(labels),))
    boxes = _cat(cols.boxes, np.float32, (4,))
    marks = _cat(cols.landmarks, np.float32, (10,))
    data: dict[str, Any] = {
        "frame_index": _cat(cols.face_frame, np.int64),
        "timestamp_s": _cat(cols.face_ts, np.float64),
        "face_id": _cat(cols.face_id, np.int32),
        "det_score": _cat(cols.det_score, np.float32),
        "x1": boxes[:, 0], "y1": boxes[:, 1], "x2": boxes[:, 2], "y2": boxes[:, 3],
    }
    for j, name in enumerate(LANDMARK_COLUMNS):
        data[name] = marks[:, j]
    data["emotion"], data["confidence"] = stages.classifier.top_labels(probs)
    data["box_source"] = np.where(_cat(cols.detected, bool), BOX_DETECTED, BOX_TRACKED).astype(object)
    for j, label in enumerate(labels):
        data[prob_column(label)] = probs[:, j]
    data.update(quality_columns(cols.quality))
    return frames, from_columns(data, stages.faces_schema.remove(0))
