"""HTML report, its view model, thumbnails and the ``report`` CLI, on the synthetic output (with
a real clip).

The browser test opens the pages in headless Chromium (Debian package ``chromium``) and checks
the rendered DOM and the console; it skips, with the reason, when Chromium is not installed.
"""

from __future__ import annotations

import dataclasses
import io
import logging
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner

from ferbatch.cli_report import COMMANDS, report_command
from ferbatch.output.read import load
from ferbatch.output.schema import STATUS_FAILED, STATUS_OK, STATUS_PARTIAL
from ferbatch.report import summarize
from ferbatch.report.defaults import (
    DEFAULT_MAX_GAP_S,
    DEFAULT_METHOD,
    DEFAULT_MIN_EPISODE_S,
    DEFAULT_WINDOW_S,
    METHODS,
)
from ferbatch.report.html import page_name, render_index, render_video, sparkline_svg
from ferbatch.report.palette import color_for
from ferbatch.report.thumbnails import ThumbRequest, extract_thumbnails
from ferbatch.report.video_view import video_page
from ferbatch.report.view import Cell, Column, Table, index_page, status_cell, timelines_by_video

from synth_output import ALPHA_BOXES, write_synthetic_output

CHROMIUM = os.environ.get("FERBATCH_CHROMIUM", "/usr/bin/chromium")


