"""Ray controller: spread the videos of a run over a pool of worker actors (CPUs or GPUs).

The driver does what :func:`ferbatch.runner.run` does — discover, skip finished videos, prepare
the output, rebuild ``videos.parquet`` — but hands each video to a :class:`VideoWorker` actor.
A worker loads the detector and the classifier once, analyses a whole video and commits it
itself with :meth:`OutputStore.commit` on the shared output folder, so only the small status row
travels back through Ray (never frames). The driver feeds one video at a time to whichever
worker is idle, so a long video does not hold up the others.

Long videos (``--segment-s``, :mod:`ferbatch.segments`): the worker that gets a video first plans
it with a packet-only pass; a video at least twice ``segment_s`` long comes back as a plan of
keyframe-aligned segments, which are queued at the front and analysed by whichever workers are
idle (each decodes its own part of the file: frames never travel). Their tables (rows) wait in
the object store until one worker merges them, re-links face ids across the cuts and commits
the video once. The rows equal an unsplit run's, up to the boundary behaviour documented in
:mod:`ferbatch.segments`; a segment that does not decode cleanly makes the video run whole.

Fault tolerance: if a worker process dies mid-video, the driver replaces the worker and retries
the video, or the one segment or merge it was doing (``max_retries`` times); a commit is atomic
per video (partitions put in place, then the status row, on a shared folder or an object store;
see :mod:`ferbatch.write`), so a retried video never duplicates rows. A video that keeps killing its worker is recorded as ``failed`` and
the run goes on.

A local run starts a private Ray instance whose servers listen on 127.0.0.1 only (:func:`init_local`).
"""

from __future__ import annotations

import dataclasses
import logging
import os
import shutil
import sys
import tempfile
import time
from collections import deque
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import TYPE_CHECKING, Any

from .config import RunConfig
from .errors import ConfigError, FerbatchError

if TYPE_CHECKING:  # the runtime imports are inside functions: `ferbatch --help` stays fast
    from .decode.pyav import FrameSpan
    from .runner import RunSummary
    from .segments import SegmentPlan
    from .write import OutputLocation

ProgressHook = Callable[[str, Any], None]
STATUS_OK, STATUS_FAILED = "ok", "failed"  # == ferbatch.schema's (pyarrow-free import)

#: Environment variable read by ``ray._private.ray_constants`` at import time. When it is false,
#: ``ray.init`` keeps ``_node_ip_address="127.0.0.1"`` instead of rewriting it to the machine's
#: routable address, and every Ray server (GCS, raylet, workers, dashboard agent) then listens
#: on 127.0.0.1 only. Measured with Ray 2.60 (``ss -ltn``): without it they listen on 0.0.0.0.
LOOPBACK_ENV = "RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER"

#: ``--segment-s`` default: only videos of 10 minutes or more are split (into ~5-minute parts)
DEFAULT_SEGMENT_S = 300.0

_PROVENANCE_FIELDS = ("model", "model_sha256", "detector", "sampling", "settings_fingerprint",
                        "schema_version", "ferbatch_version")


