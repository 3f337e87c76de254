"""GPU policy that can be checked on the CPU: out-of-memory errors become one failed row with a
clear message, fractional GPUs size the Ray pool, frames are uploaded as uint8."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from ferbatch.config import PoolConfig, RunConfig
from ferbatch.devices import upload
from ferbatch.runner.local import run
from ferbatch.runner.ray_pool import shape_pool

import clips


def test_out_of_memory_fails_that_video_with_a_clear_error_and_the_batch_goes_on(
        stages, face_image: np.ndarray, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    (tmp_path / "in").mkdir()
    for name in ("a.mp4", "b.mp4"):
        clips.make_face_clip(tmp_path / "in" / name, face_image, n_frames=6, fps=6)
    real = type(stages.detector).detect_scaled  # every detection path runs the cascade here
    calls = {"n": 0}

    def starved(self, small, size):  # the first video's first batch hits the device's limit
        calls["n"] += 1
        if calls["n"] == 1:
            raise torch.OutOfMemoryError("CUDA out of memory. Tried to allocate 2.00 GiB")
        return real(self, small, size)

    monkeypatch.setattr(type(stages.detector), "detect_scaled", starved)
    summary = run([tmp_path / "in"], tmp_path / "out", RunConfig(device="cpu"), stages=stages)
    rows = {Path(r["path"]).name: r for r in summary.rows}
    assert rows["a.mp4"]["status"] == "failed" and rows["b.mp4"]["status"] == "ok"
    error = rows["a.mp4"]["error"]
    assert error.startswith("a.mp4: out of memory on cpu") and "--det-batch" in error
    log = next((tmp_path / "out" / "_logs").glob("run-*.log")).read_text()
    assert "OutOfMemoryError" in log  # the traceback is kept in the run's log


def test_fractional_gpus_put_several_workers_on_one_gpu() -> None:
    shape = shape_pool(PoolConfig(gpus_per_worker=0.25), "auto", {"CPU": 16, "GPU": 1}, units=8)
    assert (shape.workers, shape.gpus, shape.device) == (4, 0.25, "auto")
    whole = shape_pool(PoolConfig(), "auto", {"CPU": 16, "GPU": 2}, units=8)
    assert (whole.workers, whole.gpus) == (2, 1.0)  # default: one GPU per worker
    cpu_only = shape_pool(PoolConfig(), "auto", {"CPU": 4}, units=8)
    assert (cpu_only.workers, cpu_only.gpus, cpu_only.device) == (4, 0.0, "cpu")


def test_frames_travel_as_uint8_and_arrive_intact() -> None:
    frames = np.random.default_rng(0).integers(0, 256, (2, 8, 8, 3), dtype=np.uint8)
    on_device = upload(frames, torch.device("cpu"))
    assert on_device.dtype == torch.uint8 and np.array_equal(on_device.numpy(), frames)
