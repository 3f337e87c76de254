"""The README's output contract names every column the schemas write (``ferbatch.output.schema``):
a column added to a schema without a word in the README fails here."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from ferbatch.output.schema import (
    _FACE_BASE,
    FRAMES_SCHEMA,
    LANDMARK_COLUMNS,
    QUALITY_COLUMNS,
    VIDEOS_SCHEMA,
)

README = Path(__file__).resolve().parents[2] / "README.md"


def _row(prefix: str) -> str:
    (row,) = [line for line in README.read_text(encoding="utf-8").splitlines()
              if line.startswith(f"| `{prefix}")]
    return row


# video_id of frames and faces is the partition folder (video_id=<id>), named in the path column;
# the landmark and quality columns are documented as ranges (left_eye_x … mouth_right_y)
@pytest.mark.parametrize("prefix, names", [
    ("OUT/videos.parquet", VIDEOS_SCHEMA.names),
    ("OUT/frames/", [n for n in FRAMES_SCHEMA.names if n != "video_id"]),
    ("OUT/faces/", [n for n, _ in _FACE_BASE if n != "video_id" and n not in LANDMARK_COLUMNS]
     + [LANDMARK_COLUMNS[0], LANDMARK_COLUMNS[-1], QUALITY_COLUMNS[0], QUALITY_COLUMNS[-1]]),
])
def test_every_output_column_is_documented(prefix: str, names: list[str]) -> None:
    row = _row(prefix)
    missing = [n for n in names if not re.search(rf"(?<![\w]){re.escape(n)}(?![\w])", row)]
    assert missing == [], f"README's {prefix} row does not name {missing}"
