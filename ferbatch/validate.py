"""Validation of an output against the user's own annotations (``ferbatch validate``).

The annotations are a CSV ``video,start_s,end_s,label[,face_id]``: ``video`` is the file name,
the path or the ``video_id`` of a video of the output; ``label`` is matched through the
trainer's aliases (:func:`ferbatch.train.labels.canonical_label`: ``anger`` → ``angry``, …);
``face_id`` (optional, may be empty) restricts a segment to one face, else every face counts.

Per segment: the face-time-weighted mean probability of each class over the segment's face
rows (``weight_s``, :mod:`ferbatch.report.smoothing`) and its top label. Then accuracy, macro-F1
and a confusion matrix (:mod:`ferbatch.train.metrics`) over segments (one vote each, segments
without face rows left out and counted) and over frames (every face row of a segment, its top
label), for four variants: raw or smoothed probabilities × all rows or only rows passing the
quality thresholds (:mod:`ferbatch.report.quality`).
"""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from .errors import ConfigError, DataError
from .output.read import Results
from .output.schema import prob_column
from .report.defaults import DEFAULT_MAX_GAP_S, DEFAULT_WINDOW_S
from .train.labels import canonical_label
from .train.metrics import classification_report, confusion_matrix

log = logging.getLogger(__name__)

__all__ = ["read_annotations", "match_video", "validate", "Validation", "to_markdown"]

REQUIRED = ("video", "start_s", "end_s", "label")


def read_annotations(path: str | os.PathLike[str]) -> pd.DataFrame:
    """The segments of an annotations CSV, labels canonical, ``face_id`` nullable Int64.

    Raises :class:`DataError` naming the file (and the row, counted as in a spreadsheet with
    the header on row 1) for a missing file, missing columns, non-numeric or empty times,
    ``end_s <= start_s``, a bad ``face_id`` or an empty label.
    """
    file = Path(path)
    if not file.is_file():
        raise DataError(f"{file}: annotations file not found")
    try:
        df = pd.read_csv(file, dtype=str, keep_default_na=False, skipinitialspace=True)
    except Exception as exc:  # noqa: BLE001 - pandas raises many kinds
        raise DataError(f"{file}: cannot read as CSV: {exc}") from exc
    df.columns = [c.strip().lower() for c in df.columns]
    missing = [c for c in REQUIRED if c not in df.columns]
    if missing:
        raise DataError(f"{file}: missing column(s) {missing}; expected video,start_s,end_s,label[,face_id]")
    if df.empty:
        raise DataError(f"{file}: no segments")
    out = pd.DataFrame({"video": df["video"].str.strip()})
    for col in ("start_s", "end_s"):
        values = pd.to_numeric(df[col].str.strip(), errors="coerce")
        bad = values.isna() | ~np.isfinite(values.to_numpy(float))
        if bad.any():
            row = int(np.flatnonzero(bad.to_numpy())[0])
            raise DataError(f"{file}: row {row + 2}: {col} {df[col].iat[row]!r} is not a number of seconds")
        out[col] = values.astype(float)
    wrong = out["end_s"] <= out["start_s"]
    if wrong.any():
        row = int(np.flatnonzero(wrong.to_numpy())[0])
        raise DataError(f"{file}: row {row + 2}: end_s must be after start_s")
    labels = df["label"].str.strip()
    if (labels == "").any():
        raise DataError(f"{file}: row {int(np.flatnonzero((labels == '').to_numpy())[0]) + 2}: empty label")
    out["label"] = labels.map(canonical_label)
    if (out["video"] == "").any():
        raise DataError(f"{file}: row {int(np.flatnonzero((out['video'] == '').to_numpy())[0]) + 2}: empty video")
    faces = df["face_id"].str.strip() if "face_id" in df else pd.Series([""] * len(df))
    ids = pd.to_numeric(faces.replace("", np.nan), errors="coerce")
    bad = faces.ne("") & (ids.isna() | (ids % 1 != 0))
    if bad.any():
        row = int(np.flatnonzero(bad.to_numpy())[0])
        raise DataError(f"{file}: row {row + 2}: face_id {faces.iat[row]!r} is not an integer")
    out["face_id"] = ids.astype("Int64")
    return out


