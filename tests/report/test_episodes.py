"""Episode detection (``ferbatch.report.episodes``) on hand-built time series, raw and smoothed."""

from __future__ import annotations

import pytest

from ferbatch.report.episodes import find_episodes
from ferbatch.report.smoothing import smooth

from report_data import LABELS, faces_df


def test_episodes_break_on_gaps_and_label_changes():
    # happy 0–2 s, gap (3 s) then happy again 5–6 s, then sad 6–8 s; irregular steps
    times = [0.0, 0.3, 1.0, 1.2, 2.0, 5.0, 5.4, 6.0, 6.5, 7.1, 8.0]
    rows = [(0, t, 0.8, 0.1, 0.1) if t < 6.0 else (0, t, 0.1, 0.7, 0.2) for t in times]
    eps = find_episodes(faces_df(rows), LABELS, min_duration_s=0.5, max_gap_s=2.0,
                        intervals={"v": 0.5})
    got = [(e.emotion, round(e.start_s, 6), round(e.end_s, 6)) for e in eps.itertuples()]
    # 2.0 is followed by a gap: the run ends one interval (0.5 s) after it; likewise at 8.0
    assert got == [("happy", 0.0, 2.5), ("happy", 5.0, 6.0), ("sad", 6.0, 8.5)]
    assert eps["duration_s"].tolist() == pytest.approx([2.5, 1.0, 2.5])
    assert eps["mean_confidence"].tolist() == pytest.approx([0.8, 0.8, 0.7])
    # min duration drops the short run
    eps = find_episodes(faces_df(rows), LABELS, min_duration_s=2.0, intervals={"v": 0.5})
    assert eps["emotion"].tolist() == ["happy", "sad"]


def test_episode_mean_confidence_is_time_weighted():
    # happy at t=0 (p .9, stands for 1.5 s) and t=1.5 (p .6, stands for the 0.5 s interval)
    rows = [(0, 0.0, 0.9, 0.05, 0.05), (0, 1.5, 0.6, 0.2, 0.2)]
    eps = find_episodes(faces_df(rows), LABELS, min_duration_s=0, intervals={"v": 0.5})
    assert eps["duration_s"].item() == pytest.approx(2.0)
    assert eps["mean_confidence"].item() == pytest.approx((0.9 * 1.5 + 0.6 * 0.5) / 2.0)
    assert eps["peak_confidence"].item() == pytest.approx(0.9)
    assert eps["peak_s"].item() == 0.0


def test_smoothing_removes_flicker_episodes():
    times = [i * 0.25 for i in range(16)]  # 4 s
    rows = [(0, t, 0.1, 0.7, 0.2) if t == 2.0 else (0, t, 0.7, 0.1, 0.2) for t in times]
    raw = find_episodes(faces_df(rows), LABELS, min_duration_s=0)
    assert raw["emotion"].tolist() == ["happy", "sad", "happy"]
    sm = smooth(faces_df(rows), LABELS, method="moving", window_s=1.0)
    eps = find_episodes(sm, LABELS, min_duration_s=0)
    assert eps["emotion"].tolist() == ["happy"]
    assert eps["duration_s"].item() == pytest.approx(4.0)
