"""Outputs addressed by URI or on a pyarrow filesystem without atomic rename (an object store).

* ``file://`` URIs through ``ferbatch.run``, the Ray controller and ``ferbatch.load``;
* an in-memory fsspec filesystem whose ``move`` fails (no rename, like S3/GCS): commit,
  skip-on-rerun, and a video whose commit was interrupted is never reported, then redone;
* the same interrupted commit on a local folder;
* unknown schemes give a clean CLI error, never a traceback or the URI's credentials.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pandas as pd
import pyarrow as pa
import pyarrow.fs as pafs
import pyarrow.parquet as pq
import pytest
from click.testing import CliRunner

import ferbatch
from ferbatch.cli import cli
from ferbatch.config import RunConfig
from ferbatch.demo import astronaut_face
from ferbatch.errors import OutputError
from ferbatch.output.commit import PARTS_KEY, OutputStore
from ferbatch.output.layout import video_id_for
from ferbatch.output.location import OutputLocation, resolve_output
from ferbatch.output.schema import VIDEOS_SCHEMA
from ferbatch.pipeline import Stages
from ferbatch.runner.local import run

import clips

fsspec_memory = pytest.importorskip("fsspec.implementations.memory")

LABELS = ["happy", "sad"]


@pytest.fixture(scope="module")
def stages() -> Stages:
    return Stages(RunConfig())


@pytest.fixture(scope="module")
def inputs(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """A short face clip and a broken file (a failed video)."""
    root = tmp_path_factory.mktemp("uri_videos")
    face = root / "face.mp4"
    clips.make_face_clip(face, astronaut_face(), n_frames=8, fps=8, size=(320, 240))
    return {"face": face, "bad": clips.make_zero_byte(root / "bad.mp4")}


class _NoRenameHandler(pafs.FSSpecHandler):
    """An object store's semantics: no rename (the protocol must never need one)."""

    def move(self, src: str, dest: str) -> None:
        raise AssertionError(f"rename used on an object store: {src} -> {dest}")


@pytest.fixture()
def memfs() -> Iterator[OutputLocation]:
    """A fresh prefix on an in-memory filesystem (fsspec's store is process-wide)."""
    mem = fsspec_memory.MemoryFileSystem()
    bucket = f"bucket-{uuid.uuid4().hex[:8]}"
    # a leading "/": fsspec's memory store reports paths so, and pyarrow datasets want them to match
    yield OutputLocation(pafs.PyFileSystem(_NoRenameHandler(mem)), f"/{bucket}/out")
    if mem.exists(f"/{bucket}"):
        mem.rm(f"/{bucket}", recursive=True)


def _files(loc: OutputLocation, folder: str) -> list[str]:
    """Names of the files under ``folder`` of the output, relative to it, sorted."""
    root = loc.join(folder).strip("/")
    infos = loc.filesystem.get_file_info(pafs.FileSelector(loc.join(folder), allow_not_found=True,
                                                           recursive=True))
    return sorted(i.path.strip("/")[len(root) + 1:] for i in infos if i.type == pafs.FileType.File)


def _row(video_id: str, status: str = "ok") -> dict[str, Any]:
    row: dict[str, Any] = {name: None for name in VIDEOS_SCHEMA.names}
    row.update(video_id=video_id, path=f"/in/{video_id}.mp4", status=status)
    return row


def _tables(n: int, tag: float = 0.9) -> tuple[pa.Table, pa.Table]:
    frames = pa.table({"frame_index": pa.array(range(n), pa.int64()),
                       "timestamp_s": [i / 10 for i in range(n)],
                       "num_faces": pa.array([1] * n, pa.int16())})
    faces = pa.table({"frame_index": pa.array(range(n), pa.int64()),
                      "timestamp_s": [i / 10 for i in range(n)],
                      "face_id": pa.array([0] * n, pa.int32()), "emotion": ["happy"] * n,
                      "p_happy": pa.array([tag] * n, pa.float32()),
                      "p_sad": pa.array([1 - tag] * n, pa.float32())})
    return frames, faces


