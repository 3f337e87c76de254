"""The GPU device check dry-runs on the CPU: tiny settings, every step writes its files."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


@pytest.mark.slow
def test_device_check_dry_runs_on_the_cpu(tmp_path: Path) -> None:
    out = tmp_path / "check"
    proc = subprocess.run([sys.executable, "bench/device_check.py", "--device", "cpu", "--quick",
                           "--out", str(out)], cwd=ROOT, capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    record = json.loads((out / "device_check.json").read_text())
    assert {k: v["exit_code"] for k, v in record.items() if isinstance(v, dict)} == {
        "gpu_tests": 0, "bench": 0, "profile": 0}, record
    assert "no CUDA device here" in (out / "gpu_tests.txt").read_text()  # skipped, with the reason
    results = json.loads((out / "gpu_results.json").read_text())
    stages = results["sizes"]["360"]["stages"]
    assert stages["status"] == "ok" and stages["frames"] == 8 and stages["end_to_end_fps"] > 0
    assert [w["workers"] for w in results["sizes"]["360"]["workers"]] == [1, 2]
    assert (out / "gpu_results.txt").read_text().startswith("device cpu")
    assert "Self CPU" in (out / "profile.txt").read_text() and (out / "profile.json").stat().st_size
