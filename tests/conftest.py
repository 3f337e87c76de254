"""Shared pytest fixtures (helpers that are plain functions live in ``tests/helpers.py``).

Session fixtures, built once on first use:

* ``clips_dir``: a scratch folder where tests encode their clips (see ``tests/clips.py``);
* ``shared_dir``: the read-only ``../shared`` data folder next to the repo (override with
  ``FERBATCH_SHARED``); tests that need it skip, with a reason, when it is absent;
* ``ray_session``: the one local Ray instance (2 CPUs, 127.0.0.1 only) every Ray test shares;
* ``stages``: the loaded CPU models (``Stages(RunConfig(device="cpu"))``);
* ``face_image``: the astronaut's head and shoulders (``clips.astronaut_face``);
* ``user_folder``: a folder like a user's: face clips (one in a subfolder), bad files, a text file.

``pytest_configure`` gives SIGINT its Python handler back when the suite was started with it
ignored (in the background). Autouse: ``no_error_logs`` fails a test that logged a record at ERROR or above to the
``ferbatch`` logger, unless the test is marked ``@pytest.mark.allow_error_logs`` (as
PySceneDetect's ``no_logs_gte_error``): an unexpected exception inside the pipeline is caught
and logged, so without this check a test could pass over a bug.

This module imports nothing of ferbatch at import time (``tests/test_conftest.py`` runs it in
a bare pytester folder).
"""

from __future__ import annotations

import logging
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

#: the logger tree checked by ``no_error_logs``
CHECKED_LOGGER = "ferbatch"


def pytest_configure(config: pytest.Config) -> None:
    """Tests of interrupt handling expect Python's own SIGINT handler; a suite started in the
    background (``make test &``, nohup) inherits SIGINT ignored: give the handler back."""
    import signal

    if signal.getsignal(signal.SIGINT) == signal.SIG_IGN:
        signal.signal(signal.SIGINT, signal.default_int_handler)


class ErrorRecords(logging.Handler):
    """Collects the records at ERROR or above that reach it."""

    def __init__(self) -> None:
        super().__init__(logging.ERROR)
        self.records: list[logging.LogRecord] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.records.append(record)


@pytest.fixture(autouse=True)
def no_error_logs(request: pytest.FixtureRequest) -> Iterator[list[logging.LogRecord]]:
    """Fail the test (at teardown) if it logged ERROR or worse under ``ferbatch``; yields the
    records, so a test marked ``allow_error_logs`` can look at them.

    The ``ferbatch`` logger's handlers and level are restored afterwards: the CLI's
    ``configure_console`` adds a handler on the stream of the test's ``CliRunner``.
    """
    handler = ErrorRecords()
    logger = logging.getLogger(CHECKED_LOGGER)
    saved = logger.handlers[:], logger.level
    logger.addHandler(handler)
    try:
        yield handler.records
    finally:
        for added in [h for h in logger.handlers if h not in saved[0]]:
            logger.removeHandler(added)
        logger.setLevel(saved[1])
    if handler.records and request.node.get_closest_marker("allow_error_logs") is None:
        shown = "\n".join(f"  {r.levelname} {r.name}: {r.getMessage()}" for r in handler.records)
        pytest.fail(f"{len(handler.records)} unexpected ERROR log record(s) from "
                    f"{CHECKED_LOGGER!r} (mark the test @pytest.mark.allow_error_logs if they "
                    f"are expected):\n{shown}", pytrace=False)


@pytest.fixture(scope="session")
def clips_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A session-wide scratch folder for encoded test clips."""
    return tmp_path_factory.mktemp("clips")


@pytest.fixture(scope="session")
def shared_dir() -> Path:
    """``../shared`` (or ``$FERBATCH_SHARED``); skips the test when it is not there."""
    from helpers import shared_path

    path = shared_path()
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


@pytest.fixture(scope="session")
def stages() -> Any:
    """The pipeline's models on the CPU (detector and bundled classifier), loaded once."""
    from ferbatch.config import RunConfig
    from ferbatch.pipeline import Stages

    return Stages(RunConfig(device="cpu"))


@pytest.fixture(scope="session")
def face_image() -> Any:
    """The astronaut's head and shoulders (RGB uint8, read-only): a real, smiling face."""
    import clips

    return clips.astronaut_face()


@pytest.fixture(scope="session")
def user_folder(tmp_path_factory: pytest.TempPathFactory, face_image: Any) -> Path:
    """A folder like a user's: good clips (one in a subfolder), bad files, a non-video.

    ``face.mp4`` (36 frames at 12 fps, 320×240, one face), ``sub/phone.mov`` (24 frames),
    ``noface.mkv`` (20 frames at 10 fps, 160×120); ``empty.mp4``, ``random.mp4``,
    ``notes.mov`` (text) and ``audio.mp4`` cannot be analysed; ``readme.txt`` is not picked up.
    Read-only for the tests: copy a file before changing it.
    """
    import clips

    root = tmp_path_factory.mktemp("videos")
    clips.make_face_clip(root / "face.mp4", face_image, n_frames=36, fps=12, size=(320, 240))
    (root / "sub").mkdir()
    clips.make_face_clip(root / "sub" / "phone.mov", face_image, n_frames=24, fps=12,
                         size=(320, 240), codec="libx264")
    clips.make_clip(root / "noface.mkv", n_frames=20, fps=10, size=(160, 120))
    clips.make_zero_byte(root / "empty.mp4")
    clips.make_random_bytes(root / "random.mp4")
    clips.make_text_as_mov(root / "notes.mov")
    clips.make_audio_only(root / "audio.mp4")
    (root / "readme.txt").write_text("not picked up: not a video extension")
    return root
