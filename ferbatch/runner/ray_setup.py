"""Connecting to Ray: join a cluster, or start a private local instance on 127.0.0.1 only.

Used by the Ray executor (:mod:`ferbatch.runner.ray_pool`), the tuner
(:mod:`ferbatch.train.tune`) and the test session's shared instance.
"""

from __future__ import annotations

import logging
import os
import shutil
import signal
import tempfile
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager, contextmanager

from ..errors import ConfigError, RunError
from .interrupts import PendingSignal, deferred_interrupts, python_handler

log = logging.getLogger(__name__)

#: Environment variable read by ``ray._private.ray_constants`` at import time. When it is false,
#: ``ray.init`` keeps ``_node_ip_address="127.0.0.1"`` instead of rewriting it to the machine's
#: routable address, and every Ray server (GCS, raylet, workers, dashboard agent) then listens
#: on 127.0.0.1 only. Measured with Ray 2.60 (``ss -ltn``): without it they listen on 0.0.0.0.
LOOPBACK_ENV = "RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER"


def _short_temp_dir() -> str:
    """A fresh, short temp dir: Ray's Unix socket paths must stay under 107 characters."""
    base = tempfile.gettempdir()
    if len(base) > 40:
        base = "/tmp"
    return tempfile.mkdtemp(prefix="ferray-", dir=base)


@contextmanager
def connect(address: str | None = None, num_cpus: int | None = None,
            num_gpus: int | None = None) -> Iterator[bool]:
    """Use Ray for the duration of the block; yields ``True`` when this call started/joined it.

    * Ray already initialised in this process (a test session, a notebook): reuse it, leave it up.
    * ``address`` (``"auto"``, ``"host:port"``, ``"ray://…"``) or ``$RAY_ADDRESS``: join that
      cluster, disconnect at the end.
    * Otherwise: start a private single-machine instance bound to 127.0.0.1 with a temp dir of
      its own and no dashboard, and shut it down (and remove its temp dir) at the end.
    """
    import ray

    if ray.is_initialized():
        yield False
        return
    address = address or os.environ.get("RAY_ADDRESS") or None
    temp_dir: str | None = None
    try:
        if address:
            try:
                with keep_sigterm_handler():
                    ray.init(address=address, logging_level="WARNING")
            except (ConnectionError, ValueError, RuntimeError) as exc:
                raise ConfigError(f"cannot connect to the Ray cluster at {address!r}: {exc}") from exc
        else:
            temp_dir = _short_temp_dir()
            try:
                with keep_sigterm_handler():
                    init_local(num_cpus, num_gpus, temp_dir=temp_dir)
            except Exception as exc:  # Ray raises bare Exception for a node that timed out
                ray.shutdown()  # also stops the processes a half-started node left
                raise RunError(f"could not start a local Ray instance: {exc}; run again with "
                               "--local to analyse in this process (or when the machine is "
                               "less loaded: Ray's processes must start within its limits)"
                               ) from exc
            except BaseException:  # SIGTERM / Ctrl-C while it started: stop what it started
                ray.shutdown()
                raise
        yield True
    finally:
        if ray.is_initialized():
            ray.shutdown()
        if temp_dir is not None:
            shutil.rmtree(temp_dir, ignore_errors=True)


