"""Geometry: how a stored frame is shown — display matrix (rotation and mirroring) and sample
aspect ratio — applied to the pixels exactly as a player shows them.

**Display matrix.** Containers (MP4/MOV ``tkhd``, Matroska projection, the h264 display
orientation SEI) carry a 3×3 matrix whose 2×2 part turns and/or mirrors the picture; FFmpeg
hands it to us as ``AV_FRAME_DATA_DISPLAYMATRIX`` side data on each decoded frame (nine
little-endian int32, 16.16 fixed point except the last column). PyAV's ``VideoFrame.rotation``
reports only the angle (``av_display_rotation_get``), which cannot tell a mirror from a turn: a
horizontal mirror reads as "rotation 180". :func:`transform_from_matrix` follows the ``ffmpeg``
CLI's autorotate (``fftools/ffmpeg_filter.c``: ``get_rotation`` and the ``transpose`` /
``hflip`` / ``vflip`` filters it inserts) for all eight 90°-step orientations, and names the
result canonically as a counter-clockwise ``rotation`` followed by a ``flip`` (see
:class:`DisplayTransform`). Angles that are not multiples of 90° are rounded to the nearest one.

**Sample aspect ratio** (SAR, "pixel aspect ratio"): a 720×576 PAL frame with SAR 64:45 is
shown 1024×576. :func:`display_size` gives the displayed size; the stored frame is resampled
to it (swscale, in the same call as the RGB conversion) before the display matrix is applied,
so detection sees the picture as displayed and boxes are in displayed pixels.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from fractions import Fraction

import numpy as np

#: ``flip`` values: no mirror, mirrored left-right, mirrored top-bottom (after the rotation)
FLIPS = ("none", "horizontal", "vertical")


@dataclass(frozen=True)
class DisplayTransform:
    """The stored → displayed mapping: turn ``rotation`` degrees counter-clockwise (0, 90, 180
    or 270; FFmpeg's sign convention, as ``VideoFrame.rotation`` and
    ``VideoStream.set_display_rotation`` use), *then* mirror by ``flip`` (one of
    :data:`FLIPS`).

    Canonical form of the eight orientations: no flip when none is needed; a pure mirror is
    ``rotation 0`` with a horizontal or vertical flip; the two transposes are 90 or 270 with a
    horizontal flip (``rotation 90 + horizontal`` equals ``270 + vertical``).
    """

    rotation: int = 0
    flip: str = "none"

    def apply(self, image: np.ndarray) -> np.ndarray:
        """``image`` (H×W or H×W×C) as displayed; a view, not a copy."""
        k = (self.rotation // 90) % 4
        out = np.rot90(image, k) if k else image
        if self.flip == "horizontal":
            out = out[:, ::-1]
        elif self.flip == "vertical":
            out = out[::-1]
        return out

    @property
    def swaps_axes(self) -> bool:
        """True when the displayed width is the stored height (a quarter turn)."""
        return self.rotation in (90, 270)


IDENTITY = DisplayTransform()
_ALL = [DisplayTransform(r, f) for f in FLIPS for r in (0, 90, 180, 270)
        if f == "none" or r == 0 or (f == "horizontal" and r in (90, 270))]


def _canonical(ops: list[str]) -> DisplayTransform:
    """The :class:`DisplayTransform` equal to applying FFmpeg filter names ``ops`` in order
    (found by applying both to a small asymmetric probe array)."""
    probe = np.arange(6).reshape(2, 3)
    out = probe
    for op in ops:
        if op == "clock":
            out = np.rot90(out, -1)
        elif op == "cclock":
            out = np.rot90(out, 1)
        elif op == "cclock_flip":  # transpose
            out = out.T
        elif op == "clock_flip":  # anti-transpose
            out = np.rot90(out, 2).T
        elif op == "hflip":
            out = out[:, ::-1]
        elif op == "vflip":
            out = out[::-1]
    for t in _ALL:
        got = t.apply(probe)
        if got.shape == out.shape and np.array_equal(got, out):
            return t
    raise AssertionError(f"no canonical transform for {ops}")  # pragma: no cover - 8 cases


def rotation_get(m: tuple[int, ...]) -> float:
    """``av_display_rotation_get``: the matrix's counter-clockwise angle in degrees (NaN for a
    degenerate matrix)."""
    a, b, c, d = (v / 65536.0 for v in (m[0], m[1], m[3], m[4]))
    s0, s1 = math.hypot(a, c), math.hypot(b, d)
    if s0 == 0.0 or s1 == 0.0:
        return math.nan
    return -math.degrees(math.atan2(b / s1, a / s0))


def transform_from_matrix(m: tuple[int, ...] | None) -> DisplayTransform:
    """The displayed orientation of a display matrix (9 ints, FFmpeg layout), as the
    ``ffmpeg`` CLI's autorotate shows it; ``None`` or a degenerate matrix → identity."""
    if m is None or len(m) != 9:
        return IDENTITY
    angle = rotation_get(m)
    if not math.isfinite(angle):
        return IDENTITY
    theta = -round(angle)  # get_rotation(): clockwise degrees
    theta -= 360 * math.floor(theta / 360 + 0.9 / 360)
    theta = int(round(theta / 90.0)) * 90 % 360  # other angles: the nearest quarter turn
    if theta == 90:
        ops = ["cclock_flip" if m[3] > 0 else "clock"]
    elif theta == 180:
        ops = (["hflip"] if m[0] < 0 else []) + (["vflip"] if m[4] < 0 else [])
        if not ops:  # a rounded odd angle: plain half turn
            ops = ["hflip", "vflip"]
    elif theta == 270:
        ops = ["clock_flip" if m[3] < 0 else "cclock"]
    else:
        ops = ["vflip"] if m[4] < 0 else []
    return _canonical(ops)


