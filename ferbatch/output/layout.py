"""Every file and folder name of a ferbatch output, defined once (no pyarrow import).

::

    OUT/_ferbatch.json                      manifest: labels, model and schema version
    OUT/_lock                               held by the run writing OUT (ferbatch.output.lock)
    OUT/_logs/run-<UTC time>-<pid>.log      one log per run, tracebacks of failed videos included
    OUT/videos.parquet                      one row per input file (rebuilt from OUT/_status)
    OUT/_status/<video_id>.parquet          that row, one file per video: the commit point
    OUT/_status/<video_id>.pending          marker of a commit in progress (or killed midway)
    OUT/frames/video_id=<id>/part-*.parquet one row per analysed frame
    OUT/faces/video_id=<id>/part-*.parquet  one row per face per analysed frame

Readers (``pd.read_parquet``, DuckDB, Spark, :func:`ferbatch.load`) skip names that start with
``.`` or ``_``, so the manifest, the status rows, logs and temp files never look like data.
"""

from __future__ import annotations

import hashlib
import os
import re
import unicodedata
from pathlib import Path

MANIFEST = "_ferbatch.json"
LOCK_FILE = "_lock"
LOG_DIR = "_logs"
VIDEOS_FILE = "videos.parquet"
STATUS_DIR = "_status"
STATUS_SUFFIX = ".parquet"
PENDING_SUFFIX = ".pending"
FRAMES = "frames"
FACES = "faces"
TABLES = (FRAMES, FACES)
PARTITION_KEY = "video_id"
#: the partition file of a local output (written in a temp folder, renamed into place)
LOCAL_PART = "part-0.parquet"
#: hidden temp folders of the local committer: a partition being written / one being removed
TEMP_DIR_PREFIX = ".tmp-"
TRASH_DIR_PREFIX = ".old-"
#: a data file a reader takes: ``*.parquet`` not starting with ``.`` or ``_``
DATA_FILE = re.compile(r"^[^._].*\.parquet$")


def object_part(token: str) -> str:
    """The partition file name of one commit on an object store (unique per commit)."""
    return f"part-{token}.parquet"


def partition_dir(table: str, video_id: str) -> str:
    """Relative folder of one video's partition of ``frames`` or ``faces`` (Hive style)."""
    return f"{table}/{PARTITION_KEY}={video_id}"


def partition_id(folder_name: str) -> str | None:
    """The ``video_id`` of a partition folder name ``video_id=<id>``, else ``None``."""
    prefix = PARTITION_KEY + "="
    return folder_name[len(prefix):] if folder_name.startswith(prefix) else None


def status_file(video_id: str) -> str:
    """Relative path of the status row (commit point) of ``video_id``."""
    return f"{STATUS_DIR}/{video_id}{STATUS_SUFFIX}"


def pending_file(video_id: str) -> str:
    """Relative path of the marker of an unfinished commit of ``video_id``."""
    return f"{STATUS_DIR}/{video_id}{PENDING_SUFFIX}"


def is_status_file(name: str) -> bool:
    """True for the base name of a committed status row."""
    return name.endswith(STATUS_SUFFIX) and not name.startswith((".", "_"))


def pending_id(name: str) -> str | None:
    """The ``video_id`` of a pending-marker base name, else ``None``."""
    return name[: -len(PENDING_SUFFIX)] if name.endswith(PENDING_SUFFIX) else None


def ascii_letters(text: str) -> str:
    """``text`` with accented letters reduced to ASCII (``été`` → ``ete``): Unicode NFKD
    decomposition, combining marks dropped. ASCII text is returned unchanged."""
    decomposed = unicodedata.normalize("NFKD", text)
    return "".join(c for c in decomposed if not unicodedata.combining(c))


def readable(text: str) -> str:
    """``text`` as valid Unicode, for messages and Parquet strings: the bytes of a file name
    that is not UTF-8 (Python keeps them as surrogate escapes, PEP 383) are shown as ``\\xNN``
    (``caf\\xe9.mp4``). Text that is valid Unicode is returned unchanged."""
    try:
        text.encode("utf-8")
        return text
    except UnicodeEncodeError:
        raw = text.encode("utf-8", "surrogateescape") if _escapes_only(text) else \
            text.encode("utf-8", "surrogatepass")
        return raw.decode("utf-8", "backslashreplace")


def _escapes_only(text: str) -> bool:
    """True when every surrogate of ``text`` is a PEP 383 escape (U+DC80…U+DCFF)."""
    return all(not 0xD800 <= ord(c) <= 0xDFFF or 0xDC80 <= ord(c) <= 0xDCFF for c in text)


def readable_path(path: str | os.PathLike[str]) -> str:
    """The absolute path as ``videos.parquet``'s ``path`` column stores it (:func:`readable`;
    the exact bytes are in ``path_bytes``: :func:`path_bytes`)."""
    return readable(os.path.abspath(path))


def path_bytes(path: str | os.PathLike[str]) -> bytes:
    """The absolute path's exact bytes (``os.fsdecode`` gives the path back, whatever its
    encoding): ``videos.parquet``'s ``path_bytes`` column."""
    return os.fsencode(os.path.abspath(path))


def resolved(path: str | os.PathLike[str]) -> str:
    """``path`` absolute with symlinks followed; a symlink loop (or a link that cannot be
    read) leaves the absolute path as given."""
    try:
        return str(Path(path).resolve())
    except (RuntimeError, OSError):  # Python < 3.13 raises RuntimeError for a symlink loop
        return os.path.abspath(path)


def video_id_for(path: str | os.PathLike[str]) -> str:
    """Stable, unique, folder-safe id of a video: its file stem plus a hash of its resolved
    absolute path (symlinks followed, so two names of one file share an id; a symlink loop
    keeps its own name, :func:`resolved`).

    The hash is of the path's bytes (:func:`os.fsencode`), so a file name that is not UTF-8
    (``caf\\xe9.mp4`` written by a Latin-1 system) has an id as stable as any other. The stem
    keeps ASCII letters, digits, ``_ . -``; accented letters become their ASCII letter
    (:func:`ascii_letters`: ``été 😀.mp4`` → ``ete-<hash>``), anything else ``_`` (trimmed at
    the ends); a stem with nothing left is ``video``. The ids of ASCII names never depend on
    this transliteration.
    """
    digest = hashlib.sha1(os.fsencode(resolved(path))).hexdigest()[:10]
    stem = ascii_letters(os.fsencode(Path(path).stem).decode("utf-8", "replace"))
    stem = re.sub(r"[^A-Za-z0-9_.-]+", "_", stem).strip("._-")[:48] or "video"
    return f"{stem}-{digest}"
