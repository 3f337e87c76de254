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

VIDEO_EXTENSIONS = frozenset({".mp4", ".mov", ".mkv", ".webm", ".avi", ".m4v", ".mpg", ".mpeg", ".ts"})


@dataclass(frozen=True)
class DecodeConfig:
    """How frames are sampled from a video.

    ``fps``: target analysis rate in frames per second (time-based, correct on VFR video);
    ``every``: keep every N-th decoded frame. At most one of the two may be set; neither means
    every frame. ``max_consecutive_errors`` caps corrupt packets skipped in a row before the rest
    of the file is given up (the video then ends ``partial``).
    """

    fps: float | None = None
    every: int | None = None
    threads: int = 0  # 0: let FFmpeg choose
    max_consecutive_errors: int = 8

    def validate(self) -> None:
        if self.fps is not None and self.every is not None:
            raise ConfigError("choose either --fps or --every, not both")
        if self.fps is not None and not self.fps > 0:
            raise ConfigError(f"--fps must be > 0, got {self.fps}")
        if self.every is not None and self.every < 1:
            raise ConfigError(f"--every must be >= 1, got {self.every}")
        if self.threads < 0:
            raise ConfigError(f"decode threads must be >= 0, got {self.threads}")


@dataclass(frozen=True)
class DetectConfig:
    """MTCNN face detection settings.

    ``max_side``: frames are downscaled so their longer side is at most this many pixels before
    detection (boxes are mapped back to the displayed frame); MTCNN's cost grows with the pixel
    count, and faces in video are rarely small. ``min_face_size`` is in displayed-frame pixels.
    ``batch_size``: frames per detection batch; ``None`` picks 8 on the CPU (where one batch per
    core is detected at once, :func:`ferbatch.pipeline.detect_batches`) and 32 on a GPU. It is
    not part of the fingerprint: other sizes change rows by float round-off only.
    """

    min_face_size: int = 40
    thresholds: tuple[float, float, float] = (0.6, 0.7, 0.8)
    min_score: float = 0.90
    max_side: int = 640
    batch_size: int | None = None
    factor: float = 0.709

    def validate(self) -> None:
        if self.min_face_size < 8:
            raise ConfigError(f"min face size must be >= 8 px, got {self.min_face_size}")
        if len(self.thresholds) != 3 or not all(0 < t < 1 for t in self.thresholds):
            raise ConfigError(f"thresholds must be three numbers in (0, 1), got {self.thresholds}")
        if not 0 <= self.min_score < 1:
            raise ConfigError(f"min score must be in [0, 1), got {self.min_score}")
        if self.max_side < 64:
            raise ConfigError(f"detection max side must be >= 64 px, got {self.max_side}")
        if self.batch_size is not None and self.batch_size < 1:
            raise ConfigError(f"detection batch size must be >= 1, got {self.batch_size}")
        if not 0.3 <= self.factor < 0.95:
            raise ConfigError(f"pyramid factor must be in [0.3, 0.95), got {self.factor}")

    def describe(self) -> str:
        """Provenance text of the settings that change detections (``videos.detector``)."""
        return (f"mtcnn min_face={self.min_face_size} thresholds={list(self.thresholds)} "
                f"min_score={self.min_score} max_side={self.max_side} factor={self.factor}")


@dataclass(frozen=True)
class TrackConfig:
    """IoU tracker: a face keeps its id through up to ``max_gap_s`` seconds unseen."""

    iou_threshold: float = 0.3
    max_gap_s: float = 1.0

    def validate(self) -> None:
        if not 0 < self.iou_threshold < 1:
            raise ConfigError(f"IoU threshold must be in (0, 1), got {self.iou_threshold}")
        if self.max_gap_s < 0:
            raise ConfigError(f"max gap must be >= 0 s, got {self.max_gap_s}")


@dataclass(frozen=True)
class ClassifyConfig:
    """Emotion model: a bundled model's name (``ferbatch models``), a checkpoint path, or ``None``
    for the bundled default (:func:`ferbatch.models.bundled.resolve_model`).

    ``batch_size``: faces classified at once; ``None`` picks 256 on a GPU and 32 on the CPU,
    where small batches let classification overlap detection instead of trailing it.
    """

    model: str | None = None
    batch_size: int | None = None
    tta_flip: bool = False

    def validate(self) -> None:
        if self.model is not None:
            from .errors import ModelError
            from .models.bundled import resolve_model

            try:
                resolve_model(self.model)
            except ModelError as exc:
                raise ConfigError(f"--model: {exc}") from exc
        if self.batch_size is not None and self.batch_size < 1:
            raise ConfigError(f"classify batch size must be >= 1, got {self.batch_size}")


@dataclass(frozen=True)
class RunConfig:
    """Everything a run needs; ``device`` is ``"auto"``, ``"cpu"`` or ``"cuda[:N]"``."""

    decode: DecodeConfig = field(default_factory=DecodeConfig)
    detect: DetectConfig = field(default_factory=DetectConfig)
    track: TrackConfig = field(default_factory=TrackConfig)
    classify: ClassifyConfig = field(default_factory=ClassifyConfig)
    device: str = "auto"

    def validate(self) -> RunConfig:
        """Check every section; raise :class:`ConfigError` naming the bad option."""
        for section in (self.decode, self.detect, self.track, self.classify):
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
        blob = json.dumps(content, sort_keys=True, default=list).encode()
        return hashlib.sha256(blob).hexdigest()[:16]


@dataclass(frozen=True)
class PoolConfig:
    """The Ray executor's pool (``ferbatch run`` Ray options and the job's).

    ``address``: a cluster to join (``auto``, ``HOST:PORT``, ``ray://…``; ``None``:
    ``$RAY_ADDRESS``, else a private local instance). ``workers``: actors (``None``: cluster
    CPUs // ``cpus_per_worker``, at most one per work unit). ``gpus_per_worker``: ``None`` = 1
    when the cluster has GPUs and the device is not ``cpu``, else 0; fractions share a GPU.
    ``max_retries``: times a video (or one of its segments) is retried after its worker died.
    ``segment_s``: a video at least twice this long is cut at keyframes into segments of about
    this many seconds that several workers analyse (0: never split).
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
