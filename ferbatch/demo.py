"""``make demo`` / ``ferbatch demo``: clips of a real face, made on the spot, then analysed.

The face is scikit-image's ``astronaut.png`` photo (shipped inside scikit-image, so nothing is
downloaded). The clips have motion and scale changes, one carries a phone-style rotation tag,
and one file is deliberately broken to show how a bad input is reported.
"""

from __future__ import annotations

import math
from fractions import Fraction
from pathlib import Path

import av
import cv2
import numpy as np


def _background(width: int, height: int, t: float) -> np.ndarray:
    """A soft moving gradient, so the encoder and detector see a changing scene."""
    x = np.linspace(0, 1, width, dtype=np.float32)[None, :]
    y = np.linspace(0, 1, height, dtype=np.float32)[:, None]
    r = 90 + 60 * np.sin(2 * math.pi * (x + 0.1 * t))
    g = 110 + 40 * np.cos(2 * math.pi * (y + 0.05 * t))
    b = 140 + 30 * np.sin(2 * math.pi * (x + y))
    return np.clip(np.stack(np.broadcast_arrays(r, g, b), axis=-1), 0, 255).astype(np.uint8)


def astronaut_face() -> np.ndarray:
    """The head-and-shoulders part of scikit-image's astronaut photo (RGB uint8)."""
    from skimage import data

    img = data.astronaut()
    return np.ascontiguousarray(img[20:330, 110:400])


def write_face_clip(path: Path, *, seconds: float = 4.0, fps: int = 25,
                    size: tuple[int, int] = (640, 360), rotation: int = 0) -> Path:
    """Encode an H.264 clip of the face drifting across the frame while zooming in and out.

    ``rotation`` writes a display-rotation tag (as phones do) and stores the frames turned the
    other way, so a correct player (and ferbatch) shows the face upright.
    """
    face = astronaut_face()
    width, height = size
    n = int(seconds * fps)
    path.parent.mkdir(parents=True, exist_ok=True)
    with av.open(str(path), "w") as container:
        stored_w, stored_h = (height, width) if rotation in (90, 270) else (width, height)
        stream = container.add_stream("libx264", rate=fps)
        stream.width, stream.height = stored_w, stored_h
        stream.pix_fmt = "yuv420p"
        stream.time_base = Fraction(1, fps)
        if rotation:
            stream.set_display_rotation(rotation)  # type: ignore[attr-defined]
        for i in range(n):
            t = i / fps
            canvas = _background(width, height, t)
            scale = 0.55 + 0.3 * (0.5 + 0.5 * math.sin(2 * math.pi * t / seconds))
            fh = int(height * scale * 1.05)
            fw = int(fh * face.shape[1] / face.shape[0])
            resized = cv2.resize(face, (fw, fh), interpolation=cv2.INTER_AREA)
            cx = int(width / 2 + (width / 2 - fw / 2 - 4) * 0.8 * math.sin(2 * math.pi * t / seconds * 0.5 + 0.3))
            cy = height // 2
            x0 = max(0, min(width - fw, cx - fw // 2))
            y0 = max(0, min(height - fh, cy - fh // 2))
            canvas[y0:y0 + fh, x0:x0 + fw] = resized[: height - y0, : width - x0]
            # the tag says "turn counter-clockwise by `rotation` to display": store it turned clockwise
            stored = np.rot90(canvas, k=-(rotation // 90)) if rotation else canvas
            frame = av.VideoFrame.from_ndarray(np.ascontiguousarray(stored), format="rgb24")
            frame.pts = i
            for packet in stream.encode(frame):
                container.mux(packet)
        for packet in stream.encode():
            container.mux(packet)
    return path


def make_demo_inputs(folder: Path) -> list[Path]:
    """The demo's input folder: a landscape clip, a phone-style rotated clip, a broken file."""
    folder.mkdir(parents=True, exist_ok=True)
    clips = [write_face_clip(folder / "astronaut_pan_zoom.mp4"),
             write_face_clip(folder / "astronaut_phone_rotated.mp4", seconds=3.0,
                             size=(640, 360), rotation=90)]
    broken = folder / "broken_download.mp4"
    broken.write_bytes(b"\x00\x00\x00\x18ftypmp42" + bytes(range(256)) * 8)
    return [*clips, broken]


def run_demo(out: Path, quiet: bool = False) -> int:
    """Make the inputs, run the pipeline on them, print where results are and a summary.

    Returns 0 when the two real clips are analysed (the broken file is expected to fail).
    """
    import pandas as pd

    from .progress import ConsoleProgress, format_summary
    from .runner.local import run

    inputs = make_demo_inputs(out / "input")
    with ConsoleProgress(enabled=not quiet) as progress:
        summary = run([out / "input"], out / "results", hook=progress)
    print(format_summary(summary))
    faces = pd.read_parquet(out / "results" / "faces")
    print("\nper-video emotion summary (share of face detections per top emotion):")
    if len(faces):
        share = (faces.groupby("video_id", observed=True)["emotion"]
                 .value_counts(normalize=True).unstack(fill_value=0.0).round(3))
        with pd.option_context("display.width", 120, "display.max_columns", 20):
            print(share)
    print(f"\nquery them with pandas: pd.read_parquet('{out / 'results' / 'faces'}')")
    real = [r for r in summary.rows if not r["path"].endswith("broken_download.mp4")]
    ok = len(real) == len(inputs) - 1 and all(r["status"] == "ok" for r in real)
    return 0 if ok else 1
