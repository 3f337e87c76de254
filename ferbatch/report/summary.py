"""Per-video and per-face emotion summaries, written to ``summary.parquet`` / ``.csv``.

**Weighting.** Shares and means are over *face-time*, not rows: each face row is weighted by
the time it stands for (``weight_s``: the step to that face's next row, or one sampling interval
at the end of a track or before a gap, never past the video's end; see
:mod:`ferbatch.report.smoothing`). So face-time never exceeds the video's duration per face. So a video sampled
irregularly, or one with a face seen at 30 fps next to one seen at 5 fps, is summarised by
seconds on screen. Two faces on screen for 10 s count as 20 face-seconds.

* ``share_<label>``: share of face-time whose dominant label is ``<label>`` (the smoothed label
  ``s_emotion`` unless smoothing is ``none``, then the raw ``emotion``); they add up to 1.
* ``mean_p_<label>``: face-time-weighted mean of the raw probability ``p_<label>``.
* ``dominant_emotion``: the label with the largest share (ties: the earlier label).
* ``face_frame_share``: share of analysed frames (rows of the frames table) with ≥ 1 face.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from ..errors import OutputError
from ..output.atomic import atomic_write
from ..output.read import Results
from ..output.schema import mean_column, prob_column, share_column
from .defaults import (
    DEFAULT_MAX_GAP_S,
    DEFAULT_METHOD,
    DEFAULT_MIN_EPISODE_S,
    DEFAULT_WINDOW_S,
    SmoothMethod,
)
from .episodes import find_episodes
from .smoothing import add_timing, sampling_intervals, smooth, video_ends

if TYPE_CHECKING:
    from ..quality import QualityThresholds

__all__ = ["Summary", "summarize", "write_summary", "share_column", "mean_column"]


@dataclass
class Summary:
    """Everything the report derives from one output folder.

    ``videos``: one row per video; ``faces``: one row per (video, face_id); ``episodes``: one row
    per episode; ``timeline``: the faces table sorted, with ``track_run``, ``weight_s`` and the
    smoothed ``s_*`` columns (with ``min_quality``, only the rows that pass it); ``quality``:
    every face row with timing, its quality columns and ``quality_kept`` (``None`` when the
    output has no quality columns); ``settings``: how it was computed.
    """

    videos: pd.DataFrame
    faces: pd.DataFrame
    episodes: pd.DataFrame
    timeline: pd.DataFrame
    labels: list[str]
    settings: dict[str, Any] = field(default_factory=dict)
    quality: pd.DataFrame | None = None


def _label_shares(df: pd.DataFrame, keys: list[str], labels: list[str], label_col: str) -> pd.DataFrame:
    """Face-time share per label (columns share_<label>) for each group of ``keys``."""
    codes = pd.Categorical(df[label_col].astype(object), categories=labels).codes
    w = df["weight_s"].to_numpy(float)
    onehot = np.zeros((len(df), len(labels)))
    valid = codes >= 0
    onehot[np.flatnonzero(valid), codes[valid]] = w[valid]
    tmp = pd.DataFrame(onehot, columns=[share_column(lb) for lb in labels])
    for k in keys:
        tmp[k] = df[k].to_numpy()
    sums = tmp.groupby(keys, observed=True, sort=True).sum()
    total = sums.sum(axis=1).replace(0, np.nan)
    return sums.div(total, axis=0)


def _weighted_means(df: pd.DataFrame, keys: list[str], labels: list[str]) -> pd.DataFrame:
    w = df["weight_s"].to_numpy(float)
    tmp = pd.DataFrame(df[[prob_column(lb) for lb in labels]].to_numpy(float) * w[:, None],
                       columns=[mean_column(lb) for lb in labels])
    tmp["_w"] = w
    for k in keys:
        tmp[k] = df[k].to_numpy()
    sums = tmp.groupby(keys, observed=True, sort=True).sum()
    return sums.drop(columns="_w").div(sums["_w"].replace(0, np.nan), axis=0)


def _dominant(shares: pd.DataFrame, labels: list[str]) -> pd.Series:
    cols = [share_column(lb) for lb in labels]
    if not len(shares) or not labels:
        return pd.Series([None] * len(shares), index=shares.index, dtype=object)
    values = shares[cols].to_numpy(float)
    has = ~np.all(np.isnan(values), axis=1)
    top = np.argmax(np.nan_to_num(values, nan=-1.0), axis=1)
    return pd.Series([labels[i] if h else None for i, h in zip(top, has)], index=shares.index, dtype=object)


def _face_table(timeline: pd.DataFrame, episodes: pd.DataFrame, labels: list[str],
                label_col: str) -> pd.DataFrame:
    """One row per (video_id, face_id): when it was seen, for how long, shares, means, episodes."""
    fkeys = ["video_id", "face_id"]
    if not len(timeline):
        return pd.DataFrame(columns=fkeys + ["first_seen_s", "last_seen_s", "seen_s", "rows",
                                             "dominant_emotion", *[share_column(lb) for lb in labels],
                                             *[mean_column(lb) for lb in labels],
                                             "episodes", "mean_episode_s"])
    g = timeline.groupby(fkeys, observed=True, sort=True)
    faces = pd.DataFrame({
        "first_seen_s": g["timestamp_s"].min(),
        "last_seen_s": g["timestamp_s"].max(),
        "seen_s": g["weight_s"].sum(),
        "rows": g.size(),
    })
    fshares = _label_shares(timeline, fkeys, labels, label_col)
    faces = faces.join(fshares).join(_weighted_means(timeline, fkeys, labels))
    faces.insert(4, "dominant_emotion", _dominant(fshares.reindex(faces.index), labels))
    ep = episodes.groupby(fkeys, observed=True)["duration_s"].agg(["size", "mean"])
    faces["episodes"] = ep["size"].reindex(faces.index).fillna(0).astype("int64")
    faces["mean_episode_s"] = ep["mean"].reindex(faces.index)
    return faces.reset_index()


def _frame_figures(results: Results, out: pd.DataFrame) -> None:
    """Add ``frames_analyzed`` and ``face_frame_share`` to the per-video table ``out``."""
    v, fr, ids = results.videos, results.frames, out["video_id"].tolist()
    fr_ids = fr["video_id"].astype(str)
    n_frames = fr.groupby(fr_ids)["frame_index"].size().reindex(ids)
    with_face = (fr["num_faces"].fillna(0) > 0).groupby(fr_ids).sum().reindex(ids)
    analyzed = (pd.to_numeric(v["frames_analyzed"], errors="coerce").astype("float64").to_numpy()
                if "frames_analyzed" in v else np.full(len(ids), np.nan))
    counted = n_frames.fillna(0).to_numpy(float)
    out["frames_analyzed"] = pd.array(np.where(np.isnan(analyzed), counted, analyzed), dtype="Int64")
    out["face_frame_share"] = (with_face / n_frames.replace(0, np.nan)).to_numpy(float)


def _video_table(results: Results, timeline: pd.DataFrame, episodes: pd.DataFrame,
                 labels: list[str], label_col: str) -> pd.DataFrame:
    """One row per video of the videos table, failed ones included."""
    v = results.videos
    ids = v["video_id"].astype(str).tolist()
    out = pd.DataFrame({"video_id": ids})
    for col in ("path", "status", "error", "duration_s"):
        out[col] = v[col].to_numpy() if col in v else None
    _frame_figures(results, out)
    share_cols = [share_column(lb) for lb in labels]
    mean_cols = [mean_column(lb) for lb in labels]
    if len(timeline):
        tl_ids = timeline["video_id"].astype(str)
        out["face_ids"] = timeline.groupby(tl_ids)["face_id"].nunique().reindex(ids).fillna(0).astype("int64").to_numpy()
        out["face_seconds"] = timeline.groupby(tl_ids)["weight_s"].sum().reindex(ids).fillna(0.0).to_numpy()
        tl = timeline.assign(_vid=tl_ids.to_numpy())
        vshares = _label_shares(tl, ["_vid"], labels, label_col).reindex(ids)
        vmeans = _weighted_means(tl, ["_vid"], labels).reindex(ids)
    else:
        out["face_ids"] = np.zeros(len(ids), np.int64)
        out["face_seconds"] = np.zeros(len(ids))
        vshares = pd.DataFrame(np.nan, index=ids, columns=share_cols)
        vmeans = pd.DataFrame(np.nan, index=ids, columns=mean_cols)
    out["dominant_emotion"] = _dominant(vshares, labels).to_numpy()
    for c in share_cols:
        out[c] = vshares[c].to_numpy(float)
    for c in mean_cols:
        out[c] = vmeans[c].to_numpy(float)
    ep = episodes.groupby(episodes["video_id"].astype(str))["duration_s"].agg(["size", "mean"]).reindex(ids)
    out["episodes"] = ep["size"].fillna(0).astype("int64").to_numpy()
    out["mean_episode_s"] = ep["mean"].to_numpy(float)
    return out


def summarize(
    results: Results,
    *,
    smooth_method: SmoothMethod = DEFAULT_METHOD,
    window_s: float = DEFAULT_WINDOW_S,
    min_episode_s: float = DEFAULT_MIN_EPISODE_S,
    max_gap_s: float = DEFAULT_MAX_GAP_S,
    min_quality: QualityThresholds | None = None,
) -> Summary:
    """Compute per-video and per-face summaries and episodes of a loaded output folder.

    ``min_quality``: only face rows passing these thresholds count in shares, means and
    episodes (:mod:`ferbatch.report.quality`); the face-time of the others is reported as
    ``excluded_face_seconds`` per video and per face. Raises :class:`OutputError` when the
    output has no quality columns.
    """
    from .quality import KEPT, has_quality, keep_rows, quality_mask

    labels = list(results.labels)
    intervals = sampling_intervals(results.frames, results.videos, results.faces)
    ends = video_ends(results.videos, results.frames)
    if max_gap_s <= 0 or (min_quality is None and not has_quality(results.faces)):
        timed = None  # smooth() times the rows itself (and names a bad --max-gap)
        rows = results.faces
    else:
        timed = add_timing(results.faces, intervals, max_gap_s, ends)
        keep = (quality_mask(timed, min_quality, str(results.out or "")) if min_quality is not None
                else np.ones(len(timed), bool))
        timed[KEPT] = keep
        rows = keep_rows(timed, keep) if min_quality is not None else timed
    timeline = smooth(rows, labels, method=smooth_method, window_s=window_s,
                      max_gap_s=max_gap_s, intervals=intervals, ends=ends)
    label_col = "emotion" if smooth_method == "none" else "s_emotion"
    episodes = find_episodes(timeline, labels, min_duration_s=min_episode_s,
                             use_smoothed=smooth_method != "none")
    faces = _face_table(timeline, episodes, labels, label_col)
    videos = _video_table(results, timeline, episodes, labels, label_col)
    videos["dominant_emotion"] = pd.Categorical(videos["dominant_emotion"], categories=labels)
    faces["dominant_emotion"] = pd.Categorical(faces["dominant_emotion"].astype(object), categories=labels)
    settings = {"smooth": smooth_method, "window_s": window_s, "min_episode_s": min_episode_s,
                "max_gap_s": max_gap_s, "intervals": intervals,
                "min_quality": min_quality.to_dict() if min_quality is not None else None}
    if min_quality is not None and timed is not None:
        _excluded(timed, videos, faces)
    return Summary(videos=videos, faces=faces, episodes=episodes, timeline=timeline, labels=labels,
                   settings=settings, quality=timed)


def _excluded(timed: pd.DataFrame, videos: pd.DataFrame, faces: pd.DataFrame) -> None:
    """Add ``excluded_face_seconds`` (face-time of rows failing ``--min-quality``) and
    ``excluded_rows`` to the per-video and per-face tables (in place)."""
    from .quality import KEPT

    bad = timed[~timed[KEPT].to_numpy(bool)]
    vid = bad["video_id"].astype(str)
    per_video = bad.groupby(vid)["weight_s"].agg(["sum", "size"])
    ids = videos["video_id"].astype(str)
    videos["excluded_face_seconds"] = ids.map(per_video["sum"]).fillna(0.0).to_numpy(float)
    videos["excluded_rows"] = ids.map(per_video["size"]).fillna(0).astype("int64").to_numpy()
    if len(faces):
        per_face = bad.groupby([vid, bad["face_id"]])["weight_s"].agg(["sum", "size"])
        keys = pd.MultiIndex.from_arrays([faces["video_id"].astype(str), faces["face_id"]])
        faces["excluded_face_seconds"] = per_face["sum"].reindex(keys).fillna(0.0).to_numpy(float)
        faces["excluded_rows"] = per_face["size"].reindex(keys).fillna(0).astype("int64").to_numpy()
    else:
        faces["excluded_face_seconds"] = pd.Series(dtype=float)
        faces["excluded_rows"] = pd.Series(dtype="int64")


def _plain(df: pd.DataFrame) -> pd.DataFrame:
    """Categoricals → plain strings, so every Parquet/CSV reader sees simple columns."""
    df = df.copy()
    for col in df.columns:
        if isinstance(df[col].dtype, pd.CategoricalDtype):
            df[col] = df[col].astype(object).where(df[col].notna(), None)
    return df


def _write_parquet(df: pd.DataFrame, path: Path) -> Path:
    table = pa.Table.from_pandas(_plain(df), preserve_index=False)
    atomic_write(path, lambda tmp: pq.write_table(table, tmp))
    return path


def _write_csv(df: pd.DataFrame, path: Path) -> Path:
    atomic_write(path, lambda tmp: _plain(df).to_csv(tmp, index=False))
    return path


def write_summary(summary: Summary, out: str | os.PathLike[str]) -> dict[str, Path]:
    """Write ``summary.parquet``, ``summary.csv``, ``summary_faces.parquet`` and
    ``episodes.parquet`` into the output folder ``out``; returns their paths by name."""
    out = Path(out)
    if not out.is_dir():
        raise OutputError(f"{out}: output folder does not exist")
    paths = {
        "summary": _write_parquet(summary.videos, out / "summary.parquet"),
        "summary_csv": _write_csv(summary.videos, out / "summary.csv"),
        "summary_faces": _write_parquet(summary.faces, out / "summary_faces.parquet"),
        "episodes": _write_parquet(summary.episodes, out / "episodes.parquet"),
    }
    return paths
