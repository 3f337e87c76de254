"""View models of the report's pages: what each page shows, as plain Python data.

Built from the :class:`~ferbatch.report.summary.Summary` tables; the templates in
``templates/`` only lay them out (and escape every string). Everything that needs the data or the
file system happens here, before rendering: choosing rows, formatting numbers, drawing the PNG
charts and cutting the thumbnails out of the source videos.

A sortable table is a :class:`Table`: its :class:`Column` list drives both the header and every
row, and :meth:`Table.add` refuses a row whose cells do not match the columns.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal
from urllib.parse import quote

import pandas as pd

from ..output.read import Results
from ..output.schema import STATUS_FAILED
from ..text import plural
from .formatting import DASH, duration, fixed, num, percent, short, text
from .graphics import SharesBar, Sparkline, shares_bar, sparkline
from .palette import color_for
from .summary import Summary, share_column

__all__ = [
    "Column", "Cell", "Row", "Table", "Card", "Chart", "Thumb", "FaceThumbs", "FailedVideo",
    "IndexPage", "VideoPage", "index_page", "timelines_by_video", "chip", "status_cell", "num_cell", "video_shares",
]

CellKind = Literal["text", "num", "chip", "status", "link", "error", "graphic"]
SortKind = Literal["num", "text"]


@dataclass(frozen=True)
class Column:
    """A table column: header text, how its cells are drawn and how it sorts (None: it does not)."""

    key: str
    title: str
    kind: CellKind = "text"
    sort: SortKind | None = None
    tip: str = ""

    @property
    def css(self) -> str:
        """CSS class of the column's cells."""
        return {"num": "num", "error": "errcell"}.get(self.kind, "")


@dataclass(frozen=True)
class Cell:
    """One table cell (or card value). ``text`` is what is shown (a chip's label, a status);
    ``sort`` the value the sort script compares (None: no ``data-v``)."""

    text: str = ""
    sort: Any = None
    href: str | None = None
    title: str | None = None
    note: str | None = None
    color: str | None = None
    graphic: Sparkline | SharesBar | None = None


@dataclass
class Row:
    """A table row: one cell per column key; ``css`` is the row's class (e.g. its status)."""

    cells: dict[str, Cell]
    css: str = ""


@dataclass
class Table:
    """A sortable table: ``columns`` define the header and the order of every row's cells."""

    id: str
    columns: list[Column]
    rows: list[Row] = field(default_factory=list)

    def __post_init__(self) -> None:
        keys = [c.key for c in self.columns]
        if len(set(keys)) != len(keys):
            raise ValueError(f"table {self.id}: duplicate column keys {keys}")
        rows, self.rows = self.rows, []
        for row in rows:
            self.add(row.css, **row.cells)

    @property
    def keys(self) -> list[str]:
        return [c.key for c in self.columns]

    def add(self, css: str = "", **cells: Cell) -> Row:
        """Append a row; its cells must be exactly the table's columns."""
        if set(cells) != set(self.keys):
            missing, extra = set(self.keys) - set(cells), set(cells) - set(self.keys)
            raise ValueError(f"table {self.id}: row cells do not match the columns "
                             f"(missing {sorted(missing)}, unknown {sorted(extra)})")
        row = Row({k: cells[k] for k in self.keys}, css)
        self.rows.append(row)
        return row


@dataclass(frozen=True)
class Card:
    """A headline figure of a video page."""

    title: str
    value: Cell
    kind: CellKind = "text"


@dataclass(frozen=True)
class Chart:
    """A PNG chart embedded as a ``data:`` URI."""

    id: str
    src: str
    alt: str


@dataclass(frozen=True)
class Thumb:
    """A face thumbnail (``src``: JPEG ``data:`` URI) or, without one, the reason (``error``)."""

    label: Cell
    caption: str
    alt: str
    src: str | None = None
    error: str | None = None
    heat_src: str | None = None  # the same face with its Grad-CAM map overlaid (JPEG data: URI)


@dataclass
class FaceThumbs:
    """The thumbnails of one face, one per emotion it showed."""

    face_id: int
    thumbs: list[Thumb]


@dataclass(frozen=True)
class FailedVideo:
    video_id: str
    href: str
    path: str
    error: str


@dataclass
class IndexPage:
    """``index.html``: every video in one sortable table, then the failed ones with errors."""

    title: str
    summary_line: str
    legend: list[Cell]
    videos: Table
    failed: list[FailedVideo]


@dataclass
class VideoPage:
    """``<video_id>.html``: one video's figures, charts, tables and thumbnails.

    ``has_faces`` False: no charts, tables or thumbnails (a failed video, or no faces found).
    """

    video_id: str
    title: str
    path: str
    error: str | None
    cards: list[Card]
    meta: list[tuple[str, str]]
    has_faces: bool = False
    failed: bool = False
    charts: dict[str, Chart] = field(default_factory=dict)
    timeline_note: str = ""
    quality_note: str = ""
    heat_note: str | None = None  # why the thumbnails have no Grad-CAM overlays
    episodes: Table | None = None
    n_episodes: int = 0
    episodes_note: str = ""
    faces: Table | None = None
    thumbs: list[FaceThumbs] = field(default_factory=list)


def chip(label: Any, sort: Any = None) -> Cell:
    """A coloured emotion label (an empty cell when the label is missing)."""
    name = text(label)
    return Cell(name, sort, color=color_for(name) if name else None)


