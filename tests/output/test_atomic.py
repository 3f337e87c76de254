"""The one atomic write of a local file (:mod:`ferbatch.output.atomic`)."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from ferbatch.output.atomic import atomic_write, atomic_write_text


def test_atomic_write_keeps_old_file_on_failure(tmp_path: Path) -> None:
    target = tmp_path / "x.txt"
    target.write_text("old")

    def boom(tmp: str) -> None:
        Path(tmp).write_text("half")
        raise RuntimeError("disk full")

    with pytest.raises(RuntimeError):
        atomic_write(target, boom)
    assert target.read_text() == "old"
    assert os.listdir(tmp_path) == ["x.txt"]  # the temp file is gone too
    atomic_write(target, lambda tmp: Path(tmp).write_text("new"))
    assert target.read_text() == "new"


def test_the_temp_file_is_hidden_beside_the_target(tmp_path: Path) -> None:
    seen: list[str] = []

    def write(tmp: str) -> None:
        seen.append(tmp)
        Path(tmp).write_text("x")

    atomic_write(tmp_path / "y.json", write)
    name = Path(seen[0]).name
    assert Path(seen[0]).parent == tmp_path and name.startswith(".y.json.") and name.endswith(".tmp")
    atomic_write_text(tmp_path / "z.txt", "é")
    assert (tmp_path / "z.txt").read_text(encoding="utf-8") == "é"
