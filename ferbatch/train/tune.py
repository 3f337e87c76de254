"""``ferbatch tune``: hyperparameter search with Ray Tune over the training loop.

Searched: learning rate, batch size, dropout (a model option), weight decay and augmentation
preset. ``grid`` tries every combination (``samples`` repeats the grid); ``random`` draws
``samples`` configurations, from the listed values or from ``lo:hi`` ranges (log-uniform for
lr and weight decay, uniform for dropout). The data are loaded once in the driver and shared
with the trials through Ray's object store. Each trial runs the same ``train_one_epoch`` /
``evaluate`` as ``ferbatch train`` and reports validation accuracy every epoch; trials write
no checkpoints — retrain the best configuration with the printed ``ferbatch train`` command.
Results go to ``OUT/tune_results.csv`` and ``OUT/tune_results.json``, best first.
"""

from __future__ import annotations

import csv
import inspect
import json
import math
import os
import shlex
import sys
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ..errors import ConfigError, FerbatchError

if TYPE_CHECKING:
    from .main import TrainArgs

SEARCHED = ("lr", "batch_size", "dropout", "weight_decay", "augment")
_LOG_SCALE = {"lr", "weight_decay"}
_CASTS = {"lr": float, "batch_size": int, "dropout": float, "weight_decay": float, "augment": str}
METRIC = "val_acc"


@dataclass
class TuneOptions:
    """A search: where the data are, what to vary, how many trials and how much CPU/GPU.

    Each search option is a list of values or, for random search only, a ``(lo, hi)`` range
    written ``"lo:hi"`` on the command line. Options not searched come from ``base``
    (any :class:`~ferbatch.train.main.TrainArgs` field, e.g. ``input_size``, ``optimizer``).
    """

    data: str
    out: str
    dataset: str = "fer2013"
    ferplus: str | None = None
    ferplus_mode: str = "majority"
    val_data: str | None = None
    classes: list[str] | None = None
    model: str = "vgg_gap"
    model_kwargs: dict[str, Any] = field(default_factory=dict)
    search: str = "grid"  # grid | random
    samples: int = 1
    epochs: int = 10
    lr: Any = "0.05"
    batch_size: Any = "128"
    dropout: Any = None  # None: the model's default
    weight_decay: Any = "5e-4"
    augment: Any = "standard"
    scheduler: str = "fifo"  # fifo | asha (stop weak trials early)
    num_cpus: int = 0  # 0: every core
    cpus_per_trial: int = 1
    gpus_per_trial: float = -1  # -1: 1 when CUDA is available, else 0
    max_concurrent: int = 0
    limit: int = 0
    seed: int = 0
    quiet: bool = False
    base: dict[str, Any] = field(default_factory=dict)


def parse_values(name: str, spec: Any) -> list[Any] | tuple[float, float]:
    """``"0.01,0.05"`` → ``[0.01, 0.05]``; ``"1e-3:1e-1"`` → ``(0.001, 0.1)`` (a range).

    Lists and scalars pass through (cast to the option's type).
    """
    cast = _CASTS[name]
    try:
        if isinstance(spec, tuple) and len(spec) == 2:
            return (float(spec[0]), float(spec[1]))
        if isinstance(spec, (list, tuple)):
            values = [cast(v) for v in spec]
        elif isinstance(spec, str) and ":" in spec and name != "augment":
            lo, hi = (float(v) for v in spec.split(":", 1))
            if not lo < hi:
                raise ConfigError(f"--{name.replace('_', '-')} range {spec!r}: need lo < hi")
            if name in _LOG_SCALE and lo <= 0:
                raise ConfigError(f"--{name.replace('_', '-')} range {spec!r} must be positive")
            return (lo, hi)
        elif isinstance(spec, str):
            values = [cast(v.strip()) for v in spec.split(",") if v.strip()]
        else:
            values = [cast(spec)]
    except ValueError as exc:
        raise ConfigError(f"--{name.replace('_', '-')}: cannot read {spec!r}: {exc}") from exc
    if not values:
        raise ConfigError(f"--{name.replace('_', '-')}: no value given")
    return values


