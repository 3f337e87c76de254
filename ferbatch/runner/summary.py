"""What a run did, and the one exit-code rule of ``ferbatch run`` and the Ray job."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..output.schema import STATUS_FAILED, STATUS_OK


@dataclass
class RunSummary:
    """Rows of every input video, in input order, plus counts.

    ``out``: a :class:`Path` for a local folder, else the URI. ``skipped``: inputs already
    complete (their rows are the committed ones). ``ignored``: what the search found and left
    out, as ``(path, reason)``: a second name of one file (``same file as …``), a hidden file, a
    special file, a link to a folder named like a video, and folders named like a video (those
    are searched: :attr:`ignored_text` lists them apart).
    ``frames``: frames analysed by this run. ``retried``: videos or segments of a split video
    (Ray) queued again because their worker or its whole node was lost mid-task.
    """

    out: Path | str
    rows: list[dict[str, Any]] = field(default_factory=list)
    skipped: list[str] = field(default_factory=list)
    ignored: list[tuple[str, str]] = field(default_factory=list)
    seconds: float = 0.0
    frames: int = 0
    retried: int = 0

    @property
    def retried_text(self) -> str:
        """How many were retried, for the summary line and the run log ("" when none)."""
        if not self.retried:
            return ""
        s = "" if self.retried == 1 else "s"
        return f"{self.retried} video{s}/segment{s} retried after a lost worker or node"

    @property
    def ignored_text(self) -> str:
        """The files left out and the folders named like a video searched, for the summary
        ("" when none; :func:`~ferbatch.runner.plan.describe_left_out`)."""
        from .plan import describe_left_out

        return describe_left_out(self.ignored) if self.ignored else ""

    @property
    def failed(self) -> list[dict[str, Any]]:
        return [r for r in self.rows if r["status"] == STATUS_FAILED]

    @property
    def all_ok(self) -> bool:
        return all(r["status"] == STATUS_OK for r in self.rows)

    @property
    def exit_code(self) -> int:
        """0 when every video is ``ok``; 1 when any is ``partial`` or ``failed`` (a partial
        video lost frames to damage: a batch job should notice). The other exit codes of
        ``ferbatch run`` (:data:`EXIT_CODES`) do not come from a summary."""
        return 0 if self.all_ok else 1


#: The exit codes of ``ferbatch run`` and the Ray job (README, ``ferbatch run --help``).
EXIT_CODES = {
    0: "every video ok",
    1: "a video partial or failed, or an error shown as \"Error: ...\"",
    2: "usage error (unknown option, bad value, missing argument)",
    130: "interrupted by Ctrl-C (SIGINT)",
    143: "terminated by SIGTERM",
}
