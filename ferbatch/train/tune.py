"""``ferbatch tune``: hyperparameter search with Ray Tune over the training loop.

What is searched and the default search spaces are described in :mod:`.tune_space`: random
search draws learning rate (log-uniform), weight decay (log-uniform), dropout (uniform, for
models that have it), batch size and augmentation strength from real ranges unless told
otherwise; grid search tries every combination of the listed values. The trial
configurations are drawn up front (:func:`~.tune_space.draw_trials`, seeded) and Ray runs
them. The data are loaded once in the driver and shared with the trials through Ray's object
store. Each trial is set up by the same :func:`~ferbatch.train.build.build_training` /
:func:`~ferbatch.train.build.run_epoch` as ``ferbatch train`` and reports validation accuracy
every epoch; trials write no checkpoints — retrain the best configuration with the printed
``ferbatch train`` command. Results go to ``OUT/tune_results.csv`` and
``OUT/tune_results.json``, best first.
"""

from __future__ import annotations

import csv
import inspect
import io
import json
import logging
import math
import os
import shlex
from dataclasses import asdict
from pathlib import Path
from typing import Any

from ..errors import ConfigError, FerbatchError, TrainError
from ..output.atomic import atomic_write_text
from .args import command_line
from .tune_space import METRIC, SCHEDULERS, SEARCHED, TuneOptions, draw_trials, search_space, train_args_for

log = logging.getLogger(__name__)

RESULT_COLUMNS = ["best_val_acc", "best_epoch", "last_val_acc", "val_macro_f1", "train_loss",
                  "epochs", "error"]


def model_has_dropout(model: str) -> bool:
    """Whether the registered builder ``model`` takes a ``dropout`` option."""
    from ..models import model_entrypoint

    return "dropout" in inspect.signature(model_entrypoint(model)).parameters


def _check_model(options: TuneOptions, input_size: int, space: dict[str, Any]) -> None:
    """Fail before Ray starts when the model or its options are wrong: build it once."""
    from ..models import create_model

    kwargs = dict(options.model_kwargs)
    if "dropout" in space:
        kwargs["dropout"] = space["dropout"][0]  # first listed value, or the range's low end
    create_model(options.model, num_classes=2, input_size=input_size, **kwargs)


def emotion_trial(config: dict[str, Any], splits: dict[str, Any], options: TuneOptions,
                  trials: list[dict[str, Any]]) -> None:
    """One Ray Tune trial (``config["trial"]`` indexes ``trials``): train ``epochs`` epochs
    with the shared setup, report validation metrics after each."""
    import torch
    from ray import tune

    from .build import build_training, run_epoch

    args = train_args_for(options, trials[config["trial"]])
    torch.set_num_threads(max(1, options.cpus_per_trial))
    train, val = splits["train"], splits["val"]
    run = build_training(args, train)
    best = -1.0
    for epoch in range(args.epochs):
        record = run_epoch(run, train, val, epoch + 1, tta=args.eval_tta)
        best = max(best, record["val_acc"])
        tune.report({"epoch": epoch + 1, METRIC: record["val_acc"],
                     "val_macro_f1": record["val_macro_f1"], "val_loss": record["val_loss"],
                     "best_val_acc": best, "train_loss": record["train_loss"],
                     "train_acc": record["train_acc"], "images_per_s": record["images_per_s"]})


def start_ray(num_cpus: int, num_gpus: int | None = None) -> bool:
    """Start a private local Ray instance (127.0.0.1 only, no dashboard) unless one is running;
    True when this call started it (the caller then shuts it down). Raises :class:`TrainError`
    when Ray cannot start."""
    import ray

    from ..runner.ray_setup import init_local

    if ray.is_initialized():
        return False
    try:
        init_local(num_cpus=num_cpus, num_gpus=num_gpus)
    except Exception as exc:  # noqa: BLE001 - any start-up failure is reported plainly
        raise TrainError(f"cannot start a local Ray instance: {exc}") from exc
    return True


def _curve_summary(frame: Any) -> dict[str, Any]:
    if frame is None or not len(frame) or METRIC not in frame:
        return {"best_val_acc": float("nan"), "best_epoch": 0, "last_val_acc": float("nan"),
                "val_macro_f1": float("nan"), "train_loss": float("nan"), "epochs": 0}
    frame = frame.reset_index(drop=True)
    best_i = int(frame[METRIC].astype(float).to_numpy().argmax())
    return {"best_val_acc": float(frame[METRIC].iloc[best_i]),
            "best_epoch": int(frame["epoch"].iloc[best_i]),
            "last_val_acc": float(frame[METRIC].iloc[-1]),
            "val_macro_f1": float(frame["val_macro_f1"].iloc[best_i]),
            "train_loss": float(frame["train_loss"].iloc[-1]),
            "epochs": int(frame["epoch"].iloc[-1])}


