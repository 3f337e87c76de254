"""Time handling and smoothing of per-face emotion probabilities.

Per-frame labels flicker; people reading a timeline want them smoothed, with the raw scores
kept. Everything here works in *seconds*, not rows, because timestamps are irregular
(variable-frame-rate video, time-based sampling, frames lost to decode errors, faces that drop
out for a while).

Terms used across :mod:`ferbatch.report`:

* **sampling interval** of a video: the median step between its analysed frames' timestamps
  (from the frames table; else ``1 / fps``; else the faces' own steps).
* **gap**: a step between two rows of one face longer than ``max(max_gap_s, 2 × interval)``.
  A gap starts a new **track run** (column ``track_run``: a gap-free run of one face's rows;
  not to be confused with the pipeline's video segments): smoothers restart there and episodes
  end there.
* **weight** (``weight_s``) of a face row: the time it stands for: the step to the face's next
  row, or one sampling interval at the end of a track run — but never past the **end of the
  video** (its ``duration_s``, when known and after its last analysed frame: a face on screen
  until the last frame counts until the video ends, not one interval beyond). Short detection
  dropouts (up to the gap threshold) are thus bridged by the row before them; the weights of a
  track run add up to its duration.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from ..errors import ConfigError
from ..output.schema import prob_column, smooth_column
from .defaults import DEFAULT_MAX_GAP_S, DEFAULT_METHOD, DEFAULT_WINDOW_S, METHODS, SmoothMethod

_FALLBACK_INTERVAL_S = 1.0
#: column of :func:`add_timing`: id of the gap-free run of one face a row belongs to
TRACK_RUN = "track_run"

__all__ = [
    "METHODS",
    "SmoothMethod",
    "DEFAULT_METHOD",
    "TRACK_RUN",
    "has_timing",
    "DEFAULT_WINDOW_S",
    "DEFAULT_MAX_GAP_S",
    "smooth_column",
    "sampling_intervals",
    "video_ends",
    "add_timing",
    "smooth",
]


def has_timing(faces: pd.DataFrame) -> bool:
    """Whether ``faces`` already carries the columns of :func:`add_timing`."""
    return TRACK_RUN in faces and "weight_s" in faces


def _median_step(ts: np.ndarray) -> float:
    steps = np.diff(np.sort(ts))
    steps = steps[steps > 0]
    return float(np.median(steps)) if steps.size else float("nan")


def sampling_intervals(
    frames: pd.DataFrame, videos: pd.DataFrame | None = None, faces: pd.DataFrame | None = None
) -> dict[str, float]:
    """Sampling interval (s) per video id: median frame step, else ``1/fps``, else faces' step."""
    out: dict[str, float] = {}
    if len(frames):
        for vid, ts in frames.groupby("video_id", observed=True)["timestamp_s"]:
            out[str(vid)] = _median_step(ts.to_numpy(float))
    if videos is not None and "fps" in videos:
        for vid, fps in zip(videos["video_id"].astype(str), pd.to_numeric(videos["fps"], errors="coerce")):
            if not np.isfinite(out.get(vid, np.nan)) and fps and np.isfinite(fps) and fps > 0:
                out[vid] = 1.0 / float(fps)
    if faces is not None and len(faces):
        for vid, ts in faces.groupby("video_id", observed=True)["timestamp_s"]:
            if not np.isfinite(out.get(str(vid), np.nan)):
                out[str(vid)] = _median_step(ts.to_numpy(float))
    return {k: v if np.isfinite(v) and v > 0 else _FALLBACK_INTERVAL_S for k, v in out.items()}


