"""The backend-independent decode interface (``ferbatch.decode.base``): the frame sampler, and
a :class:`VideoStream` of another backend feeding the pipeline."""

from __future__ import annotations

import numpy as np
import pytest

from ferbatch.config import DecodeConfig, RunConfig
from ferbatch.decode import FrameSampler
from ferbatch.errors import ConfigError
from ferbatch.pipeline import process_video

from helpers import MemoryStream


def test_sampler_every_and_all() -> None:
    assert FrameSampler().describe() == "all"
    s = FrameSampler(every=3)
    assert s.describe() == "every=3"
    assert [i for i in range(10) if s.keep(i, i / 30)] == [0, 3, 6, 9]


def test_sampler_fps_grid_and_gaps() -> None:
    s = FrameSampler(fps=5)
    assert s.describe() == "fps=5"
    kept = [i for i in range(60) if s.keep(i, i / 30)]
    assert kept == list(range(0, 60, 6))
    s.reset()
    # a long gap (VFR / dropped frames) does not make the sampler catch up with a burst
    times = [0.0, 0.05, 1.0, 1.05, 1.1, 1.2, 1.35]
    assert [t for t in times if s.keep(0, t)] == [0.0, 1.0, 1.2]


def test_sampler_from_config_and_validation() -> None:
    assert FrameSampler.from_config(DecodeConfig(fps=2.5)).describe() == "fps=2.5"
    for bad in ({"fps": 1, "every": 2}, {"fps": 0}, {"every": 0}):
        with pytest.raises(ConfigError):
            FrameSampler(**bad)


def test_sampler_state_resumes_the_time_grid() -> None:
    """A sampler resumed from another's state keeps the frames the first would have kept
    (how a segment of a split video samples as the whole video would)."""
    whole = FrameSampler(fps=4)
    times = [i / 30 for i in range(90)]
    kept = [t for t in times if whole.keep(0, t)]
    first = FrameSampler(fps=4)
    head = [t for t in times[:40] if first.keep(0, t)]
    second = FrameSampler(fps=4)
    second.resume(first.state)
    assert head + [t for t in times[40:] if second.keep(0, t)] == kept


def test_any_video_stream_feeds_the_pipeline(stages) -> None:
    """The pipeline needs nothing but the :class:`VideoStream` interface: frames from another
    backend are sampled, analysed, timed and closed as PyAV's are; ``error`` makes the video
    ``partial``."""
    images = [np.full((120, 160, 3), 40 + 10 * i, np.uint8) for i in range(9)]
    config = RunConfig(decode=DecodeConfig(every=4), device="cpu")
    for error, status in ((None, "ok"), ("stream ended early", "partial")):
        stream = MemoryStream("/in/other.bin", images, fps=3.0, error=error)
        result = process_video("/in/other.bin", config, stages, opener=lambda p, d, s=stream: s)
        assert result.status == status and stream.closed
        assert (result.row["width"], result.row["height"], result.row["codec"]) == (160, 120, "memory")
        assert result.row["frames_decoded"] == 9 and result.row["frames_analyzed"] == 3
        assert result.frames.column("frame_index").to_pylist() == [0, 4, 8]
        assert result.frames.column("timestamp_s").to_pylist() == pytest.approx([0, 4 / 3, 8 / 3])
        if error:
            assert error in result.row["error"]
