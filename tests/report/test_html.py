"""The HTML report (``ferbatch.report.html``): pages for every video, escaping, no network,
sparklines, and the pages in headless Chromium.

The browser test opens the pages in headless Chromium (Debian package ``chromium``) and checks
the rendered DOM and the console; it skips, with the reason, when Chromium is not installed.
"""

from __future__ import annotations

import dataclasses
import os
import re
import shutil
import subprocess
from pathlib import Path

import pytest

from ferbatch.report.graphics import sparkline
from ferbatch.report.html import page_name, render_index, render_video, sparkline_svg
from ferbatch.report.palette import color_for
from ferbatch.report.video_view import video_page
from ferbatch.report.view import index_page

CHROMIUM = os.environ.get("FERBATCH_CHROMIUM", "/usr/bin/chromium")


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


def test_sparkline_svg(model):
    info, results, summary, timelines = model
    svg = sparkline_svg(timelines["alpha"], summary.labels, t_end=10.0)
    assert svg.startswith('<svg class="spark"') and svg.endswith("</svg>")
    assert f'fill="{color_for("happy")}"' in svg and "<polyline" in svg
    assert "<title>happy dominates " in svg
    spark = sparkline(timelines["alpha"], summary.labels, t_end=10.0)
    assert spark.bands
    for band in spark.bands:  # a tooltip's seconds are its band's edges, to the centisecond
        seconds = band.tip.split(" dominates ")[1].removesuffix(" s").split("–")
        assert [float(v) for v in seconds] == pytest.approx(
            [band.x / spark.width * 10.0, (band.x + band.width) / spark.width * 10.0], abs=0.005)
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
    assert len(re.findall(r"<img ", alpha.stdout)) == 3 + 4  # charts (shares, timeline, quality) + thumbnails
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
