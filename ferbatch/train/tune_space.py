"""What ``ferbatch tune`` searches: the options, the search space and the trials drawn from it.

Five dimensions are searched: ``lr``, ``batch_size``, ``dropout`` (a model option, only for
models that have one), ``weight_decay`` and ``augment`` (the augmentation preset, i.e. its
strength). Each is given as a list ``"a,b"`` or, for random search, a range ``"lo:hi"``
(log-uniform for ``lr``, ``weight_decay`` and ``batch_size``, uniform for ``dropout``).

A dimension left out is, in **random** search, drawn from :data:`DEFAULT_SPACE`::

    lr            log-uniform 0.005–0.2 (SGD), 1e-4–3e-3 (AdamW)
    weight_decay  log-uniform 1e-5–1e-3
    dropout       uniform 0–0.5 (models with a dropout option)
    batch_size    one of 64, 128, 256
    augment       one of light, standard, strong

and, in **grid** search, fixed at the ``ferbatch train`` default (a grid spans only the values
listed). A dimension set with ``--set NAME=VALUE`` is fixed in both. :func:`draw_trials` turns
the space into the list of trial configurations (seeded), without Ray, so it can be tested.
"""

from __future__ import annotations

import itertools
import math
import random
from dataclasses import dataclass, field, fields
from typing import Any

from ..errors import ConfigError
from .args import TrainArgs, field_default

SEARCHED = ("lr", "batch_size", "dropout", "weight_decay", "augment")
LOG_SCALE = {"lr", "weight_decay", "batch_size"}
CASTS = {"lr": float, "batch_size": int, "dropout": float, "weight_decay": float, "augment": str}
SEARCHES = ("grid", "random")
SCHEDULERS = ("fifo", "asha")
METRIC = "val_acc"

#: What random search draws a dimension from when it is not given (see the module docstring).
DEFAULT_SPACE: dict[str, str] = {
    "lr": "0.005:0.2",
    "weight_decay": "1e-5:1e-3",
    "dropout": "0:0.5",
    "batch_size": "64,128,256",
    "augment": "light,standard,strong",
}
#: The default ``lr`` range per optimiser (AdamW wants far smaller rates than SGD).
DEFAULT_LR = {"sgd": "0.005:0.2", "adamw": "1e-4:3e-3"}


def _train_default(name: str) -> Any:
    return field_default(TrainArgs, name)


@dataclass
class TuneOptions:
    """A search: where the data are, what to vary, how many trials and how much CPU/GPU.

    Each search option (``lr`` … ``augment``) is ``None`` (the default space, see the module
    docstring), a list of values or, for random search only, a ``(lo, hi)`` range written
    ``"lo:hi"`` on the command line. Options not searched come from ``base`` (any
    :class:`~ferbatch.train.args.TrainArgs` field, e.g. ``input_size``, ``optimizer``) or the
    ``TrainArgs`` defaults.
    """

    data: str
    out: str
    dataset: str = _train_default("dataset")
    ferplus: str | None = _train_default("ferplus")
    ferplus_mode: str = _train_default("ferplus_mode")
    val_data: str | None = _train_default("val_data")
    classes: list[str] | None = _train_default("classes")
    model: str = _train_default("model")
    model_kwargs: dict[str, Any] = field(default_factory=dict)
    search: str = "grid"  # one of SEARCHES
    samples: int = 1  # random: trials; grid: repeats of the grid
    epochs: int = 10  # per trial
    lr: Any = None
    batch_size: Any = None
    dropout: Any = None
    weight_decay: Any = None
    augment: Any = None
    scheduler: str = "fifo"  # one of SCHEDULERS; asha stops weak trials early
    num_cpus: int = 0  # 0: every core
    cpus_per_trial: int = 1
    gpus_per_trial: float = -1  # -1: 1 when CUDA is available, else 0
    max_concurrent: int = 0
    limit: int = _train_default("limit")
    seed: int = _train_default("seed")
    quiet: bool = False
    base: dict[str, Any] = field(default_factory=dict)


def _flag(name: str) -> str:
    return "--" + name.replace("_", "-")


def parse_values(name: str, spec: Any) -> list[Any] | tuple[float, float]:
    """``"0.01,0.05"`` → ``[0.01, 0.05]``; ``"1e-3:1e-1"`` → ``(0.001, 0.1)`` (a range).

    Lists and scalars pass through (cast to the option's type). Raises :class:`ConfigError`
    for an unreadable value, an empty list, ``lo >= hi`` or a non-positive log-scale range.
    """
    cast = CASTS[name]
    try:
        if isinstance(spec, tuple) and len(spec) == 2:
            return (float(spec[0]), float(spec[1]))
        if isinstance(spec, (list, tuple)):
            values = [cast(v) for v in spec]
        elif isinstance(spec, str) and ":" in spec and name != "augment":
            lo, hi = (float(v) for v in spec.split(":", 1))
            if not lo < hi:
                raise ConfigError(f"{_flag(name)} range {spec!r}: need lo < hi")
            if name in LOG_SCALE and lo <= 0:
                raise ConfigError(f"{_flag(name)} range {spec!r} must be positive")
            return (lo, hi)
        elif isinstance(spec, str):
            values = [cast(v.strip()) for v in spec.split(",") if v.strip()]
        else:
            values = [cast(spec)]
    except ValueError as exc:
        raise ConfigError(f"{_flag(name)}: cannot read {spec!r}: {exc}") from exc
    if not values:
        raise ConfigError(f"{_flag(name)}: no value given")
    return values


