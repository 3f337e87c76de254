"""Text helpers shared by messages and summaries."""

from __future__ import annotations

from collections.abc import Sequence

#: at most this many items in a message's list
SHOWN = 5


def plural(n: int, word: str) -> str:
    """``1 video``, ``2 videos``."""
    return f"{n} {word}" if n == 1 else f"{n} {word}s"


def short_list(items: Sequence[str], limit: int = SHOWN) -> str:
    """``a, b, c``, or the first ``limit`` items and the count: ``a, b, … (12 in all)``."""
    head = ", ".join(items[:limit])
    return head if len(items) <= limit else f"{head}, … ({len(items)} in all)"
