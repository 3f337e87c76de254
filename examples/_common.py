"""Small helpers shared by the example scripts (plain pandas/pyarrow, no ferbatch import).

Each example reads the output folder the way any pandas user would: ``pd.read_parquet`` on the
Hive-partitioned ``faces/`` and ``frames/`` folders and on ``videos.parquet``. The partition key
is declared a string: left to guess, pyarrow would turn an all-digit id like ``0001`` into the
integer 1, which no longer matches ``videos.parquet``. The file names used here are those of
the output contract (``ferbatch/output/layout.py``); the examples spell them out so that they
run with nothing but pandas.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pandas as pd
import pyarrow as pa
import pyarrow.dataset as ds

#: ``video_id=<id>`` folders, read as strings
PARTITIONING = ds.partitioning(pa.schema([("video_id", pa.string())]), flavor="hive")


def out_dir(argv: list[str], usage: str) -> Path:
    """The output folder from the command line, or exit with the usage line."""
    if len(argv) < 2 or argv[1] in ("-h", "--help"):
        sys.exit(f"usage: {usage}")
    out = Path(argv[1])
    if not (out / "videos.parquet").is_file():
        sys.exit(f"{out}: not a ferbatch output folder (no videos.parquet)")
    return out


def labels(out: Path, faces: pd.DataFrame | None = None) -> list[str]:
    """The model's labels, in order: from _ferbatch.json, else from the p_* columns."""
    meta = out / "_ferbatch.json"
    if meta.is_file():
        found = json.loads(meta.read_text()).get("labels")
        if found:
            return list(found)
    if faces is None:
        faces = read_faces(out)
    return [c[2:] for c in faces.columns if c.startswith("p_")]


def read_faces(out: Path) -> pd.DataFrame:
    """All face rows (empty DataFrame when no video had a face)."""
    if not (out / "faces").is_dir() or not any((out / "faces").glob("video_id=*/*.parquet")):
        return pd.DataFrame(columns=["video_id", "frame_index", "timestamp_s", "face_id", "emotion"])
    faces = pd.read_parquet(out / "faces", partitioning=PARTITIONING)
    faces["video_id"] = faces["video_id"].astype(str)
    return faces


def read_frames(out: Path) -> pd.DataFrame:
    """All analysed-frame rows."""
    frames = pd.read_parquet(out / "frames", partitioning=PARTITIONING)
    frames["video_id"] = frames["video_id"].astype(str)
    return frames


def clock(seconds: float) -> str:
    """``75.25`` → ``"1:15.25"``."""
    m, s = divmod(float(seconds), 60.0)
    return f"{int(m)}:{s:05.2f}"
