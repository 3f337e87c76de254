"""Small helpers shared by the example scripts (plain pandas/pyarrow, no ferbatch import).

Each example reads the output folder the way any pandas user would: ``pd.read_parquet`` on the
Hive-partitioned ``faces/`` and ``frames/`` folders and on ``videos.parquet``. The partition key
is declared a string: left to guess, pyarrow would turn an all-digit id like ``0001`` into the
integer 1, which no longer matches ``videos.parquet``. The file names used here are those of
the output contract (``ferbatch/output/layout.py``); the examples spell them out so that they
run with nothing but pandas.

An output holds one label set (``_ferbatch.json``; ``ferbatch/output/labelset.py``):
:func:`out_dir` refuses a folder whose ``faces`` partitions disagree with it (one an older
ferbatch let two models write), as ``ferbatch.load`` does, rather than print shares computed
over the wrong labels.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pandas as pd
import pyarrow as pa
import pyarrow.dataset as ds
import pyarrow.parquet as pq

#: ``video_id=<id>`` folders, read as strings
PARTITIONING = ds.partitioning(pa.schema([("video_id", pa.string())]), flavor="hive")


def out_dir(argv: list[str], usage: str) -> Path:
    """The output folder from the command line, or exit with the usage line."""
    if len(argv) < 2 or argv[1] in ("-h", "--help"):
        sys.exit(f"usage: {usage}")
    out = Path(argv[1])
    if not (out / "videos.parquet").is_file():
        sys.exit(f"{out}: not a ferbatch output folder (no videos.parquet)")
    check_label_set(out)
    return out


def check_label_set(out: Path) -> None:
    """Exit with a message when the ``faces`` partitions do not all carry the output's labels."""
    expected = _manifest_labels(out)
    odd = []
    for part in sorted((out / "faces").glob("video_id=*/*.parquet")):
        if part.name.startswith((".", "_")):
            continue
        found = [c[2:] for c in pq.read_schema(part).names if c.startswith("p_")]
        expected = expected or found
        if set(found) != set(expected):
            odd.append(part.parent.name.removeprefix("video_id="))
    if odd:
        sys.exit(f"{out}: one output holds one label set, {expected}, but the faces of "
                 f"{', '.join(sorted(set(odd)))} have other labels; redo them with the output's model")


def _manifest_labels(out: Path) -> list[str]:
    meta = out / "_ferbatch.json"
    return list(json.loads(meta.read_text()).get("labels") or []) if meta.is_file() else []


def check_video_ids(out: Path, *wanted: str) -> None:
    """Exit listing the valid ids when one of ``wanted`` is not a video of the output."""
    ids = pd.read_parquet(out / "videos.parquet", columns=["video_id"])["video_id"].astype(str).tolist()
    unknown = [v for v in wanted if v not in ids]
    if unknown:
        sys.exit(f"unknown video id(s): {', '.join(unknown)}; the videos of {out} are: "
                 + ", ".join(ids))


def labels(out: Path, faces: pd.DataFrame | None = None) -> list[str]:
    """The model's labels, in order: from _ferbatch.json, else from the p_* columns."""
    found = _manifest_labels(out)
    if found:
        return found
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
