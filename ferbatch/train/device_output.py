"""What comes back from a lent machine: a device plan's results packed into the device tool's
limits (:func:`bring_back`), so one call's work survives the machine going back.

Nothing here imports PyAV, Ray, click or matplotlib (the lent machine has torch, numpy and
pandas only).
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any

from .device_plan import DevicePlan

__all__ = ["MAX_FILES", "MAX_FILE_BYTES", "RUN_TEXTS", "bring_back"]

#: what the device tool brings back from $OUT: files, bytes per file
MAX_FILES, MAX_FILE_BYTES = 8, 16 * 2**20
#: the small files of a run folder that :func:`bring_back` packs into one archive
RUN_TEXTS = ("train.log", "history.jsonl", "config.json", "metrics.json", "args.json")


def bring_back(summary: dict[str, Any], plan: DevicePlan, work: str | Path,
               dest: str | Path) -> list[Path]:
    """Put what comes back from a lent machine into ``dest`` in at most :data:`MAX_FILES`
    files of at most :data:`MAX_FILE_BYTES` each (the device tool's limits): ``runs.tar.xz``
    (every run's :data:`RUN_TEXTS`), ``NAME.pt`` (the ``best.pt`` of each run marked
    ``bring_back``, while files are left and it is small enough; what is not is listed under
    ``not_brought_back``), and ``device_plan.json`` (``summary``, written last). Returns the
    files written."""
    import tarfile

    work, dest = Path(work), Path(dest)
    dest.mkdir(parents=True, exist_ok=True)
    written = [dest / "runs.tar.xz"]
    with tarfile.open(written[0], "w:xz") as tar:
        for stage in plan.stages:
            for run in stage.runs:
                for name in RUN_TEXTS:
                    file = work / run.name / name
                    if file.is_file():
                        tar.add(file, arcname=f"{run.name}/{name}")
    skipped: dict[str, str] = {}
    for run in (r for st in plan.stages for r in st.runs if r.bring_back):
        best = work / run.name / "best.pt"
        if not best.is_file():
            skipped[run.name] = "no best.pt"
        elif best.stat().st_size > MAX_FILE_BYTES:
            skipped[run.name] = f"best.pt is {best.stat().st_size / 2**20:.1f} MiB"
        elif len(written) >= MAX_FILES - 1:
            skipped[run.name] = f"more than {MAX_FILES} files"
        else:
            target = dest / f"{run.name}.pt"
            if best.resolve() != target.resolve():
                shutil.copyfile(best, target)
            written.append(target)
    summary = {**summary, "brought_back": [p.name for p in written[1:]],
               "not_brought_back": skipped}
    written.append(dest / "device_plan.json")
    written[-1].write_text(json.dumps(summary, indent=2))
    return written
