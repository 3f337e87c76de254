"""``ferbatch report --min-quality``: rows left out of summaries and episodes, excluded
face-time counted, the quality chart under the emotion timeline (also in headless Chromium)."""

from __future__ import annotations

import os
import re

import pyarrow.parquet as pq
import pytest
from click.testing import CliRunner
from test_html import CHROMIUM, _chromium

from ferbatch.cli_report import report_command
from ferbatch.errors import ConfigError, OutputError
from ferbatch.output.read import load
from ferbatch.quality import DEFAULT_THRESHOLDS
from ferbatch.report import summarize
from ferbatch.report.quality import resolve_min_quality

from synth_output import EXPECTED, EXPECTED_MIN_QUALITY, write_synthetic_output


@pytest.fixture(scope="module")
def quality_report(tmp_path_factory):
    root = tmp_path_factory.mktemp("quality")
    info = write_synthetic_output(root / "out", video_dir=root / "videos")
    result = CliRunner().invoke(report_command, [str(info.out), "--min-quality", "ok",
                                                 "--smooth", "none", "--min-episode", "1",
                                                 "--max-gap", "2"])
    assert result.exit_code == 0, result.output
    return info, result.output


def test_min_quality_leaves_rows_out_and_counts_their_face_time(tmp_path):
    info = write_synthetic_output(tmp_path / "out")
    res = load(info.out)
    s = summarize(res, smooth_method="none", min_episode_s=1.0, max_gap_s=2.0,
                  min_quality=resolve_min_quality("ok", res.meta))
    v = s.videos.set_index("video_id")
    exp = EXPECTED_MIN_QUALITY
    assert v.loc["alpha", "excluded_face_seconds"] == pytest.approx(exp["excluded_face_seconds"])
    assert v.loc["alpha", "excluded_rows"] == exp["excluded_rows"]
    assert v.loc["beta", "excluded_face_seconds"] == 0 and v.loc["beta", "excluded_rows"] == 0
    for label, share in exp["shares"].items():
        assert v.loc["alpha", f"share_{label}"] == pytest.approx(share), label
    assert v.loc["alpha", "face_seconds"] == pytest.approx(12.0 - 1.5)
    eps = s.episodes[s.episodes["video_id"] == "alpha"]
    got = sorted((int(e.face_id), e.emotion, round(e.start_s, 6), round(e.end_s, 6))
                 for e in eps.itertuples())
    assert got == sorted(exp["episodes"])
    f = s.faces.set_index(["video_id", "face_id"])
    assert f.loc[("alpha", 0), "excluded_face_seconds"] == pytest.approx(1.5)
    assert f.loc[("alpha", 1), "excluded_face_seconds"] == 0
    assert not s.quality["quality_kept"].to_numpy().all()
    # without --min-quality nothing is left out and the figures are the usual ones
    plain = summarize(res, smooth_method="none", min_episode_s=1.0, max_gap_s=2.0)
    assert "excluded_face_seconds" not in plain.videos
    assert plain.videos.set_index("video_id").loc["alpha", "share_sad"] == \
        pytest.approx(EXPECTED["alpha"]["shares"]["sad"])


def test_resolve_min_quality():
    assert resolve_min_quality("ok") == DEFAULT_THRESHOLDS
    meta = {"quality_thresholds": {**DEFAULT_THRESHOLDS.to_dict(), "max_abs_yaw": 20.0}}
    assert resolve_min_quality("ok", meta).max_abs_yaw == 20.0
    t = resolve_min_quality("min_face_px=64, max_abs_yaw=none", meta)
    assert t.min_face_px == 64 and t.max_abs_yaw is None and t.min_sharpness == DEFAULT_THRESHOLDS.min_sharpness
    for bad, match in [("face_px=3", "unknown threshold 'face_px'"), ("min_face_px", "name=value"),
                       ("min_face_px=big", "not a number"),
                       ("min_face_px=-5", r"min_face_px=-5 is outside \[0, 100000\]"),
                       ("max_abs_yaw=nan", "max_abs_yaw=nan is outside"),
                       ("min_brightness=1.5", r"outside \[0, 1\] \(grey level"),
                       ("min_brightness=0.8,max_brightness=0.5", "no row could pass")]:
        with pytest.raises(ConfigError, match=match):
            resolve_min_quality(bad)


def test_min_quality_on_an_output_without_quality_columns_is_a_clear_error(tmp_path):
    info = write_synthetic_output(tmp_path / "out")
    part = next((info.out / "faces").glob("video_id=alpha/*.parquet"))
    table = pq.read_table(part)
    pq.write_table(table.drop_columns(["face_px", "sharpness", "quality_ok"]), part)
    with pytest.raises(OutputError, match="no quality columns"):
        summarize(load(info.out), min_quality=DEFAULT_THRESHOLDS)
    r = CliRunner().invoke(report_command, [str(info.out), "--min-quality", "ok", "-q"])
    assert r.exit_code == 1 and "no quality columns" in r.output and "Traceback" not in r.output
    r = CliRunner().invoke(report_command, [str(info.out), "--min-quality", "min_size=3", "-q"])
    assert r.exit_code == 1 and "--min-quality: unknown threshold" in r.output


def test_cli_and_page_show_the_quality_chart_and_excluded_time(quality_report):
    info, output = quality_report
    assert "--min-quality excluded 3 face rows, 1.5 s of face-time" in output
    alpha = (info.out / "report" / "alpha.html").read_text(encoding="utf-8")
    assert alpha.index('id="timeline"') < alpha.index('id="quality"')
    note = alpha.split('id="quality-note">')[1].split("</p>")[0]
    assert "1.5 s of face-time in 3 rows" in note and "min_sharpness=0.05" in note
    assert "excluded (low quality)" in alpha
    # the sad thumbnail comes from a kept row (7.5 s or later), not the blurred 6.0–7.0 s
    sad = re.search(r'alt="face 0, sad at ([\d.]+) s"', alpha)
    assert sad and float(sad.group(1)) >= 7.5
    # the index says it too: in the summary line and an "Excluded" column per video
    index = (info.out / "report" / "index.html").read_text(encoding="utf-8")
    assert "--min-quality left out 1.5 s of face-time (3 face rows)" in index
    assert "(low face quality)\">Excluded</th>" in index and 'data-v="1.5">1.5 s</td>' in index


def test_quality_page_renders_in_headless_chromium(quality_report, tmp_path):
    if not (os.path.isfile(CHROMIUM) and os.access(CHROMIUM, os.X_OK)):
        pytest.skip(f"headless browser not installed ({CHROMIUM}); apt-get install -y chromium")
    info, _ = quality_report
    dom = _chromium(["--dump-dom"], (info.out / "report" / "alpha.html").as_uri(), tmp_path)
    assert dom.returncode == 0 and "Uncaught" not in dom.stderr, dom.stderr[-2000:]
    assert re.search(r'<img class="chart" id="quality" src="data:image/png;base64,', dom.stdout)
    assert "Quality over time" in dom.stdout and "excluded (low quality)" in dom.stdout
