"""Run every script in examples/ as a user would, against the synthetic output, and check the
answer it prints."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from synth_output import write_synthetic_output

EXAMPLES = Path(__file__).resolve().parent.parent / "examples"


@pytest.fixture(scope="module")
def out(tmp_path_factory):
    return write_synthetic_output(tmp_path_factory.mktemp("examples") / "out").out


def run(script: str, *args: str) -> str:
    proc = subprocess.run([sys.executable, "-W", "error::FutureWarning", str(EXAMPLES / script), *map(str, args)],
                          capture_output=True, text=True, timeout=60,
                          env={**os.environ, "PYTHONWARNINGS": "error::FutureWarning"})
    assert proc.returncode == 0, proc.stderr
    assert "Warning" not in proc.stderr, proc.stderr
    return proc.stdout


def test_every_example_is_tested():
    scripts = {p.name for p in EXAMPLES.glob("*.py") if not p.name.startswith("_")}
    assert scripts == {"emotion_share.py", "peak_surprise.py", "face_timelines.py",
                       "compare_videos.py", "duckdb_query.py"}


def test_emotion_share(out):
    text = run("emotion_share.py", out)
    assert "alpha: mostly happy (46% of 24 face rows)" in text  # 11 of 24 rows
    assert "beta: mostly neutral (67% of 9 face rows)" in text  # 6 of 9 rows
    assert "gamma: no faces (failed)" in text
    assert "delta: no faces (ok)" in text


def test_peak_surprise(out):
    lines = run("peak_surprise.py", out, "surprise", "2").splitlines()
    assert lines[0] == "Top 2 moments of surprise (best per face):"
    assert lines[1].startswith("1. alpha face 1 at 0:03.00 (t=3.00s, frame 30): p=0.85")
    assert lines[2].startswith("2. beta face 0 at 0:05.00 (t=5.00s")  # p .3 from 5.0 s on
    text = run("peak_surprise.py", out, "happy", "1")
    assert "1. alpha face 0 at 0:04.00 (t=4.00s, frame 40): p=0.75" in text


def test_face_timelines(out):
    text = run("face_timelines.py", out, "alpha")
    rows = {line.split()[0]: line.split()[1:] for line in text.splitlines()[2:]}
    assert rows["0:00.00"] == ["happy"]
    assert rows["0:03.00"] == ["happy", "surprise"]
    assert rows["0:07.00"] == ["sad"]
    assert text.splitlines()[1].split() == ["face", "0", "face", "1"]


def test_compare_videos(out):
    text = run("compare_videos.py", out, "alpha", "beta")
    assert "Biggest difference: happy (-0.294 in beta vs alpha)" in text
    row = next(line for line in text.splitlines() if line.startswith("neutral"))
    assert row.split()[1:] == ["0.178", "0.413", "0.235"]


def test_duckdb_query(out):
    pytest.importorskip("duckdb", reason="duckdb not installed (pip install duckdb)")
    text = run("duckdb_query.py", out)
    assert "alpha | ok | 24 | happy | 0.458" in text
    assert "beta | partial | 9 | neutral | 0.667" in text
    assert "gamma | failed | 0 | - | -" in text
    assert "alpha | 1 | 2.00 | 4.50" in text


def test_examples_reject_a_non_output(tmp_path):
    proc = subprocess.run([sys.executable, str(EXAMPLES / "emotion_share.py"), str(tmp_path)],
                          capture_output=True, text=True, timeout=60)
    assert proc.returncode != 0 and "not a ferbatch output folder" in proc.stderr


def test_examples_keep_all_digit_ids(tmp_path):
    out = write_synthetic_output(tmp_path / "out", rename={"alpha": "0001"}).out
    assert "0001: mostly happy (46% of 24 face rows)" in run("emotion_share.py", out)
    assert "1. 0001 face 1 at 0:03.00" in run("peak_surprise.py", out)
    assert "0:03.00  happy  surprise" in run("face_timelines.py", out, "0001")
    assert "0001 | ok | 24 | happy | 0.458" in run("duckdb_query.py", out)


def _fails(script: str, *args: str) -> str:
    proc = subprocess.run([sys.executable, str(EXAMPLES / script), *map(str, args)],
                          capture_output=True, text=True, timeout=60)
    assert proc.returncode != 0, proc.stdout
    return proc.stderr


def test_examples_name_the_valid_ids_for_an_unknown_one(out):
    for script, args in (("face_timelines.py", ["nosuch"]), ("compare_videos.py", ["alpha", "nosuch"])):
        err = _fails(script, out, *args)
        assert "unknown video id(s): nosuch; the videos of" in err
        assert "alpha, beta, gamma, delta" in err
    # a known video without faces says so, differently
    assert "no faces in video 'delta' (it is in the output" in _fails("face_timelines.py", out, "delta")


def test_examples_refuse_an_output_mixing_label_sets(tmp_path):
    import pyarrow.parquet as pq

    out = write_synthetic_output(tmp_path / "out").out
    part = next((out / "faces" / "video_id=beta").glob("*.parquet"))
    table = pq.read_table(part)
    pq.write_table(table.drop_columns(["p_angry", "p_disgust", "p_fear"]), part)
    for script in ("emotion_share.py", "peak_surprise.py"):
        assert "one output holds one label set" in _fails(script, out)
        assert "faces of beta have other labels" in _fails(script, out)
