"""bench/bench_profile.py sorts py-spy stacks into pipeline stages (a raw file written here)."""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def _line_of(marker: str) -> int:
    """The line of ``marker`` in ferbatch/detect.py (so the test follows edits there)."""
    for no, text in enumerate((ROOT / "ferbatch" / "detect.py").read_text().splitlines(), 1):
        if re.match(rf"\s*{re.escape(marker)}", text):
            return no
    raise AssertionError(f"{marker!r} not in detect.py")


def test_bench_profile_sorts_stacks_into_stages(tmp_path: Path) -> None:
    detect = "thread (2): ferbatch-detect_0;_worker (concurrent/futures/thread.py:83);FaceDetector.__call__ (ferbatch/detect.py:175)"
    main = "thread (1): MainThread;<module> (ferbatch/cli.py:307);process_video (ferbatch/pipeline.py:273);_analyse (ferbatch/pipeline.py:330)"
    stage2, stage3 = _line_of("# Stage 2"), _line_of("# Stage 3")
    raw = "\n".join([
        f"{detect};FaceDetector._cascade (ferbatch/detect.py:{stage2 - 3});PNet.forward (ferbatch/mtcnn_nets.py:63) 10",
        f"{detect};FaceDetector._cascade (ferbatch/detect.py:{stage2 - 10});interpolate (torch/nn/functional.py:5237) 4",
        f"{detect};FaceDetector._cascade (ferbatch/detect.py:{stage3 + 1});FaceDetector._crop (ferbatch/detect.py:241) 3",
        f"{detect};FaceDetector._cascade (ferbatch/detect.py:{stage3 + 1});ONet.forward (ferbatch/mtcnn_nets.py:98) 5",
        f"{main};crop_faces (ferbatch/crop.py:60) 2",
        f"{main};EmotionClassifier.__call__ (ferbatch/classify.py:107);Conv2d.forward (torch/nn/modules/conv.py:565) 6",
        f"{main};detect_batches (ferbatch/pipeline.py:238);Future.result (concurrent/futures/_base.py:451);Condition.wait (threading.py:327) 7",
        "thread (1): MainThread;<module> (ferbatch/cli.py:31);_find_and_load (<frozen importlib._bootstrap>:1176) 8",
        "thread (3): ferbatch-decode;Thread.run (threading.py:982);prepared_batches.<locals>.produce (ferbatch/prepare.py:112);PyAVStream._frames (ferbatch/decode/pyav.py:240) 1",
    ]) + "\n"
    (tmp_path / "raw.txt").write_text(raw)
    out = tmp_path / "profile.json"
    proc = subprocess.run([sys.executable, "bench/bench_profile.py", "--raw", str(tmp_path / "raw.txt"),
                           "--rate", "10", "--cpu-s", "3.9", "--json", str(out)],
                          cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    fig = json.loads(out.read_text())
    samples = {k: v["samples"] for k, v in fig["stages"].items()}
    assert samples == {"detect P-Net": 10, "startup: imports": 8, "waiting (thread hand-offs)": 7,
                       "classify": 6, "detect O-Net": 5, "detect P-Net glue": 4,
                       "detect O-Net glue": 3, "crop": 2, "decode": 1}
    # CPU shared out over the 39 samples that are not waits: 0.1 s each
    assert fig["stages"]["detect P-Net"]["cpu_s_est"] == 1.0
    assert fig["stages"]["waiting (thread hand-offs)"]["cpu_s_est"] == 0.0
    assert fig["threads"] == {"MainThread": 2.3, "ferbatch-detect": 2.2, "ferbatch-decode": 0.1}
    assert "detect P-Net glue" in proc.stdout
