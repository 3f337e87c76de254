"""``ferbatch run`` (``ferbatch.cli``): exit codes and the summary, clean errors without a
traceback, the executable, and the options shared with the Ray job."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
import torch
from click.testing import CliRunner

from ferbatch.cli import cli

import clips
from helpers import REPO_ROOT


def test_cli_run_exit_codes_and_summary(user_folder: Path, tmp_path: Path, ray_session: None) -> None:
    """(Two videos go through Ray: the session's instance, not a private one per run.)"""
    runner = CliRunner()
    ok = runner.invoke(cli, ["run", str(user_folder / "face.mp4"), "--out", str(tmp_path / "a"), "-q"])
    assert ok.exit_code == 0, ok.output
    assert "1 videos: 1 ok" in ok.output
    bad = runner.invoke(cli, ["run", str(user_folder / "face.mp4"), str(user_folder / "random.mp4"),
                              "--out", str(tmp_path / "b"), "-q"])
    assert bad.exit_code == 1
    assert "failed: " in bad.output and "random.mp4" in bad.output
    assert "Traceback" not in bad.output
    usage = runner.invoke(cli, ["run", str(user_folder), "--out", str(tmp_path / "c"), "--fps", "2",
                                "--every", "2"])
    assert usage.exit_code != 0 and "either --fps or --every" in usage.output
    missing = runner.invoke(cli, ["run", str(tmp_path / "nope.mp4"), "--out", str(tmp_path / "d")])
    assert missing.exit_code != 0 and "input not found" in missing.output


def test_ferbatch_executable_runs_as_a_process(user_folder: Path, tmp_path: Path) -> None:
    proc = subprocess.run([sys.executable, "-m", "ferbatch.cli", "run", str(user_folder / "noface.mkv"),
                           "--out", str(tmp_path / "o"), "-q"], capture_output=True, text=True,
                          timeout=300)
    assert proc.returncode == 0, proc.stderr
    assert "1 ok" in proc.stdout


def test_cli_run_exits_1_for_a_partial_video(tmp_path: Path) -> None:
    """A video that lost frames to damage is ``partial``: a batch job must notice (exit 1)."""
    path = tmp_path / "cut.mkv"
    clips.make_clip(path, n_frames=40, fps=10, size=(160, 120))
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])
    result = CliRunner().invoke(cli, ["run", str(path), "--out", str(tmp_path / "o"), "-q", "--local"])
    assert result.exit_code == 1, result.output
    assert "1 videos: 0 ok, 1 partial, 0 failed" in result.output
    assert "  partial: cut.mkv: " in result.output and "Traceback" not in result.output


def test_cli_run_device_cuda_without_cuda_is_a_clean_error(user_folder: Path, tmp_path: Path,
                                                           monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    result = CliRunner().invoke(cli, ["run", str(user_folder / "noface.mkv"), "--out",
                                      str(tmp_path / "o"), "--device", "cuda", "-q", "--local"])
    assert result.exit_code == 1 and isinstance(result.exception, SystemExit)
    assert "Error: --device cuda: CUDA is not available on this machine" in result.output
    assert "Traceback" not in result.output
    bad = CliRunner().invoke(cli, ["run", str(user_folder / "noface.mkv"), "--out",
                                   str(tmp_path / "p"), "--device", "gpu", "-q", "--local"])
    assert bad.exit_code == 1 and "device must be auto, cpu or cuda[:N], got 'gpu'" in bad.output
    assert "Traceback" not in bad.output


def test_segment_option_is_shared_by_the_cli_and_the_job() -> None:
    """`ferbatch run` and the Ray job parse --segment-s into the same PoolConfig field, with the
    PoolConfig default."""
    import importlib.util

    from click.testing import CliRunner

    from ferbatch.cli import build_pool, cli
    from ferbatch.config import PoolConfig

    spec = importlib.util.spec_from_file_location(
        "process_videos", REPO_ROOT / "jobs" / "process_videos.py")
    job = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(job)
    for command, args in ((cli, ["run", "--help"]), (job.main, ["--help"])):
        result = CliRunner().invoke(command, args)
        assert result.exit_code == 0, result.output
        assert "--segment-s" in result.output and f"{PoolConfig.segment_s:g}" in result.output
    seen: dict[str, object] = {}
    params = {p.name: p.default for p in job.main.params}
    params.update(segment_s=0.0, workers=3)
    seen["pool"] = build_pool(params)
    assert seen["pool"] == PoolConfig(address="auto", workers=3, segment_s=0.0)  # the job joins its cluster
