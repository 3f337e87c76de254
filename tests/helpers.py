"""Helpers shared by the test modules (fixtures live in ``conftest.py``).

* :data:`REPO_ROOT` and :func:`shared_path` — the repository and the ``../shared`` data folder;
* :class:`Events` — a :class:`~ferbatch.progress.RunHook` that records every event (and can act
  on one, e.g. kill the worker a video was just handed to);
* :func:`read_output` / :func:`assert_same_frame` / :func:`assert_same_output` — compare two
  runs' Parquet rows column by column, except the timing columns;
* :func:`process_segments_locally` — every segment of a plan analysed here, then merged (what
  the Ray executor does across workers);
* :class:`MemoryStream` — a :class:`~ferbatch.decode.VideoStream` over frames held in memory;
* :func:`video_row`, :func:`small_tables`, :func:`output_files` — rows, tables and the file
  listing of an output, for the committer tests.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.fs as pafs

from ferbatch.config import RunConfig
from ferbatch.decode import Frame, FrameSampler, VideoInfo, VideoStream
from ferbatch.errors import SegmentError
from ferbatch.output.location import OutputLocation
from ferbatch.output.schema import VIDEOS_SCHEMA
from ferbatch.pipeline import Stages, VideoResult, process_video
from ferbatch.progress import Retry, RunHook, SegmentStart, Unsplit, WorkerInfo
from ferbatch.segments import SegmentPlan, merge_segments, process_segment

REPO_ROOT = Path(__file__).resolve().parents[1]

#: Ray's messages when a node's raylet died during start-up and when a driver could not connect
#: to the cluster's GCS in time: a machine too loaded for Ray's control plane
RAY_START_FAILED = ("The current node timed out during startup", "Failed to connect to Ray cluster at")


def ray_could_not_start(stderr: str) -> bool:
    """True when ``stderr`` shows one of :data:`RAY_START_FAILED` (a test then skips)."""
    return any(text in stderr for text in RAY_START_FAILED)


def free_port() -> int:
    """A TCP port free on 127.0.0.1 now."""
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])

#: the only columns allowed to differ between two runs of the same inputs and settings
VARYING = ["processing_s", "finished_at"]


def shared_path() -> Path:
    """``../shared`` next to the repository, or ``$FERBATCH_SHARED`` (it may not exist)."""
    env = os.environ.get("FERBATCH_SHARED")
    return Path(env).expanduser() if env else REPO_ROOT.parent / "shared"


class Events(RunHook):
    """Records ``(kind, payload)`` for every event; ``react(kind, payload)`` runs after each."""

    def __init__(self, react: Callable[[str, Any], None] | None = None) -> None:
        self.events: list[tuple[str, Any]] = []
        self.pids: list[int] = []
        self.react = react

    def _add(self, kind: str, payload: Any) -> None:
        self.events.append((kind, payload))
        if self.react is not None:
            self.react(kind, payload)

    def of(self, kind: str) -> list[Any]:
        return [p for e, p in self.events if e == kind]

    def on_start(self, n_videos: int) -> None:
        self._add("start", n_videos)

    def on_skip(self, row: dict[str, Any]) -> None:
        self._add("skip", row)

    def on_video(self, path: Path) -> None:
        self._add("video", path)

    def on_frames(self, n: int) -> None:
        self._add("frames", n)

    def on_done(self, row: dict[str, Any]) -> None:
        self._add("done", row)

    def on_worker(self, info: WorkerInfo) -> None:
        self.pids.append(info.pid)
        self._add("worker", info)

    def on_retry(self, retry: Retry) -> None:
        self._add("retry", retry)

    def on_segment(self, segment: SegmentStart) -> None:
        self._add("segment", segment)

    def on_unsplit(self, unsplit: Unsplit) -> None:
        self._add("unsplit", unsplit)


def read_output(out: Path) -> dict[str, pd.DataFrame]:
    """``videos`` (without :data:`VARYING`), ``frames`` and ``faces`` of an output, sorted."""
    videos = pd.read_parquet(out / "videos.parquet").drop(columns=VARYING)
    tables = {"videos": videos.sort_values("path").reset_index(drop=True)}
    for name, keys in (("frames", ["video_id", "frame_index"]),
                       ("faces", ["video_id", "frame_index", "face_id"])):
        if (out / name).exists():
            df = pd.read_parquet(out / name)
            df["video_id"] = df["video_id"].astype(str)
            tables[name] = df.sort_values(keys).reset_index(drop=True)
    return tables


def assert_same_frame(a: pd.DataFrame, b: pd.DataFrame, atol: float = 1e-3) -> None:
    """Equal columns and rows; floats to ``atol`` (batch sizes and thread counts may differ)."""
    assert list(a.columns) == list(b.columns) and len(a) == len(b)
    for col in a.columns:
        if pd.api.types.is_float_dtype(a[col]):
            np.testing.assert_allclose(a[col].to_numpy(), b[col].to_numpy(), atol=atol, err_msg=col)
        else:
            assert a[col].tolist() == b[col].tolist(), col


def assert_same_output(ours: Path, theirs: Path, atol: float = 1e-3) -> None:
    a, b = read_output(ours), read_output(theirs)
    assert a.keys() == b.keys()
    for name in a:
        assert_same_frame(a[name], b[name], atol)


def process_segments_locally(path: str | os.PathLike[str], plan: SegmentPlan, config: RunConfig,
                             stages: Stages) -> VideoResult:
    """Analyse every segment of ``plan`` here, one after the other, and merge them; the whole
    video instead when the segments cannot be merged (as the Ray executor falls back)."""
    if not plan.split:
        return process_video(path, config, stages)
    results = [process_segment(path, span, config, stages) for span in plan.spans]
    try:
        return merge_segments(plan, results)
    except SegmentError:
        return process_video(path, config, stages)


class MemoryStream(VideoStream):
    """A video held in memory: ``images`` at ``fps``, as a decoder backend would yield them.

    ``error`` is what :attr:`VideoStream.error` reports once the frames are exhausted (damage
    a real backend would have met). ``closed`` tells whether :meth:`close` was called.
    """

    def __init__(self, path: str | os.PathLike[str], images: list[np.ndarray], fps: float = 10.0,
                 error: str | None = None) -> None:
        h, w = images[0].shape[:2]
        self.info = VideoInfo(path=str(path), width=w, height=h, rotation=0, fps=fps,
                              duration_s=len(images) / fps, frame_count=len(images),
                              codec="memory")
        self.images = images
        self.fps = fps
        self.frames_decoded = 0
        self.error = None
        self._error_at_end = error
        self.closed = False

    def frames(self, sampler: FrameSampler | None = None):
        sampler = sampler or FrameSampler()
        sampler.reset()
        for i, image in enumerate(self.images):
            if self.closed:
                return
            self.frames_decoded += 1
            if sampler.keep(i, i / self.fps):
                yield Frame(index=i, timestamp_s=i / self.fps, image=image)
        self.error = self._error_at_end

    def close(self) -> None:
        self.closed = True


def video_row(video_id: str, status: str = "ok") -> dict[str, Any]:
    """A ``videos.parquet`` row with only its id, path and status set."""
    row: dict[str, Any] = {name: None for name in VIDEOS_SCHEMA.names}
    row.update(video_id=video_id, path=f"/in/{video_id}.mp4", status=status)
    return row


def small_tables(n: int, tag: float = 0.9) -> tuple[pa.Table, pa.Table]:
    """``frames`` and ``faces`` tables of ``n`` frames with one face each (labels happy, sad;
    ``p_happy`` = ``tag``), without the ``video_id`` column (the partition gives it)."""
    frames = pa.table({"frame_index": pa.array(range(n), pa.int64()),
                       "timestamp_s": [i / 10 for i in range(n)],
                       "num_faces": pa.array([1] * n, pa.int16())})
    faces = pa.table({"frame_index": pa.array(range(n), pa.int64()),
                      "timestamp_s": [i / 10 for i in range(n)],
                      "face_id": pa.array([0] * n, pa.int32()), "emotion": ["happy"] * n,
                      "p_happy": pa.array([tag] * n, pa.float32()),
                      "p_sad": pa.array([1 - tag] * n, pa.float32())})
    return frames, faces


def output_files(loc: OutputLocation, folder: str) -> list[str]:
    """Names of the files under ``folder`` of the output, relative to it, sorted."""
    root = loc.join(folder).strip("/")
    infos = loc.filesystem.get_file_info(pafs.FileSelector(loc.join(folder), allow_not_found=True,
                                                           recursive=True))
    return sorted(i.path.strip("/")[len(root) + 1:] for i in infos if i.type == pafs.FileType.File)