def match_video(name: str, videos: pd.DataFrame) -> str | None:
    """The ``video_id`` of the output video that ``name`` designates: its ``video_id``, its
    path (absolute, or relative to the working folder), or its file name. ``None`` when none
    matches; :class:`ConfigError` when a file name matches several videos."""
    ids = videos["video_id"].astype(str)
    if name in set(ids):
        return name
    paths = videos["path"].astype(str)
    absolute = os.path.abspath(name)
    hit = ids[paths == absolute]
    if len(hit):
        return str(hit.iat[0])
    base = paths.map(lambda p: Path(p).name)
    hit = ids[(base == Path(name).name) | (base == name)]
    if len(hit) > 1:
        raise ConfigError(f"annotations video {name!r} matches {len(hit)} videos of the output "
                          f"({', '.join(hit.tolist()[:5])}); give its path or video_id")
    return str(hit.iat[0]) if len(hit) else None


@dataclass
class Validation:
    """What :func:`validate` found: ``segments`` (one row per annotation segment: matched
    ``video_id``, ``rows``, the predicted distribution ``pred_<label>`` and ``predicted`` top
    label, per variant), ``metrics`` (variant → {"segments": report, "frames": report}, each a
    :func:`~ferbatch.train.metrics.classification_report` plus ``covered`` / ``total``),
    ``labels`` (the label order of the confusion matrices), ``unmatched`` (annotation videos
    found in no output video) and ``unknown_labels`` (annotation labels not in the model's set)."""

    segments: pd.DataFrame
    metrics: dict[str, dict[str, dict[str, Any]]]
    labels: list[str]
    unmatched: list[str] = field(default_factory=list)
    unknown_labels: list[str] = field(default_factory=list)
    settings: dict[str, Any] = field(default_factory=dict)


VARIANTS = {  # name → (smoothed?, quality-filtered?)
    "raw": (False, False),
    "smoothed": (True, False),
    "raw+quality": (False, True),
    "smoothed+quality": (True, True),
}


def _timelines(results: Results, window_s: float, max_gap_s: float,
               thresholds: Any) -> dict[str, pd.DataFrame | None]:
    """The faces table timed and smoothed, per variant (None: the output has no quality)."""
    from .report.quality import KEPT, has_quality, keep_rows, quality_mask
    from .report.smoothing import add_timing, sampling_intervals, smooth, video_ends

    labels = list(results.labels)
    intervals = sampling_intervals(results.frames, results.videos, results.faces)
    ends = video_ends(results.videos, results.frames)
    timed = add_timing(results.faces, intervals, max_gap_s, ends)
    quality_ok = has_quality(results.faces) and len(timed)
    kept = None
    if quality_ok:
        keep = quality_mask(timed, thresholds)
        timed[KEPT] = keep
        kept = keep_rows(timed, keep)
    out: dict[str, pd.DataFrame | None] = {}
    for name, (smoothed, filtered) in VARIANTS.items():
        rows = kept if filtered else timed
        if rows is None:
            out[name] = None
            continue
        tl = smooth(rows, labels, method="ema" if smoothed else "none", window_s=window_s,
                    max_gap_s=max_gap_s)
        tl["video_id"] = tl["video_id"].astype(str)  # once, not per segment
        out[name] = tl
    return out


def _segment_rows(tl: pd.DataFrame, seg: Any) -> pd.DataFrame:
    sel = (tl["video_id"] == seg.video_id) & (tl["timestamp_s"] >= seg.start_s) & \
        (tl["timestamp_s"] < seg.end_s)
    if not pd.isna(seg.face_id):
        sel &= tl["face_id"] == int(seg.face_id)
    return tl[sel]


