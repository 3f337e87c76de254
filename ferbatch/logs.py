"""Logging policy: one ``ferbatch`` logger tree, handlers set by applications, a log per run.

Every module logs to ``logging.getLogger(__name__)`` (children of ``ferbatch``); the package
adds only a :class:`logging.NullHandler`, so a library user sees nothing unless they configure
logging. The CLI calls :func:`configure_console` (``-v`` for INFO, ``-vv`` for DEBUG; tracebacks
on the console only with ``-v``). :func:`run_log` writes every record of a run, DEBUG and
tracebacks included, to ``OUT/_logs/run-<UTC time>-<pid>.log`` (on an object store the file is
uploaded when the run ends).

A traceback from a Ray worker travels in the record's :data:`REMOTE_TRACE` attribute (the
message holds one line): ferbatch's handlers print it like a local traceback; a handler of your
own can read ``getattr(record, "remote_trace", None)``.
"""

from __future__ import annotations

import contextlib
import logging
import os
import sys
import tempfile
from collections.abc import Iterator
from datetime import UTC, datetime

from .output import layout
from .output.location import IO_ERRORS, OutputLocation

ROOT = "ferbatch"
FILE_FORMAT = "%(asctime)s %(levelname)-7s %(name)s: %(message)s"
#: ``extra`` key of a record carrying a traceback formatted in another process (a Ray worker's):
#: ``log.error("…", extra={REMOTE_TRACE: text})``. Shown like a local traceback: always in the
#: run's log, on the console only with ``-v``.
REMOTE_TRACE = "remote_trace"


def _with_remote_trace(text: str, record: logging.LogRecord) -> str:
    trace = getattr(record, REMOTE_TRACE, None)
    return f"{text}\n{trace.rstrip()}" if trace else text


class _FileFormatter(logging.Formatter):
    """:data:`FILE_FORMAT`, local and remote tracebacks included."""

    def __init__(self) -> None:
        super().__init__(FILE_FORMAT)

    def format(self, record: logging.LogRecord) -> str:
        return _with_remote_trace(super().format(record), record)


class _ConsoleFormatter(logging.Formatter):
    """``ferbatch: warning: message``; tracebacks (local or :data:`REMOTE_TRACE`) only when
    ``tracebacks``."""

    def __init__(self, tracebacks: bool) -> None:
        super().__init__("ferbatch: %(levelname)s: %(message)s")
        self.tracebacks = tracebacks

    def format(self, record: logging.LogRecord) -> str:
        if self.tracebacks:
            return _with_remote_trace(super().format(record), record)
        saved = record.exc_info, record.exc_text
        record.exc_info = record.exc_text = None
        try:
            return super().format(record)
        finally:
            record.exc_info, record.exc_text = saved


def configure_console(verbosity: int = 0) -> logging.Handler:
    """Send ``ferbatch`` records to stderr: WARNING and up (0), INFO (1), DEBUG (2+).
    Replaces a console handler set by an earlier call; returns the handler."""
    logger = logging.getLogger(ROOT)
    for old in [h for h in logger.handlers if getattr(h, "_ferbatch_console", False)]:
        logger.removeHandler(old)
    handler = logging.StreamHandler(sys.stderr)
    handler._ferbatch_console = True  # type: ignore[attr-defined]
    handler.setLevel(logging.DEBUG if verbosity >= 2 else logging.INFO if verbosity == 1
                     else logging.WARNING)
    handler.setFormatter(_ConsoleFormatter(tracebacks=verbosity >= 1))
    logger.addHandler(handler)
    logger.setLevel(logging.DEBUG)
    return handler


def log_name() -> str:
    """``run-<UTC time>-<pid>.log``: sortable, unique per process."""
    stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ")
    return f"run-{stamp}-{os.getpid()}.log"


@contextlib.contextmanager
def run_log(location: OutputLocation) -> Iterator[str | None]:
    """Capture every ``ferbatch`` record of the block into a log file in the output.

    Yields the log's path as the user would name it (``None`` when it cannot be created). A
    log that cannot be written never fails the run (a warning says so).
    """
    logger = logging.getLogger(ROOT)
    file_name = log_name()
    name = f"{layout.LOG_DIR}/{file_name}"
    try:
        if location.is_local:
            os.makedirs(location.join(layout.LOG_DIR), exist_ok=True)
            local_path = location.join(layout.LOG_DIR, file_name)
        else:
            fd, local_path = tempfile.mkstemp(prefix="ferbatch-", suffix=".log")
            os.close(fd)
        handler = logging.FileHandler(local_path, encoding="utf-8", errors="backslashreplace")
    except OSError as exc:
        logging.getLogger(__name__).warning("cannot write the run log %s: %s",
                                            location.display(name), exc)
        yield None
        return
    handler.setLevel(logging.DEBUG)
    handler.setFormatter(_FileFormatter())
    old_level = logger.level
    logger.addHandler(handler)
    logger.setLevel(logging.DEBUG)
    try:
        yield location.display(name)
    finally:
        logger.removeHandler(handler)
        logger.setLevel(old_level)
        handler.close()
        if not location.is_local:
            _upload(location, local_path, name)


def _upload(location: OutputLocation, local_path: str, name: str) -> None:
    try:
        with open(local_path, "rb") as src, \
                location.filesystem.open_output_stream(location.join(name)) as dst:
            dst.write(src.read())
    except IO_ERRORS as exc:
        logging.getLogger(__name__).warning("cannot write the run log %s: %s",
                                            location.display(name), exc)
    finally:
        os.unlink(local_path)
