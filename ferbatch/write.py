"""Parquet output on a local folder, a shared filesystem or an object store, committed per video.

Layout (see README "Output contract")::

    OUT/_ferbatch.json                      labels, model and schema version of this output
    OUT/videos.parquet                      one row per input file (rebuilt from OUT/_status)
    OUT/_status/<video_id>.parquet          that row, one file per video: the commit point
    OUT/_status/<video_id>.pending          marker of a commit in progress (or killed midway)
    OUT/frames/video_id=<id>/part-*.parquet one row per analysed frame
    OUT/faces/video_id=<id>/part-*.parquet  one row per face per analysed frame

``OUT`` is a local path, or any URI :meth:`pyarrow.fs.FileSystem.from_uri` resolves
(``s3://bucket/prefix``, ``gs://bucket/prefix``, ``file:///abs/path``, …), or an
:class:`OutputLocation` (a :class:`pyarrow.fs.FileSystem` plus a base path) from the API;
:func:`resolve_output` turns each into an :class:`OutputLocation`. Credentials of object stores
come from the environment, as pyarrow's filesystems read them.

Commit protocol of one video (:meth:`OutputStore.commit`), the same on every filesystem:

1. write the marker ``_status/<id>.pending``;
2. delete ``_status/<id>.parquet`` (the video is now uncommitted);
3. replace its ``frames`` and ``faces`` partitions (or delete them, for a failed video);
4. write ``_status/<id>.parquet``, which names the partition files it commits in its Parquet
   metadata (``ferbatch.parts``) — the commit point;
5. delete the marker.

How step 3 and single files are made safe depends on the filesystem:

* Local (POSIX rename is atomic): every file is written under a hidden temp name (readers skip
  names starting with ``.`` or ``_``) and renamed into place; a partition is written into a
  hidden temp folder (``part-0.parquet``) and renamed over the old one. A plain
  ``pd.read_parquet(OUT / "faces")`` never sees a torn file or a half-replaced partition.
* Anything else (object stores: rename is a copy, neither atomic nor cheap): the old partition
  is deleted, then the new file is written once under its final, unique name
  ``part-<commit>.parquet``; a single-object PUT is atomic, so no file is ever seen torn, and the
  status object is written last.

What a reader sees: a video with a marker and no status row is uncommitted, and
:func:`ferbatch.load` ignores its partitions and any stale ``videos.parquet`` row of it; files of
a committed video that its status row does not name (left by a writer that died, or a zombie
retry) are ignored too. The next run (:meth:`OutputStore.clean_temp`) deletes that debris and,
as the video has no status row, redoes it. On an object store, a plain ``pd.read_parquet`` of
``OUT/faces`` may therefore show an interrupted video's partial files until the next run starts;
read with :func:`ferbatch.load` while a run is going or after one was killed.
"""

from __future__ import annotations

import json
import os
import posixpath
import re
import urllib.parse
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.fs as pafs
import pyarrow.parquet as pq

from . import __version__
from .arrow import from_rows, to_rows
from .errors import ConfigError, OutputError
from .schema import SCHEMA_VERSION, STATUS_FAILED, VIDEOS_SCHEMA, partition_dir

MANIFEST = "_ferbatch.json"
STATUS_DIR = "_status"
PENDING_SUFFIX = ".pending"
PART_NAME = "part-0.parquet"  # the partition file of a local output (renamed into place)
PARTS_KEY = b"ferbatch.parts"  # status-file metadata: JSON list of the partition files committed
TABLES = ("frames", "faces")
_URI = re.compile(r"^[A-Za-z][A-Za-z0-9+.\-]*://")
# object stores with no directories: writing a key needs no parent, create_dir adds marker objects
_FLAT_STORES = {"s3", "gcs", "abfs"}
_IO_ERRORS = (OSError, pa.ArrowException)


def is_uri(out: object) -> bool:
    """True when ``out`` is a string with a URI scheme (``s3://…``, ``file:///…``)."""
    return isinstance(out, str) and bool(_URI.match(out))


