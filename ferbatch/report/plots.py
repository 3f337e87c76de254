"""Charts of the per-video report, rendered with matplotlib's Agg canvas to PNG bytes.

``Figure`` + ``FigureCanvasAgg`` directly (no pyplot): no global backend state, nothing left
open, safe next to other code that uses matplotlib.
"""

from __future__ import annotations

import io

import numpy as np
import pandas as pd
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

from ..output.schema import prob_column
from .palette import color_for
from .smoothing import TRACK_RUN, smooth_column

__all__ = ["timeline_png", "shares_png", "MAX_PLOT_POINTS"]

MAX_PLOT_POINTS = 2000  # per face: longer series are averaged into this many time bins


def _png(fig: Figure) -> bytes:
    FigureCanvasAgg(fig)
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=fig.dpi)
    return buf.getvalue()


def _series(face: pd.DataFrame, cols: list[str]) -> tuple[np.ndarray, np.ndarray]:
    """Times and values of one face, NaN rows inserted between track runs (line breaks);
    long series are averaged into ``MAX_PLOT_POINTS`` bins (empty bins also break lines)."""
    t = face["timestamp_s"].to_numpy(float)
    y = face[cols].to_numpy(float)
    if len(t) > MAX_PLOT_POINTS:
        edges = np.linspace(t.min(), t.max() + 1e-9, MAX_PLOT_POINTS + 1)
        idx = np.clip(np.searchsorted(edges, t, side="right") - 1, 0, MAX_PLOT_POINTS - 1)
        counts = np.bincount(idx, minlength=MAX_PLOT_POINTS).astype(float)
        sums = np.stack([np.bincount(idx, weights=y[:, j], minlength=MAX_PLOT_POINTS)
                         for j in range(y.shape[1])], axis=1)
        with np.errstate(invalid="ignore", divide="ignore"):
            y = sums / counts[:, None]
        t = (edges[:-1] + edges[1:]) / 2
        return t, y  # empty bins are NaN: the line breaks there
    runs = face[TRACK_RUN].to_numpy() if TRACK_RUN in face else np.zeros(len(t))
    breaks = np.flatnonzero(np.diff(runs)) + 1
    if breaks.size:
        t = np.insert(t, breaks, np.nan)
        y = np.insert(y, breaks, np.nan, axis=0)
    return t, y


def timeline_png(
    timeline: pd.DataFrame,
    labels: list[str],
    *,
    face_ids: list[int] | None = None,
    t_end: float | None = None,
    episodes: pd.DataFrame | None = None,
    title: str | None = None,
) -> bytes:
    """Probabilities over time, one panel per face: smoothed lines over faint raw ones.

    ``timeline``: one video's rows of :attr:`Summary.timeline`; ``face_ids``: the faces to draw,
    in order (default: all); ``episodes``: drawn as a coloured band above each panel.
    """
    if face_ids is None:
        face_ids = sorted(timeline["face_id"].unique().tolist())
    n = max(1, len(face_ids))
    fig = Figure(figsize=(11, 0.6 + 2.0 * n), dpi=90, layout="constrained")
    axes = fig.subplots(n, 1, sharex=True, squeeze=False)[:, 0]
    raw_cols = [prob_column(lb) for lb in labels]
    s_cols = [smooth_column(lb) for lb in labels]
    has_s = all(c in timeline for c in s_cols)
    x_max = t_end if t_end and np.isfinite(t_end) else None
    for ax, fid in zip(axes, face_ids):
        face = timeline[timeline["face_id"] == fid]
        if not len(face):
            continue
        t, raw = _series(face, raw_cols)
        _, sm = _series(face, s_cols) if has_s else (t, raw)
        for j, label in enumerate(labels):
            color = color_for(label)
            ax.plot(t, raw[:, j], color=color, alpha=0.3, linewidth=0.8)
            ax.plot(t, sm[:, j], color=color, linewidth=1.8, label=label)
        if episodes is not None and len(episodes):
            for ep in episodes[episodes["face_id"] == fid].itertuples():
                ax.axvspan(ep.start_s, ep.end_s, ymin=0.96, ymax=1.0, color=color_for(ep.emotion),
                           alpha=0.9, linewidth=0)
        ax.set_ylim(0, 1.04)
        ax.set_ylabel(f"face {fid}")
        ax.grid(True, alpha=0.25, linewidth=0.6)
        ax.spines[["top", "right"]].set_visible(False)
        end = float(face["timestamp_s"].max() + face.get("weight_s", pd.Series([0.0])).iloc[-1])
        x_max = max(x_max or 0.0, end)
    if x_max:
        axes[0].set_xlim(0, x_max)
    axes[-1].set_xlabel("time (s)")
    handles, names = axes[0].get_legend_handles_labels()
    if handles:
        fig.legend(handles, names, loc="outside upper center", ncol=min(len(names), 8), frameon=False)
    if title:
        fig.suptitle(title, fontsize=10)
    return _png(fig)


def shares_png(rows: list[tuple[str, dict[str, float]]], labels: list[str]) -> bytes:
    """100 % stacked horizontal bars of emotion shares, one bar per ``(name, {label: share})``."""
    n = max(1, len(rows))
    fig = Figure(figsize=(9, 0.9 + 0.42 * n), dpi=90, layout="constrained")
    ax = fig.subplots()
    names = [name for name, _ in rows]
    y = np.arange(len(rows))[::-1]
    left = np.zeros(len(rows))
    for label in labels:
        vals = np.array([float(np.nan_to_num(sh.get(label, 0.0))) for _, sh in rows])
        ax.barh(y, vals, left=left, color=color_for(label), label=label, height=0.7,
                edgecolor="white", linewidth=0.5)
        for yi, li, vi in zip(y, left, vals):
            if vi >= 0.08:
                ax.text(li + vi / 2, yi, f"{vi:.0%}", ha="center", va="center", fontsize=8,
                        color="white" if label not in ("happy", "neutral") else "black")
        left += vals
    ax.set_yticks(y, names)
    ax.set_xlim(0, 1)
    ax.xaxis.set_major_formatter(lambda v, _pos: f"{v:.0%}")
    ax.spines[["top", "right"]].set_visible(False)
    fig.legend(*ax.get_legend_handles_labels(), loc="outside upper center", ncol=min(len(labels), 8),
               frameon=False, fontsize=8)
    ax.set_xlabel("share of face-time")
    return _png(fig)
