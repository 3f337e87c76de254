"""Smoothing (``ferbatch.report.smoothing``) on hand-built time series (irregular timestamps,
gaps)."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest

from ferbatch.errors import ConfigError, FerbatchError
from ferbatch.report.episodes import find_episodes
from ferbatch.report.smoothing import add_timing, sampling_intervals, smooth

from report_data import LABELS, faces_df, step_series


def test_ema_is_sampling_independent_on_irregular_timestamps():
    """A step seen through dense regular and sparse irregular sampling gives the same EMA at a
    common time: 1 - exp(-(t - t_last_before_step) / tau)."""
    tau = 0.8
    dense = [round(0.1 * i, 3) for i in range(31)]  # 0.0 … 3.0 every 0.1 s
    sparse = [0.0, 0.35, 1.0, 1.1, 1.45, 2.0, 2.9, 3.0]  # VFR-like, same last pre-step time
    out = {}
    for name, times in (("dense", [t for t in dense if t <= 1.0 or t > 1.05]), ("sparse", sparse)):
        df = smooth(faces_df(step_series(times, 1.05)), LABELS, method="ema", window_s=tau,
                    max_gap_s=5.0)
        out[name] = df.set_index("timestamp_s")["s_happy"]
    for t in (2.0, 3.0):
        expected = 1 - math.exp(-(t - 1.0) / tau)
        assert out["dense"][t] == pytest.approx(expected, abs=1e-5)
        assert out["sparse"][t] == pytest.approx(expected, abs=1e-5)


def test_smooth_keeps_raw_and_adds_columns():
    df = faces_df(step_series([0, 0.5, 1.0, 1.5, 2.0], 1.0))
    sm = smooth(df, LABELS, method="ema", window_s=1.0)
    for lb in LABELS:
        assert f"p_{lb}" in sm and f"s_{lb}" in sm
        np.testing.assert_allclose(sm[f"p_{lb}"], df[f"p_{lb}"])
    assert list(sm["s_emotion"].cat.categories) == LABELS
    assert sm["emotion"].tolist() == df["emotion"].tolist()
    np.testing.assert_allclose(sm[[f"s_{lb}" for lb in LABELS]].sum(axis=1), 1.0, atol=1e-6)
    assert sm["s_emotion"].iloc[2] == "neutral"  # lag: the first happy sample is still neutral
    assert sm["s_emotion"].iloc[-1] == "happy"


def test_gap_resets_ema_and_moving_average():
    times = [0.0, 0.5, 1.0, 1.5, 10.0, 10.5]  # 8.5 s gap
    rows = [(0, t, 1.0, 0.0, 0.0) if t < 5 else (0, t, 0.0, 1.0, 0.0) for t in times]
    df = faces_df(rows)
    for method in ("ema", "moving"):
        sm = smooth(df, LABELS, method=method, window_s=3.0, max_gap_s=2.0)
        after = sm[sm["timestamp_s"] >= 10.0]
        np.testing.assert_allclose(after["s_sad"], 1.0)  # nothing carried over the gap
        np.testing.assert_allclose(sm[sm["timestamp_s"] < 5]["s_happy"], 1.0)
        assert sm["track_run"].nunique() == 2
    # without the reset (huge max gap) the EMA would carry happy over
    sm = smooth(df, LABELS, method="ema", window_s=3.0, max_gap_s=100.0)
    assert sm["track_run"].nunique() == 1
    assert sm.loc[sm["timestamp_s"] == 10.0, "s_sad"].item() < 1.0


def test_moving_average_is_centred_time_window_on_irregular_samples():
    times = [0.0, 0.1, 0.25, 0.9, 1.0, 1.6]
    vals = [1.0, 0.0, 1.0, 1.0, 0.0, 1.0]
    df = faces_df([(0, t, v, 1 - v, 0.0) for t, v in zip(times, vals)])
    sm = smooth(df, LABELS, method="moving", window_s=1.0).set_index("timestamp_s")
    # t = 0.5 is not a sample; t = 0.9: window [0.4, 1.4] holds 0.9 and 1.0 → (1 + 0) / 2
    assert sm.loc[0.9, "s_happy"] == pytest.approx(0.5)
    # t = 0.25: window [-0.25, 0.75] holds 0.0, 0.1, 0.25 → 2/3
    assert sm.loc[0.25, "s_happy"] == pytest.approx(2 / 3)
    # t = 1.6: window [1.1, 2.1] holds only itself
    assert sm.loc[1.6, "s_happy"] == pytest.approx(1.0)


def test_faces_are_smoothed_independently():
    rows = []
    for i in range(10):
        t = i * 0.2
        rows.append((0, t, 1.0, 0.0, 0.0))
        rows.append((1, t, 0.0, 1.0, 0.0))
    sm = smooth(faces_df(rows), LABELS, method="ema", window_s=2.0)
    np.testing.assert_allclose(sm[sm["face_id"] == 0]["s_happy"], 1.0)
    np.testing.assert_allclose(sm[sm["face_id"] == 1]["s_sad"], 1.0)


def test_weights_and_track_runs_irregular():
    times = [0.0, 0.4, 0.9, 1.0, 1.6, 2.0, 5.0, 5.5, 6.0]
    df = add_timing(faces_df([(0, t, 0.2, 0.2, 0.6) for t in times]), {"v": 0.5}, max_gap_s=2.0)
    np.testing.assert_allclose(df["weight_s"], [0.4, 0.5, 0.1, 0.6, 0.4, 0.5, 0.5, 0.5, 0.5])
    assert df["track_run"].tolist() == [0] * 6 + [1] * 3
    # sparse sampling: the gap threshold grows to 2 sampling intervals
    df = add_timing(faces_df([(0, t, 0.2, 0.2, 0.6) for t in (0.0, 3.0, 6.0, 20.0)]), {"v": 3.0},
                    max_gap_s=2.0)
    assert df["track_run"].tolist() == [0, 0, 0, 1]
    np.testing.assert_allclose(df["weight_s"], [3.0, 3.0, 3.0, 3.0])


def test_sampling_intervals_fallbacks():
    frames = pd.DataFrame({"video_id": pd.Categorical(["a"] * 4), "timestamp_s": [0, 0.2, 0.4, 0.6]})
    videos = pd.DataFrame({"video_id": ["a", "b", "c"], "fps": [25.0, 10.0, None]})
    got = sampling_intervals(frames, videos)
    assert got["a"] == pytest.approx(0.2) and got["b"] == pytest.approx(0.1)
    assert "c" not in got


def test_empty_and_invalid_inputs():
    empty = faces_df([])
    assert smooth(empty, LABELS).empty
    assert find_episodes(empty, LABELS).columns.tolist()[:3] == ["video_id", "face_id", "emotion"]
    df = faces_df([(0, 0.0, 1.0, 0.0, 0.0)])
    with pytest.raises(ConfigError):
        smooth(df, LABELS, method="kalman")
    with pytest.raises(FerbatchError):
        smooth(df, LABELS, method="ema", window_s=0)
    with pytest.raises(FerbatchError):
        find_episodes(df, LABELS, min_duration_s=-1)
    with pytest.raises(FerbatchError):
        add_timing(df, max_gap_s=0)
