"""The output contract, defined once: Arrow schemas of ``videos``, ``frames`` and ``faces``.

``faces`` has one ``p_<label>`` column per class of the model's label set, so its schema is
built from the labels the checkpoint carries.
"""

from __future__ import annotations

from collections.abc import Sequence

import pyarrow as pa

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
]


def prob_column(label: str) -> str:
    """Column name of the probability of ``label``."""
    return f"p_{label}"


def faces_schema(labels: Sequence[str]) -> pa.Schema:
    """Schema of the faces table for a model with these class labels."""
    return pa.schema(_FACE_BASE + [(prob_column(label), pa.float32()) for label in labels])


def partition_dir(table: str, video_id: str) -> str:
    """Relative folder of one video's partition of ``frames`` or ``faces`` (Hive style)."""
    return f"{table}/video_id={video_id}"
