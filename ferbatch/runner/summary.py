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
    complete (their rows are the committed ones). ``frames``: frames analysed by this run.
    """

    out: Path | str
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

    @property
    def exit_code(self) -> int:
        """0 when every video is ``ok``; 1 when any is ``partial`` or ``failed`` (a partial
        video lost frames to damage: a batch job should notice)."""
        return 0 if self.all_ok else 1