def trial_rows(results: Any, trials: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """One row per Ray result (trial name, its configuration, best/last validation figures,
    error), sorted by best validation accuracy, failed trials last."""
    rows = []
    for result in results:
        row: dict[str, Any] = {"trial": Path(result.path).name if result.path else ""}
        index = (result.config or {}).get("trial")
        row.update(trials[index] if index is not None else {})
        row.update(_curve_summary(result.metrics_dataframe))
        error = getattr(result.error, "cause", None) or result.error  # unwrap RayTaskError
        row["error"] = f"{type(error).__name__}: {error}".splitlines()[0] if error else ""
        rows.append(row)
    rows.sort(key=lambda r: (math.isnan(r["best_val_acc"]),
                             -r["best_val_acc"] if not math.isnan(r["best_val_acc"]) else 0))
    return rows


def train_command_for(options: TuneOptions, row: dict[str, Any]) -> str:
    """The ``ferbatch train`` command line that retrains a trial's configuration."""
    args = train_args_for(options, {k: row[k] for k in SEARCHED if k in row})
    parts = command_line(args, str(Path(options.out) / "best_config"))
    return " ".join(shlex.quote(p) for p in parts)


def _load_data(options: TuneOptions, probe: Any) -> tuple[dict[str, Any], str, list[str]]:
    import torch

    from .main import load_splits

    splits, data_hash = load_splits(probe)
    train = splits["train"]
    if options.limit:
        train = train.subset(torch.arange(min(options.limit, len(train))))
    val = splits.get("val")
    if len(train) == 0 or val is None or len(val) == 0:
        raise ConfigError(f"{options.data}: tuning needs non-empty train and val splits")
    return {"train": train, "val": val}, data_hash, train.labels


def _fit(options: TuneOptions, splits: dict[str, Any], trials: list[dict[str, Any]],
         out: Path, device: str) -> Any:
    """Run every trial on Ray; Ray's own failures become :class:`TrainError`."""
    import torch
    from ray import tune
    from ray.tune.schedulers import ASHAScheduler, FIFOScheduler

    cuda = torch.cuda.is_available() and (device == "auto" or device.startswith("cuda"))
    gpus = options.gpus_per_trial if options.gpus_per_trial >= 0 else (1.0 if cuda else 0.0)
    started = start_ray(options.num_cpus or os.cpu_count() or 1,
                        torch.cuda.device_count() if gpus > 0 else None)
    try:
        trainable = tune.with_resources(
            tune.with_parameters(emotion_trial, splits=splits, options=options, trials=trials),
            {"cpu": options.cpus_per_trial, "gpu": gpus})
        scheduler = (ASHAScheduler(max_t=options.epochs, grace_period=1, reduction_factor=2)
                     if options.scheduler == "asha" else FIFOScheduler())
        tuner = tune.Tuner(
            trainable, param_space={"trial": tune.grid_search(list(range(len(trials))))},
            tune_config=tune.TuneConfig(metric=METRIC, mode="max", num_samples=1,
                                        scheduler=scheduler,
                                        max_concurrent_trials=options.max_concurrent or None),
            run_config=tune.RunConfig(name="ray_tune", storage_path=str(out),
                                      verbose=0 if options.quiet else 1))
        return tuner.fit()
    except FerbatchError:
        raise
    except Exception as exc:  # noqa: BLE001 - Ray wraps trial failures in its own types
        raise TrainError(f"hyperparameter search failed: {exc}") from exc
    finally:
        if started:
            import ray

            ray.shutdown()


def _write_results(out: Path, rows: list[dict[str, Any]], summary: dict[str, Any]) -> None:
    columns = ["trial", *[n for n in SEARCHED if any(n in r for r in rows)], *RESULT_COLUMNS]
    buf = io.StringIO(newline="")
    writer = csv.DictWriter(buf, fieldnames=columns, extrasaction="ignore")
    writer.writeheader()
    writer.writerows(rows)
    atomic_write_text(out / "tune_results.csv", buf.getvalue())
    atomic_write_text(out / "tune_results.json", json.dumps(summary, indent=2, default=str))


def tune_main(options: TuneOptions) -> dict[str, Any]:
    """Run the search; write ``tune_results.csv``/``.json`` into ``options.out``; return
    ``{"best": row, "trials": rows, "train_command": ...}`` with rows sorted by val accuracy.

    Raises :class:`ConfigError` for bad options or missing Ray Tune, :class:`DataError` for
    bad data and :class:`TrainError` when the search breaks or every trial fails.
    """
    try:
        import ray.tune  # noqa: F401
    except ImportError as exc:
        raise ConfigError("ferbatch tune needs Ray Tune: pip install 'ray[tune]'") from exc
    if options.epochs < 1:
        raise ConfigError("--epochs must be at least 1")
    if options.scheduler not in SCHEDULERS:
        raise ConfigError(f"unknown scheduler {options.scheduler!r}; choose fifo or asha")
    probe = train_args_for(options, {})
    space = search_space(options, model_has_dropout(options.model))
    trials = draw_trials(options, space)
    _check_model(options, probe.input_size, space)
    out = Path(options.out).resolve()
    out.mkdir(parents=True, exist_ok=True)
    splits, data_hash, labels = _load_data(options, probe)
    log.info("tune: %d trial(s) over %s", len(trials), ", ".join(space) or "nothing")
    rows = trial_rows(_fit(options, splits, trials, out, probe.device), trials)
    if not rows or math.isnan(rows[0]["best_val_acc"]):
        errors = "; ".join(r["error"] for r in rows if r["error"])[:2000]
        raise TrainError(f"every trial failed: {errors or 'no result reported'}")
    summary = {"best": rows[0], "trials": rows,
               "train_command": train_command_for(options, rows[0]), "data_hash": data_hash,
               "labels": labels, "options": asdict(options)}
    _write_results(out, rows, summary)
    return summary
