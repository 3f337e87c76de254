"""Resident memory over the course of one long video, in one process (issue 14: flat with
duration?).

Usage::

    .venv/bin/python bench/mem_over_time.py [--size 1280x720] [--minutes 15] [--fps 2] [--every 200]
    .venv/bin/python bench/mem_over_time.py --trace     # also Python's own allocations (tracemalloc)

Generates an h264 clip of ``--minutes`` at 5 fps with one moving real face (scikit-image's
astronaut; ``bench_gpu.write_clip``), loads the stages once, and runs
:func:`ferbatch.pipeline.process_video` on it at ``--fps``; every ``--every`` analysed frames it
prints the process's resident set size (psutil) — and, with ``--trace``, the memory Python
objects hold (tracemalloc; it slows the run several-fold). A leak shows as a trend in both; heap
fragmentation (freed blocks glibc keeps) as resident memory that wanders while Python's stays
flat. ``MALLOC_MMAP_THRESHOLD_=1048576`` in the environment shows the effect of glibc's fixed
mmap threshold (README, *Memory per resolution*).
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
import tracemalloc
from pathlib import Path

import psutil

sys.path.insert(0, str(Path(__file__).resolve().parent))

from bench_gpu import write_clip  # noqa: E402

from ferbatch.config import DecodeConfig, RunConfig  # noqa: E402
from ferbatch.pipeline import Stages, process_video  # noqa: E402


def main(argv: list[str] | None = None) -> list[dict[str, float]]:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--size", default="1280x720", help="WxH of the generated clip")
    ap.add_argument("--minutes", type=float, default=15.0)
    ap.add_argument("--fps", type=float, default=2.0, help="ferbatch's --fps")
    ap.add_argument("--every", type=int, default=200, help="analysed frames between samples")
    ap.add_argument("--trace", action="store_true", help="also sample tracemalloc")
    args = ap.parse_args(argv)
    width, height = (int(v) for v in args.size.split("x"))
    proc = psutil.Process()
    samples: list[dict[str, float]] = []
    with tempfile.TemporaryDirectory(prefix="mem-over-time-") as tmp:
        clip = write_clip(Path(tmp) / "long.mp4", (width, height), int(args.minutes * 60 * 5), 5,
                          {"preset": "ultrafast", "crf": "23"})
        config = RunConfig(device="cpu", decode=DecodeConfig(fps=args.fps))
        stages = Stages(config)
        if args.trace:
            tracemalloc.start()
        t0, done, next_at = time.perf_counter(), 0, args.every

        def sample(n: int) -> None:
            traced = tracemalloc.get_traced_memory()[0] / 2**20 if args.trace else float("nan")
            samples.append({"frames": n, "rss_mb": proc.memory_info().rss / 2**20,
                            "python_mb": traced, "seconds": time.perf_counter() - t0})
            print(f"{n:6d} frames  RSS {samples[-1]['rss_mb']:7.0f} MB"
                  + (f"  Python objects {traced:6.1f} MB" if args.trace else "")
                  + f"  {samples[-1]['seconds']:6.1f} s", flush=True)

        def progress(delta: int) -> None:
            nonlocal done, next_at
            done += delta
            if done >= next_at:
                next_at += args.every
                sample(done)

        result = process_video(clip, config, stages=stages, progress=progress)
        sample(int(result.row["frames_analyzed"]))
    rss = [s["rss_mb"] for s in samples]
    print(f"{args.size}, {args.minutes:g} min at 5 fps, --fps {args.fps:g}: RSS "
          f"{min(rss):.0f}–{max(rss):.0f} MB over {len(rss)} samples, first {rss[0]:.0f}, "
          f"last {rss[-1]:.0f}")
    return samples


if __name__ == "__main__":
    main()
