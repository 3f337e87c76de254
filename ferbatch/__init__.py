"""ferbatch: facial-emotion timelines for folders of video, written to Parquet.

Python API (mirrors the CLI)::

    import ferbatch
    summary = ferbatch.run_videos(["videos/"], "out")   # `ferbatch run`: in-process or Ray
    summary = ferbatch.run(["videos/"], "out")          # always in this process, never Ray
    data = ferbatch.load("out")                         # typed pandas frames (Results)
    result = ferbatch.process_video("clip.mp4", ferbatch.RunConfig())   # one video, in memory:
    result.row, result.frames, result.faces             # a dict and two pyarrow Tables
    result.to_pandas()                                  # the same as a Results of pandas frames
    ferbatch.run_videos(["videos/"], "s3://bucket/prefix")   # or any URI pyarrow.fs resolves
    heat = ferbatch.explain(face_crop)                  # Grad-CAM map, the crop's H×W in [0, 1]

The names are imported on first use (torch and PyAV load only then); ``dir(ferbatch)`` lists
them all.
"""

from __future__ import annotations

import logging
from typing import Any

__version__ = "0.1.0"

# a library adds no handler of its own: applications (the CLI) configure logging
logging.getLogger(__name__).addHandler(logging.NullHandler())

_EXPORTS = {
    "RunConfig": ("ferbatch.config", "RunConfig"),
    "DecodeConfig": ("ferbatch.config", "DecodeConfig"),
    "DetectConfig": ("ferbatch.config", "DetectConfig"),
    "TrackConfig": ("ferbatch.config", "TrackConfig"),
    "ClassifyConfig": ("ferbatch.config", "ClassifyConfig"),
    "process_video": ("ferbatch.pipeline", "process_video"),
    "Stages": ("ferbatch.pipeline", "Stages"),
    "PoolConfig": ("ferbatch.config", "PoolConfig"),
    "run": ("ferbatch.runner.local", "run"),
    "run_videos": ("ferbatch.runner.controller", "run_videos"),
    "plan_run": ("ferbatch.runner.plan", "plan_run"),
    "RunHook": ("ferbatch.progress", "RunHook"),
    "load": ("ferbatch.output.read", "load"),
    "Results": ("ferbatch.output.read", "Results"),
    "OutputLocation": ("ferbatch.output.location", "OutputLocation"),
    "explain": ("ferbatch.saliency", "explain"),
}

__all__ = ["__version__", *_EXPORTS]


def __getattr__(name: str) -> Any:
    """Import heavy modules (torch, av) only when their API is first used."""
    try:
        module_name, attr = _EXPORTS[name]
    except KeyError:
        raise AttributeError(f"module 'ferbatch' has no attribute {name!r}") from None
    import importlib

    return getattr(importlib.import_module(module_name), attr)


def __dir__() -> list[str]:
    """The module's own names plus the lazily imported API (``run``, ``load``…)."""
    return sorted(set(globals()) | set(_EXPORTS))
