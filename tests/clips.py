"""Encode real, small test clips with PyAV, so decode/detect tests need no binary fixtures.

Every ``make_*`` function writes one file and returns a :class:`ClipSpec` that records what a
correct decoder must report for it (frame count, rate, displayed size, rotation, the encoded
timestamps), so tests can be table-driven: build a spec, decode the file, compare.

Frames drawn with ``pattern="moving"`` carry their own frame number as a 12-bit black/white
barcode across the top band of the *stored* (unrotated) frame, plus a square that moves with
the index, so a test can check order and identity of decoded frames with
:func:`read_frame_number` even after lossy compression. :func:`render_frame` regenerates the
exact source image of any frame for pixel comparisons.
"""

from __future__ import annotations

import math
import os
from collections.abc import Sequence
from dataclasses import dataclass, field
from fractions import Fraction
from pathlib import Path

import av
import numpy as np

#: encoder -> (container extension it is written into by default, decoder name reported)
DEFAULT_EXT = {
    "libx264": ".mp4",
    "mpeg4": ".avi",
    "libvpx-vp9": ".webm",
    "libx265": ".mkv",
    "mjpeg": ".avi",
}
_DECODER_NAME = {"libx264": "h264", "mpeg4": "mpeg4", "libvpx-vp9": "vp9", "libx265": "hevc",
                 "mjpeg": "mjpeg"}
#: Fast, quiet settings per encoder: the machine running the tests is small and shared.
_ENCODER_OPTIONS = {
    "libx264": {"preset": "veryfast", "crf": "18"},  # veryfast keeps B-frames (pts reordering)
    "libx265": {"preset": "ultrafast", "crf": "20", "x265-params": "log-level=error"},
    "libvpx-vp9": {"deadline": "realtime", "cpu-used": "8", "crf": "20", "b": "0"},
    "mpeg4": {"qscale": "3"},
    "mjpeg": {"qscale": "3"},
}
#: ``hevc`` is the decoder's name; the encoder this PyAV build ships is libx265.
_ENCODER_ALIASES = {"hevc": "libx265", "h264": "libx264", "vp9": "libvpx-vp9"}

BITS = 12  # frame-number barcode width: up to 4095 frames
BAND = 16  # barcode band height in pixels (stored frame)


def encoder_available(codec: str) -> bool:
    """True when this PyAV/FFmpeg build can encode with ``codec`` (aliases accepted)."""
    name = _ENCODER_ALIASES.get(codec, codec)
    try:
        return av.Codec(name, "w").is_encoder
    except Exception:  # av.codec.codec.UnknownCodecError and friends
        return False


@dataclass
class ClipSpec:
    """What a correct decoder must report for a clip written by this module."""

    path: Path
    n_frames: int
    fps: float
    width: int  # as displayed (after rotation)
    height: int
    rotation: int  # counter-clockwise display rotation written, in [0, 360)
    codec: str  # decoder name, e.g. "h264"
    pts_s: list[float] = field(default_factory=list)  # presentation time of each frame, seconds
    vfr: bool = False
    boxes: list[tuple[int, int, int, int]] | None = None  # make_face_clip: pasted image boxes


def _bits_cell(width: int) -> int:
    return width // BITS


