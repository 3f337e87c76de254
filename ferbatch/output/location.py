"""Where an output lives: a pyarrow filesystem and a base path, made from a path or a URI.

``OUT`` is a local path, or any URI :meth:`pyarrow.fs.FileSystem.from_uri` resolves
(``s3://bucket/prefix``, ``gs://bucket/prefix``, ``file:///abs/path``, …), or an
:class:`OutputLocation` from the API; :func:`resolve_output` turns each into an
:class:`OutputLocation`. Credentials of object stores come from the environment, as pyarrow's
filesystems read them; they are never shown in messages (:func:`public_uri`).
"""

from __future__ import annotations

import os
import posixpath
import re
import urllib.parse
from dataclasses import dataclass
from pathlib import Path

import pyarrow as pa
import pyarrow.fs as pafs

from ..errors import OutputError

_URI = re.compile(r"^[A-Za-z][A-Za-z0-9+.\-]*://")
#: errors a filesystem call may raise (pyarrow maps most to OSError, some to ArrowException)
IO_ERRORS = (OSError, pa.ArrowException)


def is_uri(out: object) -> bool:
    """True when ``out`` is a string with a URI scheme (``s3://…``, ``file:///…``)."""
    return isinstance(out, str) and bool(_URI.match(out))


def public_uri(uri: str) -> str:
    """``uri`` without ``user:secret@`` and ``?query`` (never print credentials)."""
    parts = urllib.parse.urlsplit(uri)
    netloc = parts.netloc.rpartition("@")[2]
    return urllib.parse.urlunsplit((parts.scheme, netloc, parts.path, "", ""))


def first_line(exc: BaseException) -> str:
    """The first line of an exception's message (pyarrow's can be long)."""
    lines = [line for line in str(exc).strip().splitlines() if line.strip()]
    return lines[0] if lines else type(exc).__name__


@dataclass(frozen=True)
class OutputLocation:
    """A pyarrow filesystem and the base path of an output inside it.

    ``uri`` is the local path or URI the location was made from (``None`` when it was built
    from a filesystem object); other processes (Ray workers) rebuild the location from it.
    """

    filesystem: pafs.FileSystem
    path: str
    uri: str | None = None

    @property
    def is_local(self) -> bool:
        """True on the local filesystem (atomic rename, POSIX paths)."""
        return isinstance(self.filesystem, pafs.LocalFileSystem)

    @property
    def public(self) -> Path | str:
        """The output as summaries show it: a :class:`Path` for a local folder, else the URI."""
        if self.is_local:
            return Path(self.uri) if self.uri and not is_uri(self.uri) else Path(self.path)
        return str(self)

    def join(self, *parts: str) -> str:
        """A path inside the output, as the filesystem spells it (``parts`` may hold ``/``)."""
        if self.is_local:
            return os.path.join(self.path, *parts)
        return posixpath.join(self.path, *parts) if self.path else posixpath.join(*parts)

    def display(self, *parts: str) -> str:
        """A path inside the output as the user gave it, for messages (a URI without its
        query and credentials)."""
        if self.uri is None:
            base = f"{self.filesystem.type_name}:{self.path}"
        elif not is_uri(self.uri):
            return os.path.join(self.uri, *parts)
        else:
            base = public_uri(self.uri)
        return base.rstrip("/") + "/" + "/".join(parts) if parts else base

    def for_worker(self) -> str | OutputLocation:
        """What to send to another process: the path/URI when known, else this object."""
        if self.uri is None:
            return self
        return self.path if self.is_local else self.uri

    def __str__(self) -> str:
        return self.display()


def resolve_output(out: str | os.PathLike[str] | OutputLocation,
                   filesystem: pafs.FileSystem | None = None) -> OutputLocation:
    """The :class:`OutputLocation` of ``out``: a local path, a URI, or a location already.

    With ``filesystem``, ``out`` is a path inside it. Raises :class:`OutputError` naming the
    URI and the reason when pyarrow cannot resolve it (unknown scheme, a filesystem pyarrow was
    built without, an S3 bucket whose region cannot be looked up).
    """
    if isinstance(out, OutputLocation):
        return out
    if filesystem is not None:
        return OutputLocation(filesystem, os.fspath(out).rstrip("/"), None)
    text = os.fspath(out)
    if not is_uri(text):
        return OutputLocation(pafs.LocalFileSystem(), os.path.abspath(text), text)
    try:
        fs, path = pafs.FileSystem.from_uri(text)
    except (*IO_ERRORS, ValueError) as exc:
        shown = public_uri(text)
        raise OutputError(f"cannot use {shown!r} as the output: "
                          f"{first_line(exc).replace(text, shown)}") from exc
    if isinstance(fs, pafs.LocalFileSystem):
        return OutputLocation(fs, os.path.abspath(path), text)
    return OutputLocation(fs, path.rstrip("/"), text)
