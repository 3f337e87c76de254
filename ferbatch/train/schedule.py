"""The learning-rate schedule: per-iteration linear warm-up, then cosine decay, a plateau
rule or a constant rate.

Its ``state_dict`` (``step_count``, ``scale``, ``best``, ``bad_epochs``) is what ``last.pt``
stores under ``"schedule"``, so a run resumes at the exact rate it stopped at.
"""

from __future__ import annotations

import math

import torch

from ..errors import ConfigError

MODES = ("cosine", "plateau", "none")


class LRSchedule:
    """Sets every param group's ``lr`` of ``optimizer``: call :meth:`step` after each optimiser
    step and :meth:`epoch_end` after each validation.

    - steps ``0 … warmup_steps-1``: ``base_lr × (step + 1) / warmup_steps`` (linear warm-up);
    - then ``cosine``: ``base_lr × ½(1 + cos(π·p))`` with ``p`` the fraction of the steps after
      warm-up done (``total_steps`` in all, clamped at 1); ``plateau`` and ``none``: ``base_lr``;
    - ``plateau`` also multiplies the rate by ``plateau_factor`` whenever validation accuracy has
      not beaten its best by more than ``plateau_threshold`` for ``plateau_patience`` epochs.

    Raises :class:`ConfigError` for an unknown ``mode``.
    """

    def __init__(self, optimizer: torch.optim.Optimizer, *, base_lr: float, total_steps: int,
                 warmup_steps: int = 0, mode: str = "cosine", plateau_patience: int = 3,
                 plateau_factor: float = 0.5, plateau_threshold: float = 1e-4) -> None:
        if mode not in MODES:
            raise ConfigError(f"unknown schedule {mode!r}; choose {', '.join(MODES)}")
        self.optimizer = optimizer
        self.base_lr = base_lr
        self.total = max(1, total_steps)
        self.warmup = warmup_steps
        self.mode = mode
        self.plateau_patience = plateau_patience
        self.plateau_factor = plateau_factor
        self.plateau_threshold = plateau_threshold
        self.step_count = 0
        self.scale = 1.0  # plateau multiplier
        self.best = -math.inf
        self.bad_epochs = 0
        self._apply()

    def current_lr(self) -> float:
        """The rate for the current ``step_count`` and plateau ``scale``."""
        lr = self.base_lr * self.scale
        if self.step_count < self.warmup:
            lr *= (self.step_count + 1) / self.warmup
        elif self.mode == "cosine":
            progress = (self.step_count - self.warmup) / max(1, self.total - self.warmup)
            lr *= 0.5 * (1 + math.cos(math.pi * min(1.0, progress)))
        return lr

    def _apply(self) -> None:
        lr = self.current_lr()
        for group in self.optimizer.param_groups:
            group["lr"] = lr

    def step(self) -> None:
        """Advance one optimiser step."""
        self.step_count += 1
        self._apply()

    def epoch_end(self, val_accuracy: float) -> None:
        """Feed an epoch's validation accuracy (0–1) to the plateau rule (other modes ignore it)."""
        if self.mode != "plateau":
            return
        if val_accuracy > self.best + self.plateau_threshold:
            self.best, self.bad_epochs = val_accuracy, 0
        else:
            self.bad_epochs += 1
            if self.bad_epochs >= self.plateau_patience:
                self.scale *= self.plateau_factor
                self.bad_epochs = 0
        self._apply()

    def state_dict(self) -> dict[str, float]:
        return {"step_count": self.step_count, "scale": self.scale, "best": self.best,
                "bad_epochs": self.bad_epochs}

    def load_state_dict(self, state: dict[str, float]) -> None:
        self.step_count = int(state["step_count"])
        self.scale = float(state["scale"])
        self.best = float(state["best"])
        self.bad_epochs = int(state["bad_epochs"])
        self._apply()
