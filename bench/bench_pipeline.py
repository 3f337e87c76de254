"""Pipeline benchmark: frames/s per stage and end to end, peak memory, classifier faces/s.

Usage::

    .venv/bin/python bench/bench_pipeline.py [--videos ../shared/videos] [--json bench/results.json]

1. Per stage, on every video: decode (PyAV, RGB), detect (MTCNN, batched; one batch at a time,
   then as the pipeline runs it: ``devices.detect_concurrency`` batches at once), crop, classify.
2. End to end in-process (``process_video``), sampling every frame and at 5 fps.
3. The whole ``ferbatch run`` process on WolfgangLanger_Pexels.mp4 (start-up included), wall
   time and peak RSS (``bench/bench_issue14.py --only fer`` times the ``fer`` package on the same
   clip in interleaved runs: this VM's speed drifts from day to day, a fixed figure would not).
4. Classifier throughput for batch 1 and batch 256.
Run it on a quiet machine: every figure is a wall-clock measurement.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from ferbatch.classify import EmotionClassifier  # noqa: E402
from ferbatch.config import DecodeConfig, RunConfig  # noqa: E402
from ferbatch.crop import crop_faces, to_grey  # noqa: E402
from ferbatch.decode import Frame, FrameSampler, open_video  # noqa: E402
from ferbatch.detect import FaceDetector  # noqa: E402
from ferbatch.devices import detect_concurrency  # noqa: E402
from ferbatch.pipeline import Stages, detect_batches, process_video  # noqa: E402


def stage_times(path: Path, stages: Stages) -> dict[str, float]:
    """Seconds per stage for every frame of ``path`` (stages run one after the other)."""
    t0 = time.perf_counter()
    with open_video(path) as stream:
        frames = [f.image for f in stream.frames(FrameSampler())]
    t_decode = time.perf_counter() - t0
    det: FaceDetector = stages.detector
    bs = stages.detect_batch

    def batches() -> Iterator[list[Frame]]:
        return ([Frame(i + j, 0.0, f) for j, f in enumerate(frames[i:i + bs])]
                for i in range(0, len(frames), bs))

    t0 = time.perf_counter()
    dets = [d for _, found in detect_batches(batches(), det.detect_frames, 1) for d in found]
    t_detect = time.perf_counter() - t0
    workers = detect_concurrency(stages.device)
    t0 = time.perf_counter()
    for _ in detect_batches(batches(), det.detect_frames, workers):
        pass
    t_detect_conc = time.perf_counter() - t0
    pre = stages.classifier.preprocess
    t0 = time.perf_counter()
    crops = [crop_faces(to_grey(f), d.boxes, d.landmarks, pre) for f, d in zip(frames, dets) if len(d)]
    crops_arr = np.concatenate(crops) if crops else np.zeros((0, pre.image_size, pre.image_size), np.uint8)
    t_crop = time.perf_counter() - t0
    t0 = time.perf_counter()
    stages.classifier(crops_arr)
    t_classify = time.perf_counter() - t0
    n = len(frames)
    return {"frames": n, "faces": int(len(crops_arr)),
            "frames_with_face": int(sum(len(d) > 0 for d in dets)),
            "decode_fps": n / t_decode, "detect_fps": n / t_detect,
            "detect_workers": workers, "detect_concurrent_fps": n / t_detect_conc,
            "crop_faces_per_s": len(crops_arr) / t_crop if t_crop else 0.0,
            "classify_faces_per_s": len(crops_arr) / t_classify if t_classify and len(crops_arr) else 0.0}


def end_to_end(path: Path, fps: float | None) -> dict[str, float]:
    cfg = RunConfig(decode=DecodeConfig(fps=fps))
    stages = Stages(cfg)
    t0 = time.perf_counter()
    result = process_video(path, cfg, stages)
    dt = time.perf_counter() - t0
    return {"frames_analyzed": result.row["frames_analyzed"], "seconds": dt,
            "analyzed_fps": result.row["frames_analyzed"] / dt,
            "video_s_per_wall_s": (result.row["duration_s"] or 0) / dt,
            "status": result.row["status"]}


def _peak_rss_mb(proc: subprocess.Popen[str]) -> float:
    """Poll the peak resident memory of ``proc`` and its children until it exits (MB).

    Polling, not ``ru_maxrss``: a forked child's ru_maxrss counts the parent's pages it held
    before ``exec`` — here the benchmark's own loaded models and frames."""
    import psutil

    peak = 0
    root = psutil.Process(proc.pid)
    while proc.poll() is None:
        try:
            rss = sum(p.memory_info().rss for p in [root, *root.children(recursive=True)])
        except psutil.Error:
            rss = 0
        peak = max(peak, rss)
        time.sleep(0.02)
    return peak / 1e6


