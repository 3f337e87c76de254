"""The view model of one video's page (:class:`~.view.VideoPage`), charts and thumbnails included.

The PNG charts are drawn and the thumbnails are cut from the source video here, while the view
model is built; rendering the page afterwards reads nothing but the model.
"""

from __future__ import annotations

import base64
import logging
import math
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from ..output.read import Results
from ..output.schema import LANDMARK_COLUMNS, STATUS_FAILED, prob_column
from .formatting import duration, fixed, num, percent, plain_value, text
from .graphics import shares_bar
from .heatmaps import ReportExplainer
from .plots import shares_png, timeline_png
from .summary import Summary
from .thumbnails import Explainer, ThumbRequest, ThumbResult, extract_thumbnails
from .view import (
    Card,
    Cell,
    Chart,
    Column,
    FaceThumbs,
    Table,
    Thumb,
    VideoPage,
    chip,
    num_cell,
    status_cell,
    video_shares,
)

log = logging.getLogger(__name__)

__all__ = ["video_page", "MAX_FACES_PER_PAGE", "MAX_EPISODE_ROWS"]

MAX_FACES_PER_PAGE = 8  # timeline panels and thumbnail rows: the faces seen longest
MAX_EPISODE_ROWS = 500  # per page; episodes.parquet has them all
THUMBNAILS_DISABLED = "thumbnails disabled"

META_FIELDS = [
    ("path", "Path"), ("status", "Status"), ("error", "Error"), ("duration_s", "Duration (s)"),
    ("fps", "FPS"), ("width", "Width"), ("height", "Height"), ("rotation", "Rotation"),
    ("codec", "Codec"), ("frames_decoded", "Frames decoded"), ("frames_analyzed", "Frames analysed"),
    ("faces_detected", "Faces detected"), ("tracks", "Tracks"), ("sampling", "Sampling"),
    ("model", "Model"), ("detector", "Detector"), ("processing_s", "Processing (s)"),
    ("finished_at", "Finished"),
]

EPISODE_COLUMNS = [
    Column("face", "Face", "num", "num"),
    Column("emotion", "Emotion", "chip", "text"),
    Column("start", "Start (s)", "num", "num"),
    Column("end", "End (s)", "num", "num"),
    Column("duration", "Duration (s)", "num", "num"),
    Column("mean", "Mean confidence", "num", "num"),
    Column("peak", "Peak", "num", "num"),
]

FACE_COLUMNS = [
    Column("face", "Face", "num", "num"),
    Column("first", "First seen (s)", "num", "num"),
    Column("last", "Last seen (s)", "num", "num"),
    Column("seen", "Seen (s)", "num", "num"),
    Column("dominant", "Dominant", "chip", "text"),
    Column("shares", "Shares", "graphic"),
    Column("episodes", "Episodes", "num", "num"),
]


def data_uri(mime: str, data: bytes) -> str:
    """``data:`` URI of ``data``, so the pages need no files beside them."""
    return f"data:{mime};base64,{base64.b64encode(data).decode('ascii')}"


def _seconds(value: float) -> Cell:
    return Cell(f"{value:.2f}", value)


#: Decimals shown of the fractional metadata (trailing zeros dropped: 29.97 FPS, 25 FPS).
META_DECIMALS = {"fps": 3, "duration_s": 3, "processing_s": 2}


def _meta_text(key: str, value: Any) -> str:
    v = plain_value(value)
    if key in META_DECIMALS and isinstance(v, (float, np.floating)) and math.isfinite(v):
        return f"{v:.{META_DECIMALS[key]}f}".rstrip("0").rstrip(".")
    return text(v)


def _meta(vrow: pd.Series) -> list[tuple[str, str]]:
    return [(name, _meta_text(key, vrow.get(key))) for key, name in META_FIELDS
            if key in vrow and text(vrow.get(key)) != ""]


def _cards(srow: pd.Series) -> list[Card]:
    excluded = ([Card("excluded (low quality)", Cell(duration(srow["excluded_face_seconds"])))]
                if "excluded_face_seconds" in srow else [])
    return excluded + [
        Card("status", status_cell(srow["status"]), "status"),
        Card("frames with a face", Cell(percent(srow["face_frame_share"]))),
        Card("faces", Cell(fixed(srow["face_ids"], ".0f"))),
        Card("face-time", Cell(duration(srow["face_seconds"]))),
        Card("dominant", chip(srow["dominant_emotion"]), "chip"),
        Card("episodes", Cell(fixed(srow["episodes"], ".0f"))),
        Card("mean episode", Cell(duration(srow["mean_episode_s"]))),
    ]


