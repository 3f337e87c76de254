"""Read a ferbatch output back into pandas: ``ferbatch.load(OUT)``.

``OUT`` is a local folder or any URI :func:`ferbatch.output.location.resolve_output` accepts
(``s3://bucket/prefix``, ``gs://…``, ``file:///…``); every read goes through its
:class:`pyarrow.fs.FileSystem`. The output follows the contract of :mod:`ferbatch.output` (schema and layout):
``videos.parquet``, Hive-partitioned ``frames/video_id=<id>/`` and ``faces/video_id=<id>/``
folders, and ``_ferbatch.json``. Rows of ``_status/<video_id>.parquet`` (committed per video by
the pipeline while it runs) take precedence over ``videos.parquet``, so a run still going or
killed midway reads correctly: a video with a ``.pending`` marker and no status row is being
(re)written and is left out entirely, and only the partition files a status row names are read
(see :mod:`ferbatch.output.commit`). Each partition is read on its own (a stray temp file cannot
break the whole read) and ``video_id`` is restored from the folder name, as
``pd.read_parquet(OUT / "frames")`` would. An output holds one label set
(:mod:`ferbatch.output.labelset`): faces partitions with other ``p_*`` columns are an error.
The DataFrames and their dtypes: :mod:`ferbatch.output.results`.
"""

from __future__ import annotations

import logging
import os
import posixpath
import urllib.parse
from dataclasses import dataclass, field
from os import PathLike
from typing import Any

import pandas as pd
import pyarrow as pa
import pyarrow.fs as pafs
import pyarrow.parquet as pq

from ..errors import OutputError
from ..text import short_list
from . import layout
from .commit import OutputStore, committed_parts
from .location import OutputLocation, resolve_output
from .results import Results, assemble, typed_videos, with_video_id
from .schema import FRAMES_SCHEMA, SCHEMA_VERSION, VIDEOS_SCHEMA, faces_schema, labels_from_columns

__all__ = ["Results", "load"]

log = logging.getLogger(__name__)


def _read_meta(store: OutputStore) -> dict[str, Any]:
    """``_ferbatch.json`` (``{}`` when there is none); :class:`OutputError` when its schema
    version is not one this ferbatch reads."""
    meta = store.read_manifest()
    if meta is None:
        return {}
    version = str(meta.get("schema_version", SCHEMA_VERSION))
    if version.split(".")[0] != SCHEMA_VERSION.split(".")[0]:
        raise OutputError(
            f"{store.location.display(layout.MANIFEST)}: schema_version {version} is not readable by this "
            f"ferbatch (reads {SCHEMA_VERSION.split('.')[0]}.x)"
        )
    return meta


@dataclass
class _Status:
    """What ``_status/`` says: committed rows, the files each commits, unfinished commits."""

    table: pa.Table | None = None
    parts: dict[str, set[str]] = field(default_factory=dict)  # video_id -> committed file names
    uncommitted: set[str] = field(default_factory=set)  # a .pending marker and no status row


def _read_status(store: OutputStore) -> _Status:
    """The per-video status rows the pipeline commits (``_status/<video_id>.parquet``,
    :meth:`OutputStore.status_files`), sorted by path like ``videos.parquet``."""
    tables, pending = store.status_files()
    found = _Status()
    committed: set[str] = set()
    for table in tables:
        parts = committed_parts(table.schema)
        for vid in table.column("video_id").to_pylist():
            committed.add(vid)
            if parts is not None:
                found.parts[vid] = set(parts)
    found.uncommitted = pending - committed
    if tables:
        table = pa.concat_tables([t.replace_schema_metadata(None) for t in tables],
                                 promote_options="permissive")
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
                schema: pa.Schema, status: _Status, labels: list[str] | None = None) -> pa.Table:
    """Read every committed partition of ``table_name`` into one table with ``video_id`` from
    the folder names.

    Partitions of uncommitted videos and files their status row does not name are skipped.
    ``labels`` (faces only): the output's label set; a partition whose ``p_*`` columns differ
    (an output mixing two models' label sets, written by an older ferbatch) is an
    :class:`OutputError` naming the videos (:mod:`ferbatch.output.labelset`). ``[]``: the
    first partition's labels are the reference.
    """
    fs = loc.filesystem
    tables = []
    odd: dict[str, list[str]] = {}
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
            if labels is not None:
                found = labels_from_columns(table.column_names)
                labels = labels or found
                if set(found) != set(labels):
                    odd[video_id] = found
            tables.append(with_video_id(table, video_id))
    if odd:
        raise OutputError(
            f"{loc.display()}: one output holds one label set, {labels}, but the faces of "
            f"{len(odd)} video(s) have other labels: "
            + short_list([f"{vid} {found}" for vid, found in sorted(odd.items())])
            + "; redo them with the output's model, or redo every video with --overwrite")
    if not tables:
        return schema.empty_table()
    try:
        return pa.concat_tables(tables, promote_options="permissive")
    except pa.ArrowException as exc:
        raise OutputError(f"{loc.display(table_name)}: partitions have incompatible schemas ({exc})") from exc


def load(out: str | PathLike[str] | OutputLocation,
         filesystem: pafs.FileSystem | None = None) -> Results:
    """Read the ferbatch output ``out`` into a :class:`Results`.

    ``out`` is a local folder, a URI pyarrow resolves (``s3://bucket/prefix``, ``gs://…``,
    ``file:///…``; credentials from the environment), an :class:`~ferbatch.output.location.OutputLocation`,
    or a path inside ``filesystem``. Only committed videos are read: partitions of a video
    whose commit did not finish are ignored (see :mod:`ferbatch.output.commit`). Labels come from
    ``_ferbatch.json`` when present, else from the ``p_*`` columns of the faces table. The
    DataFrames' dtypes never depend on the data (:mod:`ferbatch.output.results`). Raises
    :class:`OutputError` (a :class:`~ferbatch.errors.FerbatchError`) when ``out`` cannot be
    reached, is not a ferbatch output folder, or mixes label sets
    (:mod:`ferbatch.output.labelset`).
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
    store = OutputStore(loc)
    meta = _read_meta(store)
    has_videos = loc.filesystem.get_file_info(loc.join(layout.VIDEOS_FILE)).type == pafs.FileType.File
    partitions = {name: _partitions(loc, name) for name in layout.TABLES}
    if not has_videos and not meta and not any(partitions.values()):
        raise OutputError(
            f"{loc.display()}: not a ferbatch output folder (no videos.parquet, {layout.MANIFEST}, "
            "frames/ or faces/)"
        )
    status = _read_status(store)
    videos = _read_videos(loc, has_videos, status)
    frames = _read_table(loc, layout.FRAMES, partitions[layout.FRAMES], FRAMES_SCHEMA, status)
    labels = [str(x) for x in meta.get("labels") or []]
    faces = _read_table(loc, layout.FACES, partitions[layout.FACES], faces_schema(labels), status,
                        labels=labels)
    labels = labels or labels_from_columns(faces.column_names)
    return assemble(loc.public, videos, frames, faces, labels, meta, loc.display())


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
    videos = typed_videos(videos_tbl)
    dup = videos["video_id"].duplicated(keep="last")
    if dup.any():  # e.g. rows appended by a re-run: the last row of a video wins
        log.warning("%s: %d duplicate video_id row(s); keeping the last", videos_shown, int(dup.sum()))
        videos = videos[~dup].reset_index(drop=True)
    return videos