@contextmanager
def keep_sigterm_handler() -> Iterator[None]:
    """Keep this process's Python SIGTERM handler across ``ray.init``, and defer a SIGTERM that
    comes while it runs to its end.

    ``ray.init`` first installs a Python handler that raises ``SystemExit(15)`` wherever the main
    thread is (measured with Ray 2.60: a SIGTERM a few seconds into a run either exited 15
    without a word or was printed as an ignored exception and the run went on), then, when it
    creates the driver's core worker, Ray's C++ failure-signal handler, which prints a crash
    dump and aborts. When the process has a Python handler (``ferbatch``'s CLI:
    :func:`ferbatch.cli.interruptible` turns SIGTERM into one line and exit 143), neither is
    installed (``ray._private.utils.set_sigterm_handler`` does nothing for the block, and
    ``ray_constants.RAY_DISABLE_FAILURE_SIGNAL_HANDLER`` is set: the driver then has no C++
    crash handler for SIGSEGV and the like either; workers keep theirs), a SIGTERM during the
    block is only recorded and the process's handler runs for it at the end: the run unwinds
    like Ctrl-C (:func:`connect` shuts the instance down). A second SIGTERM does not wait. A
    process without a Python handler keeps Ray's behaviour.
    """
    handler = python_handler(signal.SIGTERM)
    if handler is None:
        yield
        return
    import ray._private.utils as ray_utils
    from ray._private import ray_constants

    saved = ray_utils.set_sigterm_handler, ray_constants.RAY_DISABLE_FAILURE_SIGNAL_HANDLER
    ray_utils.set_sigterm_handler = lambda handler: None
    ray_constants.RAY_DISABLE_FAILURE_SIGNAL_HANDLER = True
    pending = PendingSignal(signal.SIGTERM, handler, urgent=True)
    try:
        yield
    finally:
        ray_utils.set_sigterm_handler, ray_constants.RAY_DISABLE_FAILURE_SIGNAL_HANDLER = saved
        pending.restore()
        pending.deliver()


def deferred_sigterm() -> AbstractContextManager[Callable[[], None]]:
    """Defer SIGTERM to safe points of the driver's loop; the block gets ``check``, which runs
    the process's own handler (raising, for the CLI, its ``Terminated``) if SIGTERM came
    (:func:`~ferbatch.runner.interrupts.deferred_interrupts`).

    A Python handler that raises while Ray's Cython code waits (``ray.wait``, ``ray.get``)
    surfaces as ``SystemError: … returned a result with an exception set``, not as the
    handler's exception; so while the loop runs, the signal is only recorded, and the loop calls
    ``check`` each turn (at most ``PROGRESS_POLL_S`` apart). Leaving the block runs the handler
    for a signal not yet checked. Without a Python handler (or off the main thread) nothing
    changes and ``check`` does nothing.
    """
    return deferred_interrupts((signal.SIGTERM,), urgent=False)


def init_local(num_cpus: int | None = None, num_gpus: int | None = None,
               temp_dir: str | None = None) -> str:
    """``ray.init`` a private single-machine instance whose servers listen on 127.0.0.1 only.

    Returns its temp dir (a fresh short one unless given). Ray 2.60 rewrites
    ``_node_ip_address="127.0.0.1"`` to the machine's routable address unless
    ``ray_constants.ENABLE_RAY_CLUSTER`` is false (read from :data:`LOOPBACK_ENV` at import):
    this sets both, the variable for the Ray processes it starts.
    """
    import ray
    from ray._private import ray_constants

    temp_dir = temp_dir or _short_temp_dir()
    # "Token authentication is enabled" is Ray's default for a new instance: no news to a user.
    logging.getLogger("ray._private.authentication.authentication_token_setup").setLevel(
        logging.ERROR)
    saved = ray_constants.ENABLE_RAY_CLUSTER, os.environ.get(LOOPBACK_ENV)
    ray_constants.ENABLE_RAY_CLUSTER = False
    os.environ[LOOPBACK_ENV] = "0"  # inherited by the GCS, raylet and workers started here
    os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")  # Ray's usage report: nothing leaves the machine
    try:
        ray.init(num_cpus=num_cpus or os.cpu_count() or 1, num_gpus=num_gpus,
                 include_dashboard=False, _node_ip_address="127.0.0.1", _temp_dir=temp_dir,
                 logging_level="WARNING")
    finally:
        ray_constants.ENABLE_RAY_CLUSTER = saved[0]
        if saved[1] is None:
            os.environ.pop(LOOPBACK_ENV, None)
        else:
            os.environ[LOOPBACK_ENV] = saved[1]
    return temp_dir
