"""Peak resident memory of a whole ``ferbatch run`` per video resolution (issue 14, part 3).

Usage::

    .venv/bin/python bench/mem_per_resolution.py [--sizes 360p,720p,1080p,4k] [--frames 105]
        [--faces 5] [--fps-sample F] [--clips DIR] [--json FILE]

For each size it encodes (once, cached in ``--clips``) a "crowd" clip with PyAV: ``--faces``
copies of ``../shared/images/single_face.jpg`` (or skimage's astronaut when ``../shared`` is
absent) drifting over a plain background, H.264 at 25 fps. Then it runs
``python -m ferbatch.cli run CLIP --out TMP --local`` as a child process and polls the resident
memory of the process and its children every 20 ms (``psutil``; polling rather than
``ru_maxrss``, which a forked child inherits from its parent). Prints one line per size:
frames, face rows, wall time and peak RSS in MB (10^6 bytes).
"""

from __future__ import annotations

import argparse
import json
import math
import os
import subprocess
import sys
import tempfile
import time
from fractions import Fraction
from pathlib import Path

import av
import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "bench"))

from bench_pipeline import _peak_rss_mb  # noqa: E402  (one poller of a process tree's RSS)

SIZES = {"360p": (640, 360), "720p": (1280, 720), "1080p": (1920, 1080), "4k": (3840, 2160)}


def face_image() -> np.ndarray:
    """A real face photo: ../shared/images/single_face.jpg, else skimage's astronaut."""
    shared = Path(os.environ.get("FERBATCH_SHARED", ROOT.parent / "shared"))
    jpg = shared / "images" / "single_face.jpg"
    if jpg.exists():
        from PIL import Image
        return np.asarray(Image.open(jpg).convert("RGB"))
    from skimage import data
    return data.astronaut()[:260, 120:340]


def make_crowd_clip(path: Path, size: tuple[int, int], n_frames: int, faces: int,
                    fps: int = 25) -> None:
    """``faces`` faces in a row, each ≈ 1/4 of the frame height, drifting sideways."""
    from PIL import Image

    w, h = size
    src = Image.fromarray(face_image())
    yy, xx = np.mgrid[0:h, 0:w]
    background = np.empty((h, w, 3), np.uint8)
    background[..., 0] = (90 + 40 * xx / (w - 1)).astype(np.uint8)
    background[..., 1] = (100 + 30 * yy / (h - 1)).astype(np.uint8)
    background[..., 2] = 120
    fh = int(h * 0.28)
    fw = int(fh * src.width / src.height)
    face = np.asarray(src.resize((fw, fh), Image.BILINEAR))
    tb = Fraction(1, fps)
    with av.open(str(path), "w") as out:
        stream = out.add_stream("libx264", rate=fps)
        stream.width, stream.height, stream.pix_fmt = w, h, "yuv420p"
        stream.codec_context.time_base = tb
        stream.options = {"preset": "ultrafast", "crf": "20"}
        for i in range(n_frames):
            img = background.copy()
            for k in range(faces):
                cx = (k + 0.5) * w / faces + 0.02 * w * math.sin(2 * math.pi * i / n_frames + k)
                cy = h * (0.3 if k % 2 else 0.65)
                x1 = int(min(max(cx - fw / 2, 0), w - fw))
                y1 = int(min(max(cy - fh / 2, 0), h - fh))
                img[y1:y1 + fh, x1:x1 + fw] = face
            frame = av.VideoFrame.from_ndarray(img, format="rgb24")
            frame.pts, frame.time_base = i, tb
            for packet in stream.encode(frame):
                out.mux(packet)
        for packet in stream.encode(None):
            out.mux(packet)


def peak_rss(cmd: list[str], env: dict[str, str]) -> tuple[float, float, int]:
    """Run ``cmd``; (wall s, peak RSS MB of it and its children, exit code)."""
    t0 = time.perf_counter()
    proc = subprocess.Popen(cmd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    peak_mb = _peak_rss_mb(proc)  # type: ignore[arg-type]
    wall = time.perf_counter() - t0
    if proc.returncode:
        sys.stderr.write(proc.stderr.read().decode(errors="replace")[-2000:])
    return wall, peak_mb, proc.returncode


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--sizes", default="360p,720p,1080p,4k")
    ap.add_argument("--frames", type=int, default=105)
    ap.add_argument("--faces", type=int, default=5)
    ap.add_argument("--clips", type=Path, default=Path(tempfile.gettempdir()) / "ferbatch_mem_clips")
    ap.add_argument("--extra", default="", help="extra `ferbatch run` options, e.g. '--fps 2'")
    ap.add_argument("--json", type=Path)
    args = ap.parse_args()
    args.clips.mkdir(parents=True, exist_ok=True)
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    results = []
    for name in args.sizes.split(","):
        size = SIZES[name]
        clip = args.clips / f"crowd_{name}_{args.frames}f_{args.faces}faces.mp4"
        if not clip.exists():
            make_crowd_clip(clip, size, args.frames, args.faces)
        with tempfile.TemporaryDirectory() as out:
            cmd = [sys.executable, "-m", "ferbatch.cli", "run", str(clip), "--out", out,
                   "--local", *args.extra.split()]
            wall, peak, rc = peak_rss(cmd, env)
            rows = -1
            if rc == 0:
                import pyarrow.dataset as ds
                rows = ds.dataset(Path(out) / "faces", format="parquet",
                                  partitioning="hive").count_rows()
        results.append({"size": name, "width": size[0], "height": size[1], "frames": args.frames,
                        "face_rows": rows, "wall_s": round(wall, 2), "peak_rss_mb": round(peak),
                        "rc": rc})
        print(f"{name:>6} {size[0]}x{size[1]}  frames {args.frames}  face rows {rows}  "
              f"wall {wall:6.1f} s  peak RSS {peak:7.0f} MB", flush=True)
    if args.json:
        args.json.write_text(json.dumps(results, indent=2) + "\n")


if __name__ == "__main__":
    main()
