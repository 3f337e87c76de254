"""Parquet output on a local folder, a shared filesystem or an object store, committed per video.

File names: :mod:`ferbatch.output.layout`; where the output lives: :mod:`.location`.

Commit protocol of one video (:meth:`OutputStore.commit`), the same on every filesystem:

1. write the marker ``_status/<id>.pending``;
2. delete ``_status/<id>.parquet`` (the video is now uncommitted);
3. replace its ``frames`` and ``faces`` partitions (or delete them, for a failed video);
4. write ``_status/<id>.parquet``, which names the partition files it commits in its Parquet
   metadata (``ferbatch.parts``) — the commit point;
5. delete the marker.

How step 3 and single files are made safe depends on the filesystem, and is the job of one of
two committers (:mod:`.committers`), chosen once per store:

* :class:`LocalCommitter` (POSIX rename is atomic): every file is written under a hidden temp
  name (readers skip names starting with ``.`` or ``_``) and renamed into place; a partition is
  written into a hidden temp folder (``part-0.parquet``) and renamed over the old one. A plain
  ``pd.read_parquet(OUT / "faces")`` never sees a torn file or a half-replaced partition.
* :class:`ObjectStoreCommitter` (object stores: rename is a copy, neither atomic nor cheap): the
  old partition is deleted, then the new file is written once under its final, unique name
  ``part-<commit>.parquet``; a single-object PUT is atomic, so no file is ever seen torn, and
  the status object is written last.

What a reader sees: a video with a marker and no status row is uncommitted, and
:func:`ferbatch.load` ignores its partitions and any stale ``videos.parquet`` row of it; files of
a committed video that its status row does not name (left by a writer that died, or a zombie
retry) are ignored too. The next run (:meth:`OutputStore.recover`) deletes that debris and,
as the video has no status row, redoes it. On an object store, a plain ``pd.read_parquet`` of
``OUT/faces`` may therefore show an interrupted video's partial files until the next run starts;
read with :func:`ferbatch.load` while a run is going or after one was killed.
"""

from __future__ import annotations

import json
import logging
import os
import uuid
from collections.abc import Collection, Sequence
from typing import Any

import pyarrow as pa
import pyarrow.fs as pafs
import pyarrow.parquet as pq

from .. import __version__
from ..errors import OutputError
from . import layout
from .arrow import from_rows, to_rows
from .committers import Committer, LocalCommitter, ObjectStoreCommitter
from .location import IO_ERRORS, OutputLocation, first_line, resolve_output
from .schema import SCHEMA_VERSION, STATUS_FAILED, VIDEOS_SCHEMA

log = logging.getLogger(__name__)