# -- file:// URIs -------------------------------------------------------------------------------
def test_file_uri_run_is_readable_by_pandas_and_load(inputs: dict[str, Path], tmp_path: Path,
                                                     stages: Stages) -> None:
    folder = tmp_path / "out"
    uri = folder.as_uri()
    assert uri.startswith("file:///")
    summary = run([inputs["face"], inputs["bad"]], uri, stages=stages)
    assert summary.out == folder  # a local filesystem: shown as a Path
    face_row = next(r for r in summary.rows if r["path"].endswith("face.mp4"))
    assert face_row["status"] == "ok" and face_row["faces_detected"] >= 6

    videos = pd.read_parquet(folder / "videos.parquet")
    faces = pd.read_parquet(folder / "faces")
    assert sorted(videos["status"]) == ["failed", "ok"]
    assert len(faces) == face_row["faces_detected"]
    vid = video_id_for(inputs["face"])
    assert _files(resolve_output(uri), "faces") == [f"video_id={vid}/part-0.parquet"]
    assert not list(folder.rglob("*.pending")) and not list(folder.rglob(".*"))

    for out in (uri, folder, str(folder)):
        res = ferbatch.load(out)
        assert res.out == folder
        assert len(res.videos) == 2 and len(res.faces) == face_row["faces_detected"]
        assert res.labels == list(stages.labels)
    again = run([inputs["face"]], uri, stages=stages)
    assert again.skipped == [str(inputs["face"])]
    cli_run = CliRunner().invoke(cli, ["run", str(inputs["face"]), "--out", uri, "-q", "--local"])
    assert cli_run.exit_code == 0, cli_run.output
    assert f"results: {folder}/videos.parquet" in cli_run.output


def test_ray_workers_resolve_a_file_uri(inputs: dict[str, Path], tmp_path: Path,
                                        ray_session: None) -> None:
    from ferbatch.runner.ray_pool import run_distributed

    folder = tmp_path / "out"
    summary = run_distributed([inputs["face"], inputs["bad"]], folder.as_uri(), workers=1)
    assert summary.out == folder
    assert sorted(r["status"] for r in summary.rows) == ["failed", "ok"]
    res = ferbatch.load(folder.as_uri())
    assert len(res.faces) == next(r["faces_detected"] for r in summary.rows if r["status"] == "ok")
    assert not list(folder.rglob("*.pending"))


# -- an object store: no rename -----------------------------------------------------------------
def test_object_store_run_commits_skips_and_overwrites(inputs: dict[str, Path],
                                                       memfs: OutputLocation,
                                                       stages: Stages) -> None:
    fs = memfs.filesystem
    summary = run([inputs["face"], inputs["bad"]], memfs, stages=stages)
    assert summary.out == str(memfs)
    ok = next(r for r in summary.rows if r["status"] == "ok")
    vid, bad_id = ok["video_id"], video_id_for(inputs["bad"])
    assert _files(memfs, "_status") == sorted([f"{vid}.parquet", f"{bad_id}.parquet"])
    (part,) = _files(memfs, "faces")
    assert part.startswith(f"video_id={vid}/part-") and part != f"video_id={vid}/part-0.parquet"
    assert _files(memfs, "frames") == [part]  # one commit: the same unique name in both tables
    status = pq.read_schema(memfs.join("_status", f"{vid}.parquet"), filesystem=fs)
    assert json.loads(status.metadata[PARTS_KEY]) == [part.split("/")[1]]

    res = ferbatch.load(memfs)
    assert len(res.videos) == 2 and len(res.faces) == ok["faces_detected"]
    same = ferbatch.load(memfs.path, filesystem=fs)
    assert len(same.faces) == len(res.faces)
    direct = pd.read_parquet(memfs.join("faces"), filesystem=fs)
    assert len(direct) == ok["faces_detected"]

    again = run([inputs["face"], inputs["bad"]], memfs, stages=stages)
    assert again.skipped == [str(inputs["face"])]  # the failed one is tried again
    assert _files(memfs, "faces") == [part]

    redo = run([inputs["face"]], memfs, stages=stages, overwrite=True)
    assert redo.skipped == []
    (new_part,) = _files(memfs, "faces")  # replaced, never appended
    assert new_part != part
    assert len(ferbatch.load(memfs).faces) == ok["faces_detected"]


def _interrupt_status_writes(monkeypatch: pytest.MonkeyPatch) -> None:
    """Make every status-file write die: a commit killed after its partitions, before its
    commit point."""
    from ferbatch.output.commit import LocalCommitter, ObjectStoreCommitter

    for committer in (LocalCommitter, ObjectStoreCommitter):
        real = committer.write_table

        def write_table(self: Any, table: pa.Table, path: str, real: Any = real) -> None:
            if "_status" in path:
                raise OSError("simulated crash before the status row")
            real(self, table, path)

        monkeypatch.setattr(committer, "write_table", write_table)


