"""A run into an object store (``ferbatch.output.committers.ObjectStoreCommitter``): an in-memory
fsspec filesystem whose ``move`` fails (no rename, like S3/GCS): commit, skip-on-rerun and
overwrite through ``ferbatch.run``, read back through ``ferbatch.load`` and pandas."""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd
import pyarrow.parquet as pq

import ferbatch
from ferbatch.output.commit import PARTS_KEY
from ferbatch.output.layout import video_id_for
from ferbatch.output.location import OutputLocation
from ferbatch.pipeline import Stages
from ferbatch.runner.local import run

from helpers import output_files


def test_object_store_run_commits_skips_and_overwrites(inputs: dict[str, Path],
                                                       memfs: OutputLocation,
                                                       stages: Stages) -> None:
    fs = memfs.filesystem
    summary = run([inputs["face"], inputs["bad"]], memfs, stages=stages)
    assert summary.out == str(memfs)
    ok = next(r for r in summary.rows if r["status"] == "ok")
    vid, bad_id = ok["video_id"], video_id_for(inputs["bad"])
    assert output_files(memfs, "_status") == sorted([f"{vid}.parquet", f"{bad_id}.parquet"])
    (part,) = output_files(memfs, "faces")
    assert part.startswith(f"video_id={vid}/part-") and part != f"video_id={vid}/part-0.parquet"
    assert output_files(memfs, "frames") == [part]  # one commit: the same unique name in both tables
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
    assert output_files(memfs, "faces") == [part]

    redo = run([inputs["face"]], memfs, stages=stages, overwrite=True)
    assert redo.skipped == []
    (new_part,) = output_files(memfs, "faces")  # replaced, never appended
    assert new_part != part
    assert len(ferbatch.load(memfs).faces) == ok["faces_detected"]
