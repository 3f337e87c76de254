"""One checkpoint from several trained ``vgg_gap`` checkpoints: a logit-averaging ensemble.

The members keep their weights; the result is an ordinary ferbatch checkpoint of the
registered architecture ``vgg_gap_ensemble`` (:class:`~ferbatch.models.archs.LogitMean`), so
everything that takes a checkpoint (the pipeline, ``evaluate``, ``calibrate-*``, ``export``,
``serve``, Grad-CAM, ``train --teacher``) takes it too. Averaging independently trained nets
is the oldest reliable way to more accuracy and better-calibrated probabilities
(Lakshminarayanan et al. 2017, "Simple and Scalable Predictive Uncertainty Estimation using
Deep Ensembles"); its cost is one forward pass per member. Which members to combine is a choice
like any other: make it on the validation split, never on the test split you report.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from ..errors import ModelError
from .archs import VGG_GAP_DEFAULTS
from .checkpoint import Checkpoint, load_checkpoint

__all__ = ["ENSEMBLE_ARCH", "make_ensemble", "load_members"]

ENSEMBLE_ARCH = "vgg_gap_ensemble"
#: member options that must agree (one ``vgg_gap_ensemble`` holds them once)
_SHARED = ("convs_per_block", "dropout")


def _member_kw(ckpt: Checkpoint, name: str) -> dict[str, Any]:
    if ckpt.arch != "vgg_gap":
        raise ModelError(f"{name}: an ensemble member must be a vgg_gap checkpoint, not {ckpt.arch!r}")
    kw = {**VGG_GAP_DEFAULTS, **ckpt.arch_kwargs}
    unknown = set(kw) - set(VGG_GAP_DEFAULTS)
    if unknown:
        raise ModelError(f"{name}: vgg_gap option(s) {sorted(unknown)} cannot be ensembled")
    return kw


def make_ensemble(members: Sequence[tuple[str, Checkpoint]]) -> Checkpoint:
    """A ``vgg_gap_ensemble`` checkpoint whose logits are the mean of ``members``' logits.

    ``members``: (name for messages and provenance, loaded checkpoint) pairs, at least two, all
    ``vgg_gap`` with the same labels, depth (``convs_per_block``), dropout, input size and
    normalisation; widths may differ; no two with the same weights. Weights keep their dtype
    (fp16 stays fp16). The crop geometry is the first member's (rerun ``ferbatch
    calibrate-crop`` on the result), and the result has no calibration and no recorded metrics
    (fit its temperature with ``ferbatch calibrate-temperature``: averaging changes the
    confidence).
    ``extra["ensemble"]`` records each member's file name, weights SHA-256, train config and
    recorded metrics. Raises :class:`ModelError` naming the member that does not fit.
    """
    if len(members) < 2:
        raise ModelError(f"an ensemble needs at least two members, got {len(members)}")
    first_name, first = members[0]
    first_kw = _member_kw(first, first_name)
    widths: list[int] = []
    state: dict[str, Any] = {}
    provenance: list[dict[str, Any]] = []
    seen: dict[str, str] = {}  # weights SHA-256 → the member that had them
    for k, (name, ckpt) in enumerate(members):
        kw = _member_kw(ckpt, name)
        for key in _SHARED:
            if kw[key] != first_kw[key]:
                raise ModelError(f"{name}: its {key} {kw[key]!r} differs from {first_name}'s "
                                 f"{first_kw[key]!r}")
        if list(ckpt.labels) != list(first.labels):
            raise ModelError(f"{name}: its labels {ckpt.labels} differ from {first_name}'s "
                             f"{first.labels}")
        for key in ("input_size", "mean", "std"):
            if getattr(ckpt.preprocess, key) != getattr(first.preprocess, key):
                raise ModelError(f"{name}: its preprocessing {key} "
                                 f"{getattr(ckpt.preprocess, key)!r} differs from {first_name}'s "
                                 f"{getattr(first.preprocess, key)!r}")
        digest = ckpt.weights_sha256()
        if digest in seen:
            raise ModelError(f"{name}: the same weights as {seen[digest]}: an ensemble of one "
                             "net twice is that net at twice the cost")
        seen[digest] = name
        widths.append(int(kw["width"]))
        state.update({f"members.{k}.{key}": value for key, value in ckpt.state_dict.items()})
        provenance.append({"file": Path(name).name, "weights_sha256": digest,
                           "arch_kwargs": dict(ckpt.arch_kwargs),
                           "train_config": dict(ckpt.train_config),
                           "metrics": dict(ckpt.metrics)})
    method = "mean of the members' logits (Lakshminarayanan et al. 2017; Hinton et al. 2015)"
    ensemble = Checkpoint(
        arch=ENSEMBLE_ARCH,
        arch_kwargs={"widths": widths, **{key: first_kw[key] for key in _SHARED}},
        labels=list(first.labels), preprocess=first.preprocess, state_dict=state,
        data_hash=first.data_hash if all(c.data_hash == first.data_hash for _, c in members) else "",
        code_version=first.code_version,
        extra={"ensemble": {"method": method, "members": provenance}})
    ensemble.build()  # the weights fit the architecture, or ModelError now
    return ensemble


def load_members(paths: Sequence[str | os.PathLike[str]]) -> list[tuple[str, Checkpoint]]:
    """(path, checkpoint) for each of ``paths`` (files or bundled names), for
    :func:`make_ensemble`; raises :class:`ModelError` for one that cannot be read."""
    return [(str(path), load_checkpoint(path)) for path in paths]
