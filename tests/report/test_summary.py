"""Summary tables checked against values computed by hand from the synthetic output."""

from __future__ import annotations

import os

import numpy as np
import pandas as pd
import pytest

from ferbatch.output.read import load
from ferbatch.report import build_report, summarize

from synth_output import DEFAULT_LABELS, EXPECTED, write_synthetic_output


@pytest.fixture(scope="module")
def synth(tmp_path_factory):
    return write_synthetic_output(tmp_path_factory.mktemp("summary") / "out")


@pytest.fixture(scope="module")
def raw_summary(synth):
    """Unsmoothed, so every number follows from the designed probabilities by hand."""
    return summarize(load(synth.out), smooth_method="none", min_episode_s=1.0, max_gap_s=2.0)


def test_video_rows_and_basic_figures(raw_summary):
    v = raw_summary.videos.set_index("video_id")
    assert v.index.tolist() == ["alpha", "beta", "gamma", "delta"]
    assert v["status"].tolist() == ["ok", "partial", "failed", "ok"]
    assert "moov atom" in v.loc["gamma", "error"] and pd.isna(v.loc["alpha", "error"])
    assert v["frames_analyzed"].tolist() == [20, 9, 0, 5]
    for vid in ("alpha", "beta", "delta"):
        assert v.loc[vid, "face_frame_share"] == pytest.approx(EXPECTED[vid]["face_frame_share"])
        assert v.loc[vid, "face_ids"] == EXPECTED[vid]["face_ids"]
        assert (None if pd.isna(v.loc[vid, "dominant_emotion"]) else v.loc[vid, "dominant_emotion"]) \
            == EXPECTED[vid]["dominant"]
    assert np.isnan(v.loc["gamma", "face_frame_share"])  # failed: no analysed frames
    assert v.loc["alpha", "face_seconds"] == pytest.approx(12.0)
    assert v.loc["beta", "face_seconds"] == pytest.approx(4.0)


@pytest.mark.parametrize("vid", ["alpha", "beta"])
def test_shares_match_hand_computed(raw_summary, vid):
    row = raw_summary.videos.set_index("video_id").loc[vid]
    shares = {lb: row[f"share_{lb}"] for lb in DEFAULT_LABELS}
    expected = {lb: EXPECTED[vid]["shares"].get(lb, 0.0) for lb in DEFAULT_LABELS}
    assert shares == pytest.approx(expected)
    assert sum(shares.values()) == pytest.approx(1.0)


def test_mean_probabilities_are_face_time_weighted(raw_summary):
    row = raw_summary.videos.set_index("video_id").loc["alpha"]
    # face 0: 11 happy rows (one with p .75), 1 angry (.7), 6 sad (.6); face 1: 6 surprise rows
    # (one .85); each row 0.5 s; 24 rows = 12 face-seconds
    p_happy = (10 * 0.7 + 0.75 + 0.02 + 6 * 0.02 + 6 * 0.02) * 0.5 / 12.0
    assert row["mean_p_happy"] == pytest.approx(p_happy, abs=1e-6)
    row = raw_summary.videos.set_index("video_id").loc["beta"]
    # beta: neutral .6 over 2.5 s, then .04 over 1.5 s (irregular weights)
    assert row["mean_p_neutral"] == pytest.approx((0.6 * 2.5 + 0.04 * 1.5) / 4.0, abs=1e-6)
    assert np.isnan(raw_summary.videos.set_index("video_id").loc["delta", "mean_p_happy"])


def test_episodes_match_hand_computed(raw_summary):
    eps = raw_summary.episodes
    for vid in ("alpha", "beta", "delta"):
        got = [(int(e.face_id), e.emotion, round(e.start_s, 6), round(e.end_s, 6))
               for e in eps[eps["video_id"] == vid].sort_values(["face_id", "start_s"]).itertuples()]
        assert got == sorted(EXPECTED[vid]["episodes"], key=lambda e: (e[0], e[2])), vid
    v = raw_summary.videos.set_index("video_id")
    assert v.loc["alpha", "episodes"] == 4
    assert v.loc["alpha", "mean_episode_s"] == pytest.approx((1.5 + 4.0 + 3.0 + 3.0) / 4)
    assert v.loc["beta", "mean_episode_s"] == pytest.approx(2.0)
    assert v.loc["delta", "episodes"] == 0 and np.isnan(v.loc["delta", "mean_episode_s"])