def default_spec(name: str, options: TuneOptions) -> str:
    """The default random-search space of dimension ``name`` (``lr`` follows the optimiser)."""
    if name == "lr":
        optimizer = options.base.get("optimizer", _train_default("optimizer"))
        return DEFAULT_LR.get(optimizer, DEFAULT_SPACE["lr"])
    return DEFAULT_SPACE[name]


def search_space(options: TuneOptions, has_dropout: bool) -> dict[str, Any]:
    """Dimension → list of values or ``(lo, hi)`` range, for the dimensions that vary or were
    given; ``has_dropout``: whether the model takes a ``dropout`` option.

    Raises :class:`ConfigError` for an unknown search, a range in grid search, ``--dropout``
    for a model without one, or an unknown augmentation preset.
    """
    if options.search not in SEARCHES:
        raise ConfigError(f"unknown search {options.search!r}; choose {', '.join(SEARCHES)}")
    space: dict[str, Any] = {}
    for name in SEARCHED:
        spec = getattr(options, name)
        if spec is None:
            if options.search == "grid" or name in options.base or (
                    name == "dropout" and not has_dropout):
                continue
            spec = default_spec(name, options)
        elif name == "dropout" and not has_dropout:
            raise ConfigError(f"model {options.model!r} has no dropout option; drop --dropout")
        values = parse_values(name, spec)
        if isinstance(values, tuple) and options.search == "grid":
            raise ConfigError(f"{_flag(name)} {values[0]:g}:{values[1]:g} is a range; ranges "
                              "need --search random (grid search takes lists)")
        space[name] = values
    if isinstance(space.get("augment"), list):
        from .transforms import PRESETS

        bad = [n for n in space["augment"] if n not in PRESETS]
        if bad:
            raise ConfigError(f"unknown augmentation preset(s) {bad}; "
                              f"choose from {sorted(PRESETS)}")
    return space


def _draw(rng: random.Random, name: str, spec: Any) -> Any:
    if isinstance(spec, list):
        return rng.choice(spec)
    lo, hi = spec
    if name in LOG_SCALE:
        value = math.exp(rng.uniform(math.log(lo), math.log(hi)))
    else:
        value = rng.uniform(lo, hi)
    if name == "batch_size":
        return int(min(hi, max(lo, round(value))))
    return float(f"{value:.3g}")  # three significant digits: readable, and exact in commands


def draw_trials(options: TuneOptions, space: dict[str, Any]) -> list[dict[str, Any]]:
    """Every trial's configuration (dimension → value), in order.

    Grid: the product of the listed values, repeated ``options.samples`` times. Random:
    ``options.samples`` independent draws seeded by ``options.seed``.
    """
    if options.samples < 1:
        raise ConfigError("--samples must be at least 1")
    if options.search == "grid":
        names = list(space)
        grid = [dict(zip(names, combo)) for combo in itertools.product(*space.values())]
        return grid * options.samples
    rng = random.Random(options.seed)
    return [{name: _draw(rng, name, spec) for name, spec in space.items()}
            for _ in range(options.samples)]


def train_args_for(options: TuneOptions, config: dict[str, Any]) -> TrainArgs:
    """The :class:`TrainArgs` of one trial: ``base`` + the options + the trial's ``config``.

    Raises :class:`ConfigError` for a ``base`` key that is no training option.
    """
    known = {f.name for f in fields(TrainArgs)}
    unknown = sorted(set(options.base) - known)
    if unknown:
        raise ConfigError(f"unknown training option(s) {unknown}")
    if "teacher" in options.base:
        raise ConfigError("tune does not distil: train with --teacher through `ferbatch train` "
                          "(every trial would score the teachers again)")
    kwargs = dict(options.base)
    kwargs.update(data=options.data, out=options.out, dataset=options.dataset,
                  ferplus=options.ferplus, ferplus_mode=options.ferplus_mode,
                  val_data=options.val_data, classes=options.classes, model=options.model,
                  epochs=options.epochs, seed=options.seed, limit=options.limit, quiet=True)
    model_kwargs = dict(options.model_kwargs)
    for name, value in config.items():
        if name == "dropout":
            model_kwargs["dropout"] = float(value)
        elif name in SEARCHED:
            kwargs[name] = CASTS[name](value)
    kwargs["model_kwargs"] = model_kwargs
    return TrainArgs(**kwargs)