def _report(truth: list[str], pred: list[str], labels: list[str], total: int) -> dict[str, Any]:
    index = {lb: i for i, lb in enumerate(labels)}
    cm = confusion_matrix([index[t] for t in truth], [index[p] for p in pred], len(labels))
    rep = classification_report(cm, labels)
    rep.update(covered=len(truth), total=total)
    return rep


def validate(results: Results, annotations: pd.DataFrame, *, window_s: float = DEFAULT_WINDOW_S,
             max_gap_s: float = DEFAULT_MAX_GAP_S, thresholds: Any = None) -> Validation:
    """Compare ``results`` with annotation segments (:func:`read_annotations`).

    ``window_s``: the exponential smoothing's time constant (s) of the smoothed variants;
    ``thresholds``: the :class:`~ferbatch.quality.QualityThresholds` of the quality-filtered
    variants (default: those in the output's ``_ferbatch.json``). Raises :class:`ConfigError`
    when no annotation video is in the output.
    """
    from .report.quality import resolve_min_quality

    if thresholds is None:
        thresholds = resolve_min_quality("ok", results.meta)
    model_labels = list(results.labels)
    seg = annotations.copy()
    seg["video_id"] = [match_video(v, results.videos) for v in seg["video"]]
    unmatched = sorted(set(seg.loc[seg["video_id"].isna(), "video"]))
    if unmatched:
        log.warning("annotations: %d video(s) not in the output, their segments skipped: %s",
                    len(unmatched), ", ".join(unmatched[:5]))
    seg = seg[seg["video_id"].notna()].reset_index(drop=True)
    if seg.empty:
        raise ConfigError(f"no annotated video is in the output (looked for {', '.join(unmatched[:5])})")
    unknown = sorted(set(seg["label"]) - set(model_labels))
    labels = model_labels + unknown  # an unknown label can only be missed, never predicted
    timelines = _timelines(results, window_s, max_gap_s, thresholds)
    metrics: dict[str, dict[str, dict[str, Any]]] = {}
    for name, tl in timelines.items():
        if tl is None:
            continue
        smoothed = VARIANTS[name][0]
        cols = [f"s_{lb}" for lb in model_labels] if smoothed else [prob_column(lb) for lb in model_labels]
        top_col = "s_emotion" if smoothed else "emotion"
        preds, n_rows = [], []
        seg_truth, seg_pred, fr_truth, fr_pred = [], [], [], []
        for s in seg.itertuples():
            rows = _segment_rows(tl, s)
            n_rows.append(len(rows))
            if not len(rows):
                preds.append((np.full(len(model_labels), np.nan), None))
                continue
            w = rows["weight_s"].to_numpy(float)
            dist = (rows[cols].to_numpy(float) * w[:, None]).sum(0) / max(w.sum(), 1e-12)
            top = model_labels[int(dist.argmax())]
            preds.append((dist, top))
            seg_truth.append(s.label)
            seg_pred.append(top)
            fr_truth += [s.label] * len(rows)
            fr_pred += rows[top_col].astype(str).tolist()
        seg[f"{name}:rows"] = n_rows
        seg[f"{name}:predicted"] = pd.Series([p for _, p in preds], index=seg.index, dtype=object)
        for j, lb in enumerate(model_labels):
            seg[f"{name}:pred_{lb}"] = [d[j] for d, _ in preds]
        total_frames = int(sum(n_rows))
        metrics[name] = {"segments": _report(seg_truth, seg_pred, labels, len(seg)),
                         "frames": _report(fr_truth, fr_pred, labels, total_frames)}
    settings = {"window_s": window_s, "max_gap_s": max_gap_s, "thresholds": thresholds.to_dict()}
    return Validation(seg, metrics, labels, unmatched, unknown, settings)


def _pct(x: float) -> str:
    return f"{100 * x:.1f} %"


