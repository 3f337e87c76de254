"""The learning-rate schedule (``ferbatch.train.schedule``): warm-up, cosine, plateau, resume."""

from __future__ import annotations

import math

import pytest
import torch

from ferbatch.errors import ConfigError
from ferbatch.train.schedule import LRSchedule


def _optimizer(lr: float = 1.0) -> torch.optim.Optimizer:
    return torch.optim.SGD([torch.nn.Parameter(torch.zeros(2))], lr=lr)


def _lrs(schedule: LRSchedule, steps: int) -> list[float]:
    out = [schedule.optimizer.param_groups[0]["lr"]]
    for _ in range(steps):
        schedule.step()
        out.append(schedule.optimizer.param_groups[0]["lr"])
    return out


def test_warmup_then_cosine() -> None:
    opt = _optimizer()
    schedule = LRSchedule(opt, base_lr=0.1, total_steps=10, warmup_steps=2, mode="cosine")
    lrs = _lrs(schedule, 10)
    assert lrs[:2] == pytest.approx([0.05, 0.1])  # (step + 1) / warmup
    expected = [0.1 * 0.5 * (1 + math.cos(math.pi * (s - 2) / 8)) for s in range(2, 11)]
    assert lrs[2:] == pytest.approx(expected)
    assert lrs[-1] == pytest.approx(0.0, abs=1e-12)
    schedule.step()  # past the end: stays at the floor
    assert opt.param_groups[0]["lr"] == pytest.approx(0.0, abs=1e-12)


def test_constant_and_plateau() -> None:
    flat = LRSchedule(_optimizer(), base_lr=0.05, total_steps=4, warmup_steps=0, mode="none")
    assert _lrs(flat, 4) == [0.05] * 5
    opt = _optimizer()
    plateau = LRSchedule(opt, base_lr=0.1, total_steps=100, mode="plateau")
    for acc in (0.5, 0.6, 0.6, 0.60005, 0.59):  # three epochs without a gain > 1e-4
        plateau.epoch_end(acc)
    assert opt.param_groups[0]["lr"] == pytest.approx(0.05)
    assert plateau.bad_epochs == 0 and plateau.best == pytest.approx(0.6)
    for acc in (0.5, 0.5, 0.5):
        plateau.epoch_end(acc)
    assert opt.param_groups[0]["lr"] == pytest.approx(0.025)
    cosine = LRSchedule(_optimizer(), base_lr=0.1, total_steps=10, mode="cosine")
    for _ in range(5):
        cosine.epoch_end(0.1)  # the plateau rule is off in other modes
    assert cosine.scale == 1.0
    with pytest.raises(ConfigError, match="unknown schedule"):
        LRSchedule(_optimizer(), base_lr=0.1, total_steps=10, mode="step")


def test_schedule_state_dict_format_and_round_trip() -> None:
    a = LRSchedule(_optimizer(), base_lr=0.1, total_steps=20, warmup_steps=3, mode="plateau")
    for _ in range(7):
        a.step()
    a.epoch_end(0.4)
    state = a.state_dict()
    # the keys last.pt stores under "schedule" (runs written by earlier versions resume)
    assert set(state) == {"step_count", "scale", "best", "bad_epochs"}
    opt = _optimizer()
    b = LRSchedule(opt, base_lr=0.1, total_steps=20, warmup_steps=3, mode="plateau")
    b.load_state_dict(state)
    assert b.state_dict() == state
    assert opt.param_groups[0]["lr"] == pytest.approx(a.current_lr())
