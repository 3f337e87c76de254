"""GPU throughput of the pipeline: end-to-end and per-stage frames/s at 360p, 720p and 1080p,
with 1-8 worker processes sharing one GPU, several decode-thread and batch settings; peak GPU
memory and CPU use. Writes JSON and a text table.

    .venv/bin/python bench/bench_gpu.py --json bench/gpu_results.json          # make bench-gpu
    python3 bench/bench_gpu.py --device cpu --frames 8 --sizes 360 --workers 1 --json /tmp/x.json

Inputs are clips this script writes with PyAV (scikit-image's astronaut moving over a textured
background, h264, ``--frames`` frames at 30 fps per resolution), so the run needs nothing but
the checkout. "Workers" are plain processes (the stand-in for Ray actors with fractional GPUs
where Ray is not installed), each loading the models once and analysing its share of the
copies of the clip; frames/s is the total over the wall time of all of them. Per-stage figures
come from one process: decode (PyAV, RGB conversion and display rotation included), detect
(the MTCNN cascade on batches of ``--det-batch`` frames), classify (faces/s on crops), and
end to end (``process_video``: decode overlapped with detection, tracking, crops, classify).
"""

from __future__ import annotations

import argparse
import json
import multiprocessing as mp
import resource
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

SIZES = {360: (640, 360), 720: (1280, 720), 1080: (1920, 1080)}


