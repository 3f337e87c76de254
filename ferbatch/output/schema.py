"""The output contract's columns and rows, defined once.

Arrow schemas of ``videos``, ``frames`` and ``faces`` (``faces`` has one ``p_<label>`` column per
class of the model's label set, so its schema is built from the labels the checkpoint
carries), the status values, the :class:`Provenance` of a run and :func:`new_video_row`, the
one constructor of a ``videos.parquet`` row (the pipeline, the Ray pool's failure rows and the
segment merge all start from it). File names are in :mod:`ferbatch.output.layout`.
"""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import pyarrow as pa

from .. import __version__
from .layout import path_bytes, readable_path

SCHEMA_VERSION = "1.0"

STATUS_OK = "ok"
STATUS_PARTIAL = "partial"
STATUS_FAILED = "failed"

VIDEOS_SCHEMA = pa.schema(
    [
        ("video_id", pa.string()),
        ("path", pa.string()),
        ("status", pa.string()),
        ("error", pa.string()),
        ("duration_s", pa.float64()),
        ("fps", pa.float64()),
        ("width", pa.int32()),
        ("height", pa.int32()),
        ("rotation", pa.int16()),
        ("codec", pa.string()),
        ("frames_decoded", pa.int64()),
        ("frames_analyzed", pa.int64()),
        ("faces_detected", pa.int64()),
        ("tracks", pa.int32()),
        ("processing_s", pa.float64()),
        ("model", pa.string()),
        # provenance: what produced these rows
        ("model_sha256", pa.string()),
        ("detector", pa.string()),
        ("sampling", pa.string()),
        ("settings_fingerprint", pa.string()),
        ("file_size", pa.int64()),
        ("file_mtime_ns", pa.int64()),
        ("schema_version", pa.string()),
        ("ferbatch_version", pa.string()),
        ("finished_at", pa.timestamp("ms", tz="UTC")),
        # the path's exact bytes (``path`` shows a name that is not UTF-8 as ``\\xNN``)
        ("path_bytes", pa.binary()),
        # decode: geometry and time (ferbatch.decode.display / .timing)
        ("flip", pa.string()),  # mirror applied after `rotation`: none / horizontal / vertical
        ("sample_aspect_ratio", pa.string()),  # stored pixels' SAR, ffprobe style "64:45"
        ("time_source", pa.string()),  # pts / pts+durations / durations
        ("frames_time_inferred", pa.int64()),  # frames whose time came from frame durations
    ]
)

FRAMES_SCHEMA = pa.schema(
    [
        ("video_id", pa.string()),
        ("frame_index", pa.int64()),
        ("timestamp_s", pa.float64()),
        ("num_faces", pa.int16()),
    ]
)

LANDMARK_NAMES = ("left_eye", "right_eye", "nose", "mouth_left", "mouth_right")
LANDMARK_COLUMNS = tuple(f"{name}_{axis}" for name in LANDMARK_NAMES for axis in ("x", "y"))

_FACE_BASE = [
    ("video_id", pa.string()),
    ("frame_index", pa.int64()),
    ("timestamp_s", pa.float64()),
    ("face_id", pa.int32()),
    ("det_score", pa.float32()),
    ("x1", pa.float32()),
    ("y1", pa.float32()),
    ("x2", pa.float32()),
    ("y2", pa.float32()),
    *[(name, pa.float32()) for name in LANDMARK_COLUMNS],
    ("emotion", pa.string()),
    ("confidence", pa.float32()),
    ("box_source", pa.string()),
]

#: per-face quality (:mod:`ferbatch.quality`), after the ``p_<label>`` columns
QUALITY_COLUMNS = ("face_px", "sharpness", "brightness", "contrast", "yaw", "pitch", "roll",
                   "occlusion", "quality_ok")
_FACE_QUALITY = [*[(name, pa.float32()) for name in QUALITY_COLUMNS[:-1]],
                 (QUALITY_COLUMNS[-1], pa.bool_())]

#: ``faces.box_source``: the box (and landmarks) came from the detector on this frame, or were
#: carried from the last detection by the tracker (``--detect-interval``, :mod:`ferbatch.propagate`)
BOX_DETECTED = "detected"
BOX_TRACKED = "tracked"