def transform_from_rotation(degrees: float | int | None) -> DisplayTransform:
    """A pure rotation (``VideoFrame.rotation``, counter-clockwise degrees) as a transform,
    rounded to a multiple of 90 (``None``/NaN → identity)."""
    if degrees is None or not math.isfinite(degrees):
        return IDENTITY
    return DisplayTransform(int(round(degrees / 90.0)) * 90 % 360)


def frame_display_matrix(frame: object) -> tuple[int, ...] | None:
    """The ``DISPLAYMATRIX`` side data of a decoded PyAV frame as 9 ints, or ``None``."""
    side = getattr(frame, "side_data", None)
    if side is None:
        return None
    try:
        for item in side:
            if getattr(getattr(item, "type", None), "name", "") == "DISPLAYMATRIX":
                raw = bytes(item)
                if len(raw) >= 36:
                    return tuple(int(v) for v in np.frombuffer(raw[:36], "<i4"))
    except (TypeError, ValueError):
        return None
    return None


def frame_transform(frame: object) -> DisplayTransform:
    """The display transform of a decoded frame: its display matrix when it carries one,
    else its ``rotation`` attribute."""
    matrix = frame_display_matrix(frame)
    if matrix is not None:
        return transform_from_matrix(matrix)
    return transform_from_rotation(getattr(frame, "rotation", 0))


def sample_aspect_ratio(*candidates: Fraction | None) -> Fraction | None:
    """The first usable SAR (container's before codec's, as ``av_guess_sample_aspect_ratio``);
    ``None`` when none is set, 0 or absurd (outside 1/10…10)."""
    for sar in candidates:
        if sar is not None and sar.numerator > 0 and sar.denominator > 0:
            sar = Fraction(sar)
            if Fraction(1, 10) <= sar <= 10:
                return sar
    return None


def display_size(width: int, height: int, sar: Fraction | None) -> tuple[int, int]:
    """The (width, height) a stored ``width``×``height`` frame with ``sar`` is shown at, before
    the display matrix: the width is stretched (SAR > 1) or squeezed (SAR < 1), the height
    kept, as players do; rounded to whole pixels."""
    if sar is None or sar == 1:
        return width, height
    return max(1, int(round(width * sar))), height


def format_sar(sar: Fraction | None) -> str:
    """SAR in ffprobe's notation (``"64:45"``; ``"1:1"`` for square pixels)."""
    sar = sar or Fraction(1)
    return f"{sar.numerator}:{sar.denominator}"
