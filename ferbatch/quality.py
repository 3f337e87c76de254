"""Per-face quality signals: how much a face row can be trusted, measured on the crop the model saw.

Computed per batch of faces (the pipeline's classifier batches, numpy over the whole batch; only
the pose fit runs per face) from the classifier's crops (uint8 K×S×S, the eye-levelled
``image_size``² crops of :mod:`ferbatch.crop`), the detector's boxes and its five landmarks:

* ``face_px`` — side of the detector's box, ``max(x2 - x1, y2 - y1)``, in displayed pixels;
* ``sharpness`` — variance of the 4-neighbour Laplacian of the crop divided by the crop's grey
  level variance (Pech-Pacheco et al. 2000, "Diatom autofocusing in brightfield microscopy";
  the ratio makes it free of contrast, and the crop has a fixed size, so it is free of face
  size too). Dimensionless: ≈ 2–4 for sharp faces, below ≈ 0.3 for heavily blurred ones;
* ``brightness`` / ``contrast`` — mean and standard deviation (RMS contrast) of the crop's grey
  levels, in [0, 1];
* ``yaw`` / ``pitch`` / ``roll`` — head pose in degrees (0, 0, 0: facing the camera), from the
  five landmarks with :func:`cv2.solvePnP` (SQPnP, Terzakis & Lourakis 2020) against a generic
  3-D five-point face (:data:`FACE_MODEL_MM`) and a pinhole camera whose focal length is the
  frame's longer side. Camera axes: x right, y down, z away from the camera; yaw turns about y
  (positive: the face turns towards the image's left), pitch about x (positive: chin down), roll
  about z (positive: clockwise in the image). NaN when the fit fails;
* ``occlusion`` — regional contrast loss: the crop is cut into a 4×4 grid of cells; 1 minus
  the smallest cell's grey-level standard deviation over the median cell's (dimensionless,
  ≤ 1; median 0.6 on FER2013 faces). A flat or smooth object over part of the face (a hand, a
  mask, a cup) leaves a cell without the face's texture and raises it. ``bench/bench_quality.py``
  measures how well it separates faces with synthetic occluders from clean ones; a left/right
  asymmetry cue was measured too and rejected (ROC AUC 0.41; README, "Face quality").

``quality_ok`` applies :class:`QualityThresholds`, whose defaults come from the accuracy-vs-quality
table ``bench/bench_quality.py`` prints (README, "Face quality"); the thresholds a run used are
written into its ``_ferbatch.json``.
"""

from __future__ import annotations

import dataclasses
import logging
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import cv2
import numpy as np

from .output.schema import QUALITY_COLUMNS  # the faces table's quality columns (quality_ok last)

log = logging.getLogger(__name__)

SIGNAL_COLUMNS = QUALITY_COLUMNS[:-1]

#: generic 3-D face, millimetres, camera axes (x right, y down, z away from the camera), origin
#: at the nose tip; order of MTCNN's landmarks: image-left eye, image-right eye, nose, mouth
#: left, mouth right. Average adult proportions (interocular ≈ 64 mm, mouth ≈ 50 mm wide).
FACE_MODEL_MM = np.array([
    [-32.0, -35.0, 32.0],
    [32.0, -35.0, 32.0],
    [0.0, 0.0, 0.0],
    [-25.0, 32.0, 24.0],
    [25.0, 32.0, 24.0],
], dtype=np.float64)


#: the values each bound can meaningfully take (the signals' ranges) and their units
_THRESHOLD_RANGES = {
    "min_face_px": (0.0, 1e5), "min_sharpness": (0.0, 1e3),
    "min_brightness": (0.0, 1.0), "max_brightness": (0.0, 1.0), "min_contrast": (0.0, 1.0),
    "max_abs_yaw": (0.0, 180.0), "max_abs_pitch": (0.0, 180.0), "max_occlusion": (0.0, 1.0),
}
_THRESHOLD_UNITS = {
    "min_face_px": "displayed pixels", "min_sharpness": "Laplacian / grey variance",
    "min_brightness": "grey level, 0–1", "max_brightness": "grey level, 0–1",
    "min_contrast": "RMS contrast, 0–1", "max_abs_yaw": "degrees", "max_abs_pitch": "degrees",
    "max_occlusion": "0–1",
}


