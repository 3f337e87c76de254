"""CLI command ``ferbatch explain VIDEO --at SECONDS`` (or ``ferbatch explain IMAGE``): a
Grad-CAM PNG of one face's prediction."""

from __future__ import annotations

from pathlib import Path

import click
import numpy as np

from .errors import FerbatchError


def _still_image(path: str) -> np.ndarray | None:
    """RGB uint8 H×W×3 of ``path`` when its bytes are a JPEG, PNG or WebP image
    (:mod:`ferbatch.decode.image`, EXIF orientation applied), else ``None`` (a video, or a file
    that cannot be read: the video decoder names the problem)."""
    from .decode.image import decode_image, sniff

    try:
        with open(path, "rb") as fh:
            head = fh.read(16)
            if sniff(head) is None:
                return None
            data = head + fh.read()
    except OSError:
        return None
    return decode_image(data, path)


def _face_from_results(results_dir: str, video: Path, at: float, face_id: int,
                       ) -> tuple[np.ndarray, np.ndarray | None, float]:
    """Box, landmarks and time of ``face_id``'s row nearest to ``at`` in an output folder."""
    from .output.read import load
    from .output.schema import LANDMARK_COLUMNS
    from .validate import match_video

    res = load(results_dir)
    vid = match_video(str(video), res.videos)
    if vid is None:
        raise FerbatchError(f"{results_dir}: no video matching {video}")
    faces = res.faces[(res.faces["video_id"].astype(str) == vid) & (res.faces["face_id"] == face_id)]
    if faces.empty:
        raise FerbatchError(f"{results_dir}: video {vid} has no face {face_id}")
    row = faces.iloc[int((faces["timestamp_s"] - at).abs().to_numpy().argmin())]
    box = row[["x1", "y1", "x2", "y2"]].to_numpy(float)
    marks = row[list(LANDMARK_COLUMNS)].to_numpy(float).reshape(5, 2)
    return box, (marks if np.isfinite(marks).all() else None), float(row["timestamp_s"])


@click.command("explain")
@click.argument("video", metavar="VIDEO|IMAGE", type=click.Path(dir_okay=False))
@click.option("--at", "at", type=float, default=None,
              help="Time in seconds from the video's start.  [default: none: required for a "
                   "video; an image has one frame]")
@click.option("--face-id", "face_id", type=int, default=None,
              help="With --results: the face_id of the output's faces table; without: the K-th face "
                   "found in that frame, by detection score (0 = the most confident; default 0).")
@click.option("--results", "results_dir", type=click.Path(file_okay=False), default=None,
              help="An output folder of this video: take the face's box and landmarks from its row "
                   "nearest to --at instead of detecting faces (default: detect them in the frame).")
@click.option("--model", default="default", show_default=True,
              help="Emotion model: a bundled name or a checkpoint path.")
@click.option("--label", default=None, help="Explain this label (default: the top one).")
@click.option("--out", "out", type=click.Path(dir_okay=False), required=True, help="PNG file to write.")
def explain_command(video: str, at: float | None, face_id: int | None, results_dir: str | None,
                    model: str, label: str | None, out: str) -> None:
    """Write a PNG of the face at --at seconds in VIDEO (or in a JPEG, PNG or WebP IMAGE)
    beside its Grad-CAM heat map (the regions that raised the explained emotion's score, on
    the model's last conv block), and print the label explained and its probability."""
    from .config import DetectConfig
    from .detect import FaceDetector
    from .logs import configure_console
    from .output.atomic import atomic_write_bytes
    from .report.thumbnails import frame_at
    from .saliency import encode_image, explain_face, face_panel, load_explainer

    configure_console()
    if at is not None and at < 0:
        raise click.BadParameter("must be >= 0 (seconds)", param_hint="--at")
    try:
        image = _still_image(video)
        if image is None and at is None:
            raise click.UsageError("--at SECONDS is required for a video")
        if image is not None and (results_dir is not None or at is not None):
            raise click.UsageError(f"--{'results' if results_dir is not None else 'at'} is for "
                                   f"a video; {video} is an image (its one frame is explained)")
        frame, frame_t = (image, 0.0) if image is not None else frame_at(video, float(at or 0))
        if results_dir is not None:
            box, marks, _ = _face_from_results(results_dir, Path(video), frame_t,
                                               0 if face_id is None else face_id)
        else:
            det = FaceDetector(DetectConfig(), device="cpu")([frame])[0]
            k = 0 if face_id is None else face_id
            if len(det) <= k:
                where = "" if image is not None else f" at {frame_t:.2f} s"
                raise FerbatchError(f"{video}: {len(det)} face(s) found{where}, no face {k}")
            box, marks = det.boxes[k], det.landmarks[k]
        clf = load_explainer(model)
        ex = explain_face(frame, clf, box=box, landmarks=marks, target=label)
        png = encode_image(face_panel(frame, box, ex.map))
        atomic_write_bytes(out, png)
    except FerbatchError as exc:
        raise click.ClickException(str(exc)) from exc
    except OSError as exc:
        raise click.ClickException(f"{out}: cannot write: {exc}") from exc
    where = "" if image is not None else f" at {frame_t:.2f} s"
    click.echo(f"{ex.label} {ex.probability:.2f}{where} → {out}")


COMMANDS = [explain_command]