def _jpeg_grey(data: bytes) -> float:
    from PIL import Image

    img = np.asarray(Image.open(io.BytesIO(data)).convert("L"), float)
    h, w = img.shape
    return float(img[h // 3: 2 * h // 3, w // 3: 2 * w // 3].mean())


@pytest.fixture(scope="module")
def report(tmp_path_factory):
    """Synthetic output + alpha clip, reported through the CLI (default EMA smoothing)."""
    root = tmp_path_factory.mktemp("html")
    info = write_synthetic_output(root / "out", video_dir=root / "videos")
    result = CliRunner().invoke(report_command, [str(info.out)])
    assert result.exit_code == 0, result.output
    return info, result.output


def test_cli_prints_paths_and_is_registered(report):
    info, output = report
    assert COMMANDS == [report_command] and report_command.name == "report"
    for name in ("summary.parquet", "summary.csv", "summary_faces.parquet", "episodes.parquet",
                 "report/index.html"):
        assert str(info.out / name) in output
        assert (info.out / name).is_file()
    assert "4 videos (2 ok, 1 partial, 1 failed)" in output


def test_index_lists_every_video_escaped_and_offline(report):
    info, _ = report
    index = (info.out / "report" / "index.html").read_text(encoding="utf-8")
    body = index.split("<tbody>")[1].split("</tbody>")[0]
    assert body.count("<tr") == 4
    for vid in info.video_ids:
        assert f'href="{page_name(vid)}"' in index
        assert (info.out / "report" / page_name(vid)).is_file()
    assert "&lt;gamma.mov&gt; moov atom not found &amp; unreadable" in index
    assert "<gamma.mov>" not in index
    assert "Failed videos (1)" in index
    assert index.count('<svg class="spark"') >= 8  # shares bar + sparkline per video
    for page in (info.out / "report").glob("*.html"):
        text = page.read_text(encoding="utf-8")
        assert not re.search(r"""(src|href)=["']?(https?:)?//""", text), page  # no network
        assert "<script src" not in text


def test_video_pages(report):
    info, _ = report
    alpha = (info.out / "report" / "alpha.html").read_text(encoding="utf-8")
    assert 'id="timeline" src="data:image/png;base64,' in alpha
    assert 'id="shares" src="data:image/png;base64,' in alpha
    thumbs = re.findall(r'<img src="data:image/jpeg;base64,[^"]+"[^>]*alt="face (\d), (\w+) at', alpha)
    assert sorted(thumbs) == [("0", "angry"), ("0", "happy"), ("0", "sad"), ("1", "surprise")]
    assert 'class="ph"' not in alpha
    assert alpha.split('id="episodes"')[1].split("</table>")[0].count("<tr>") == 3 + 1  # + header
    beta = (info.out / "report" / "beta.html").read_text(encoding="utf-8")
    assert beta.count('class="ph"') == 2 and "video not found" in beta  # placeholders, no failure
    gamma = (info.out / "report" / "gamma.html").read_text(encoding="utf-8")
    assert "moov atom not found" in gamma and "<img" not in gamma
    delta = (info.out / "report" / "delta.html").read_text(encoding="utf-8")
    assert "No faces were detected" in delta


def test_thumbnails_come_from_the_right_frame(report):
    info, _ = report
    path = info.video_paths["alpha"]
    reqs = [ThumbRequest(("happy",), 4.0, ALPHA_BOXES[0]),   # frame 40 → grey 100
            ThumbRequest(("surprise",), 3.0, ALPHA_BOXES[1]),  # frame 30 → grey 80
            ThumbRequest(("late",), 9.9, ALPHA_BOXES[0]),      # frame 99 → grey 218
            ThumbRequest(("early",), 0.0, ALPHA_BOXES[1]),     # frame 0 → grey 20 (after a later seek)
            ThumbRequest(("bad box",), 1.0, (50.0, 50.0, 10.0, 10.0))]
    got = extract_thumbnails(path, reqs, size=(160, 120))
    for key, grey in ((("happy",), 100), (("surprise",), 80), (("late",), 218), (("early",), 20)):
        assert got[key].error is None, got[key].error
        assert abs(_jpeg_grey(got[key].jpeg) - grey) < 6, (key, _jpeg_grey(got[key].jpeg))
    assert got[("bad box",)].jpeg is None and "invalid box" in got[("bad box",)].error


def test_thumbnails_never_raise_on_bad_videos(tmp_path):
    reqs = [ThumbRequest(("a",), 1.0, (0.0, 0.0, 10.0, 10.0))]
    garbage = tmp_path / "garbage.mp4"
    garbage.write_bytes(os.urandom(4096))
    empty = tmp_path / "empty.mov"
    empty.write_bytes(b"")
    for path in (tmp_path / "missing.mp4", garbage, empty, tmp_path):
        got = extract_thumbnails(path, reqs)
        assert got[("a",)].jpeg is None and got[("a",)].error


def test_thumbnail_follows_display_rotation(tmp_path):
    from PIL import Image

    from clips import encoder_available, make_clip

    if not encoder_available("libx264"):
        pytest.skip("libx264 encoder not in this PyAV build")
    spec = make_clip(tmp_path / "rot.mp4", n_frames=5, size=(160, 120), rotation=90, pattern="moving")
    assert (spec.width, spec.height) == (120, 160)
    whole = [ThumbRequest(("all",), 0.0, (0.0, 0.0, 120.0, 160.0))]
    # rotation=None: the frame's own display matrix; 90: what the pipeline recorded for it
    for rotation in (None, 90):
        got = extract_thumbnails(spec.path, whole, size=(spec.width, spec.height), rotation=rotation)
        img = np.asarray(Image.open(io.BytesIO(got[("all",)].jpeg)).convert("RGB"), float)
        h, w, _ = img.shape
        assert h > w  # portrait, as displayed
        # the red marker of the stored bottom-left corner is bottom-right after a 90° CCW rotation
        corner = img[int(h * 0.9):, int(w * 0.85):].mean(axis=(0, 1))
        assert corner[0] > 150 and corner[1] < 100, corner
    # the videos table's rotation wins over the file's: 0 recorded → the stored, landscape pixels
    got = extract_thumbnails(spec.path, [ThumbRequest(("all",), 0.0, (0.0, 0.0, 160.0, 120.0))],
                             size=(160, 120), rotation=0)
    img = np.asarray(Image.open(io.BytesIO(got[("all",)].jpeg)).convert("RGB"), float)
    assert img.shape[1] > img.shape[0]


def test_cli_options_and_errors(tmp_path, report):
    info, _ = report
    out = tmp_path / "out"
    shutil.copytree(info.out, out, ignore=shutil.ignore_patterns("report", "summary*", "episodes*"))
    r = CliRunner().invoke(report_command, [str(out), "--smooth", "moving", "--window", "2",
                                            "--min-episode", "0.5", "--no-thumbnails", "-q"])
    assert r.exit_code == 0, r.output
    assert "thumbnails disabled" in (out / "report" / "alpha.html").read_text(encoding="utf-8")
    r = CliRunner().invoke(report_command, [str(out), "--no-html", "-q"])
    assert r.exit_code == 0 and "index.html" not in r.output
    r = CliRunner().invoke(report_command, [str(tmp_path / "nothing")])
    assert r.exit_code != 0 and "no such folder" in r.output
    r = CliRunner().invoke(report_command, [str(out), "--window", "0"])
    assert r.exit_code != 0 and "window must be > 0" in r.output
    r = CliRunner().invoke(report_command, [str(out), "--smooth", "kalman"])
    assert r.exit_code != 0


def test_cli_defaults_are_the_report_constants():
    params = {p.name: p for p in report_command.params}
    assert params["smooth_method"].default == DEFAULT_METHOD
    assert tuple(params["smooth_method"].type.choices) == METHODS
    assert params["window_s"].default == DEFAULT_WINDOW_S
    assert params["min_episode_s"].default == DEFAULT_MIN_EPISODE_S
    assert params["max_gap_s"].default == DEFAULT_MAX_GAP_S
    # the defaults come without the data stack: `ferbatch --help` stays light
    code = ("import sys, ferbatch.cli_report; "
            "print(sorted(m for m in ('pandas', 'pyarrow', 'matplotlib', 'jinja2') if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]", out.stdout + out.stderr


# ---- the view model -----------------------------------------------------------------------


@pytest.fixture(scope="module")
def model(report):
    """The synthetic output loaded and summarised (default settings), with its timelines."""
    info, _ = report
    results = load(info.out)
    summary = summarize(results)
    return info, results, summary, timelines_by_video(summary)


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


def test_video_path_with_markup_is_escaped(model):
    info, results, summary, timelines = model
    evil = '/videos/<script>alert("x")</script>.mp4'
    videos = summary.videos.copy()
    videos.loc[videos["video_id"] == "delta", "path"] = evil
    raw = results.videos.copy()
    raw.loc[raw["video_id"].astype(str) == "delta", "path"] = evil
    summary = dataclasses.replace(summary, videos=videos)
    results = dataclasses.replace(results, videos=raw)
    index = render_index(index_page(summary, results, timelines, {v: page_name(v) for v in info.video_ids}))
    page = render_video(video_page("delta", summary, results, summary.timeline.iloc[0:0], thumbnails=False))
    for html in (index, page):
        assert "<script>alert" not in html
        assert "&lt;script&gt;alert(&#34;x&#34;)&lt;/script&gt;.mp4" in html
        assert html.count("<script") == 1  # the sort script only


def test_video_view_model_is_complete_before_rendering(model, monkeypatch):
    info, results, summary, timelines = model
    page = video_page("alpha", summary, results, timelines["alpha"], thumbnails=True)
    assert page.has_faces and not page.failed and page.error is None
    assert set(page.charts) == {"shares", "timeline"}
    assert all(c.src.startswith("data:image/png;base64,") for c in page.charts.values())
    got = sorted((f.face_id, t.label.text) for f in page.thumbs for t in f.thumbs)
    assert got == [(0, "angry"), (0, "happy"), (0, "sad"), (1, "surprise")]
    assert all(t.src and t.error is None for f in page.thumbs for t in f.thumbs)
    for table in (page.episodes, page.faces):
        assert all(list(r.cells) == [c.key for c in table.columns] for r in table.rows)
    assert page.n_episodes == len(page.episodes.rows)
    assert [r.cells["face"].sort for r in page.faces.rows] == [0, 1]  # seen longest first
    assert dict(page.meta)["Frames analysed"] == "20"

    def no_video_io(*args, **kwargs):
        raise AssertionError("rendering must not decode videos")

    import av

    monkeypatch.setattr(av, "open", no_video_io)
    monkeypatch.setattr("ferbatch.report.video_view.extract_thumbnails", no_video_io)
    html = render_video(page)
    assert html.count('<img src="data:image/jpeg;base64,') == 4
    assert html.count('class="chart"') == 2


def test_failed_and_faceless_pages(model):
    info, results, summary, timelines = model
    empty = summary.timeline.iloc[0:0]
    gamma = video_page("gamma", summary, results, empty, thumbnails=True)
    assert gamma.failed and not gamma.has_faces and "moov atom" in gamma.error
    assert gamma.cards[0].value.text == STATUS_FAILED
    delta = video_page("delta", summary, results, empty, thumbnails=True)
    assert not delta.failed and not delta.has_faces and delta.error is None
    assert "No faces were detected" in render_video(delta)
    assert "No faces were detected" not in render_video(gamma)


def test_unextractable_thumbnails_log_a_warning(model, caplog):
    info, results, summary, timelines = model
    with caplog.at_level(logging.WARNING, logger="ferbatch.report"):
        page = video_page("beta", summary, results, timelines["beta"], thumbnails=True)
    assert [t.error for f in page.thumbs for t in f.thumbs] == ["video not found"] * 2
    records = [r for r in caplog.records if r.name.startswith("ferbatch.report")]
    assert len(records) == 1 and records[0].levelno == logging.WARNING
    assert str(info.video_paths["beta"]) in records[0].getMessage()
    assert "video not found" in records[0].getMessage()
    caplog.clear()
    with caplog.at_level(logging.WARNING, logger="ferbatch.report"):
        video_page("beta", summary, results, timelines["beta"], thumbnails=False)
    assert not caplog.records  # disabled thumbnails are not a problem


def test_sparkline_svg(model):
    info, results, summary, timelines = model
    svg = sparkline_svg(timelines["alpha"], summary.labels, t_end=10.0)
    assert svg.startswith('<svg class="spark"') and svg.endswith("</svg>")
    assert f'fill="{color_for("happy")}"' in svg and "<polyline" in svg
    assert "<title>happy " in svg
    empty = sparkline_svg(timelines["alpha"].iloc[0:0], summary.labels)
    assert 'aria-label="no faces"' in empty and "<rect" not in empty


def _chromium(args: list[str], url: str, tmp: Path) -> subprocess.CompletedProcess:
    cmd = [CHROMIUM, "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
           "--disable-background-networking", "--disable-component-update", "--disable-sync",
           f"--user-data-dir={tmp / 'chromium-profile'}", "--enable-logging=stderr", "--v=0",
           *args, url]
    return subprocess.run(cmd, capture_output=True, text=True, timeout=90)


def test_pages_render_in_headless_chromium(report, tmp_path):
    if not (os.path.isfile(CHROMIUM) and os.access(CHROMIUM, os.X_OK)):
        pytest.skip(f"headless browser not installed ({CHROMIUM}); apt-get install -y chromium")
    info, _ = report
    index_url = (info.out / "report" / "index.html").as_uri()
    # the sort script runs in the browser: #sort=-2 sorts by duration, descending (NaN last)
    dom = _chromium(["--dump-dom"], index_url + "#sort=-2", tmp_path)
    assert dom.returncode == 0, dom.stderr[-2000:]
    assert "Uncaught" not in dom.stderr, dom.stderr[-2000:]
    rows = re.findall(r'<tr class="(\w+)"><td data-v="(\w+)"', dom.stdout)
    assert [vid for _, vid in rows] == ["beta", "alpha", "delta", "gamma"]
    assert 'data-dir="desc"' in dom.stdout

    alpha = _chromium(["--dump-dom"], (info.out / "report" / "alpha.html").as_uri(), tmp_path)
    assert alpha.returncode == 0 and "Uncaught" not in alpha.stderr
    assert len(re.findall(r"<img ", alpha.stdout)) == 2 + 4  # charts + thumbnails
    assert alpha.stdout.count("<tr>") >= 3 + 2

    for name in ("index", "alpha"):
        png = tmp_path / f"{name}.png"
        shot = _chromium([f"--screenshot={png}", "--window-size=1200,900", "--hide-scrollbars"],
                         (info.out / "report" / f"{name}.html").as_uri(), tmp_path)
        assert shot.returncode == 0 and "Uncaught" not in shot.stderr
        assert png.is_file() and png.stat().st_size > 20_000  # a real rendering, not a blank page
        keep = os.environ.get("FERBATCH_SCREENSHOTS")  # set to a folder to look at them
        if keep:
            Path(keep).mkdir(parents=True, exist_ok=True)
            shutil.copy(png, Path(keep) / png.name)
