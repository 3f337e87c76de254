"""Decode stage: open a video with a backend and iterate its (sampled) frames.

``open_video(path, config)`` picks a backend from :data:`BACKENDS` by name (only ``"pyav"``
today; the registry keeps the rest of ferbatch independent of the decoding library, as in
PySceneDetect's backend layout).
"""

from __future__ import annotations

import os
from collections.abc import Callable

from ..config import DecodeConfig
from ..errors import ConfigError
from .base import Frame, FrameSampler, VideoInfo, VideoStream
from .pyav import PyAVStream

#: backend name -> factory(path, DecodeConfig) returning an open VideoStream
BACKENDS: dict[str, Callable[[str | os.PathLike[str], DecodeConfig], VideoStream]] = {
    "pyav": PyAVStream.from_config,
}


def open_video(
    path: str | os.PathLike[str], config: DecodeConfig | None = None, backend: str = "pyav"
) -> VideoStream:
    """Open ``path`` for decoding; raises :class:`~ferbatch.errors.VideoOpenError` if unusable.

    Use the result as a context manager and pair it with
    ``FrameSampler.from_config(config)`` for the frames the config asks for.
    """
    try:
        factory = BACKENDS[backend]
    except KeyError:
        raise ConfigError(
            f"unknown decode backend {backend!r}; valid: {', '.join(sorted(BACKENDS))}"
        ) from None
    config = config if config is not None else DecodeConfig()
    config.validate()
    return factory(path, config)


__all__ = ["BACKENDS", "Frame", "FrameSampler", "VideoInfo", "VideoStream", "open_video",
           "PyAVStream"]
