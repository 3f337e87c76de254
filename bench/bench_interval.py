"""Detection interval benchmark: tracked runs against detecting every frame, on real clips.

Usage (not part of the tests; a few minutes on 2 cores)::

    .venv/bin/python bench/bench_interval.py [--videos ../shared/videos] [--intervals 2,3,5]
        [--modes fixed,adaptive] [--device cpu] [--json bench/interval_results.json]

Every clip is analysed once with ``--detect-interval 0`` (the reference) and once per interval
and mode, all frames, one process, models loaded once. For each setting it prints, summed over
the clips:

* ``presence``: share of frames where "a face is present" agrees with the reference;
* ``iou>=0.8``: share of the reference's face rows that have a row on the same frame with box
  IoU >= 0.8 (rows matched one-to-one, best IoU first);
* ``same top``: share of the reference's face rows whose matched row (IoU >= 0.5) has the same
  top emotion (unmatched rows count as different);
* ``extra ids``: face ids (tracks) handed out beyond the reference's, summed over clips
  (never negative per clip);
* ``detected``: share of face rows whose box came from the detector;
* ``wall s``: the pipeline's ``processing_s`` summed over clips (decode to tables, models
  already loaded); ``cpu s``: the process's CPU time for the same (all threads; steadier than
  wall time on a shared machine), and the speed-up in CPU time over the reference.

Targets (issue 14): presence >= 99 %, iou>=0.8 >= 95 %, same top >= 97 %, no extra ids.
"""

from __future__ import annotations

import argparse
import json
import platform
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from ferbatch.config import IntervalConfig, RunConfig  # noqa: E402
from ferbatch.pipeline import Stages, VideoResult, process_video  # noqa: E402
from ferbatch.track import greedy_assign, iou_matrix  # noqa: E402

VIDEO_SUFFIXES = {".mp4", ".mov", ".mkv", ".webm", ".avi"}


def _faces(result: VideoResult) -> dict[str, np.ndarray]:
    t = result.faces
    assert t is not None
    return {
        "frame": t["frame_index"].to_numpy(),
        "boxes": np.stack([t[c].to_numpy() for c in ("x1", "y1", "x2", "y2")], 1).astype(np.float64)
        if t.num_rows else np.zeros((0, 4)),
        "emotion": np.asarray(t["emotion"].to_pylist(), dtype=object),
        "detected": np.asarray([s == "detected" for s in t["box_source"].to_pylist()], bool),
    }


def timed(clip: Path, config: RunConfig, stages: Stages) -> tuple[VideoResult, float]:
    """The result of one clip and the CPU seconds the process spent on it."""
    cpu = time.process_time()
    res = process_video(clip, config, stages)
    if res.status != "ok":
        raise SystemExit(f"{clip}: {res.row['error']}")
    return res, time.process_time() - cpu


def compare(ref: VideoResult, run: VideoResult) -> dict[str, float]:
    """Counts of agreement between a run and the reference run of the same clip."""
    assert ref.frames is not None and run.frames is not None
    present_ref = ref.frames["num_faces"].to_numpy() > 0
    present_run = run.frames["num_faces"].to_numpy() > 0
    if len(present_ref) != len(present_run):
        raise SystemExit(f"{ref.row['path']}: {len(present_ref)} vs {len(present_run)} frames")
    a, b = _faces(ref), _faces(run)
    iou_ok = same = 0
    for f in np.unique(a["frame"]):
        ia, ib = np.flatnonzero(a["frame"] == f), np.flatnonzero(b["frame"] == f)
        if not len(ib):
            continue
        iou = iou_matrix(a["boxes"][ia], b["boxes"][ib])
        for r, c in greedy_assign(iou, at_least=0.5):
            iou_ok += iou[r, c] >= 0.8
            same += a["emotion"][ia[r]] == b["emotion"][ib[c]]
    return {
        "frames": len(present_ref), "presence_same": int((present_ref == present_run).sum()),
        "rows": len(a["frame"]), "iou_ok": int(iou_ok), "same_top": int(same),
        "extra_ids": max(0, run.row["tracks"] - ref.row["tracks"]),
        "run_rows": len(b["frame"]), "run_detected": int(b["detected"].sum()),
        "time_s": run.row["processing_s"],
    }


