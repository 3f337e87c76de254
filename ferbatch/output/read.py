"""Read a ferbatch output back into pandas: ``ferbatch.load(OUT)``.

``OUT`` is a local folder or any URI :func:`ferbatch.output.location.resolve_output` accepts
(``s3://bucket/prefix``, ``gs://…``, ``file:///…``); every read goes through its
:class:`pyarrow.fs.FileSystem`. The output follows the contract of :mod:`ferbatch.output` (schema and layout):
``videos.parquet``, Hive-partitioned ``frames/video_id=<id>/`` and ``faces/video_id=<id>/``
folders, and ``_ferbatch.json``. Rows of ``_status/<video_id>.parquet`` (committed per video by
the pipeline while it runs) take precedence over ``videos.parquet``, so a run still going or
killed midway reads correctly: a video with a ``.pending`` marker and no status row is being
(re)written and is left out entirely, and only the partition files a status row names are read
(see :mod:`ferbatch.output.commit`). Each partition is read on its own (so a partition written by another
model, with other ``p_*`` columns, or a stray temp file cannot break the whole read) and
``video_id`` is restored from the folder name, as ``pd.read_parquet(OUT / "frames")`` would.
"""

from __future__ import annotations

import json
import logging
import os
import posixpath
import urllib.parse
from dataclasses import dataclass, field
from os import PathLike
from pathlib import Path
from typing import Any

import pandas as pd
import pyarrow as pa
import pyarrow.fs as pafs
import pyarrow.parquet as pq

from ..errors import OutputError
from . import layout
from .commit import committed_parts
from .location import OutputLocation, resolve_output
from .schema import (
    FRAMES_SCHEMA,
    SCHEMA_VERSION,
    VIDEOS_SCHEMA,
    faces_schema,
    labels_from_columns,
    prob_column,
)

__all__ = ["Results", "load"]

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Results:
    """One ferbatch output folder in memory.

    ``videos``: one row per input file. ``frames``: one row per analysed frame. ``faces``: one
    row per detected face per analysed frame, ``emotion`` a Categorical whose categories are
    ``labels`` in model order. ``video_id`` is a Categorical in all three (categories: the ids of
    ``videos`` in file order), so groupbys line up across tables.
    """

    out: Path | str  # a Path for a local folder, else the URI
    videos: pd.DataFrame
    frames: pd.DataFrame
    faces: pd.DataFrame
    labels: list[str]
    meta: dict[str, Any] = field(default_factory=dict)

    @property
    def prob_columns(self) -> list[str]:
        """``p_<label>`` column names, in label order."""
        return [prob_column(label) for label in self.labels]

    def __repr__(self) -> str:  # DataFrames make the default repr unreadable
        return (
            f"Results(out={str(self.out)!r}, videos={len(self.videos)}, frames={len(self.frames)}, "
            f"faces={len(self.faces)}, labels={self.labels})"
        )


def _read_meta(loc: OutputLocation) -> dict[str, Any]:
    fs, path = loc.filesystem, loc.join(layout.MANIFEST)
    if fs.get_file_info(path).type != pafs.FileType.File:
        return {}
    shown = loc.display(layout.MANIFEST)
    try:
        with fs.open_input_stream(path) as stream:
            meta = json.loads(stream.read().decode("utf-8"))
    except (OSError, ValueError) as exc:
        raise OutputError(f"{shown}: unreadable ferbatch metadata ({exc})") from exc
    if not isinstance(meta, dict):
        raise OutputError(f"{shown}: expected a JSON object, got {type(meta).__name__}")
    version = str(meta.get("schema_version", SCHEMA_VERSION))
    if version.split(".")[0] != SCHEMA_VERSION.split(".")[0]:
        raise OutputError(
            f"{shown}: schema_version {version} is not readable by this ferbatch "
            f"(reads {SCHEMA_VERSION.split('.')[0]}.x)"
        )
    return meta


@dataclass
class _Status:
    """What ``_status/`` says: committed rows, the files each commits, unfinished commits."""

    table: pa.Table | None = None
    parts: dict[str, set[str]] = field(default_factory=dict)  # video_id -> committed file names
    uncommitted: set[str] = field(default_factory=set)  # a .pending marker and no status row


def _read_status(loc: OutputLocation) -> _Status:
    """The per-video status rows the pipeline commits (``_status/<video_id>.parquet``), sorted
    by path like ``videos.parquet``. Torn files are skipped."""
    fs = loc.filesystem
    entries = fs.get_file_info(pafs.FileSelector(loc.join(layout.STATUS_DIR), allow_not_found=True))
    found = _Status()
    pending: set[str] = set()
    committed: set[str] = set()
    tables = []
    for info in sorted(entries, key=lambda i: i.base_name):
        name = info.base_name
        if info.type != pafs.FileType.File or name.startswith((".", "_")):
            continue
        if layout.pending_id(name) is not None:
            pending.add(layout.pending_id(name))
            continue
        if not name.endswith(".parquet"):
            continue
        try:
            table = pq.read_table(info.path, filesystem=fs)
        except (OSError, pa.ArrowException):
            continue  # a torn file from a killed writer: that video will be redone
        if "video_id" not in table.column_names or not table.num_rows:
            continue
        parts = committed_parts(table.schema)
        for vid in table.column("video_id").to_pylist():
            committed.add(vid)
            if parts is not None:
                found.parts[vid] = set(parts)
        tables.append(table.replace_schema_metadata(None))
    found.uncommitted = pending - committed
    if tables:
        table = pa.concat_tables(tables, promote_options="permissive")
        keys = [("path", "ascending"), ("video_id", "ascending")] if "path" in table.column_names \
            else [("video_id", "ascending")]
        found.table = table.sort_by(keys)
    return found


