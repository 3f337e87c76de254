"""Readable reports of a ferbatch output folder: smoothing, episodes, summaries, HTML.

``build_report(OUT)`` does it all (what ``ferbatch report OUT`` runs); the pieces are usable on
their own with the DataFrames of :func:`ferbatch.load`::

    from ferbatch import load
    from ferbatch.report import smooth, find_episodes, summarize

    res = load("out")
    tl = smooth(res.faces, res.labels, method="ema", window_s=1.0)
    eps = find_episodes(tl, res.labels, min_duration_s=1.0)

The data functions are imported on first use (PEP 562), so ``ferbatch.report.defaults`` (what
the CLI needs for its option defaults) loads without pandas.
"""

from __future__ import annotations

import importlib
import os
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from .defaults import (
    DEFAULT_MAX_GAP_S,
    DEFAULT_METHOD,
    DEFAULT_MIN_EPISODE_S,
    DEFAULT_WINDOW_S,
    METHODS,
    SmoothMethod,
)

if TYPE_CHECKING:
    from ..output.read import Results
    from .summary import Summary

_LAZY = {
    "smooth": ".smoothing",
    "add_timing": ".smoothing",
    "find_episodes": ".episodes",
    "summarize": ".summary",
    "write_summary": ".summary",
    "Summary": ".summary",
}

__all__ = [
    "ReportFiles",
    "build_report",
    "smooth",
    "add_timing",
    "find_episodes",
    "summarize",
    "write_summary",
    "Summary",
    "METHODS",
    "DEFAULT_METHOD",
    "DEFAULT_WINDOW_S",
    "DEFAULT_MAX_GAP_S",
    "DEFAULT_MIN_EPISODE_S",
]


def __getattr__(name: str) -> Any:
    try:
        module = _LAZY[name]
    except KeyError:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}") from None
    return getattr(importlib.import_module(module, __name__), name)


@dataclass
class ReportFiles:
    """What :func:`build_report` wrote, and the data it computed."""

    summary: Summary
    results: Results
    files: dict[str, Path] = field(default_factory=dict)


def build_report(
    out: str | os.PathLike[str],
    *,
    smooth_method: SmoothMethod = DEFAULT_METHOD,
    window_s: float = DEFAULT_WINDOW_S,
    min_episode_s: float = DEFAULT_MIN_EPISODE_S,
    max_gap_s: float = DEFAULT_MAX_GAP_S,
    html: bool = True,
    thumbnails: bool = True,
    progress: Callable[[str], None] | None = None,
    min_quality: str | None = None,
    explain: bool = True,
) -> ReportFiles:
    """Load ``out``, write its summary tables and (unless ``html=False``) ``out/report/``.

    ``out`` must be a local folder (or a ``file://`` URI): the report is written next to the data.
    ``min_quality``: ``"ok"`` or ``"name=value,…"`` (:func:`ferbatch.report.quality.resolve_min_quality`):
    face rows failing it are left out of shares, means, episodes and thumbnails, and their
    face-time is counted as ``excluded_face_seconds``.
    """
    from ..errors import OutputError
    from ..output.location import is_uri
    from ..output.read import load
    from .summary import summarize, write_summary

    if is_uri(out) and not str(out).lower().startswith("file://"):
        raise OutputError(
            f"{out}: ferbatch report works on local output folders only (it writes its tables and "
            "OUT/report/ next to the data); copy the output to a local folder first, or read the "
            "URI with ferbatch.load()")
    results = load(out)
    thresholds = None
    if min_quality is not None:
        from .quality import resolve_min_quality

        thresholds = resolve_min_quality(min_quality, results.meta)
    summary = summarize(results, smooth_method=smooth_method, window_s=window_s,
                        min_episode_s=min_episode_s, max_gap_s=max_gap_s, min_quality=thresholds)
    files = write_summary(summary, results.out)
    if html:
        from .html import write_html  # matplotlib and jinja2 are imported only when HTML is wanted

        files["html"] = write_html(summary, results, results.out / "report", thumbnails=thumbnails,
                                   progress=progress, explain=explain)
    return ReportFiles(summary=summary, results=results, files=files)