PARTS_KEY = b"ferbatch.parts"  # status-file metadata: JSON list of the partition files committed
class OutputStore:
    """Reads and writes one output (local or remote); safe against a crash at any point.

    ``out``: a local folder, a URI or an :class:`OutputLocation` (:func:`resolve_output`).
    Every method raises :class:`OutputError` naming the output when the filesystem fails.
    """

    def __init__(self, out: str | os.PathLike[str] | OutputLocation,
                 filesystem: pafs.FileSystem | None = None) -> None:
        self.location = resolve_output(out, filesystem)
        self.fs = self.location.filesystem
        kind = LocalCommitter if self.location.is_local else ObjectStoreCommitter
        self.committer: Committer = kind(self.location)

    def _path(self, *parts: str) -> str:
        return self.location.join(*parts)

    def _error(self, what: str, exc: BaseException) -> OutputError:
        return OutputError(f"{self.location.display()}: cannot {what}: {first_line(exc)}")

    def _write_bytes(self, data: bytes, path: str) -> None:
        def write(p: str) -> None:
            with self.fs.open_output_stream(p) as stream:
                stream.write(data)

        self.committer.put(path, write)

    def _read_small(self, path: str) -> pa.Table:
        """One small Parquet file, read whole. ``ParquetFile`` rather than ``pq.read_table``:
        the latter imports ``pyarrow.dataset`` and pandas (~1 s of a short run's start-up)."""
        with self.fs.open_input_file(path) as f:
            return pq.ParquetFile(f).read()

    # -- manifest -------------------------------------------------------------------------------
    def read_manifest(self) -> dict[str, Any] | None:
        """The parsed ``_ferbatch.json``, or ``None`` when there is none."""
        path = self._path(layout.MANIFEST)
        try:
            if self.committer.kind(path) != pafs.FileType.File:
                return None
            with self.fs.open_input_stream(path) as stream:
                manifest = json.loads(stream.read().decode())
        except (*IO_ERRORS, ValueError) as exc:
            raise self._error(f"read {layout.MANIFEST}", exc) from exc
        if not isinstance(manifest, dict):
            raise OutputError(f"{self.location.display(layout.MANIFEST)}: expected a JSON object, "
                              f"got {type(manifest).__name__}")
        return manifest

    def write_manifest(self, labels: Sequence[str], model: str, overwrite: bool = False,
                       redo: Collection[str] = ()) -> None:
        """Create the output and its manifest. An output holds one label set
        (:mod:`ferbatch.output.labelset`): another label set needs ``overwrite`` and every
        video of the output with results among ``redo`` (the ids the run analyses); their old
        results are then removed before the new manifest is written.

        Raises :class:`OutputError` naming the output when it cannot be written (missing
        credentials, no such bucket, a file in the way), :class:`ConfigError` when it holds
        results of another label set that this run may not replace.
        """
        from ..quality import DEFAULT_THRESHOLDS
        from .labelset import replace_label_set

        try:
            self.committer.mkdir(self.location.path)
            self.committer.mkdir(self._path(layout.STATUS_DIR))
        except IO_ERRORS as exc:
            raise self._error("write the output", exc) from exc
        old = self.read_manifest()
        removed: list[str] = []
        if old is not None and list(old.get("labels", [])) != list(labels):
            removed = replace_label_set(self, list(old.get("labels", [])), list(labels),
                                        overwrite, redo)
        text = json.dumps({"schema_version": SCHEMA_VERSION, "labels": list(labels),
                           "model": model, "ferbatch_version": __version__,
                           "quality_thresholds": DEFAULT_THRESHOLDS.to_dict()}, indent=2)
        try:
            self._write_bytes(text.encode(), self._path(layout.MANIFEST))
            for video_id in removed:  # their commit markers: gone only once the manifest is new
                self.committer.delete_file(self.pending_path(video_id))
        except IO_ERRORS as exc:
            raise self._error("write the output", exc) from exc

    def discard(self, video_id: str) -> None:
        """Remove the committed results of ``video_id`` (status row, then partitions), leaving
        its ``.pending`` marker: readers ignore it, and the next run settles it."""
        c = self.committer
        try:
            self._write_bytes(b"discard", self.pending_path(video_id))
            c.delete_file(self.status_path(video_id))
            for name in layout.TABLES:
                c.delete_dir(self._path(layout.partition_dir(name, video_id)))
        except IO_ERRORS as exc:
            raise self._error(f"remove the results of {video_id}", exc) from exc

    def status_files(self) -> tuple[list[pa.Table], set[str]]:
        """What ``_status/`` holds: the table of every committed status file with rows, in
        file-name order, each with its Parquet metadata (:func:`committed_parts`), torn files
        skipped; and the ids with a ``.pending`` marker (hidden names ignored)."""
        tables: list[pa.Table] = []
        pending: set[str] = set()
        try:
            entries = self.committer.listdir(self._path(layout.STATUS_DIR))
        except IO_ERRORS as exc:
            raise self._error("list the status rows", exc) from exc
        for info in sorted(entries, key=lambda i: i.base_name):
            name = info.base_name
            if info.type != pafs.FileType.File or name.startswith((".", "_")):
                continue
            video_id = layout.pending_id(name)
            if video_id is not None:
                pending.add(video_id)
            elif layout.is_status_file(name):
                try:
                    table = self._read_small(info.path)
                except IO_ERRORS:
                    continue  # a torn file from a crashed writer: that video is redone next run
                if "video_id" in table.column_names and table.num_rows:
                    tables.append(table)
        return tables, pending

    def status_rows(self) -> list[dict[str, Any]]:
        """Every committed status row (torn files skipped), in file-name order."""
        return [row for table in self.status_files()[0] for row in to_rows(table)]

    # -- per-video commit -----------------------------------------------------------------------
    def status_path(self, video_id: str) -> str:
        """Path of the status file of ``video_id`` inside the filesystem."""
        return self._path(layout.status_file(video_id))

    def pending_path(self, video_id: str) -> str:
        """Path of the marker of an unfinished commit of ``video_id``."""
        return self._path(layout.pending_file(video_id))

    def read_status(self, video_id: str) -> dict[str, Any] | None:
        """The committed status row of ``video_id``, or ``None`` (also for a torn file)."""
        path = self.status_path(video_id)
        try:
            if self.committer.kind(path) != pafs.FileType.File:
                return None
            rows = to_rows(self._read_small(path))
        except IO_ERRORS:
            return None
        return rows[0] if rows else None

    def commit(self, video_row: dict[str, Any], frames: pa.Table | None,
               faces: pa.Table | None) -> None:
        """Publish one video's partitions, then its status row (the commit point).

        Raises :class:`OutputError` when the filesystem fails; the video then stays
        uncommitted and is redone by the next run.
        """
        video_id = video_row["video_id"]
        token = uuid.uuid4().hex[:16]
        c = self.committer
        try:
            self._write_bytes(token.encode(), self.pending_path(video_id))
            c.delete_file(self.status_path(video_id))
            parts: list[str] = []
            for name, table in zip(layout.TABLES, (frames, faces)):
                target = self._path(layout.partition_dir(name, video_id))
                if table is None or video_row["status"] == STATUS_FAILED:
                    c.delete_dir(target)
                    continue
                part = c.publish(table, target, token)
                if part not in parts:
                    parts.append(part)
            schema = VIDEOS_SCHEMA.with_metadata({PARTS_KEY: json.dumps(parts).encode()})
            c.write_table(from_rows([video_row], schema), self.status_path(video_id))
            c.delete_file(self.pending_path(video_id))
        except IO_ERRORS as exc:
            raise self._error(f"commit {video_id}", exc) from exc
        log.debug("committed %s (%s)", video_id, video_row["status"])

    # -- videos table ---------------------------------------------------------------------------
    def write_videos_table(self) -> pa.Table:
        """Rebuild ``videos.parquet`` from every committed status row, sorted by path."""
        rows = self.status_rows()
        rows.sort(key=lambda r: (r["path"], r["video_id"]))
        table = from_rows(rows, VIDEOS_SCHEMA)
        try:
            self.committer.write_table(table, self._path(layout.VIDEOS_FILE))
        except IO_ERRORS as exc:
            raise self._error(f"write {layout.VIDEOS_FILE}", exc) from exc
        return table

    def recover(self) -> None:
        """Settle what killed runs left: temp files and folders, and the partitions of videos
        whose commit did not finish (a ``.pending`` marker and no status row: they are redone)
        or files their status row does not name."""
        try:
            self.committer.remove_temp()
            for info in self.committer.listdir(self._path(layout.STATUS_DIR)):
                video_id = layout.pending_id(info.base_name)
                if info.type == pafs.FileType.File and video_id is not None:
                    self._settle(video_id)
        except IO_ERRORS as exc:
            raise self._error("clean up after an earlier run", exc) from exc

    def _settle(self, video_id: str) -> None:
        """Settle an interrupted commit of ``video_id``: without a (readable) status row its
        partitions go (the video is redone); with one, only the files it names stay."""
        c = self.committer
        status = self.status_path(video_id)
        committed, parts = False, None
        if c.kind(status) == pafs.FileType.File:
            try:
                parts = committed_parts(pq.read_schema(status, filesystem=self.fs))
                committed = True
            except IO_ERRORS:
                c.delete_file(status)  # torn
        for name in layout.TABLES:
            target = self._path(layout.partition_dir(name, video_id))
            if not committed:
                c.delete_dir(target)
            elif parts is not None:
                for info in c.listdir(target):
                    if info.type == pafs.FileType.File and info.base_name not in parts:
                        c.delete_file(info.path)
        c.delete_file(self.pending_path(video_id))
        log.info("settled an interrupted commit of %s", video_id)


def committed_parts(schema: pa.Schema) -> list[str] | None:
    """The partition file names a status file commits (``None``: not recorded, older output)."""
    raw = (schema.metadata or {}).get(PARTS_KEY)
    if raw is None:
        return None
    try:
        parts = json.loads(raw)
    except ValueError:
        return None
    return [str(p) for p in parts] if isinstance(parts, list) else None
