"""The trainer's CLI: defaults from the dataclasses, progress output, resume, evaluate --quiet."""

from __future__ import annotations

import json
from dataclasses import fields
from pathlib import Path

import click
from click.testing import CliRunner

from ferbatch.cli import cli
from ferbatch.cli_train import train_command, tune_command
from ferbatch.models.checkpoint import load_checkpoint
from ferbatch.train.args import TrainArgs, field_default
from ferbatch.train.tune_space import SEARCHED, TuneOptions

# tiny_args on the command line, but without the architecture options (given per test)
BASE = ["--model", "vgg_gap", "--batch-size", "32", "--warmup-epochs", "0", "--schedule",
        "none", "--augment", "light", "--no-amp", "--seed", "0"]


def _options(command: click.Command) -> dict[str, click.Option]:
    return {p.name: p for p in command.params if isinstance(p, click.Option)}


def test_train_options_take_the_dataclass_defaults() -> None:
    options = _options(train_command)
    for spec in fields(TrainArgs):
        name = "model_kw" if spec.name == "model_kwargs" else spec.name
        assert name in options, f"TrainArgs.{spec.name} has no --option"
        if spec.name in ("data", "out", "model_kwargs", "classes"):
            continue
        if spec.name == "teacher":  # a repeatable option: click's () is the empty list
            assert options[name].multiple and field_default(TrainArgs, spec.name) == []
            continue
        assert options[name].default == field_default(TrainArgs, spec.name), spec.name
    assert set(options) - {"model_kw"} == {f.name for f in fields(TrainArgs)} - {"model_kwargs"}


def test_tune_options_take_the_dataclass_defaults() -> None:
    options = _options(tune_command)
    for spec in fields(TuneOptions):
        name = {"model_kwargs": "model_kw"}.get(spec.name, spec.name)
        assert name in options, spec.name
        if spec.name in ("data", "out", "model_kwargs", "classes", "base"):
            continue
        assert options[name].default == field_default(TuneOptions, spec.name), spec.name
    assert all(options[n].default is None for n in SEARCHED)  # None: the default space


def test_progress_resume_and_conflicts(fer_files: tuple[Path, Path], tmp_path: Path) -> None:
    out = tmp_path / "run"
    runner = CliRunner()
    base = ["train", "--data", str(fer_files[0]), "--out", str(out), *BASE]
    first = runner.invoke(cli, [*base, "--epochs", "1", "--model-kw", "width=4",
                                "--model-kw", "convs_per_block=1", "--classes", "happy,sad"])
    assert first.exit_code == 0, first.output
    assert "epoch 1/1 loss" in first.output  # per-epoch progress without --quiet
    # resumed without repeating --model-kw / --classes: taken from the run's config.json
    second = runner.invoke(cli, [*base, "--epochs", "2", "--resume", "--quiet"])
    assert second.exit_code == 0, second.output
    config = json.loads((out / "config.json").read_text())
    assert config["model_kwargs"] == {"width": 4, "convs_per_block": 1}
    assert config["classes"] == ["happy", "sad"] and config["epochs"] == 2
    history = [json.loads(line) for line in (out / "history.jsonl").read_text().splitlines()]
    assert [h["epoch"] for h in history] == [1, 2]
    assert load_checkpoint(out / "best.pt").labels == ["happy", "sad"]
    # a subset of the stored options is fine; a different value is refused before training
    same = runner.invoke(cli, [*base, "--epochs", "2", "--resume", "--quiet",
                               "--model-kw", "width=4"])
    assert same.exit_code == 0, same.output
    clash = runner.invoke(cli, [*base, "--epochs", "3", "--resume", "--quiet",
                                "--model-kw", "width=8", "--input-size", "36"])
    assert clash.exit_code == 1
    assert "--model-kw {'width': 8}" in clash.output and "{'width': 4}" in clash.output
    assert "--input-size 36" in clash.output and "Traceback" not in clash.output
    assert len((out / "history.jsonl").read_text().splitlines()) == 2  # nothing trained


def test_evaluate_quiet_prints_the_headline(trained_run: Path, fer_files: tuple[Path, Path],
                                            tmp_path: Path) -> None:
    result = CliRunner().invoke(cli, ["evaluate", "--data", str(fer_files[0]), "--model",
                                      str(trained_run / "best.pt"), "--json",
                                      str(tmp_path / "e.json"), "--quiet"])
    assert result.exit_code == 0, result.output
    report = json.loads((tmp_path / "e.json").read_text())
    assert f"accuracy {report['accuracy']:.4f}" in result.output
    assert f"macro-F1 {report['macro_f1']:.4f}" in result.output
    assert "precision" not in result.output  # the per-class table is what --quiet drops


def test_train_cli_reports_errors_without_traceback(tmp_path: Path) -> None:
    result = CliRunner().invoke(cli, ["train", "--data", str(tmp_path / "missing.csv"),
                                      "--out", str(tmp_path / "o"), "--quiet"])
    assert result.exit_code == 1
    assert "not found" in result.output and "Traceback" not in result.output


def test_dataset_options_of_another_dataset_are_refused(fer_files: tuple[Path, Path],
                                                        tmp_path: Path) -> None:
    """--ferplus without --dataset ferplus (and --val-data without --dataset folder) would be
    ignored silently: a clear error instead, before any training."""
    runner = CliRunner()
    train = runner.invoke(cli, ["train", "--data", str(fer_files[0]), "--out", str(tmp_path / "r"),
                                "--ferplus", str(fer_files[1]), "--epochs", "1", "--quiet"])
    assert train.exit_code == 1
    assert (f"Error: --ferplus {fer_files[1]} is read only with --dataset ferplus, and this command "
            "uses --dataset fer2013: add --dataset ferplus, or drop --ferplus") in train.output
    assert not (tmp_path / "r" / "best.pt").exists()
    folder = runner.invoke(cli, ["train", "--data", str(fer_files[0]), "--out", str(tmp_path / "s"),
                                 "--val-data", str(tmp_path), "--epochs", "1", "--quiet"])
    assert folder.exit_code == 1 and "--val-data" in folder.output and "--dataset folder" in folder.output
    evaluate = runner.invoke(cli, ["evaluate", "--data", str(fer_files[0]), "--dataset", "fer2013",
                                   "--ferplus", str(fer_files[1]), "--json", str(tmp_path / "e.json")])
    assert evaluate.exit_code == 1 and "is read only with --dataset ferplus" in evaluate.output
    # (without --dataset, evaluate infers ferplus from --ferplus: tests/train/test_evaluate_inputs.py)
    assert "Traceback" not in train.output + evaluate.output
