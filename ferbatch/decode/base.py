"""Backend-independent decode interface (laid out like PySceneDetect's ``VideoStream``).

A backend opens one file, describes it in a :class:`VideoInfo` and yields :class:`Frame` objects
in presentation order. A :class:`FrameSampler` decides which decoded frames are analysed; the
backend must not convert the others to RGB, because that conversion is the expensive part of
decoding. Damage in the middle of a file never raises out of :meth:`VideoStream.frames`: the
iterator ends normally and :attr:`VideoStream.error` says why it ended early.
"""

from __future__ import annotations

import abc
import math
from collections.abc import Iterator
from dataclasses import dataclass
from types import TracebackType
from typing import Any

import numpy as np

from ..config import DecodeConfig
from ..errors import ConfigError


@dataclass(frozen=True)
class VideoInfo:
    """What a video is, as a player would show it.

    ``width``/``height`` are the *displayed* size, i.e. after the sample aspect ratio and the
    display matrix are applied (:mod:`ferbatch.decode.display`). ``rotation`` is the display
    rotation in counter-clockwise degrees (FFmpeg's display-matrix convention, the value
    ``VideoFrame.rotation`` and ``VideoStream.set_display_rotation`` use), normalised to 0, 90,
    180 or 270, and ``flip`` the mirror applied after it (``"none"``, ``"horizontal"``,
    ``"vertical"``). Note that a phone clip whose legacy ``rotate`` tag reads 90 (clockwise)
    reports 270 here. ``sample_aspect_ratio`` is the stored pixels' SAR as ``"64:45"``
    (``"1:1"``: square). ``fps`` is the stream's average frame rate (the codec's when the
    stream has no timestamps; ``None`` when unknown); ``duration_s`` the video stream's own
    duration (:func:`ferbatch.decode.timing.stream_duration`; ``None`` until decoded when the
    file does not say); ``frame_count`` the container's estimate (``None`` when it has none);
    ``codec`` the decoder name (``"h264"``).
    """

    path: str
    width: int
    height: int
    rotation: int
    fps: float | None
    duration_s: float | None
    frame_count: int | None
    codec: str
    flip: str = "none"
    sample_aspect_ratio: str = "1:1"


@dataclass
class Frame:
    """One decoded frame, ready for analysis.

    ``index`` counts *all* decoded frames of the video from 0 (our own counter: PyAV's
    ``frame.index`` can repeat with threaded decoding). ``timestamp_s`` is the presentation time
    relative to the stream start, correct on variable-frame-rate video (strictly increasing;
    inferred from frame durations where the file has no usable pts, see
    :mod:`ferbatch.decode.timing`). ``image`` is an H×W×3 uint8 RGB, C-contiguous array, as
    displayed: resampled to the sample aspect ratio, rotated and mirrored.
    """

    index: int
    timestamp_s: float
    image: np.ndarray


class FrameSampler:
    """Decides which decoded frames are analysed.

    ``every=N`` keeps frames whose index is a multiple of N. ``fps=F`` is time-based, so it is
    even on variable-frame-rate video: the first frame is kept, then a frame is kept as soon as
    its timestamp reaches the next slot, and the slot advances in whole steps of 1/F past the
    kept timestamp (a 30 fps clip sampled at ``fps=5`` keeps every 6th frame). With neither,
    every frame is kept. The sampler is stateful: :meth:`reset` before reusing it on another
    video (``VideoStream.frames`` does this for you).
    """

    #: slack for float round-off, so a frame exactly on a slot (t = 6/30 for slot 0.2) is kept
    EPS = 1e-6

    def __init__(self, fps: float | None = None, every: int | None = None) -> None:
        if fps is not None and every is not None:
            raise ConfigError("choose either fps or every for frame sampling, not both")
        if fps is not None and not (fps > 0 and math.isfinite(fps)):
            raise ConfigError(f"sampling fps must be > 0, got {fps}")
        if every is not None and (int(every) != every or every < 1):
            raise ConfigError(f"sampling every must be an integer >= 1, got {every}")
        self.fps = float(fps) if fps is not None else None
        self.every = int(every) if every is not None else None
        self._next_t: float | None = None

    @classmethod
    def from_config(cls, config: DecodeConfig) -> FrameSampler:
        """The sampler a :class:`DecodeConfig` asks for."""
        return cls(fps=config.fps, every=config.every)

    def reset(self) -> None:
        """Forget the time-based state, so the next frame seen is kept."""
        self._next_t = None

    @property
    def state(self) -> float | None:
        """The time-based state (the next slot, ``None`` before the first frame).

        Save it before a frame and :meth:`resume` from it to sample a later part of the video
        exactly as a run over the whole video would (``ferbatch.segments`` does this)."""
        return self._next_t

    def resume(self, state: float | None) -> None:
        """Continue from a saved :attr:`state` instead of starting afresh."""
        self._next_t = None if state is None else float(state)

    def keep(self, index: int, timestamp_s: float) -> bool:
        """True when the frame ``index`` at ``timestamp_s`` should be analysed."""
        if self.every is not None:
            return index % self.every == 0
        if self.fps is None:
            return True
        if self._next_t is None:
            self._next_t = timestamp_s + 1.0 / self.fps
            return True
        if timestamp_s + self.EPS < self._next_t:
            return False
        step = 1.0 / self.fps
        # advance in whole steps until the slot lies past the kept timestamp
        self._next_t += step * (math.floor((timestamp_s - self._next_t + self.EPS) / step) + 1)
        return True

    def describe(self) -> str:
        """Short provenance text: ``"all"``, ``"every=3"`` or ``"fps=5"``."""
        if self.every is not None:
            return f"every={self.every}"
        if self.fps is not None:
            return f"fps={self.fps:g}"
        return "all"

    def __repr__(self) -> str:
        return f"FrameSampler({self.describe()})"


class VideoStream(abc.ABC):
    """One open video; a context manager that yields frames once, in presentation order.

    After iteration ends, :attr:`frames_decoded` counts every decoded frame (also those the
    sampler skipped) and :attr:`error` is ``None`` when the file decoded to its end, or a
    sentence saying where and why decoding stopped early (damaged or truncated data).
    :attr:`time_source` and :attr:`frames_time_inferred` say how the timestamps were found
    (:mod:`ferbatch.decode.timing`; ``None``/0 for a backend that does not tell).
    """

    info: VideoInfo
    frames_decoded: int
    error: str | None
    time_source: str | None = None
    frames_time_inferred: int = 0

    def row_fields(self) -> dict[str, Any]:
        """The ``videos.parquet`` columns the stream describes: geometry, rate, duration, codec
        and how time was found (after iteration: the final values)."""
        info = self.info
        return {"duration_s": info.duration_s, "fps": info.fps, "width": info.width,
                "height": info.height, "rotation": info.rotation, "flip": info.flip,
                "sample_aspect_ratio": info.sample_aspect_ratio, "codec": info.codec,
                "time_source": self.time_source,
                "frames_time_inferred": self.frames_time_inferred}

    @abc.abstractmethod
    def frames(self, sampler: FrameSampler | None = None) -> Iterator[Frame]:
        """Yield the frames ``sampler`` keeps (all when ``None``); a video is read once."""

    def __iter__(self) -> Iterator[Frame]:
        return self.frames()

    @abc.abstractmethod
    def close(self) -> None:
        """Release the file and decoder; safe to call more than once."""

    def __enter__(self) -> VideoStream:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    def __repr__(self) -> str:
        info = getattr(self, "info", None)
        return f"{type(self).__name__}({info.path if info else '?'!r})"
