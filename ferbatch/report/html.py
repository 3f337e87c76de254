"""Static HTML report: ``report/index.html`` plus one ``report/<video_id>.html`` per video.

Static files only, readable offline: CSS and a few lines of vanilla JS (table sorting) are
inline, charts are PNGs and thumbnails JPEGs embedded as ``data:`` URIs, sparklines are inline
SVG. Every piece of text from the data (paths, errors, ids, labels) goes through
:func:`html.escape`.
"""

from __future__ import annotations

import base64
import html
import logging
import math
import re
import urllib.parse
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from ..load import Results
from .palette import color_for, valence_of
from .plots import shares_png, timeline_png
from .smoothing import smooth_column
from .summary import Summary, atomic_write, share_column
from .thumbnails import ThumbRequest, ThumbResult, extract_thumbnails

log = logging.getLogger(__name__)

__all__ = ["write_html", "page_name", "sparkline_svg", "MAX_FACES_PER_PAGE"]

MAX_FACES_PER_PAGE = 8  # timeline panels and thumbnail rows: the faces seen longest
MAX_EPISODE_ROWS = 500  # per page; episodes.parquet has them all

_CSS = """
:root { color-scheme: light; --fg:#1d2330; --muted:#5b6475; --line:#dfe3ea; --bg:#ffffff; --head:#f4f6f9; }
* { box-sizing: border-box; }
body { font: 14px/1.45 system-ui, -apple-system, "Segoe UI", Roboto, sans-serif; color: var(--fg);
       background: var(--bg); margin: 0 auto; padding: 18px 26px 40px; max-width: 1240px; }
h1 { font-size: 22px; margin: 4px 0 6px; } h2 { font-size: 17px; margin: 26px 0 8px; }
.muted { color: var(--muted); } a { color: #1a5fb4; text-decoration: none; } a:hover { text-decoration: underline; }
table { border-collapse: collapse; width: 100%; margin: 6px 0 12px; }
th, td { border-bottom: 1px solid var(--line); padding: 5px 8px; text-align: left; vertical-align: middle; }
th { background: var(--head); font-weight: 600; font-size: 13px; }
.wrap { overflow-x: auto; }
th[data-sort] { cursor: pointer; user-select: none; }
th[data-sort]::after { content: "\\00a0\\2195"; color: #9aa3b2; font-weight: 400; }
th[data-dir="asc"]::after { content: "\\00a0\\2191"; color: var(--fg); }
th[data-dir="desc"]::after { content: "\\00a0\\2193"; color: var(--fg); }
td.errcell { min-width: 150px; max-width: 300px; }
td.errcell .err { font-size: 11px; }
td.num { text-align: right; font-variant-numeric: tabular-nums; white-space: nowrap; }
tr.failed td { background: #fff4f4; } tr.partial td { background: #fffbea; }
.chip { display: inline-block; padding: 1px 8px; border-radius: 10px; color: #fff; font-size: 12px; white-space: nowrap; }
.status { font-size: 12px; padding: 1px 7px; border-radius: 4px; border: 1px solid var(--line); }
.status.ok { background: #e9f7ef; } .status.partial { background: #fff3cd; } .status.failed { background: #fde2e1; }
.err { color: #a61b1b; font-family: ui-monospace, monospace; font-size: 12px; word-break: break-word; }
.cards { display: flex; flex-wrap: wrap; gap: 10px; margin: 10px 0; }
.card { border: 1px solid var(--line); border-radius: 8px; padding: 8px 14px; min-width: 130px; }
.card b { display: block; font-size: 18px; }
dl.meta { display: grid; grid-template-columns: max-content 1fr; gap: 2px 14px; margin: 6px 0; }
dl.meta dt { color: var(--muted); } dl.meta dd { margin: 0; word-break: break-all; }
img.chart { max-width: 100%; height: auto; border: 1px solid var(--line); border-radius: 6px; }
.thumbs { display: flex; flex-wrap: wrap; gap: 10px; margin: 4px 0 14px; }
figure.thumb { margin: 0; text-align: center; font-size: 12px; width: 118px; }
figure.thumb img, .ph { height: 112px; max-width: 118px; border-radius: 6px; border: 3px solid #ccc; object-fit: cover; }
.ph { display: flex; align-items: center; justify-content: center; background: #eef0f4; color: var(--muted);
      font-size: 11px; padding: 4px; width: 112px; margin: 0 auto; overflow: hidden; }
svg.spark { display: block; }
.legend span { margin-right: 10px; white-space: nowrap; }
""".strip()

