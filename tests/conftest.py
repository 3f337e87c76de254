"""Shared pytest fixtures.

``clips_dir``: one temporary folder per test session where tests encode their clips (see
``tests/clips.py``). ``shared_dir``: the read-only ``../shared`` data folder next to the repo
(override with ``FERBATCH_SHARED``); tests that need it skip, with a reason, when it is absent.
"""

from __future__ import annotations

import os
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
