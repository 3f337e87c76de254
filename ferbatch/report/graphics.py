"""Geometry of the report's inline SVG graphics (sparklines, share bars), without any markup.

The numbers are computed here; ``templates/macros.html`` draws them (``spark`` and
``shares_bar`` macros), so the SVG markup lives with the rest of the page markup.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import ClassVar

import numpy as np
import pandas as pd

from ..output.schema import prob_column
from .palette import color_for, valence_of
from .smoothing import smooth_column

__all__ = ["Band", "Sparkline", "SharesBar", "sparkline", "shares_bar"]

_SUB_BINS = 8  # sub-bins per sparkline bin, so sparse sampling still paints continuous bands


@dataclass(frozen=True)
class Band:
    """A coloured rectangle of a sparkline or share bar, with its tooltip."""

    x: float
    width: float
    color: str
    tip: str


@dataclass
class Sparkline:
    """Bands of the dominant emotion per time bin and the mean-valence line (broken at empty
    bins; a run of one point is a dot). ``empty``: no faces, drawn as a dashed midline."""

    kind: ClassVar[str] = "spark"
    width: int
    height: int
    bands: list[Band] = field(default_factory=list)
    lines: list[list[tuple[float, float]]] = field(default_factory=list)
    empty: bool = False

    @property
    def mid(self) -> float:
        return self.height / 2


@dataclass
class SharesBar:
    """A 100 % stacked bar of emotion shares."""

    kind: ClassVar[str] = "bar"
    width: int
    height: int
    bands: list[Band] = field(default_factory=list)


def _row_labels(tl: pd.DataFrame, smoothed: bool) -> pd.Series:
    return tl["s_emotion"] if smoothed and "s_emotion" in tl else tl["emotion"]


def _coverage(timeline: pd.DataFrame, labels: list[str], smoothed: bool, end: float,
              bins: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Per bin: face-time per label (bins × labels), valence sum and face-time.

    Each row's interval ``[t, t + weight)`` is rasterised onto a fine grid of sub-bins with
    difference arrays, then the sub-bins are summed into bins.
    """
    t = timeline["timestamp_s"].to_numpy(float)
    w = timeline["weight_s"].to_numpy(float) if "weight_s" in timeline else np.zeros(len(t))
    m = bins * _SUB_BINS
    a = np.clip(np.floor(t / end * m).astype(int), 0, m - 1)
    b = np.clip(np.floor((t + w) / end * m).astype(int), a + 1, m)
    codes = pd.Categorical(_row_labels(timeline, smoothed).astype(object), categories=labels).codes
    cols = [smooth_column(lb) if smoothed and smooth_column(lb) in timeline else prob_column(lb)
            for lb in labels]
    val = timeline[cols].to_numpy(float) @ np.array([valence_of(lb) for lb in labels])
    ok = codes >= 0
    n = len(labels)
    diff = np.zeros((m + 1, n + 2))  # per label coverage, valence sum, count
    np.add.at(diff, (a[ok], codes[ok]), 1.0)
    np.add.at(diff, (b[ok], codes[ok]), -1.0)
    for col, v in ((n, np.nan_to_num(val)), (n + 1, np.ones(len(t)))):
        np.add.at(diff[:, col], a, v)
        np.add.at(diff[:, col], b, -v)
    cover = np.cumsum(diff[:-1], axis=0).reshape(bins, _SUB_BINS, -1).sum(axis=1)
    return np.clip(cover[:, :n], 0, None), cover[:, n], np.round(cover[:, n + 1], 9)


def _bands(dom: np.ndarray, labels: list[str], end: float, bw: float) -> list[Band]:
    """One band per run of bins with the same dominant emotion (-1: none, no band); its tooltip
    gives the run's bin edges in seconds, to the centisecond like the episode table (the edges
    are the bins', not an episode's: a bin's colour is its emotion with most face-time)."""
    bins = len(dom)
    bands = []
    b = 0
    while b < bins:
        e = b
        while e + 1 < bins and dom[e + 1] == dom[b]:
            e += 1
        if dom[b] >= 0:
            label = labels[int(dom[b])]
            bands.append(Band(b * bw, (e + 1 - b) * bw, color_for(label),
                              f"{label} dominates {b * end / bins:.2f}–{(e + 1) * end / bins:.2f} s"))
        b = e + 1
    return bands


def _valence_lines(vsum: np.ndarray, wsum: np.ndarray, bw: float, height: int) -> list[list[tuple[float, float]]]:
    """Mean valence per bin as points (−1 bottom … +1 top), split at empty bins."""
    lines: list[list[tuple[float, float]]] = []
    run: list[tuple[float, float]] = []
    for b in range(len(vsum)):
        if wsum[b] > 0:
            v = vsum[b] / wsum[b]
            run.append(((b + 0.5) * bw, (1 - (v + 1) / 2) * (height - 4) + 2))
        elif run:
            lines.append(run)
            run = []
    if run:
        lines.append(run)
    return lines


def sparkline(
    timeline: pd.DataFrame,
    labels: list[str],
    *,
    t_end: float | None = None,
    smoothed: bool = True,
    bins: int = 60,
    width: int = 160,
    height: int = 30,
) -> Sparkline:
    """Dominant emotion per time bin and the face-time weighted mean valence of one video.

    Each bin's colour is the emotion with most face-time in it; the line is the face-time
    weighted mean valence (−1 bottom … +1 top) of the (smoothed) probabilities. Empty bins stay
    blank and break the line.
    """
    if not len(timeline) or not labels or not np.isfinite(timeline["timestamp_s"]).any():
        return Sparkline(width, height, empty=True)
    t = timeline["timestamp_s"].to_numpy(float)
    w = timeline["weight_s"].to_numpy(float) if "weight_s" in timeline else np.zeros(len(t))
    end = t_end if t_end and np.isfinite(t_end) and t_end > 0 else float(np.nanmax(t + w))
    end = max(end, float(np.nanmax(t + w)), 1e-6)
    per, vsum, wsum = _coverage(timeline, labels, smoothed, end, bins)
    dom = np.where(per.sum(axis=1) > 0, np.argmax(per, axis=1), -1)
    bw = width / bins
    return Sparkline(width, height, _bands(dom, labels, end, bw), _valence_lines(vsum, wsum, bw, height))


def shares_bar(shares: dict[str, float], labels: list[str], width: int = 100, height: int = 12) -> SharesBar:
    """Stacked bar of ``{label: share}`` in label order; missing or zero shares are skipped."""
    bands = []
    x = 0.0
    for label in labels:
        v = shares.get(label, float("nan"))
        if not v or math.isnan(v):
            continue
        bands.append(Band(x, v * width, color_for(label), f"{label} {v:.0%}"))
        x += v * width
    return SharesBar(width, height, bands)
