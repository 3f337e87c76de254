"""ferbatch.load(): dtypes, label order, partitions, and clear errors for non-outputs."""

from __future__ import annotations

import json
import logging
import shutil

import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq
import pytest

from ferbatch.errors import FerbatchError, OutputError
from ferbatch.output.read import Results, load
from ferbatch.output.schema import FRAMES_SCHEMA, LANDMARK_COLUMNS, VIDEOS_SCHEMA

from synth_output import DEFAULT_LABELS, write_synthetic_output


@pytest.fixture(scope="module")
def synth(tmp_path_factory):
    return write_synthetic_output(tmp_path_factory.mktemp("load") / "out")


def test_results_tables_and_dtypes(synth):
    res = load(synth.out)
    assert isinstance(res, Results)
    assert res.labels == DEFAULT_LABELS
    assert res.prob_columns == [f"p_{lb}" for lb in DEFAULT_LABELS]
    assert res.meta["model"] == "synthetic_vgg"
    assert len(res.videos) == 4 and len(res.frames) == 20 + 9 + 5 and len(res.faces) == 24 + 9
    for df in (res.videos, res.frames, res.faces):
        assert isinstance(df["video_id"].dtype, pd.CategoricalDtype)
        assert list(df["video_id"].cat.categories) == ["alpha", "beta", "gamma", "delta"]
    emo = res.faces["emotion"]
    assert isinstance(emo.dtype, pd.CategoricalDtype)
    assert list(emo.cat.categories) == DEFAULT_LABELS
    assert not emo.isna().any()
    f = res.faces
    assert f["frame_index"].dtype == "int64" and f["timestamp_s"].dtype == "float64"
    assert f["face_id"].dtype == "int32"
    for col in ("det_score", "x1", "y2", "confidence", *LANDMARK_COLUMNS, *res.prob_columns):
        assert f[col].dtype == "float32", col
    assert res.frames["num_faces"].dtype == "int16"
    assert set(VIDEOS_SCHEMA.names) <= set(res.videos.columns)
    # sorted by video (category order), then frame
    assert f["video_id"].cat.codes.is_monotonic_increasing
    assert (res.faces.groupby("video_id", observed=True)["frame_index"]
            .apply(lambda s: s.is_monotonic_increasing).all())
    # groupby over the categorical lists every video, failed/faceless ones too
    counts = res.faces.groupby("video_id", observed=False).size()
    assert counts.to_dict() == {"alpha": 24, "beta": 9, "gamma": 0, "delta": 0}


def test_labels_inferred_without_metadata_and_custom_order(tmp_path):
    labels = ["neutral", "happy", "surprise", "sad", "angry", "fear", "disgust", "contempt"]
    info = write_synthetic_output(tmp_path / "out", labels=labels, write_meta=False)
    res = load(info.out)
    assert res.labels == labels
    assert res.meta == {}
    assert list(res.faces["emotion"].cat.categories) == labels
    assert res.faces.loc[res.faces["timestamp_s"] == 3.0].set_index("face_id")["emotion"].to_dict() == {
        0: "happy", 1: "surprise"}


def test_matches_pandas_read_parquet(synth):
    res = load(synth.out)
    direct = pd.read_parquet(synth.out / "faces")
    assert len(direct) == len(res.faces)
    assert sorted(direct["video_id"].astype(str).unique()) == sorted(
        res.faces["video_id"].astype(str).unique())


def test_ignores_temp_files_and_reads_missing_videos_table(tmp_path, synth, caplog):
    out = tmp_path / "out"
    shutil.copytree(synth.out, out)
    (out / "faces" / "video_id=alpha" / ".part-0.parquet.tmp").write_bytes(b"garbage")
    (out / "faces" / "video_id=alpha" / "_SUCCESS").write_bytes(b"")
    assert len(load(out).faces) == 33
    (out / "videos.parquet").unlink()  # interrupted run: partitions but no videos table yet
    with caplog.at_level(logging.WARNING, logger="ferbatch"):
        res = load(out)
    assert "without a videos.parquet row" in caplog.text
    assert sorted(res.videos["video_id"].astype(str)) == ["alpha", "beta", "delta"]
    assert len(res.faces) == 33


def test_empty_run_has_typed_empty_tables(tmp_path):
    out = tmp_path / "out"
    out.mkdir()
    row = {name: None for name in VIDEOS_SCHEMA.names}
    row.update(video_id="x", path="/nope.mp4", status="failed", error="VideoOpenError: nope")
    pq.write_table(pa.Table.from_pylist([row], schema=VIDEOS_SCHEMA), out / "videos.parquet")
    res = load(out)
    assert res.labels == [] and res.faces.empty and res.frames.empty
    assert set(FRAMES_SCHEMA.names) <= set(res.frames.columns)
    assert res.videos["status"].tolist() == ["failed"]


