"""Segment benchmark: one long video through Ray, whole (one worker busy) vs split across workers.

Usage (run it on a quiet machine; it is not part of the tests)::

    .venv/bin/python bench/bench_segments.py [--video ../shared/videos/WolfgangLanger_Pexels.mp4]
        [--repeat 3] [--workers 2] [--segment-s S] [--fps F] [--json bench/segments.json]

``--repeat N`` first remuxes the video N times end to end into a temp file (stream copy, no
re-encoding), for a longer input. ``--segment-s`` defaults to 0.98 × the duration / ``--workers``, so
the video is cut into about one segment per worker. One local Ray instance (127.0.0.1 only) is
started first, its start-up reported apart; each timed run includes the workers' model loading.
The two runs' rows are compared (face ids included) and the throughput ratio printed.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from ferbatch.config import DecodeConfig, RunConfig  # noqa: E402
from ferbatch.runner.ray_pool import run_distributed  # noqa: E402
from ferbatch.runner.ray_setup import init_local  # noqa: E402
from ferbatch.segments import header_duration, plan_segments  # noqa: E402


def concat_video(src: Path, dst: Path, repeat: int) -> Path:
    """Remux the video stream of ``src`` ``repeat`` times back to back into ``dst``."""
    import av

    with av.open(str(src)) as probe:
        stream = probe.streams.video[0]
        packets = [p for p in probe.demux(stream) if p.size]
        first = min(p.pts for p in packets)
        step = max(p.pts + (p.duration or 0) for p in packets) - first
    with av.open(str(dst), "w") as out:
        ostream = None
        for k in range(repeat):
            with av.open(str(src)) as inp:
                istream = inp.streams.video[0]
                if ostream is None:
                    ostream = out.add_stream_from_template(istream)
                for packet in inp.demux(istream):
                    if not packet.size:
                        continue
                    packet.pts += k * step
                    packet.dts = None if packet.dts is None else packet.dts + k * step
                    packet.stream = ostream
                    out.mux(packet)
    return dst


def _figures(label: str, frames: int, seconds: float, worker_s: float) -> dict[str, Any]:
    """One run's figures; ``worker_s`` is the video's ``processing_s`` (summed over segments)."""
    row = {"run": label, "frames": frames, "seconds": round(seconds, 2),
           "frames_per_s": round(frames / seconds, 2), "worker_s": round(worker_s, 2)}
    print(f"{label:>22}: {frames} frames in {seconds:6.1f} s = {row['frames_per_s']:6.1f} frames/s "
          f"(worker time {worker_s:.1f} s)", flush=True)
    return row


def _same_rows(a: Path, b: Path) -> str:
    """A line saying whether the two outputs hold the same frames and faces rows."""
    import numpy as np
    import pandas as pd

    notes = []
    for name in ("frames", "faces"):
        x, y = pd.read_parquet(a / name), pd.read_parquet(b / name)
        if len(x) != len(y):
            return f"{name}: {len(x)} vs {len(y)} rows"
        keys = ["frame_index", "face_id"] if name == "faces" else ["frame_index"]
        x, y = x.sort_values(keys).reset_index(drop=True), y.sort_values(keys).reset_index(drop=True)
        for col in x.columns:
            if col == "video_id":
                continue
            if pd.api.types.is_float_dtype(x[col]):
                diff = float(np.abs(x[col].to_numpy() - y[col].to_numpy()).max()) if len(x) else 0.0
                if diff > 1e-3:
                    notes.append(f"{name}.{col} differs by {diff:.2g}")
            elif x[col].tolist() != y[col].tolist():
                notes.append(f"{name}.{col} differs")
    return "identical rows (floats to 1e-3)" if not notes else "; ".join(notes)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--video", default=str(ROOT.parent / "shared" / "videos" / "WolfgangLanger_Pexels.mp4"))
    ap.add_argument("--repeat", type=int, default=3, help="Concatenate the video N times first.")
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--cpus-per-worker", type=float, default=1.0)
    ap.add_argument("--segment-s", type=float, default=None,
                    help="Segment length (default: 0.98 x the duration / --workers).")
    ap.add_argument("--fps", type=float, default=None, help="Sample N frames/s (default: all).")
    ap.add_argument("--json", default=None, help="Write the figures here.")
    args = ap.parse_args()

    scratch = Path(tempfile.mkdtemp(prefix="bench-seg-"))
    ray_temp = tempfile.mkdtemp(prefix="bseg-", dir="/tmp")  # short: Unix socket paths
    results: list[dict[str, Any]] = []
    try:
        video = Path(args.video)
        if args.repeat > 1:
            video = concat_video(video, scratch / f"{video.stem}_x{args.repeat}{video.suffix}",
                                 args.repeat)
        duration = header_duration(video) or 0.0
        segment_s = args.segment_s or 0.98 * duration / args.workers
        config = RunConfig(decode=DecodeConfig(fps=args.fps)).validate()
        plan = plan_segments(video, config, segment_s)
        print(f"{video.name}: {duration:.1f} s, {plan.n_frames} frames; {os.cpu_count()} CPUs; "
              f"{args.workers} workers x {args.cpus_per_worker:g} CPU; sampling fps={args.fps}; "
              f"--segment-s {segment_s:.2f}: {plan.reason}", flush=True)
        if not plan.split:
            sys.exit("the video would not be split: choose a smaller --segment-s")
        t0 = time.perf_counter()
        init_local(temp_dir=ray_temp)
        ray_start = time.perf_counter() - t0
        print(f"local ray.init: {ray_start:.1f} s (not in the figures below)", flush=True)
        runs = (("whole (1 worker busy)", 0.0, "whole"), (f"split ({len(plan.spans)} segments)",
                                                          segment_s, "split"))
        for label, seg, name in runs:
            t0 = time.perf_counter()
            summary = run_distributed([video], scratch / name, config, workers=args.workers,
                                      cpus_per_worker=args.cpus_per_worker, segment_s=seg)
            seconds = time.perf_counter() - t0
            if not summary.all_ok:
                sys.exit(f"{label}: {summary.rows[0]['status']}: {summary.rows[0]['error']}")
            results.append(_figures(label, summary.frames, seconds,
                                    float(summary.rows[0]["processing_s"] or 0.0)))
        print(f"throughput ratio split / whole: "
              f"{results[1]['frames_per_s'] / results[0]['frames_per_s']:.2f}x", flush=True)
        same = _same_rows(scratch / "whole", scratch / "split")
        print(f"split vs whole: {same}", flush=True)
    finally:
        import ray

        if ray.is_initialized():
            ray.shutdown()
        shutil.rmtree(scratch, ignore_errors=True)
        shutil.rmtree(ray_temp, ignore_errors=True)
    if args.json:
        Path(args.json).write_text(json.dumps({
            "machine": platform.platform(), "cpus": os.cpu_count(), "ray_init_s": round(ray_start, 2),
            "video": args.video, "repeat": args.repeat, "workers": args.workers,
            "cpus_per_worker": args.cpus_per_worker, "segment_s": segment_s, "fps": args.fps,
            "segments": len(plan.spans), "rows": same, "runs": results}, indent=2))


if __name__ == "__main__":
    main()
