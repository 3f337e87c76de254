"""Face quality in the report: ``--min-quality`` filtering, excluded face-time, the quality chart.

``--min-quality ok`` keeps the rows that pass the thresholds the run wrote into ``_ferbatch.json``
(:class:`ferbatch.quality.QualityThresholds`; its defaults for an output without them);
``--min-quality min_face_px=48,max_abs_yaw=30`` overrides some of them (field names of
:class:`~ferbatch.quality.QualityThresholds`; ``none`` switches a bound off). Excluded rows keep
their face-time (``weight_s``), counted as ``excluded_face_seconds``; the rows left are split into
track runs at every excluded stretch, so smoothing restarts and no episode spans it.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np
import pandas as pd

from ..errors import ConfigError, OutputError
from ..quality import DEFAULT_THRESHOLDS, SIGNAL_COLUMNS, QualityThresholds
from .smoothing import TRACK_RUN

__all__ = ["resolve_min_quality", "has_quality", "quality_mask", "keep_rows", "quality_png"]

KEPT = "quality_kept"  # column of Summary.quality: the row passes --min-quality


def resolve_min_quality(spec: str, meta: Mapping[str, Any] | None = None) -> QualityThresholds:
    """The thresholds ``--min-quality spec`` means for an output with manifest ``meta``.

    Raises :class:`ConfigError` naming the option for a malformed spec or an unknown name.
    """
    base = DEFAULT_THRESHOLDS.to_dict()
    stored = (meta or {}).get("quality_thresholds")
    if isinstance(stored, dict):
        base.update({k: v for k, v in stored.items() if k in base})
    spec = spec.strip()
    if spec.lower() not in ("ok", "default", ""):
        for item in spec.split(","):
            key, sep, value = item.partition("=")
            key = key.strip()
            if not sep or not key:
                raise ConfigError(f"--min-quality: expected 'ok' or name=value pairs separated by "
                                  f"commas, got {item!r}")
            if key not in base:
                raise ConfigError(f"--min-quality: unknown threshold {key!r}; known: {', '.join(base)}")
            value = value.strip()
            try:
                base[key] = None if value.lower() == "none" else float(value)
            except ValueError:
                raise ConfigError(f"--min-quality: {key}={value!r} is not a number (or 'none')") from None
    try:
        return QualityThresholds.from_dict(base)
    except ValueError as exc:
        raise ConfigError(f"--min-quality {spec!r}: {exc}") from exc


def has_quality(faces: pd.DataFrame) -> bool:
    """The faces table has quality columns with values (a run by a ferbatch with them)."""
    return all(c in faces for c in SIGNAL_COLUMNS) and bool(len(faces)) and \
        faces["face_px"].notna().any()


def quality_mask(faces: pd.DataFrame, thresholds: QualityThresholds, shown: str = "") -> np.ndarray:
    """Boolean per row of ``faces``: it passes ``thresholds``. An output without quality
    columns (written by an older ferbatch) is an :class:`OutputError` naming it."""
    if not len(faces):
        return np.zeros(0, bool)
    if not all(c in faces for c in SIGNAL_COLUMNS):
        missing = sorted(faces["video_id"].astype(str).unique())
    else:
        missing = sorted(faces.loc[faces["face_px"].isna(), "video_id"].astype(str).unique())
    if missing:
        raise OutputError(f"{shown or 'this output'}: the faces of {len(missing)} video(s) have no "
                          f"quality columns (written by a ferbatch before 'face_px', 'sharpness', …): "
                          f"{', '.join(missing[:5])}{' …' if len(missing) > 5 else ''}; run them "
                          "again to use --min-quality")
    return thresholds.ok(faces)


def keep_rows(timed: pd.DataFrame, keep: np.ndarray) -> pd.DataFrame:
    """The rows of ``timed`` (sorted, with ``track_run`` and ``weight_s``) where ``keep``, with
    a new track run after every excluded stretch (so smoothing and episodes restart there)."""
    idx = np.flatnonzero(keep)
    out = timed.iloc[idx].reset_index(drop=True)
    if len(idx):
        run = timed[TRACK_RUN].to_numpy()[idx]
        new = np.ones(len(idx), bool)
        new[1:] = (run[1:] != run[:-1]) | (np.diff(idx) > 1)
        out[TRACK_RUN] = np.cumsum(new) - 1
    return out


def quality_png(quality: pd.DataFrame, face_ids: list[int], t_end: float | None,
                thresholds: QualityThresholds | None) -> bytes:
    """Quality over time, one panel per face: ``|yaw|`` and ``|pitch|`` (degrees, left axis),
    ``face_px`` (right axis), and a red band where a row fails ``thresholds``."""
    from matplotlib.figure import Figure

    from .plots import _png, _series

    n = max(1, len(face_ids))
    fig = Figure(figsize=(11, 0.6 + 1.4 * n), dpi=90, layout="constrained")
    axes = fig.subplots(n, 1, sharex=True, squeeze=False)[:, 0]
    x_max = t_end if t_end and np.isfinite(t_end) else None
    for ax, fid in zip(axes, face_ids):
        face = quality[quality["face_id"] == fid]
        if not len(face):
            continue
        t, y = _series(face.assign(ayaw=face["yaw"].abs(), apitch=face["pitch"].abs()),
                       ["ayaw", "apitch", "face_px"])
        ax.plot(t, y[:, 0], color="#1f77b4", linewidth=1.2, label="|yaw| °")
        ax.plot(t, y[:, 1], color="#9467bd", linewidth=1.2, label="|pitch| °")
        ax.set_ylim(0, 90)
        ax.set_ylabel(f"face {fid}")
        right = ax.twinx()
        right.plot(t, y[:, 2], color="#555555", linewidth=1.0, linestyle="--", label="face px")
        right.set_ylim(0, max(1.0, float(np.nanmax(face["face_px"])) * 1.1))
        if thresholds is not None and KEPT in face:
            ts = face["timestamp_s"].to_numpy(float)
            w = face["weight_s"].to_numpy(float)
            for t0, dt, kept in zip(ts, w, face[KEPT].to_numpy(bool)):
                if not kept:
                    ax.axvspan(t0, t0 + dt, color="#d62728", alpha=0.18, linewidth=0)
        ax.grid(True, alpha=0.25, linewidth=0.6)
        end = float(face["timestamp_s"].max() + face["weight_s"].iloc[-1])
        x_max = max(x_max or 0.0, end)
        if ax is axes[0]:
            handles = ax.get_legend_handles_labels()[0] + right.get_legend_handles_labels()[0]
            fig.legend(handles, [h.get_label() for h in handles], loc="outside upper center",
                       ncol=3, frameon=False)
    if x_max:
        axes[0].set_xlim(0, x_max)
    axes[-1].set_xlabel("time (s)")
    return _png(fig)
