"""Resuming a run: ``last.pt`` (the resumable state) and the options a resumed run must keep.

``last.pt`` is a dict ``torch.load(weights_only=True)`` reads, with the keys ``model``,
``optimizer``, ``schedule`` (:meth:`LRSchedule.state_dict`), ``generator`` and ``torch_rng``
(RNG states), ``epoch`` (0-based, the last one finished), ``best_acc``, ``best_epoch`` (1-based)
and ``history`` (the JSON of the history records). It is written atomically after every epoch.

A resumed run keeps what its weights are (:data:`~ferbatch.train.args.RUN_IDENTITY`: the
architecture and its options, input geometry, normalisation and classes): options the user did
not give come from the run's ``config.json`` (or ``best.pt``), and given ones that disagree are
refused before anything is loaded.
"""

from __future__ import annotations

import dataclasses
import json
import logging
from collections.abc import Collection
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

from ..errors import ConfigError, ModelError, TrainError
from ..output.atomic import atomic_write
from .args import RUN_IDENTITY, TrainArgs
from .build import Training

log = logging.getLogger(__name__)

LAST = "last.pt"
SNAPSHOTS = "snapshots"  # the folder of --snapshot-from's per-epoch weights
CONFIG = "config.json"


def stored_config(out: Path) -> dict[str, Any] | None:
    """The options a run in ``out`` was started with: ``config.json``, else the
    ``train_config`` of ``best.pt``; ``None`` when neither is readable."""
    try:
        return dict(json.loads((out / CONFIG).read_text()))
    except (OSError, ValueError, TypeError):
        pass
    try:
        from ..models.checkpoint import load_checkpoint

        return dict(load_checkpoint(out / "best.pt").train_config) or None
    except ModelError:
        return None


def _conflict(name: str, given: Any, stored: Any) -> str:
    flag = "--model-kw" if name == "model_kwargs" else "--" + name.replace("_", "-")
    return f"{flag} {given!r} (the run was started with {stored!r})"


def _merge_kwargs(given: dict[str, Any], stored: dict[str, Any],
                  conflicts: list[str]) -> dict[str, Any]:
    """Stored architecture options, with given keys checked against them."""
    for key, value in given.items():
        if key not in stored or stored[key] != value:
            conflicts.append(_conflict("model_kwargs", {key: value},
                                       {key: stored[key]} if key in stored else "no " + key))
    return dict(stored)


def reconcile_resume(args: TrainArgs, stored: dict[str, Any],
                     explicit: Collection[str]) -> TrainArgs:
    """``args`` with the :data:`RUN_IDENTITY` options taken from the ``stored`` config.

    ``explicit``: the options the user gave; one of them that disagrees with the stored run is
    a :class:`ConfigError` naming every conflict. ``model_kwargs`` merge key by key (giving a
    subset of the stored options is fine).
    """
    updates: dict[str, Any] = {}
    conflicts: list[str] = []
    for name in RUN_IDENTITY:
        if name not in stored:
            continue
        value, current = stored[name], getattr(args, name)
        if name == "model_kwargs":
            updates[name] = _merge_kwargs(current if name in explicit else {}, dict(value or {}),
                                          conflicts)
        elif current != value and name in explicit:
            conflicts.append(_conflict(name, current, value))
        else:
            updates[name] = value
    if conflicts:
        raise ConfigError("--resume continues the run in its folder with the same model; "
                          "these options differ from it: " + "; ".join(conflicts)
                          + ". Drop them, or train into a new --out folder.")
    changed = {k: v for k, v in updates.items() if getattr(args, k) != v}
    if changed:
        log.info("--resume: taking %s from the stored run", ", ".join(sorted(changed)))
    return dataclasses.replace(args, **updates)


@dataclass
class Progress:
    """Where a run stands: the next epoch (0-based), the best validation accuracy and its
    epoch (1-based; -1 before the first), and the history records so far."""

    start_epoch: int = 0
    best_acc: float = -1.0
    best_epoch: int = -1
    history: list[dict[str, Any]] = field(default_factory=list)


def save_last(path: Path, run: Training, epoch: int, progress: Progress) -> None:
    """Write ``last.pt`` atomically after 0-based ``epoch``."""
    state = {"model": run.model.state_dict(), "optimizer": run.optimizer.state_dict(),
             "schedule": run.schedule.state_dict(), "generator": run.generator.get_state(),
             "torch_rng": torch.get_rng_state(), "epoch": epoch,
             "best_acc": progress.best_acc, "best_epoch": progress.best_epoch,
             "history": json.dumps(progress.history)}
    atomic_write(path, lambda tmp: torch.save(state, tmp))


def save_snapshot(out: Path, run: Training, epoch: int, labels: list[str]) -> Path:
    """Write the model weights after 0-based ``epoch`` to ``out/snapshots/epochNN.pt`` (1-based
    NN): the ``model`` entry of ``last.pt`` with the run's architecture, its options and
    ``labels``, which ``ferbatch average-weights`` reads and checks."""
    path = out / SNAPSHOTS / f"epoch{epoch + 1:02d}.pt"
    path.parent.mkdir(parents=True, exist_ok=True)
    state = {"model": run.model.state_dict(), "epoch": epoch, "arch": run.args.model,
             "arch_kwargs": dict(run.args.model_kwargs), "labels": list(labels)}
    atomic_write(path, lambda tmp: torch.save(state, tmp))
    return path


def clear_snapshots(out: Path) -> int:
    """Remove the ``snapshots/epochNN.pt`` of an earlier run in ``out`` (a run started afresh
    there must not leave them to be averaged with its own); how many were removed."""
    removed = 0
    for old in sorted((out / SNAPSHOTS).glob("epoch*.pt")):
        old.unlink(missing_ok=True)
        removed += 1
    return removed


def load_last(path: Path, run: Training) -> Progress:
    """Restore model, optimiser, schedule and RNG states from ``last.pt``; return the progress.

    Raises :class:`TrainError` when the file is unreadable or does not fit the model.
    """
    from ..errors import ModelError
    from ..models.checkpoint import safe_torch_load

    try:
        state = safe_torch_load(path, "training state")
        run.model.load_state_dict(state["model"])
        run.optimizer.load_state_dict(state["optimizer"])
    except ModelError as exc:
        raise TrainError(f"cannot resume: {exc}") from exc
    except (RuntimeError, KeyError, ValueError, OSError) as exc:
        raise TrainError(f"cannot resume from {path}: {exc}".splitlines()[0]) from exc
    run.schedule.load_state_dict(state["schedule"])
    run.generator.set_state(state["generator"])
    torch.set_rng_state(state["torch_rng"])
    return Progress(start_epoch=state["epoch"] + 1, best_acc=state["best_acc"],
                    best_epoch=state["best_epoch"], history=json.loads(state["history"]))
