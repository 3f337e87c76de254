"""One plan of a run, made once and executed in-process or on Ray by the same controller.

:func:`plan_run` discovers the inputs, looks at each one once, gives it its ``video_id`` and
decides what happens to it:

* :attr:`Action.SKIP` — a committed row records this very file (size, mtime) done with the
  same model and settings, ``ok`` or ``partial`` (:func:`is_complete`; ``retry_partial``
  redoes partial ones); the row is reused;
* :attr:`Action.FAIL` — the input cannot be analysed at all and must not be opened (a FIFO,
  a device, a socket: opening one blocks or reads forever); the plan carries its failed row;
* :attr:`Action.PROCESS` — analyse it. With ``segment_s > 0`` the container header is read
  once here (:func:`ferbatch.segments.header_duration`), so the executor knows, without
  opening the file again, whether the video is long enough to be split into segments.

The plan has no side effects on the output: :func:`ferbatch.runner.controller.execute` writes
the manifest, settles interrupted commits, commits the plan's failed rows, has an executor
analyse the rest and rebuilds ``videos.parquet`` (as Hugging Face ``datasets`` prepares one
split with the same per-job function in-process or in a pool).
"""

from __future__ import annotations

import enum
import errno
import logging
import os
import stat
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..config import VIDEO_EXTENSIONS, RunConfig
from ..errors import ConfigError
from ..output.commit import OutputStore
from ..output.layout import readable, resolved, video_id_for
from ..output.location import OutputLocation
from ..output.schema import STATUS_FAILED, STATUS_PARTIAL, Provenance, failed_row
from ..text import plural, short_list

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Ignored:
    """A file found among the inputs that the run leaves out, and why (in the summary)."""

    path: Path
    reason: str  # "hidden", "same file as <path>", "not a regular file (a FIFO …)", …


#: why a folder named like a video (``x.mp4/``) inside a searched folder is listed
FOLDER_NAMED_LIKE_A_VIDEO = "a folder, not a video file: searched like any folder"
#: … and a link to one (links to folders are not followed by the search)
LINK_NAMED_LIKE_A_VIDEO = "a link to a folder, not a video file: not followed"


def _searched(item: str | os.PathLike[str], path: Path) -> bool:
    """True when the input ``item`` is a folder to search: any folder, except one named like
    a video (``x.mp4``) given without a trailing slash — that one the user named as a video
    file, and it becomes a failed row (``x.mp4/`` searches it)."""
    if not path.is_dir():
        return False
    return path.suffix.lower() not in VIDEO_EXTENSIONS or os.fsdecode(item).endswith(os.sep)


def find_inputs(inputs: Sequence[str | os.PathLike[str]]) -> tuple[list[Path], list[Ignored]]:
    """The video files of ``inputs`` (:func:`discover_videos`) and the files left out: a
    second name of a file already found (a symlink, the same path twice), video files under a
    hidden name (``.name``), special files and folders named like a video inside a given folder
    (:data:`FOLDER_NAMED_LIKE_A_VIDEO`: listed, and searched like any folder)."""
    found: list[Path] = []
    ignored: list[Ignored] = []
    first: dict[Path, Path] = {}
    named: set[Path] = set()  # the files given by name (resolved)
    for item in inputs:
        path = Path(item)
        if _searched(item, path):
            candidates: list[Path] = []
            for p in sorted(path.rglob("*")):
                if p.suffix.lower() not in VIDEO_EXTENSIONS:
                    continue
                hidden = any(part.startswith(".") for part in p.relative_to(path).parts)
                if p.is_dir():
                    ignored.append(Ignored(p, "hidden" if hidden else LINK_NAMED_LIKE_A_VIDEO
                                           if p.is_symlink() else FOLDER_NAMED_LIKE_A_VIDEO))
                elif not p.is_file():  # a FIFO, device, socket or broken link: never opened
                    kind = not_regular(p)
                    ignored.append(Ignored(p, f"not a regular file ({kind})" if kind
                                           else "broken link"))
                elif hidden:
                    ignored.append(Ignored(p, "hidden"))
                else:
                    candidates.append(p)
        elif path.exists() or path.is_symlink():
            candidates = [path]
            named.add(Path(resolved(path)))
        else:
            raise ConfigError(f"input not found: {path}")
        for candidate in candidates:
            key = Path(resolved(candidate))
            if key in first:
                ignored.append(Ignored(candidate, f"same file as {first[key]}"))
            else:
                first[key] = candidate
                found.append(candidate)
    # a special file or folder both skipped in a searched folder and named on its own is the
    # named input's row alone (it fails there, with the reason), not listed twice
    ignored = [i for i in ignored
               if i.reason.startswith("same file as") or Path(resolved(i.path)) not in named]
    return found, ignored


