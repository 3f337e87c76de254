"""Ctrl-C (SIGINT) and SIGTERM delivered at safe points of a run instead of wherever the main
thread happens to be.

Python runs a signal's handler in the main thread between two bytecodes, so the
``KeyboardInterrupt`` (or the CLI's ``Terminated``) it raises can land inside the standard
library's own lock handling: between a ``threading.Lock`` being acquired in
``Condition.__enter__`` and the ``with`` block that would release it (Python's ``signal``
documentation, "Note on Signal Handlers and Exceptions"). The run's decode queue and detection
futures are such locks, shared with the decode and detection threads: a lock left held hangs
the process for good. Within :func:`deferred_interrupts` the signals are only recorded; the
loop calls ``check`` at points where nothing is held (after each batch of frames, between
videos), and that raises the handler's exception there.
"""

from __future__ import annotations

import signal
import threading
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from typing import Any

Handler = Callable[[int, Any], Any]


class PendingSignal:
    """While installed, ``signum`` is only recorded (``count``); :meth:`restore` puts the
    process's own Python ``handler`` back and :meth:`deliver` runs it once for a recorded
    signal. ``urgent``: a second signal restores and runs it at once (the way out when waiting
    is not wanted: a stalled read)."""

    def __init__(self, signum: int, handler: Handler, urgent: bool) -> None:
        self.signum, self.handler, self.urgent, self.count = signum, handler, urgent, 0
        signal.signal(signum, self._record)

    def _record(self, signum: int, frame: Any) -> None:
        self.count += 1
        if self.urgent and self.count > 1:
            self.count = 0
            signal.signal(signum, self.handler)
            self.handler(signum, frame)

    def restore(self) -> None:
        signal.signal(self.signum, self.handler)

    def deliver(self) -> None:
        """Run the handler for a recorded signal (it raises, for the CLI's handlers)."""
        if self.count:
            self.count = 0
            self.handler(self.signum, None)


def python_handler(signum: int) -> Handler | None:
    """The process's own Python handler for ``signum`` (``signal.default_int_handler`` for
    SIGINT unless changed); ``None`` off the main thread, or when the signal is ignored or left
    to the operating system's default."""
    if threading.current_thread() is not threading.main_thread():
        return None
    handler = signal.getsignal(signum)
    return handler if callable(handler) else None


@contextmanager
def deferred_interrupts(signums: Sequence[int] = (signal.SIGINT, signal.SIGTERM),
                        urgent: bool = True) -> Iterator[Callable[[], None]]:
    """Defer ``signums`` to safe points; yields ``check``, which runs the process's own handler
    for a signal that came (raising ``KeyboardInterrupt`` for SIGINT; the CLI's
    ``Terminated`` for SIGTERM). Leaving the block puts the handlers back and runs the handler
    for a signal not yet checked. ``urgent``: a second signal of a kind is not deferred. A
    signal without a Python handler (or the block off the main thread) is left as it is.
    """
    pending = [PendingSignal(s, h, urgent) for s in signums if (h := python_handler(s))]

    def check() -> None:
        for p in pending:
            p.deliver()

    try:
        yield check
    finally:
        for p in pending:
            p.restore()
        check()