_SORT_JS = """
document.querySelectorAll("table.sortable th[data-sort]").forEach(function (th) {
  th.addEventListener("click", function () {
    var table = th.closest("table"), body = table.tBodies[0];
    var col = Array.prototype.indexOf.call(th.parentNode.children, th);
    var dir = th.getAttribute("data-dir") === "asc" ? -1 : 1, num = th.getAttribute("data-sort") === "num";
    table.querySelectorAll("th").forEach(function (h) { h.removeAttribute("data-dir"); h.removeAttribute("aria-sort"); });
    th.setAttribute("data-dir", dir === 1 ? "asc" : "desc");
    th.setAttribute("aria-sort", dir === 1 ? "ascending" : "descending");
    var rows = Array.prototype.slice.call(body.rows);
    rows.sort(function (a, b) {
      var x = a.cells[col].getAttribute("data-v"), y = b.cells[col].getAttribute("data-v");
      if (num) {
        x = parseFloat(x); y = parseFloat(y);
        if (isNaN(x) || isNaN(y)) { return isNaN(x) - isNaN(y); }
        return (x - y) * dir;
      }
      return String(x).localeCompare(String(y)) * dir;
    });
    rows.forEach(function (r) { body.appendChild(r); });
  });
});
// a link like index.html#sort=3 (or #sort=-3, descending) opens the page sorted by column 3
(function () {
  var m = /sort=(-?)([0-9]+)/.exec(location.hash), th;
  if (!m) { return; }
  th = document.querySelectorAll("table.sortable")[0].tHead.rows[0].cells[+m[2]];
  if (th && th.hasAttribute("data-sort")) { th.click(); if (m[1]) { th.click(); } }
})();
""".strip()


def esc(value: Any) -> str:
    """HTML-escaped text of a value; missing values (None/NaN) become an empty string."""
    if value is None or (isinstance(value, float) and math.isnan(value)) or value is pd.NA:
        return ""
    return html.escape(str(value), quote=True)


def _short(value: Any, n: int = 90) -> str:
    text = "" if value is None or (isinstance(value, float) and math.isnan(value)) else str(value)
    return text if len(text) <= n else text[: n - 1] + "…"


def _num(value: Any) -> float:
    try:
        v = float(value)
    except (TypeError, ValueError):
        return float("nan")
    return v


def _plain_value(value: Any) -> Any:
    """Whole floats (ints that went through a nullable column) shown without ``.0``."""
    if isinstance(value, (float, np.floating)) and math.isfinite(value) and float(value).is_integer():
        return int(value)
    return value


def _dur(value: Any) -> str:
    """Seconds as ``12.5 s`` below two minutes, else ``h:mm:ss``."""
    v = _num(value)
    if math.isnan(v):
        return "–"
    if v < 120:
        return f"{v:.1f} s"
    h, rem = divmod(int(round(v)), 3600)
    return f"{h}:{rem // 60:02d}:{rem % 60:02d}"


def _fmt(value: Any, spec: str = ".1f", suffix: str = "") -> str:
    v = _num(value)
    return "–" if math.isnan(v) else f"{v:{spec}}{suffix}"


