"""The run's bookkeeping, once for both executors: prepare the output, execute the plan, finish.

:func:`execute` takes a :class:`~ferbatch.runner.plan.RunPlan` and an :class:`Executor`
(:class:`~ferbatch.runner.local.LocalExecutor` or :class:`~ferbatch.runner.ray_pool.RayExecutor`):
it writes the manifest (another label set only with ``overwrite`` and every video of the
output among the inputs: :mod:`ferbatch.output.labelset`), settles what killed runs left, reports and
keeps the skipped rows, commits the plan's failed rows, lets the executor analyse and commit the
rest, rebuilds ``videos.parquet`` and returns the :class:`RunSummary`. :func:`run_videos` is
what ``ferbatch run`` and the Ray job call: plan, choose the executor, execute.
"""

from __future__ import annotations

import logging
import os
import time
from collections.abc import Sequence
from typing import Any, Protocol

from .. import __version__
from ..config import PoolConfig, RunConfig
from ..errors import FerbatchError
from ..logs import run_log
from ..output.layout import readable
from ..output.location import OutputLocation
from ..output.lock import output_lock
from ..progress import RunHook
from .plan import Action, PlannedVideo, RunPlan, describe, describe_left_out, plan_run
from .summary import RunSummary

log = logging.getLogger(__name__)


class Executor(Protocol):
    """Analyses and commits the videos of a plan; returns each one's row by ``video_id``.
    ``retried``: videos or segments its last :meth:`execute` retried after their worker or
    its node was lost (Ray; 0 in-process)."""

    retried: int

    def execute(self, plan: RunPlan, todo: list[PlannedVideo],
                hook: RunHook) -> dict[str, dict[str, Any]]: ...


def execute(plan: RunPlan, executor: Executor, hook: RunHook | None = None) -> RunSummary:
    """Run ``plan`` with ``executor`` (see the module doc), holding the output's lock
    (:mod:`ferbatch.output.lock`) from the manifest to ``videos.parquet``. Raises
    :class:`OutputError` when the output cannot be written
    (:class:`~ferbatch.output.lock.OutputBusyError`: another run is writing it),
    :class:`ConfigError` for an executor that cannot start."""
    prepare = getattr(executor, "prepare", None)
    if prepare is not None:  # e.g. load the models: fail before the output is touched
        prepare(plan)
    with output_lock(plan.location):  # one run at a time: recover() then only sees dead runs' debris
        plan.store.write_manifest(plan.provenance.labels, plan.provenance.model,
                                  overwrite=plan.overwrite, redo={v.video_id for v in plan.videos})
        return _logged(plan, executor, hook)


def _logged(plan: RunPlan, executor: Executor, hook: RunHook | None) -> RunSummary:
    with run_log(plan.location) as log_path:
        log.info("ferbatch %s into %s (log %s); plan: %s; executor: %s", __version__,
                 plan.location, log_path, describe(plan), type(executor).__name__)
        log.debug("settings: %s; model %s", plan.config.to_dict(), plan.provenance.model)
        try:
            return _execute(plan, executor, hook or RunHook())
        except FerbatchError as exc:
            log.warning("run stopped: %s", exc)
            _keep_committed(plan)
            raise
        except BaseException as exc:
            if isinstance(exc, Exception):
                log.error("run stopped by an unexpected error", exc_info=True)
                raise
            # Ctrl-C, SIGTERM (the CLI's Terminated): videos.parquet shows what was committed
            # INFO: the CLI prints its own one line for Ctrl-C / SIGTERM; the run log keeps this
            log.info("run interrupted; committed videos are kept, the rest is redone next time")
            _keep_committed(plan)
            raise


def _keep_committed(plan: RunPlan) -> None:
    """Rebuild ``videos.parquet`` from the rows committed so far (a run that stopped early:
    interrupted, or Ray could not start), so it shows them; redone or added to next time."""
    try:
        plan.store.write_videos_table()
    except FerbatchError as error:
        log.warning("%s", error)