@dataclass(frozen=True)
class OutputLocation:
    """Where an output lives: a pyarrow filesystem and the base path inside it.

    ``uri`` is the local path or URI the location was made from (``None`` when it was built
    from a filesystem object); other processes (Ray workers) rebuild the location from it.
    """

    filesystem: pafs.FileSystem
    path: str
    uri: str | None = None

    @property
    def is_local(self) -> bool:
        """True on the local filesystem (atomic rename, POSIX paths)."""
        return isinstance(self.filesystem, pafs.LocalFileSystem)

    @property
    def out(self) -> Path | str:
        """How to show it to a user: a :class:`Path` for a local folder, else the URI."""
        if self.is_local:
            return Path(self.uri) if self.uri and not is_uri(self.uri) else Path(self.path)
        return str(self)

    def join(self, *parts: str) -> str:
        """A path inside the output, as the filesystem spells it."""
        if self.is_local:
            return os.path.join(self.path, *parts)
        return posixpath.join(self.path, *parts) if self.path else posixpath.join(*parts)

    def display(self, *parts: str) -> str:
        """A path inside the output as the user gave it, for messages (a URI without its
        query and credentials)."""
        if self.uri is None:
            base = f"{self.filesystem.type_name}:{self.path}"
        elif not is_uri(self.uri):
            return os.path.join(self.uri, *parts)
        else:
            base = _public_uri(self.uri)
        return base.rstrip("/") + "/" + "/".join(parts) if parts else base

    def portable(self) -> str | OutputLocation:
        """What to send to another process: the path/URI when known, else this object."""
        if self.uri is None:
            return self
        return self.path if self.is_local else self.uri

    def __str__(self) -> str:
        return self.display()


def resolve_output(out: str | os.PathLike[str] | OutputLocation,
                   filesystem: pafs.FileSystem | None = None) -> OutputLocation:
    """The :class:`OutputLocation` of ``out``: a local path, a URI, or a location already.

    With ``filesystem``, ``out`` is a path inside it. Raises :class:`ConfigError` naming the
    URI and the reason when pyarrow cannot resolve it (unknown scheme, a filesystem pyarrow was
    built without, an S3 bucket whose region cannot be looked up).
    """
    if isinstance(out, OutputLocation):
        return out
    if filesystem is not None:
        return OutputLocation(filesystem, os.fspath(out).rstrip("/"), None)
    text = os.fspath(out)
    if is_uri(text):
        try:
            fs, path = pafs.FileSystem.from_uri(text)
        except (*_IO_ERRORS, ValueError) as exc:
            shown = _public_uri(text)
            raise ConfigError(f"cannot use {shown!r} as the output: "
                              f"{_reason(exc).replace(text, shown)}") from exc
        if isinstance(fs, pafs.LocalFileSystem):
            return OutputLocation(fs, os.path.abspath(path), text)
        return OutputLocation(fs, path.rstrip("/"), text)
    return OutputLocation(pafs.LocalFileSystem(), os.path.abspath(text), text)


def output_label(out: str | os.PathLike[str] | OutputLocation) -> Path | str:
    """``out`` as a run summary shows it: a Path for local folders, else the URI."""
    if isinstance(out, OutputLocation):
        return out.out
    return out if isinstance(out, str) and is_uri(out) else Path(out)


def _public_uri(uri: str) -> str:
    """``uri`` without ``user:secret@`` and ``?query`` (never print credentials)."""
    parts = urllib.parse.urlsplit(uri)
    netloc = parts.netloc.rpartition("@")[2]
    return urllib.parse.urlunsplit((parts.scheme, netloc, parts.path, "", ""))


def _reason(exc: BaseException) -> str:
    """The first line of an exception (pyarrow's can be long)."""
    lines = [line for line in str(exc).strip().splitlines() if line.strip()]
    return lines[0] if lines else type(exc).__name__


