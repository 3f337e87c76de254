"""The two committers of :class:`~ferbatch.output.commit.OutputStore`: how one file and one
partition folder are written so that no reader sees them torn, on a POSIX filesystem
(:class:`LocalCommitter`: temp name + atomic rename) and on an object store
(:class:`ObjectStoreCommitter`: unique names written once). The commit protocol that uses
them is described in :mod:`.commit`.
"""

from __future__ import annotations

import os
import posixpath
import uuid
from collections.abc import Callable
from typing import Any

import pyarrow as pa
import pyarrow.fs as pafs
import pyarrow.parquet as pq

from . import layout
from .atomic import TEMP_SUFFIX, atomic_write
from .location import IO_ERRORS, OutputLocation

# object stores with no directories: writing a key needs no parent, create_dir adds marker objects
_FLAT_STORES = {"s3", "gcs", "abfs"}
_PARQUET: dict[str, Any] = {"compression": "zstd"}

Writer = Callable[[str], None]


class Committer:
    """Filesystem primitives shared by both committers."""

    def __init__(self, location: OutputLocation) -> None:
        self.location = location
        self.fs = location.filesystem

    def kind(self, path: str) -> pafs.FileType:
        return self.fs.get_file_info(path).type

    def mkdir(self, path: str) -> None:
        if self.fs.type_name not in _FLAT_STORES:
            self.fs.create_dir(path, recursive=True)

    def listdir(self, path: str) -> list[pafs.FileInfo]:
        return self.fs.get_file_info(pafs.FileSelector(path, allow_not_found=True))

    def delete_file(self, path: str) -> None:
        try:
            self.fs.delete_file(path)
        except FileNotFoundError:
            pass

    def write_table(self, table: pa.Table, path: str) -> None:
        self.put(path, lambda p: pq.write_table(table, p, filesystem=self.fs, **_PARQUET))

    # -- what differs ---------------------------------------------------------------------------
    def put(self, path: str, write: Writer) -> None:
        """Write one file so that no reader ever sees it torn."""
        raise NotImplementedError

    def delete_dir(self, path: str) -> None:
        """Delete a partition folder (or prefix)."""
        raise NotImplementedError

    def publish(self, table: pa.Table, target: str, token: str) -> str:
        """Replace the partition folder ``target`` by one holding ``table``; returns the
        file name it committed."""
        raise NotImplementedError

    def remove_temp(self) -> None:
        """Remove the temp files and folders a killed writer left."""


class LocalCommitter(Committer):
    """Temp name + atomic rename for every file and partition folder (POSIX filesystems)."""

    def put(self, path: str, write: Writer) -> None:
        atomic_write(path, write)

    def delete_dir(self, path: str) -> None:
        """Moved aside first, so the folder vanishes at once, then deleted."""
        if self.kind(path) != pafs.FileType.Directory:
            return
        head, name = os.path.split(path)
        trash = os.path.join(head, f"{layout.TRASH_DIR_PREFIX}{name}-{uuid.uuid4().hex}")
        self.fs.move(path, trash)
        self.fs.delete_dir(trash)

    def publish(self, table: pa.Table, target: str, token: str) -> str:
        parent, name = os.path.split(target)
        self.mkdir(parent)
        tmp = os.path.join(parent, f"{layout.TEMP_DIR_PREFIX}{layout.partition_id(name)}-{token}")
        self.mkdir(tmp)
        try:
            pq.write_table(table, os.path.join(tmp, layout.LOCAL_PART), filesystem=self.fs, **_PARQUET)
            self.delete_dir(target)
            self.fs.move(tmp, target)
        except BaseException:
            try:
                self.fs.delete_dir(tmp)
            except IO_ERRORS:
                pass
            raise
        return layout.LOCAL_PART

    def remove_temp(self) -> None:
        for folder in (*layout.TABLES, layout.STATUS_DIR, ""):
            for info in self.listdir(self.location.join(folder) if folder else self.location.path):
                name = info.base_name
                if info.type == pafs.FileType.Directory and name.startswith(
                        (layout.TEMP_DIR_PREFIX, layout.TRASH_DIR_PREFIX)):
                    self.fs.delete_dir(info.path)
                elif name.startswith(".") and name.endswith(TEMP_SUFFIX):
                    self.delete_file(info.path)


class ObjectStoreCommitter(Committer):
    """Unique file names written once, status object last (no rename needed)."""

    def put(self, path: str, write: Writer) -> None:
        write(path)

    def delete_dir(self, path: str) -> None:
        if self.kind(path) != pafs.FileType.Directory:
            return
        try:
            self.fs.delete_dir(path)
        except FileNotFoundError:
            pass

    def publish(self, table: pa.Table, target: str, token: str) -> str:
        part = layout.object_part(token)
        self.delete_dir(target)
        self.mkdir(target)
        pq.write_table(table, posixpath.join(target, part), filesystem=self.fs, **_PARQUET)
        return part