def discover_videos(inputs: Sequence[str | os.PathLike[str]]) -> list[Path]:
    """Files given directly, plus video files found recursively in given folders.

    Files named explicitly are kept whatever their extension (the user asked for them); in
    folders only known video extensions are picked up and hidden files and folders are skipped.
    A folder named like a video (``x.mp4``) given without a trailing slash is taken as the
    video file the user named (its row fails: not a regular file); ``x.mp4/`` searches it.
    Order is stable; duplicates (the same resolved file) removed. Raises :class:`ConfigError`
    for an input that does not exist. :func:`find_inputs` also says what was left out.
    """
    return find_inputs(inputs)[0]


def is_complete(row: dict[str, Any] | None, path: Path, fingerprint: str,
                retry_partial: bool = False) -> bool:
    """True when ``row`` records this very file (size, mtime) done with the same settings.

    ``failed`` videos are never complete; ``partial`` ones (frames lost to damage) are, unless
    ``retry_partial`` (``--retry-partial``: worth it when the damage may have been a read error
    of a network filesystem, or after the file was repaired in place).
    """
    if row is None or row.get("status") == STATUS_FAILED:
        return False
    if retry_partial and row.get("status") == STATUS_PARTIAL:
        return False
    try:
        st = path.stat()
    except OSError:
        return False
    return (row.get("settings_fingerprint") == fingerprint and row.get("file_size") == st.st_size
            and row.get("file_mtime_ns") == st.st_mtime_ns)


class Action(enum.Enum):
    """What the run does with one input."""

    SKIP = "skip"
    FAIL = "fail"
    PROCESS = "process"


@dataclass(frozen=True)
class PlannedVideo:
    """One input of the run: its path as found, its id, the decision and what it rests on.

    ``row``: the committed row (SKIP) or the failed row to commit (FAIL). ``duration_s``: the
    container header's duration when known in advance; otherwise :meth:`RunPlan.duration`
    reads it once, and only where a decision needs it (Ray routing and pool sizing).
    ``finished_before``: ``finished_at`` of the row a video to analyse already had (failed,
    outdated, or redone with ``overwrite``), or ``None``: a row with another one was
    committed by this run (a lost Ray worker's video is then not redone).
    """

    path: Path
    video_id: str
    action: Action
    row: dict[str, Any] | None = None
    duration_s: float | None = None
    finished_before: Any = None

    @property
    def abspath(self) -> str:
        """The path as rows store it."""
        return os.path.abspath(self.path)