def _partitions(loc: OutputLocation, table: str) -> list[tuple[str, list[str]]]:
    """``[(video_id, [parquet files])]`` under the Hive-partitioned folder ``table``."""
    fs = loc.filesystem
    root = loc.join(table)
    prefix = root.replace(os.sep, "/").strip("/")
    by_id: dict[str, list[str]] = {}
    for info in fs.get_file_info(pafs.FileSelector(root, allow_not_found=True, recursive=True)):
        if info.type != pafs.FileType.File:
            continue
        rel = info.path.replace(os.sep, "/").strip("/")
        if prefix:
            if not rel.startswith(prefix + "/"):
                continue
            rel = rel[len(prefix) + 1:]
        pieces = rel.split("/")
        vid = layout.partition_id(pieces[0]) if len(pieces) == 2 else None
        if vid is None or not layout.DATA_FILE.match(pieces[1]):
            continue
        by_id.setdefault(urllib.parse.unquote(vid), []).append(info.path)
    return [(vid, sorted(by_id[vid])) for vid in sorted(by_id)]


def _read_table(loc: OutputLocation, table_name: str, partitions: list[tuple[str, list[str]]],
                schema: pa.Schema, status: _Status) -> pa.Table:
    """Read every committed partition of ``table_name`` into one table with ``video_id`` from
    the folder names.

    Partitions of uncommitted videos and files their status row does not name are skipped.
    Partitions with different column sets (e.g. written by models with other labels) are
    concatenated with missing columns filled with nulls.
    """
    fs = loc.filesystem
    tables = []
    for video_id, files in partitions:
        if video_id in status.uncommitted:
            continue
        keep = status.parts.get(video_id)
        for path in files:
            if keep is not None and path.replace(os.sep, "/").rsplit("/", 1)[-1] not in keep:
                continue  # debris of a writer that died: never part of the results
            try:
                table = pq.read_table(path, filesystem=fs)
            except (OSError, pa.ArrowException) as exc:
                shown = loc.display(layout.partition_dir(table_name, video_id), posixpath.basename(path))
                raise OutputError(f"{shown}: unreadable Parquet file ({exc})") from exc
            if "video_id" in table.column_names:
                table = table.drop_columns(["video_id"])
            ids = pa.array([video_id] * table.num_rows, pa.string())
            tables.append(table.add_column(0, "video_id", ids))
    if not tables:
        return schema.empty_table()
    try:
        return pa.concat_tables(tables, promote_options="permissive")
    except pa.ArrowException as exc:
        raise OutputError(f"{loc.display(table_name)}: partitions have incompatible schemas ({exc})") from exc


def _categorical_ids(df: pd.DataFrame, categories: list[str]) -> None:
    df["video_id"] = pd.Categorical(df["video_id"].astype(object), categories=categories)


def load(out: str | PathLike[str] | OutputLocation,
         filesystem: pafs.FileSystem | None = None) -> Results:
    """Read the ferbatch output ``out`` into a :class:`Results`.

    ``out`` is a local folder, a URI pyarrow resolves (``s3://bucket/prefix``, ``gs://…``,
    ``file:///…``; credentials from the environment), an :class:`~ferbatch.write.OutputLocation`,
    or a path inside ``filesystem``. Only committed videos are read: partitions of a video
    whose commit did not finish are ignored (see :mod:`ferbatch.output.commit`). Labels come from
    ``_ferbatch.json`` when present, else from the ``p_*`` columns of the faces table. Raises
    :class:`OutputError` (a :class:`~ferbatch.errors.FerbatchError`) when ``out`` cannot be
    reached or is not a ferbatch output folder.
    """
    loc = resolve_output(out, filesystem)
    try:
        return _load(loc)
    except OSError as exc:  # a remote filesystem failing mid-read (network, credentials)
        raise OutputError(f"{loc.display()}: cannot read the output ({exc})") from exc