def video_ends(videos: pd.DataFrame | None, frames: pd.DataFrame | None = None) -> dict[str, float]:
    """End (s) of each video whose ``duration_s`` is known and lies after its last analysed
    frame (a duration at or before it is wrong metadata: such a video gets no end)."""
    if videos is None or "duration_s" not in videos or not len(videos):
        return {}
    ids = videos["video_id"].astype(str).to_numpy()
    durations = pd.to_numeric(videos["duration_s"], errors="coerce").astype("float64").to_numpy()
    last: dict[str, float] = {}
    if frames is not None and len(frames):
        last = {str(k): float(v) for k, v in
                frames.groupby(frames["video_id"].astype(str))["timestamp_s"].max().items()}
    return {vid: float(d) for vid, d in zip(ids, durations)
            if np.isfinite(d) and d > 0 and d > last.get(vid, -np.inf)}


def _group_starts(df: pd.DataFrame) -> np.ndarray:
    """Boolean array: row starts a new (video_id, face_id) group (df sorted by them)."""
    vid = df["video_id"].astype(str).to_numpy()
    fid = df["face_id"].to_numpy()
    start = np.ones(len(df), bool)
    if len(df) > 1:
        start[1:] = (vid[1:] != vid[:-1]) | (fid[1:] != fid[:-1])
    return start


def add_timing(
    faces: pd.DataFrame,
    intervals: dict[str, float] | None = None,
    max_gap_s: float = DEFAULT_MAX_GAP_S,
    ends: dict[str, float] | None = None,
) -> pd.DataFrame:
    """A copy of ``faces`` sorted by (video_id, face_id, timestamp_s) with ``track_run`` and
    ``weight_s``.

    ``track_run``: an integer id, unique across the table, of each gap-free run of one face.
    ``weight_s``: the time each row stands for (see the module docstring), clipped at the end
    of its video, ``ends`` (:func:`video_ends`; a video not in it is not clipped).
    """
    if max_gap_s <= 0:
        raise ConfigError(f"--max-gap must be > 0 (seconds), got {max_gap_s}")
    df = faces.sort_values(["video_id", "face_id", "timestamp_s"], kind="stable").reset_index(drop=True)
    if intervals is None:
        intervals = sampling_intervals(df.iloc[0:0], None, df)
    n = len(df)
    t = df["timestamp_s"].to_numpy(float)
    interval = df["video_id"].astype(str).map(intervals).astype(float).fillna(_FALLBACK_INTERVAL_S).to_numpy()
    limit = np.maximum(max_gap_s, 2.0 * interval)
    group_start = _group_starts(df)
    step_prev = np.full(n, np.inf)
    if n > 1:
        step_prev[1:] = t[1:] - t[:-1]
    new_run = group_start | (step_prev > limit)
    df[TRACK_RUN] = np.cumsum(new_run) - 1 if n else np.zeros(0, np.int64)
    step_next = np.full(n, np.nan)
    if n > 1:
        step_next[:-1] = t[1:] - t[:-1]
    run_ends = np.ones(n, bool)
    if n > 1:
        run_ends[:-1] = new_run[1:]
    weight = np.where(run_ends, interval, step_next)
    if ends:
        room = df["video_id"].astype(str).map(ends).astype(float).to_numpy() - t
        weight = np.where(np.isfinite(room) & (room > 0), np.minimum(weight, room), weight)
    df["weight_s"] = weight
    return df


def _run_slices(track_run: np.ndarray) -> list[tuple[int, int]]:
    if not track_run.size:
        return []
    cuts = np.flatnonzero(np.diff(track_run)) + 1
    starts = np.r_[0, cuts]
    ends = np.r_[cuts, track_run.size]
    return list(zip(starts.tolist(), ends.tolist()))


def _ema(x: np.ndarray, t: np.ndarray, track_run: np.ndarray, tau: float) -> np.ndarray:
    """Causal exponential moving average with time constant ``tau`` seconds, irregular steps.

    ``s_i = s_{i-1} + a_i (x_i - s_{i-1})`` with ``a_i = 1 - exp(-(t_i - t_{i-1}) / tau)``: a
    sample's influence halves every ``tau · ln 2`` seconds whatever the frame rate.
    """
    out = np.empty_like(x)
    alpha = np.ones(len(t))
    if len(t) > 1:
        alpha[1:] = 1.0 - np.exp(-np.clip(t[1:] - t[:-1], 0, None) / tau)
        alpha[1:][track_run[1:] != track_run[:-1]] = 1.0  # restart after a gap / new face
    prev = None
    for i in range(len(t)):
        a = alpha[i]
        prev = x[i].copy() if a >= 1.0 or prev is None else prev + a * (x[i] - prev)
        out[i] = prev
    return out