@dataclass
class RunPlan:
    """Every input of a run with its decision, and what executing it needs."""

    store: OutputStore
    config: RunConfig
    provenance: Provenance
    videos: list[PlannedVideo] = field(default_factory=list)
    overwrite: bool = False
    segment_s: float = 0.0
    retry_partial: bool = False
    ignored: list[Ignored] = field(default_factory=list)
    _durations: dict[str, float | None] = field(default_factory=dict, repr=False)

    def duration(self, video: PlannedVideo) -> float | None:
        """``video``'s video-stream duration from the header (:func:`~ferbatch.segments.header_duration`;
        never the audio's), in seconds, read once (``None``: unknown, or splitting
        is off and nothing needs it)."""
        if video.duration_s is not None or self.segment_s <= 0:
            return video.duration_s
        if video.video_id not in self._durations:
            from ..segments import header_duration

            self._durations[video.video_id] = header_duration(video.path)
        return self._durations[video.video_id]

    def _known_duration(self, video: PlannedVideo) -> float | None:
        return video.duration_s if video.duration_s is not None else self._durations.get(video.video_id)

    @property
    def location(self) -> OutputLocation:
        return self.store.location

    @property
    def todo(self) -> list[PlannedVideo]:
        """The videos to analyse, in input order."""
        return [v for v in self.videos if v.action is Action.PROCESS]

    def splittable(self, video: PlannedVideo) -> bool:
        """True when ``video`` is long enough (by its header, read here if need be) to be cut
        into segments."""
        duration = self.duration(video)
        return self.segment_s > 0 and duration is not None and duration >= 2 * self.segment_s

    def may_split(self, video: PlannedVideo) -> bool:
        """True when a worker should plan ``video``'s segments before analysing it: splitting
        is on and its header, if read, says it is long enough (unread: the worker's packet-only
        pass decides). Reads nothing."""
        duration = self._known_duration(video)
        return self.segment_s > 0 and (duration is None or duration >= 2 * self.segment_s)

    def expected_units(self, video: PlannedVideo) -> int:
        """Work units ``video`` will probably make: 1, or its expected number of segments."""
        if not self.splittable(video):
            return 1
        return max(1, int((self.duration(video) or 0.0) // self.segment_s))

    def count_units(self, cap: int) -> int:
        """Work units of the videos to analyse, counted up to ``cap`` (a pool cannot use more):
        with at least ``cap`` videos no header is read, otherwise each is read once."""
        todo = self.todo
        if self.segment_s <= 0 or len(todo) >= cap:
            return len(todo)
        units = 0
        for video in todo:
            units += self.expected_units(video)
            if units >= cap:
                return cap
        return units


def not_regular(path: Path) -> str | None:
    """What ``path`` is when it must not be opened as a video, or ``None`` for a regular file
    (or one whose ``stat`` fails otherwise: the decoder reports that with its own words).

    ``a FIFO (named pipe)``, ``a socket``, ``a character device``, ``a block device``,
    ``a folder``, ``a symlink loop``. Asked before anything opens the file: opening a FIFO
    blocks forever, reading a device may never end.
    """
    try:
        mode = path.stat().st_mode
    except OSError as exc:
        return "a symlink loop" if exc.errno == errno.ELOOP else None
    except RuntimeError:  # pathlib's own loop check (Python < 3.13)
        return "a symlink loop"
    if stat.S_ISREG(mode):
        return None
    return ("a FIFO (named pipe)" if stat.S_ISFIFO(mode) else "a character device"
            if stat.S_ISCHR(mode) else "a block device" if stat.S_ISBLK(mode)
            else "a socket" if stat.S_ISSOCK(mode) else "a folder" if stat.S_ISDIR(mode)
            else "not a regular file")


def _not_regular(path: Path) -> str | None:
    """The failed row's message for ``path`` that must not be opened (:func:`not_regular`)."""
    kind = not_regular(path)
    if kind is None:
        return None
    text = f"{readable(str(path))}: not a regular file ({kind}); ferbatch reads video files only"
    if kind == "a folder":  # one named like a video (find_inputs searches any other)
        text += f" (to search it for videos, give it with a trailing slash: {readable(str(path))}/)"
    return text


def _plan_one(path: Path, plan: RunPlan) -> PlannedVideo:
    video_id = video_id_for(path)
    reason = _not_regular(path)
    if reason is not None:
        return PlannedVideo(path, video_id, Action.FAIL,
                            failed_row(path, video_id, plan.provenance, reason))
    old = plan.store.read_status(video_id)
    if not plan.overwrite and is_complete(old, path, plan.provenance.settings_fingerprint,
                                          plan.retry_partial):
        return PlannedVideo(path, video_id, Action.SKIP, old)
    return PlannedVideo(path, video_id, Action.PROCESS,
                        finished_before=old.get("finished_at") if old else None)


def plan_run(inputs: Sequence[str | os.PathLike[str]], out: str | os.PathLike[str] | OutputLocation,
             config: RunConfig | None = None, *, overwrite: bool = False, segment_s: float = 0.0,
             provenance: Provenance | None = None, retry_partial: bool = False) -> RunPlan:
    """Plan a run of ``inputs`` into ``out`` (see the module doc). Reads, never writes, ``out``.

    ``overwrite``: redo every video; ``retry_partial``: redo ``partial`` ones too (by default a
    re-run skips them like ``ok`` ones, see :func:`is_complete`). ``provenance`` defaults to
    the one of ``config``'s model, read from the checkpoint's metadata
    (:func:`ferbatch.pipeline.run_provenance`: no model is built). Raises :class:`ConfigError`
    for a bad option, a missing input or inputs without any video file, :class:`OutputError`
    for an output that cannot be resolved, :class:`ModelError` for a bad checkpoint.
    """
    config = (config or RunConfig()).validate()
    if segment_s < 0:
        raise ConfigError(f"--segment-s must be >= 0, got {segment_s}")
    paths, ignored = find_inputs(inputs)
    if not paths:
        raise ConfigError(no_videos_message(inputs, ignored))
    store = OutputStore(out)  # a bad URI fails here, before any model is read
    if provenance is None:
        from ..pipeline import run_provenance

        provenance = run_provenance(config)
    plan = RunPlan(store, config, provenance, overwrite=overwrite, segment_s=segment_s,
                   retry_partial=retry_partial, ignored=ignored)
    plan.videos = [_plan_one(path, plan) for path in paths]
    return plan


def no_videos_message(inputs: Sequence[str | os.PathLike[str]], ignored: list[Ignored]) -> str:
    """Why a run has nothing to do: no video file in ``inputs``."""
    shown = ", ".join(str(i) for i in list(inputs)[:3]) + (" …" if len(inputs) > 3 else "")
    text = (f"no video files in {shown or 'the inputs'} (folders are searched recursively for "
            f"{' '.join(sorted(VIDEO_EXTENSIONS))}; hidden files are skipped)")
    if ignored:
        text += "; " + describe_left_out(ignored)
    return text


def describe_left_out(ignored: Sequence[Ignored | tuple[str, str]], names: bool = True) -> str:
    """``2 files skipped: a.mp4 (same file as b.mp4), .x.mp4 (hidden); 1 folder named like a
    video searched: clip.mp4`` (each list: the first few, then the count; without ``names``
    the counts only). A folder named like a video inside a searched folder is listed apart:
    it is searched, not skipped."""
    pairs = [(readable(str(i.path)), i.reason) if isinstance(i, Ignored) else i for i in ignored]
    skipped = [f"{path} ({reason})" for path, reason in pairs if reason != FOLDER_NAMED_LIKE_A_VIDEO]
    searched = [path for path, reason in pairs if reason == FOLDER_NAMED_LIKE_A_VIDEO]
    parts = []
    for items, word, verb in ((skipped, "file", "skipped"),
                              (searched, "folder", "named like a video searched")):
        if items:
            text = f"{plural(len(items), word)} {verb}"
            parts.append(f"{text}: {short_list(items)}" if names else text)
    return "; ".join(parts)


def describe(plan: RunPlan) -> str:
    """One line: how many inputs the plan analyses, skips and fails (and files left out)."""
    counts = {a: sum(v.action is a for v in plan.videos) for a in Action}
    text = (f"{len(plan.videos)} input(s): {counts[Action.PROCESS]} to analyse, "
            f"{counts[Action.SKIP]} already done, {counts[Action.FAIL]} cannot be read")
    return text + (f"; {describe_left_out(plan.ignored, names=False)}" if plan.ignored else "")