@pytest.fixture(params=["object_store", "local"])
def location(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[OutputLocation]:
    if request.param == "local":
        yield resolve_output(tmp_path / "out")
    else:
        yield request.getfixturevalue("memfs")


def test_interrupted_commit_is_never_reported_then_redone(location: OutputLocation,
                                                          monkeypatch: pytest.MonkeyPatch) -> None:
    store = OutputStore(location)
    store.write_manifest(LABELS, "m")
    store.commit(_row("a"), *_tables(3, tag=0.9))
    store.commit(_row("b"), *_tables(2, tag=0.9))
    store.write_videos_table()
    assert len(ferbatch.load(location).faces) == 5

    with monkeypatch.context() as patch:  # re-commit of a dies; first commit of c dies
        _interrupt_status_writes(patch)
        for vid, n in (("a", 4), ("c", 6)):
            with pytest.raises(OutputError, match=f"cannot commit {vid}"):
                store.commit(_row(vid), *_tables(n, tag=0.6))
    # the new partitions are there, but neither video has a status row
    assert "a.pending" in _files(location, "_status") and "c.pending" in _files(location, "_status")
    assert any(f.startswith("video_id=c/") for f in _files(location, "faces"))
    assert store.read_status("a") is None

    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("error")  # no "partitions without a row" for c: it is uncommitted
        res = ferbatch.load(location)
    assert res.videos["video_id"].astype(str).tolist() == ["b"]  # a's stale videos.parquet row too
    assert len(res.faces) == 2 and set(res.faces["video_id"].astype(str)) == {"b"}

    store.recover()  # the next run: debris gone, a and c have no status row, so are redone
    left = _files(location, "faces")
    assert left and all(f.startswith("video_id=b/") for f in left)
    assert not [f for f in _files(location, "_status") if f.endswith(".pending")]
    store.commit(_row("a"), *_tables(4, tag=0.6))
    store.write_videos_table()
    res = ferbatch.load(location)
    assert sorted(res.videos["video_id"].astype(str)) == ["a", "b"]
    assert res.faces.groupby("video_id", observed=True).size().to_dict() == {"a": 4, "b": 2}


def test_files_a_status_row_does_not_name_are_ignored(memfs: OutputLocation) -> None:
    """A writer that died after the commit it lost (a zombie retry) leaves files behind."""
    store = OutputStore(memfs)
    store.write_manifest(LABELS, "m")
    store.commit(_row("a"), *_tables(3))
    frames, faces = _tables(7)
    pq.write_table(faces, memfs.join("faces", "video_id=a", "part-zombie.parquet"),
                   filesystem=memfs.filesystem)
    assert len(ferbatch.load(memfs).faces) == 3
    store.commit(_row("a", "failed"), None, None)  # a failed re-run removes every partition file
    assert _files(memfs, "faces") == [] and _files(memfs, "frames") == []
    assert ferbatch.load(memfs).faces.empty


# -- errors ----------------------------------------------------------------------------------
def test_bad_scheme_is_a_clean_cli_error(inputs: dict[str, Path]) -> None:
    runner = CliRunner()
    result = runner.invoke(cli, ["run", str(inputs["face"]), "--out",
                                 "nosuch://user:secret@bucket/out", "-q", "--local"])
    assert result.exit_code == 1 and isinstance(result.exception, SystemExit)
    assert "nosuch://bucket/out" in result.output
    assert "Unrecognized filesystem" in result.output
    assert "secret" not in result.output and "Traceback" not in result.output
    report = runner.invoke(cli, ["report", "s3://bucket/out"])
    assert report.exit_code == 1 and isinstance(report.exception, SystemExit)
    assert "s3://bucket/out" in report.output and "local output folders only" in report.output


def test_bad_uris_raise_ferbatch_errors(tmp_path: Path) -> None:
    with pytest.raises(OutputError, match="nosuch://b/x"):
        resolve_output("nosuch://b/x")
    with pytest.raises(OutputError, match="nosuch://b/x"):
        ferbatch.load("nosuch://b/x")
    with pytest.raises(OutputError, match="no such folder"):
        ferbatch.load((tmp_path / "missing").as_uri())
    blocker = tmp_path / "file"
    blocker.write_text("a file where the output folder should be")
    with pytest.raises(OutputError, match="cannot write the output"):
        OutputStore(blocker.as_uri()).write_manifest(LABELS, "m")
