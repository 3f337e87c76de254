"""One preprocessing for training and inference: defaults, checkpoint round trip, registry API."""

from __future__ import annotations

import subprocess
import sys
from dataclasses import fields
from pathlib import Path

import numpy as np
import pytest
import torch

from ferbatch.models import create_model
from ferbatch.models.checkpoint import load_checkpoint, save_checkpoint
from ferbatch.models.preprocess import Preprocess, center_crop, normalize
from ferbatch.train.args import TrainArgs, field_default
from ferbatch.train.engine import predict_proba
from ferbatch.train.main import main, make_checkpoint

from train_data import TINY_MODEL, tiny_args

CUSTOM = dict(image_size=52, input_size=36, mean=0.45, std=0.3, crop_scale=1.1,
              crop_shift_y=0.05)


def test_train_defaults_are_the_preprocess_defaults() -> None:
    """TrainArgs takes its preprocessing defaults from Preprocess (defined once)."""
    for spec in fields(Preprocess):
        if spec.name in TrainArgs.__dataclass_fields__:
            assert field_default(TrainArgs, spec.name) == spec.default, spec.name
    args = TrainArgs(data="d", out="o")
    assert args.preprocess() == Preprocess()


def test_preprocess_to_input() -> None:
    faces = torch.randint(0, 256, (3, 48, 48), dtype=torch.uint8)
    pre = Preprocess(input_size=40, mean=0.4, std=0.2)
    x = pre.to_input(faces)
    assert x.shape == (3, 1, 40, 40) and x.dtype == torch.float32
    assert torch.allclose(x, (faces[:, None, 4:44, 4:44].float() / 255 - 0.4) / 0.2)
    assert torch.equal(x, normalize(center_crop(faces, 40), 0.4, 0.2))
    odd = center_crop(faces, 39)  # odd margin: resampled, still centred
    assert odd.shape == (3, 1, 39, 39)


def test_custom_preprocessing_round_trips_to_the_classifier(tmp_path: Path) -> None:
    """Non-default size / mean / std / crop survive save → load, and EmotionClassifier uses
    them: its probabilities are the trainer's with that preprocessing, not the defaults'."""
    from ferbatch.classify import EmotionClassifier

    torch.manual_seed(0)
    args = tiny_args(tmp_path, tmp_path, **CUSTOM)
    model = create_model("vgg_gap", num_classes=7, input_size=36, **TINY_MODEL).eval()
    labels = ["angry", "disgust", "fear", "happy", "sad", "surprise", "neutral"]
    path = save_checkpoint(make_checkpoint(model, args, labels, "h", {}, args.preprocess()),
                           tmp_path / "m.pt")
    ckpt = load_checkpoint(path)
    assert ckpt.preprocess == Preprocess(**CUSTOM)
    clf = EmotionClassifier(str(path), "cpu", batch_size=8)
    assert clf.preprocess == Preprocess(**CUSTOM)
    faces = torch.randint(0, 256, (5, 52, 52), dtype=torch.uint8)
    got = np.asarray(clf(faces.numpy()))
    cpu = torch.device("cpu")
    expected = predict_proba(model, faces, device=cpu, preprocess=Preprocess(**CUSTOM)).numpy()
    np.testing.assert_allclose(got, expected, atol=1e-5)
    default = predict_proba(model, faces, device=cpu,
                            preprocess=Preprocess(image_size=52, input_size=36)).numpy()
    assert not np.allclose(got, default, atol=1e-4)


def test_trainer_normalises_as_the_checkpoint_says(fer_files: tuple[Path, Path], tmp_path: Path,
                                                   monkeypatch: pytest.MonkeyPatch) -> None:
    """Every epoch and the final evaluation use the Preprocess stored in best.pt."""
    import ferbatch.train.build as build
    import ferbatch.train.main as train_main

    seen: list[Preprocess] = []

    def spy(real):
        def wrapper(*args, **kwargs):
            seen.append(kwargs["preprocess"])
            return real(*args, **kwargs)
        return wrapper

    monkeypatch.setattr(build, "train_one_epoch", spy(build.train_one_epoch))
    monkeypatch.setattr(build, "evaluate", spy(build.evaluate))
    monkeypatch.setattr(train_main, "evaluate", spy(train_main.evaluate))
    custom = dict(CUSTOM, image_size=48, input_size=40)
    main(tiny_args(fer_files[0], tmp_path, eval_test=True, **custom))
    ckpt = load_checkpoint(tmp_path / "best.pt")
    assert ckpt.preprocess == Preprocess(**custom)
    assert len(seen) == 3 and all(p == ckpt.preprocess for p in seen)  # train, val, test
    assert ckpt.train_config["mean"] == 0.45 and ckpt.train_config["std"] == 0.3


def test_inference_does_not_import_the_trainer() -> None:
    code = ("import sys, ferbatch.classify; "
            "print(sorted(m for m in sys.modules if m.startswith('ferbatch.train')))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         check=True).stdout.strip()
    assert out == "[]"
