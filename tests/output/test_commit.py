"""The commit protocol (``ferbatch.output.commit``): atomic partitions, the status row as the
commit point, interrupted commits (local folder and object store), stray files, label sets."""

from __future__ import annotations

import warnings
from pathlib import Path
from typing import Any

import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

import ferbatch
from ferbatch.errors import ConfigError, OutputError
from ferbatch.output.commit import OutputStore
from ferbatch.output.location import OutputLocation

from helpers import output_files, small_tables, video_row

LABELS = ["happy", "sad"]


def test_output_store_commits_partitions_atomically(tmp_path: Path) -> None:
    store = OutputStore(tmp_path / "out")
    store.write_manifest(["happy", "sad"], "m")
    frames = pa.table({"frame_index": [0, 1], "timestamp_s": [0.0, 0.5], "num_faces": pa.array([1, 0], pa.int16())})
    faces = pa.table({"frame_index": [0], "p_happy": [0.7], "p_sad": [0.3]})
    store.commit(video_row("a-1"), frames, faces)
    store.commit(video_row("b-2", "failed"), None, None)
    table = store.write_videos_table()
    assert table.column("video_id").to_pylist() == ["a-1", "b-2"]
    assert pq.read_table(tmp_path / "out/frames/video_id=a-1").num_rows == 2
    assert not (tmp_path / "out/frames/video_id=b-2").exists()
    # a crashed writer's temp folder is invisible to readers and cleaned up next run
    (tmp_path / "out/faces/.tmp-c-3-dead").mkdir()
    df = pd.read_parquet(tmp_path / "out/faces")
    assert df["video_id"].astype(str).tolist() == ["a-1"]
    store.recover()
    assert not (tmp_path / "out/faces/.tmp-c-3-dead").exists()
    # re-committing replaces the partition, never appends
    store.commit(video_row("a-1"), frames.slice(0, 1), faces)
    assert pq.read_table(tmp_path / "out/frames/video_id=a-1").num_rows == 1


def test_output_store_holds_one_label_set(tmp_path: Path) -> None:
    """Another label set: refused without --overwrite, refused when a video with results is
    not redone, else the old results are removed before the new manifest is written."""
    import json

    store = OutputStore(tmp_path)
    store.write_manifest(["happy", "sad"], "m1")
    store.write_manifest(["happy", "sad", "angry"], "m2")  # nothing committed yet: free
    store.write_manifest(["happy", "sad"], "m1", overwrite=True)
    store.commit(video_row("a-1"), *small_tables(3))
    store.commit(video_row("b-2"), *small_tables(2))
    store.commit(video_row("c-3", "failed"), None, None)  # no results: does not count
    store.write_videos_table()
    with pytest.raises(ConfigError, match=r"labels \['happy', 'sad'\].*--overwrite"):
        store.write_manifest(["happy", "sad", "angry"], "m2")
    with pytest.raises(ConfigError, match=r"1 of them are not among the inputs: /in/b-2.mp4"):
        store.write_manifest(["happy", "sad", "angry"], "m2", overwrite=True, redo={"a-1"})
    assert json.loads((tmp_path / "_ferbatch.json").read_text())["labels"] == ["happy", "sad"]
    assert ferbatch.load(tmp_path).videos["status"].tolist() == ["ok", "ok", "failed"]
    store.write_manifest(["happy", "sad", "angry"], "m2", overwrite=True, redo={"a-1", "b-2"})
    assert json.loads((tmp_path / "_ferbatch.json").read_text())["labels"] == ["happy", "sad", "angry"]
    assert output_files(store.location, "faces") == [] and output_files(store.location, "_status") == [
        "c-3.parquet"]
    res = ferbatch.load(tmp_path)
    assert res.videos["video_id"].tolist() == ["c-3"] and res.faces.empty


def _interrupt_status_writes(monkeypatch: pytest.MonkeyPatch) -> None:
    """Make every status-file write die: a commit killed after its partitions, before its
    commit point."""
    from ferbatch.output.committers import LocalCommitter, ObjectStoreCommitter

    for committer in (LocalCommitter, ObjectStoreCommitter):
        real = committer.write_table

        def write_table(self: Any, table: pa.Table, path: str, real: Any = real) -> None:
            if "_status" in path:
                raise OSError("simulated crash before the status row")
            real(self, table, path)

        monkeypatch.setattr(committer, "write_table", write_table)


def test_interrupted_commit_is_never_reported_then_redone(location: OutputLocation,
                                                          monkeypatch: pytest.MonkeyPatch) -> None:
    store = OutputStore(location)
    store.write_manifest(LABELS, "m")
    store.commit(video_row("a"), *small_tables(3, tag=0.9))
    store.commit(video_row("b"), *small_tables(2, tag=0.9))
    store.write_videos_table()
    assert len(ferbatch.load(location).faces) == 5

    with monkeypatch.context() as patch:  # re-commit of a dies; first commit of c dies
        _interrupt_status_writes(patch)
        for vid, n in (("a", 4), ("c", 6)):
            with pytest.raises(OutputError, match=f"cannot commit {vid}"):
                store.commit(video_row(vid), *small_tables(n, tag=0.6))
    # the new partitions are there, but neither video has a status row
    assert "a.pending" in output_files(location, "_status")
    assert "c.pending" in output_files(location, "_status")
    assert any(f.startswith("video_id=c/") for f in output_files(location, "faces"))
    assert store.read_status("a") is None

    with warnings.catch_warnings():
        warnings.simplefilter("error")  # no "partitions without a row" for c: it is uncommitted
        res = ferbatch.load(location)
    assert res.videos["video_id"].astype(str).tolist() == ["b"]  # a's stale videos.parquet row too
    assert len(res.faces) == 2 and set(res.faces["video_id"].astype(str)) == {"b"}

    store.recover()  # the next run: debris gone, a and c have no status row, so are redone
    left = output_files(location, "faces")
    assert left and all(f.startswith("video_id=b/") for f in left)
    assert not [f for f in output_files(location, "_status") if f.endswith(".pending")]
    store.commit(video_row("a"), *small_tables(4, tag=0.6))
    store.write_videos_table()
    res = ferbatch.load(location)
    assert sorted(res.videos["video_id"].astype(str)) == ["a", "b"]
    assert res.faces.groupby("video_id", observed=True).size().to_dict() == {"a": 4, "b": 2}


def test_files_a_status_row_does_not_name_are_ignored(memfs: OutputLocation) -> None:
    """A writer that died after the commit it lost (a zombie retry) leaves files behind."""
    store = OutputStore(memfs)
    store.write_manifest(LABELS, "m")
    store.commit(video_row("a"), *small_tables(3))
    frames, faces = small_tables(7)
    pq.write_table(faces, memfs.join("faces", "video_id=a", "part-zombie.parquet"),
                   filesystem=memfs.filesystem)
    assert len(ferbatch.load(memfs).faces) == 3
    store.commit(video_row("a", "failed"), None, None)  # a failed re-run removes every partition file
    assert output_files(memfs, "faces") == [] and output_files(memfs, "frames") == []
    assert ferbatch.load(memfs).faces.empty