@dataclass(frozen=True)
class QualityThresholds:
    """When a face row is ``quality_ok``: every signal inside its bound (a ``None`` bound is
    not checked; a NaN pose passes the pose bounds only if they are ``None``).

    Defaults: the values chosen from ``bench/bench_quality.py`` (README, "Face quality"): the
    level of each signal at which top-1 accuracy on degraded FER2013 PublicTest faces falls
    more than 10 points below the undegraded accuracy (rounded). ``None`` where accuracy never
    fell that far in the measured range (yaw up to 45°, pitch up to 30°). ``max_occlusion``:
    adopted because the signal separates faces with synthetic occluders over 25 % of the crop
    from clean ones with ROC AUC 0.775 (the rule: ≥ 0.75).
    """

    min_face_px: float | None = 22.0
    min_sharpness: float | None = 0.05
    min_brightness: float | None = 0.073
    max_brightness: float | None = 0.91
    min_contrast: float | None = 0.036
    max_abs_yaw: float | None = None
    max_abs_pitch: float | None = None
    max_occlusion: float | None = 0.93

    def __post_init__(self) -> None:
        """Refuse bounds no signal can take (``ValueError`` naming the field and its range)."""
        for name, (low, high) in _THRESHOLD_RANGES.items():
            value = getattr(self, name)
            if value is not None and not (math.isfinite(value) and low <= value <= high):
                raise ValueError(f"{name}={value:g} is outside [{low:g}, {high:g}] "
                                 f"({_THRESHOLD_UNITS[name]})")
        if self.min_brightness is not None and self.max_brightness is not None \
                and self.min_brightness > self.max_brightness:
            raise ValueError(f"min_brightness={self.min_brightness:g} is above "
                             f"max_brightness={self.max_brightness:g}: no row could pass")

    def to_dict(self) -> dict[str, float | None]:
        """The thresholds as a JSON-ready dict (what ``_ferbatch.json`` stores)."""
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, values: Mapping[str, Any]) -> QualityThresholds:
        """Thresholds from a dict such as :meth:`to_dict`'s; unknown keys are a ``ValueError``."""
        names = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(values) - names)
        if unknown:
            raise ValueError(f"unknown quality threshold(s) {unknown}; known: {sorted(names)}")
        return cls(**{k: (None if v is None else float(v)) for k, v in values.items()})

    def ok(self, signals: Mapping[str, Any]) -> np.ndarray:
        """Boolean N: which rows pass, for columns named as :data:`SIGNAL_COLUMNS` (arrays or
        pandas Series; a missing value fails its bound)."""
        def col(name: str) -> np.ndarray:
            return np.asarray(signals[name], dtype=np.float64)

        n = len(col("face_px"))
        ok = np.ones(n, dtype=bool)
        checks = [("face_px", self.min_face_px, None), ("sharpness", self.min_sharpness, None),
                  ("brightness", self.min_brightness, self.max_brightness),
                  ("contrast", self.min_contrast, None), ("occlusion", None, self.max_occlusion)]
        with np.errstate(invalid="ignore"):
            for name, low, high in checks:
                if low is not None:
                    ok &= col(name) >= low
                if high is not None:
                    ok &= col(name) <= high
            for name, bound in (("yaw", self.max_abs_yaw), ("pitch", self.max_abs_pitch)):
                if bound is not None:
                    ok &= np.abs(col(name)) <= bound
        return ok


DEFAULT_THRESHOLDS = QualityThresholds()


def crop_signals(crops: np.ndarray) -> dict[str, np.ndarray]:
    """Sharpness, brightness, contrast and occlusion of uint8 K×S×S crops (float32 K each).

    All four are computed at once on the whole batch (numpy, no per-face loop).
    """
    x = crops.astype(np.float32) / 255.0
    if x.ndim != 3:
        raise ValueError(f"crops must be K×S×S, got shape {crops.shape}")
    k = len(x)
    if k == 0:
        empty = np.zeros(0, np.float32)
        return {"sharpness": empty, "brightness": empty, "contrast": empty, "occlusion": empty}
    flat = x.reshape(k, -1)
    mean = flat.mean(1)
    std = flat.std(1)
    lap = (x[:, :-2, 1:-1] + x[:, 2:, 1:-1] + x[:, 1:-1, :-2] + x[:, 1:-1, 2:]
           - 4.0 * x[:, 1:-1, 1:-1])
    var = np.maximum(std * std, 1e-6)
    sharp = lap.reshape(k, -1).var(1) / var
    s = x.shape[1] // 4
    cells = x[:, :4 * s, :4 * s].reshape(k, 4, s, 4, s).std(axis=(2, 4)).reshape(k, 16)
    occ = 1.0 - cells.min(1) / np.maximum(np.median(cells, axis=1), 1e-3)
    return {"sharpness": sharp.astype(np.float32), "brightness": mean.astype(np.float32),
            "contrast": std.astype(np.float32), "occlusion": occ.astype(np.float32)}


