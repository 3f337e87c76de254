"""bench/bench_models.py measures every bundled model (tiny settings here)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from ferbatch.models.bundled import bundled_names

ROOT = Path(__file__).resolve().parents[1]


def test_bench_models_lists_every_bundled_model(tmp_path: Path) -> None:
    out = tmp_path / "models.json"
    proc = subprocess.run([sys.executable, "bench/bench_models.py", "--repeats", "1", "--faces", "2",
                           "--threads", "1", "--json", str(out)], cwd=ROOT, capture_output=True,
                          text=True, timeout=300)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    rows = json.loads(out.read_text())
    assert [r["name"] for r in rows] == bundled_names()
    for row in rows:
        assert row["parameters"] > 0 and row["size_mb"] > 0 and len(row["labels"]) >= 2
        assert row["batch1_faces_per_s"] > 0 and row["batch64_faces_per_s"] > 0
        assert row["batch1_unfolded_faces_per_s"] > 0 and row["batch64_unfolded_faces_per_s"] > 0
        assert row["name"] in proc.stdout
