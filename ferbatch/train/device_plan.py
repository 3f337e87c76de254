"""A plan of training runs for a machine lent for minutes (a GPU with a hard time limit): stages
run one after another, the runs of a stage side by side, each run a :class:`TrainArgs` in its
own process, everything under one output folder and within one wall-clock budget.

The plan is JSON (``jobs/device_plan.json`` is the one to start from)::

    {"budget_s": 480,                      # wall clock for every stage, start-up included
     "defaults": {"epochs": 80, "lr": 0.05},   # TrainArgs fields every run starts from
     "stages": [
       {"name": "teachers", "share": 0.6, "runs": [
          {"name": "w96s0", "args": {"model_kwargs": {"width": 96}, "seed": 0}}]},
       {"name": "student", "share": 1.0, "runs": [
          {"name": "w32kd", "args": {"teacher": ["@w96s0"], "kd_alpha": 0.3}}]}]}

``@NAME`` in ``teacher`` or ``init`` is ``WORK/NAME/best.pt`` of an earlier stage (the runs
train in WORK; :func:`ferbatch.train.device_output.bring_back` copies what comes back to
OUT). A stage gets ``share`` of the budget left when it starts; with ``fit`` (:func:`fit_epochs`)
the runs' epochs are first scaled down to what a timed probe of their networks on this device
says fits, so a cosine schedule still ends where it should instead of being cut off; a run still
going at its stage's deadline is stopped (its ``best.pt`` of the epochs done stays). Nothing here imports
PyAV, Ray, click or matplotlib: the lent machine has torch, numpy and pandas only.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import math
import os
import signal
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..errors import ConfigError, FerbatchError
from .args import TrainArgs

__all__ = ["PlannedRun", "Stage", "DevicePlan", "load_plan", "fit_epochs",
           "probe_seconds_per_epoch", "run_plan"]

log = logging.getLogger(__name__)

#: what the fitted epochs leave for validation passes, teacher scoring and process start-up
FIT_SAFETY = 1.35
#: fewer epochs than this and a run is not worth starting
MIN_EPOCHS = 5


@dataclass
class PlannedRun:
    """One training run of a stage: its folder name, its :class:`TrainArgs`, and whether its
    ``best.pt`` comes back (:func:`~ferbatch.train.device_output.bring_back`)."""

    name: str
    args: TrainArgs
    bring_back: bool = False


@dataclass
class Stage:
    """Runs trained side by side, given ``share`` (0–1] of the budget left when it starts."""

    name: str
    share: float
    runs: list[PlannedRun] = field(default_factory=list)


@dataclass
class DevicePlan:
    """The whole job: ``budget_s`` seconds of wall clock for ``stages``, in order."""

    budget_s: float
    stages: list[Stage]


def _train_args(raw: dict[str, Any], where: str, data: str, out: Path,
                done: set[str]) -> TrainArgs:
    known = {f.name for f in dataclasses.fields(TrainArgs)}
    unknown = sorted(set(raw) - known)
    if unknown:
        raise ConfigError(f"{where}: unknown TrainArgs field(s) {unknown}")
    if {"data", "out"} & set(raw):
        raise ConfigError(f"{where}: 'data' and 'out' are set by the job, not the plan")

    def ref(value: str) -> str:
        if not value.startswith("@"):
            return value
        if value[1:] not in done:
            raise ConfigError(f"{where}: {value} names no run of an earlier stage "
                              f"(earlier: {sorted(done) or 'none'})")
        return str(out / value[1:] / "best.pt")

    args = dict(raw)
    if "teacher" in args and not (isinstance(args["teacher"], list)
                                  and all(isinstance(t, str) for t in args["teacher"])):
        raise ConfigError(f"{where}: 'teacher' must be a list of names or paths, "
                          f"e.g. [\"{args['teacher']}\"]" if isinstance(args["teacher"], str)
                          else f"{where}: 'teacher' must be a list of names or paths")
    if "teacher" in args:
        args["teacher"] = [ref(t) for t in args["teacher"]]
    if args.get("init"):
        args["init"] = ref(args["init"])
    return TrainArgs(data=data, out="", **args)


def load_plan(path: str | Path, data: str, out: str | Path) -> DevicePlan:
    """Read and check a plan file: every run named once, every field a :class:`TrainArgs`
    field, every ``@NAME`` an earlier stage's run; ``data`` and each run's ``out``
    (``out/NAME``) are filled in; without any ``"bring_back": true`` the last stage's runs
    come back. Raises :class:`ConfigError` naming the file and the fault."""
    file, out = Path(path), Path(out)
    try:
        raw = json.loads(file.read_text())
    except (OSError, ValueError) as exc:
        raise ConfigError(f"{file}: cannot read the plan: {exc}") from exc
    if not isinstance(raw, dict) or not isinstance(raw.get("stages"), list) or not raw["stages"]:
        raise ConfigError(f"{file}: a plan is an object with a non-empty 'stages' list")
    budget = raw.get("budget_s")
    if not isinstance(budget, (int, float)) or budget <= 0:
        raise ConfigError(f"{file}: 'budget_s' must be a positive number of seconds")
    defaults = raw.get("defaults", {})
    done: set[str] = set()
    stages: list[Stage] = []
    for i, st in enumerate(raw["stages"]):
        where = f"{file}: stage {st.get('name', i + 1) if isinstance(st, dict) else i + 1}"
        if not isinstance(st, dict) or not isinstance(st.get("runs"), list) or not st["runs"]:
            raise ConfigError(f"{where}: a stage is an object with a non-empty 'runs' list")
        share = st.get("share", 1.0)
        if not isinstance(share, (int, float)) or not 0 < share <= 1:
            raise ConfigError(f"{where}: 'share' must be in (0, 1]")
        stage = Stage(str(st.get("name", f"stage{i + 1}")), float(share))
        for run in st["runs"]:
            name = run.get("name") if isinstance(run, dict) else None
            if not isinstance(name, str) or not name or "/" in name or name.startswith("."):
                raise ConfigError(f"{where}: every run needs a plain 'name' (a folder name)")
            if name in done or any(r.name == name for r in stage.runs):
                raise ConfigError(f"{where}: run name {name!r} is used twice")
            args = _train_args({**defaults, **run.get("args", {})}, f"{where}, run {name}",
                               data, out, done)
            back = run.get("bring_back", False)
            if not isinstance(back, bool):
                raise ConfigError(f"{where}, run {name}: 'bring_back' must be true or false")
            stage.runs.append(PlannedRun(name, dataclasses.replace(args, out=str(out / name)),
                                         back))
        done |= {r.name for r in stage.runs}
        stages.append(stage)
    if not any(r.bring_back for st in stages for r in st.runs):  # default: the last stage's
        for r in stages[-1].runs:
            r.bring_back = True
    return DevicePlan(float(budget), stages)


def probe_seconds_per_epoch(args: TrainArgs, train_size: int, device: Any,
                            steps: int = 20, warmup: int = 5) -> float:
    """Seconds one epoch of ``args``' network takes on ``device``: training steps (forward,
    backward, SGD, under the run's autocast) on random batches of ``args.batch_size`` ×
    ``args.input_size``², ``warmup`` untimed, then ``steps`` timed in three windows of which
    the fastest counts, times the ``train_size // batch_size`` steps of an epoch. Excludes
    augmentation and validation."""
    import torch

    from ..devices import gradient_scaler, training_autocast
    from ..models import create_model

    model = create_model(args.model, num_classes=len(args.classes or []) or 7,
                         input_size=args.input_size, **args.model_kwargs).to(device)
    if args.channels_last:
        model = model.to(memory_format=torch.channels_last)
    opt = torch.optim.SGD(model.parameters(), lr=1e-3, momentum=0.9)
    scaler = gradient_scaler(device, args.amp)
    x = torch.randn(args.batch_size, 1, args.input_size, args.input_size, device=device)
    if args.channels_last:
        x = x.contiguous(memory_format=torch.channels_last)
    y = torch.randint(0, len(args.classes or []) or 7, (args.batch_size,), device=device)

    def step() -> None:
        with training_autocast(device, args.amp):
            loss = torch.nn.functional.cross_entropy(model(x).float(), y)
        opt.zero_grad(set_to_none=True)
        scaler.scale(loss).backward()
        scaler.step(opt)
        scaler.update()

    def sync() -> None:
        if device.type == "cuda":
            torch.cuda.synchronize(device)

    for _ in range(warmup):
        step()
    sync()
    windows = []  # the fastest of three windows: a one-off stall (a first kernel's set-up,
    for _ in range(3):  # another process) does not inflate the estimate
        start = time.perf_counter()
        for _ in range(max(steps // 3, 1)):
            step()
        sync()
        windows.append((time.perf_counter() - start) / max(steps // 3, 1))
    per_step = min(windows)
    return per_step * max(train_size // args.batch_size, 1)


def fit_epochs(stage: Stage, seconds_per_epoch: dict[str, float],
               budget_s: float) -> dict[str, int]:
    """Epochs per run so that the stage fits ``budget_s``: the runs share one device, so the
    stage takes about the sum of its runs' times (× :data:`FIT_SAFETY`); every run's planned
    epochs are scaled by the same factor (≤ 1, never up), at least :data:`MIN_EPOCHS` (or the
    planned epochs, when fewer).
    Raises :class:`ConfigError` when even that does not fit."""
    need = sum(r.args.epochs * seconds_per_epoch[r.name] for r in stage.runs) * FIT_SAFETY
    scale = min(1.0, budget_s / need) if need > 0 else 1.0
    fitted = {r.name: min(r.args.epochs, max(MIN_EPOCHS, math.floor(r.args.epochs * scale)))
              for r in stage.runs}
    floor_need = sum(fitted[r.name] * seconds_per_epoch[r.name] for r in stage.runs) * FIT_SAFETY
    if floor_need > budget_s * 1.001:
        raise ConfigError(f"even {MIN_EPOCHS} epochs per run need ~{floor_need:.0f} s, more "
                          f"than the stage's {budget_s:.0f} s")
    return fitted


def _launch(run: PlannedRun, threads: int) -> subprocess.Popen[bytes]:
    folder = Path(run.args.out)
    folder.mkdir(parents=True, exist_ok=True)
    spec = folder / "args.json"
    spec.write_text(json.dumps(run.args.to_dict(), indent=2))
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(
        [str(Path(__file__).resolve().parents[2]), os.environ.get("PYTHONPATH", "")])}
    with open(folder / "train.log", "ab") as logfile:
        return subprocess.Popen([sys.executable, "-m", "ferbatch.train.device_plan", str(spec),
                                 str(threads)], stdout=logfile, stderr=subprocess.STDOUT,
                                env=env, start_new_session=True)


def _stop(proc: subprocess.Popen[bytes], grace_s: float = 15.0) -> None:
    """SIGINT (the trainer stops at once, keeping best.pt and last.pt), then SIGKILL."""
    for sig, wait in ((signal.SIGINT, grace_s), (signal.SIGKILL, 5.0)):
        if proc.poll() is not None:
            return
        os.killpg(proc.pid, sig)
        try:
            proc.wait(wait)
        except subprocess.TimeoutExpired:
            continue


def _result(run: PlannedRun, rc: int | None, seconds: float, stopped: bool) -> dict[str, Any]:
    folder = Path(run.args.out)
    out: dict[str, Any] = {"name": run.name, "rc": rc, "seconds": round(seconds, 1),
                           "stopped_at_deadline": stopped, "epochs_planned": run.args.epochs,
                           "args": run.args.to_dict()}
    history = folder / "history.jsonl"
    if history.is_file():
        rows = [json.loads(line) for line in history.read_text().splitlines() if line.strip()]
        out["epochs_run"] = len(rows)
        if rows:
            out["mean_images_per_s"] = sum(h["images_per_s"] for h in rows) / len(rows)
        scored = [h for h in rows if isinstance(h.get("val_acc"), (int, float))
                  and h["val_acc"] == h["val_acc"]]  # not NaN: a run without a val split
        if scored:
            best = max(scored, key=lambda h: h["val_acc"])
            out["best_val_acc"], out["best_epoch"] = best["val_acc"], best["epoch"]
    return out


def run_plan(plan: DevicePlan, out: str | Path, *, fit: bool = True, device: Any = None,
             cores: int | None = None) -> dict[str, Any]:
    """Run ``plan``'s stages in order, each stage's runs side by side in their own processes
    (``cores`` torch threads shared among them), into ``out/NAME``; write and return the
    summary (``out/device_plan.json``: per run its return code, seconds, epochs, best
    validation accuracy and speed; per stage its budget and fitted epochs). ``fit``: scale the
    epochs to the stage's budget first (:func:`fit_epochs`, probing on ``device``). A stage
    whose runs did not all finish still lets the next one start when its ``@`` references
    exist; one that cannot be fitted or probed (its data unreadable, too little time left) is
    recorded with its ``error`` and skipped, and the job goes on."""
    import torch

    from ..devices import resolve_device
    from .data import FaceData
    from .main import load_splits

    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    deadline = time.monotonic() + plan.budget_s
    cores = cores or os.cpu_count() or 1
    summary: dict[str, Any] = {"budget_s": plan.budget_s, "torch": torch.__version__,
                               "cuda": torch.cuda.get_device_name(0) if torch.cuda.is_available()
                               else None, "stages": []}
    train_size: dict[str, int] = {}
    for stage in plan.stages:
        budget = max(0.0, deadline - time.monotonic()) * stage.share
        record: dict[str, Any] = {"name": stage.name, "budget_s": round(budget, 1), "runs": []}
        summary["stages"].append(record)
        if fit:
            try:
                per_epoch = {}
                for run in stage.runs:
                    key = f"{run.args.data}|{run.args.dataset}|{run.args.classes}|{run.args.limit}"
                    if key not in train_size:
                        train: FaceData = load_splits(run.args)[0]["train"]
                        n = len(train)
                        train_size[key] = min(n, run.args.limit) if run.args.limit else n
                    dev = device or resolve_device(run.args.device)
                    per_epoch[run.name] = probe_seconds_per_epoch(run.args, train_size[key], dev)
                if torch.cuda.is_available():  # the runs, not the probes, need the memory
                    torch.cuda.empty_cache()
                fitted = fit_epochs(stage, per_epoch, budget)
            except FerbatchError as exc:  # this stage cannot run; what came before still counts
                record["error"] = str(exc).splitlines()[0]
                log.error("stage %s not run: %s", stage.name, record["error"])
                (out / "device_plan.json").write_text(json.dumps(summary, indent=2))
                continue
            record["probe_seconds_per_epoch"] = {k: round(v, 3) for k, v in per_epoch.items()}
            record["fitted_epochs"] = fitted
            stage.runs = [dataclasses.replace(r, args=dataclasses.replace(
                r.args, epochs=fitted[r.name])) for r in stage.runs]
        stage_deadline = time.monotonic() + budget
        threads = max(1, cores // len(stage.runs))
        started = time.monotonic()
        procs = [(run, _launch(run, threads)) for run in stage.runs]
        log.info("stage %s: %d run(s), %.0f s", stage.name, len(procs), budget)
        for run, proc in procs:
            stopped = False
            try:
                proc.wait(max(0.0, stage_deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                stopped = True
                log.warning("stage %s: run %s still going at its deadline: stopped",
                            stage.name, run.name)
                _stop(proc)
            record["runs"].append(_result(run, proc.returncode, time.monotonic() - started,
                                          stopped))
        (out / "device_plan.json").write_text(json.dumps(summary, indent=2))
    return summary


def _run_one(spec: str, threads: str) -> int:
    """A planned run's process: train with the TrainArgs stored in ``spec`` (JSON)."""
    from .main import main

    # SIGINT is how run_plan stops a run at its deadline: take it even when this job was started
    # with SIGINT ignored (in the background, under nohup), which children inherit
    signal.signal(signal.SIGINT, signal.default_int_handler)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s: %(message)s")
    args = TrainArgs(**json.loads(Path(spec).read_text()))
    args = dataclasses.replace(args, threads=int(threads))
    try:
        main(args)
    except FerbatchError as exc:
        log.error("%s", exc)
        return 1
    except KeyboardInterrupt:
        log.warning("stopped (SIGINT); best.pt and last.pt hold the epochs done")
        return 130
    return 0


if __name__ == "__main__":
    sys.exit(_run_one(*sys.argv[1:3]))
