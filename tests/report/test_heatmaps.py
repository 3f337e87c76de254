"""Grad-CAM overlays beside the report's "most confident moment" thumbnails, on a real run
(the bundled model explains its own rows), also rendered in headless Chromium."""

from __future__ import annotations

import os
import re
from pathlib import Path

import pytest
from test_html import CHROMIUM, _chromium

from ferbatch.config import RunConfig
from ferbatch.report import build_report
from ferbatch.report.heatmaps import ReportExplainer

pytestmark = pytest.mark.slow  # a real run and Grad-CAM per thumbnail


@pytest.fixture(scope="module")
def real_report(user_folder: Path, tmp_path_factory, stages):  # noqa: ANN001
    import ferbatch

    out = tmp_path_factory.mktemp("heat") / "out"
    ferbatch.run([user_folder / "face.mp4"], out, RunConfig(device="cpu"), stages=stages)
    rep = build_report(out)
    vid = rep.summary.videos["video_id"].iat[0]
    return out, vid


def test_thumbnails_have_their_heat_map_beside_them(real_report):
    out, vid = real_report
    page = (out / "report" / f"{vid}.html").read_text(encoding="utf-8")
    plain = re.findall(r'<img src="data:image/jpeg;base64,[^"]+"[^>]*alt="(face \d+, \w+ at [\d.]+ s)"', page)
    heat = re.findall(r'<img class="heat" src="data:image/jpeg;base64,[^"]+"[^>]*alt="(face \d+, \w+ at [\d.]+ s), Grad-CAM"', page)
    assert plain and heat == plain  # one overlay per thumbnail, in the same order
    assert 'id="heat-note"' not in page


def test_a_model_that_is_not_bundled_gets_a_reason():
    ex = ReportExplainer()
    assert ex.for_model("vgg_gap:mine.pt:0123456789ab") == (
        None, "model vgg_gap:mine.pt:0123456789ab is not a bundled model: no heat maps")
    assert ex.for_model("vgg_gap:default.pt:000000000000")[0] is None  # the file's hash differs


def test_heat_maps_render_in_headless_chromium(real_report, tmp_path):
    if not (os.path.isfile(CHROMIUM) and os.access(CHROMIUM, os.X_OK)):
        pytest.skip(f"headless browser not installed ({CHROMIUM}); apt-get install -y chromium")
    out, vid = real_report
    dom = _chromium(["--dump-dom"], (out / "report" / f"{vid}.html").as_uri(), tmp_path)
    assert dom.returncode == 0 and "Uncaught" not in dom.stderr, dom.stderr[-2000:]
    assert len(re.findall(r'<img class="heat" src="data:image/jpeg;base64,', dom.stdout)) >= 1