def _charts(srow: pd.Series, fsum: pd.DataFrame, tl: pd.DataFrame, labels: list[str],
            face_ids: list[int], eps: pd.DataFrame) -> dict[str, Chart]:
    share_rows = [("all faces", video_shares(srow, labels))] + [
        (f"face {int(r['face_id'])}", video_shares(r, labels))
        for _, r in fsum.head(MAX_FACES_PER_PAGE).iterrows()]
    png = timeline_png(tl[tl["face_id"].isin(face_ids)], labels, face_ids=face_ids,
                       t_end=num(srow["duration_s"]), episodes=eps)
    return {
        "shares": Chart("shares", data_uri("image/png", shares_png(share_rows, labels)),
                        "emotion share of face-time, all faces and per face"),
        "timeline": Chart("timeline", data_uri("image/png", png),
                          "emotion probabilities over time per face"),
    }


def _timeline_note(settings: dict[str, Any], shown: int, total: int) -> str:
    if settings.get("smooth") == "none":
        lines = "raw per-frame probabilities only"
    else:
        lines = (f"thick lines: {text(settings.get('smooth'))} smoothing over "
                 f"{fixed(settings.get('window_s'), 'g')} s; faint lines: raw per-frame probabilities")
    more = f" Showing the {shown} faces seen longest of {total}." if total > shown else ""
    return f"{lines}; the band on top of each panel marks episodes.{more}"


def _episodes(eps: pd.DataFrame, settings: dict[str, Any]) -> tuple[Table | None, str]:
    """The episodes table (None when there is none) and the note under it."""
    if not len(eps):
        return None, f"No episode of at least {fixed(settings.get('min_episode_s'), 'g')} s."
    table = Table("episodes", EPISODE_COLUMNS)
    for e in eps.sort_values(["start_s", "face_id"]).head(MAX_EPISODE_ROWS).itertuples():
        peak = f"{fixed(e.peak_confidence, '.2f')} @ {fixed(e.peak_s, '.2f')} s"
        table.add(face=Cell(str(int(e.face_id)), int(e.face_id)), emotion=chip(e.emotion, text(e.emotion)),
                  start=_seconds(e.start_s), end=_seconds(e.end_s), duration=_seconds(e.duration_s),
                  mean=num_cell(e.mean_confidence, fixed(e.mean_confidence, ".2f")),
                  peak=num_cell(e.peak_confidence, peak))
    note = (f"First {MAX_EPISODE_ROWS} of {len(eps)} episodes; all are in episodes.parquet."
            if len(eps) > MAX_EPISODE_ROWS else "")
    return table, note


def _faces_table(fsum: pd.DataFrame, labels: list[str]) -> Table:
    table = Table("faces", FACE_COLUMNS)
    for _, f in fsum.iterrows():
        table.add(face=Cell(str(int(f["face_id"])), int(f["face_id"])),
                  first=_seconds(f["first_seen_s"]), last=_seconds(f["last_seen_s"]),
                  seen=_seconds(f["seen_s"]),
                  dominant=chip(f["dominant_emotion"], text(f["dominant_emotion"])),
                  shares=Cell(graphic=shares_bar(video_shares(f, labels), labels, 160)),
                  episodes=Cell(str(int(f["episodes"])), int(f["episodes"])))
    return table


def _quality_chart(page: VideoPage, summary: Summary, vid: str, face_ids: list[int],
                   srow: pd.Series) -> None:
    """The quality-over-time chart and its note, when the output has quality columns."""
    from ..quality import QualityThresholds
    from .quality import quality_png

    q = summary.quality
    if q is None:
        return
    rows = q[q["video_id"].astype(str) == vid]
    rows = rows[rows["face_id"].isin(face_ids)]
    if not len(rows):
        return
    limits = summary.settings.get("min_quality")
    thresholds = QualityThresholds.from_dict(limits) if limits else None
    png = quality_png(rows, face_ids, num(srow["duration_s"]), thresholds)
    page.charts["quality"] = Chart("quality", data_uri("image/png", png),
                                   "face quality over time per face: head pose and face size")
    note = "Head pose |yaw| and |pitch| in degrees (left axis) and face size in pixels (dashed, right axis)."
    if thresholds is not None:
        set_ = ", ".join(f"{k}={v:g}" for k, v in limits.items() if v is not None)
        note += (f" Red: rows left out by --min-quality ({set_}): "
                 f"{duration(srow['excluded_face_seconds'])} of face-time in "
                 f"{int(srow['excluded_rows'])} rows, not counted in shares, episodes or thumbnails.")
    page.quality_note = note


