"""Checks of a checkpoint's metadata, run when it is loaded and before it is saved.

A checkpoint is data that may come from anywhere (another trainer, a hand-edited dict): each
field a run relies on is checked before any work, so a bad one is a
:class:`~ferbatch.errors.ModelError` naming the file and the field, not a crash later
("duplicate field names" when the output is read, a kernel kill at 24 GB for a 20000-pixel
face). The ranges are wide enough for any face model and narrow enough to stop nonsense:

* ``labels``: a list of 2 to :data:`MAX_LABELS` unique, non-empty strings without control
  characters (they become column names: ``p_<label>``, the report's ``share_<label>``);
* ``preprocess``: ``image_size`` and ``input_size`` integers in [:data:`MIN_SIZE`,
  :data:`MAX_SIZE`] px with ``input_size <= image_size``; ``mean`` finite; ``std`` finite and
  > 0; ``crop_scale`` in (0, 4]; ``crop_shift_y`` in [-1, 1] box heights; ``align_eyes`` a bool;
* ``arch`` a string, ``arch_kwargs`` a dict, ``calibration.temperature`` finite and > 0.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

from ..errors import ModelError

MAX_LABELS = 1000
MIN_SIZE = 8
MAX_SIZE = 1024
PREPROCESS_FIELDS = ("image_size", "input_size", "mean", "std", "crop_scale", "crop_shift_y",
                     "align_eyes")


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _is_number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value)


def label_problem(labels: Any) -> str | None:
    """Why ``labels`` cannot be a model's label set, or ``None``."""
    if not isinstance(labels, list | tuple):
        return f"must be a list of class names, got {type(labels).__name__} {labels!r:.60}"
    if len(labels) < 2:
        return f"must name at least 2 classes, got {len(labels)}"
    if len(labels) > MAX_LABELS:
        return f"must name at most {MAX_LABELS} classes, got {len(labels)}"
    for label in labels:
        if not isinstance(label, str):
            return f"must be strings, got {type(label).__name__} {label!r:.60}"
        if not label.strip():
            return "must not be empty or blank"
        if any(ord(c) < 32 or ord(c) == 127 for c in label):
            return f"must not hold control characters: {label!r:.60}"
    seen: set[str] = set()
    twice = sorted({label for label in labels if label in seen or seen.add(label)})
    if twice:
        verb = "appears" if len(twice) == 1 else "appear"
        return f"must be unique, but {', '.join(map(repr, twice))} {verb} more than once"
    return None


def preprocess_problem(pre: Any) -> str | None:
    """Why ``pre`` (the ``preprocess`` dict) is unusable, as ``field: reason``, or ``None``."""
    if not isinstance(pre, Mapping):
        return f"preprocess: must be a dict, got {type(pre).__name__}"
    unknown = sorted(set(pre) - set(PREPROCESS_FIELDS))
    if unknown:
        return f"preprocess: unknown field(s) {', '.join(map(str, unknown))}"
    for name in ("image_size", "input_size"):
        if name in pre and not (_is_int(pre[name]) and MIN_SIZE <= pre[name] <= MAX_SIZE):
            return (f"preprocess.{name}: must be an integer in [{MIN_SIZE}, {MAX_SIZE}] px, "
                    f"got {pre[name]!r}")
    from .preprocess import Preprocess

    image = pre.get("image_size", Preprocess.image_size)
    inner = pre.get("input_size", Preprocess.input_size)
    if inner > image:
        return f"preprocess.input_size: {inner} px must not exceed image_size ({image} px)"
    checks = {
        "mean": (lambda v: _is_number(v), "a finite number"),
        "std": (lambda v: _is_number(v) and v > 0, "a finite number > 0"),
        "crop_scale": (lambda v: _is_number(v) and 0 < v <= 4, "a number in (0, 4]"),
        "crop_shift_y": (lambda v: _is_number(v) and -1 <= v <= 1, "a number in [-1, 1]"),
        "align_eyes": (lambda v: isinstance(v, bool), "true or false"),
    }
    for name, (ok, what) in checks.items():
        if name in pre and not ok(pre[name]):
            return f"preprocess.{name}: must be {what}, got {pre[name]!r}"
    return None


def checkpoint_problem(data: Mapping[str, Any]) -> str | None:
    """The first unusable field of a checkpoint dict, as ``field: reason``, or ``None``."""
    for key in ("arch", "labels", "preprocess", "state_dict"):
        if key not in data:
            return f"{key}: missing"
    if not isinstance(data["arch"], str) or not data["arch"]:
        return f"arch: must be a model name, got {data['arch']!r:.60}"
    for key in ("arch_kwargs", "train_config", "metrics", "extra", "calibration"):
        if data.get(key) is not None and not isinstance(data[key], Mapping):
            return f"{key}: must be a dict, got {type(data[key]).__name__}"
    if not isinstance(data["state_dict"], Mapping):
        return f"state_dict: must be a dict of tensors, got {type(data['state_dict']).__name__}"
    problem = label_problem(data["labels"])
    if problem:
        return f"labels: {problem}"
    problem = preprocess_problem(data["preprocess"])
    if problem:
        return problem
    temperature = (data.get("calibration") or {}).get("temperature", 1.0)
    if not (_is_number(temperature) and temperature > 0):
        return f"calibration.temperature: must be a finite number > 0, got {temperature!r}"
    return None


def check_checkpoint(data: Mapping[str, Any], where: object) -> None:
    """Raise :class:`ModelError` ``<where>: bad checkpoint field <field>: <reason>`` for the
    first unusable field of ``data`` (:func:`checkpoint_problem`)."""
    problem = checkpoint_problem(data)
    if problem is not None:
        raise ModelError(f"{where}: bad checkpoint field {problem}")
