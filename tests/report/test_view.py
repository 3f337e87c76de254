"""The index page's view model (``ferbatch.report.view``): tables whose rows line up with their
columns, statuses, cells; rendered with one cell per column."""

from __future__ import annotations

import re

import pytest

from ferbatch.output.schema import STATUS_FAILED, STATUS_OK, STATUS_PARTIAL
from ferbatch.report.html import page_name, render_index
from ferbatch.report.palette import color_for
from ferbatch.report.view import Cell, Column, Table, index_page, status_cell


def _index(model):
    info, results, summary, timelines = model
    return index_page(summary, results, timelines, {vid: page_name(vid) for vid in info.video_ids})


def test_table_rows_must_match_the_columns():
    table = Table("t", [Column("a", "A", "num", "num"), Column("b", "B")])
    row = table.add(b=Cell("x"), a=Cell("1", 1.0))  # keyword order does not matter
    assert list(row.cells) == ["a", "b"]
    with pytest.raises(ValueError, match=r"missing \['b'\]"):
        table.add(a=Cell("2", 2.0))
    with pytest.raises(ValueError, match=r"unknown \['c'\]"):
        table.add(a=Cell(), b=Cell(), c=Cell())
    with pytest.raises(ValueError, match="duplicate"):
        Table("u", [Column("a", "A"), Column("a", "again")])
    assert len(table.rows) == 1


def test_index_view_model_lines_up_and_carries_statuses(model):
    page = _index(model)
    table = page.videos
    keys = [c.key for c in table.columns]
    assert all(list(row.cells) == keys for row in table.rows)
    assert [r.cells["video"].text for r in table.rows] == ["alpha", "beta", "gamma", "delta"]
    statuses = [STATUS_OK, STATUS_PARTIAL, STATUS_FAILED, STATUS_OK]
    assert [r.css for r in table.rows] == statuses
    assert [r.cells["status"].text for r in table.rows] == statuses
    assert status_cell(None).text == "unknown" and status_cell(None).sort == ""
    assert [f.video_id for f in page.failed] == ["gamma"] and "moov atom" in page.failed[0].error
    assert page.summary_line.startswith("4 videos · 1 failed · model synthetic_vgg")
    alpha = table.rows[0].cells
    assert (alpha["duration"].text, alpha["duration"].sort) == ("10.0 s", 10.0)
    assert alpha["with_face"].text == "90 %" and alpha["video"].href == "alpha.html"
    assert alpha["dominant"].text == "happy" and alpha["dominant"].color == color_for("happy")
    assert alpha["timeline"].graphic.kind == "spark" and alpha["shares"].graphic.kind == "bar"
    assert table.rows[2].cells["duration"].text == "–"  # failed: no duration

    # rendered: the header and every row have one cell per column, sort keys where declared
    text = render_index(page).split('id="videos"')[1].split("</table>")[0]
    head, body = text.split("</thead>")
    assert len(re.findall(r"<th[ >]", head)) == len(keys)
    assert head.count("data-sort=") == sum(1 for c in table.columns if c.sort)
    rows = body.split("</tr>")[:-1]
    assert len(rows) == 4 and all(r.count("<td") == len(keys) for r in rows)
