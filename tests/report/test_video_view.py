"""A video page's view model (``ferbatch.report.video_view``): complete before rendering,
failed and faceless videos, thumbnails that cannot be extracted."""

from __future__ import annotations

import logging

from ferbatch.output.schema import STATUS_FAILED
from ferbatch.report.html import render_video
from ferbatch.report.video_view import _meta, video_page


def test_video_view_model_is_complete_before_rendering(model, monkeypatch):
    info, results, summary, timelines = model
    page = video_page("alpha", summary, results, timelines["alpha"], thumbnails=True)
    assert page.has_faces and not page.failed and page.error is None
    assert set(page.charts) == {"shares", "timeline", "quality"}  # the output has quality columns
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
    assert html.count('class="chart"') == 3


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


def test_metadata_numbers_are_rounded_for_reading() -> None:
    import pandas as pd

    meta = dict(_meta(pd.Series({"fps": 30000 / 1001, "duration_s": 10.010009999, "width": 640.0,
                                 "processing_s": 1.23456, "frames_decoded": 300.0,
                                 "codec": "h264", "error": None})))
    assert meta == {"FPS": "29.97", "Duration (s)": "10.01", "Width": "640",
                    "Processing (s)": "1.23", "Frames decoded": "300", "Codec": "h264"}
    assert dict(_meta(pd.Series({"fps": 25.0, "duration_s": 2.5})))["FPS"] == "25"
