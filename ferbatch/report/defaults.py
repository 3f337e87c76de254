"""Default settings of the report, defined once.

A leaf module (no pandas, no numpy) so that ``ferbatch report``'s options can show these
defaults without importing the report's data stack at CLI start-up. :mod:`.smoothing` and
:mod:`.episodes` re-export them.
"""

from __future__ import annotations

from typing import Literal, get_args

SmoothMethod = Literal["ema", "moving", "none"]
#: smoothing methods, in the order the CLI offers them
METHODS: tuple[str, ...] = get_args(SmoothMethod)
DEFAULT_METHOD: SmoothMethod = "ema"
#: smoothing window (moving average) / time constant (EMA), seconds
DEFAULT_WINDOW_S = 1.0
#: a face unseen for longer than this (and than 2 sampling intervals) starts a new track run
DEFAULT_MAX_GAP_S = 2.0
#: shortest run of one dominant emotion reported as an episode, seconds
DEFAULT_MIN_EPISODE_S = 1.0

__all__ = ["SmoothMethod", "METHODS", "DEFAULT_METHOD", "DEFAULT_WINDOW_S", "DEFAULT_MAX_GAP_S",
           "DEFAULT_MIN_EPISODE_S"]