def whole_process(path: Path) -> dict[str, float]:
    """``ferbatch run`` as a user runs it: a fresh process, start-up and writing included."""
    exe = Path(sys.executable).with_name("ferbatch")
    with tempfile.TemporaryDirectory() as tmp:
        t0 = time.perf_counter()
        proc = subprocess.Popen([str(exe), "run", str(path), "--out", tmp, "-q"],
                                stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
        peak_mb = _peak_rss_mb(proc)
        dt = time.perf_counter() - t0
        output = proc.stdout.read() if proc.stdout else ""
        import pandas as pd

        frames = pd.read_parquet(Path(tmp) / "frames")
    if proc.returncode != 0:
        raise SystemExit(output)
    return {"seconds": dt, "peak_rss_mb": peak_mb,
            "frames": len(frames), "frames_with_face_share": float((frames.num_faces > 0).mean())}


def classifier_speed() -> dict[str, float]:
    clf = EmotionClassifier(None, device="cpu")
    faces = np.random.default_rng(0).integers(0, 255, (1024, 48, 48), dtype=np.uint8)
    clf(faces[:64])
    t0 = time.perf_counter()
    for i in range(200):
        clf(faces[i:i + 1])
    b1 = 200 / (time.perf_counter() - t0)
    t0 = time.perf_counter()
    for _ in range(3):
        clf(faces[:256])
    b256 = 3 * 256 / (time.perf_counter() - t0)
    return {"batch1_faces_per_s": b1, "batch256_faces_per_s": b256}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--videos", default=str(ROOT.parent / "shared" / "videos"))
    parser.add_argument("--json", default=None, help="also write the figures here")
    args = parser.parse_args()
    videos = sorted(p for p in Path(args.videos).iterdir() if p.suffix in (".mp4", ".mov"))
    if not videos:
        raise SystemExit(f"no videos in {args.videos}")
    report: dict[str, object] = {
        "machine": f"{platform.processor() or platform.machine()}, {os.cpu_count()} cores, torch {torch.__version__}, {torch.get_num_threads()} threads",
        "when": time.strftime("%Y-%m-%d %H:%M:%S"),
    }
    stages = Stages(RunConfig())
    print(f"{'video':32} {'frames':>6} {'w/face':>6} {'decode':>8} {'detect':>8} "
          f"{'det ×' + str(detect_concurrency(stages.device)):>8} {'crop f/s':>9} {'cls f/s':>8}")
    per_stage = {}
    for v in videos:
        s = stage_times(v, stages)
        per_stage[v.name] = s
        print(f"{v.name:32} {s['frames']:6d} {s['frames_with_face']:6d} {s['decode_fps']:8.1f} "
              f"{s['detect_fps']:8.1f} {s['detect_concurrent_fps']:8.1f} {s['crop_faces_per_s']:9.0f} {s['classify_faces_per_s']:8.0f}")
    report["per_stage_fps"] = per_stage
    print("\nend to end in-process (models already loaded), frames analysed per second:")
    e2e = {}
    for v in videos:
        for fps in (None, 5.0):
            r = end_to_end(v, fps)
            key = f"{v.name} {'every frame' if fps is None else '5 fps'}"
            e2e[key] = r
            print(f"  {key:44} {r['frames_analyzed']:5d} frames {r['seconds']:6.2f} s "
                  f"{r['analyzed_fps']:6.1f} f/s  {r['video_s_per_wall_s']:5.2f}× real time")
    report["end_to_end"] = e2e
    wolf = Path(args.videos) / "WolfgangLanger_Pexels.mp4"
    if wolf.exists():
        runs = [whole_process(wolf) for _ in range(3)]
        w = dict(sorted(runs, key=lambda r: r["seconds"])[1])  # the median of three
        w["runs_s"] = [round(r["seconds"], 2) for r in runs]
        report["whole_process_wolfgang"] = w
        print(f"\nwhole `ferbatch run WolfgangLanger_Pexels.mp4` process, median of 3 "
              f"({', '.join(f'{x:.1f}' for x in w['runs_s'])} s): {w['seconds']:.1f} s, "
              f"peak RSS {w['peak_rss_mb']:.0f} MB, faces in {100 * w['frames_with_face_share']:.1f} % "
              f"of {w['frames']} frames  (against fer in the same minutes: "
              f"bench/bench_issue14.py --only fer)")
    c = classifier_speed()
    report["classifier"] = c
    print(f"\nclassifier on CPU: batch 1 {c['batch1_faces_per_s']:.0f} faces/s, "
          f"batch 256 {c['batch256_faces_per_s']:.0f} faces/s")
    if args.json:
        Path(args.json).write_text(json.dumps(report, indent=2))
        print(f"\nwrote {args.json}")


if __name__ == "__main__":
    main()
