"""Averaging the weights of one run's epoch snapshots: stochastic weight averaging (SWA).

Izmailov et al. 2018, "Averaging Weights Leads to Wider Optima and Better Generalization"
(UAI): the mean of the weights a run visits over its last epochs lies nearer the centre of a
wide optimum than any one of them and often generalises better. The averaging and the
batch-norm pass are PyTorch's own (:mod:`torch.optim.swa_utils`: ``AveragedModel`` with equal
weights, ``update_bn``). Batch-norm statistics of averaged weights are not the average of the
snapshots' statistics, so they are recomputed with one pass over the training split, with the
run's own augmentation (as the paper does) and the checkpoint's normalisation.

The snapshots are files ``ferbatch train`` writes: ``--snapshot-from``'s
``snapshots/epochNN.pt``, a run's resumable ``last.pt`` copied after an epoch, or
:class:`~ferbatch.models.checkpoint.Checkpoint` files such as ``best.pt``; all of one run (what
a file says of itself — architecture, labels, preprocessing — must match the template).
Which snapshots to average is a choice like any other: make it on the validation split, never
on the test split you report.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from torch.optim.swa_utils import AveragedModel, update_bn

from ..errors import ConfigError, ModelError, OutputError
from ..models.checkpoint import (
    Checkpoint,
    checkpoint_from_dict,
    load_checkpoint,
    safe_torch_load,
    save_checkpoint,
)
from .data import FaceData
from .transforms import augment_batch, get_preset

log = logging.getLogger(__name__)

#: what a snapshot written by ``--snapshot-from`` says of its run (checked against the template)
_IDENTITY = ("arch", "arch_kwargs", "labels")


def load_snapshot_state(path: str | os.PathLike[str],
                        template: Checkpoint | None = None) -> dict[str, torch.Tensor]:
    """The model weights of a snapshot: ``ferbatch train --snapshot-from``'s
    ``snapshots/epochNN.pt``, a resumable ``last.pt`` (its ``model`` entry, see
    :mod:`ferbatch.train.resume`) or a ferbatch checkpoint. With ``template``, what the file
    says of itself (architecture, its options, labels; a checkpoint's preprocessing too) must
    match it. Raises :class:`ModelError` for a file that is none of these or does not match."""
    data = safe_torch_load(path, "training snapshot")
    if isinstance(data, dict) and isinstance(data.get("model"), dict):
        state, said = dict(data["model"]), {k: data[k] for k in _IDENTITY if k in data}
    elif isinstance(data, dict) and "format" in data:
        ckpt = checkpoint_from_dict(data, path)
        state = dict(ckpt.state_dict)
        said = {"arch": ckpt.arch, "arch_kwargs": ckpt.arch_kwargs, "labels": ckpt.labels,
                "preprocess": ckpt.preprocess}
    else:
        raise ModelError(f"{path}: neither a ferbatch checkpoint nor a training run's "
                         "last.pt or snapshot")
    if template is not None:
        wanted = {"arch": template.arch, "arch_kwargs": template.arch_kwargs,
                  "labels": list(template.labels), "preprocess": template.preprocess}
        for key, value in said.items():
            if (list(value) if key == "labels" else value) != wanted[key]:
                raise ModelError(f"{path}: not a snapshot of the template's run: its {key} "
                                 f"{value!r} differ from the template's {wanted[key]!r}")
    return state


def _bn_batches(train: FaceData, ckpt: Checkpoint, batch_size: int, device: torch.device,
                generator: torch.Generator) -> Iterator[torch.Tensor]:
    """Normalised, augmented training batches (the run's ``augment`` preset) for ``update_bn``."""
    preset = get_preset(str(ckpt.train_config.get("augment", "standard")))
    size = ckpt.preprocess.input_size
    for start in range(0, len(train), batch_size):
        images = train.images[start:start + batch_size].to(device)
        yield ckpt.preprocess.normalize(augment_batch(images, size, preset, generator))


def average_snapshots(template: Checkpoint, snapshots: Sequence[str | os.PathLike[str]],
                      train: FaceData, *, device: torch.device, batch_size: int = 256,
                      seed: int = 0) -> Checkpoint:
    """A checkpoint with the equal-weight mean of ``snapshots``' weights and batch-norm
    statistics recomputed on ``train`` (uint8 N×S×S faces of the template's ``image_size``).

    ``template`` gives architecture, labels, preprocessing and train config (its weights are
    not used). The result has no calibration (refit the temperature: the averaged model's
    confidence differs) and records the snapshots in ``extra["swa"]``; its floats have the
    template's dtype (fp16 for a bundled model). Raises :class:`ModelError` when a snapshot is
    unreadable or does not fit the architecture, :class:`ValueError` for no snapshot.
    """
    if not snapshots:
        raise ValueError("no snapshot to average")
    model = template.build().to(device)
    averaged: AveragedModel | None = None
    for path in snapshots:
        state = load_snapshot_state(path, template)
        try:
            model.load_state_dict(state)
        except RuntimeError as exc:
            raise ModelError(f"{path}: weights do not fit architecture {template.arch!r} "
                             f"with {template.arch_kwargs}: {exc}") from exc
        if averaged is None:
            averaged = AveragedModel(model)  # a copy; its running mean starts at the first update
        averaged.update_parameters(model)
    assert averaged is not None
    generator = torch.Generator(device=device)
    generator.manual_seed(seed)  # the augmentation of the batch-norm pass
    update_bn(_bn_batches(train, template, batch_size, device, generator), averaged, device=device)
    dtypes = {k: v.dtype for k, v in template.state_dict.items()}
    state = {k: v.detach().cpu().to(dtypes.get(k, v.dtype)) if v.is_floating_point()
             else v.detach().cpu() for k, v in averaged.module.state_dict().items()}
    log.info("averaged %d snapshot(s); batch-norm statistics recomputed on %d training faces",
             len(snapshots), len(train))
    return Checkpoint(arch=template.arch, arch_kwargs=dict(template.arch_kwargs),
                      labels=list(template.labels), preprocess=template.preprocess,
                      state_dict=state, train_config=dict(template.train_config),
                      data_hash=template.data_hash, metrics={}, code_version=template.code_version,
                      extra={**template.extra, "swa": {
                          "method": "equal-weight average (Izmailov et al. 2018)",
                          "snapshots": [Path(p).name for p in snapshots],
                          "bn_faces": len(train), "seed": seed}})


def run_splits(template: Checkpoint, data: str | None = None, dataset: str | None = None,
               ferplus: str | None = None) -> tuple[FaceData, FaceData | None, bool]:
    """The training and validation splits of the template's run, loaded as that run loaded them
    (its ``train_config``: dataset kind, FER+ votes and mode, classes, validation folder or
    share, ``--limit``); ``data`` / ``dataset`` / ``ferplus`` replace the stored ones when given (the files
    moved). Also whether the data hash equals the template's (``False``: other data). Raises
    :class:`ConfigError` / :class:`DataError` like ``ferbatch train``."""
    from .args import TrainArgs
    from .main import load_splits

    known = set(TrainArgs.__dataclass_fields__)  # type: ignore[attr-defined]
    config = {k: v for k, v in template.train_config.items() if k in known}
    config.update({k: v for k, v in (("data", data), ("dataset", dataset), ("ferplus", ferplus))
                   if v is not None})
    if "data" not in config:
        raise ConfigError("the template does not say which data its run trained on: give --data")
    args = TrainArgs(**{**config, "out": config.get("out", ""), "quiet": True})
    splits, data_hash = load_splits(args)
    same = not template.data_hash or data_hash == template.data_hash
    train = splits["train"]
    if args.limit:  # the run trained on its first N images: so do its statistics
        train = train.subset(torch.arange(min(args.limit, len(train))))
    return train, splits.get("val"), same


def describe(report: dict[str, Any]) -> str:
    """One line of an :func:`~ferbatch.train.engine.evaluate` report."""
    return f"accuracy {report['accuracy']:.4f} macro-F1 {report['macro_f1']:.4f}"


@dataclass(frozen=True)
class AverageResult:
    """What :func:`average_main` did: validation reports (:func:`~ferbatch.train.engine.evaluate`)
    of the template and of the average, the temperature fit (:func:`calibrate_temperature`'s
    dict: ``temperature``, ``before``/``after`` ECE, NLL, Brier), the split sizes and whether
    the data are those the template's run trained on."""

    template: dict[str, Any]
    average: dict[str, Any]
    calibration: dict[str, Any]
    n_snapshots: int
    n_train: int
    n_val: int
    same_data: bool


def average_main(snapshots: Sequence[str | os.PathLike[str]], template: str | os.PathLike[str],
                 out: str | os.PathLike[str], *, data: str | None = None,
                 dataset: str | None = None, ferplus: str | None = None, seed: int = 0,
                 device: str = "auto", announce: Callable[[str], None] = log.info,
                 warn: Callable[[str], None] = log.warning) -> AverageResult:
    """``ferbatch average-weights``: average ``snapshots`` (:func:`average_snapshots`) with the
    splits of ``template``'s run (:func:`run_splits`), evaluate template and average on the
    validation split (single crop, the checkpoints' preprocessing), fit the average's
    temperature there (temperature scaling, Guo et al. 2017), record its validation figures in
    ``metrics["val"]`` and write it to ``out``.

    ``announce`` receives what is about to happen (before the slow part); ``warn`` what the
    user should know (data other than the run's, a temperature that raised the ECE). Raises
    :class:`ConfigError` (no validation split, no data), :class:`DataError`,
    :class:`ModelError`, :class:`OutputError` (``out`` cannot be written), :class:`ValueError`
    (no snapshot)."""
    from ..devices import resolve_device
    from .calibration import calibrate_temperature, ece_warning
    from .engine import evaluate

    run_device = resolve_device(device)
    base = load_checkpoint(template)
    train, val, same = run_splits(base, data, dataset, ferplus)
    if not same:
        warn(f"the data differ from what {template} was trained on (another data hash)")
    if val is None or not len(val):
        raise ConfigError("the run has no validation split to choose and calibrate on")
    if len(snapshots) == 1:
        announce("note: one snapshot: its weights are kept, only its batch-norm statistics "
                 "are recomputed")
    announce(f"averaging {len(snapshots)} snapshot(s); batch-norm pass over {len(train)} "
             f"training faces, then {len(val)} validation faces twice…")
    ckpt = average_snapshots(base, snapshots, train, device=run_device, seed=seed)
    before = evaluate(base.build().to(run_device), val, device=run_device,
                      preprocess=base.preprocess)
    after = evaluate(ckpt.build().to(run_device), val, device=run_device,
                     preprocess=ckpt.preprocess)
    kind = dataset or base.train_config.get("dataset") or "fer2013"
    cal = calibrate_temperature(ckpt, val, run_device, f"{kind}:val")
    if warning := ece_warning(cal):
        warn(warning)
    ckpt.metrics = {"val": {k: after[k] for k in ("accuracy", "macro_f1", "loss")}}
    try:
        save_checkpoint(ckpt, out)
    except OSError as exc:
        raise OutputError(f"cannot write {out}: {exc.strerror or exc}") from exc
    return AverageResult(template=before, average=after, calibration=cal,
                         n_snapshots=len(snapshots), n_train=len(train), n_val=len(val),
                         same_data=same)
