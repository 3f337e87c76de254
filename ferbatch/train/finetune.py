"""Fine-tuning: start a training run from another checkpoint's weights (``--init``).

Transfer learning in the usual sense (Yosinski et al., "How transferable are features in deep
neural networks?", NeurIPS 2014): every tensor whose shape matches is copied; the classifier's
rows are copied *by label name* when the label sets differ (a 4-class head starts from the
7-class head's happy / sad / surprise / neutral rows; FER+'s extra ``contempt`` row keeps its
fresh initialisation). The run's architecture and preprocessing come from the checkpoint unless
given explicitly, and must then agree with it.
"""

from __future__ import annotations

import logging
from collections.abc import Collection
from dataclasses import replace
from typing import Any

import torch

from ..errors import ConfigError
from ..models.checkpoint import Checkpoint, load_checkpoint

__all__ = ["INIT_FIELDS", "args_from_init", "init_weights", "load_init"]

log = logging.getLogger(__name__)

#: TrainArgs fields that must agree with the ``--init`` checkpoint (taken from it by default).
INIT_FIELDS = ("model", "model_kwargs", "image_size", "input_size", "mean", "std",
               "crop_scale", "crop_shift_y")


def load_init(name: str) -> Checkpoint:
    """The checkpoint of ``--init NAME|PATH`` (a bundled model's name or a file).

    Raises :class:`~ferbatch.errors.ModelError` when it cannot be resolved or read."""
    from ..models.bundled import resolve_model

    return load_checkpoint(resolve_model(name))


def _ckpt_values(ckpt: Checkpoint) -> dict[str, Any]:
    p = ckpt.preprocess
    return {"model": ckpt.arch, "model_kwargs": dict(ckpt.arch_kwargs),
            "image_size": p.image_size, "input_size": p.input_size, "mean": p.mean,
            "std": p.std, "crop_scale": p.crop_scale, "crop_shift_y": p.crop_shift_y}


def args_from_init(args: Any, ckpt: Checkpoint, explicit: Collection[str]) -> Any:
    """``args`` (a :class:`~ferbatch.train.args.TrainArgs`) with the fields of
    :data:`INIT_FIELDS` the caller did not set taken from ``ckpt``.

    Raises :class:`ConfigError` naming every explicitly set field that disagrees with it."""
    values = _ckpt_values(ckpt)
    clashes = [f"{name} ({getattr(args, name)!r} vs {values[name]!r})" for name in INIT_FIELDS
               if name in explicit and getattr(args, name) != values[name]]
    if clashes:
        raise ConfigError(f"--init {args.init}: options disagree with the checkpoint: "
                          f"{', '.join(clashes)}; leave them out to use the checkpoint's")
    return replace(args, **{k: v for k, v in values.items() if k not in explicit})


def init_weights(model: torch.nn.Module, ckpt: Checkpoint, labels: list[str]) -> dict[str, int]:
    """Copy ``ckpt``'s weights into ``model`` (built for ``labels``), in place.

    Tensors of equal shape are copied; a tensor whose first dimension is the number of classes
    on both sides (the classifier's weight and bias) gets the rows of the labels both share.
    Returns counts: ``copied`` tensors, ``head_rows`` copied by label, ``fresh`` tensors left
    at their initialisation. Raises :class:`ConfigError` when nothing fits.
    """
    old_index = {name: i for i, name in enumerate(ckpt.labels)}
    shared = [(i, old_index[name]) for i, name in enumerate(labels) if name in old_index]
    state = model.state_dict()
    counts = {"copied": 0, "head_rows": 0, "fresh": 0}
    with torch.no_grad():
        for key, target in state.items():
            source = ckpt.state_dict.get(key)
            if source is None:
                counts["fresh"] += 1
            elif source.shape == target.shape and (len(labels) == len(ckpt.labels)
                                                   or source.ndim == 0
                                                   or source.shape[0] != len(ckpt.labels)):
                target.copy_(source.to(target.dtype))
                counts["copied"] += 1
            elif (source.ndim >= 1 and source.shape[0] == len(ckpt.labels)
                  and target.shape[0] == len(labels) and source.shape[1:] == target.shape[1:]):
                for new, old in shared:
                    target[new].copy_(source[old].to(target.dtype))
                counts["head_rows"] += len(shared)
            else:
                counts["fresh"] += 1
    if counts["copied"] == 0:
        raise ConfigError("--init: no tensor of the checkpoint fits the model")
    model.load_state_dict(state)
    log.info("--init: %d tensors copied, %d classifier rows copied by label, %d left fresh",
             counts["copied"], counts["head_rows"], counts["fresh"])
    return counts
