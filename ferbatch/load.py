"""Read a ferbatch output folder back into pandas: ``ferbatch.load(OUT)``.

The folder follows the contract of :mod:`ferbatch.schema`: ``videos.parquet``, Hive-partitioned
``frames/video_id=<id>/`` and ``faces/video_id=<id>/`` folders, and ``_ferbatch.json``. Rows
of ``_status/<video_id>.parquet`` (committed per video by the pipeline while it runs) take
precedence over ``videos.parquet``, so a run still going or killed midway reads correctly. Each
partition is read on its own (so a partition written by another model, with other ``p_*``
columns, or a stray temp file cannot break the whole read) and ``video_id`` is restored from the
folder name, as ``pd.read_parquet(OUT / "frames")`` would.
"""

from __future__ import annotations

import json
import re
import urllib.parse
import warnings
from dataclasses import dataclass, field
from os import PathLike
from pathlib import Path
from typing import Any

import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from .schema import FRAMES_SCHEMA, SCHEMA_VERSION, VIDEOS_SCHEMA, faces_schema

from .errors import OutputError

__all__ = ["Results", "OutputError", "load", "labels_from_columns", "META_FILE"]

META_FILE = "_ferbatch.json"
STATUS_DIR = "_status"  # the pipeline's per-video commit rows; videos.parquet is rebuilt from them
_PROB_PREFIX = "p_"
_PART_NAME = re.compile(r"^[^._].*\.parquet$")  # skip hidden / temp / _metadata files


@dataclass(frozen=True)
class Results:
    """One ferbatch output folder in memory.

    ``videos``: one row per input file. ``frames``: one row per analysed frame. ``faces``: one
    row per detected face per analysed frame, ``emotion`` a Categorical whose categories are
    ``labels`` in model order. ``video_id`` is a Categorical in all three (categories: the ids of
    ``videos`` in file order), so groupbys line up across tables.
    """

    out: Path
    videos: pd.DataFrame
    frames: pd.DataFrame
    faces: pd.DataFrame
    labels: list[str]
    meta: dict[str, Any] = field(default_factory=dict)

    @property
    def prob_columns(self) -> list[str]:
        """``p_<label>`` column names, in label order."""
        return [_PROB_PREFIX + label for label in self.labels]

    def __repr__(self) -> str:  # DataFrames make the default repr unreadable
        return (
            f"Results(out={str(self.out)!r}, videos={len(self.videos)}, frames={len(self.frames)}, "
            f"faces={len(self.faces)}, labels={self.labels})"
        )


def labels_from_columns(columns: list[str]) -> list[str]:
    """Labels implied by ``p_<label>`` columns, in column order."""
    return [c[len(_PROB_PREFIX):] for c in columns if c.startswith(_PROB_PREFIX)]


def _read_meta(out: Path) -> dict[str, Any]:
    path = out / META_FILE
    if not path.is_file():
        return {}
    try:
        meta = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise OutputError(f"{path}: unreadable ferbatch metadata ({exc})") from exc
    if not isinstance(meta, dict):
        raise OutputError(f"{path}: expected a JSON object, got {type(meta).__name__}")
    version = str(meta.get("schema_version", SCHEMA_VERSION))
    if version.split(".")[0] != SCHEMA_VERSION.split(".")[0]:
        raise OutputError(
            f"{path}: schema_version {version} is not readable by this ferbatch "
            f"(reads {SCHEMA_VERSION.split('.')[0]}.x)"
        )
    return meta


def _read_status(status_dir: Path) -> pa.Table | None:
    """The per-video status rows the pipeline commits (``_status/<video_id>.parquet``), sorted
    by path like ``videos.parquet``; None when there are none. Torn files are skipped."""
    if not status_dir.is_dir():
        return None
    tables = []
    for path in sorted(status_dir.glob("*.parquet")):
        if path.name.startswith((".", "_")):
            continue
        try:
            table = pq.read_table(path)
        except (OSError, pa.ArrowException):
            continue  # a torn file from a killed writer: that video will be redone
        if "video_id" in table.column_names and table.num_rows:
            tables.append(table)
    if not tables:
        return None
    table = pa.concat_tables(tables, promote_options="permissive")
    keys = [("path", "ascending"), ("video_id", "ascending")] if "path" in table.column_names else [
        ("video_id", "ascending")]
    return table.sort_by(keys)


def _partitions(root: Path) -> list[tuple[str, list[Path]]]:
    """``[(video_id, [parquet files])]`` under a Hive-partitioned table folder."""
    if not root.is_dir():
        return []
    found = []
    for sub in sorted(root.iterdir()):
        if not sub.is_dir() or not sub.name.startswith("video_id="):
            continue
        files = sorted(p for p in sub.iterdir() if p.is_file() and _PART_NAME.match(p.name))
        if files:
            found.append((urllib.parse.unquote(sub.name[len("video_id="):]), files))
    return found