def page_name(video_id: str) -> str:
    """File name of a video's page: ``<video_id>.html`` when that is a safe, non-clashing name."""
    vid = str(video_id)
    if re.fullmatch(r"[A-Za-z0-9][A-Za-z0-9._-]{0,150}", vid) and vid.lower() != "index":
        return f"{vid}.html"
    import hashlib

    safe = re.sub(r"[^A-Za-z0-9._-]+", "_", vid)[:80].strip("._") or "video"
    return f"{safe}-{hashlib.sha1(vid.encode('utf-8')).hexdigest()[:8]}.html"


def _href(name: str) -> str:
    return urllib.parse.quote(name)


def _chip(label: Any) -> str:
    if label is None or (isinstance(label, float) and math.isnan(label)):
        return '<span class="muted">–</span>'
    return f'<span class="chip" style="background:{color_for(str(label))}">{esc(label)}</span>'


def _status(status: Any) -> str:
    s = esc(status) or "unknown"
    return f'<span class="status {s}">{s}</span>'


def _data_uri(mime: str, data: bytes) -> str:
    return f"data:{mime};base64,{base64.b64encode(data).decode('ascii')}"


def _page(title: str, body: str, script: str = "") -> str:
    js = f"<script>\n{script}\n</script>\n" if script else ""
    return (
        "<!DOCTYPE html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n"
        "<meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\n"
        f"<title>{esc(title)}</title>\n<style>\n{_CSS}\n</style>\n</head>\n<body>\n{body}\n{js}</body>\n</html>\n"
    )


def _row_labels(tl: pd.DataFrame, smoothed: bool) -> pd.Series:
    return tl["s_emotion"] if smoothed and "s_emotion" in tl else tl["emotion"]


def sparkline_svg(
    timeline: pd.DataFrame,
    labels: list[str],
    *,
    t_end: float | None = None,
    smoothed: bool = True,
    bins: int = 60,
    width: int = 160,
    height: int = 30,
) -> str:
    """Inline SVG: coloured bands of the dominant emotion per time bin, and a valence line.

    Each bin's colour is the emotion with most face-time in it; the line is the face-time
    weighted mean valence (−1 bottom … +1 top) of the (smoothed) probabilities. Empty bins stay
    blank and break the line.
    """
    if not len(timeline) or not labels or not np.isfinite(timeline["timestamp_s"]).any():
        return ('<svg class="spark" width="%d" height="%d" role="img" aria-label="no faces">'
                '<line x1="0" y1="%g" x2="%d" y2="%g" stroke="#ccc" stroke-dasharray="3,3"/></svg>'
                % (width, height, height / 2, width, height / 2))
    t = timeline["timestamp_s"].to_numpy(float)
    w = timeline["weight_s"].to_numpy(float) if "weight_s" in timeline else np.zeros(len(t))
    end = t_end if t_end and np.isfinite(t_end) and t_end > 0 else float(np.nanmax(t + w))
    end = max(end, float(np.nanmax(t + w)), 1e-6)
    # rasterise each row's interval [t, t + weight) onto a fine grid (sub-bins) with difference
    # arrays, so sparse sampling still paints continuous bands, then sum sub-bins into bins
    sub = 8
    m = bins * sub
    a = np.clip(np.floor(t / end * m).astype(int), 0, m - 1)
    b = np.clip(np.floor((t + w) / end * m).astype(int), a + 1, m)
    codes = pd.Categorical(_row_labels(timeline, smoothed).astype(object), categories=labels).codes
    cols = [smooth_column(lb) if smoothed and smooth_column(lb) in timeline else f"p_{lb}" for lb in labels]
    val = timeline[cols].to_numpy(float) @ np.array([valence_of(lb) for lb in labels])
    ok = codes >= 0
    diff = np.zeros((m + 1, len(labels) + 2))  # per label coverage, valence sum, count
    np.add.at(diff, (a[ok], codes[ok]), 1.0)
    np.add.at(diff, (b[ok], codes[ok]), -1.0)
    for col, v in ((len(labels), np.nan_to_num(val)), (len(labels) + 1, np.ones(len(t)))):
        np.add.at(diff[:, col], a, v)
        np.add.at(diff[:, col], b, -v)
    cover = np.cumsum(diff[:-1], axis=0).reshape(bins, sub, -1).sum(axis=1)
    per = np.clip(cover[:, : len(labels)], 0, None)
    vsum, wsum = cover[:, len(labels)], np.round(cover[:, len(labels) + 1], 9)
    bw = width / bins
    parts = [f'<svg class="spark" width="{width}" height="{height}" viewBox="0 0 {width} {height}" '
             f'role="img" aria-label="dominant emotion and valence over time">']
    dom = np.where(per.sum(axis=1) > 0, np.argmax(per, axis=1), -1)
    b = 0
    while b < bins:  # one rect per run of bins with the same dominant emotion
        e = b
        while e + 1 < bins and dom[e + 1] == dom[b]:
            e += 1
        if dom[b] >= 0:
            label = labels[int(dom[b])]
            parts.append(f'<rect x="{b * bw:.2f}" y="0" width="{(e + 1 - b) * bw:.2f}" height="{height}" '
                         f'fill="{color_for(label)}" fill-opacity="0.55" shape-rendering="crispEdges">'
                         f'<title>{esc(label)} {b * end / bins:.1f}–{(e + 1) * end / bins:.1f} s</title></rect>')
        b = e + 1
    parts.append(f'<line x1="0" y1="{height / 2}" x2="{width}" y2="{height / 2}" stroke="#000" '
                 'stroke-opacity="0.25" stroke-dasharray="2,2"/>')
    run: list[str] = []
    lines = []
    for b in range(bins):
        if wsum[b] > 0:
            v = vsum[b] / wsum[b]
            run.append(f"{(b + 0.5) * bw:.1f},{(1 - (v + 1) / 2) * (height - 4) + 2:.1f}")
        elif run:
            lines.append(run)
            run = []
    if run:
        lines.append(run)
    for pts in lines:
        if len(pts) == 1:
            x, y = pts[0].split(",")
            parts.append(f'<circle cx="{x}" cy="{y}" r="1.5" fill="#222"/>')
        else:
            parts.append(f'<polyline points="{" ".join(pts)}" fill="none" stroke="#222" stroke-width="1.3"/>')
    parts.append("</svg>")
    return "".join(parts)