class OutputStore:
    """Reads and writes one output (local or remote); safe against a crash at any point."""

    def __init__(self, out: str | os.PathLike[str] | OutputLocation,
                 filesystem: pafs.FileSystem | None = None) -> None:
        self.location = resolve_output(out, filesystem)
        self.fs = self.location.filesystem
        self.atomic_rename = self.location.is_local

    # -- filesystem primitives ----------------------------------------------------------------
    def _path(self, *parts: str) -> str:
        return self.location.join(*parts)

    def _kind(self, path: str) -> pafs.FileType:
        return self.fs.get_file_info(path).type

    def _mkdir(self, path: str) -> None:
        if self.fs.type_name not in _FLAT_STORES:
            self.fs.create_dir(path, recursive=True)

    def _list(self, path: str, recursive: bool = False) -> list[pafs.FileInfo]:
        return self.fs.get_file_info(pafs.FileSelector(path, allow_not_found=True,
                                                       recursive=recursive))

    def _temp_name(self, path: str) -> str:
        head, name = os.path.split(path)
        return os.path.join(head, f".{name}.{uuid.uuid4().hex}.tmp")

    def _put(self, path: str, write: Any) -> None:
        """Write one file: temp + rename locally, a single direct write elsewhere."""
        if not self.atomic_rename:
            write(path)
            return
        tmp = self._temp_name(path)
        try:
            write(tmp)
            self.fs.move(tmp, path)
        except BaseException:
            self._delete_file(tmp)
            raise

    def _write_table(self, table: pa.Table, path: str) -> None:
        self._put(path, lambda p: pq.write_table(table, p, filesystem=self.fs, compression="zstd"))

    def _write_bytes(self, data: bytes, path: str) -> None:
        def write(p: str) -> None:
            with self.fs.open_output_stream(p) as stream:
                stream.write(data)

        self._put(path, write)

    def _read_bytes(self, path: str) -> bytes:
        with self.fs.open_input_stream(path) as stream:
            return stream.read()

    def _delete_file(self, path: str) -> None:
        try:
            self.fs.delete_file(path)
        except FileNotFoundError:
            pass

    def _delete_dir(self, path: str) -> None:
        """Delete a folder/prefix; locally it is first moved aside, so it vanishes at once."""
        if self._kind(path) != pafs.FileType.Directory:
            return
        if self.atomic_rename:
            head, name = os.path.split(path)
            trash = os.path.join(head, f".old-{name}-{uuid.uuid4().hex}")
            self.fs.move(path, trash)
            path = trash
        try:
            self.fs.delete_dir(path)
        except FileNotFoundError:
            pass

    def _io_error(self, what: str, exc: BaseException) -> OutputError:
        return OutputError(f"{self.location.display()}: cannot {what}: {_reason(exc)}")

    # -- manifest ---------------------------------------------------------------------------
    def prepare(self, labels: Sequence[str], model: str, overwrite: bool = False) -> None:
        """Create the output and its manifest; refuse to mix label sets in one output.

        Raises :class:`ConfigError` naming the output when it cannot be written (missing
        credentials, no such bucket, a file in the way).
        """
        manifest = self._path(MANIFEST)
        try:
            self._mkdir(self.location.path)
            self._mkdir(self._path(STATUS_DIR))
            old_text = (self._read_bytes(manifest).decode()
                        if self._kind(manifest) == pafs.FileType.File else None)
        except _IO_ERRORS as exc:
            raise ConfigError(f"cannot write the output {self.location.display()}: "
                              f"{_reason(exc)}") from exc
        if old_text is not None and not overwrite:
            old = json.loads(old_text)
            if list(old.get("labels", [])) != list(labels):
                raise ConfigError(
                    f"{self.location.display()} holds results with labels {old.get('labels')}, "
                    f"but this model has {list(labels)}; use --overwrite or another --out")
        text = json.dumps({"schema_version": SCHEMA_VERSION, "labels": list(labels),
                           "model": model, "ferbatch_version": __version__}, indent=2)
        try:
            self._write_bytes(text.encode(), manifest)
        except _IO_ERRORS as exc:
            raise ConfigError(f"cannot write the output {self.location.display()}: "
                              f"{_reason(exc)}") from exc

    # -- per-video commit -------------------------------------------------------------------
    def status_path(self, video_id: str) -> str:
        """Path of the status file of ``video_id`` inside the filesystem."""
        return self._path(STATUS_DIR, f"{video_id}.parquet")

    def pending_path(self, video_id: str) -> str:
        """Path of the marker of an unfinished commit of ``video_id``."""
        return self._path(STATUS_DIR, f"{video_id}{PENDING_SUFFIX}")

    def _read_small(self, path: str) -> pa.Table:
        """One small Parquet file, read whole. ``ParquetFile`` rather than ``pq.read_table``:
        the latter imports ``pyarrow.dataset`` and pandas (~1 s of a short run's start-up)."""
        with self.fs.open_input_file(path) as f:
            return pq.ParquetFile(f).read()

    def read_status(self, video_id: str) -> dict[str, Any] | None:
        """The committed status row of ``video_id``, or ``None``."""
        path = self.status_path(video_id)
        try:
            if self._kind(path) != pafs.FileType.File:
                return None
            rows = to_rows(self._read_small(path))
        except _IO_ERRORS:
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
        part = PART_NAME if self.atomic_rename else f"part-{token}.parquet"
        pending = self.pending_path(video_id)
        try:
            self._write_bytes(token.encode(), pending)
            self._delete_file(self.status_path(video_id))
            parts: list[str] = []
            for name, table in zip(TABLES, (frames, faces)):
                target = self._path(partition_dir(name, video_id))
                if table is None or video_row["status"] == STATUS_FAILED:
                    self._delete_dir(target)
                    continue
                self._publish(table, target, part, token)
                parts = [part]
            schema = VIDEOS_SCHEMA.with_metadata({PARTS_KEY: json.dumps(parts).encode()})
            self._write_table(from_rows([video_row], schema),
                              self.status_path(video_id))
            self._delete_file(pending)
        except _IO_ERRORS as exc:
            raise self._io_error(f"commit {video_id}", exc) from exc

    def _publish(self, table: pa.Table, target: str, part: str, token: str) -> None:
        """Replace the partition folder ``target`` by one holding ``table`` as ``part``."""
        if not self.atomic_rename:
            self._delete_dir(target)
            self._mkdir(target)
            pq.write_table(table, posixpath.join(target, part), filesystem=self.fs,
                           compression="zstd")
            return
        parent, name = os.path.split(target)
        self._mkdir(parent)
        tmp = os.path.join(parent, f".tmp-{name[len('video_id='):]}-{token}")
        self._mkdir(tmp)
        try:
            pq.write_table(table, os.path.join(tmp, part), filesystem=self.fs, compression="zstd")
            self._delete_dir(target)
            self.fs.move(tmp, target)
        except BaseException:
            try:
                self.fs.delete_dir(tmp)
            except _IO_ERRORS:
                pass
            raise

    # -- videos table -----------------------------------------------------------------------
    def write_videos_table(self) -> pa.Table:
        """Rebuild ``videos.parquet`` from every committed status row, sorted by path."""
        rows: list[dict[str, Any]] = []
        try:
            entries = self._list(self._path(STATUS_DIR))
        except _IO_ERRORS as exc:
            raise self._io_error("list the status rows", exc) from exc
        for info in sorted(entries, key=lambda i: i.base_name):
            if info.type != pafs.FileType.File or not _is_status_file(info.base_name):
                continue
            try:
                rows.extend(to_rows(self._read_small(info.path)))
            except _IO_ERRORS:
                continue  # a torn file from a crashed writer: that video is redone next run
        rows.sort(key=lambda r: (r["path"], r["video_id"]))
        table = from_rows(rows, VIDEOS_SCHEMA)
        try:
            self._write_table(table, self._path("videos.parquet"))
        except _IO_ERRORS as exc:
            raise self._io_error("write videos.parquet", exc) from exc
        return table

    def clean_temp(self) -> None:
        """Remove what killed runs left: temp files and folders, and the partitions of videos
        whose commit did not finish (they have a ``.pending`` marker and no status row; they
        are redone) or files their status row does not name."""
        try:
            if self.atomic_rename:
                for folder in (*TABLES, STATUS_DIR, ""):
                    for info in self._list(self._path(folder) if folder else self.location.path):
                        if info.base_name.startswith((".tmp-", ".old-")) and \
                                info.type == pafs.FileType.Directory:
                            self.fs.delete_dir(info.path)
                        elif info.base_name.startswith(".") and info.base_name.endswith(".tmp"):
                            self._delete_file(info.path)
            for info in self._list(self._path(STATUS_DIR)):
                if info.type == pafs.FileType.File and info.base_name.endswith(PENDING_SUFFIX):
                    self._clean_pending(info.base_name[:-len(PENDING_SUFFIX)])
        except _IO_ERRORS as exc:
            raise self._io_error("clean up after an earlier run", exc) from exc

    def _clean_pending(self, video_id: str) -> None:
        """Settle an interrupted commit of ``video_id``: without a (readable) status row its
        partitions go (the video is redone); with one, only the files it names stay."""
        status = self.status_path(video_id)
        committed, parts = False, None
        if self._kind(status) == pafs.FileType.File:
            try:
                parts = committed_parts(pq.read_schema(status, filesystem=self.fs))
                committed = True
            except _IO_ERRORS:
                self._delete_file(status)  # torn
        for name in TABLES:
            target = self._path(partition_dir(name, video_id))
            if not committed:
                self._delete_dir(target)
            elif parts is not None:
                for info in self._list(target):
                    if info.type == pafs.FileType.File and info.base_name not in parts:
                        self._delete_file(info.path)
        self._delete_file(self.pending_path(video_id))


def _is_status_file(name: str) -> bool:
    return name.endswith(".parquet") and not name.startswith((".", "_"))


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