def write_clip(path: Path, size: tuple[int, int], n_frames: int, fps: int = 30,
               options: dict[str, str] | None = None) -> Path:
    """An h264 clip of ``size`` with one moving, real face (scikit-image's astronaut).

    ``options``: libx264 encoder options, e.g. ``{"preset": "ultrafast"}`` for long or 4K clips."""
    import av
    import cv2
    import numpy as np
    from skimage import data

    w, h = size
    face = data.astronaut()[20:330, 110:400]
    fh = int(h * 0.5)
    face = cv2.resize(face, (int(face.shape[1] * fh / face.shape[0]), fh), interpolation=cv2.INTER_AREA)
    yy, xx = np.mgrid[0:h, 0:w]
    background = np.stack([(xx * 255 // max(w, 1)), (yy * 255 // max(h, 1)),
                           np.full_like(xx, 96)], axis=2).astype(np.uint8)
    with av.open(str(path), "w") as out:
        stream = out.add_stream("libx264", rate=fps)
        stream.width, stream.height, stream.pix_fmt = w, h, "yuv420p"
        stream.options = dict(options or {})
        for i in range(n_frames):
            img = background.copy()
            x = int((w - face.shape[1]) * (0.5 + 0.4 * np.sin(i / 15)))
            y = (h - face.shape[0]) // 2
            img[y:y + face.shape[0], x:x + face.shape[1]] = face
            for packet in stream.encode(av.VideoFrame.from_ndarray(img, format="rgb24")):
                out.mux(packet)
        for packet in stream.encode():
            out.mux(packet)
    return path


def _sync(device: str) -> None:
    import torch

    if device.startswith("cuda"):
        torch.cuda.synchronize()


def stage_figures(clip: Path, device: str, det_batch: int | None, decode_threads: int) -> dict[str, Any]:
    """Per-stage frames/s (classify: faces/s) and end-to-end frames/s in this process."""
    import numpy as np
    import torch

    from ferbatch.config import DecodeConfig, DetectConfig, RunConfig
    from ferbatch.crop import crop_faces, to_grey
    from ferbatch.decode import FrameSampler, open_video
    from ferbatch.pipeline import Stages, process_video

    config = RunConfig(decode=DecodeConfig(threads=decode_threads),
                       detect=DetectConfig(batch_size=det_batch), device=device)
    stages = Stages(config)
    t = time.perf_counter()
    with open_video(clip, config.decode) as stream:
        frames = [f.image for f in stream.frames(FrameSampler())]
    decode_s = time.perf_counter() - t
    b = stages.detect_batch
    stages.detector(frames[:b])  # warm-up: kernels, cuDNN autotuning, allocator
    _sync(device)
    t = time.perf_counter()
    detections = []
    for i in range(0, len(frames), b):
        detections += stages.detector(frames[i:i + b])
    _sync(device)
    detect_s = time.perf_counter() - t
    crops = [crop_faces(to_grey(f), d.boxes, d.landmarks, stages.classifier.preprocess)
             for f, d in zip(frames, detections) if len(d)]
    crops = np.concatenate(crops) if crops else np.zeros((0, 48, 48), np.uint8)
    stages.classifier(crops[:stages.classify_batch])
    _sync(device)
    t = time.perf_counter()
    stages.classifier(crops)
    _sync(device)
    classify_s = time.perf_counter() - t
    if device.startswith("cuda"):
        torch.cuda.reset_peak_memory_stats()
    t = time.perf_counter()
    result = process_video(clip, config, stages)
    _sync(device)
    e2e_s = time.perf_counter() - t
    n = len(frames)
    return {"frames": n, "faces": int(len(crops)), "det_batch": b, "decode_threads": decode_threads,
            "decode_fps": n / decode_s, "detect_fps": n / detect_s,
            "classify_faces_per_s": len(crops) / classify_s if classify_s > 0 else None,
            "end_to_end_fps": result.row["frames_analyzed"] / e2e_s,
            "gpu_peak_mb": (torch.cuda.max_memory_allocated() / 2**20
                            if device.startswith("cuda") else None),
            "status": result.status}


def _worker(args: tuple[list[str], str, int | None]) -> dict[str, Any]:
    """One worker process: load the models once, analyse its clips; frames, seconds, memory."""
    paths, device, det_batch = args
    import torch

    from ferbatch.config import DetectConfig, RunConfig
    from ferbatch.pipeline import Stages, process_video

    config = RunConfig(detect=DetectConfig(batch_size=det_batch), device=device)
    stages = Stages(config)
    process_video(paths[0], config, stages)  # warm-up, not timed
    _sync(device)
    t = time.perf_counter()
    frames = sum(int(process_video(p, config, stages).row["frames_analyzed"]) for p in paths)
    _sync(device)
    return {"frames": frames, "seconds": time.perf_counter() - t,
            "gpu_peak_mb": (torch.cuda.max_memory_allocated() / 2**20
                            if device.startswith("cuda") else None)}


def worker_figures(clip: Path, device: str, workers: int, copies: int,
                   det_batch: int | None) -> dict[str, Any]:
    """Aggregate frames/s of ``workers`` processes sharing the device on ``copies`` clips."""
    shares = [[str(clip)] * max(1, copies // workers) for _ in range(workers)]
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    t = time.perf_counter()
    with mp.get_context("spawn").Pool(workers) as pool:
        results = pool.map(_worker, [(s, device, det_batch) for s in shares])
    wall = time.perf_counter() - t
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    frames = sum(r["frames"] for r in results)
    busiest = max(r["seconds"] for r in results)
    cpu_s = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    peaks = [r["gpu_peak_mb"] for r in results if r["gpu_peak_mb"] is not None]
    return {"workers": workers, "frames": frames, "fps": frames / busiest,
            "wall_s_with_start_up": wall, "cpu_cores_busy": cpu_s / wall,
            "gpu_peak_mb_per_worker": max(peaks) if peaks else None}


def _table(results: dict[str, Any]) -> str:
    lines = [f"device {results['device']} ({results['device_name']}), {results['frames']} frames per clip",
             f"{'size':>5} {'decode':>8} {'detect':>8} {'cls f/s':>9} {'e2e':>8} {'peak MB':>8}  "
             + "  ".join(f"{w}w f/s" for w in results["workers"])]
    for size, row in results["sizes"].items():
        st = row["stages"]
        ws = "  ".join(f"{w['fps']:7.1f}" for w in row["workers"])
        cls = st["classify_faces_per_s"] or 0.0
        peak = st["gpu_peak_mb"] or 0.0
        lines.append(f"{size:>5} {st['decode_fps']:8.1f} {st['detect_fps']:8.1f} {cls:9.1f} "
                     f"{st['end_to_end_fps']:8.1f} {peak:8.0f}  {ws}")
    return "\n".join(lines)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--device", default="cuda")
    ap.add_argument("--sizes", default="360,720,1080", help="Comma-separated: 360, 720, 1080.")
    ap.add_argument("--frames", type=int, default=240, help="Frames per generated clip.")
    ap.add_argument("--workers", default="1,2,4,8", help="Worker processes sharing the device.")
    ap.add_argument("--copies", type=int, default=8, help="Clips analysed by the worker runs.")
    ap.add_argument("--det-batch", type=int, default=None, help="Frames per detection batch.")
    ap.add_argument("--decode-threads", type=int, default=0)
    ap.add_argument("--json", type=Path, default=None, help="Write the results here (and a .txt table).")
    args = ap.parse_args()
    import torch

    from ferbatch.decode.av_util import quiet_ffmpeg

    quiet_ffmpeg()
    device = args.device
    name = torch.cuda.get_device_name(0) if device.startswith("cuda") else "CPU"
    workers = [int(w) for w in args.workers.split(",") if w]
    results: dict[str, Any] = {"device": device, "device_name": name, "frames": args.frames,
                               "workers": workers, "sizes": {}}
    with tempfile.TemporaryDirectory() as tmp:
        for size in (int(s) for s in args.sizes.split(",") if s):
            clip = write_clip(Path(tmp) / f"{size}p.mp4", SIZES[size], args.frames)
            row = {"stages": stage_figures(clip, device, args.det_batch, args.decode_threads),
                   "workers": [worker_figures(clip, device, w, args.copies, args.det_batch)
                               for w in workers]}
            results["sizes"][str(size)] = row
            print(f"{size}p: {json.dumps(row['stages'])}", flush=True)
            _write(results, args.json)  # after every size: a run cut short keeps what it measured
    print(_table(results))


def _write(results: dict[str, Any], path: Path | None) -> None:
    if path is None:
        return
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(results, indent=2))
    path.with_suffix(".txt").write_text(_table(results) + "\n")


if __name__ == "__main__":
    main()