class VideoWorker:
    """One Ray actor: loaded models plus the output store; analyses and commits whole videos.

    Wrapped with ``ray.remote`` at run time (:func:`run_distributed`), so importing this module
    does not import Ray.
    """

    def __init__(self, out: str | OutputLocation, config: dict[str, Any]) -> None:
        from .pipeline import Stages

        _quiet_ffmpeg()
        from .write import OutputStore

        self.config = RunConfig.from_dict(config).validate()
        self.stages = Stages(self.config)
        self.store = OutputStore(out)

    def info(self) -> dict[str, Any]:
        """Who this worker is (pid, node, device) and the provenance fields of its rows."""
        import socket

        from . import __version__
        from .decode import FrameSampler
        from .schema import SCHEMA_VERSION

        s = self.stages
        return {
            "pid": os.getpid(), "host": socket.gethostname(), "device": str(s.device),
            "labels": list(s.labels),
            "row": {"model": s.classifier.name, "model_sha256": s.classifier.sha256,
                    "detector": s.detector.describe(),
                    "sampling": FrameSampler.from_config(self.config.decode).describe(),
                    "settings_fingerprint": s.fingerprint, "schema_version": SCHEMA_VERSION,
                    "ferbatch_version": __version__},
        }

    def process(self, path: str) -> dict[str, Any]:
        """Analyse ``path``, commit its partitions and status row, return the row (small)."""
        from .pipeline import process_video

        result = process_video(path, self.config, self.stages)
        self.store.commit(result.row, result.frames, result.faces)
        return result.row

    def start(self, path: str, segment_s: float) -> dict[str, Any]:
        """Plan ``path``: a video worth splitting comes back as ``{"plan": SegmentPlan}``,
        unprocessed; any other is analysed and committed here: ``{"row": row}``."""
        from .segments import plan_segments

        plan = plan_segments(path, self.config, segment_s)
        if plan.split:
            return {"plan": plan}
        return {"row": self.process(path)}

    def segment(self, path: str, span: FrameSpan) -> tuple[dict[str, Any], Any]:
        """Analyse one time segment; returns its row and its (frames, faces) tables (or ``None``).

        Called with ``num_returns=2``: the driver fetches only the row; the tables stay in the
        object store until a :meth:`merge` reads them (they are rows, a few hundred bytes per
        frame; the frames themselves never leave this worker).
        """
        from .segments import process_segment

        result = process_segment(path, span, self.config, self.stages)
        tables = (result.frames, result.faces) if result.frames is not None else None
        return result.row, tables

    def merge(self, plan: SegmentPlan, rows: list[dict[str, Any]],
              parts: list[Any]) -> dict[str, Any]:
        """Merge a video's segments (``parts``: ObjectRefs of their tables) and commit it once.

        Returns ``{"row": row}``, or ``{"fallback": reason}`` when the segments cannot stand
        for the whole video (nothing is committed then).
        """
        import ray

        from .pipeline import VideoResult
        from .segments import SegmentError, merge_segments

        started = time.perf_counter()
        tables = ray.get(parts)
        results = [VideoResult(row, *(t if t is not None else (None, None)))
                   for row, t in zip(rows, tables)]
        try:
            merged = merge_segments(plan, results)
        except SegmentError as exc:
            return {"fallback": str(exc)}
        merged.row["processing_s"] = round(merged.row["processing_s"]
                                           + time.perf_counter() - started, 4)
        self.store.commit(merged.row, merged.frames, merged.faces)
        return {"row": merged.row}


# -- connecting to Ray ------------------------------------------------------------------------
def _short_temp_dir() -> str:
    """A fresh, short temp dir: Ray's Unix socket paths must stay under 107 characters."""
    base = tempfile.gettempdir()
    if len(base) > 40:
        base = "/tmp"
    return tempfile.mkdtemp(prefix="ferray-", dir=base)


@contextmanager
def connect(address: str | None = None, num_cpus: int | None = None,
            num_gpus: int | None = None) -> Iterator[bool]:
    """Use Ray for the duration of the block; yields ``True`` when this call started/joined it.

    * Ray already initialised in this process (a test session, a notebook): reuse it, leave it up.
    * ``address`` (``"auto"``, ``"host:port"``, ``"ray://…"``) or ``$RAY_ADDRESS``: join that
      cluster, disconnect at the end.
    * Otherwise: start a private single-machine instance bound to 127.0.0.1 with a temp dir of
      its own and no dashboard, and shut it down (and remove its temp dir) at the end.
    """
    import ray

    if ray.is_initialized():
        yield False
        return
    address = address or os.environ.get("RAY_ADDRESS") or None
    temp_dir: str | None = None
    try:
        if address:
            try:
                ray.init(address=address, logging_level="WARNING")
            except (ConnectionError, ValueError, RuntimeError) as exc:
                raise ConfigError(f"cannot connect to the Ray cluster at {address!r}: {exc}") from exc
        else:
            temp_dir = _short_temp_dir()
            init_local(num_cpus, num_gpus, temp_dir=temp_dir)
        yield True
    finally:
        if ray.is_initialized():
            ray.shutdown()
        if temp_dir is not None:
            shutil.rmtree(temp_dir, ignore_errors=True)