def _shares_bar_svg(shares: dict[str, float], labels: list[str], width: int = 100, height: int = 12) -> str:
    x = 0.0
    parts = [f'<svg class="spark" width="{width}" height="{height}" role="img" aria-label="emotion shares">']
    for label in labels:
        v = shares.get(label, float("nan"))
        if not v or math.isnan(v):
            continue
        parts.append(f'<rect x="{x:.2f}" y="0" width="{v * width:.2f}" height="{height}" '
                     f'fill="{color_for(label)}"><title>{esc(label)} {v:.0%}</title></rect>')
        x += v * width
    parts.append("</svg>")
    return "".join(parts)


def _video_shares(row: pd.Series, labels: list[str]) -> dict[str, float]:
    return {lb: _num(row.get(share_column(lb))) for lb in labels}


def _legend(labels: list[str]) -> str:
    return '<p class="legend">' + "".join(
        f'<span>{_chip(lb)}</span>' for lb in labels) + "</p>"


def _index_html(summary: Summary, results: Results, timelines: dict[str, pd.DataFrame],
                pages: dict[str, str]) -> str:
    labels = summary.labels
    smoothed = summary.settings.get("smooth", "none") != "none"
    v = summary.videos
    n_fail = int((v["status"] == "failed").sum())
    rows = []
    for _, row in v.iterrows():
        vid = str(row["video_id"])
        status = esc(row["status"])
        spark = sparkline_svg(timelines.get(vid, summary.timeline.iloc[0:0]), labels,
                              t_end=_num(row["duration_s"]), smoothed=smoothed)
        shares = _video_shares(row, labels)
        dom = row["dominant_emotion"]
        dom_v = "" if dom is None or (isinstance(dom, float) and math.isnan(dom)) else str(dom)
        cells = [
            f'<td data-v="{esc(vid)}"><a href="{_href(pages[vid])}" title="{esc(row["path"])}">{esc(vid)}</a>'
            f'<div class="muted" style="font-size:11px">{esc(Path(str(row["path"] or "")).name)}</div></td>',
            f'<td data-v="{status}">{_status(row["status"])}</td>',
            f'<td class="num" data-v="{_num(row["duration_s"])}">{_dur(row["duration_s"])}</td>',
            f'<td class="num" data-v="{_num(row["frames_analyzed"])}">{_fmt(row["frames_analyzed"], ".0f")}</td>',
            f'<td class="num" data-v="{_num(row["face_frame_share"])}">{_fmt(_num(row["face_frame_share"]) * 100, ".0f", " %")}</td>',
            f'<td class="num" data-v="{_num(row["face_ids"])}">{_fmt(row["face_ids"], ".0f")}</td>',
            f'<td data-v="{esc(dom_v)}">{_chip(dom if dom_v else None)}</td>',
            f'<td data-v="{_num(row.get(share_column(dom_v))) if dom_v else "nan"}">{_shares_bar_svg(shares, labels)}</td>',
            f"<td>{spark}</td>",
            f'<td class="num" data-v="{_num(row["episodes"])}">{_fmt(row["episodes"], ".0f")}</td>',
            f'<td class="errcell" data-v="{esc(row["error"])}" title="{esc(row["error"])}">'
            f'<span class="err">{esc(_short(row["error"]))}</span></td>',
        ]
        rows.append(f'<tr class="{status}">' + "".join(cells) + "</tr>")
    head = (
        '<tr><th data-sort="text">Video</th><th data-sort="text">Status</th>'
        '<th data-sort="num">Duration</th><th data-sort="num">Frames</th>'
        '<th data-sort="num" title="share of analysed frames with at least one face">With face</th><th data-sort="num">Faces</th>'
        '<th data-sort="text">Dominant</th><th data-sort="num">Shares</th>'
        '<th title="background: dominant emotion over time; line: mean valence (up = pleasant)">Timeline</th><th data-sort="num">Episodes</th><th data-sort="text">Error</th></tr>'
    )
    failed = v[v["status"] == "failed"]
    failed_html = ""
    if len(failed):
        items = "".join(
            f'<li><a href="{_href(pages[str(r.video_id)])}">{esc(r.video_id)}</a> '
            f'<span class="muted">{esc(r.path)}</span><br><span class="err">{esc(r.error)}</span></li>'
            for r in failed.itertuples())
        failed_html = f'<h2>Failed videos ({len(failed)})</h2><ul class="failed">{items}</ul>'
    st = summary.settings
    model = results.meta.get("model")
    if not model and "model" in results.videos and results.videos["model"].notna().any():
        model = results.videos["model"].dropna().iloc[0]
    body = (
        f"<h1>ferbatch report</h1>"
        f'<p class="muted">{len(v)} videos · {n_fail} failed · model {esc(model) or "–"} · '
        f'labels {esc(", ".join(labels))} · smoothing {esc(st.get("smooth"))} '
        f'({_fmt(st.get("window_s"), "g", " s")}) · episodes ≥ {_fmt(st.get("min_episode_s"), "g", " s")}</p>'
        f"{_legend(labels)}"
        f'<p class="muted">Click a column header to sort. Shares are of face-time (each face row '
        f"weighted by the time it stands for). Timeline: background colour = dominant emotion, "
        f"line = mean valence (up = pleasant).</p>"
        f'<div class="wrap"><table class="sortable" id="videos"><thead>{head}</thead><tbody>{"".join(rows)}</tbody></table></div>'
        f"{failed_html}"
    )
    return _page("ferbatch report", body, _SORT_JS)


