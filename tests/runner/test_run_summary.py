"""What a run did (``ferbatch.runner.summary.RunSummary``): counts and the one exit-code rule
of ``ferbatch run`` and the Ray job (0 only when every video is ``ok``)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from ferbatch.runner.summary import RunSummary


def _row(name: str, status: str) -> dict[str, Any]:
    return {"path": f"/in/{name}", "status": status, "error": None if status == "ok" else "x"}


@pytest.mark.parametrize("statuses, code", [
    ([], 0),  # nothing to do is not a failure
    (["ok"], 0),
    (["ok", "ok"], 0),
    (["ok", "partial"], 1),  # a partial video lost frames to damage: a batch job should notice
    (["partial"], 1),
    (["ok", "failed"], 1),
    (["failed", "partial"], 1),
])
def test_exit_code_is_zero_only_when_every_video_is_ok(statuses: list[str], code: int) -> None:
    summary = RunSummary(out=Path("/out"), rows=[_row(f"v{i}.mp4", s) for i, s in enumerate(statuses)])
    assert summary.exit_code == code
    assert summary.all_ok is (code == 0)
    assert [r["status"] for r in summary.failed] == [s for s in statuses if s == "failed"]