def render_frame(index: int, size: tuple[int, int] = (160, 120), pattern: str = "moving") -> np.ndarray:
    """The stored (unrotated) RGB source image of frame ``index``; ``size`` is (width, height)."""
    w, h = size
    yy, xx = np.mgrid[0:h, 0:w]
    img = np.empty((h, w, 3), np.uint8)
    img[..., 0] = (40 + 60 * xx / max(w - 1, 1)).astype(np.uint8)
    img[..., 1] = (40 + 60 * yy / max(h - 1, 1)).astype(np.uint8)
    img[..., 2] = 70
    if pattern == "static":
        return img
    if pattern != "moving":
        raise ValueError(f"unknown pattern {pattern!r}")
    # barcode: BITS cells across the top band, white = 1, black = 0, most significant bit first
    cell = _bits_cell(w)
    for b in range(BITS):
        bit = (index >> (BITS - 1 - b)) & 1
        img[:BAND, b * cell:(b + 1) * cell] = 235 if bit else 16
    # an asymmetric marker (orientation check): a red block in the stored bottom-left corner
    img[h - 24:h, 0:24] = (220, 30, 30)
    # a moving green square, so consecutive frames differ everywhere, not just in the barcode
    side = max(8, h // 5)
    span = max(w - side - 30, 1)
    x0 = 28 + (index * 4) % span
    y0 = BAND + 6 + (index * 3) % max(h - BAND - side - 30, 1)
    img[y0:y0 + side, x0:x0 + side] = (40, 210, 60)
    return img


def read_frame_number(image: np.ndarray) -> int:
    """Read the barcode of a decoded frame in its *stored* orientation (undo rotation first)."""
    h, w = image.shape[:2]
    cell = _bits_cell(w)
    luma = image[: BAND, : cell * BITS].mean(axis=2)
    n = 0
    for b in range(BITS):
        centre = luma[BAND // 4: 3 * BAND // 4, b * cell + cell // 4: (b + 1) * cell - cell // 4]
        n = (n << 1) | int(centre.mean() > 128)
    return n


def _resolve(codec: str) -> str:
    name = _ENCODER_ALIASES.get(codec, codec)
    if not encoder_available(name):
        raise RuntimeError(f"encoder {codec!r} is not available in this PyAV build")
    return name


def _encode(
    path: Path,
    images,  # iterable of (pts in time_base units, RGB array)
    *,
    codec: str,
    fps: float,
    size: tuple[int, int],
    time_base: Fraction,
    rotation: int = 0,
    container_options: dict[str, str] | None = None,
) -> None:
    """Encode ``images`` into ``path``; the container format follows the extension."""
    w, h = size
    with av.open(str(path), "w", options=container_options or {}) as out:
        stream = out.add_stream(codec, rate=Fraction(fps).limit_denominator(1001))
        stream.width, stream.height = w, h
        stream.pix_fmt = "yuvj420p" if codec == "mjpeg" else "yuv420p"
        stream.codec_context.time_base = time_base
        stream.time_base = time_base
        stream.options = dict(_ENCODER_OPTIONS.get(codec, {}))
        if rotation % 360:
            stream.set_display_rotation(rotation % 360)
        for pts, img in images:
            frame = av.VideoFrame.from_ndarray(np.ascontiguousarray(img), format="rgb24")
            frame.pts = pts
            frame.time_base = time_base
            for packet in stream.encode(frame):
                out.mux(packet)
        for packet in stream.encode(None):
            out.mux(packet)


def make_clip(
    path: str | os.PathLike,
    n_frames: int = 30,
    fps: float = 30,
    size: tuple[int, int] = (160, 120),
    codec: str = "libx264",
    rotation: int = 0,
    vfr: bool = False,
    pattern: str = "moving",
    durations_ms: Sequence[int] | None = None,
    container_options: dict[str, str] | None = None,
) -> ClipSpec:
    """Encode a synthetic clip; ``size`` is the stored (width, height), before rotation.

    ``rotation`` is written with ``stream.set_display_rotation`` (counter-clockwise degrees,
    FFmpeg's display-matrix convention). ``vfr=True`` writes millisecond timestamps with
    alternating frame durations (``durations_ms``, default 20/50/33 ms cycling) instead of a
    constant 1/fps step.
    """
    path = Path(path)
    enc = _resolve(codec)
    if vfr:
        cycle = list(durations_ms or (20, 50, 33))
        time_base = Fraction(1, 1000)
        pts = [0]
        for i in range(1, n_frames):
            pts.append(pts[-1] + cycle[(i - 1) % len(cycle)])
        pts_s = [p / 1000 for p in pts]
    else:
        time_base = Fraction(1, int(round(fps))) if float(fps).is_integer() else 1 / Fraction(fps).limit_denominator(1001)
        pts = list(range(n_frames))
        pts_s = [float(p * time_base) for p in pts]
    _encode(
        path,
        ((pts[i], render_frame(i, size, pattern)) for i in range(n_frames)),
        codec=enc,
        fps=fps,
        size=size,
        time_base=time_base,
        rotation=rotation,
        container_options=container_options,
    )
    rot = rotation % 360
    w, h = size
    if rot in (90, 270):
        w, h = h, w
    if vfr:
        fps = (n_frames - 1) / pts_s[-1] if n_frames > 1 else fps
    return ClipSpec(path, n_frames, float(fps), w, h, rot, _DECODER_NAME.get(enc, enc), pts_s, vfr)


def make_vfr_clip(
    path: str | os.PathLike,
    n_frames: int = 60,
    durations_ms: Sequence[int] = (20, 50, 33),
    codec: str = "libx264",
    size: tuple[int, int] = (160, 120),
) -> ClipSpec:
    """A variable-frame-rate clip: frame durations cycle through ``durations_ms``.

    ``ClipSpec.fps`` is the mean rate, ``pts_s`` the exact times a decoder must return.
    """
    return make_clip(path, n_frames=n_frames, fps=30, size=size, codec=codec, vfr=True,
                     durations_ms=durations_ms)


def make_truncated_clip(
    path: str | os.PathLike,
    fraction: float = 1 / 3,
    n_frames: int = 90,
    codec: str = "libx264",
    size: tuple[int, int] = (160, 120),
) -> ClipSpec:
    """Encode a clip, then cut the file to ``fraction`` of its bytes (a download cut short).

    For ``.mp4``/``.mov`` the index is moved to the front (``movflags=faststart``) so the cut
    file still opens, like a real interrupted download of a web-optimised file; ``.mkv`` and
    ``.webm`` are streamable anyway. ``ClipSpec.n_frames`` is the count *before* cutting.
    """
    path = Path(path)
    opts = {"movflags": "faststart"} if path.suffix.lower() in (".mp4", ".mov", ".m4v") else None
    spec = make_clip(path, n_frames=n_frames, size=size, codec=codec, container_options=opts)
    data = path.read_bytes()
    path.write_bytes(data[: max(1, int(len(data) * fraction))])
    return spec


def make_damaged_clip(
    path: str | os.PathLike,
    n_frames: int = 90,
    codec: str = "libx264",
    spots: Sequence[float] = (0.3, 0.5, 0.7),
    n_bytes: int = 300,
    seed: int = 1,
) -> ClipSpec:
    """Encode a clip, then overwrite ``n_bytes`` random bytes at each fraction in ``spots``.

    Models bit rot / a bad copy in the middle of a file: with ``.mp4`` the index stays intact, so
    the damaged packets fail to decode while later ones are fine.
    """
    spec = make_clip(path, n_frames=n_frames, codec=codec)
    data = bytearray(Path(path).read_bytes())
    rng = np.random.default_rng(seed)
    for frac in spots:
        at = int(len(data) * frac)
        data[at:at + n_bytes] = rng.integers(0, 256, n_bytes, dtype=np.uint8).tobytes()
    Path(path).write_bytes(bytes(data))
    return spec


def make_audio_only(path: str | os.PathLike, seconds: float = 1.0, rate: int = 44100) -> Path:
    """An audio-only file (AAC sine tone); name it ``.mp4`` to look like a video."""
    path = Path(path)
    with av.open(str(path), "w") as out:
        stream = out.add_stream("aac", rate=rate)
        stream.layout = "mono"
        n = int(seconds * rate)
        t = np.arange(n) / rate
        samples = (0.2 * np.sin(2 * np.pi * 440 * t)).astype(np.float32)
        step = 1024
        for start in range(0, n, step):
            chunk = samples[start:start + step]
            frame = av.AudioFrame.from_ndarray(chunk[None, :], format="fltp", layout="mono")
            frame.rate = rate
            frame.pts = start
            for packet in stream.encode(frame):
                out.mux(packet)
        for packet in stream.encode(None):
            out.mux(packet)
    return path


def make_zero_byte(path: str | os.PathLike) -> Path:
    """An empty file with a video extension."""
    path = Path(path)
    path.write_bytes(b"")
    return path


def make_random_bytes(path: str | os.PathLike, n_bytes: int = 64 * 1024, seed: int = 0) -> Path:
    """Random bytes with a video extension (deterministic for a given ``seed``)."""
    path = Path(path)
    path.write_bytes(np.random.default_rng(seed).integers(0, 256, n_bytes, dtype=np.uint8).tobytes())
    return path


def make_text_as_mov(path: str | os.PathLike) -> Path:
    """A plain-text file named like a video (e.g. ``notes.mov``)."""
    path = Path(path)
    path.write_text("These are meeting notes, not a video.\n" * 200)
    return path


def make_face_clip(
    path: str | os.PathLike,
    face_rgb: np.ndarray,
    n_frames: int = 48,
    fps: float = 24,
    size: tuple[int, int] = (320, 240),
    motion: bool = True,
    codec: str = "libx264",
    face_height: float = 0.6,
    rotation: int = 0,
) -> ClipSpec:
    """Paste a real face photo (H×W×3 uint8 RGB) onto a plain background, with gentle motion.

    The pasted image is scaled to ``face_height`` × the frame height; with ``motion`` it drifts
    sideways and its scale breathes ±8 % over the clip, so a tracker sees one face moving
    smoothly. ``ClipSpec.boxes`` holds the pasted image's (x1, y1, x2, y2) per frame, in
    displayed pixels: the face lies inside it. Use e.g. ``skimage.data.astronaut()`` or
    ``../shared/images/single_face.jpg``. ``rotation`` (counter-clockwise degrees, a multiple
    of 90) writes a phone-style display-rotation tag and stores each frame turned the other
    way, so the clip *displays* as ``size`` with the face upright.
    """
    from PIL import Image

    path = Path(path)
    enc = _resolve(codec)
    face = np.asarray(face_rgb)
    if face.ndim != 3 or face.shape[2] < 3:
        raise ValueError(f"face_rgb must be H×W×3, got shape {face.shape}")
    face = np.ascontiguousarray(face[..., :3].astype(np.uint8))
    src = Image.fromarray(face)
    w, h = size
    yy, xx = np.mgrid[0:h, 0:w]
    background = np.empty((h, w, 3), np.uint8)
    background[..., 0] = (90 + 40 * xx / max(w - 1, 1)).astype(np.uint8)
    background[..., 1] = (100 + 30 * yy / max(h - 1, 1)).astype(np.uint8)
    background[..., 2] = 120
    aspect = face.shape[1] / face.shape[0]
    boxes: list[tuple[int, int, int, int]] = []

    def frames():
        for i in range(n_frames):
            phase = 2 * math.pi * i / max(n_frames, 1)
            scale = face_height * (1 + 0.08 * math.sin(phase)) if motion else face_height
            fh = max(8, min(h, int(round(h * scale))))
            fw = max(8, min(w, int(round(fh * aspect))))
            cx = w / 2 + (0.15 * w * math.sin(phase) if motion else 0)
            cy = h / 2 + (0.05 * h * math.cos(phase) if motion else 0)
            x1 = int(round(min(max(cx - fw / 2, 0), w - fw)))
            y1 = int(round(min(max(cy - fh / 2, 0), h - fh)))
            img = background.copy()
            img[y1:y1 + fh, x1:x1 + fw] = np.asarray(src.resize((fw, fh), Image.BILINEAR))
            boxes.append((x1, y1, x1 + fw, y1 + fh))
            yield i, np.rot90(img, -(rotation // 90)) if rotation else img

    time_base = Fraction(1, int(round(fps))) if float(fps).is_integer() else 1 / Fraction(fps).limit_denominator(1001)
    rotation %= 360
    if rotation % 90:
        raise ValueError(f"rotation must be a multiple of 90, got {rotation}")
    stored = (h, w) if rotation in (90, 270) else (w, h)
    _encode(path, frames(), codec=enc, fps=fps, size=stored, time_base=time_base,
            rotation=rotation)
    pts_s = [float(i * time_base) for i in range(n_frames)]
    return ClipSpec(path, n_frames, float(fps), w, h, rotation, _DECODER_NAME.get(enc, enc), pts_s,
                    boxes=boxes)


# ---------------------------------------------------------------------------- a real face
#: the head-and-shoulders crop (rows, columns) of scikit-image's astronaut photo
ASTRONAUT_CROP = (slice(20, 330), slice(110, 400))


def astronaut_face() -> np.ndarray:
    """Eileen Collins' head and shoulders from scikit-image's ``astronaut.png`` (310×290 RGB
    uint8, read-only): a real, smiling face shipped with scikit-image, nothing downloaded."""
    from skimage import data

    face = np.ascontiguousarray(data.astronaut()[ASTRONAUT_CROP])
    face.flags.writeable = False
    return face


def face_scene(face: np.ndarray | None, at: tuple[int, int] | None = None,
               size: tuple[int, int] = (480, 360), face_h: int = 200) -> np.ndarray:
    """A plain grey-blue RGB frame of ``size`` (width, height), with ``face`` resized to
    ``face_h`` pixels high pasted with its top-left corner at ``at`` (no face when either is
    ``None``)."""
    import cv2

    w, h = size
    frame = np.full((h, w, 3), (70, 90, 120), np.uint8)
    if face is not None and at is not None:
        fw = int(face_h * face.shape[1] / face.shape[0])
        x, y = at
        frame[y:y + face_h, x:x + fw] = cv2.resize(face, (fw, face_h))
    return frame
