"""Ctrl-C / SIGTERM deferred to safe points (``ferbatch.runner.interrupts``), and a run's
threads stopped before an interrupted video's stream is closed."""

from __future__ import annotations

import signal
import threading
from pathlib import Path
from typing import Any

import pytest

from ferbatch.runner.interrupts import deferred_interrupts


class _Stop(BaseException):
    pass


def _raise_stop(signum: int, frame: Any) -> None:
    raise _Stop(signum)


@pytest.fixture
def sigterm_raises_stop() -> Any:
    previous = signal.signal(signal.SIGTERM, _raise_stop)
    yield
    signal.signal(signal.SIGTERM, previous)


def test_a_signal_in_the_block_waits_for_check(sigterm_raises_stop: None) -> None:
    reached = []
    with pytest.raises(KeyboardInterrupt), deferred_interrupts() as check:
        signal.raise_signal(signal.SIGINT)
        reached.append("after the signal")  # recorded, not raised here
        check()
        reached.append("after check")
    assert reached == ["after the signal"]
    assert signal.getsignal(signal.SIGINT) is signal.default_int_handler
    assert signal.getsignal(signal.SIGTERM) is _raise_stop


def test_a_signal_not_checked_is_delivered_when_the_block_ends(sigterm_raises_stop: None) -> None:
    with pytest.raises(_Stop), deferred_interrupts():
        signal.raise_signal(signal.SIGTERM)
    with deferred_interrupts() as check:  # no signal: check does nothing, nothing is raised
        check()
    assert signal.getsignal(signal.SIGTERM) is _raise_stop


def test_a_second_signal_is_not_deferred(sigterm_raises_stop: None) -> None:
    reached = []
    with pytest.raises(KeyboardInterrupt), deferred_interrupts():
        signal.raise_signal(signal.SIGINT)
        reached.append(1)
        signal.raise_signal(signal.SIGINT)
        reached.append(2)
    assert reached == [1]
    with pytest.raises(_Stop), deferred_interrupts(urgent=False):  # not urgent: both wait
        signal.raise_signal(signal.SIGTERM)
        signal.raise_signal(signal.SIGTERM)
        reached.append(3)
    assert reached == [1, 3]


def test_off_the_main_thread_nothing_changes() -> None:
    seen: list[object] = []

    def worker() -> None:
        with deferred_interrupts() as check:
            seen.append(signal.getsignal(signal.SIGINT))
            check()

    thread = threading.Thread(target=worker)
    thread.start()
    thread.join()
    assert seen == [signal.default_int_handler]


def test_an_exception_from_progress_stops_the_run_s_threads_before_returning(
        tmp_path: Path, face_image: Any, stages: Any) -> None:
    """The decode and detection threads of an interrupted video are stopped before the
    exception leaves ``process_video`` (its stream is closed after them), not when the garbage
    collector reaches the generators that own them: here the caught exception keeps them alive."""
    from ferbatch.config import RunConfig
    from ferbatch.pipeline import process_video

    import clips

    video = tmp_path / "long.mp4"  # several detection batches: the decode thread is still busy
    clips.make_face_clip(video, face_image, n_frames=6 * stages.detect_batch, fps=12, size=(160, 120))

    def progress(frames: int) -> None:
        raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt) as caught:
        process_video(video, RunConfig(device="cpu"), stages, progress=progress)
    assert caught.value.__traceback__ is not None  # the frames (and generators) are still referenced
    alive = [t.name for t in threading.enumerate() if t.name.startswith("ferbatch-")]
    assert alive == []
