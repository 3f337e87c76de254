"""Local batch controller: find videos, skip finished ones, process the rest, summarise.

Composes :mod:`ferbatch.pipeline` (per video) and :mod:`ferbatch.write` (per commit); owns no
image logic. One bad video never stops the batch: its row says ``failed`` with the reason.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .config import VIDEO_EXTENSIONS, RunConfig
from .errors import ConfigError
from .pipeline import Stages, VideoResult, process_video, video_id_for
from .schema import STATUS_FAILED, STATUS_OK
from .write import OutputLocation, OutputStore, output_label


def discover_videos(inputs: Sequence[str | os.PathLike[str]]) -> list[Path]:
    """Files given directly, plus video files found recursively in given folders.

    Files named explicitly are kept whatever their extension (the user asked for them); in
    folders only known video extensions are picked up. Order is stable; duplicates removed.
    """
    found: list[Path] = []
    seen: set[Path] = set()
    for item in inputs:
        path = Path(item)
        if path.is_dir():
            candidates: Iterable[Path] = sorted(
                p for p in path.rglob("*")
                if p.is_file() and p.suffix.lower() in VIDEO_EXTENSIONS
                and not any(part.startswith(".") for part in p.relative_to(path).parts))
        elif path.exists() or path.is_symlink():
            candidates = [path]
        else:
            raise ConfigError(f"input not found: {path}")
        for candidate in candidates:
            key = candidate.resolve()
            if key not in seen:
                seen.add(key)
                found.append(candidate)
    return found


def is_complete(row: dict[str, Any] | None, path: Path, fingerprint: str) -> bool:
    """True when ``row`` records this very file (size, mtime) done with the same settings."""
    if row is None or row.get("status") == STATUS_FAILED:
        return False
    try:
        st = path.stat()
    except OSError:
        return False
    return (row.get("settings_fingerprint") == fingerprint and row.get("file_size") == st.st_size
            and row.get("file_mtime_ns") == st.st_mtime_ns)


@dataclass
class RunSummary:
    """What a run did: rows of every input video plus counts."""

    out: Path | str  # a Path for a local folder, else the URI
    rows: list[dict[str, Any]] = field(default_factory=list)
    skipped: list[str] = field(default_factory=list)
    seconds: float = 0.0
    frames: int = 0

    @property
    def failed(self) -> list[dict[str, Any]]:
        return [r for r in self.rows if r["status"] == STATUS_FAILED]

    @property
    def all_ok(self) -> bool:
        return all(r["status"] == STATUS_OK for r in self.rows)


ProgressHook = Callable[[str, Any], None]


def run(inputs: Sequence[str | os.PathLike[str]], out: str | os.PathLike[str] | OutputLocation,
        config: RunConfig | None = None, overwrite: bool = False,
        hook: ProgressHook | None = None, stages: Stages | None = None) -> RunSummary:
    """Process every video under ``inputs`` into ``out`` on this machine.

    ``out``: a local folder, a URI pyarrow's filesystems resolve (``s3://bucket/prefix``,
    ``gs://…``, ``file:///…``) or an :class:`~ferbatch.write.OutputLocation`.

    ``hook(event, payload)`` receives ``("start", n_videos)``, ``("video", path)``,
    ``("frames", n)``, ``("skip", row)`` and ``("done", VideoResult)`` for progress displays.
    """
    config = (config or RunConfig()).validate()
    started = time.perf_counter()
    videos = discover_videos(inputs)
    store = OutputStore(out)  # a bad URI fails here, before the models load
    stages = stages or Stages(config)
    store.prepare(stages.labels, stages.classifier.name, overwrite=overwrite)
    store.clean_temp()
    summary = RunSummary(out=output_label(store.location))
    emit = hook or (lambda event, payload: None)
    emit("start", len(videos))
    for path in videos:
        vid = video_id_for(path)
        old = store.read_status(vid)
        if not overwrite and is_complete(old, path, stages.fingerprint):
            assert old is not None
            summary.rows.append(old)
            summary.skipped.append(str(path))
            emit("skip", old)
            continue
        emit("video", path)
        result: VideoResult = process_video(path, config, stages,
                                            progress=lambda n: emit("frames", n))
        store.commit(result.row, result.frames, result.faces)
        summary.rows.append(result.row)
        summary.frames += int(result.row["frames_analyzed"] or 0)
        emit("done", result)
    store.write_videos_table()
    summary.seconds = time.perf_counter() - started
    return summary