def test_face_rows(raw_summary):
    f = raw_summary.faces.set_index(["video_id", "face_id"])
    assert f.index.tolist() == [("alpha", 0), ("alpha", 1), ("beta", 0)]
    assert f.loc[("alpha", 0), "first_seen_s"] == 0.0 and f.loc[("alpha", 0), "last_seen_s"] == 8.5
    assert f.loc[("alpha", 1), "first_seen_s"] == 2.0 and f.loc[("alpha", 1), "last_seen_s"] == 4.5
    for (vid, fid), seen in [(("alpha", 0), 9.0), (("alpha", 1), 3.0), (("beta", 0), 4.0)]:
        assert f.loc[(vid, fid), "seen_s"] == pytest.approx(seen)
    assert f.loc[("alpha", 0), "dominant_emotion"] == "happy"
    assert f.loc[("alpha", 1), "dominant_emotion"] == "surprise"
    assert f.loc[("alpha", 0), "share_happy"] == pytest.approx(5.5 / 9)
    assert f.loc[("alpha", 0), "share_sad"] == pytest.approx(3.0 / 9)
    assert f.loc[("alpha", 0), "episodes"] == 3


def test_smoothing_removes_the_flicker(synth):
    s = summarize(load(synth.out), smooth_method="moving", window_s=1.0)
    v = s.videos.set_index("video_id")
    assert v.loc["alpha", "share_angry"] == 0.0  # the single-frame flicker is gone
    assert v.loc["alpha", "dominant_emotion"] == "happy"
    happy = s.episodes[(s.episodes["video_id"] == "alpha") & (s.episodes["emotion"] == "happy")]
    assert len(happy) == 1 and happy["duration_s"].item() == pytest.approx(6.0)
    # mean probabilities always come from the raw columns
    assert v.loc["alpha", "mean_p_angry"] == pytest.approx(
        summarize(load(synth.out), smooth_method="none").videos.set_index("video_id").loc["alpha", "mean_p_angry"])


def test_custom_label_set_flows_through(tmp_path):
    labels = ["neutral", "happy", "surprise", "sad", "angry", "fear", "disgust", "contempt"]
    info = write_synthetic_output(tmp_path / "out", labels=labels)
    s = summarize(load(info.out), smooth_method="none")
    share_cols = [c for c in s.videos.columns if c.startswith("share_")]
    assert share_cols == [f"share_{lb}" for lb in labels]
    assert s.videos.set_index("video_id").loc["alpha", "dominant_emotion"] == "happy"
    assert list(s.videos["dominant_emotion"].cat.categories) == labels


def test_written_files(tmp_path, synth):
    import shutil

    out = tmp_path / "out"
    shutil.copytree(synth.out, out)
    rep = build_report(out, smooth_method="none", html=False)
    files = rep.files
    assert set(files) == {"summary", "summary_csv", "summary_faces", "episodes"}
    pq_sum = pd.read_parquet(out / "summary.parquet")
    csv_sum = pd.read_csv(out / "summary.csv")
    assert pq_sum["video_id"].tolist() == csv_sum["video_id"].tolist() == ["alpha", "beta", "gamma", "delta"]
    assert csv_sum["share_happy"].iloc[0] == pytest.approx(5.5 / 12)
    assert pq_sum["dominant_emotion"].tolist()[:2] == ["happy", "neutral"]
    assert len(pd.read_parquet(out / "summary_faces.parquet")) == 3
    assert len(pd.read_parquet(out / "episodes.parquet")) == 6
    assert not [p for p in os.listdir(out) if p.endswith(".tmp")]
    assert (out / "summary.parquet").stat().st_mode & 0o044  # readable by others like the rest
    assert not (out / "report").exists()



@pytest.mark.parametrize("with_meta", [True, False])
def test_report_on_a_run_where_every_video_failed(tmp_path, with_meta):
    import json

    import pyarrow as pa
    import pyarrow.parquet as pq

    from ferbatch.output.schema import STATUS_FAILED, VIDEOS_SCHEMA

    out = tmp_path / "out"
    out.mkdir()
    rows = []
    for vid in ("a", "b"):
        row = {name: None for name in VIDEOS_SCHEMA.names}
        row.update(video_id=vid, path=f"/in/{vid}.mp4", status=STATUS_FAILED, error=f"VideoOpenError: {vid} <bad>")
        rows.append(row)
    pq.write_table(pa.Table.from_pylist(rows, schema=VIDEOS_SCHEMA), out / "videos.parquet")
    if with_meta:
        (out / "_ferbatch.json").write_text(json.dumps({"schema_version": "1.0", "labels": DEFAULT_LABELS}))
    rep = build_report(out, thumbnails=False)
    v = rep.summary.videos
    assert v["status"].tolist() == ["failed", "failed"] and v["episodes"].tolist() == [0, 0]
    assert v["dominant_emotion"].isna().all()
    index = (out / "report" / "index.html").read_text(encoding="utf-8")
    assert "Failed videos (2)" in index and "VideoOpenError: b &lt;bad&gt;" in index
    assert len(pd.read_csv(out / "summary.csv")) == 2
