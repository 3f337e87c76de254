"""What the server computes, without HTTP or Ray: images and clips through the pipeline's stages.

:func:`analyze_images` runs a batch of decoded images (from several concurrent requests) through
one detector call and one classifier call — the stages of :class:`ferbatch.pipeline.Stages` —
and gives each image's faces as JSON-ready dicts; :func:`analyze_video` runs an uploaded clip
through :func:`ferbatch.pipeline.process_video` and gives its per-face timeline.
"""

from __future__ import annotations

import io
import os
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from ..config import RunConfig
from ..crop import crop_faces, to_grey
from ..output.schema import LANDMARK_COLUMNS, labels_from_columns, prob_column
from ..pipeline import Stages, VideoResult, process_video


def model_info(stages: Stages) -> dict[str, Any]:
    """``GET /v1/models``' entry of the loaded model."""
    from dataclasses import asdict

    clf = stages.classifier
    return {"name": clf.name, "sha256": clf.sha256, "arch": clf.checkpoint.arch,
            "labels": clf.labels, "temperature": clf.temperature,
            "preprocessing": asdict(clf.preprocess), "backend": clf.backend,
            "device": str(stages.device), "detector": stages.provenance.detector}


def analyze_images(stages: Stages, images: list[np.ndarray]) -> list[list[dict[str, Any]]]:
    """The faces of each RGB uint8 H×W×3 image: box ``[x1, y1, x2, y2]`` (pixels), det_score,
    5 landmarks ``[[x, y], …]`` (left eye, right eye, nose, mouth left, mouth right), emotion,
    confidence and probabilities by label; one detector and one classifier call for all."""
    if not images:
        return []
    clf = stages.classifier
    detections = stages.detector(images)
    crops = [crop_faces(to_grey(img), d.boxes, d.landmarks, clf.preprocess)
             for img, d in zip(images, detections) if len(d)]
    size = clf.preprocess.image_size
    probs = clf(np.concatenate(crops) if crops else np.zeros((0, size, size), np.uint8))
    emotions, confidence = clf.top_labels(probs)
    out, k = [], 0
    for d in detections:
        faces = []
        for i in range(len(d)):
            faces.append({
                "box": [round(float(v), 2) for v in d.boxes[i]],
                "det_score": round(float(d.scores[i]), 5),
                "landmarks": [[round(float(x), 2), round(float(y), 2)] for x, y in d.landmarks[i]],
                "emotion": str(emotions[k]),
                "confidence": round(float(confidence[k]), 5),
                "probabilities": {label: round(float(p), 5) for label, p in zip(clf.labels, probs[k])},
            })
            k += 1
        out.append(faces)
    return out


def analyze_video(stages: Stages, path: str | os.PathLike[str], config: RunConfig,
                  video_id: str = "upload") -> VideoResult:
    """An uploaded clip through the pipeline (never raises for bad input: see the row)."""
    return process_video(path, config, stages=stages, video_id=video_id)


def video_json(result: VideoResult) -> dict[str, Any]:
    """The per-face timeline of a clip as JSON: the video's facts and one record per face."""
    row = result.row
    video = {k: row.get(k) for k in ("status", "error", "duration_s", "fps", "width", "height",
                                     "rotation", "flip", "sample_aspect_ratio", "time_source",
                                     "frames_time_inferred", "codec", "frames_decoded",
                                     "frames_analyzed",
                                     "faces_detected", "tracks", "sampling", "model",
                                     "model_sha256")}
    faces = result.faces
    records = []
    if faces is not None and faces.num_rows:
        labels = labels_from_columns(faces.column_names)
        cols = faces.to_pydict()
        for i in range(faces.num_rows):
            records.append({
                "frame_index": cols["frame_index"][i], "timestamp_s": cols["timestamp_s"][i],
                "face_id": cols["face_id"][i], "det_score": cols["det_score"][i],
                "box": [cols[c][i] for c in ("x1", "y1", "x2", "y2")],
                "landmarks": [[cols[LANDMARK_COLUMNS[2 * j]][i], cols[LANDMARK_COLUMNS[2 * j + 1]][i]]
                              for j in range(5)],
                "emotion": cols["emotion"][i], "confidence": cols["confidence"][i],
                "probabilities": {label: cols[prob_column(label)][i] for label in labels},
            })
    return {"video": video, "faces": records}


def video_parquet(result: VideoResult) -> bytes:
    """The clip's faces table (the ``faces`` partition's columns, without ``video_id``) as
    Parquet bytes (zstd)."""
    table = result.faces if result.faces is not None else pa.table({})
    buf = io.BytesIO()
    pq.write_table(table, buf, compression="zstd")
    return buf.getvalue()