def build_param_space(options: TuneOptions) -> dict[str, Any]:
    """Ray Tune search space from the options (constants for single values)."""
    from ray import tune

    if options.search not in ("grid", "random"):
        raise ConfigError(f"unknown search {options.search!r}; choose grid or random")
    space: dict[str, Any] = {}
    for name in SEARCHED:
        spec = getattr(options, name)
        if spec is None:
            continue
        values = parse_values(name, spec)
        if isinstance(values, tuple):
            if options.search == "grid":
                raise ConfigError(f"--{name.replace('_', '-')} {values[0]}:{values[1]} is a range; "
                                  "ranges need --search random (grid search takes lists)")
            if name == "batch_size":
                space[name] = tune.lograndint(int(values[0]), int(values[1]) + 1)
            elif name in _LOG_SCALE:
                space[name] = tune.loguniform(*values)
            else:
                space[name] = tune.uniform(*values)
        elif len(values) == 1:
            space[name] = values[0]
        elif options.search == "grid":
            space[name] = tune.grid_search(values)
        else:
            space[name] = tune.choice(values)
    if "augment" in space:
        from .transforms import PRESETS

        listed = space["augment"]
        names = [listed] if isinstance(listed, str) else parse_values("augment", options.augment)
        bad = [n for n in names if n not in PRESETS]
        if bad:
            raise ConfigError(f"unknown augmentation preset(s) {bad}; choose from {sorted(PRESETS)}")
    return space


def _check_model(options: TuneOptions, input_size: int) -> None:
    """Fail before Ray starts when the model or its options are wrong: build it once."""
    from ..models import create_model, list_models
    from ..models.registry import _REGISTRY

    if options.model not in list_models():
        raise ConfigError(f"unknown model {options.model!r}; available: {', '.join(list_models())}")
    kwargs = dict(options.model_kwargs)
    if options.dropout is not None:
        params = inspect.signature(_REGISTRY[options.model]).parameters
        if "dropout" not in params:
            raise ConfigError(f"model {options.model!r} has no dropout option; drop --dropout")
        values = parse_values("dropout", options.dropout)
        kwargs["dropout"] = values[0]
    create_model(options.model, num_classes=2, input_size=input_size, **kwargs)


def train_args_for(options: TuneOptions, config: dict[str, Any]) -> "TrainArgs":
    """The :class:`TrainArgs` of one trial: ``base`` + the options + the trial's ``config``."""
    from .main import TrainArgs

    known = {f.name for f in fields(TrainArgs)}
    unknown = sorted(set(options.base) - known)
    if unknown:
        raise ConfigError(f"unknown training option(s) {unknown}")
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
            kwargs[name] = _CASTS[name](value)
    kwargs["model_kwargs"] = model_kwargs
    return TrainArgs(**kwargs)