def init_local(num_cpus: int | None = None, num_gpus: int | None = None,
               temp_dir: str | None = None) -> str:
    """``ray.init`` a private single-machine instance whose servers listen on 127.0.0.1 only.

    Returns its temp dir (a fresh short one unless given). Ray 2.60 rewrites
    ``_node_ip_address="127.0.0.1"`` to the machine's routable address unless
    ``ray_constants.ENABLE_RAY_CLUSTER`` is false (read from :data:`LOOPBACK_ENV` at import):
    this sets both, the variable for the Ray processes it starts.
    """
    import ray
    from ray._private import ray_constants

    temp_dir = temp_dir or _short_temp_dir()
    # "Token authentication is enabled" is Ray's default for a new instance: no news to a user.
    logging.getLogger("ray._private.authentication.authentication_token_setup").setLevel(
        logging.ERROR)
    saved = ray_constants.ENABLE_RAY_CLUSTER, os.environ.get(LOOPBACK_ENV)
    ray_constants.ENABLE_RAY_CLUSTER = False
    os.environ[LOOPBACK_ENV] = "0"  # inherited by the GCS, raylet and workers started here
    try:
        ray.init(num_cpus=num_cpus or os.cpu_count() or 1, num_gpus=num_gpus,
                 include_dashboard=False, _node_ip_address="127.0.0.1", _temp_dir=temp_dir,
                 logging_level="WARNING")
    finally:
        ray_constants.ENABLE_RAY_CLUSTER = saved[0]
        if saved[1] is None:
            os.environ.pop(LOOPBACK_ENV, None)
        else:
            os.environ[LOOPBACK_ENV] = saved[1]
    return temp_dir


# -- command-line options (shared by `ferbatch run` and jobs/process_videos.py) ---------------
def ray_options(local_flag: bool = True) -> Callable[[Any], Any]:
    """click options of the Ray controller; ``local_flag`` adds ``--ray/--local``."""
    import click

    options = [
        click.option("--address", default=None, metavar="ADDR",
                     help="Ray cluster to join: auto, HOST:PORT or ray://HOST:PORT "
                          "(default: $RAY_ADDRESS, else a private local instance)."),
        click.option("--workers", type=click.IntRange(min=1), default=None,
                     help="Worker actors (default: cluster CPUs // --cpus-per-worker, "
                          "at most one per video)."),
        click.option("--cpus-per-worker", type=click.FloatRange(min=0), default=1.0,
                     show_default=True, help="CPUs each worker reserves (its torch threads)."),
        click.option("--gpus-per-worker", type=click.FloatRange(min=0), default=None,
                     help="GPUs each worker reserves; 0.5 puts two workers on a GPU "
                          "(default: 1 when the cluster has GPUs and --device is not cpu, else 0)."),
        click.option("--max-retries", type=click.IntRange(min=0), default=2, show_default=True,
                     help="Times a video (or one of its segments) is retried after its worker "
                          "died."),
        click.option("--segment-s", type=click.FloatRange(min=0), default=DEFAULT_SEGMENT_S,
                     show_default=True, metavar="SECONDS",
                     help="Split a video at least twice this long into segments of about this "
                          "many seconds, cut at keyframes, that several workers analyse; the "
                          "merged rows match an unsplit run (README). 0: never split."),
    ]
    if local_flag:
        options.insert(0, click.option(
            "--ray/--local", "use_ray", default=None,
            help="Run through Ray worker actors, or in this process. Default: Ray when "
                 "--address/$RAY_ADDRESS is given, the inputs hold more than one video, or "
                 "one video is long enough to split (--segment-s)."))

    def decorate(fn: Any) -> Any:
        for option in reversed(options):
            fn = option(fn)
        return fn

    return decorate


def wants_ray(use_ray: bool | None, address: str | None,
              inputs: Sequence[str | os.PathLike[str]], segment_s: float = 0.0) -> bool:
    """``--ray``/``--local`` decide; unset: Ray for a cluster address, more than one video, or
    one video long enough to be split into segments (``segment_s > 0``) on a multi-core machine.

    Any other single video runs in-process: a local Ray start costs seconds that one worker
    cannot win back.
    """
    if use_ray is not None:
        return use_ray
    if address or os.environ.get("RAY_ADDRESS"):
        return True
    from .runner import discover_videos

    videos = discover_videos(inputs)
    if len(videos) > 1:
        return True
    if len(videos) == 1 and segment_s > 0 and (os.cpu_count() or 1) > 1:
        from .segments import header_duration

        duration = header_duration(videos[0])
        return duration is not None and duration >= 2 * segment_s
    return False


def ray_kwargs(opts: dict[str, Any]) -> dict[str, Any]:
    """The keyword arguments of :func:`run_distributed` from parsed :func:`ray_options`."""
    return {k: opts[k] for k in ("address", "workers", "cpus_per_worker", "gpus_per_worker",
                                 "max_retries", "segment_s")}


