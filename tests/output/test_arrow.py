"""The pandas-free Arrow builders agree with pyarrow's own converters."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone

import numpy as np
import pyarrow as pa
import pytest

from ferbatch.output.arrow import from_numpy, from_rows, to_rows
from ferbatch.output.schema import FRAMES_SCHEMA, VIDEOS_SCHEMA, faces_schema


@pytest.mark.parametrize("type_, values", [
    (pa.int16(), np.array([1, -2, 300], np.int64)),
    (pa.int64(), np.arange(5)),
    (pa.float32(), np.array([0.5, np.nan, -1e9])),
    (pa.float64(), [1.0, 2.5]),
    (pa.uint8(), np.array([0, 255])),
    (pa.bool_(), np.array([True, False, True, True, False, False, True, False, True])),
    (pa.string(), np.array(["happy", "", "überrascht", "😀"], dtype=object)),
    (pa.large_string(), ["a", "bc"]),
    (pa.int32(), np.zeros(0, np.int32)),
    (pa.string(), np.zeros(0, dtype=object)),
])
def test_from_numpy_equals_pa_array(type_: pa.DataType, values: object) -> None:
    mine = from_numpy(values, type_)
    mine.validate(full=True)
    ref = pa.array(values, type=type_)
    assert mine.type == ref.type and mine.null_count == ref.null_count == 0
    if pa.types.is_floating(type_):  # NaN != NaN for Array.equals
        assert np.array_equal(mine.to_numpy(), ref.to_numpy(), equal_nan=True)
    else:
        assert mine.equals(ref)


def test_from_numpy_marks_nulls() -> None:
    valid = np.array([True, False, True])
    arr = from_numpy(np.array([1.5, 0.0, 3.0]), pa.float64(), valid)
    arr.validate(full=True)
    assert arr.to_pylist() == [1.5, None, 3.0] and arr.null_count == 1
    s = from_numpy(["x", None, "z"], pa.string(), valid)
    assert s.to_pylist() == ["x", None, "z"]


def test_from_numpy_refuses_types_it_cannot_build() -> None:
    with pytest.raises(TypeError, match="list"):
        from_numpy([[1]], pa.list_(pa.int64()))
    with pytest.raises(TypeError, match="expected a string, got int"):
        from_numpy(["a", 3], pa.string())


def _video_rows() -> list[dict]:
    t = datetime(2026, 11, 23, 8, 0, 1, 234000, tzinfo=UTC)
    return [
        {"video_id": "a-1", "path": "/v/ä.mp4", "status": "ok", "error": None, "duration_s": 1.5,
         "fps": 30.0, "width": 640, "height": 360, "rotation": 90, "frames_decoded": 45,
         "file_mtime_ns": 1_700_000_000_123_456_789, "finished_at": t},
        {"video_id": "b-2", "path": "/v/b.mov", "status": "failed", "error": "b.mov: no video",
         "finished_at": t.astimezone(timezone(timedelta(hours=2)))},  # same instant, other zone
        {"video_id": "c-3", "path": "/v/c.mkv", "status": "partial", "finished_at": None},
    ]


def test_from_rows_equals_from_pylist_and_round_trips() -> None:
    rows = _video_rows()
    mine = from_rows(rows, VIDEOS_SCHEMA)
    mine.validate(full=True)
    theirs = pa.Table.from_pylist(rows, schema=VIDEOS_SCHEMA)
    assert mine.equals(theirs)
    assert to_rows(mine) == theirs.to_pylist()
    back = to_rows(mine)
    assert back[0]["finished_at"] == rows[0]["finished_at"] and back[2]["finished_at"] is None
    assert back[1]["error"] == "b.mov: no video" and back[2]["fps"] is None


def test_from_rows_builds_the_frames_and_faces_schemas() -> None:
    faces = faces_schema(["angry", "happy"])
    row = {f.name: None for f in faces}
    row.update(video_id="v", frame_index=3, timestamp_s=0.1, face_id=1, emotion="happy",
               p_happy=0.75, p_angry=0.25)
    assert from_rows([row], faces).equals(pa.Table.from_pylist([row], schema=faces))
    frame = {"video_id": "v", "frame_index": 0, "timestamp_s": 0.0, "num_faces": 2}
    assert from_rows([frame, frame], FRAMES_SCHEMA).equals(
        pa.Table.from_pylist([frame, frame], schema=FRAMES_SCHEMA))
