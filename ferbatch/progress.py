"""Console progress for local runs: a tqdm bar of frames with frames/s, and the final table."""

from __future__ import annotations

import os
import sys
from pathlib import Path
from typing import Any

from .schema import STATUS_FAILED


class ConsoleProgress:
    """A ``runner.run`` hook: one bar over all frames, a line per finished video."""

    def __init__(self, enabled: bool = True) -> None:
        self.enabled = enabled and sys.stderr is not None
        self.bar: Any = None
        self.total = 0
        self.done = 0

    def __enter__(self) -> "ConsoleProgress":
        return self

    def __exit__(self, *exc: object) -> None:
        if self.bar is not None:
            self.bar.close()

    def __call__(self, event: str, payload: Any) -> None:
        if not self.enabled:
            return
        from tqdm import tqdm

        if event == "start":
            self.total = int(payload)
            self.bar = tqdm(total=None, unit="frame", dynamic_ncols=True, file=sys.stderr,
                            desc=f"0/{self.total} videos")
        elif event == "video" and self.bar is not None:
            self.bar.set_postfix_str(Path(payload).name[:40])
        elif event == "frames" and self.bar is not None:
            self.bar.update(int(payload))
        elif event in ("done", "skip") and self.bar is not None:
            self.done += 1
            self.bar.set_description(f"{self.done}/{self.total} videos")
            row = payload if event == "skip" else payload.row
            if row["status"] == STATUS_FAILED:
                self.bar.write(f"FAILED {row['error']}", file=sys.stderr)


def _fmt(value: Any, spec: str = "") -> str:
    if value is None:
        return "-"
    return format(value, spec) if spec else str(value)


def format_summary(summary: Any) -> str:
    """A plain-text table: one line per video with status, frames, faces, ids, speed."""
    header = f"{'status':8} {'frames':>7} {'faces':>7} {'ids':>4} {'sec':>7} {'fps':>7}  video"
    lines = [header, "-" * len(header)]
    skipped = {os.path.abspath(p) for p in summary.skipped}  # rows hold absolute paths
    for row in summary.rows:
        secs = row.get("processing_s") or 0.0
        fps = (row.get("frames_analyzed") or 0) / secs if secs > 0 else None
        status = row["status"] + ("*" if os.path.abspath(row["path"]) in skipped else "")
        lines.append(f"{status:8} {_fmt(row.get('frames_analyzed')):>7} "
                     f"{_fmt(row.get('faces_detected')):>7} {_fmt(row.get('tracks')):>4} "
                     f"{secs:7.1f} {_fmt(fps, '7.1f'):>7}  {row['path']}")
    n_ok = sum(r["status"] == "ok" for r in summary.rows)
    lines.append(f"{len(summary.rows)} videos: {n_ok} ok, "
                 f"{sum(r['status'] == 'partial' for r in summary.rows)} partial, "
                 f"{len(summary.failed)} failed; {len(skipped)} already done (*) ; "
                 f"{summary.frames} frames in {summary.seconds:.1f} s")
    for row in summary.rows:
        if row["status"] != "ok":
            lines.append(f"  {row['status']}: {row['error']}")
    lines.append(f"results: {summary.out}/videos.parquet, {summary.out}/frames/, {summary.out}/faces/")
    return "\n".join(lines)


def print_summary(summary: Any) -> None:
    print(format_summary(summary))
