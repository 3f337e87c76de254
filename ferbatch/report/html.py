"""Static HTML report: ``report/index.html`` plus one ``report/<video_id>.html`` per video.

Static files only, readable offline: the CSS and a few lines of vanilla JS (table sorting) are
inlined from ``templates/report.css`` and ``templates/sort.js``, charts are PNGs and thumbnails
JPEGs embedded as ``data:`` URIs, sparklines are inline SVG. Each page is a view model
(:mod:`.view`, :mod:`.video_view`) rendered through the Jinja2 templates in ``templates/`` with
autoescape on, so every piece of text from the data (paths, errors, ids, labels) is escaped.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from functools import lru_cache
from pathlib import Path
from typing import Any

import jinja2
import pandas as pd

from ..output.atomic import atomic_write_text
from ..output.read import Results
from .formatting import page_name
from .graphics import sparkline
from .summary import Summary
from .video_view import MAX_EPISODE_ROWS, MAX_FACES_PER_PAGE, video_page
from .view import IndexPage, VideoPage, index_page, timelines_by_video

log = logging.getLogger(__name__)

__all__ = ["write_html", "render_index", "render_video", "page_name", "sparkline_svg",
           "MAX_FACES_PER_PAGE", "MAX_EPISODE_ROWS"]


@lru_cache(maxsize=1)
def environment() -> jinja2.Environment:
    """The Jinja2 environment of the report templates (autoescaped HTML)."""
    return jinja2.Environment(
        loader=jinja2.PackageLoader("ferbatch.report", "templates"),
        autoescape=jinja2.select_autoescape(("html", "svg")),
        trim_blocks=True,
        lstrip_blocks=True,
        undefined=jinja2.StrictUndefined,
        keep_trailing_newline=True,
    )


def render_index(page: IndexPage) -> str:
    return environment().get_template("index.html").render(page=page)


def render_video(page: VideoPage) -> str:
    return environment().get_template("video.html").render(page=page)


def sparkline_svg(timeline: pd.DataFrame, labels: list[str], **kwargs: Any) -> str:
    """Inline SVG of :func:`.graphics.sparkline` (same arguments)."""
    macro = environment().get_template("macros.html").module.spark
    return str(macro(sparkline(timeline, labels, **kwargs)))


def write_html(
    summary: Summary,
    results: Results,
    report_dir: str | Path | None = None,
    *,
    thumbnails: bool = True,
    progress: Callable[[str], None] | None = None,
    explain: bool = True,
) -> Path:
    """Write ``index.html`` and one page per video into ``report_dir`` (default ``OUT/report``).

    Returns the index path. Thumbnails need the source videos; missing ones get placeholders.
    ``explain``: put each thumbnail's Grad-CAM overlay beside it (:mod:`.heatmaps`).
    """
    from .heatmaps import ReportExplainer

    explainers = ReportExplainer() if explain else None
    report_dir = Path(report_dir) if report_dir is not None else Path(results.out) / "report"
    report_dir.mkdir(parents=True, exist_ok=True)
    timelines = timelines_by_video(summary)
    no_rows = summary.timeline.iloc[0:0]
    vids = [str(v) for v in summary.videos["video_id"]]
    pages = {vid: page_name(vid) for vid in vids}
    for vid in vids:
        if progress:
            progress(vid)
        page = video_page(vid, summary, results, timelines.get(vid, no_rows), thumbnails=thumbnails,
                          explainers=explainers)
        atomic_write_text(report_dir / pages[vid], render_video(page))
    index = report_dir / "index.html"
    atomic_write_text(index, render_index(index_page(summary, results, timelines, pages)))
    return index
