"""One typed configuration that flows from the CLI (or Python API) to every stage.

Each stage reads only its own section. ``RunConfig.fingerprint()`` hashes everything that
changes the *content* of a video's output, so a re-run can skip videos already done with the
same model and settings and redo the rest.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
from dataclasses import dataclass, field
from typing import Any

from .errors import ConfigError

VIDEO_EXTENSIONS = frozenset({".mp4", ".mov", ".mkv", ".webm", ".avi", ".m4v", ".mpg", ".mpeg", ".ts",
                              ".h264", ".264", ".hevc", ".h265", ".265", ".m2v"})  # + raw elementary streams


@dataclass(frozen=True)
class DecodeConfig:
    """How frames are sampled from a video. At most one of ``fps`` and ``every`` may be set;
    neither means every frame.

    Fields (the ``ferbatch run`` option each mirrors, and its unit):

    * ``fps``: ``--fps``, frames analysed per second of video (time-based, correct on variable
      frame rate).
    * ``every``: ``--every``, analyse every N-th decoded frame.
    * ``threads``: ``--decode-threads``, FFmpeg decoding threads per video; 0 lets FFmpeg choose.
    * ``max_consecutive_errors``: corrupt packets skipped in a row before the rest of the file is
      given up and the video ends ``partial`` (no option).
    """

    fps: float | None = None
    every: int | None = None
    threads: int = 0
    max_consecutive_errors: int = 8

    def validate(self) -> None:
        if self.fps is not None and self.every is not None:
            raise ConfigError("choose either --fps or --every, not both")
        if self.fps is not None and not self.fps > 0:
            raise ConfigError(f"--fps must be > 0, got {self.fps}")
        if self.every is not None and self.every < 1:
            raise ConfigError(f"--every must be >= 1, got {self.every}")
        if self.threads < 0:
            raise ConfigError(f"--decode-threads must be >= 0, got {self.threads}")


@dataclass(frozen=True)
class DetectConfig:
    """MTCNN face detection settings. Boxes are always in pixels of the displayed frame.

    Fields (the ``ferbatch run`` option each mirrors, and its unit):

    * ``min_face_size``: ``--min-face``, smallest face found, in pixels of the displayed frame
      (>= 8).
    * ``thresholds``: ``--thresholds``, MTCNN P-, R- and O-Net score thresholds, each in (0, 1).
    * ``min_score``: ``--min-score``, faces with a lower detection score are dropped; in [0, 1).
    * ``max_side``: ``--det-max-side``, frames are downscaled so their longer side is at most
      this many pixels before detection (MTCNN's cost grows with the pixel count, and faces in
      video are rarely small); >= 64.
    * ``batch_size``: ``--det-batch``, frames per detection batch; ``None``: 8 on the CPU (one
      batch per core at once, :func:`ferbatch.pipeline.detect_batches`), 32 on a GPU. Not part
      of the fingerprint: other sizes change rows by float round-off only.
    * ``factor``: the MTCNN image-pyramid scale step, in [0.3, 0.95) (no option).
    """

    min_face_size: int = 40
    thresholds: tuple[float, float, float] = (0.6, 0.7, 0.8)
    min_score: float = 0.90
    max_side: int = 640
    batch_size: int | None = None
    factor: float = 0.709

    def validate(self) -> None:
        if self.min_face_size < 8:
            raise ConfigError(f"--min-face must be >= 8 (pixels), got {self.min_face_size}")
        if len(self.thresholds) != 3 or not all(0 < t < 1 for t in self.thresholds):
            raise ConfigError(f"--thresholds must be three numbers in (0, 1), got {self.thresholds}")
        if not 0 <= self.min_score < 1:
            raise ConfigError(f"--min-score must be in [0, 1), got {self.min_score}")
        if self.max_side < 64:
            raise ConfigError(f"--det-max-side must be >= 64 (pixels), got {self.max_side}")
        if self.batch_size is not None and self.batch_size < 1:
            raise ConfigError(f"--det-batch must be >= 1, got {self.batch_size}")
        if not 0.3 <= self.factor < 0.95:
            raise ConfigError(f"DetectConfig.factor (the pyramid step) must be in [0.3, 0.95), "
                              f"got {self.factor}")

    def describe(self) -> str:
        """Provenance text of the settings that change detections (``videos.detector``)."""
        return (f"mtcnn min_face={self.min_face_size} thresholds={list(self.thresholds)} "
                f"min_score={self.min_score} max_side={self.max_side} factor={self.factor}")


@dataclass(frozen=True)
class TrackConfig:
    """IoU tracker: a face keeps its id through up to ``max_gap_s`` seconds unseen.

    Fields (the ``ferbatch run`` option each mirrors, and its unit):

    * ``iou_threshold``: ``--track-iou``, smallest box overlap (intersection over union, in
      (0, 1)) that continues a face's track.
    * ``max_gap_s``: ``--track-gap``, seconds a face may be unseen and keep its ``face_id``
      (>= 0).
    """

    iou_threshold: float = 0.3
    max_gap_s: float = 1.0

    def validate(self) -> None:
        if not 0 < self.iou_threshold < 1:
            raise ConfigError(f"--track-iou must be in (0, 1), got {self.iou_threshold}")
        if self.max_gap_s < 0:
            raise ConfigError(f"--track-gap must be >= 0 (seconds), got {self.max_gap_s}")


@dataclass(frozen=True)
class IntervalConfig:
    """Detection interval: the detector runs on some analysed frames, a tracker carries the faces
    (boxes and their 5 landmarks) over the others (DeepStream's ``interval``; the tracker is
    :class:`ferbatch.propagate.FlowTracker`, sparse optical flow with a forward-backward check).

    Fields (the ``ferbatch run`` option each mirrors, and its unit):

    * ``detect_interval``: ``--detect-interval``, analysed frames carried by the tracker between
      two detections: the detector runs on every (N+1)-th analysed frame; 0 = every frame.
    * ``adaptive``: ``--detect-adaptive/--detect-fixed``, also detect early, on the frame where
      tracking becomes uncertain (a face's points fail the forward-backward check, its fit
      degrades or it leaves the frame, a scene cut, motion in a new region).
    * ``max_fb_error``: forward-backward error, in pixels of the tracking image, above which a
      tracked point is dropped (Kalal et al. 2010); > 0 (no option).
    * ``min_tracked``: share of a face's points (since its detection) that must still track, in
      (0, 1]; below it the face is lost (no option).
    * ``scene_cut``: mean absolute grey-level change between consecutive analysed frames, as a
      share of 255, that counts as a scene cut; in (0, 1] (no option).
    * ``new_motion``: share of the image outside the tracked faces that changed (by more than
      25 grey levels) since the last detection, above which a face may have appeared; in
      (0, 1], 1 turns the check off (no option).
    * ``refine``: check and refine each carried box with MTCNN's last stage (O-Net) on the
      frame: boxes, landmarks and ``det_score`` then come from O-Net as on detected frames, and
      a face it scores below ``DetectConfig.min_score`` is lost (no option).
    * ``max_side``: the tracking image's longer side in pixels (frames are downscaled to it);
      >= 64 (no option).
    """

    detect_interval: int = 0
    adaptive: bool = True
    max_fb_error: float = 1.0
    min_tracked: float = 0.5
    scene_cut: float = 0.12
    new_motion: float = 0.05
    refine: bool = True
    max_side: int = 640

    def validate(self) -> None:
        if self.detect_interval < 0:
            raise ConfigError(f"--detect-interval must be >= 0, got {self.detect_interval}")
        if not self.max_fb_error > 0:
            raise ConfigError(f"IntervalConfig.max_fb_error must be > 0 (pixels), got {self.max_fb_error}")
        for name in ("min_tracked", "scene_cut", "new_motion"):
            value = getattr(self, name)
            if not 0 < value <= 1:
                raise ConfigError(f"IntervalConfig.{name} must be in (0, 1], got {value}")
        if self.max_side < 64:
            raise ConfigError(f"IntervalConfig.max_side must be >= 64 (pixels), got {self.max_side}")

    def describe(self) -> str:
        """Provenance text (appended to ``videos.detector``); empty when every frame is detected."""
        if self.detect_interval == 0:
            return ""
        mode = "adaptive" if self.adaptive else "fixed"
        refine = "+onet" if self.refine else ""
        return f" interval={self.detect_interval} {mode} tracker=lk-fb{refine}"


#: classification backends (``--backend``)
BACKENDS = ("torch", "onnxruntime")


@dataclass(frozen=True)
class ClassifyConfig:
    """Emotion model and how faces are classified.

    Fields (the ``ferbatch run`` option each mirrors, and its unit):

    * ``model``: ``--model``, a bundled model's name (``ferbatch models``) or a checkpoint path;
      ``None``: the bundled default (:func:`ferbatch.models.bundled.resolve_model`).
    * ``batch_size``: ``--cls-batch``, faces classified at once; ``None``: 256 on a GPU, 32 on the
      CPU (where small batches let classification overlap detection instead of trailing it).
    * ``tta_flip``: ``--tta-flip``, average each face's probabilities with its mirror image's.
    * ``backend``: ``--backend``, ``torch`` or ``onnxruntime`` (CPU only; the model exported to
      ONNX in memory at load, :mod:`ferbatch.export`).
    """

    model: str | None = None
    batch_size: int | None = None
    tta_flip: bool = False
    backend: str = "torch"

    def validate(self) -> None:
        if self.model is not None:
            from .errors import ModelError
            from .models.bundled import resolve_model

            try:
                resolve_model(self.model)
            except ModelError as exc:
                raise ConfigError(f"--model: {exc}") from exc
        if self.batch_size is not None and self.batch_size < 1:
            raise ConfigError(f"--cls-batch must be >= 1, got {self.batch_size}")
        if self.backend not in BACKENDS:
            raise ConfigError(f"--backend must be torch or onnxruntime, got {self.backend!r}")


@dataclass(frozen=True)
class RunConfig:
    """Everything a run needs: the analysis options of ``ferbatch run``, one section per stage
    (each section's docstring names the option of every field and its unit). :meth:`validate`
    checks them all and names the option in its message; :class:`PoolConfig` holds the Ray
    options.

    Fields:

    * ``decode``: :class:`DecodeConfig`, sampling (``--fps``, ``--every``, ``--decode-threads``).
    * ``detect``: :class:`DetectConfig`, face detection (``--min-face``, ``--thresholds``,
      ``--min-score``, ``--det-max-side``, ``--det-batch``).
    * ``track``: :class:`TrackConfig`, tracking (``--track-iou``, ``--track-gap``).
    * ``interval``: :class:`IntervalConfig`, the detection interval (``--detect-interval``,
      ``--detect-adaptive``).
    * ``classify``: :class:`ClassifyConfig`, the emotion model (``--model``, ``--cls-batch``,
      ``--tta-flip``).
    * ``device``: ``--device``, ``"auto"`` (CUDA when available, else the CPU), ``"cpu"``,
      ``"cuda"`` or ``"cuda:N"``.
    """

    decode: DecodeConfig = field(default_factory=DecodeConfig)
    detect: DetectConfig = field(default_factory=DetectConfig)
    track: TrackConfig = field(default_factory=TrackConfig)
    classify: ClassifyConfig = field(default_factory=ClassifyConfig)
    device: str = "auto"
    interval: IntervalConfig = field(default_factory=IntervalConfig)

    def validate(self) -> RunConfig:
        """Check every section; raise :class:`ConfigError` naming the bad option."""
        for section in (self.decode, self.detect, self.track, self.classify, self.interval):
            section.validate()
        from .devices import check_device_name

        check_device_name(self.device)
        return self

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> RunConfig:
        def section(kind: type, key: str) -> Any:
            values = dict(data.get(key, {}))
            if "thresholds" in values:
                values["thresholds"] = tuple(values["thresholds"])
            return kind(**values)

        return cls(
            decode=section(DecodeConfig, "decode"),
            detect=section(DetectConfig, "detect"),
            track=section(TrackConfig, "track"),
            classify=section(ClassifyConfig, "classify"),
            device=data.get("device", "auto"),
            interval=section(IntervalConfig, "interval"),
        )

    def fingerprint(self, model_id: str) -> str:
        """Hash of the settings that change a video's rows (device and batch sizes do not)."""
        content = {
            "decode": {"fps": self.decode.fps, "every": self.decode.every},
            "detect": {
                k: v for k, v in dataclasses.asdict(self.detect).items() if k != "batch_size"
            },
            "track": dataclasses.asdict(self.track),
            "tta_flip": self.classify.tta_flip,
            "model": model_id,
        }
        if self.interval.detect_interval:  # every-frame detection keeps its old fingerprint
            content["interval"] = dataclasses.asdict(self.interval)
        blob = json.dumps(content, sort_keys=True, default=list).encode()
        return hashlib.sha256(blob).hexdigest()[:16]


@dataclass(frozen=True)
class PoolConfig:
    """The Ray executor's pool (the Ray options of ``ferbatch run`` and of the job).

    Fields (the option each mirrors, and its unit):

    * ``address``: ``--address``, a cluster to join (``auto``, ``HOST:PORT``, ``ray://…``);
      ``None``: ``$RAY_ADDRESS``, else a private local instance.
    * ``workers``: ``--workers``, worker actors; ``None``: cluster CPUs // ``cpus_per_worker``,
      at most one per work unit (a video, or a segment of a split one).
    * ``cpus_per_worker``: ``--cpus-per-worker``, CPUs each worker reserves (its torch threads).
    * ``gpus_per_worker``: ``--gpus-per-worker``, GPUs each worker reserves, fractions share a
      GPU; ``None``: 1 when the cluster has GPUs and the device is not ``cpu``, else 0.
    * ``max_retries``: ``--max-retries``, times a video (or one of its segments) is retried after
      its worker died or its task raised; then it is recorded as failed.
    * ``segment_s``: ``--segment-s``, seconds: a video at least twice this long is cut at
      keyframes into segments of about this length that several workers analyse (0: never).
    """

    address: str | None = None
    workers: int | None = None
    cpus_per_worker: float = 1.0
    gpus_per_worker: float | None = None
    max_retries: int = 2
    segment_s: float = 300.0

    def validate(self) -> PoolConfig:
        if self.workers is not None and self.workers < 1:
            raise ConfigError(f"--workers must be >= 1, got {self.workers}")
        if self.cpus_per_worker < 0 or (self.gpus_per_worker or 0) < 0:
            raise ConfigError("--cpus-per-worker and --gpus-per-worker must be >= 0")
        if self.max_retries < 0:
            raise ConfigError(f"--max-retries must be >= 0, got {self.max_retries}")
        if self.segment_s < 0:
            raise ConfigError(f"--segment-s must be >= 0, got {self.segment_s}")
        return self


@dataclass(frozen=True)
class ServeConfig:
    """The settings of ``ferbatch serve`` (:mod:`ferbatch.serve`): the endpoint, its Ray Serve
    deployment and each replica's.

    Fields (the ``ferbatch serve`` option each mirrors, and its unit):

    * ``host``, ``port``: ``--host``, ``--port``, where the HTTP endpoint listens.
    * ``replicas``: ``--replicas``, Ray Serve replicas, each loading the models once (>= 1).
    * ``cpus_per_replica``, ``gpus_per_replica``: ``--cpus-per-replica``,
      ``--gpus-per-replica``, what each replica reserves in Ray (fractions share a GPU).
    * ``model``, ``device``, ``backend``: ``--model``, ``--device``, ``--backend``, as in
      :class:`ClassifyConfig` and :class:`RunConfig` (same defaults).
    * ``max_body_mb``: ``--max-body-mb``, largest request body accepted, in MiB (413 past it).
    * ``token``: the bearer token read from ``--token-file``; ``None``: no token needed.
    * ``max_batch_size``: ``--max-batch``, images of concurrent requests analysed together
      (Ray Serve's ``@serve.batch`` ``max_batch_size``).
    * ``batch_wait_s``: seconds a batch waits for more requests before it runs (``@serve.batch``
      ``batch_wait_timeout_s``; no option).
    """

    host: str = "127.0.0.1"
    port: int = 8000
    replicas: int = 1
    cpus_per_replica: float = 1.0
    gpus_per_replica: float = 0.0
    model: str | None = ClassifyConfig.model
    device: str = RunConfig.device
    max_body_mb: float = 50.0
    token: str | None = None
    backend: str = ClassifyConfig.backend
    max_batch_size: int = 16
    batch_wait_s: float = 0.01

    @property
    def max_body_bytes(self) -> int:
        return int(self.max_body_mb * 2**20)

    def run_config(self, fps: float | None = None, every: int | None = None) -> RunConfig:
        """The validated :class:`RunConfig` of the replica's models (``model``, ``backend``,
        ``device``) sampling a clip at ``fps`` / ``every`` (as ``ferbatch run``'s ``--fps`` /
        ``--every``); raises :class:`ConfigError` naming the bad option."""
        return RunConfig(decode=DecodeConfig(fps=fps, every=every),
                         classify=ClassifyConfig(model=self.model, backend=self.backend),
                         device=self.device).validate()