def status_cell(status: Any) -> Cell:
    """A video status badge; sorts by the status text."""
    return Cell(text(status) or "unknown", text(status))


def video_shares(row: Any, labels: list[str]) -> dict[str, float]:
    """``{label: face-time share}`` of a summary row (videos or faces)."""
    return {lb: num(row.get(share_column(lb))) for lb in labels}


def num_cell(value: Any, shown: str) -> Cell:
    """A number shown as ``shown`` (already formatted), sorting by its value (NaN if none)."""
    return Cell(shown, num(value))


INDEX_COLUMNS = [
    Column("video", "Video", "link", "text"),
    Column("status", "Status", "status", "text"),
    Column("duration", "Duration", "num", "num"),
    Column("frames", "Frames", "num", "num"),
    Column("with_face", "With face", "num", "num", tip="share of analysed frames with at least one face"),
    Column("faces", "Faces", "num", "num"),
    Column("dominant", "Dominant", "chip", "text"),
    Column("shares", "Shares", "graphic", "num"),
    Column("timeline", "Timeline", "graphic",
           tip="background: dominant emotion over time; line: mean valence (up = pleasant)"),
    Column("episodes", "Episodes", "num", "num"),
    Column("error", "Error", "error", "text"),
]
#: shown after "Faces" when the report was made with ``--min-quality``
EXCLUDED_COLUMN = Column("excluded", "Excluded", "num", "num",
                         tip="face-time of rows left out by --min-quality (low face quality)")


def index_columns(excluded: bool) -> list[Column]:
    """The index table's columns; with ``excluded``, the --min-quality column after "Faces"."""
    if not excluded:
        return list(INDEX_COLUMNS)
    at = [c.key for c in INDEX_COLUMNS].index("faces") + 1
    return [*INDEX_COLUMNS[:at], EXCLUDED_COLUMN, *INDEX_COLUMNS[at:]]


def _index_row(table: Table, row: pd.Series, labels: list[str], href: str, spark: Sparkline) -> None:
    vid, dom = str(row["video_id"]), text(row["dominant_emotion"])
    table.add(
        text(row["status"]),
        video=Cell(vid, vid, href=href, title=text(row["path"]), note=Path(text(row["path"])).name),
        status=status_cell(row["status"]),
        duration=num_cell(row["duration_s"], duration(row["duration_s"])),
        frames=num_cell(row["frames_analyzed"], fixed(row["frames_analyzed"], ".0f")),
        with_face=num_cell(row["face_frame_share"], percent(row["face_frame_share"])),
        faces=num_cell(row["face_ids"], fixed(row["face_ids"], ".0f")),
        dominant=chip(dom, dom),
        shares=Cell(sort=num(row.get(share_column(dom))) if dom else float("nan"),
                    graphic=shares_bar(video_shares(row, labels), labels)),
        timeline=Cell(graphic=spark),
        episodes=num_cell(row["episodes"], fixed(row["episodes"], ".0f")),
        error=Cell(short(row["error"]), text(row["error"]), title=text(row["error"])),
        **({"excluded": num_cell(row["excluded_face_seconds"], duration(row["excluded_face_seconds"]))}
           if "excluded" in table.keys else {}),
    )


def _model_name(results: Results) -> str:
    model = results.meta.get("model")
    if not model and "model" in results.videos and results.videos["model"].notna().any():
        model = results.videos["model"].dropna().iloc[0]
    return text(model) or DASH


def timelines_by_video(summary: Summary) -> dict[str, pd.DataFrame]:
    """The summary's timeline rows of each video, by video id (videos without faces: absent)."""
    tl = summary.timeline
    if not len(tl):
        return {}
    return {str(k): g for k, g in tl.groupby(tl["video_id"].astype(str), sort=False)}


def index_page(summary: Summary, results: Results, timelines: dict[str, pd.DataFrame],
               pages: dict[str, str]) -> IndexPage:
    """The index page of ``summary``; ``timelines``: each video's timeline rows by id
    (:func:`timelines_by_video`), ``pages``: each video's page file name by id."""
    labels, st, v = summary.labels, summary.settings, summary.videos
    smoothed = st.get("smooth", "none") != "none"
    empty = summary.timeline.iloc[0:0]
    excluded = "excluded_face_seconds" in v
    table = Table("videos", index_columns(excluded))
    for _, row in v.iterrows():
        vid = str(row["video_id"])
        spark = sparkline(timelines.get(vid, empty), labels, t_end=num(row["duration_s"]), smoothed=smoothed)
        _index_row(table, row, labels, quote(pages[vid]), spark)
    failed = [FailedVideo(str(r.video_id), quote(pages[str(r.video_id)]), text(r.path), text(r.error))
              for r in v[v["status"] == STATUS_FAILED].itertuples()]
    line = (f"{plural(len(v), 'video')} · {len(failed)} failed · model {_model_name(results)} · "
            f"labels {', '.join(labels)} · smoothing {text(st.get('smooth'))} "
            f"({fixed(st.get('window_s'), 'g', ' s')}) · episodes ≥ {fixed(st.get('min_episode_s'), 'g', ' s')}")
    if excluded:
        line += (f" · --min-quality left out {duration(float(v['excluded_face_seconds'].sum()))} of "
                 f"face-time ({plural(int(v['excluded_rows'].sum()), 'face row')})")
    return IndexPage("ferbatch report", line, [chip(lb) for lb in labels], table, failed)
