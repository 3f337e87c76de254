"""The CUDA path, checked on a real GPU (every test here is marked ``gpu`` and skips, with the
reason, on a machine without CUDA; ``bench/device_check.py`` runs them on the lent device).

* the whole pipeline on ``cuda`` finds the same faces and emotions as on the CPU (boxes within
  1 px, probabilities within 1e-2);
* a GPU that runs out of memory fails that video with a clear error, and the next video runs;
* Ray workers with fractional GPUs share one device (only where Ray is installed).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

import clips

torch = pytest.importorskip("torch")
pytestmark = [pytest.mark.gpu,
              pytest.mark.skipif(not torch.cuda.is_available(), reason="no CUDA device here")]


@pytest.fixture(scope="module")
def face_clip(tmp_path_factory: pytest.TempPathFactory, face_image: np.ndarray) -> Path:
    path = tmp_path_factory.mktemp("gpu") / "face.mp4"
    clips.make_face_clip(path, face_image, n_frames=24, fps=12, size=(640, 360))
    return path


def _run(path: Path, device: str):
    from ferbatch.config import RunConfig
    from ferbatch.pipeline import Stages, process_video

    config = RunConfig(device=device)
    return process_video(path, config, Stages(config))


def test_cuda_pipeline_matches_the_cpu(face_clip: Path) -> None:
    cpu, gpu = _run(face_clip, "cpu"), _run(face_clip, "cuda")
    assert cpu.status == gpu.status == "ok"
    a, b = cpu.faces.to_pandas(), gpu.faces.to_pandas()
    assert len(a) == len(b) > 0 and a["frame_index"].tolist() == b["frame_index"].tolist()
    boxes = ["x1", "y1", "x2", "y2"]
    np.testing.assert_allclose(a[boxes].to_numpy(), b[boxes].to_numpy(), atol=1.0)
    probs = [c for c in a.columns if c.startswith("p_")]
    np.testing.assert_allclose(a[probs].to_numpy(), b[probs].to_numpy(), atol=1e-2)
    assert a["emotion"].tolist() == b["emotion"].tolist()


def test_out_of_memory_fails_one_video_and_the_next_runs(face_clip: Path) -> None:
    from ferbatch.config import RunConfig
    from ferbatch.pipeline import Stages, process_video

    config = RunConfig(device="cuda")
    stages = Stages(config)
    torch.cuda.empty_cache()
    torch.cuda.set_per_process_memory_fraction(1e-6)  # every new allocation now fails
    try:
        starved = process_video(face_clip, config, stages)
    finally:
        torch.cuda.set_per_process_memory_fraction(1.0)
    assert starved.status == "failed" and "out of memory" in starved.row["error"]
    assert "--det-batch" in starved.row["error"] and "Traceback" not in starved.row["error"]
    assert process_video(face_clip, config, stages).status == "ok"


def test_ray_workers_share_one_gpu_with_fractional_gpus(face_clip: Path, tmp_path: Path) -> None:
    pytest.importorskip("ray")
    from ferbatch.runner.ray_pool import run_distributed

    videos = tmp_path / "videos"
    videos.mkdir()
    for i in range(4):
        (videos / f"v{i}.mp4").write_bytes(face_clip.read_bytes())
    from helpers import Events

    events = Events()
    summary = run_distributed([videos], tmp_path / "out", workers=4, gpus_per_worker=0.25,
                              cpus_per_worker=1, hook=events)
    assert summary.all_ok and len(summary.rows) == 4
    assert {w.device for w in events.of("worker")} == {"cuda:0"}
    assert len(events.of("worker")) == 4
