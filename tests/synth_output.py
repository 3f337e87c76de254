"""Write a small ferbatch output folder with known, hand-designed values (a test helper).

It follows the output contract of :mod:`ferbatch.output.schema` exactly, so report/load/example tests
can run before (and independently of) the real pipeline. The values are chosen so that every
summary figure can be computed by hand; the numbers are spelled out in ``EXPECTED`` below.

Videos (default label set angry, disgust, fear, happy, sad, surprise, neutral):

``alpha`` (ok, 10 fps clip, analysed every 0.5 s: t = 0.0 … 9.5, 20 frames)
    face 0 at t = 0.0 … 8.5 (18 rows): happy, except one *angry* flicker at t = 1.5, then sad
    from t = 6.0; p_happy peaks (0.75) at t = 4.0. Face 1 at t = 2.0 … 4.5 (6 rows): surprise,
    peak 0.85 at t = 3.0. No face at t = 9.0 and 9.5 → face_frame_share 18/20.
``beta`` (partial, irregular timestamps 0, .4, .9, 1.0, 1.6, 2.0, then a 3 s gap, 5.0, 5.5,
    6.0) face 0: neutral until 2.0, fear from 5.0. Its video file is missing (thumbnail
    placeholder path).
``gamma`` (failed: no frames/faces partitions).
``delta`` (ok, 5 analysed frames, no faces; an empty faces partition is written).

With ``video_dir`` set, a real 160×120 clip is encoded for ``alpha``: each face box is filled
with grey level ``20 + 2 * frame_index`` so a test can tell which frame a thumbnail came from;
its stream starts at pts 0.5 s, which timestamps (counted from the stream start) must absorb.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from fractions import Fraction
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from ferbatch.output.layout import partition_dir
from ferbatch.output.schema import (
    FRAMES_SCHEMA,
    LANDMARK_COLUMNS,
    SCHEMA_VERSION,
    VIDEOS_SCHEMA,
    faces_schema,
    prob_column,
)

DEFAULT_LABELS = ["angry", "disgust", "fear", "happy", "sad", "surprise", "neutral"]
MODEL = "synthetic_vgg"
ALPHA_FPS = 10.0
ALPHA_SIZE = (160, 120)  # width, height
ALPHA_START_PTS = 5  # the stream starts at 0.5 s: timestamps count from the stream start
ALPHA_BOXES = {0: (20.0, 30.0, 70.0, 90.0), 1: (100.0, 30.0, 150.0, 90.0)}
BETA_TS = [0.0, 0.4, 0.9, 1.0, 1.6, 2.0, 5.0, 5.5, 6.0]
#: (face_id, t) of alpha's rows blurred (sharpness 0.01, below the default 0.05): ``--min-quality ok``
#: leaves them out — 1.5 s of face 0's sad face-time (EXPECTED_MIN_QUALITY)
LOW_QUALITY = {(0, 6.0), (0, 6.5), (0, 7.0)}

#: Hand-computed figures (smoothing "none", min episode 1.0 s, max gap 2.0 s). Row weights are
#: the time to the face's next row, or the video's median sampling interval (0.5 s here) at the
#: end of a track or before a gap longer than max(2.0 s, 2 intervals).
EXPECTED = {
    "alpha": {
        "face_frame_share": 18 / 20,
        "face_ids": 2,
        "seen_s": {0: 9.0, 1: 3.0},
        "shares": {"happy": 5.5 / 12, "angry": 0.5 / 12, "sad": 3.0 / 12, "surprise": 3.0 / 12},
        "dominant": "happy",
        # episodes ≥ 1 s: face 0 happy [0, 1.5) and [2.0, 6.0), sad [6.0, 9.0); face 1 surprise [2.0, 5.0)
        "episodes": [(0, "happy", 0.0, 1.5), (0, "happy", 2.0, 6.0), (0, "sad", 6.0, 9.0),
                     (1, "surprise", 2.0, 5.0)],
    },
    "beta": {
        "face_frame_share": 1.0,
        "face_ids": 1,
        "seen_s": {0: 4.0},
        "shares": {"neutral": 2.5 / 4.0, "fear": 1.5 / 4.0},
        "dominant": "neutral",
        "episodes": [(0, "neutral", 0.0, 2.5), (0, "fear", 5.0, 6.5)],
    },
    "delta": {"face_frame_share": 0.0, "face_ids": 0, "dominant": None, "episodes": []},
    "gamma": {"status": "failed"},
}

#: alpha with ``--min-quality ok`` (smoothing "none"): face 0's rows at 6.0–7.0 s left out
EXPECTED_MIN_QUALITY = {
    "excluded_face_seconds": 1.5,
    "excluded_rows": 3,
    "shares": {"happy": 5.5 / 10.5, "angry": 0.5 / 10.5, "sad": 1.5 / 10.5, "surprise": 3.0 / 10.5},
    "episodes": [(0, "happy", 0.0, 1.5), (0, "happy", 2.0, 6.0), (0, "sad", 7.5, 9.0),
                 (1, "surprise", 2.0, 5.0)],
}


@dataclass
class SynthOutput:
    """Where the synthetic output went and what it holds."""

    out: Path
    labels: list[str]
    video_ids: list[str]
    video_paths: dict[str, Path] = field(default_factory=dict)


def probs(labels: Sequence[str], main: dict[str, float]) -> dict[str, float]:
    """A distribution over ``labels``: ``main`` as given, the rest spread evenly over the others."""
    rest = [lb for lb in labels if lb not in main]
    left = 1.0 - sum(main.values())
    out = {lb: left / len(rest) if rest else 0.0 for lb in rest}
    out.update(main)
    return out


def _face_row(labels, t, frame_index, face_id, box, main, blurred=False):
    p = probs(labels, main)
    top = max(labels, key=lambda lb: p[lb])
    x1, y1, x2, y2 = box
    row = {
        "frame_index": frame_index,
        "timestamp_s": t,
        "face_id": face_id,
        "det_score": 0.99,
        "x1": x1, "y1": y1, "x2": x2, "y2": y2,
        "emotion": top,
        "confidence": p[top],
    }
    # landmarks: plausible points inside the box
    w, h = x2 - x1, y2 - y1
    pts = [(0.3, 0.35), (0.7, 0.35), (0.5, 0.55), (0.35, 0.75), (0.65, 0.75)]
    for (fx, fy), (cx, cy) in zip(pts, zip(LANDMARK_COLUMNS[0::2], LANDMARK_COLUMNS[1::2])):
        row[cx] = x1 + fx * w
        row[cy] = y1 + fy * h
    for lb in labels:
        row[prob_column(lb)] = p[lb]
    # quality (ferbatch.quality): good, except alpha's rows in LOW_QUALITY (motion blur)
    row.update(face_px=max(w, h), sharpness=1.0, brightness=0.5, contrast=0.2, yaw=0.0, pitch=0.0,
               roll=0.0, occlusion=0.4, quality_ok=True)
    if blurred:
        row.update(sharpness=0.01, quality_ok=False)
    return row


def _alpha_faces(labels):
    rows = []
    for i in range(18):  # face 0, t = 0 … 8.5
        t = i * 0.5
        if t == 1.5:
            main = {"angry": 0.7, "neutral": 0.2}
        elif t < 6.0:
            main = {"happy": 0.75, "neutral": 0.15} if t == 4.0 else {"happy": 0.7, "neutral": 0.2}
        else:
            main = {"sad": 0.6, "neutral": 0.3}
        rows.append(_face_row(labels, t, int(round(t * ALPHA_FPS)), 0, ALPHA_BOXES[0], main,
                              (0, t) in LOW_QUALITY))
    for i in range(4, 10):  # face 1, t = 2.0 … 4.5
        t = i * 0.5
        main = {"surprise": 0.85, "fear": 0.05} if t == 3.0 else {"surprise": 0.8, "fear": 0.1}
        rows.append(_face_row(labels, t, int(round(t * ALPHA_FPS)), 1, ALPHA_BOXES[1], main))
    return sorted(rows, key=lambda r: (r["frame_index"], r["face_id"]))


def _beta_faces(labels):
    rows = []
    for t in BETA_TS:
        main = {"neutral": 0.6, "sad": 0.2} if t <= 2.0 else {"fear": 0.5, "surprise": 0.3}
        rows.append(_face_row(labels, t, int(round(t * 25)), 0, (10.0, 10.0, 60.0, 70.0), main))
    return rows


def _write(table: pa.Table, path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    pq.write_table(table, path)


def _without_id(schema: pa.Schema) -> pa.Schema:
    return pa.schema([f for f in schema if f.name != "video_id"])


def _write_partitions(out: Path, video_id: str, frames: list[dict], faces: list[dict] | None,
                      labels: Sequence[str]) -> None:
    _write(pa.Table.from_pylist(frames, schema=_without_id(FRAMES_SCHEMA)),
           out / partition_dir("frames", video_id) / "part-0.parquet")
    if faces is not None:
        _write(pa.Table.from_pylist(faces, schema=_without_id(faces_schema(labels))),
               out / partition_dir("faces", video_id) / "part-0.parquet")


def _frames_from(ts: Sequence[float], fps: float, faces: list[dict]) -> list[dict]:
    counts: dict[float, int] = {}
    for r in faces:
        counts[r["timestamp_s"]] = counts.get(r["timestamp_s"], 0) + 1
    return [{"frame_index": int(round(t * fps)), "timestamp_s": t, "num_faces": counts.get(t, 0)}
            for t in ts]


def encode_alpha_clip(path: Path) -> Path:
    """Encode the ``alpha`` clip: 10 s at 10 fps, face boxes filled with ``20 + 2 * index``.

    Its first pts is ``ALPHA_START_PTS`` (0.5 s), like files whose stream does not start at 0:
    frame ``i`` is at ``i / 10`` s counted from the stream start, as the pipeline counts.
    """
    import av

    w, h = ALPHA_SIZE
    path.parent.mkdir(parents=True, exist_ok=True)
    with av.open(str(path), "w") as container:
        stream = container.add_stream("mpeg4", rate=Fraction(int(ALPHA_FPS)))
        stream.width, stream.height = w, h
        stream.pix_fmt = "yuv420p"
        stream.codec_context.time_base = Fraction(1, int(ALPHA_FPS))
        stream.options = {"qscale": "2", "g": "25"}  # keyframes every 2.5 s: seeks decode forward
        for i in range(int(10 * ALPHA_FPS)):
            img = np.full((h, w, 3), (60, 90, 140), np.uint8)
            level = 20 + 2 * i
            for x1, y1, x2, y2 in ALPHA_BOXES.values():
                img[int(y1):int(y2), int(x1):int(x2)] = level
            frame = av.VideoFrame.from_ndarray(img, format="rgb24")
            frame.pts = i + ALPHA_START_PTS
            for packet in stream.encode(frame):
                container.mux(packet)
        for packet in stream.encode(None):
            container.mux(packet)
    return path


def write_synthetic_output(
    out: str | Path,
    *,
    labels: Sequence[str] = DEFAULT_LABELS,
    video_dir: str | Path | None = None,
    write_meta: bool = True,
    rename: dict[str, str] | None = None,
) -> SynthOutput:
    """Write the synthetic output folder ``out`` (see the module docstring) and describe it.

    ``labels`` must contain angry, fear, happy, sad, surprise and neutral (in any order, plus any
    others); ``video_dir``: also encode a real clip for ``alpha`` there; ``write_meta=False``
    leaves out ``_ferbatch.json`` (the loader then infers labels from the ``p_*`` columns);
    ``rename``: other ids for the videos, e.g. ``{"alpha": "0001"}`` (all-digit ids are a trap
    for readers that guess partition types).
    """
    ids = {v: (rename or {}).get(v, v) for v in ("alpha", "beta", "gamma", "delta")}
    out = Path(out)
    labels = list(labels)
    needed = {"angry", "fear", "happy", "sad", "surprise", "neutral"}
    if not needed <= set(labels):
        raise ValueError(f"labels must include {sorted(needed)}")
    out.mkdir(parents=True, exist_ok=True)

    paths = {
        "alpha": Path(video_dir or out.parent) / "alpha.mp4",
        "beta": out.parent / "missing" / "beta.mp4",
        "gamma": out.parent / "missing" / "gamma.mov",
        "delta": out.parent / "missing" / "delta.mp4",
    }
    if video_dir is not None:
        encode_alpha_clip(paths["alpha"])

    alpha_faces = _alpha_faces(labels)
    _write_partitions(out, ids["alpha"], _frames_from([i * 0.5 for i in range(20)], ALPHA_FPS, alpha_faces),
                      alpha_faces, labels)
    beta_faces = _beta_faces(labels)
    _write_partitions(out, ids["beta"], _frames_from(BETA_TS, 25.0, beta_faces), beta_faces, labels)
    _write_partitions(out, ids["delta"], _frames_from([0.0, 1.0, 2.0, 3.0, 4.0], 30.0, []), [], labels)

    now = datetime(2025, 1, 2, 3, 4, 5, tzinfo=UTC)
    common = {
        "model": MODEL, "model_sha256": "0" * 64, "detector": "mtcnn(0.6,0.7,0.8;min=40)",
        "sampling": "fps=2", "settings_fingerprint": "f" * 16, "file_size": 1000,
        "file_mtime_ns": 0, "schema_version": SCHEMA_VERSION, "ferbatch_version": "0.1.0",
        "finished_at": now, "rotation": 0, "codec": "mpeg4", "error": None,
    }
    videos = [
        {**common, "video_id": ids["alpha"], "path": str(paths["alpha"]), "status": "ok",
         "duration_s": 10.0, "fps": ALPHA_FPS, "width": ALPHA_SIZE[0], "height": ALPHA_SIZE[1],
         "frames_decoded": 100, "frames_analyzed": 20, "faces_detected": len(alpha_faces),
         "tracks": 2, "processing_s": 1.5},
        {**common, "video_id": ids["beta"], "path": str(paths["beta"]), "status": "partial",
         "error": "DecodeError: Invalid data found when processing input after 6.0 s",
         "duration_s": 12.0, "fps": 25.0, "width": 320, "height": 240, "codec": "h264",
         "frames_decoded": 151, "frames_analyzed": len(BETA_TS), "faces_detected": len(beta_faces),
         "tracks": 1, "processing_s": 0.8},
        {**common, "video_id": ids["gamma"], "path": str(paths["gamma"]), "status": "failed",
         "error": "VideoOpenError: <gamma.mov> moov atom not found & unreadable",
         "duration_s": None, "fps": None, "width": None, "height": None, "rotation": None,
         "codec": None, "frames_decoded": 0, "frames_analyzed": 0, "faces_detected": 0,
         "tracks": 0, "processing_s": 0.01},
        {**common, "video_id": ids["delta"], "path": str(paths["delta"]), "status": "ok",
         "duration_s": 5.0, "fps": 30.0, "width": 960, "height": 540, "codec": "h264",
         "frames_decoded": 150, "frames_analyzed": 5, "faces_detected": 0, "tracks": 0,
         "processing_s": 0.3},
    ]
    _write(pa.Table.from_pylist(videos, schema=VIDEOS_SCHEMA), out / "videos.parquet")
    if write_meta:
        (out / "_ferbatch.json").write_text(json.dumps(
            {"schema_version": SCHEMA_VERSION, "labels": labels, "model": MODEL}, indent=2))
    return SynthOutput(out=out, labels=labels, video_ids=[v["video_id"] for v in videos],
                       video_paths=paths)


if __name__ == "__main__":  # python tests/synth_output.py OUT [VIDEO_DIR]
    import sys

    info = write_synthetic_output(sys.argv[1], video_dir=sys.argv[2] if len(sys.argv) > 2 else None)
    print(f"wrote {info.out} ({', '.join(info.video_ids)})")