@pytest.mark.parametrize("case", ["missing", "file", "empty", "bad_json", "json_list", "future_schema",
                                  "bad_parquet"])
def test_not_an_output_raises_ferbatch_error(tmp_path, synth, case):
    target = tmp_path / "x"
    if case == "file":
        target.write_text("hello")
    elif case == "empty":
        target.mkdir()
    elif case in ("bad_json", "json_list", "future_schema", "bad_parquet"):
        shutil.copytree(synth.out, target)
        if case == "bad_json":
            (target / "_ferbatch.json").write_text("{not json")
        elif case == "json_list":
            (target / "_ferbatch.json").write_text("[]")
        elif case == "future_schema":
            (target / "_ferbatch.json").write_text(json.dumps({"schema_version": "2.0", "labels": []}))
        else:
            (target / "videos.parquet").write_bytes(b"PAR1 not really")
    with pytest.raises(OutputError) as err:
        load(target)
    assert isinstance(err.value, FerbatchError)
    assert str(target) in str(err.value)


def test_all_digit_video_ids_stay_strings(tmp_path):
    info = write_synthetic_output(tmp_path / "out", rename={"alpha": "0001", "beta": "42"})
    res = load(info.out)
    assert list(res.faces["video_id"].cat.categories) == ["0001", "42", "gamma", "delta"]
    assert res.faces.groupby("video_id", observed=True).size().to_dict() == {"0001": 24, "42": 9}


def test_status_rows_of_an_unfinished_run_take_precedence(tmp_path, synth):
    """The pipeline commits one _status/<id>.parquet per video and rebuilds videos.parquet
    at the end: while it runs (or after a kill) the status rows are the newer truth."""
    out = tmp_path / "out"
    shutil.copytree(synth.out, out)
    videos = pq.read_table(out / "videos.parquet")
    (out / "_status").mkdir()
    beta = next(r for r in videos.to_pylist() if r["video_id"] == "beta")
    beta.update(status="ok", error=None)
    pq.write_table(pa.Table.from_pylist([beta], schema=VIDEOS_SCHEMA), out / "_status" / "beta.parquet")
    new = dict(beta, video_id="epsilon", path="/in/epsilon.mp4", status="failed", error="boom")
    pq.write_table(pa.Table.from_pylist([new], schema=VIDEOS_SCHEMA), out / "_status" / "epsilon.parquet")
    (out / "_status" / "torn.parquet").write_bytes(b"PAR1")
    res = load(out)
    by_id = res.videos.set_index(res.videos["video_id"].astype(str))
    assert by_id.loc["beta", "status"] == "ok" and pd.isna(by_id.loc["beta", "error"])
    assert by_id.loc["epsilon", "status"] == "failed"
    assert sorted(by_id.index) == ["alpha", "beta", "delta", "epsilon", "gamma"]
    assert len(res.faces) == 33


@pytest.mark.parametrize("manifest", [True, False])
def test_an_output_mixing_label_sets_is_refused(tmp_path, synth, manifest):
    """One output holds one label set: a faces partition with other p_* columns (an output an
    older ferbatch let two models write) is an error naming the video, never shares
    recomputed over the wrong labels."""
    out = tmp_path / "out"
    shutil.copytree(synth.out, out)
    if not manifest:
        (out / "_ferbatch.json").unlink()
    part = next((out / "faces" / "video_id=beta").glob("*.parquet"))
    table = pq.read_table(part)
    four = [c for c in table.column_names if c.startswith("p_") and c[2:] in ("happy", "sad", "surprise", "neutral")]
    others = [c for c in table.column_names if c.startswith("p_") and c not in four]
    pq.write_table(table.drop_columns(others), part)
    with pytest.raises(OutputError, match=r"one label set.*1 video\(s\) have other labels: beta \['happy'"):
        load(out)


def test_videos_dtypes_do_not_depend_on_the_data(tmp_path, synth):
    """Integer columns are nullable pandas types whether or not a video failed (nulls)."""
    from ferbatch.output.results import typed_videos

    expected = {"width": "Int32", "height": "Int32", "rotation": "Int16", "tracks": "Int32",
                "frames_decoded": "Int64", "frames_analyzed": "Int64", "faces_detected": "Int64",
                "file_size": "Int64", "file_mtime_ns": "Int64", "duration_s": "float64",
                "fps": "float64"}
    res = load(synth.out)  # gamma failed: nulls in width/height/rotation
    table = pq.read_table(synth.out / "videos.parquet")
    ok_only = typed_videos(table.filter(pc.equal(table.column("status"), "ok")))
    for videos in (res.videos, ok_only):
        assert {c: str(videos[c].dtype) for c in expected} == expected
    gamma = res.videos.set_index(res.videos["video_id"].astype(str)).loc["gamma"]
    assert gamma["width"] is pd.NA and gamma["status"] == "failed"