def video_path(path: Any, out: Path) -> Path:
    """The source video of a row: as written; a relative path that does not exist from here is
    also tried against the output folder's parent and the folder itself."""
    p = Path(text(path))
    if p.is_absolute() or p.exists() or not text(path):
        return p
    for base in (out.parent, out):
        if (base / p).exists():
            return base / p
    return p


def thumb_requests(tl: pd.DataFrame, labels: list[str], face_ids: list[int]) -> list[ThumbRequest]:
    """Most confident moment per (face, emotion): the row with the highest raw probability of
    the emotion among the face's rows whose raw top label is that emotion."""
    reqs = []
    for fid in face_ids:
        face = tl[tl["face_id"] == fid]
        for label in labels:
            rows = face[face["emotion"].astype(object) == label]
            if not len(rows):
                continue
            r = rows.loc[rows[prob_column(label)].idxmax()]
            marks = tuple(float(r[c]) for c in LANDMARK_COLUMNS) if all(c in r for c in LANDMARK_COLUMNS) else None
            if marks is not None and not all(np.isfinite(marks)):
                marks = None
            reqs.append(ThumbRequest((int(fid), label, float(r[prob_column(label)])), float(r["timestamp_s"]),
                                     (float(r["x1"]), float(r["y1"]), float(r["x2"]), float(r["y2"])),
                                     marks))
    return reqs


def _cut(reqs: list[ThumbRequest], vrow: pd.Series, source: Path,
         explainer: Explainer | None = None) -> dict[tuple, ThumbResult]:
    size = tuple(int(s) if pd.notna(s) else None for s in (vrow.get("width"), vrow.get("height")))
    rotation = vrow.get("rotation")
    return extract_thumbnails(source, reqs, size=size,
                              rotation=int(rotation) if pd.notna(rotation) else None,
                              explainer=explainer)


def _thumbnails(reqs: list[ThumbRequest], got: dict[tuple, ThumbResult], face_ids: list[int]) -> list[FaceThumbs]:
    out = []
    for fid in face_ids:
        thumbs = []
        for req in (q for q in reqs if q.key[0] == fid):
            _, label, p = req.key
            res = got.get(req.key) or ThumbResult(None, THUMBNAILS_DISABLED)
            src = data_uri("image/jpeg", res.jpeg) if res.jpeg else None
            heat = data_uri("image/jpeg", res.heat_jpeg) if res.heat_jpeg else None
            thumbs.append(Thumb(chip(label), f"{p:.2f} @ {req.timestamp_s:.2f} s",
                                f"face {fid}, {label} at {req.timestamp_s:.2f} s", src,
                                None if src else text(res.error), heat))
        if thumbs:
            out.append(FaceThumbs(fid, thumbs))
    return out


def video_page(vid: str, summary: Summary, results: Results, tl: pd.DataFrame, *, thumbnails: bool,
               explainers: ReportExplainer | None = None) -> VideoPage:
    """The page of video ``vid``; ``tl``: its rows of the summary's timeline. ``thumbnails``:
    cut face thumbnails from the source video (else placeholders say they are disabled).
    ``explainers``: also overlay each thumbnail's Grad-CAM map (:mod:`.heatmaps`)."""
    labels, st = summary.labels, summary.settings
    srow = summary.videos[summary.videos["video_id"] == vid].iloc[0]
    vrow = results.videos[results.videos["video_id"].astype(str) == vid].iloc[0]
    failed = srow["status"] == STATUS_FAILED
    error = text(srow["error"])
    page = VideoPage(vid, f"{vid} · ferbatch report", text(srow["path"]), error if failed or error else None,
                     _cards(srow), _meta(vrow), failed=failed)
    if not len(tl):
        return page
    fsum = summary.faces[summary.faces["video_id"].astype(str) == vid].sort_values("seen_s", ascending=False)
    face_ids = [int(f) for f in fsum["face_id"].tolist()[:MAX_FACES_PER_PAGE]]
    eps = summary.episodes[summary.episodes["video_id"].astype(str) == vid]
    page.has_faces = True
    page.charts = _charts(srow, fsum, tl, labels, face_ids, eps)
    page.timeline_note = _timeline_note(st, len(face_ids), len(fsum))
    _quality_chart(page, summary, vid, face_ids, srow)
    page.n_episodes = len(eps)
    page.episodes, page.episodes_note = _episodes(eps, st)
    page.faces = _faces_table(fsum, labels)
    reqs = thumb_requests(tl, labels, face_ids)
    explainer = None
    if thumbnails and explainers is not None:
        explainer, page.heat_note = explainers.for_model(text(vrow.get("model")))
    got = _cut(reqs, vrow, video_path(srow["path"], Path(results.out)), explainer) if thumbnails else {}
    page.thumbs = _thumbnails(reqs, got, face_ids)
    return page
