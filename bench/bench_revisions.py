"""Whole-process ``ferbatch run`` wall time and peak memory of two or more git revisions,
interleaved on the same machine in the same minutes, so a change's effect is measured
rather than inferred from figures taken on another day (this VM's speed drifts).

Usage::

    .venv/bin/python bench/bench_revisions.py d092495 HEAD [--video PATH] [--runs 7]

Each revision is checked out with ``git worktree`` into a temporary folder and run with this
checkout's ``.venv`` as ``python -m ferbatch.cli run VIDEO --out TMP -q`` from that folder (so
its ``ferbatch`` package is the one imported). Prints the median and every run.
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import psutil

ROOT = Path(__file__).resolve().parents[1]


def run_once(worktree: Path, video: Path) -> tuple[float, float]:
    """Seconds and peak RSS (MB, the process and its children, polled) of one run."""
    with tempfile.TemporaryDirectory() as out:
        t0 = time.perf_counter()
        proc = subprocess.Popen([sys.executable, "-m", "ferbatch.cli", "run", str(video),
                                 "--out", out, "-q"], cwd=worktree,
                                stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
        root, peak = psutil.Process(proc.pid), 0
        while proc.poll() is None:
            try:
                peak = max(peak, sum(p.memory_info().rss for p in [root, *root.children(recursive=True)]))
            except psutil.Error:
                pass
            time.sleep(0.02)
        seconds = time.perf_counter() - t0
        if proc.returncode != 0:
            raise SystemExit(f"{worktree}: ferbatch run failed:\n{proc.stderr.read() if proc.stderr else ''}")
    return seconds, peak / 1e6


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("revisions", nargs="+", help="git revisions to compare (e.g. a commit and HEAD)")
    parser.add_argument("--video", type=Path,
                        default=ROOT.parent / "shared" / "videos" / "WolfgangLanger_Pexels.mp4")
    parser.add_argument("--runs", type=int, default=7)
    args = parser.parse_args()
    if not args.video.is_file():
        raise SystemExit(f"video not found: {args.video}")
    video = args.video.resolve()
    with tempfile.TemporaryDirectory() as tmp:
        trees = {}
        for rev in args.revisions:
            tree = Path(tmp) / f"rev{len(trees)}"
            subprocess.run(["git", "-C", str(ROOT), "worktree", "add", "--detach", "-f", str(tree), rev],
                           check=True, capture_output=True)
            trees[rev] = tree
        try:
            results: dict[str, list[tuple[float, float]]] = {rev: [] for rev in trees}
            for _ in range(args.runs):
                for rev, tree in trees.items():
                    results[rev].append(run_once(tree, video))
        finally:
            for tree in trees.values():
                subprocess.run(["git", "-C", str(ROOT), "worktree", "remove", "--force", str(tree)],
                               capture_output=True)
    print(f"`ferbatch run {video.name}` whole process, {args.runs} interleaved runs each:")
    for rev, runs in results.items():
        secs = [s for s, _ in runs]
        mbs = [m for _, m in runs]
        print(f"  {rev:12} median {statistics.median(secs):6.2f} s  (runs {', '.join(f'{s:.1f}' for s in secs)})"
              f"  peak RSS median {statistics.median(mbs):5.0f} MB")


if __name__ == "__main__":
    main()