def _video_path(path: Any, out: Path) -> Path:
    """The source video of a row: as written; a relative path that does not exist from here is
    also tried against the output folder's parent and the folder itself."""
    p = Path(str(path or ""))
    if p.is_absolute() or p.exists() or not str(path or ""):
        return p
    for base in (out.parent, out):
        if (base / p).exists():
            return base / p
    return p


def _thumb_requests(tl: pd.DataFrame, labels: list[str], face_ids: list[int]) -> list[ThumbRequest]:
    """Most confident moment per (face, emotion): the row with the highest raw ``p_<label>``
    among the face's rows whose raw top label is that emotion."""
    reqs = []
    for fid in face_ids:
        face = tl[tl["face_id"] == fid]
        for label in labels:
            rows = face[face["emotion"].astype(object) == label]
            if not len(rows):
                continue
            r = rows.loc[rows[f"p_{label}"].idxmax()]
            reqs.append(ThumbRequest((int(fid), label, float(r[f"p_{label}"])), float(r["timestamp_s"]),
                                     (float(r["x1"]), float(r["y1"]), float(r["x2"]), float(r["y2"]))))
    return reqs


def _thumbs_html(reqs: list[ThumbRequest], got: dict[tuple, ThumbResult], face_ids: list[int]) -> str:
    out = []
    for fid in face_ids:
        figs = []
        for req in (q for q in reqs if q.key[0] == fid):
            _, label, p = req.key
            res = got.get(req.key) or ThumbResult(None, "thumbnails disabled")
            caption = (f"{_chip(label)}<br>{p:.2f} @ {req.timestamp_s:.2f} s")
            border = color_for(label)
            if res.jpeg:
                img = (f'<img src="{_data_uri("image/jpeg", res.jpeg)}" style="border-color:{border}" '
                       f'alt="face {fid}, {esc(label)} at {req.timestamp_s:.2f} s">')
            else:
                img = (f'<div class="ph" style="border-color:{border}" title="{esc(res.error)}">'
                       f"no image<br>{esc(res.error)}</div>")
            figs.append(f'<figure class="thumb">{img}<figcaption>{caption}</figcaption></figure>')
        if figs:
            out.append(f"<h3>Face {fid}</h3><div class=\"thumbs\">{''.join(figs)}</div>")
    return "".join(out) or '<p class="muted">No faces.</p>'