def _execute(plan: RunPlan, executor: Executor, hook: RunHook) -> RunSummary:
    started = time.perf_counter()
    store = plan.store
    store.recover()
    summary = RunSummary(out=plan.location.public,
                         ignored=[(readable(str(i.path)), i.reason) for i in plan.ignored])
    if plan.ignored:
        log.info("%s", describe_left_out(plan.ignored))
    hook.on_start(len(plan.videos))
    rows: dict[str, dict[str, Any]] = {}
    for video in plan.videos:
        if video.action is Action.SKIP:
            assert video.row is not None
            rows[video.video_id] = video.row
            summary.skipped.append(readable(str(video.path)))
            log.info("already done: %s", video.row["path"])
            hook.on_skip(video.row)
        elif video.action is Action.FAIL:
            assert video.row is not None
            log.info("%s", video.row["error"])  # shown by the progress display and the summary
            store.commit(video.row, None, None)
            rows[video.video_id] = video.row
            hook.on_done(video.row)
    todo = plan.todo
    if todo:
        done = executor.execute(plan, todo, hook)
        for video in todo:
            row = done[video.video_id]
            rows[video.video_id] = row
            summary.frames += int(row.get("frames_analyzed") or 0)
        summary.retried = executor.retried
    summary.rows = [rows[v.video_id] for v in plan.videos]
    store.write_videos_table()
    summary.seconds = time.perf_counter() - started
    log.info("run finished in %.1f s: %d video(s), %d failed, %d frames%s", summary.seconds,
             len(summary.rows), len(summary.failed), summary.frames,
             f"; {summary.retried_text}" if summary.retried else "")
    return summary


def wants_ray(plan: RunPlan, use_ray: bool | None, address: str | None) -> bool:
    """``use_ray`` decides when set; unset: Ray for a cluster address (or ``$RAY_ADDRESS``),
    more than one video to analyse, or one long enough to split into segments on a multi-core
    machine. Any other single video runs in-process: a local Ray start costs seconds that one
    worker cannot win back."""
    if use_ray is not None:
        return use_ray
    if address or os.environ.get("RAY_ADDRESS"):
        return True
    todo = plan.todo
    if len(todo) > 1:
        return True
    return len(todo) == 1 and (os.cpu_count() or 1) > 1 and plan.splittable(todo[0])


def run_videos(inputs: Sequence[str | os.PathLike[str]], out: str | os.PathLike[str] | OutputLocation,
               config: RunConfig | None = None, *, overwrite: bool = False,
               pool: PoolConfig | None = None, use_ray: bool | None = None,
               hook: RunHook | None = None, retry_partial: bool = False) -> RunSummary:
    """Plan a run and execute it in-process or on Ray (:func:`wants_ray`), as ``ferbatch run``
    does: the Python API's equivalent of the command, every option included.

    ``inputs``, ``out``, ``config``, ``overwrite``, ``hook``: as :func:`ferbatch.run`;
    ``retry_partial``: redo ``partial`` videos too (``--retry-partial``); ``pool``: the Ray
    pool's settings (``--workers``, ``--address``…; also its ``segment_s`` for the plan);
    ``use_ray``: ``True``/``False`` force Ray or in-process (``--ray``/``--local``), ``None``
    decides as :func:`wants_ray`.
    """
    pool = (pool or PoolConfig()).validate()
    plan = plan_run(inputs, out, config, overwrite=overwrite, segment_s=pool.segment_s,
                    retry_partial=retry_partial)
    if wants_ray(plan, use_ray, pool.address):
        from .ray_pool import RayExecutor

        executor: Executor = RayExecutor(pool)
    else:
        from .local import LocalExecutor

        executor = LocalExecutor()
    return execute(plan, executor, hook)


def log_video(row: dict[str, Any]) -> None:
    """One line in the run's log per finished video, whichever executor ran it."""
    log.info("%s %s: %s frames, %s faces, %.1f s%s", row["status"], row["path"],
             row.get("frames_analyzed"), row.get("faces_detected"), row.get("processing_s") or 0.0,
             f" ({row['error']})" if row.get("error") else "")
