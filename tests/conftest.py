"""Shared pytest fixtures.

``clips_dir``: one temporary folder per test session where tests encode their clips (see
``tests/clips.py``). ``shared_dir``: the read-only ``../shared`` data folder next to the repo
(override with ``FERBATCH_SHARED``); tests that need it skip, with a reason, when it is absent.
``ray_session``: the one local Ray instance (2 CPUs, 127.0.0.1 only) every Ray test shares.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

REPO_ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="session")
def clips_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A session-wide scratch folder for encoded test clips."""
    return tmp_path_factory.mktemp("clips")


@pytest.fixture(scope="session")
def shared_dir() -> Path:
    """``../shared`` (or ``$FERBATCH_SHARED``); skips the test when it is not there."""
    env = os.environ.get("FERBATCH_SHARED")
    path = Path(env).expanduser() if env else REPO_ROOT.parent / "shared"
    if not path.is_dir():
        pytest.skip(f"../shared not found: {path} (set FERBATCH_SHARED to its location)")
    return path


@pytest.fixture(scope="session")
def ray_session() -> Iterator[None]:
    """One private Ray instance for the whole session, started on first use, stopped at the end."""
    ray = pytest.importorskip("ray")
    from ferbatch.runner.ray_setup import init_local

    if ray.is_initialized():
        yield
        return
    temp = tempfile.mkdtemp(prefix="fbray-", dir="/tmp")  # short: Unix socket paths
    init_local(num_cpus=2, temp_dir=temp)
    yield
    ray.shutdown()
    shutil.rmtree(temp, ignore_errors=True)