def interval_table(clips: list[Path], settings: list[tuple[int, str]], device: str = "cpu",
                   ) -> dict[str, Any]:
    """Analyse ``clips`` with ``--detect-interval 0`` and with each ``(interval, mode)`` of
    ``settings`` (mode ``fixed`` or ``adaptive``), print the table, and return its figures:
    ``reference_s`` / ``reference_cpu_s`` and one ``settings`` entry per setting (the columns
    of the module docstring as shares in [0, 1], plus ``per_clip`` counts)."""
    stages = Stages(RunConfig(device=device))
    refs, ref_cpu = {}, 0.0
    for clip in clips:
        refs[clip], cpu = timed(clip, RunConfig(device=device), stages)
        ref_cpu += cpu
    ref_time = sum(r.row["processing_s"] for r in refs.values())
    print(f"{len(clips)} clips ({', '.join(c.name for c in clips)}), "
          f"{sum(r.frames.num_rows for r in refs.values())} frames, "
          f"{sum(r.faces.num_rows for r in refs.values())} face rows; device {device}; "
          f"{platform.processor() or platform.machine()}")
    print(f"reference (--detect-interval 0): {ref_time:.2f} s wall, {ref_cpu:.2f} s cpu")
    header = (f"{'setting':<14}{'presence':>10}{'iou>=0.8':>10}{'same top':>10}{'extra ids':>11}"
              f"{'detected':>10}{'wall s':>8}{'cpu s':>8}{'speed-up':>10}")
    print(header)
    table: list[dict[str, Any]] = []
    for n, mode in settings:
        config = RunConfig(device=device,
                           interval=IntervalConfig(detect_interval=n, adaptive=mode == "adaptive"))
        totals: dict[str, float] = {}
        per_clip = {}
        for clip in clips:
            res, cpu = timed(clip, config, stages)
            counts = compare(refs[clip], res)
            counts["cpu_s"] = cpu
            per_clip[clip.name] = counts
            for k, v in counts.items():
                totals[k] = totals.get(k, 0) + v
        line = {
            "interval": n, "mode": mode,
            "presence": totals["presence_same"] / totals["frames"],
            "iou_ge_0_8": totals["iou_ok"] / max(totals["rows"], 1),
            "same_top": totals["same_top"] / max(totals["rows"], 1),
            "extra_ids": int(totals["extra_ids"]),
            "detected": totals["run_detected"] / max(totals["run_rows"], 1),
            "time_s": totals["time_s"], "cpu_s": totals["cpu_s"],
            "speedup": ref_cpu / totals["cpu_s"],
            "per_clip": per_clip,
        }
        table.append(line)
        print(f"{f'{n} {mode}':<14}{line['presence']:>10.2%}{line['iou_ge_0_8']:>10.2%}"
              f"{line['same_top']:>10.2%}{line['extra_ids']:>11d}{line['detected']:>10.1%}"
              f"{line['time_s']:>8.2f}{line['cpu_s']:>8.2f}{line['speedup']:>9.2f}x", flush=True)
    return {"reference_s": ref_time, "reference_cpu_s": ref_cpu, "settings": table}


def clips_in(folder: Path) -> list[Path]:
    """The video clips directly in ``folder``, sorted; exits with a message when there are none."""
    clips = sorted(p for p in folder.iterdir() if p.suffix.lower() in VIDEO_SUFFIXES)
    if not clips:
        raise SystemExit(f"{folder}: no video clips")
    return clips


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    shared = next((d / "shared" / "videos" for d in ROOT.parents if (d / "shared" / "videos").is_dir()),
                  ROOT.parent / "shared" / "videos")
    ap.add_argument("--videos", type=Path, default=shared)
    ap.add_argument("--intervals", default="2,3,5")
    ap.add_argument("--modes", default="fixed,adaptive")
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--json", type=Path, default=None)
    args = ap.parse_args()
    settings = [(int(n), mode) for n in args.intervals.split(",") for mode in args.modes.split(",")]
    figures = interval_table(clips_in(args.videos), settings, args.device)
    if args.json:
        args.json.write_text(json.dumps(figures, indent=1))


if __name__ == "__main__":
    main()
