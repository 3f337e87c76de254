"""One run at a time per output: the lock a run holds on ``OUT/_lock`` from its start-up
clean-up to its last commit.

Why: a run's start-up clean-up (:meth:`~ferbatch.output.commit.OutputStore.recover`) deletes
temp folders and settles ``.pending`` commits it takes for a killed run's debris. Were a second
run writing the same output, it would delete that run's work in flight, and the two could
replace each other's partitions under a status row that no longer names them (issue 10: 169
rows lost for good). With the lock, whatever recover finds belongs to a run that is provably
dead, and committed rows are never lost or duplicated.

* **Local folders and shared POSIX filesystems** (:class:`_LocalLock`): ``flock(LOCK_EX)`` on
  ``OUT/_lock``. The kernel drops the lock when its process dies however it dies (SIGKILL,
  OOM, power loss of an NFS client after its lease), so a lock held means a live run — a
  stopped (``SIGSTOP``) one included. The file names the holder (host, pid, start time) for
  the message a second run gets. NFS: Linux maps ``flock`` to NFS byte-range locks (v3 with
  lockd, v4 natively); a filesystem without locks fails the run with that reason rather than
  running unlocked.
* **Object stores** (:class:`_LeaseLock`, S3, GCS, ABFS): no atomic create-if-absent through
  pyarrow's filesystems, so ``OUT/_lock`` is a lease object: the holder rewrites it every
  :data:`HEARTBEAT_S` seconds; a lease not renewed for :data:`LEASE_S` seconds is taken as a
  dead run's. It stops a second run started while one is going (the common mistake) but two
  runs started within the same half second may both win, and a run stalled longer than
  :data:`LEASE_S` (a suspended laptop) loses its lease to the next run. So on an object store
  the lock is a guard against mistakes, not a guarantee: start one run per output at a time.

A second run refuses at once with a :class:`OutputBusyError` naming the holder; it changes
nothing in the output.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import socket
import threading
import time
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Any

from ..errors import OutputError
from . import layout
from .location import IO_ERRORS, OutputLocation, first_line

log = logging.getLogger(__name__)

#: an object-store lease not renewed for this long is a dead run's
LEASE_S = 120.0
#: how often a holder renews its object-store lease
HEARTBEAT_S = 20.0


class OutputBusyError(OutputError):
    """Another run holds the output's lock."""


def _holder() -> dict[str, Any]:
    return {"host": socket.gethostname(), "pid": os.getpid(), "run": uuid.uuid4().hex,
            "started": datetime.now(UTC).isoformat(timespec="seconds"), "renewed": time.time()}


def describe_holder(info: dict[str, Any] | None) -> str:
    """``pid 123 on host, started 2026-…`` (or ``another run`` when unknown)."""
    if not info:
        return "another run"
    return (f"pid {info.get('pid', '?')} on {info.get('host', '?')}, started "
            f"{info.get('started', '?')}")


def _busy(location: OutputLocation, info: dict[str, Any] | None) -> OutputBusyError:
    return OutputBusyError(
        f"{location.display()}: another ferbatch run is writing this output "
        f"({describe_holder(info)}); wait for it to finish (the same command then skips what it "
        "did), or use another --out")


class _LocalLock:
    def __init__(self, location: OutputLocation) -> None:
        self.location = location
        self.path = location.join(layout.LOCK_FILE)
        self.fd: int | None = None

    def acquire(self) -> None:
        import fcntl

        try:
            os.makedirs(self.location.path, exist_ok=True)
            fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
        except OSError as exc:
            raise OutputError(f"{self.location.display()}: cannot write the output: "
                              f"{first_line(exc)}") from exc
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            info = _read_json(lambda: os.pread(fd, 4096, 0))
            os.close(fd)
            raise _busy(self.location, info) from None
        except OSError as exc:
            os.close(fd)
            raise OutputError(f"{self.location.display(layout.LOCK_FILE)}: cannot lock the "
                              f"output: {first_line(exc)}") from exc
        os.ftruncate(fd, 0)
        os.pwrite(fd, json.dumps(_holder()).encode(), 0)
        self.fd = fd

    def release(self) -> None:
        if self.fd is not None:
            os.ftruncate(self.fd, 0)
            os.close(self.fd)  # closing drops the flock
            self.fd = None


class _LeaseLock:
    def __init__(self, location: OutputLocation) -> None:
        self.location = location
        self.fs = location.filesystem
        self.path = location.join(layout.LOCK_FILE)
        self.info: dict[str, Any] = {}
        self.stop = threading.Event()
        self.thread: threading.Thread | None = None

    def _read(self) -> dict[str, Any] | None:
        def read() -> bytes:
            with self.fs.open_input_stream(self.path) as stream:
                return stream.read()
        try:
            return _read_json(read)
        except IO_ERRORS:
            return None

    def _write(self) -> None:
        self.info["renewed"] = time.time()
        with self.fs.open_output_stream(self.path) as stream:
            stream.write(json.dumps(self.info).encode())

    def acquire(self) -> None:
        held = self._read()
        if held and time.time() - float(held.get("renewed", 0)) < LEASE_S:
            raise _busy(self.location, held)
        self.info = _holder()
        try:
            if self.fs.type_name not in ("s3", "gcs", "abfs"):  # flat stores have no folders
                self.fs.create_dir(self.location.path, recursive=True)
            self._write()
        except IO_ERRORS as exc:
            raise OutputError(f"{self.location.display(layout.LOCK_FILE)}: cannot write the "
                              f"lease: {first_line(exc)}") from exc
        time.sleep(0.5)  # a run that wrote at the same moment: the last writer wins, once
        now = self._read()
        if not now or now.get("run") != self.info["run"]:
            raise _busy(self.location, now)
        self.thread = threading.Thread(target=self._renew, name="ferbatch-lease", daemon=True)
        self.thread.start()

    def _renew(self) -> None:
        while not self.stop.wait(HEARTBEAT_S):
            try:
                self._write()
            except IO_ERRORS as exc:
                log.warning("%s: cannot renew the lease: %s", self.location.display(), exc)

    def release(self) -> None:
        self.stop.set()
        if self.thread is not None:
            self.thread.join()
        held = self._read()
        if held and held.get("run") == self.info.get("run"):
            with contextlib.suppress(*IO_ERRORS):
                self.fs.delete_file(self.path)


def _read_json(read: Any) -> dict[str, Any] | None:
    try:
        data = json.loads(read() or b"null")
    except ValueError:
        return None
    return data if isinstance(data, dict) else None


def read_holder(location: OutputLocation) -> dict[str, Any] | None:
    """What ``OUT/_lock`` says about its holder (``None``: no lock file or no holder)."""
    lock = _LeaseLock(location)
    return lock._read()


@contextlib.contextmanager
def output_lock(location: OutputLocation) -> Iterator[None]:
    """Hold the output's lock for the block (module doc). Raises :class:`OutputBusyError`
    naming the holder when another run has it, :class:`OutputError` when the lock cannot be
    taken at all."""
    lock = _LocalLock(location) if location.is_local else _LeaseLock(location)
    lock.acquire()
    try:
        yield
    finally:
        lock.release()
