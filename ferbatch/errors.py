"""ferbatch's own exception types.

Every error a user can cause (a bad file, a bad option, a bad checkpoint) is one of these, with a
message that names the file and the reason; lower-level exceptions are chained with ``from``.
"""

from __future__ import annotations


class FerbatchError(Exception):
    """Base class of every error ferbatch raises on purpose."""


class ConfigError(FerbatchError):
    """An option or combination of options is invalid."""


class VideoOpenError(FerbatchError):
    """A file could not be opened as a video (missing, empty, not a video, no video stream)."""


class DecodeError(FerbatchError):
    """Decoding failed part-way through a video."""


class ModelError(FerbatchError):
    """A model checkpoint is missing, unreadable or inconsistent."""


class DataError(FerbatchError):
    """A training or evaluation dataset is missing or malformed."""


class OutputError(FerbatchError):
    """A folder is not a readable ferbatch output."""


class TrainError(FerbatchError):
    """Training or a hyperparameter search failed while running (every trial failed, the
    search engine broke, a resumed state does not fit)."""


class RunError(FerbatchError):
    """A run could not go on (e.g. no Ray worker could start); not a problem of one video."""


class SpanMismatchError(DecodeError):
    """A span of a video decoded differently from its plan (frame count, order or timestamps)."""


class SegmentError(DecodeError):
    """Segment results that cannot be merged; the video is then analysed whole."""


class ExportError(FerbatchError):
    """A model could not be exported, or its export does not reproduce the PyTorch model."""


class ImageError(FerbatchError):
    """Bytes that should be a still image cannot be decoded (corrupt, truncated, too large)."""


class UnsupportedImageError(ImageError):
    """Bytes that are not an image of a supported format (JPEG, PNG, WebP)."""
