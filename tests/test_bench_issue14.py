"""bench/bench_issue14.py (issue 14's figures in one command) runs end to end on tiny inputs."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
from skimage import data

from clips import make_face_clip

ROOT = Path(__file__).resolve().parents[1]


@pytest.mark.slow
def test_bench_issue14_quick_prints_every_section(tmp_path: Path) -> None:
    videos = tmp_path / "videos"
    videos.mkdir()
    clip = make_face_clip(videos / "face.mp4", data.astronaut(), n_frames=12, fps=12, size=(320, 240)).path
    out = tmp_path / "figures.json"
    proc = subprocess.run(
        [sys.executable, "bench/bench_issue14.py", "--quick", "--json", str(out),
         "--video", str(clip), "--videos", str(videos), "--fer-python", str(tmp_path / "no-python"),
         "--long-video-s", "2.5", "--resolutions", "360p", "--rss-seconds", "0.2",
         "--long-rss-s", "2", "--lengths", "1.5", "--videos-n", "2", "--scale-fps", "4"],
        cwd=ROOT, capture_output=True, text=True, timeout=1200)  # 402 s on 2 cores at load 10
    assert proc.returncode == 0, proc.stdout + proc.stderr
    report = json.loads(out.read_text())
    sections = report["sections"]
    assert list(sections) == ["fer", "interval", "decode", "rss", "scaling"]
    for name in sections:
        assert f"== {name}:" in proc.stdout
    # no fer here: skipped with the reason, not a failure
    assert "no-python (absent)" in sections["fer"]["skipped"]
    assert "skipped: no Python with the fer package" in proc.stdout

    interval = sections["interval"]
    assert [(s["interval"], s["mode"]) for s in interval["settings"]] == [(3, "adaptive")]
    row = interval["settings"][0]
    assert 0.9 <= row["presence"] <= 1 and 0 <= row["iou_ge_0_8"] <= 1 and row["cpu_s"] > 0

    decode = sections["decode"]
    # 12 frames at 12 fps joined (remux) until >= 2.5 s: 3 copies, every frame decoded, 5 fps analysed
    assert decode["clip"] == {"copies": 3, "seconds": 3.0, "frames": 36}
    assert decode["ferbatch_runs"][0]["frames"] == 15
    assert decode["ratio_wall"] > 0 and decode["ratio_cpu"] > 0
    assert "ferbatch --fps 5 / pure decode" in proc.stdout

    rss = sections["rss"]
    assert rss["resolutions"]["360p"]["frames"] == 6 and rss["resolutions"]["360p"]["peak_rss_mb"] > 100
    long = rss["long_720p_fps2"]["2"]
    assert long["frames"] == 4 and long["statuses"] == ["ok"] and long["peak_rss_mb"] > 100

    scaling = sections["scaling"]
    assert scaling["length"]["1.5"]["frames"] == 8  # 2 copies of the 4-frame one-second clip
    count = scaling["count"]
    assert list(count) == ["2 one-second clips --local", "one 2 s clip --local"]
    assert {r["frames"] for r in count.values()} == {8}  # same frames either way
    assert all(r["wall_s"] > 0 and r["cpu_s"] > 0 for r in count.values())
