"""The CPU container image, built and run (``docker/image_test.sh``, ``make image-test``).

Slow and opt-in: building the image (a Debian base from mmdebstrap, torch's wheels, Ray) takes
well over CI's per-suite budget on 2 cores, so this test runs only with ``FERBATCH_IMAGE_TEST=1``
(``make image-test`` sets it) and skips, with the reason, when podman or mmdebstrap is absent.
It builds (or reuses the layers of) the image, runs ``ferbatch demo`` inside it and reads the
Parquet from the host.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]


@pytest.mark.slow
def test_cpu_image_builds_and_its_demo_output_reads_on_the_host(tmp_path: Path) -> None:
    missing = [tool for tool in ("podman", "mmdebstrap") if shutil.which(tool) is None]
    if missing:
        pytest.skip(f"no image builder: {', '.join(missing)} not installed "
                    "(apt-get install podman mmdebstrap)")
    if os.environ.get("FERBATCH_IMAGE_TEST") != "1":
        pytest.skip("image build takes longer than CI's test budget on 2 cores: run "
                    "`make image-test` (or set FERBATCH_IMAGE_TEST=1)")
    env = {**os.environ, "PY": sys.executable, "FERBATCH_IMAGE_WORK": str(tmp_path)}
    # the script's output is shown as it runs (with `pytest -s`, as `make image-test` runs it:
    # the build takes most of an hour) and kept for the assertions
    proc = subprocess.Popen(["bash", str(REPO / "docker" / "image_test.sh")], env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    lines = []
    assert proc.stdout is not None
    for line in proc.stdout:
        print(line, end="", flush=True)
        lines.append(line)
    code = proc.wait(timeout=3 * 3600)
    output = "".join(lines)
    assert code == 0, output[-8000:]
    assert "image-test: ok" in output