def _load(loc: OutputLocation) -> Results:
    kind = loc.filesystem.get_file_info(loc.path).type
    if kind == pafs.FileType.NotFound:
        raise OutputError(f"{loc.display()}: no such folder")
    if kind != pafs.FileType.Directory:
        raise OutputError(f"{loc.display()}: not a folder (expected a ferbatch output folder)")
    meta = _read_meta(loc)
    has_videos = loc.filesystem.get_file_info(loc.join(layout.VIDEOS_FILE)).type == pafs.FileType.File
    partitions = {name: _partitions(loc, name) for name in layout.TABLES}
    if not has_videos and not meta and not any(partitions.values()):
        raise OutputError(
            f"{loc.display()}: not a ferbatch output folder (no videos.parquet, {layout.MANIFEST}, "
            "frames/ or faces/)"
        )
    status = _read_status(loc)
    videos = _read_videos(loc, has_videos, status)
    frames = _read_table(loc, layout.FRAMES, partitions[layout.FRAMES], FRAMES_SCHEMA, status).to_pandas()
    faces_tbl = _read_table(loc, layout.FACES, partitions[layout.FACES], faces_schema(meta.get("labels") or []),
                            status)
    labels = [str(x) for x in meta.get("labels") or []] or labels_from_columns(faces_tbl.column_names)
    missing = [lb for lb in labels if prob_column(lb) not in faces_tbl.column_names]
    if missing and faces_tbl.num_rows:
        raise OutputError(f"{loc.display(layout.FACES)}: no probability column for label(s) {missing}")
    faces = faces_tbl.to_pandas()
    for label in missing:  # empty table: give it the columns the labels promise
        faces[prob_column(label)] = pd.Series(dtype="float32")
    videos = _categorize(loc, videos, frames, faces)
    emotions = faces["emotion"].astype(object) if "emotion" in faces else pd.Series([], dtype=object)
    unknown = sorted(set(emotions.dropna()) - set(labels))
    faces["emotion"] = pd.Categorical(emotions, categories=labels + unknown)
    sort_keys = ["video_id", "frame_index"]
    frames = frames.sort_values(sort_keys, kind="stable").reset_index(drop=True)
    faces = faces.sort_values(sort_keys + ["face_id"], kind="stable").reset_index(drop=True)
    return Results(out=loc.public, videos=videos, frames=frames, faces=faces, labels=labels, meta=meta)


def _read_videos(loc: OutputLocation, has_videos: bool, status: _Status) -> pd.DataFrame:
    """``videos.parquet`` with the newer per-video status rows in place of its rows; a video
    whose commit is unfinished has no row at all; the last row of a duplicated id wins."""
    videos_shown = loc.display(layout.VIDEOS_FILE)
    if has_videos:
        try:
            videos_tbl = pq.read_table(loc.join(layout.VIDEOS_FILE), filesystem=loc.filesystem)
        except (OSError, pa.ArrowException) as exc:
            raise OutputError(f"{videos_shown}: unreadable Parquet file ({exc})") from exc
        if "video_id" not in videos_tbl.column_names:
            raise OutputError(f"{videos_shown}: no video_id column; not a ferbatch videos table")
    else:
        videos_tbl = VIDEOS_SCHEMA.empty_table()
    drop = status.uncommitted | (
        set(status.table.column("video_id").to_pylist()) if status.table is not None else set())
    if drop:
        keep = pa.array([v not in drop for v in videos_tbl.column("video_id").to_pylist()], pa.bool_())
        videos_tbl = videos_tbl.filter(keep)
    if status.table is not None:
        try:
            videos_tbl = pa.concat_tables([videos_tbl, status.table], promote_options="permissive")
        except pa.ArrowException as exc:
            raise OutputError(f"{loc.display(layout.STATUS_DIR)}: rows do not match videos.parquet ({exc})") from exc
    videos = videos_tbl.to_pandas()
    dup = videos["video_id"].duplicated(keep="last")
    if dup.any():  # e.g. rows appended by a re-run: the last row of a video wins
        log.warning("%s: %d duplicate video_id row(s); keeping the last", videos_shown, int(dup.sum()))
        videos = videos[~dup].reset_index(drop=True)
    for name in VIDEOS_SCHEMA.names:  # tolerate older/narrower tables
        if name not in videos.columns:
            videos[name] = pd.Series([None] * len(videos), dtype=object)
    return videos


def _categorize(loc: OutputLocation, videos: pd.DataFrame, frames: pd.DataFrame,
                faces: pd.DataFrame) -> pd.DataFrame:
    """``video_id`` as one Categorical in all three tables: the videos in file order, then ids
    found only in partitions (each gets a stub row in ``videos``, with a warning)."""
    ids = [str(v) for v in videos["video_id"].tolist()]
    extra = sorted(
        (set(frames["video_id"].astype(str)) | set(faces["video_id"].astype(str))) - set(ids)
    )
    if extra:
        log.warning("%s: partitions without a videos.parquet row: %s%s", loc.display(), extra[:5],
                    " ..." if len(extra) > 5 else "")
        stub = pd.DataFrame({c: pd.Series([None] * len(extra), dtype=object) for c in videos.columns})
        stub["video_id"] = extra
        videos = pd.concat([videos, stub], ignore_index=True) if len(videos) else stub
        ids += extra
    for df in (videos, frames, faces):
        _categorical_ids(df, ids)
    return videos
