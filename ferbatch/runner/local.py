"""The in-process executor, and :func:`run`, ``ferbatch.run`` of the Python API.

One process, the models loaded once (:class:`~ferbatch.pipeline.Stages`), the videos analysed
one after the other, each committed as soon as it is done. Long videos are analysed whole
(splitting pays only when several workers share a video: :mod:`ferbatch.runner.ray_pool`).
"""

from __future__ import annotations

import logging
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from ..config import RunConfig
from ..errors import FerbatchError
from ..output.location import OutputLocation
from ..output.schema import STATUS_FAILED
from ..pipeline import Stages, VideoResult, process_video
from ..progress import RunHook
from .controller import execute, log_video
from .interrupts import deferred_interrupts
from .plan import PlannedVideo, RunPlan, plan_run
from .summary import RunSummary

log = logging.getLogger(__name__)


class LocalExecutor:
    """Analyses the plan's videos in this process with one set of loaded models (no worker to
    lose: ``retried`` stays 0)."""

    retried = 0

    def __init__(self, stages: Stages | None = None) -> None:
        self.stages = stages

    def prepare(self, plan: RunPlan) -> None:
        """Load the models (and resolve ``--device``) before anything is written to the output:
        a bad device or checkpoint fails the run with the output untouched."""
        if self.stages is None and plan.todo:
            self.stages = Stages(plan.config)

    def execute(self, plan: RunPlan, todo: list[PlannedVideo],
                hook: RunHook) -> dict[str, dict[str, Any]]:
        """Analyse and commit every video of ``todo``; one bad video never stops the rest.

        Ctrl-C and SIGTERM take effect after the batch of frames being analysed (or the model
        loading, or the commit, under way): :func:`~ferbatch.runner.interrupts.deferred_interrupts`;
        a second one at once."""
        with deferred_interrupts() as check:
            self.prepare(plan)
            assert self.stages is not None
            check()

            def progress(frames: int) -> None:
                hook.on_frames(frames)
                check()

            rows: dict[str, dict[str, Any]] = {}
            for video in todo:
                hook.on_video(video.path)
                result = process_video(video.path, plan.config, self.stages, progress=progress,
                                       video_id=video.video_id)
                _commit(plan, result)
                rows[video.video_id] = result.row
                log_video(result.row)
                hook.on_done(result.row)
                check()
        return rows


def _commit(plan: RunPlan, result: VideoResult) -> None:
    """Commit one video's rows. A bug while writing them (not the output failing: that is an
    :class:`OutputError` and stops the run) fails this video alone: its row says ``failed``
    with a short message, the traceback goes to the run's log."""
    try:
        plan.store.commit(result.row, result.frames, result.faces)
    except FerbatchError:
        raise
    except Exception as exc:
        row = result.row
        log.error("%s: its rows cannot be written: %s: %s", row["path"], type(exc).__name__, exc,
                  exc_info=True)
        row.update(status=STATUS_FAILED, frames_analyzed=0, faces_detected=0, tracks=0,
                   error=f"{Path(row['path']).name}: cannot write its rows: "
                         f"{type(exc).__name__}: {exc}")
        result.frames = result.faces = None
        plan.store.commit(row, None, None)


def run(inputs: Sequence[str | os.PathLike[str]], out: str | os.PathLike[str] | OutputLocation,
        config: RunConfig | None = None, overwrite: bool = False,
        hook: RunHook | None = None, stages: Stages | None = None,
        retry_partial: bool = False) -> RunSummary:
    """Process every video under ``inputs`` into ``out`` on this machine, in this process
    (never Ray; :func:`ferbatch.run_videos` is ``ferbatch run``'s equivalent, Ray included).

    ``inputs``: video files (any extension) and folders (searched recursively for video
    extensions). ``out``: a local folder, a URI pyarrow's filesystems resolve
    (``s3://bucket/prefix``, ``gs://…``, ``file:///…``) or an
    :class:`~ferbatch.output.location.OutputLocation`. Videos already complete in ``out``
    (same file, model and settings; ``ok`` or ``partial``) are skipped unless ``overwrite``
    (redo all) or, for ``partial`` ones, ``retry_partial``. ``hook``: a
    :class:`~ferbatch.progress.RunHook` for progress displays. ``stages``: loaded models to
    reuse (their config must be ``config``'s).

    Raises :class:`~ferbatch.errors.FerbatchError` subclasses for bad options, inputs that do not
    exist or an output that cannot be written; a bad *video* never raises: its row says
    ``failed`` or ``partial`` with the reason.
    """
    config = config or (stages.config if stages is not None else RunConfig())
    plan = plan_run(inputs, out, config, overwrite=overwrite, retry_partial=retry_partial,
                    provenance=stages.provenance if stages is not None else None)
    return execute(plan, LocalExecutor(stages), hook)
