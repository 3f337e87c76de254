"""``ferbatch validate``: annotated segments against the synthetic output, whose answers are
known (tests/synth_output.py)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from click.testing import CliRunner

from ferbatch.cli import cli
from ferbatch.errors import ConfigError, DataError
from ferbatch.output.read import load
from ferbatch.validate import match_video, read_annotations, validate

from synth_output import write_synthetic_output


@pytest.fixture(scope="module")
def synth(tmp_path_factory):
    root = tmp_path_factory.mktemp("validate")
    info = write_synthetic_output(root / "out")
    beta_path = load(info.out).videos.set_index("video_id").loc["beta", "path"]
    csv = root / "segments.csv"
    csv.write_text(
        "video,start_s,end_s,label,face_id\n"
        "alpha.mp4,0,6,happy,0\n"          # 12 rows: 11 happy + the angry flicker
        "alpha.mp4,6,9,sadness,0\n"        # alias; rows 6.0–8.5, 6.0–7.0 of low quality
        "alpha.mp4,2,5,Surprised,1\n"      # alias, case
        "beta,0,2.5,calm,\n"               # by video_id; alias of neutral; any face
        f"{beta_path},5,6.5,happy,\n"      # by path; the output says fear: wrong
        "nosuch.mp4,0,1,happy,\n"          # not in the output
        "alpha.mp4,9,10,neutral,0\n")      # face 0 not seen: no prediction
    return info, csv


def test_per_segment_predictions_and_metrics_match_the_designed_answers(synth):
    info, csv = synth
    v = validate(load(info.out), read_annotations(csv))
    assert v.unmatched == ["nosuch.mp4"] and v.unknown_labels == []
    seg = v.segments
    assert seg["label"].tolist() == ["happy", "sad", "surprise", "neutral", "happy", "neutral"]
    assert seg["raw:predicted"].tolist() == ["happy", "sad", "surprise", "neutral", "fear", None]
    assert seg["raw:rows"].tolist() == [12, 6, 6, 6, 3, 0]
    assert seg["raw+quality:rows"].tolist() == [12, 3, 6, 6, 3, 0]
    # segment 1: face-time-weighted mean of p_happy: 10 rows at .7, one at .75 (t=4), one angry
    # flicker whose other labels share 0.1 / 5 = 0.02 each
    assert seg.loc[0, "raw:pred_happy"] == pytest.approx((10 * 0.7 + 0.75 + 0.02) / 12)
    m = v.metrics
    raw_seg, raw_fr = m["raw"]["segments"], m["raw"]["frames"]
    assert (raw_seg["covered"], raw_seg["total"]) == (5, 6)
    assert raw_seg["accuracy"] == pytest.approx(4 / 5)
    assert raw_seg["macro_f1"] == pytest.approx((2 / 3 + 1 + 1 + 1 + 0) / 5)
    assert raw_fr["accuracy"] == pytest.approx(29 / 33) and raw_fr["n"] == 33
    q_fr = m["raw+quality"]["frames"]
    assert q_fr["accuracy"] == pytest.approx(26 / 30) and q_fr["n"] == 30
    cm = raw_seg["confusion_matrix"]
    labels = v.labels
    assert cm[labels.index("happy")][labels.index("fear")] == 1
    assert cm[labels.index("happy")][labels.index("happy")] == 1
    assert set(m) == {"raw", "smoothed", "raw+quality", "smoothed+quality"}
    assert m["smoothed"]["segments"]["accuracy"] == pytest.approx(4 / 5)


def test_cli_writes_markdown_html_and_json(synth, tmp_path):
    info, csv = synth
    r = CliRunner().invoke(cli, ["validate", str(info.out), "--annotations", str(csv),
                                 "--report-dir", str(tmp_path)])
    assert r.exit_code == 0, r.output
    assert "| raw | segments | 5/6 | 80.0 % |" in r.output
    md = (tmp_path / "validation.md").read_text()
    assert "## Confusion over frames, smoothed+quality" in md and "nosuch.mp4" in md
    html = (tmp_path / "validation.html").read_text()
    assert html.count('<table class="confusion">') == 8 and "<script src" not in html
    data = json.loads((tmp_path / "validation.json").read_text())
    assert data["metrics"]["raw"]["segments"]["accuracy"] == pytest.approx(0.8)
    first = data["segments"][0]  # per segment: the predicted distribution and top label
    probs = [first[k] for k in first if k.startswith("raw:pred_")]
    assert probs and sum(probs) == pytest.approx(1.0, abs=1e-3) and first["raw:predicted"]
    assert (tmp_path / "validation_segments.csv").read_text().count("\n") == len(data["segments"]) + 1


@pytest.mark.parametrize("text, match", [
    ("video,start_s,label\na,0,happy\n", "missing column"),
    ("video,start_s,end_s,label\na,0,x,happy\n", "row 2: end_s 'x' is not a number"),
    ("video,start_s,end_s,label\na,0,1,happy\na,3,2,sad\n", "row 3: end_s must be after start_s"),
    ("video,start_s,end_s,label,face_id\na,0,1,happy,1.5\n", "face_id '1.5' is not an integer"),
    ("video,start_s,end_s,label\na,0,1,\n", "row 2: empty label"),
])
def test_bad_annotations_name_the_file_and_row(tmp_path, text, match):
    csv = tmp_path / "bad.csv"
    csv.write_text(text)
    with pytest.raises(DataError, match=match) as info:
        read_annotations(csv)
    assert str(csv) in str(info.value)


def test_cli_errors_are_one_line(synth, tmp_path):
    info, _ = synth
    r = CliRunner().invoke(cli, ["validate", str(info.out), "--annotations", str(tmp_path / "none.csv")])
    assert r.exit_code == 1 and "annotations file not found" in r.output and "Traceback" not in r.output
    csv = tmp_path / "other.csv"
    csv.write_text("video,start_s,end_s,label\nzzz.mp4,0,1,happy\n")
    r = CliRunner().invoke(cli, ["validate", str(info.out), "--annotations", str(csv)])
    assert r.exit_code == 1 and "no annotated video is in the output" in r.output
    csv.write_text("video,start_s,end_s,label\nalpha,0,1,joyful\n")  # a label typo: said aloud
    r = CliRunner().invoke(cli, ["validate", str(info.out), "--annotations", str(csv),
                                 "--report-dir", str(tmp_path)])
    assert r.exit_code == 0 and "labels the model does not have (counted as wrong): joyful" in r.output


def test_match_video_by_id_path_and_name(synth):
    info, _ = synth
    videos = load(info.out).videos
    path = videos.set_index("video_id").loc["alpha", "path"]
    assert match_video("alpha", videos) == "alpha"
    assert match_video(path, videos) == "alpha"
    assert match_video("alpha.mp4", videos) == "alpha"
    assert match_video(str(Path("elsewhere") / "zzz.mp4"), videos) is None
    twice = videos.copy()
    twice.loc[twice["video_id"] == "beta", "path"] = str(Path(path).parent / "x" / "alpha.mp4")
    with pytest.raises(ConfigError, match="matches 2 videos"):
        match_video("alpha.mp4", twice)
