"""``ferbatch run`` (``ferbatch.cli``): exit codes and the summary, clean errors without a
traceback, the executable, and the options shared with the Ray job."""

from __future__ import annotations

import os
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
    assert "1 video: 1 ok" in ok.output
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
    assert "1 video: 0 ok, 1 partial, 0 failed; 0 already done (*); " in result.output
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


@pytest.mark.parametrize(("content", "reason"), [
    (b"", "empty file (0 bytes)"),
    (b'{"labels": ["happy"]}', "not a PyTorch checkpoint (a JSON file?)"),
    (b"hello, this is not a model\n", "not a PyTorch checkpoint (a text file)"),
    ("truncated", "truncated or corrupt"),
    ("foreign", "it holds Python objects a safe load refuses (datetime.date)"),
])
def test_cli_run_names_the_model_file_and_the_reason(user_folder: Path, tmp_path: Path,
                                                     content: object, reason: str) -> None:
    """A bad --model file: its name and what is wrong with it, never a traceback nor
    PyTorch's advice to load it with weights_only=False."""
    import datetime

    from ferbatch.models.checkpoint import DEFAULT_WEIGHTS

    model = tmp_path / "model.pt"
    if content == "truncated":
        data = DEFAULT_WEIGHTS.read_bytes()
        model.write_bytes(data[: len(data) // 2])
    elif content == "foreign":
        torch.save({"when": datetime.date(2026, 1, 1)}, model)
    else:
        model.write_bytes(content)
    result = CliRunner().invoke(cli, ["run", str(user_folder / "noface.mkv"), "--out",
                                      str(tmp_path / "o"), "--model", str(model), "-q", "--local"])
    assert result.exit_code == 1
    assert f"Error: cannot read model checkpoint {model}: {reason}" in result.output
    assert "weights_only" not in result.output and "Traceback" not in result.output
    assert not (tmp_path / "o").exists()  # refused before the output is created


@pytest.mark.parametrize(("sig", "code", "name"), [(2, 130, "Ctrl-C"), (15, 143, "SIGTERM")])
def test_an_interrupted_run_exits_130_or_143_with_one_line(face_image: object, tmp_path: Path,
                                                           sig: int, code: int, name: str) -> None:
    """SIGINT / SIGTERM mid-run: exit 130 / 143 and one line saying what is kept, no
    traceback; the output stays readable (the commit protocol)."""
    import signal
    import time

    import ferbatch

    video = tmp_path / "long.mp4"
    clips.make_face_clip(video, face_image, n_frames=240, fps=12, size=(320, 240))
    out = tmp_path / "o"
    proc = subprocess.Popen([sys.executable, "-m", "ferbatch.cli", "run", str(video), "--out", str(out),
                             "--local", "-q", "-v"], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True, env={**os.environ, "PYTHONFAULTHANDLER": "1"},
                            # a suite started in the background (`cmd &`) inherits SIGINT ignored,
                            # and Python then never raises KeyboardInterrupt: give the child the default
                            preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))
    try:
        lines = []
        for line in proc.stderr:  # the controller's first message: the run has started
            lines.append(line)
            if " into " in line and "plan:" in line:
                break
        time.sleep(1.0)
        proc.send_signal(signal.Signals(sig))
        try:
            stdout, rest = proc.communicate(timeout=120)
        except subprocess.TimeoutExpired:  # a hang: every thread's stack (faulthandler) in the report
            proc.send_signal(signal.SIGABRT)
            pytest.fail("no exit 120 s after the signal:\n" + "".join(lines) + proc.communicate(timeout=30)[1])
    finally:
        proc.kill()
    stderr = "".join(lines) + rest
    assert proc.returncode == code, stderr
    assert (f"ferbatch run: interrupted by {name}; videos committed so far are kept; the same "
            "command skips them and does the rest") in stderr.splitlines()
    assert "Traceback" not in stderr and "Aborted" not in stderr
    assert len(ferbatch.load(out).videos) == 0  # nothing committed, nothing torn


@pytest.mark.parametrize(("args", "message"), [
    (["--min-face", "4"], "Error: --min-face must be >= 8 (pixels), got 4"),
    (["--track-gap", "-1"], "Error: --track-gap must be >= 0 (seconds), got -1.0"),
    (["--track-iou", "1.5"], "Error: --track-iou must be in (0, 1), got 1.5"),
    (["--det-max-side", "32"], "Error: --det-max-side must be >= 64 (pixels), got 32"),
    (["--min-score", "1"], "Error: --min-score must be in [0, 1), got 1.0"),
    (["--thresholds", "0.6", "0.7", "1.2"], "Error: --thresholds must be three numbers in (0, 1)"),
    (["--decode-threads", "-2"], "Error: --decode-threads must be >= 0, got -2"),
])
def test_validation_errors_name_the_option_typed(user_folder: Path, tmp_path: Path, args: list[str],
                                                 message: str) -> None:
    result = CliRunner().invoke(cli, ["run", str(user_folder / "noface.mkv"), "--out",
                                      str(tmp_path / "o"), "-q", "--local", *args])
    assert result.exit_code == 1 and message in result.output, result.output


def test_usage_errors_exit_2(user_folder: Path, tmp_path: Path) -> None:
    """Exit 2 is click's: the command line cannot be parsed (README, exit codes)."""
    for args in (["--fps", "five"], ["--no-such-option"], ["--det-batch", "0"]):
        result = CliRunner().invoke(cli, ["run", str(user_folder / "noface.mkv"), "--out",
                                          str(tmp_path / "o"), *args])
        assert result.exit_code == 2, (args, result.output)
    assert CliRunner().invoke(cli, ["run", "--out", str(tmp_path / "o")]).exit_code == 2  # no input