def _read_table(root: Path, schema: pa.Schema) -> pa.Table:
    """Read every partition of ``root`` into one table with ``video_id`` from the folder names.

    Partitions with different column sets (e.g. written by models with other labels) are
    concatenated with missing columns filled with nulls.
    """
    tables = []
    for video_id, files in _partitions(root):
        for path in files:
            try:
                table = pq.read_table(path)
            except (OSError, pa.ArrowException) as exc:
                raise OutputError(f"{path}: unreadable Parquet file ({exc})") from exc
            if "video_id" in table.column_names:
                table = table.drop_columns(["video_id"])
            ids = pa.array([video_id] * table.num_rows, pa.string())
            tables.append(table.add_column(0, "video_id", ids))
    if not tables:
        return schema.empty_table()
    try:
        return pa.concat_tables(tables, promote_options="permissive")
    except pa.ArrowException as exc:
        raise OutputError(f"{root}: partitions have incompatible schemas ({exc})") from exc


def _categorical_ids(df: pd.DataFrame, categories: list[str]) -> None:
    df["video_id"] = pd.Categorical(df["video_id"].astype(object), categories=categories)


def load(out: str | PathLike[str]) -> Results:
    """Read the ferbatch output folder ``out`` into a :class:`Results`.

    Labels come from ``_ferbatch.json`` when present, else from the ``p_*`` columns of the faces
    table. Raises :class:`OutputError` (a :class:`~ferbatch.errors.FerbatchError`) when ``out``
    is not a ferbatch output folder.
    """
    out = Path(out)
    if not out.exists():
        raise OutputError(f"{out}: no such folder")
    if not out.is_dir():
        raise OutputError(f"{out}: not a folder (expected a ferbatch output folder)")
    meta = _read_meta(out)
    videos_path = out / "videos.parquet"
    has_parts = bool(_partitions(out / "frames") or _partitions(out / "faces"))
    if not videos_path.exists() and not meta and not has_parts:
        raise OutputError(
            f"{out}: not a ferbatch output folder (no videos.parquet, {META_FILE}, frames/ or faces/)"
        )

    if videos_path.exists():
        try:
            videos_tbl = pq.read_table(videos_path)
        except (OSError, pa.ArrowException) as exc:
            raise OutputError(f"{videos_path}: unreadable Parquet file ({exc})") from exc
        if "video_id" not in videos_tbl.column_names:
            raise OutputError(f"{videos_path}: no video_id column; not a ferbatch videos table")
    else:
        videos_tbl = VIDEOS_SCHEMA.empty_table()
    status_tbl = _read_status(out / STATUS_DIR)
    if status_tbl is not None:  # per-video commit rows are newer than a stale/missing videos.parquet
        fresh = set(status_tbl.column("video_id").to_pylist())
        keep = pa.array([v not in fresh for v in videos_tbl.column("video_id").to_pylist()], pa.bool_())
        try:
            videos_tbl = pa.concat_tables([videos_tbl.filter(keep), status_tbl], promote_options="permissive")
        except pa.ArrowException as exc:
            raise OutputError(f"{out / STATUS_DIR}: rows do not match videos.parquet ({exc})") from exc
    videos = videos_tbl.to_pandas()
    dup = videos["video_id"].duplicated(keep="last")
    if dup.any():  # e.g. rows appended by a re-run: the last row of a video wins
        warnings.warn(f"{videos_path}: {int(dup.sum())} duplicate video_id row(s); keeping the last",
                      stacklevel=2)
        videos = videos[~dup].reset_index(drop=True)
    for name in VIDEOS_SCHEMA.names:  # tolerate older/narrower tables
        if name not in videos.columns:
            videos[name] = pd.Series([None] * len(videos), dtype=object)

    frames = _read_table(out / "frames", FRAMES_SCHEMA).to_pandas()
    faces_tbl = _read_table(out / "faces", faces_schema(meta.get("labels") or []))

    column_labels = labels_from_columns(faces_tbl.column_names)
    labels = [str(x) for x in meta.get("labels") or []] or column_labels
    missing = [lb for lb in labels if _PROB_PREFIX + lb not in faces_tbl.column_names]
    if missing and faces_tbl.num_rows:
        raise OutputError(f"{out / 'faces'}: no probability column for label(s) {missing}")
    faces = faces_tbl.to_pandas()
    for label in missing:  # empty table: give it the columns the labels promise
        faces[_PROB_PREFIX + label] = pd.Series(dtype="float32")

    # video_id: categories = videos in file order, then ids found only in partitions
    ids = [str(v) for v in videos["video_id"].tolist()]
    extra = sorted(
        (set(frames["video_id"].astype(str)) | set(faces["video_id"].astype(str))) - set(ids)
    )
    if extra:
        warnings.warn(
            f"{out}: partitions without a videos.parquet row: {extra[:5]}"
            + (" ..." if len(extra) > 5 else ""),
            stacklevel=2,
        )
        stub = pd.DataFrame({c: pd.Series([None] * len(extra), dtype=object) for c in videos.columns})
        stub["video_id"] = extra
        videos = pd.concat([videos, stub], ignore_index=True) if len(videos) else stub
        ids += extra
    for df in (videos, frames, faces):
        _categorical_ids(df, ids)

    emotions = faces["emotion"].astype(object) if "emotion" in faces else pd.Series([], dtype=object)
    unknown = sorted(set(emotions.dropna()) - set(labels))
    faces["emotion"] = pd.Categorical(emotions, categories=labels + unknown)

    sort_keys = ["video_id", "frame_index"]
    frames = frames.sort_values(sort_keys, kind="stable").reset_index(drop=True)
    faces = faces.sort_values(sort_keys + ["face_id"], kind="stable").reset_index(drop=True)
    return Results(out=out, videos=videos, frames=frames, faces=faces, labels=labels, meta=meta)