# -- the controller ---------------------------------------------------------------------------
@dataclass
class _Slot:
    """One worker actor of the pool and what it is doing."""

    actor: Any
    info: dict[str, Any] | None = None


class _Log:
    """One stderr line per finished video: done/total, frames/s, ETA, failures (for job logs)."""

    def __init__(self, total: int, enabled: bool) -> None:
        self.total, self.enabled = total, enabled
        self.started: float | None = None
        self.done = self.frames = self.failures = 0

    def begin(self) -> None:
        """Start the clock when the first worker is ready (Ray start-up is not throughput)."""
        if self.started is None:
            self.started = time.perf_counter()

    def __call__(self, row: dict[str, Any]) -> None:
        self.done += 1
        self.frames += int(row.get("frames_analyzed") or 0)
        self.failures += row["status"] == STATUS_FAILED
        if not self.enabled:
            return
        self.begin()
        assert self.started is not None
        elapsed = time.perf_counter() - self.started
        eta = elapsed / self.done * (self.total - self.done)
        name = Path(row["path"]).name
        detail = f" ({row['error']})" if row["status"] != STATUS_OK and row.get("error") else ""
        print(f"[ferbatch] {self.done}/{self.total} videos | {self.frames} frames, "
              f"{self.frames / max(elapsed, 1e-9):.1f} frames/s | ETA {eta:.0f} s | "
              f"{self.failures} failed | {row['status']} {name}{detail}",
              file=sys.stderr, flush=True)


def _failed_row(path: Path, template: dict[str, Any], error: str) -> dict[str, Any]:
    """The status row of a video whose workers kept dying (same fields as process_video's)."""
    row: dict[str, Any] = {"video_id": None, "path": os.path.abspath(path), "status": STATUS_FAILED,
                           "error": error, "frames_decoded": 0, "frames_analyzed": 0,
                           "faces_detected": 0, "tracks": 0, "processing_s": 0.0,
                           "finished_at": datetime.now(timezone.utc)}
    from .pipeline import video_id_for

    row["video_id"] = video_id_for(path)
    row.update({k: template.get(k) for k in _PROVENANCE_FIELDS})
    try:
        st = path.stat()
        row["file_size"], row["file_mtime_ns"] = st.st_size, st.st_mtime_ns
    except OSError:
        pass
    return row