def emotion_trial(config: dict[str, Any], splits: dict[str, Any], options: TuneOptions) -> None:
    """One Ray Tune trial: train ``epochs`` epochs, report validation metrics after each."""
    import torch
    from ray import tune

    from ..models import create_model
    from .engine import evaluate, train_one_epoch
    from .main import (LRSchedule, build_optimizer, compute_class_weights, resolve_device,
                       seed_everything)
    from .transforms import get_preset

    args = train_args_for(options, config)
    torch.set_num_threads(max(1, options.cpus_per_trial))
    device = resolve_device(args.device)
    generator = seed_everything(args.seed)
    train, val = splits["train"], splits["val"]
    model = create_model(args.model, num_classes=len(train.labels), input_size=args.input_size,
                         **args.model_kwargs).to(device)
    if args.channels_last:
        model = model.to(memory_format=torch.channels_last)
    optimizer = build_optimizer(model, args)
    schedule = LRSchedule(optimizer, args, max(1, len(train) // args.batch_size))
    weights = compute_class_weights(train, args.class_weights)
    preset = get_preset(args.augment)
    best = -1.0
    for epoch in range(args.epochs):
        stats = train_one_epoch(
            model, train, optimizer, device=device, batch_size=args.batch_size,
            input_size=args.input_size, mean=0.5, std=0.25, preset=preset,
            class_weights=weights, label_smoothing=args.label_smoothing,
            mixup_alpha=args.mixup, amp=args.amp, channels_last=args.channels_last,
            generator=generator, scheduler_step=schedule.step)
        report = evaluate(model, val, device=device, input_size=args.input_size, mean=0.5,
                          std=0.25, tta=args.eval_tta, channels_last=args.channels_last)
        schedule.epoch_end(report["accuracy"])
        best = max(best, report["accuracy"])
        tune.report({"epoch": epoch + 1, METRIC: report["accuracy"],
                     "val_macro_f1": report["macro_f1"], "val_loss": report["loss"],
                     "best_val_acc": best, "train_loss": stats.loss,
                     "train_acc": stats.accuracy, "images_per_s": stats.images_per_s})


def start_ray(num_cpus: int, num_gpus: int | None = None) -> bool:
    """Start a private local Ray instance (127.0.0.1 only, no dashboard) unless one is running;
    True when this call started it (the caller then shuts it down)."""
    import ray

    from ferbatch.distributed import init_local

    if ray.is_initialized():
        return False
    try:
        init_local(num_cpus=num_cpus, num_gpus=num_gpus)
    except Exception as exc:  # noqa: BLE001 - any start-up failure is reported plainly
        raise ConfigError(f"cannot start a local Ray instance: {exc}") from exc
    return True


def _trial_rows(results: Any, options: TuneOptions) -> list[dict[str, Any]]:
    rows = []
    for result in results:
        config = dict(result.config or {})
        row: dict[str, Any] = {"trial": Path(result.path).name if result.path else ""}
        for name in SEARCHED:
            if name in config:
                row[name] = config[name]
        frame = result.metrics_dataframe
        if frame is not None and len(frame) and METRIC in frame:
            frame = frame.reset_index(drop=True)
            best_i = int(frame[METRIC].astype(float).to_numpy().argmax())
            row.update(best_val_acc=float(frame[METRIC].iloc[best_i]),
                       best_epoch=int(frame["epoch"].iloc[best_i]),
                       last_val_acc=float(frame[METRIC].iloc[-1]),
                       val_macro_f1=float(frame["val_macro_f1"].iloc[best_i]),
                       train_loss=float(frame["train_loss"].iloc[-1]),
                       epochs=int(frame["epoch"].iloc[-1]))
        else:
            row.update(best_val_acc=float("nan"), best_epoch=0, last_val_acc=float("nan"),
                       val_macro_f1=float("nan"), train_loss=float("nan"), epochs=0)
        error = getattr(result.error, "cause", None) or result.error  # unwrap RayTaskError
        row["error"] = f"{type(error).__name__}: {error}".splitlines()[0] if error else ""
        rows.append(row)
    rows.sort(key=lambda r: (math.isnan(r["best_val_acc"]),
                             -r["best_val_acc"] if not math.isnan(r["best_val_acc"]) else 0))
    return rows


def train_command_for(options: TuneOptions, row: dict[str, Any]) -> str:
    """The ``ferbatch train`` command line that retrains a trial's configuration."""
    args = train_args_for(options, {k: row[k] for k in SEARCHED if k in row})
    parts = ["ferbatch", "train", "--data", args.data, "--out", str(Path(options.out) / "best_config"),
             "--dataset", args.dataset, "--model", args.model, "--epochs", str(args.epochs),
             "--lr", f"{args.lr:g}", "--batch-size", str(args.batch_size),
             "--weight-decay", f"{args.weight_decay:g}", "--augment", args.augment,
             "--input-size", str(args.input_size), "--seed", str(args.seed)]
    if args.ferplus:
        parts += ["--ferplus", args.ferplus, "--ferplus-mode", args.ferplus_mode]
    if args.val_data:
        parts += ["--val-data", args.val_data]
    if args.classes:
        parts += ["--classes", ",".join(args.classes)]
    for key, value in args.model_kwargs.items():
        parts += ["--model-kw", f"{key}={json.dumps(value)}"]
    return " ".join(shlex.quote(p) for p in parts)


def tune_main(options: TuneOptions) -> dict[str, Any]:
    """Run the search; write ``tune_results.csv``/``.json`` into ``options.out``; return
    ``{"best": row, "trials": rows, "train_command": ...}`` with rows sorted by val accuracy."""
    import torch

    try:
        from ray import tune
        from ray.tune.schedulers import ASHAScheduler, FIFOScheduler
        from ray.tune.search import BasicVariantGenerator
    except ImportError as exc:
        raise ConfigError("ferbatch tune needs Ray Tune: pip install 'ray[tune]'") from exc
    from .main import load_splits

    if options.samples < 1 or options.epochs < 1:
        raise ConfigError("--samples and --epochs must be at least 1")
    if options.scheduler not in ("fifo", "asha"):
        raise ConfigError(f"unknown scheduler {options.scheduler!r}; choose fifo or asha")
    space = build_param_space(options)
    probe = train_args_for(options, {})
    _check_model(options, probe.input_size)
    out = Path(options.out).resolve()
    out.mkdir(parents=True, exist_ok=True)
    splits, data_hash = load_splits(probe)
    train = splits["train"]
    if options.limit:
        train = train.subset(torch.arange(min(options.limit, len(train))))
    val = splits.get("val")
    if len(train) == 0 or val is None or len(val) == 0:
        raise ConfigError(f"{options.data}: tuning needs non-empty train and val splits")
    cuda = torch.cuda.is_available() and (probe.device == "auto" or probe.device.startswith("cuda"))
    gpus = options.gpus_per_trial if options.gpus_per_trial >= 0 else (1.0 if cuda else 0.0)
    num_cpus = options.num_cpus or os.cpu_count() or 1
    started = start_ray(num_cpus, torch.cuda.device_count() if gpus > 0 else None)
    try:
        trainable = tune.with_resources(
            tune.with_parameters(emotion_trial, splits={"train": train, "val": val}, options=options),
            {"cpu": options.cpus_per_trial, "gpu": gpus})
        scheduler = (ASHAScheduler(max_t=options.epochs, grace_period=1, reduction_factor=2)
                     if options.scheduler == "asha" else FIFOScheduler())
        tuner = tune.Tuner(
            trainable, param_space=space,
            tune_config=tune.TuneConfig(
                metric=METRIC, mode="max", num_samples=options.samples, scheduler=scheduler,
                search_alg=BasicVariantGenerator(random_state=options.seed),
                max_concurrent_trials=options.max_concurrent or None),
            run_config=tune.RunConfig(name="ray_tune", storage_path=str(out),
                                      verbose=0 if options.quiet else 1))
        results = tuner.fit()
    except FerbatchError:
        raise
    except Exception as exc:  # noqa: BLE001 - Ray wraps trial failures in its own types
        raise ConfigError(f"hyperparameter search failed: {exc}") from exc
    finally:
        if started:
            import ray

            ray.shutdown()
    rows = _trial_rows(results, options)
    if not rows or math.isnan(rows[0]["best_val_acc"]):
        errors = "; ".join(r["error"] for r in rows if r["error"])[:2000]
        raise ConfigError(f"every trial failed: {errors or 'no result reported'}")
    summary = {"best": rows[0], "trials": rows, "train_command": train_command_for(options, rows[0]),
               "data_hash": data_hash, "labels": train.labels,
               "options": {k: v for k, v in asdict(options).items()}}
    columns = ["trial", *[n for n in SEARCHED if any(n in r for r in rows)], "best_val_acc",
               "best_epoch", "last_val_acc", "val_macro_f1", "train_loss", "epochs", "error"]
    with open(out / "tune_results.csv", "w", newline="") as fh:
        writer = csv.DictWriter(fh, fieldnames=columns, extrasaction="ignore")
        writer.writeheader()
        writer.writerows(rows)
    (out / "tune_results.json").write_text(json.dumps(summary, indent=2, default=str))
    if not options.quiet:
        best = rows[0]
        print(f"best of {len(rows)} trial(s): val accuracy {best['best_val_acc']:.4f} at epoch "
              f"{best['best_epoch']} with "
              + ", ".join(f"{k}={best[k]}" for k in SEARCHED if k in best), file=sys.stdout)
        print(f"retrain: {summary['train_command']}", file=sys.stdout)
        print(f"results: {out / 'tune_results.csv'}", file=sys.stdout, flush=True)
    return summary