def _video_html(
    vid: str,
    summary: Summary,
    results: Results,
    tl: pd.DataFrame,
    *,
    thumbnails: bool,
) -> str:
    labels = summary.labels
    st = summary.settings
    srow = summary.videos[summary.videos["video_id"] == vid].iloc[0]
    vrow = results.videos[results.videos["video_id"].astype(str) == vid].iloc[0]
    meta_keys = [("path", "Path"), ("status", "Status"), ("error", "Error"), ("duration_s", "Duration (s)"),
                 ("fps", "FPS"), ("width", "Width"), ("height", "Height"), ("rotation", "Rotation"),
                 ("codec", "Codec"), ("frames_decoded", "Frames decoded"), ("frames_analyzed", "Frames analysed"),
                 ("faces_detected", "Faces detected"), ("tracks", "Tracks"), ("sampling", "Sampling"),
                 ("model", "Model"), ("detector", "Detector"), ("processing_s", "Processing (s)"),
                 ("finished_at", "Finished")]
    meta = "".join(f"<dt>{esc(name)}</dt><dd>{esc(_plain_value(vrow.get(key)))}</dd>" for key, name in meta_keys
                   if key in vrow and esc(vrow.get(key)) != "")
    cards = "".join(f'<div class="card"><span class="muted">{esc(k)}</span><b>{val}</b></div>' for k, val in [
        ("status", _status(srow["status"])),
        ("frames with a face", _fmt(_num(srow["face_frame_share"]) * 100, ".0f", " %")),
        ("faces", _fmt(srow["face_ids"], ".0f")),
        ("face-time", _dur(srow["face_seconds"])),
        ("dominant", _chip(srow["dominant_emotion"] if pd.notna(srow["dominant_emotion"]) else None)),
        ("episodes", _fmt(srow["episodes"], ".0f")),
        ("mean episode", _dur(srow["mean_episode_s"])),
    ])
    parts = [
        '<p><a href="index.html">← all videos</a></p>',
        f"<h1>{esc(vid)}</h1>",
        f'<p class="muted">{esc(srow["path"])}</p>',
    ]
    if srow["status"] == "failed" or esc(srow["error"]):
        parts.append(f'<p class="err">{esc(srow["error"])}</p>')
    parts.append(f'<div class="cards">{cards}</div>')

    fsum = summary.faces[summary.faces["video_id"].astype(str) == vid].sort_values("seen_s", ascending=False)
    face_ids = [int(f) for f in fsum["face_id"].tolist()[:MAX_FACES_PER_PAGE]]
    if len(tl):
        share_rows = [("all faces", _video_shares(srow, labels))] + [
            (f"face {int(r.face_id)}", {lb: _num(getattr(r, share_column(lb))) for lb in labels})
            for r in fsum.head(MAX_FACES_PER_PAGE).itertuples()]
        parts.append("<h2>Emotion share</h2>")
        parts.append(f'<img class="chart" id="shares" src="{_data_uri("image/png", shares_png(share_rows, labels))}" '
                     f'alt="emotion share of face-time, all faces and per face">')
        eps = summary.episodes[summary.episodes["video_id"].astype(str) == vid]
        parts.append("<h2>Emotions over time</h2>")
        smooth_txt = ("raw per-frame probabilities only" if st.get("smooth") == "none" else
                      f"thick lines: {esc(st.get('smooth'))} smoothing over {_fmt(st.get('window_s'), 'g')} s; "
                      "faint lines: raw per-frame probabilities")
        parts.append(f'<p class="muted">{smooth_txt}; the band on top of each panel marks episodes.'
                     + (f" Showing the {len(face_ids)} faces seen longest of {len(fsum)}." if len(fsum) > len(face_ids) else "")
                     + "</p>")
        png = timeline_png(tl[tl["face_id"].isin(face_ids)], labels, face_ids=face_ids,
                           t_end=_num(srow["duration_s"]), episodes=eps)
        parts.append(f'<img class="chart" id="timeline" src="{_data_uri("image/png", png)}" '
                     f'alt="emotion probabilities over time per face">')

        parts.append(f"<h2>Episodes ({len(eps)})</h2>")
        if len(eps):
            erows = "".join(
                f'<tr><td class="num" data-v="{int(e.face_id)}">{int(e.face_id)}</td>'
                f'<td data-v="{esc(e.emotion)}">{_chip(e.emotion)}</td>'
                f'<td class="num" data-v="{e.start_s}">{e.start_s:.2f}</td>'
                f'<td class="num" data-v="{e.end_s}">{e.end_s:.2f}</td>'
                f'<td class="num" data-v="{e.duration_s}">{e.duration_s:.2f}</td>'
                f'<td class="num" data-v="{_num(e.mean_confidence)}">{_fmt(e.mean_confidence, ".2f")}</td>'
                f'<td class="num" data-v="{_num(e.peak_confidence)}">{_fmt(e.peak_confidence, ".2f")} @ {_fmt(e.peak_s, ".2f")} s</td></tr>'
                for e in eps.sort_values(["start_s", "face_id"]).head(MAX_EPISODE_ROWS).itertuples())
            parts.append(
                '<table class="sortable" id="episodes"><thead><tr><th data-sort="num">Face</th>'
                '<th data-sort="text">Emotion</th><th data-sort="num">Start (s)</th><th data-sort="num">End (s)</th>'
                '<th data-sort="num">Duration (s)</th><th data-sort="num">Mean confidence</th>'
                f'<th data-sort="num">Peak</th></tr></thead><tbody>{erows}</tbody></table>')
            if len(eps) > MAX_EPISODE_ROWS:
                parts.append(f'<p class="muted">First {MAX_EPISODE_ROWS} of {len(eps)} episodes; '
                             "all are in episodes.parquet.</p>")
        else:
            parts.append(f'<p class="muted">No episode of at least {_fmt(st.get("min_episode_s"), "g")} s.</p>')

        frows = "".join(
            f'<tr><td class="num" data-v="{int(f.face_id)}">{int(f.face_id)}</td>'
            f'<td class="num" data-v="{f.first_seen_s}">{f.first_seen_s:.2f}</td>'
            f'<td class="num" data-v="{f.last_seen_s}">{f.last_seen_s:.2f}</td>'
            f'<td class="num" data-v="{f.seen_s}">{f.seen_s:.2f}</td>'
            f'<td data-v="{esc(f.dominant_emotion)}">{_chip(f.dominant_emotion if pd.notna(f.dominant_emotion) else None)}</td>'
            f'<td>{_shares_bar_svg({lb: _num(getattr(f, share_column(lb))) for lb in labels}, labels, 160)}</td>'
            f'<td class="num" data-v="{int(f.episodes)}">{int(f.episodes)}</td></tr>'
            for f in fsum.itertuples())
        parts.append(
            f"<h2>Faces ({len(fsum)})</h2>"
            '<table class="sortable" id="faces"><thead><tr><th data-sort="num">Face</th>'
            '<th data-sort="num">First seen (s)</th><th data-sort="num">Last seen (s)</th>'
            '<th data-sort="num">Seen (s)</th><th data-sort="text">Dominant</th><th>Shares</th>'
            f'<th data-sort="num">Episodes</th></tr></thead><tbody>{frows}</tbody></table>')

        parts.append("<h2>Most confident moments</h2>")
        reqs = _thumb_requests(tl, labels, face_ids)
        if thumbnails:
            size = (vrow.get("width"), vrow.get("height"))
            size = tuple(int(s) if pd.notna(s) else None for s in size)
            got = extract_thumbnails(_video_path(srow["path"], results.out), reqs, size=size)
            errors = {r.error for r in got.values() if r.error}
            if errors:
                log.info("%s: %d thumbnail(s) missing: %s", vid, sum(1 for r in got.values() if r.error),
                         "; ".join(sorted(errors))[:300])
        else:
            got = {r.key: ThumbResult(None, "thumbnails disabled") for r in reqs}
        parts.append('<p class="muted">Per face and emotion: the frame where the model was most sure of it.</p>')
        parts.append(_thumbs_html(reqs, got, face_ids))
    elif srow["status"] != "failed":
        parts.append('<p class="muted">No faces were detected in this video.</p>')
    parts.append(f'<h2>Video</h2><dl class="meta">{meta}</dl>')
    return _page(f"{vid} · ferbatch report", "".join(parts), _SORT_JS)


