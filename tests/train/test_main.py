"""End-to-end training (``ferbatch.train.main``): artifacts, resume, --classes, FER+
probability mode, folders, and the pipeline classifier on the trained checkpoint."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from click.testing import CliRunner

from ferbatch.cli import cli
from ferbatch.models.checkpoint import load_checkpoint
from ferbatch.train.datasets.fer2013 import load_fer2013
from ferbatch.train.engine import predict_proba
from ferbatch.train.main import main

from train_data import TINY_MODEL, tiny_args, write_image_folder

# the CLI spelling of train_data.tiny_args (constant lr, so resuming to more epochs
# retraces an uninterrupted run)
TINY_CLI = ["--model", "vgg_gap", "--model-kw", "width=4", "--model-kw", "convs_per_block=1",
            "--batch-size", "32", "--warmup-epochs", "0", "--schedule", "none", "--augment",
            "light", "--no-amp", "--quiet", "--seed", "0"]


def test_train_then_resume_via_cli(fer_files: tuple[Path, Path], trained_run: Path,
                                   tmp_path: Path) -> None:
    out = tmp_path / "run"
    runner = CliRunner()
    base = ["train", "--data", str(fer_files[0]), "--out", str(out), *TINY_CLI]
    first = runner.invoke(cli, [*base, "--epochs", "1"])
    assert first.exit_code == 0, first.output
    assert [json.loads(line)["epoch"] for line in (out / "history.jsonl").read_text().splitlines()] == [1]
    # the test split (PrivateTest) is left alone unless asked for
    assert "validation accuracy" in first.output and "test accuracy" not in first.output
    assert "test" not in json.loads((out / "metrics.json").read_text())
    assert not (out / "confusion_test.png").exists()
    second = runner.invoke(cli, [*base, "--epochs", "2", "--resume", "--eval-test"])
    assert second.exit_code == 0, second.output
    assert "test accuracy" in second.output
    for name in ("best.pt", "last.pt", "metrics.json", "curves.png", "config.json",
                 "history.jsonl", "confusion_test.png"):
        assert (out / name).is_file(), name
    history = [json.loads(line) for line in (out / "history.jsonl").read_text().splitlines()]
    assert [h["epoch"] for h in history] == [1, 2]
    state = torch.load(out / "last.pt", map_location="cpu", weights_only=True)
    assert [h["epoch"] for h in json.loads(state["history"])] == [1, 2]
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["epochs_run"] == 2 and metrics["best_epoch"] in (1, 2)
    assert metrics["test"]["n"] == 50 and 0.0 <= metrics["test"]["accuracy"] <= 1.0
    config = json.loads((out / "config.json").read_text())
    assert config["epochs"] == 2 and config["resume"] is True
    # stopped after epoch 1 and resumed = the uninterrupted 2-epoch run (same seed, constant lr):
    # model, optimiser, generator and RNG state all came back
    straight = [json.loads(line) for line in (trained_run / "history.jsonl").read_text().splitlines()]
    for resumed, uninterrupted in zip(history, straight, strict=True):
        assert resumed["train_loss"] == pytest.approx(uninterrupted["train_loss"], rel=1e-5)
        assert resumed["val_acc"] == pytest.approx(uninterrupted["val_acc"])


def test_trained_checkpoint_matches_model(trained_run: Path, fer_files: tuple[Path, Path]) -> None:
    """best.pt rebuilds to the same probabilities as the model that was saved."""
    ckpt = load_checkpoint(trained_run / "best.pt")
    assert ckpt.arch == "vgg_gap" and ckpt.arch_kwargs == TINY_MODEL
    assert ckpt.labels == ["angry", "disgust", "fear", "happy", "sad", "surprise", "neutral"]
    assert ckpt.metrics["test"]["n"] == 50
    model = ckpt.build()
    test = load_fer2013(fer_files[0])["test"]
    probs = predict_proba(model, test.images, device=torch.device("cpu"),
                          preprocess=ckpt.preprocess)
    assert probs.shape == (50, 7)
    assert torch.allclose(probs.sum(1), torch.ones(50), atol=1e-5)
    # the accuracy recorded at the end of training is reproduced from the file
    acc = float((probs.argmax(1) == test.targets).float().mean())
    assert acc == pytest.approx(ckpt.metrics["test"]["accuracy"], abs=1e-6)


def test_classes_subset_stored_in_checkpoint(fer_files: tuple[Path, Path], tmp_path: Path) -> None:
    metrics = main(tiny_args(fer_files[0], tmp_path, classes=["happiness", "sad", "calm"],
                             eval_test=True))
    ckpt = load_checkpoint(tmp_path / "best.pt")
    assert ckpt.labels == ["happy", "sad", "neutral"]
    assert ckpt.train_config["classes"] == ["happiness", "sad", "calm"]
    assert len(metrics["test"]["per_class"]) == 3
    assert ckpt.build()(torch.zeros(1, 1, 40, 40)).shape == (1, 3)


def test_another_image_size_resizes_fer2013(fer_files: tuple[Path, Path], tmp_path: Path) -> None:
    """FER2013 is stored at 48 px: --image-size 56 trains and evaluates on faces resized to 56,
    and the checkpoint says so; an --input-size above --image-size is refused before loading."""
    from ferbatch.errors import ConfigError
    from ferbatch.train.main import load_splits

    args = tiny_args(fer_files[0], tmp_path, image_size=56, input_size=48)
    splits, _ = load_splits(args)
    assert {tuple(s.images.shape[1:]) for s in splits.values()} == {(56, 56)}
    main(args)
    assert load_checkpoint(tmp_path / "best.pt").preprocess.image_size == 56
    with pytest.raises(ConfigError, match="--input-size 56 is larger than --image-size 48"):
        load_splits(tiny_args(fer_files[0], tmp_path, image_size=48, input_size=56))


def test_ferplus_probability_training(fer_files: tuple[Path, Path], tmp_path: Path) -> None:
    metrics = main(tiny_args(fer_files[0], tmp_path, dataset="ferplus", ferplus=str(fer_files[1]),
                             ferplus_mode="probability", eval_test=True))
    ckpt = load_checkpoint(tmp_path / "best.pt")
    assert len(ckpt.labels) == 8 and ckpt.labels[-1] == "contempt"
    assert "test" in metrics


def test_folder_training(tmp_path: Path) -> None:
    root = write_image_folder(tmp_path / "faces", {"anger": 10, "happiness": 10, "calm": 10},
                              size=(48, 48))
    metrics = main(tiny_args(root, tmp_path / "run", dataset="folder", batch_size=8,
                             eval_test=True))
    ckpt = load_checkpoint(tmp_path / "run" / "best.pt")
    assert ckpt.labels == ["angry", "happy", "neutral"]
    assert len(ckpt.data_hash) == 16 and metrics["test"]["n"] == 3


def test_emotion_classifier_round_trip(trained_run: Path, fer_files: tuple[Path, Path]) -> None:
    """The pipeline's classifier gives the trainer's probabilities for the same faces, at the
    temperature the trainer fitted on the validation split and stored with the weights."""
    classify = pytest.importorskip("ferbatch.classify", reason="ferbatch/classify.py not written yet")
    ckpt = load_checkpoint(trained_run / "best.pt")
    faces = load_fer2013(fer_files[0])["test"].images[:16]
    clf = classify.EmotionClassifier(str(trained_run / "best.pt"), "cpu", 8)
    got = np.asarray(clf(faces.numpy()))
    assert ckpt.calibration["fitted_on"] == "val" and ckpt.temperature > 0
    expected = predict_proba(ckpt.build(), faces, device=torch.device("cpu"),
                             preprocess=ckpt.preprocess, temperature=ckpt.temperature).numpy()
    assert got.dtype == np.float32 and got.shape == expected.shape
    np.testing.assert_allclose(got, expected, atol=1e-5)
