"""Every option of every command says what it means and its default (``--help``), and every
command with ``--split`` says which FER2013 split is which."""

from __future__ import annotations

import importlib.util
import re
from collections.abc import Iterator

import click
from click.testing import CliRunner

from ferbatch.cli import cli

from helpers import REPO_ROOT


def _job_command() -> click.Command:
    spec = importlib.util.spec_from_file_location("process_videos", REPO_ROOT / "jobs" / "process_videos.py")
    job = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(job)
    return job.main


def _commands() -> Iterator[tuple[str, click.Command]]:
    def walk(prefix: str, command: click.Command) -> Iterator[tuple[str, click.Command]]:
        yield prefix, command
        if isinstance(command, click.Group):
            for name, sub in command.commands.items():
                yield from walk(f"{prefix} {name}", sub)

    yield from walk("ferbatch", cli)
    yield "jobs/process_videos.py", _job_command()


def _says_default(option: click.Option) -> bool:
    help_text = (option.help or "").lower()
    return (option.is_flag or option.required or option.multiple or option.count
            or bool(option.show_default) or "default" in help_text)


def test_every_option_of_every_command_has_help_and_a_default() -> None:
    seen = 0
    without_help, without_default = [], []
    for name, command in _commands():
        for param in command.params:
            if not isinstance(param, click.Option):
                continue
            seen += 1
            flag = f"{name} {param.opts[0]}"
            if not (param.help or "").strip():
                without_help.append(flag)
            elif not _says_default(param):
                without_default.append(flag)
    assert seen > 100
    assert not without_help, f"options without help: {without_help}"
    assert not without_default, f"options whose help gives no default: {without_default}"


def test_split_help_names_publictest_and_privatetest() -> None:
    with_split = [(name, c) for name, c in _commands()
                  if any(isinstance(p, click.Option) and p.name == "split" for p in c.params)]
    assert {name for name, _ in with_split} == {
        "ferbatch evaluate", "ferbatch calibrate-crop", "ferbatch calibrate-temperature"}
    for name, command in with_split:
        text = CliRunner().invoke(command, ["--help"], terminal_width=200).output
        assert "val = PublicTest" in text and "test = PrivateTest" in text, name


def test_sampling_help_says_every_frame_by_default() -> None:
    text = CliRunner().invoke(cli, ["run", "--help"], terminal_width=200).output
    for option in ("--fps N", "--every N"):
        line = next(line for line in text.splitlines() if line.strip().startswith(option))
        assert "[default: every frame]" in line, line
    assert "Exit codes:" in text and "130" in text and "143" in text


def test_every_config_field_is_documented_with_its_option() -> None:
    """``help(ferbatch.DetectConfig)`` etc. name each field's option (the Python API mirrors
    the CLI); every option named exists on ``ferbatch run`` (or the Ray job)."""
    import dataclasses

    from ferbatch import config

    options = {opt for _, command in _commands() for p in command.params
               if isinstance(p, click.Option) for opt in p.opts}
    for cls in (config.DecodeConfig, config.DetectConfig, config.TrackConfig,
                config.ClassifyConfig, config.RunConfig, config.PoolConfig):
        doc = cls.__doc__ or ""
        for f in dataclasses.fields(cls):
            assert f"* ``{f.name}``: " in doc, (cls.__name__, f.name)
        for named in set(re.findall(r"``(--[a-z-]+)``", doc)):
            assert named in options, (cls.__name__, named)


def test_run_help_names_every_searched_extension() -> None:
    from ferbatch.config import VIDEO_EXTENSIONS

    text = " ".join(CliRunner().invoke(cli, ["run", "--help"], terminal_width=200).output.split())
    assert all(ext in text.split() for ext in VIDEO_EXTENSIONS), sorted(
        ext for ext in VIDEO_EXTENSIONS if ext not in text.split())
