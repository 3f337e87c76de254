"""The one atomic write of a local file: a hidden temp file in the same folder, then a rename.

POSIX ``rename`` (``os.replace``) within one filesystem is atomic, so a reader sees the old
file or the new one, never a torn one, and a process killed midway leaves only a hidden
``.<name>.<random>.tmp`` that :meth:`ferbatch.output.commit.OutputStore.recover` (for outputs)
or the next write removes. Used for checkpoints, training logs, report tables and the local
committer of :mod:`ferbatch.output.commit`.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Callable
from pathlib import Path

TEMP_SUFFIX = ".tmp"


def temp_name(path: str | os.PathLike[str]) -> str:
    """A hidden, unique temp name beside ``path`` (readers skip names starting with ``.``)."""
    head, name = os.path.split(os.fspath(path))
    return os.path.join(head, f".{name}.{uuid.uuid4().hex}{TEMP_SUFFIX}")


def atomic_write(path: str | os.PathLike[str], write: Callable[[str], None]) -> None:
    """Call ``write(tmp)`` to write a temp file beside ``path``, then rename it to ``path``.

    The folder must exist. If ``write`` raises (or the rename fails), the temp file is removed
    and the exception propagates; ``path`` is untouched.
    """
    tmp = temp_name(path)
    try:
        write(tmp)
        os.replace(tmp, path)
    except BaseException:
        try:
            os.unlink(tmp)
        except FileNotFoundError:
            pass
        raise


def atomic_write_bytes(path: str | os.PathLike[str], data: bytes) -> None:
    """Write ``data`` to ``path`` atomically."""
    atomic_write(path, lambda tmp: Path(tmp).write_bytes(data))


def atomic_write_text(path: str | os.PathLike[str], text: str) -> None:
    """Write ``text`` (UTF-8) to ``path`` atomically."""
    atomic_write_bytes(path, text.encode("utf-8"))