def default_workers(resources: dict[str, float], cpus_per_worker: float,
                    gpus_per_worker: float, n_videos: int) -> int:
    """As many workers as the cluster's CPUs (and GPUs, if asked for) hold, at most one a video."""
    n = int(resources.get("CPU", 1) // cpus_per_worker) if cpus_per_worker > 0 else n_videos
    if gpus_per_worker > 0:
        n = min(n, int(resources.get("GPU", 0) // gpus_per_worker))
        if n < 1:
            raise ConfigError(f"--gpus-per-worker {gpus_per_worker} but the Ray cluster has "
                              f"{resources.get('GPU', 0):g} GPUs")
    return max(1, min(n, n_videos))


def run_distributed(inputs: Sequence[str | os.PathLike[str]],
                    out: str | os.PathLike[str] | OutputLocation,
                    config: RunConfig | None = None, *, address: str | None = None,
                    workers: int | None = None, cpus_per_worker: float = 1,
                    gpus_per_worker: float | None = None, overwrite: bool = False,
                    hook: ProgressHook | None = None, max_retries: int = 2,
                    log: bool = True, segment_s: float = DEFAULT_SEGMENT_S) -> RunSummary:
    """Process every video under ``inputs`` into ``out`` with a pool of Ray worker actors.

    Same skip rules, output and :class:`RunSummary` as :func:`ferbatch.runner.run`. The inputs
    must be paths every worker can read (one machine, or a shared filesystem); so must ``out``,
    or it is an object-store URI (``s3://…``, ``gs://…``) that each worker resolves with the
    credentials of its own environment.
    ``workers`` defaults to cluster CPUs // ``cpus_per_worker`` (and GPUs // ``gpus_per_worker``),
    at most one per work unit (a video, or a segment of a long one). ``segment_s > 0``: a video at
    least twice that long is cut at keyframes into segments of about ``segment_s`` seconds that
    separate workers analyse and one merges (:mod:`ferbatch.segments`); 0 never splits.
    ``gpus_per_worker=None``: one GPU per worker when the cluster has GPUs
    and ``config.device`` is not ``cpu``, else none; workers without a GPU run on the CPU (Ray
    2.60 no longer hides the GPUs from actors that reserved none).
    ``hook(event, payload)`` receives ``("start", n_videos)``, ``("worker", info)`` when a worker
    is ready, ``("skip", row)``, ``("video", path)`` when a video is handed to a worker,
    ``("retry", {"path", "attempt", "error"})``, ``("frames", n)`` and ``("done", VideoResult)``
    (its tables are ``None``: they are on disk); for a split video also ``("segment", {"path",
    "index", "of", "attempt"})`` when a segment is handed to a worker and ``("unsplit", {"path",
    "reason"})`` when its segments could not be merged and it is analysed whole instead.
    ``log`` prints one stderr line per video.
    """
    from .classify import EmotionClassifier
    from .pipeline import video_id_for
    from .runner import RunSummary, discover_videos, is_complete
    from .write import OutputStore, output_label, resolve_output

    config = (config or RunConfig()).validate()
    if cpus_per_worker < 0 or (gpus_per_worker or 0) < 0:
        raise ConfigError("--cpus-per-worker and --gpus-per-worker must be >= 0")
    if workers is not None and workers < 1:
        raise ConfigError(f"--workers must be >= 1, got {workers}")
    if segment_s < 0:
        raise ConfigError(f"--segment-s must be >= 0, got {segment_s}")
    started = time.perf_counter()
    videos = discover_videos(inputs)
    out_path = resolve_output(out)  # a local path, a URI or an OutputLocation; fails early
    # The driver only needs the label set, the model's name and its hash: load it on the CPU.
    classifier = EmotionClassifier(config.classify.model, device="cpu")
    fingerprint = config.fingerprint(classifier.sha256)
    store = OutputStore(out_path)
    store.prepare(classifier.labels, classifier.name, overwrite=overwrite)
    store.clean_temp()
    del classifier
    summary = RunSummary(out=output_label(out_path))
    emit: ProgressHook = hook or (lambda event, payload: None)
    emit("start", len(videos))
    rows: dict[str, dict[str, Any]] = {}
    todo: list[Path] = []
    for path in videos:
        old = store.read_status(video_id_for(path))
        if not overwrite and is_complete(old, path, fingerprint):
            assert old is not None
            rows[str(path)] = old
            summary.skipped.append(str(path))
            emit("skip", old)
        else:
            todo.append(path)
    if todo:
        with connect(address):
            done_rows = _run_pool(todo, out_path, config, workers, cpus_per_worker,
                                  gpus_per_worker, max_retries, emit, _Log(len(todo), log),
                                  segment_s)
        for path in todo:
            row = done_rows[str(path)]
            rows[str(path)] = row
            summary.frames += int(row.get("frames_analyzed") or 0)
    summary.rows = [rows[str(p)] for p in videos]
    store.write_videos_table()
    summary.seconds = time.perf_counter() - started
    return summary


@dataclass
class _Task:
    """One unit of work for a worker: start (plan, maybe analyse) / whole / segment / merge."""

    kind: str
    path: Path
    attempt: int = 0  # retries of this very task (a segment's or a merge's own count)
    index: int = 0  # the segment, for kind == "segment"


@dataclass
class _Split:
    """A video being analysed in segments: what came back so far."""

    plan: SegmentPlan
    rows: list[dict[str, Any] | None]
    parts: list[Any]  # ObjectRef of each segment's (frames, faces) tables, or None

    @property
    def complete(self) -> bool:
        return all(r is not None for r in self.rows)


def _count_units(todo: list[Path], segment_s: float, cap: int) -> int:
    """Work units the videos will make (segments estimated from the container headers).

    Stops counting at ``cap`` (the pool cannot be larger anyway), so a big folder costs no more
    header reads than there are workers to fill.
    """
    if segment_s <= 0 or len(todo) >= cap:
        return len(todo)
    from .segments import estimate_units

    units = 0
    for path in todo:
        units += estimate_units(path, segment_s)
        if units >= cap:
            break
    return units


def _run_pool(todo: list[Path], out: OutputLocation, config: RunConfig, workers: int | None,
              cpus_per_worker: float, gpus_per_worker: float | None, max_retries: int,
              emit: ProgressHook, log: "_Log", segment_s: float = 0.0
              ) -> dict[str, dict[str, Any]]:
    """Feed ``todo`` to a pool of actors; returns each video's committed status row by path.

    A video starts as a ``start`` task (``whole`` when splitting is off); a worker that finds
    it long enough returns its segment plan, the segments are queued at the front (so a long
    video finishes early and its tables do not linger), and once all are back a ``merge`` task
    commits it. A segment that does not end ``ok``, or segments that cannot be merged, turn the
    video into one ``whole`` task. Dead workers are replaced; their task is retried.
    """
    import ray
    from ray.exceptions import GetTimeoutError, RayActorError, RayTaskError

    from .pipeline import VideoResult
    from .write import OutputStore

    resources = ray.cluster_resources()
    if gpus_per_worker is None:
        gpus_per_worker = 1.0 if config.device != "cpu" and resources.get("GPU", 0) >= 1 else 0.0
    if gpus_per_worker == 0:
        if config.device.startswith("cuda"):
            raise ConfigError(f"--device {config.device} needs --gpus-per-worker > 0 "
                              f"(the Ray cluster has {resources.get('GPU', 0):g} GPUs)")
        config = dataclasses.replace(config, device="cpu")  # not a GPU it did not reserve
    for kind, need in (("CPU", cpus_per_worker), ("GPU", gpus_per_worker)):
        if need > resources.get(kind, 0):
            raise ConfigError(f"each worker asks for {need:g} {kind}s but the Ray cluster has "
                              f"{resources.get(kind, 0):g}")
    n = workers or default_workers(resources, cpus_per_worker, gpus_per_worker, 1 << 30)
    n = min(n, _count_units(todo, segment_s, n))
    actor_cls = ray.remote(VideoWorker).options(  # type: ignore[attr-defined]
        num_cpus=cpus_per_worker, num_gpus=gpus_per_worker, max_restarts=0,
        max_task_retries=0, max_concurrency=1)
    cfg = config.to_dict()
    slots: dict[Any, _Slot] = {}  # ObjectRef of info() -> slot
    running: dict[Any, tuple[_Slot, _Task, Any]] = {}  # ObjectRef -> slot, task, extra ref
    idle: deque[_Slot] = deque()
    first = "start" if segment_s > 0 else "whole"
    queue: deque[_Task] = deque(_Task(first, p) for p in todo)
    splits: dict[str, _Split] = {}
    results: dict[str, dict[str, Any]] = {}
    template: dict[str, Any] = {}
    last_error = ""

    def spawn() -> None:
        slot = _Slot(actor_cls.remote(out.portable(), cfg))
        slots[slot.actor.info.remote()] = slot

    def finish(path: Path, row: dict[str, Any]) -> None:
        splits.pop(str(path), None)
        results[str(path)] = row
        log(row)
        emit("frames", int(row.get("frames_analyzed") or 0))
        emit("done", VideoResult(row, None, None))

    def fail(path: Path, error: str) -> None:
        row = _failed_row(path, template, error)
        OutputStore(out).commit(row, None, None)
        finish(path, row)

    def unsplit(task: _Task, reason: str, attempt: int = 0) -> None:
        """Give up the segments of ``task.path``: analyse the video whole, next."""
        splits.pop(str(task.path), None)
        emit("unsplit", {"path": task.path, "reason": reason})
        if log.enabled:
            print(f"[ferbatch] {task.path.name}: analysing it whole, its segments could not be "
                  f"merged: {reason}", file=sys.stderr, flush=True)
        queue.appendleft(_Task("whole", task.path, attempt))

    def current(task: _Task, split: _Split | None) -> bool:
        """True while the result of ``task`` still matters (its split was not given up)."""
        return task.kind not in ("segment", "merge") or (
            split is not None and splits.get(str(task.path)) is split)

    def dispatch(slot: _Slot, task: _Task) -> None:
        path = os.path.abspath(task.path)
        split = splits.get(str(task.path))
        extra: Any = split
        if task.kind == "whole":
            ref = slot.actor.process.remote(path)
            emit("video", task.path)
        elif task.kind == "start":
            ref = slot.actor.start.remote(path, segment_s)
            emit("video", task.path)
        elif task.kind == "segment":
            assert split is not None
            ref, parts = slot.actor.segment.options(num_returns=2).remote(
                path, split.plan.spans[task.index])
            extra = (parts, split)
            emit("segment", {"path": task.path, "index": task.index,
                             "of": len(split.plan.spans), "attempt": task.attempt})
        else:
            assert split is not None
            ref = slot.actor.merge.remote(split.plan, split.rows, split.parts)
        running[ref] = (slot, task, extra)

    def retry_or_fail(task: _Task, error: str, front: bool) -> None:
        """Queue ``task`` again (it gets one more attempt) or record the video as failed."""
        if task.attempt >= max_retries:
            fail(task.path, error)
            return
        emit("retry", {"path": task.path, "attempt": task.attempt + 1, "error": error})
        again = dataclasses.replace(task, attempt=task.attempt + 1)
        (queue.appendleft if front else queue.append)(again)

    def accept(task: _Task, value: Any, split: _Split | None, parts: Any) -> None:
        """A task came back: record it and queue what follows."""
        if task.kind == "whole":
            finish(task.path, value)
        elif task.kind == "start":
            if "row" in value:
                finish(task.path, value["row"])
                return
            plan = value["plan"]
            k = len(plan.spans)
            splits[str(task.path)] = _Split(plan, [None] * k, [None] * k)
            queue.extendleft(_Task("segment", task.path, 0, i) for i in reversed(range(k)))
        elif task.kind == "segment":
            assert split is not None
            row, = value
            if row["status"] != STATUS_OK:
                unsplit(task, f"segment {task.index} ended {row['status']}: {row.get('error')}")
                return
            split.rows[task.index], split.parts[task.index] = row, parts
            if split.complete:
                queue.appendleft(_Task("merge", task.path))
        elif "fallback" in value:
            unsplit(task, value["fallback"])
        else:
            finish(task.path, value["row"])

    for _ in range(n):
        spawn()
    try:
        while queue or running:
            while queue and idle:
                task = queue.popleft()
                if task.kind in ("segment", "merge") and str(task.path) not in splits:
                    continue  # its video was given up (unsplit or failed) meanwhile
                dispatch(idle.popleft(), task)
            waiting = list(slots) + list(running)
            if not waiting:  # every worker failed to start
                raise FerbatchError(f"no Ray worker could start: {last_error}")
            ready, _ = ray.wait(waiting, num_returns=1)
            ref = ready[0]
            if ref in slots:  # a worker finished loading its models (or failed to)
                slot = slots.pop(ref)
                try:
                    slot.info = ray.get(ref)
                except (RayActorError, RayTaskError) as exc:
                    last_error = _short(exc)
                    print(f"[ferbatch] a worker failed to start: {last_error}", file=sys.stderr)
                    continue
                template = template or slot.info["row"]
                log.begin()
                idle.append(slot)
                emit("worker", slot.info)
                continue
            slot, task, extra = running.pop(ref)
            parts, split = extra if task.kind == "segment" else (None, extra)
            where = f" segment {task.index}" if task.kind == "segment" else (
                " (merging)" if task.kind == "merge" else "")
            try:
                value = ray.get(ref)
            except RayActorError as exc:  # the worker process died: replace it, retry the task
                ray.kill(slot.actor, no_restart=True)
                if current(task, split):
                    retry_or_fail(task, f"{task.path.name}{where}: worker died "
                                        f"{task.attempt + 1} time(s): {_short(exc)}", front=True)
                if queue or running:
                    spawn()
                continue
            except RayTaskError as exc:  # e.g. the commit hit a full disk: retry, then fail
                idle.append(slot)
                error = f"{task.path.name}{where}: {_short(exc)}"
                if not current(task, split):
                    pass
                elif task.kind == "merge" and task.attempt < max_retries:
                    unsplit(task, error, task.attempt + 1)  # e.g. segment tables lost with a node
                else:
                    retry_or_fail(task, error, front=False)
                continue
            idle.append(slot)
            if current(task, split):
                accept(task, (value,) if task.kind == "segment" else value, split, parts)
    finally:
        for slot in [*slots.values(), *idle, *(s for s, _, _ in running.values())]:
            try:
                ray.kill(slot.actor, no_restart=True)
            except (RayActorError, ValueError, GetTimeoutError):
                pass
    return results


def _quiet_ffmpeg() -> None:
    """FFmpeg's per-packet warnings stay out of the worker logs (errors reach the rows)."""
    import logging

    import av.logging

    av.logging.set_level(av.logging.PANIC)
    logging.getLogger("libav").setLevel(logging.ERROR)


def _short(exc: BaseException, limit: int = 300) -> str:
    """The last line of a (remote) exception, for a row's ``error`` column."""
    text = str(exc).strip().splitlines()
    line = next((t for t in reversed(text) if t.strip()), type(exc).__name__)
    return line.strip()[:limit]
