"""Ray scaling benchmark: the same folder with 1 worker, then N workers; throughput and ratio.

Usage (run it on a quiet machine; it is not part of the tests)::

    .venv/bin/python bench/bench_ray.py [--videos ../shared/videos] [--workers 1 2]
        [--cpus-per-worker 1] [--fps F] [--local] [--json bench/ray_results.json]

One local Ray instance (127.0.0.1 only) is started first and its start-up is reported apart;
each timed run includes the workers' model loading (part of any real run) and writes a fresh
output folder. ``--local`` adds the in-process ``ferbatch.run`` (all cores) as a baseline.
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
from ferbatch.runner.local import run  # noqa: E402
from ferbatch.runner.plan import discover_videos  # noqa: E402
from ferbatch.runner.ray_pool import run_distributed  # noqa: E402
from ferbatch.runner.ray_setup import init_local  # noqa: E402
from ferbatch.runner.summary import RunSummary  # noqa: E402


def _figures(label: str, summary: RunSummary, seconds: float) -> dict[str, Any]:
    frames = summary.frames
    row = {"run": label, "videos": len(summary.rows), "frames": frames,
           "seconds": round(seconds, 2), "frames_per_s": round(frames / seconds, 2),
           "failed": len(summary.failed)}
    print(f"{label:>12}: {frames} frames of {len(summary.rows)} videos in {seconds:6.1f} s "
          f"= {row['frames_per_s']:6.1f} frames/s ({row['failed']} failed)", flush=True)
    return row


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--videos", default=str(ROOT.parent / "shared" / "videos"))
    ap.add_argument("--workers", type=int, nargs="+", default=[1, 2])
    ap.add_argument("--cpus-per-worker", type=float, default=1.0)
    ap.add_argument("--fps", type=float, default=None, help="Sample N frames/s (default: all).")
    ap.add_argument("--local", action="store_true", help="Also time the in-process runner.")
    ap.add_argument("--json", default=None, help="Write the figures here.")
    args = ap.parse_args()

    videos = discover_videos([args.videos])
    if not videos:
        sys.exit(f"no videos under {args.videos}")
    config = RunConfig(decode=DecodeConfig(fps=args.fps)).validate()
    print(f"{len(videos)} videos under {args.videos}; {os.cpu_count()} CPUs; "
          f"{args.cpus_per_worker:g} CPU(s) per worker; sampling fps={args.fps}", flush=True)
    scratch = Path(tempfile.mkdtemp(prefix="bench-ray-"))
    ray_temp = tempfile.mkdtemp(prefix="bray-", dir="/tmp")  # short: Unix socket paths
    results: list[dict[str, Any]] = []
    try:
        t0 = time.perf_counter()
        init_local(temp_dir=ray_temp)
        ray_start = time.perf_counter() - t0
        print(f"local ray.init: {ray_start:.1f} s (not in the figures below)", flush=True)
        for n in args.workers:
            out = scratch / f"w{n}"
            t0 = time.perf_counter()
            summary = run_distributed([args.videos], out, config, workers=n,
                                      cpus_per_worker=args.cpus_per_worker)
            results.append(_figures(f"{n} worker{'s' if n > 1 else ''}", summary,
                                    time.perf_counter() - t0))
        if args.local:
            t0 = time.perf_counter()
            summary = run([args.videos], scratch / "local", config)
            results.append(_figures("in-process", summary, time.perf_counter() - t0))
    finally:
        import ray

        if ray.is_initialized():
            ray.shutdown()
        shutil.rmtree(scratch, ignore_errors=True)
        shutil.rmtree(ray_temp, ignore_errors=True)
    base = results[0]["frames_per_s"]
    for r in results[1:]:
        print(f"throughput ratio {r['run']} / {results[0]['run']}: {r['frames_per_s'] / base:.2f}x")
    if args.json:
        Path(args.json).write_text(json.dumps({
            "machine": platform.platform(), "cpus": os.cpu_count(), "ray_init_s": round(ray_start, 2),
            "cpus_per_worker": args.cpus_per_worker, "fps": args.fps, "runs": results}, indent=2))


if __name__ == "__main__":
    main()
