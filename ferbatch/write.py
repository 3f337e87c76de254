"""Parquet output, written atomically.

Layout (see README "Output contract")::

    OUT/_ferbatch.json                      labels, model and schema version of this output
    OUT/videos.parquet                      one row per input file (rebuilt from OUT/_status)
    OUT/_status/<video_id>.parquet          that row, one file per video
    OUT/frames/video_id=<id>/part-0.parquet one row per analysed frame
    OUT/faces/video_id=<id>/part-0.parquet  one row per face per analysed frame

A video's two partitions are written into hidden temp folders (readers ignore names starting
with ``.`` or ``_``) and renamed into place; its status row is written last, so a run killed
midway never shows a half-written partition, and a video without a status row is simply redone.
"""

from __future__ import annotations

import json
import os
import shutil
import uuid
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq

from . import __version__
from .errors import ConfigError
from .schema import SCHEMA_VERSION, STATUS_FAILED, VIDEOS_SCHEMA, partition_dir

MANIFEST = "_ferbatch.json"
STATUS_DIR = "_status"
PART_NAME = "part-0.parquet"


def _atomic_write_table(table: pa.Table, path: Path) -> None:
    tmp = path.with_name(f".{path.name}.{uuid.uuid4().hex}.tmp")
    try:
        pq.write_table(table, tmp, compression="zstd")
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


def _atomic_write_text(text: str, path: Path) -> None:
    tmp = path.with_name(f".{path.name}.{uuid.uuid4().hex}.tmp")
    tmp.write_text(text)
    os.replace(tmp, path)


class OutputStore:
    """Reads and writes one output folder; safe against a crash at any point."""

    def __init__(self, out: str | os.PathLike[str]) -> None:
        self.root = Path(out)

    # -- manifest ---------------------------------------------------------------------------
    def prepare(self, labels: Sequence[str], model: str, overwrite: bool = False) -> None:
        """Create the folder and its manifest; refuse to mix label sets in one output."""
        self.root.mkdir(parents=True, exist_ok=True)
        (self.root / STATUS_DIR).mkdir(exist_ok=True)
        manifest = self.root / MANIFEST
        if manifest.is_file() and not overwrite:
            old = json.loads(manifest.read_text())
            if list(old.get("labels", [])) != list(labels):
                raise ConfigError(
                    f"{self.root} holds results with labels {old.get('labels')}, but this model "
                    f"has {list(labels)}; use --overwrite or another --out")
        _atomic_write_text(json.dumps({"schema_version": SCHEMA_VERSION, "labels": list(labels),
                                       "model": model, "ferbatch_version": __version__},
                                      indent=2), manifest)

    # -- per-video commit -------------------------------------------------------------------
    def status_path(self, video_id: str) -> Path:
        return self.root / STATUS_DIR / f"{video_id}.parquet"

    def read_status(self, video_id: str) -> dict[str, Any] | None:
        """The committed status row of ``video_id``, or ``None``."""
        path = self.status_path(video_id)
        if not path.is_file():
            return None
        try:
            rows = pq.read_table(path).to_pylist()
        except (OSError, pa.ArrowException):
            return None
        return rows[0] if rows else None

    def commit(self, video_row: dict[str, Any], frames: pa.Table | None,
               faces: pa.Table | None) -> None:
        """Publish one video's partitions, then its status row (the commit point)."""
        video_id = video_row["video_id"]
        self.status_path(video_id).unlink(missing_ok=True)
        for name, table in (("frames", frames), ("faces", faces)):
            target = self.root / partition_dir(name, video_id)
            if table is None or video_row["status"] == STATUS_FAILED:
                self._remove(target)
                continue
            target.parent.mkdir(parents=True, exist_ok=True)
            tmp = target.parent / f".tmp-{video_id}-{uuid.uuid4().hex}"
            tmp.mkdir()
            try:
                pq.write_table(table, tmp / PART_NAME, compression="zstd")
                self._remove(target)
                os.replace(tmp, target)
            except BaseException:
                shutil.rmtree(tmp, ignore_errors=True)
                raise
        row_table = pa.Table.from_pylist([video_row], schema=VIDEOS_SCHEMA)
        _atomic_write_table(row_table, self.status_path(video_id))

    def _remove(self, target: Path) -> None:
        """Move an old partition aside (atomic), then delete it."""
        if not target.exists():
            return
        trash = target.parent / f".old-{target.name}-{uuid.uuid4().hex}"
        os.replace(target, trash)
        shutil.rmtree(trash, ignore_errors=True)

    # -- videos table -----------------------------------------------------------------------
    def write_videos_table(self) -> pa.Table:
        """Rebuild ``videos.parquet`` from every committed status row, sorted by path."""
        rows: list[dict[str, Any]] = []
        status_dir = self.root / STATUS_DIR
        for path in sorted(status_dir.glob("*.parquet")) if status_dir.is_dir() else []:
            try:
                rows.extend(pq.read_table(path).to_pylist())
            except (OSError, pa.ArrowException):
                continue  # a torn file from a crashed writer: that video is redone next run
        rows.sort(key=lambda r: (r["path"], r["video_id"]))
        table = pa.Table.from_pylist(rows, schema=VIDEOS_SCHEMA)
        _atomic_write_table(table, self.root / "videos.parquet")
        return table

    def clean_temp(self) -> None:
        """Remove temp folders left by a killed run."""
        for table in ("frames", "faces"):
            base = self.root / table
            if base.is_dir():
                for child in base.iterdir():
                    if child.name.startswith((".tmp-", ".old-")):
                        shutil.rmtree(child, ignore_errors=True)
