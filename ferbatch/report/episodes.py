"""Emotion episodes: runs of one dominant emotion on one face, long enough to matter.

A run is a maximal sequence of a face's rows with the same dominant label (the smoothed
``s_emotion`` when the table was smoothed, else the raw ``emotion``) and no gap between them
(see :mod:`ferbatch.report.smoothing` for gaps and row weights). A run lasts from its first
row's timestamp to that time plus the summed weights of its rows, i.e. up to the next row of the
face, or one sampling interval past its last row when a gap or the track's end follows, but never
past the video's end (runs never cross a gap: each lies inside one ``track_run``).
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from ..errors import ConfigError
from ..output.schema import prob_column
from .defaults import DEFAULT_MAX_GAP_S, DEFAULT_MIN_EPISODE_S
from .smoothing import TRACK_RUN, add_timing, has_timing, smooth_column

EPISODE_COLUMNS = [
    "video_id", "face_id", "emotion", "start_s", "end_s", "duration_s",
    "mean_confidence", "peak_confidence", "peak_s", "n_rows",
]

__all__ = ["DEFAULT_MIN_EPISODE_S", "EPISODE_COLUMNS", "find_episodes", "empty_episodes"]


def empty_episodes(labels: list[str]) -> pd.DataFrame:
    """An episodes table with no rows and the right columns/dtypes."""
    return pd.DataFrame({
        "video_id": pd.Categorical([]),
        "face_id": pd.Series(dtype="int32"),
        "emotion": pd.Categorical([], categories=labels),
        **{c: pd.Series(dtype="float64") for c in
           ("start_s", "end_s", "duration_s", "mean_confidence", "peak_confidence", "peak_s")},
        "n_rows": pd.Series(dtype="int64"),
    })[EPISODE_COLUMNS]


def find_episodes(
    faces: pd.DataFrame,
    labels: list[str],
    *,
    min_duration_s: float = DEFAULT_MIN_EPISODE_S,
    max_gap_s: float = DEFAULT_MAX_GAP_S,
    intervals: dict[str, float] | None = None,
    use_smoothed: bool | None = None,
    ends: dict[str, float] | None = None,
) -> pd.DataFrame:
    """Episodes of ``faces`` lasting at least ``min_duration_s`` seconds, one row each.

    Columns: video_id, face_id, emotion, start_s, end_s, duration_s, mean_confidence (the
    time-weighted mean probability of the episode's emotion — smoothed if smoothed labels were
    used — over its rows), peak_confidence and peak_s (its highest value and when), n_rows.
    ``faces`` may come straight from :func:`ferbatch.load` or from
    :func:`~ferbatch.report.smoothing.smooth` (then its track runs and weights are reused).
    ``use_smoothed``: None = use ``s_emotion`` when the table has it. ``intervals``, ``ends``:
    for a table without timing (:func:`~ferbatch.report.smoothing.add_timing`).
    """
    if min_duration_s < 0:
        raise ConfigError(f"--min-episode must be >= 0 (seconds), got {min_duration_s}")
    if not len(faces) or not labels:
        return empty_episodes(labels)
    if has_timing(faces):
        df = faces.sort_values(["video_id", "face_id", "timestamp_s"], kind="stable").reset_index(drop=True)
    else:
        df = add_timing(faces, intervals, max_gap_s, ends)
    smoothed = ("s_emotion" in df) if use_smoothed is None else use_smoothed
    if smoothed and "s_emotion" not in df:
        raise ConfigError("use_smoothed=True needs a smoothed table (run smooth() first)")
    label_col = "s_emotion" if smoothed else "emotion"
    codes = pd.Categorical(df[label_col].astype(object), categories=labels).codes
    prob = df[[smooth_column(lb) if smoothed else prob_column(lb) for lb in labels]].to_numpy(np.float64)
    n = len(df)
    p_own = np.where(codes >= 0, prob[np.arange(n), np.clip(codes, 0, None)], np.nan)

    track_run = df[TRACK_RUN].to_numpy()
    new_run = np.ones(n, bool)
    new_run[1:] = (track_run[1:] != track_run[:-1]) | (codes[1:] != codes[:-1])
    starts = np.flatnonzero(new_run)
    runs = _run_figures(df, p_own, starts)
    run_codes = codes[starts]
    keep = (run_codes >= 0) & (runs["duration_s"] >= min_duration_s - 1e-9)
    out = pd.DataFrame({
        "video_id": df["video_id"].to_numpy()[starts][keep],
        "face_id": df["face_id"].to_numpy()[starts][keep].astype("int32"),
        "emotion": pd.Categorical.from_codes(run_codes[keep], categories=labels),
        **{name: values[keep] for name, values in runs.items()},
    })
    if isinstance(df["video_id"].dtype, pd.CategoricalDtype):
        out["video_id"] = pd.Categorical(out["video_id"].astype(object),
                                         categories=df["video_id"].cat.categories)
    return out.reset_index(drop=True)[EPISODE_COLUMNS]


def _run_figures(df: pd.DataFrame, p_own: np.ndarray, starts: np.ndarray) -> dict[str, np.ndarray]:
    """Per run (rows ``starts[k]`` up to the next start): start, end, duration, time-weighted
    mean and peak of ``p_own`` (the probability of each row's own label), number of rows."""
    ends = np.r_[starts[1:], len(df)]  # exclusive
    t = df["timestamp_s"].to_numpy(float)
    w = df["weight_s"].to_numpy(float)
    duration = np.add.reduceat(w, starts)
    wp = np.where(np.isnan(p_own), 0.0, p_own * w)
    wsum = np.add.reduceat(np.where(np.isnan(p_own), 0.0, w), starts)
    with np.errstate(invalid="ignore", divide="ignore"):
        mean_conf = np.add.reduceat(wp, starts) / wsum
    peak_conf = np.full(len(starts), np.nan)
    peak_s = np.full(len(starts), np.nan)
    filled = np.where(np.isnan(p_own), -np.inf, p_own)
    for k, (a, b) in enumerate(zip(starts, ends)):
        i = a + int(np.argmax(filled[a:b]))
        peak_conf[k], peak_s[k] = p_own[i], t[i]
    return {
        "start_s": t[starts],
        "end_s": t[starts] + duration,
        "duration_s": duration,
        "mean_confidence": mean_conf,
        "peak_confidence": peak_conf,
        "peak_s": peak_s,
        "n_rows": (ends - starts).astype("int64"),
    }
