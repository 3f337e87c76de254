"""Choosing the executor (``ferbatch.runner.controller.wants_ray``): in-process for one
video, Ray for several, for a cluster address, or for one video long enough to split."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import pytest


def test_wants_ray_rule(clip_folder: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from ferbatch.runner.controller import wants_ray
    from ferbatch.runner.plan import plan_run

    def plan(inputs: list[Path], segment_s: float = 0.0) -> Any:
        return plan_run(inputs, tmp_path / "o", segment_s=segment_s)

    monkeypatch.delenv("RAY_ADDRESS", raising=False)
    monkeypatch.setattr(os, "cpu_count", lambda: 2)
    assert not wants_ray(plan([clip_folder / "a.mp4"]), None, None)  # one video: in-process
    assert wants_ray(plan([clip_folder]), None, None)  # a clip_folder of three
    assert wants_ray(plan([clip_folder / "a.mp4"]), None, "auto")
    assert wants_ray(plan([clip_folder / "a.mp4"]), True, None)
    assert not wants_ray(plan([clip_folder]), False, "auto")
    # one video at least twice --segment-s long (a.mp4 lasts 2 s) can be split: Ray
    assert wants_ray(plan([clip_folder / "a.mp4"], segment_s=1.0), None, None)
    assert not wants_ray(plan([clip_folder / "a.mp4"], segment_s=1.5), None, None)
    assert not wants_ray(plan([clip_folder / "bad.mp4"], segment_s=1.0), None, None)  # no duration
    monkeypatch.setattr(os, "cpu_count", lambda: 1)  # one core: splitting cannot pay
    assert not wants_ray(plan([clip_folder / "a.mp4"], segment_s=1.0), None, None)
    monkeypatch.setenv("RAY_ADDRESS", "127.0.0.1:1")
    assert wants_ray(plan([clip_folder / "a.mp4"]), None, None)