def rotation_to_euler(rvec: np.ndarray) -> tuple[float, float, float]:
    """(yaw, pitch, roll) in degrees of a Rodrigues rotation vector mapping face to camera
    coordinates (R = Rz(roll) · Ry(yaw) · Rx(pitch))."""
    r, _ = cv2.Rodrigues(rvec)
    yaw = math.degrees(math.asin(max(-1.0, min(1.0, -r[2, 0]))))
    pitch = math.degrees(math.atan2(r[2, 1], r[2, 2]))
    roll = math.degrees(math.atan2(r[1, 0], r[0, 0]))
    return yaw, pitch, roll


def _frame_sizes(frame_shape: Sequence[int] | np.ndarray, k: int) -> np.ndarray:
    """(H, W) of each of ``k`` faces' frames (int K×2): ``frame_shape`` is one frame's shape
    (H, W, …) shared by all, or already one (H, W) row per face."""
    sizes = np.asarray(frame_shape, dtype=np.int64)
    return np.broadcast_to(sizes[:2], (k, 2)) if sizes.ndim == 1 else sizes.reshape(k, 2)


def head_pose(landmarks: np.ndarray, frame_shape: Sequence[int] | np.ndarray) -> np.ndarray:
    """Yaw, pitch, roll in degrees (float32 K×3; NaN rows where the fit fails) of K faces
    from their K×5×2 landmarks in pixels of a frame of ``frame_shape`` (H, W, …), or of
    the frames whose (H, W) ``frame_shape`` gives per face (K×2).

    One :func:`cv2.solvePnP` (``SOLVEPNP_SQPNP``) per face against :data:`FACE_MODEL_MM`
    (OpenCV solves one pose problem per call).
    """
    marks = np.asarray(landmarks, dtype=np.float64).reshape(-1, 5, 2)
    out = np.full((len(marks), 3), np.nan, dtype=np.float32)
    for k, (pts, (h, w)) in enumerate(zip(marks, _frame_sizes(frame_shape, len(marks)))):
        if not np.all(np.isfinite(pts)):
            continue
        f = float(max(h, w))
        camera = np.array([[f, 0.0, w / 2.0], [0.0, f, h / 2.0], [0.0, 0.0, 1.0]])
        try:
            found, rvec, _tvec = cv2.solvePnP(FACE_MODEL_MM, pts, camera, None,
                                              flags=cv2.SOLVEPNP_SQPNP)
        except cv2.error:
            found = False
        if found:
            out[k] = rotation_to_euler(rvec)
    return out


def face_quality(crops: np.ndarray, boxes: np.ndarray, landmarks: np.ndarray | None,
                 frame_shape: Sequence[int] | np.ndarray) -> dict[str, np.ndarray]:
    """The quality signals (:data:`SIGNAL_COLUMNS`, float32 K each) of a batch of K faces.

    ``crops`` uint8 K×S×S (the classifier's crops), ``boxes`` K×4 and ``landmarks`` K×5×2 in
    displayed pixels (``None``: pose is NaN), ``frame_shape`` the (H, W, …) of the frame all
    faces come from, or each face's frame (H, W) (K×2) for faces of several frames (the
    pipeline passes each classifier batch at once). Every signal of a face depends on that
    face alone, whatever else is in the batch.
    """
    boxes = np.asarray(boxes, dtype=np.float32).reshape(-1, 4)
    out: dict[str, np.ndarray] = {
        "face_px": np.maximum(boxes[:, 2] - boxes[:, 0], boxes[:, 3] - boxes[:, 1]).astype(np.float32)}
    out.update(crop_signals(crops))
    pose = (head_pose(landmarks, frame_shape) if landmarks is not None
            else np.full((len(boxes), 3), np.nan, np.float32))
    out["yaw"], out["pitch"], out["roll"] = pose[:, 0], pose[:, 1], pose[:, 2]
    return {name: out[name] for name in SIGNAL_COLUMNS}


def quality_columns(parts: list[dict[str, np.ndarray]],
                    thresholds: QualityThresholds = DEFAULT_THRESHOLDS) -> dict[str, np.ndarray]:
    """Concatenate the :func:`face_quality` results of successive batches into the faces
    table's quality columns (:data:`QUALITY_COLUMNS`), ``quality_ok`` from ``thresholds``."""
    cols = {name: (np.concatenate([p[name] for p in parts]).astype(np.float32) if parts
                   else np.zeros(0, np.float32)) for name in SIGNAL_COLUMNS}
    cols["quality_ok"] = thresholds.ok(cols)
    return cols