def prob_column(label: str) -> str:
    """Column name of the probability of ``label``.

    Every column named after a label is made here (this one, :func:`smooth_column`,
    :func:`share_column`, :func:`mean_column`): a label may be any string a checkpoint accepts
    (``very happy``, ``sur.prise``: :mod:`ferbatch.models.validate`), so readers index
    columns by these names, never as attributes."""
    return f"{PROB_PREFIX}{label}"


def smooth_column(label: str) -> str:
    """Column name of the smoothed probability of ``label`` (the report's smoothing)."""
    return f"s_{label}"


def share_column(label: str) -> str:
    """Column name of the face-time share of ``label`` (the report's summary)."""
    return f"share_{label}"


def mean_column(label: str) -> str:
    """Column name of the face-time-weighted mean probability of ``label`` (summary)."""
    return f"mean_{prob_column(label)}"


def faces_schema(labels: Sequence[str]) -> pa.Schema:
    """Schema of the faces table for a model with these class labels."""
    return pa.schema(_FACE_BASE + [(prob_column(label), pa.float32()) for label in labels]
                     + _FACE_QUALITY)


PROB_PREFIX = "p_"


def labels_from_columns(columns: Sequence[str]) -> list[str]:
    """Labels implied by ``p_<label>`` columns, in column order."""
    return [c[len(PROB_PREFIX):] for c in columns if c.startswith(PROB_PREFIX)]


@dataclass(frozen=True)
class Provenance:
    """What produces a run's rows: the model, the detector and sampling settings, versions.

    Built once per run (:func:`ferbatch.pipeline.run_provenance` on the driver, from the
    checkpoint's metadata; :class:`ferbatch.pipeline.Stages` in a worker, from its loaded
    models) and copied into every ``videos.parquet`` row.
    """

    model: str
    model_sha256: str
    labels: tuple[str, ...]
    detector: str
    sampling: str
    settings_fingerprint: str
    schema_version: str = SCHEMA_VERSION
    ferbatch_version: str = __version__

    def row_fields(self) -> dict[str, Any]:
        """The provenance columns of a ``videos.parquet`` row."""
        fields = dataclasses.asdict(self)
        del fields["labels"]
        return fields


def failed_row(path: str | os.PathLike[str], video_id: str, provenance: Provenance,
                error: str) -> dict[str, Any]:
    """The row of a video that fails without being analysed (a FIFO, a worker that kept
    dying): :func:`new_video_row` with ``error`` and ``finished_at`` now."""
    row = new_video_row(path, video_id, provenance, error=error)
    row["finished_at"] = datetime.now(UTC)
    return row


def new_video_row(path: str | os.PathLike[str], video_id: str, provenance: Provenance,
                  error: str | None = None) -> dict[str, Any]:
    """A ``videos.parquet`` row of ``path`` before analysis: ``failed`` with ``error``, counts
    zero, file size and mtime from ``stat`` (``None`` when it fails), provenance filled in.

    ``path`` is stored absolute (:func:`os.path.abspath`, symlinks kept as given) and readable
    (:func:`~ferbatch.output.layout.readable_path`), ``path_bytes`` exactly.
    """
    row: dict[str, Any] = {
        "video_id": video_id, "path": readable_path(path), "path_bytes": path_bytes(path),
        "status": STATUS_FAILED,
        "error": error, "duration_s": None, "fps": None, "width": None, "height": None,
        "rotation": None, "codec": None, "frames_decoded": 0, "frames_analyzed": 0,
        "faces_detected": 0, "tracks": 0, "processing_s": 0.0,
        "file_size": None, "file_mtime_ns": None, "finished_at": None,
        "flip": None, "sample_aspect_ratio": None, "time_source": None,
        "frames_time_inferred": None,
        **provenance.row_fields(),
    }
    try:
        st = os.stat(path)
        row["file_size"], row["file_mtime_ns"] = st.st_size, st.st_mtime_ns
    except OSError:
        pass
    return {name: row[name] for name in VIDEOS_SCHEMA.names}
