"""Weight averaging of epoch snapshots (``ferbatch average-weights``, SWA)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from click.testing import CliRunner

from ferbatch.classify import EmotionClassifier
from ferbatch.cli import cli
from ferbatch.errors import ConfigError, ModelError
from ferbatch.models.checkpoint import load_checkpoint
from ferbatch.train.average import average_main, average_snapshots, load_snapshot_state
from ferbatch.train.evaluate import load_eval_data


def _snapshots(trained_run: Path, tmp_path: Path) -> tuple[dict, Path, Path]:
    """The run's weights as a last.pt-style snapshot, and a copy with every float parameter
    shifted by +1 (as a checkpoint-style dict would also be read)."""
    state = load_snapshot_state(trained_run / "last.pt")
    torch.save({"model": state, "epoch": 1}, tmp_path / "epoch02.pt")
    shifted = {k: v + 1 if v.is_floating_point() else v for k, v in state.items()}
    torch.save({"model": shifted, "epoch": 2}, tmp_path / "epoch03.pt")
    return state, tmp_path / "epoch02.pt", tmp_path / "epoch03.pt"


def test_the_average_is_the_mean_of_the_weights_with_batch_norm_recomputed(
        trained_run: Path, fer_files: tuple[Path, Path], tmp_path: Path) -> None:
    template = load_checkpoint(trained_run / "best.pt")
    state, a, b = _snapshots(trained_run, tmp_path)
    train, _ = load_eval_data(str(fer_files[0]), "fer2013", "train", template.labels,
                              template.preprocess.image_size)
    avg = average_snapshots(template, [a, b], train, device=torch.device("cpu"))
    model = template.build()
    params = {name for name, _ in model.named_parameters()}
    stats = [k for k in state if k.endswith("running_mean")]
    assert params and stats
    for name in params:  # weights: the mean of the two (stored in the template's dtype)
        expected = (state[name] + 0.5).to(template.state_dict[name].dtype)
        assert torch.allclose(avg.state_dict[name].float(), expected.float(), atol=2e-3), name
        assert avg.state_dict[name].dtype == template.state_dict[name].dtype
    for name in stats:  # batch-norm statistics: recomputed, neither averaged (that would be
        # +0.5) nor the first snapshot's (what AveragedModel keeps without the pass)
        got = avg.state_dict[name].float()
        assert not torch.allclose(got, (state[name] + 0.5).float()), name
        assert not torch.allclose(got, state[name].float()), name
        assert torch.isfinite(got).all()
    assert avg.labels == template.labels and avg.preprocess == template.preprocess
    assert avg.calibration == {} and avg.extra["swa"]["snapshots"] == ["epoch02.pt", "epoch03.pt"]
    assert avg.extra["swa"]["bn_faces"] == len(train) == 200
    # the same seed gives the same batch-norm pass (its augmentation), another seed another
    again = average_snapshots(template, [a, b], train, device=torch.device("cpu"))
    assert all(torch.equal(again.state_dict[k], avg.state_dict[k]) for k in stats)
    other = average_snapshots(template, [a, b], train, device=torch.device("cpu"), seed=1)
    assert not all(torch.equal(other.state_dict[k], avg.state_dict[k]) for k in stats)


def test_average_weights_cli_writes_a_calibrated_checkpoint_the_pipeline_loads(
        trained_run: Path, fer_files: tuple[Path, Path], tmp_path: Path) -> None:
    _, a, _ = _snapshots(trained_run, tmp_path)
    out = tmp_path / "swa.pt"
    result = CliRunner().invoke(cli, ["average-weights", str(a), str(trained_run / "best.pt"),
                                      "--template", str(trained_run / "best.pt"),
                                      "--out", str(out), "--device", "cpu"])  # its run's data
    assert result.exit_code == 0, result.output
    assert "validation split (50 faces): template accuracy" in result.output
    assert "average of 2 accuracy" in result.output and "temperature" in result.output
    assert "batch-norm pass over 200 training faces" in result.output
    ckpt = load_checkpoint(out)
    assert ckpt.calibration["fitted_on"] == "fer2013:val" and ckpt.temperature > 0
    assert set(ckpt.metrics["val"]) == {"accuracy", "macro_f1", "loss"}
    faces = np.random.default_rng(0).integers(0, 256, (6, 48, 48), dtype=np.uint8)
    probs = EmotionClassifier(out, device="cpu")(faces)
    assert probs.shape == (6, len(ckpt.labels)) and np.allclose(probs.sum(1), 1, atol=1e-5)


def test_average_main_reports_both_models_and_warns_when_the_data_are_not_the_runs(
        trained_run: Path, fer_files: tuple[Path, Path], tmp_path: Path) -> None:
    _, a, b = _snapshots(trained_run, tmp_path)
    other = tmp_path / "other.csv"  # the run's CSV with one pixel changed: another data hash
    lines = fer_files[0].read_text().splitlines()
    head, first = lines[0], lines[1].split(",")
    pixels = first[1].split()
    pixels[0] = str((int(pixels[0]) + 1) % 256)
    other.write_text("\n".join([head, ",".join([first[0], " ".join(pixels), *first[2:]]),
                                *lines[2:]]) + "\n")
    said: list[str] = []
    warned: list[str] = []
    res = average_main([a, b], trained_run / "best.pt", tmp_path / "swa.pt", data=str(other),
                       device="cpu", announce=said.append, warn=warned.append)
    assert warned[0].startswith("the data differ from what") and not res.same_data
    assert said == [said[0]] and said[0].startswith("averaging 2 snapshot(s); batch-norm pass over 200")
    assert (res.n_snapshots, res.n_train, res.n_val) == (2, 200, 50)
    assert 0 <= res.average["accuracy"] <= 1 and 0 <= res.template["accuracy"] <= 1
    ckpt = load_checkpoint(tmp_path / "swa.pt")
    assert ckpt.metrics["val"]["accuracy"] == res.average["accuracy"]
    assert ckpt.temperature == pytest.approx(res.calibration["temperature"])


def test_one_snapshot_is_noted_and_a_run_without_validation_split_is_refused(
        trained_run: Path, fer_files: tuple[Path, Path], tmp_path: Path) -> None:
    _, a, _ = _snapshots(trained_run, tmp_path)
    said: list[str] = []
    average_main([a], trained_run / "best.pt", tmp_path / "one.pt", device="cpu",
                 announce=said.append, warn=said.append)
    assert said[0] == ("note: one snapshot: its weights are kept, only its batch-norm "
                       "statistics are recomputed") and said[1].startswith("averaging 1 snapshot")
    no_val = tmp_path / "no_val.csv"  # the run's CSV without its PublicTest rows
    no_val.write_text("\n".join(line for line in fer_files[0].read_text().splitlines()
                                if not line.endswith("PublicTest")) + "\n")
    said.clear()
    with pytest.raises(ConfigError, match="no validation split"):
        average_main([a], trained_run / "best.pt", tmp_path / "none.pt", data=str(no_val),
                     device="cpu", announce=said.append, warn=said.append)
    assert len(said) == 1 and said[0].startswith("the data differ from what")  # no note yet
    assert not (tmp_path / "none.pt").exists()


def test_a_bad_snapshot_is_named_with_the_reason(
        trained_run: Path, fer_files: tuple[Path, Path], tmp_path: Path) -> None:
    (tmp_path / "notes.pt").write_text(json.dumps({"model": 1}))
    base = ["--template", str(trained_run / "best.pt"), "--data", str(fer_files[0]),
            "--out", str(tmp_path / "o.pt"), "--device", "cpu"]
    result = CliRunner().invoke(cli, ["average-weights", str(tmp_path / "notes.pt"), *base])
    assert result.exit_code == 1 and "notes.pt" in result.output
    assert "not a PyTorch checkpoint" in result.output and "Traceback" not in result.output
    torch.save({"model": {"fc.weight": torch.zeros(2, 2)}}, tmp_path / "other.pt")
    result = CliRunner().invoke(cli, ["average-weights", str(tmp_path / "other.pt"), *base])
    assert result.exit_code == 1 and "other.pt: weights do not fit architecture" in result.output
    torch.save({"epoch": 3}, tmp_path / "empty.pt")
    with pytest.raises(ModelError, match="neither a ferbatch checkpoint nor a training run's last.pt"):
        load_snapshot_state(tmp_path / "empty.pt")
    state = load_snapshot_state(trained_run / "last.pt")
    template = load_checkpoint(trained_run / "best.pt")
    torch.save({"model": state, "labels": ["x", *template.labels[1:]], "arch": template.arch,
                "arch_kwargs": template.arch_kwargs}, tmp_path / "another_run.pt")
    result = CliRunner().invoke(cli, ["average-weights", str(tmp_path / "another_run.pt"), *base])
    assert result.exit_code == 1 and "another_run.pt: not a snapshot of the template's run: its " \
        "labels" in result.output, result.output
    assert not (tmp_path / "o.pt").exists()
    (tmp_path / "file").write_text("")  # --out inside a file: refused before any work
    result = CliRunner().invoke(cli, ["average-weights", str(trained_run / "last.pt"), *base[:4],
                                      "--out", str(tmp_path / "file" / "o.pt")])
    assert result.exit_code == 1 and "Traceback" not in result.output
    assert f"{tmp_path / 'file'} is a file, not a folder" in result.output
    assert "averaging" not in result.output  # before the pass
    result = CliRunner().invoke(cli, ["average-weights", str(trained_run / "last.pt"), *base[:4],
                                      "--out", "/proc/o.pt"])
    assert result.exit_code == 1 and "cannot write /proc/o.pt" in result.output, result.output
    assert "Traceback" not in result.output


def test_snapshot_from_keeps_the_weights_of_each_later_epoch(
        fer_files: tuple[Path, Path], tmp_path: Path) -> None:
    from ferbatch.train.main import main

    from train_data import tiny_args

    (tmp_path / "snapshots").mkdir()
    torch.save({"model": {}}, tmp_path / "snapshots" / "epoch07.pt")  # of an earlier run here
    main(tiny_args(fer_files[0], tmp_path, epochs=3, snapshot_from=2, limit=64))
    snaps = sorted(p.name for p in (tmp_path / "snapshots").iterdir())
    assert snaps == ["epoch02.pt", "epoch03.pt"]  # the earlier run's snapshot is gone
    saved = torch.load(tmp_path / "snapshots" / "epoch03.pt", weights_only=True)
    template = load_checkpoint(tmp_path / "best.pt")
    assert (saved["arch"], saved["arch_kwargs"], saved["labels"]) == (
        template.arch, template.arch_kwargs, template.labels)
    last = load_snapshot_state(tmp_path / "last.pt")
    final = load_snapshot_state(tmp_path / "snapshots" / "epoch03.pt")
    assert final.keys() == last.keys() and all(torch.equal(final[k], last[k]) for k in last)
    second = load_snapshot_state(tmp_path / "snapshots" / "epoch02.pt")
    assert any(not torch.equal(second[k], last[k]) for k in last)
    result = CliRunner().invoke(cli, ["average-weights", str(tmp_path / "snapshots" / "epoch02.pt"),
                                      str(tmp_path / "snapshots" / "epoch03.pt"),
                                      "--template", str(tmp_path / "best.pt"),
                                      "--out", str(tmp_path / "swa.pt"), "--device", "cpu"])
    assert result.exit_code == 0, result.output
    assert "batch-norm pass over 64 training faces" in result.output  # the run's --limit