def to_markdown(v: Validation) -> str:
    """A Markdown summary: metrics per variant, confusion matrices, the segments table."""
    lines = ["# ferbatch validation", ""]
    t = ", ".join(f"{k}={x:g}" for k, x in v.settings["thresholds"].items() if x is not None)
    lines += [f"Smoothing: exponential, time constant {v.settings['window_s']:g} s. Quality filter: {t}.", ""]
    if v.unmatched:
        lines += [f"Annotation videos not in the output (skipped): {', '.join(v.unmatched)}", ""]
    if v.unknown_labels:
        lines += [f"Annotation labels the model does not have (always wrong): {', '.join(v.unknown_labels)}", ""]
    lines += ["| variant | unit | covered | accuracy | macro-F1 |", "|---|---|---|---|---|"]
    for name, per in v.metrics.items():
        for unit, rep in per.items():
            lines.append(f"| {name} | {unit} | {rep['covered']}/{rep['total']} | {_pct(rep['accuracy'])} "
                         f"| {_pct(rep['macro_f1'])} |")
    lines.append("")
    for name, per in v.metrics.items():
        for unit, rep in per.items():
            lines += [f"## Confusion over {unit}, {name} (rows: annotated, columns: predicted)", "",
                      "| | " + " | ".join(v.labels) + " |", "|---" * (len(v.labels) + 1) + "|"]
            for lb, row in zip(v.labels, rep["confusion_matrix"]):
                lines.append(f"| **{lb}** | " + " | ".join(str(c) for c in row) + " |")
            lines.append("")
    lines += ["## Segments", "", "| video | start (s) | end (s) | face | annotated | rows | "
              + " | ".join(f"{n}" for n in v.metrics) + " |",
              "|---" * (6 + len(v.metrics)) + "|"]
    for s in v.segments.to_dict("records"):
        face = "" if pd.isna(s["face_id"]) else str(int(s["face_id"]))
        first = next(iter(v.metrics), None)
        rows = s.get(f"{first}:rows", 0) if first else 0
        preds = " | ".join(str(s[f"{n}:predicted"] or "—") for n in v.metrics)
        lines.append(f"| {s['video']} | {s['start_s']:g} | {s['end_s']:g} | {face} | {s['label']} "
                     f"| {rows} | {preds} |")
    return "\n".join(lines) + "\n"


def to_html(v: Validation) -> str:
    """The same summary as :func:`to_markdown` as one static HTML page (the report's Jinja2
    templates and CSS; every text from the data escaped)."""
    from .report.html import environment

    t = ", ".join(f"{k}={x:g}" for k, x in v.settings["thresholds"].items() if x is not None)
    first = next(iter(v.metrics), None)
    page = {
        "title": "ferbatch validation",
        "note": f"Smoothing: exponential, time constant {v.settings['window_s']:g} s. Quality filter: {t}.",
        "unmatched": v.unmatched, "unknown": v.unknown_labels, "labels": v.labels,
        "variants": list(v.metrics),
        "metrics": [{"variant": n, "unit": u, "covered": f"{r['covered']}/{r['total']}",
                     "accuracy": _pct(r["accuracy"]), "macro_f1": _pct(r["macro_f1"])}
                    for n, per in v.metrics.items() for u, r in per.items()],
        "confusions": [{"variant": n, "unit": u, "rows": list(zip(v.labels, r["confusion_matrix"]))}
                       for n, per in v.metrics.items() for u, r in per.items()],
        "segments": [{"video": s["video"], "start": f"{s['start_s']:g}", "end": f"{s['end_s']:g}",
                      "face": "" if pd.isna(s["face_id"]) else int(s["face_id"]), "label": s["label"],
                      "rows": s.get(f"{first}:rows", 0) if first else 0,
                      "preds": [s[f"{n}:predicted"] or "—" for n in v.metrics]}
                     for s in v.segments.to_dict("records")],
    }
    return environment().get_template("validation.html").render(page=page)