def _moving(x: np.ndarray, t: np.ndarray, track_run: np.ndarray, window_s: float) -> np.ndarray:
    """Centred moving average: mean of the rows within ±window/2 s, inside the same track run."""
    out = np.empty_like(x)
    half = window_s / 2.0
    for a, b in _run_slices(track_run):
        ts, xs = t[a:b], x[a:b]
        csum = np.vstack([np.zeros((1, xs.shape[1])), np.cumsum(xs, axis=0)])
        lo = np.searchsorted(ts, ts - half - 1e-9, side="left")
        hi = np.searchsorted(ts, ts + half + 1e-9, side="right")
        out[a:b] = (csum[hi] - csum[lo]) / (hi - lo)[:, None]
    return out


def smooth(
    faces: pd.DataFrame,
    labels: list[str],
    *,
    method: SmoothMethod = DEFAULT_METHOD,
    window_s: float = DEFAULT_WINDOW_S,
    max_gap_s: float = DEFAULT_MAX_GAP_S,
    intervals: dict[str, float] | None = None,
    ends: dict[str, float] | None = None,
) -> pd.DataFrame:
    """Smooth each face's probabilities over time; returns a sorted copy with added columns.

    Adds ``s_<label>`` (smoothed probability, float32), ``s_emotion`` (Categorical, argmax of
    the smoothed probabilities, ties to the earlier label), ``s_confidence``, and — unless already
    present — ``track_run`` and ``weight_s`` (:func:`add_timing`, with ``intervals`` and ``ends``). The raw ``p_*``, ``emotion`` and
    ``confidence`` columns are kept. ``method``: ``"ema"`` (causal, time constant ``window_s``),
    ``"moving"`` (centred window of ``window_s`` seconds) or ``"none"`` (copies). Each face and
    each gap-free track run is smoothed on its own.
    """
    if method not in METHODS:
        raise ConfigError(f"--smooth: unknown method {method!r}; choose one of {', '.join(METHODS)}")
    if method != "none" and not window_s > 0:
        raise ConfigError(f"--window must be > 0 (seconds), got {window_s}")
    if has_timing(faces):
        df = faces.sort_values(["video_id", "face_id", "timestamp_s"], kind="stable").reset_index(drop=True)
    else:
        df = add_timing(faces, intervals, max_gap_s, ends)
    prob_cols = [prob_column(label) for label in labels]
    missing = [c for c in prob_cols if c not in df]
    if missing:
        raise ConfigError(f"faces table lacks probability column(s) {missing}")
    x = df[prob_cols].to_numpy(np.float64) if labels else np.zeros((len(df), 0))
    t = df["timestamp_s"].to_numpy(float)
    track_run = df[TRACK_RUN].to_numpy()
    if method == "ema":
        s = _ema(x, t, track_run, window_s)
    elif method == "moving":
        s = _moving(x, t, track_run, window_s)
    else:
        s = x.copy()
    for j, label in enumerate(labels):
        df[smooth_column(label)] = s[:, j].astype(np.float32)
    if labels and len(df):
        top = np.argmax(s, axis=1)
        df["s_emotion"] = pd.Categorical.from_codes(top, categories=labels)
        df["s_confidence"] = s[np.arange(len(df)), top].astype(np.float32)
    else:
        df["s_emotion"] = pd.Categorical([], categories=labels) if not len(df) else pd.Categorical(
            [None] * len(df), categories=labels)
        df["s_confidence"] = pd.Series(np.full(len(df), np.nan, np.float32))
    return df