def write_html(
    summary: Summary,
    results: Results,
    report_dir: str | Path | None = None,
    *,
    thumbnails: bool = True,
    progress: Callable[[str], None] | None = None,
) -> Path:
    """Write ``index.html`` and one page per video into ``report_dir`` (default ``OUT/report``).

    Returns the index path. Thumbnails need the source videos; missing ones get placeholders.
    """
    report_dir = Path(report_dir) if report_dir is not None else results.out / "report"
    report_dir.mkdir(parents=True, exist_ok=True)
    tl = summary.timeline
    tl_ids = tl["video_id"].astype(str) if len(tl) else pd.Series([], dtype=object)
    timelines = {str(k): g for k, g in tl.groupby(tl_ids, sort=False)} if len(tl) else {}
    vids = [str(v) for v in summary.videos["video_id"]]
    pages = {vid: page_name(vid) for vid in vids}
    for vid in vids:
        if progress:
            progress(vid)
        text = _video_html(vid, summary, results, timelines.get(vid, tl.iloc[0:0]), thumbnails=thumbnails)
        atomic_write(report_dir / pages[vid], lambda tmp, text=text: tmp.write_text(text, encoding="utf-8"))
    index = _index_html(summary, results, timelines, pages)
    return atomic_write(report_dir / "index.html", lambda tmp: tmp.write_text(index, encoding="utf-8"))
