"""Everything about a training plan (:mod:`ferbatch.train.device_plan`) that can be checked before
a lent machine's minutes are spent: option types and choices, the data file, the architecture
and its options, and the teacher / init checkpoints that exist already.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ..errors import ConfigError, FerbatchError
from .args import (
    CLASS_WEIGHTS,
    FERPLUS_MODES,
    OPTIMIZERS,
    SCHEDULES,
    TTA_MODES,
    TrainArgs,
    field_default,
)

if TYPE_CHECKING:
    from .device_plan import DevicePlan

__all__ = ["check_plan", "run_problems"]

#: fields whose value must be one of a fixed set
_CHOICES = {"optimizer": OPTIMIZERS, "schedule": SCHEDULES, "class_weights": CLASS_WEIGHTS,
            "eval_tta": TTA_MODES, "ferplus_mode": FERPLUS_MODES}


def _type_problem(name: str, value: Any, default: Any) -> str | None:
    """Why ``value`` does not fit field ``name`` whose default is ``default`` (its type is the
    field's: an int field takes no float or bool, a float field takes an int)."""
    if default is None:  # optional paths and lists
        ok = value is None or isinstance(value, list if name == "classes" else str)
    elif isinstance(default, bool):
        ok = isinstance(value, bool)
    elif isinstance(default, int):
        ok = isinstance(value, int) and not isinstance(value, bool)
    elif isinstance(default, float):
        ok = isinstance(value, (int, float)) and not isinstance(value, bool)
    else:
        ok = isinstance(value, type(default))
    wanted = "a string or null" if default is None else type(default).__name__
    return None if ok else f"{name} must be {wanted}, got {value!r}"


def run_problems(args: TrainArgs, later: set[str]) -> list[str]:
    """What is wrong with one run's ``args``, short phrases; ``later``: checkpoint paths that
    earlier stages will write (a teacher or init among them is not looked for)."""
    from ..models import create_model
    from ..models.bundled import resolve_model
    from .datasets import check_dataset_options, get_dataset
    from .transforms import get_preset

    problems = []
    for spec in dataclasses.fields(TrainArgs):
        if spec.name in ("data", "out"):
            continue
        default = field_default(TrainArgs, spec.name)
        if (why := _type_problem(spec.name, getattr(args, spec.name), default)) is not None:
            problems.append(why)
    if problems:  # the checks below assume the types
        return problems
    for name, choices in _CHOICES.items():
        if getattr(args, name) not in choices:
            problems.append(f"{name} {getattr(args, name)!r} is not one of {', '.join(choices)}")
    for check in (lambda: get_preset(args.augment), lambda: get_dataset(args.dataset),
                  lambda: check_dataset_options(args.dataset, args.ferplus, args.val_data)):
        try:
            check()
        except FerbatchError as exc:
            problems.append(str(exc).splitlines()[0])
    if not Path(args.data).exists():
        problems.append(f"data {args.data} not found")
    try:
        create_model(args.model, num_classes=len(args.classes or []) or 7,
                     input_size=args.input_size, **args.model_kwargs)
    except FerbatchError as exc:
        problems.append(str(exc).splitlines()[0])
    for what, names in (("teacher", args.teacher), ("init", [args.init] if args.init else [])):
        for name in names:
            if name in later:
                continue
            try:
                resolve_model(name)
            except FerbatchError:
                problems.append(f"{what} {name} is neither a file nor a bundled model")
    return problems


def check_plan(plan: DevicePlan) -> None:
    """Raise one :class:`ConfigError` listing every run's problems (``stage/run: …``), or
    return when there are none."""
    later = {str(Path(r.args.out) / "best.pt") for st in plan.stages for r in st.runs}
    found = [f"{stage.name}/{run.name}: {problem}"
             for stage in plan.stages for run in stage.runs
             for problem in run_problems(run.args, later)]
    if found:
        raise ConfigError("the plan cannot run: " + "; ".join(found))
