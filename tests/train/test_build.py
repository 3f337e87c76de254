"""The setup shared by train and tune (``ferbatch.train.build``): class weights, optimisers,
build_training."""

from __future__ import annotations

import pytest
import torch

from ferbatch.errors import ConfigError
from ferbatch.models import create_model
from ferbatch.train.build import build_optimizer, build_training, compute_class_weights
from ferbatch.train.data import FaceData

from train_data import TINY_MODEL, tiny_args


def _data(counts: list[int]) -> FaceData:
    targets = torch.cat([torch.full((n,), i) for i, n in enumerate(counts)])
    images = torch.zeros(len(targets), 48, 48, dtype=torch.uint8)
    return FaceData(images, targets, [f"c{i}" for i in range(len(counts))], "t")


def test_class_weights() -> None:
    data = _data([10, 40, 0])
    assert compute_class_weights(data, "none") is None
    balanced = compute_class_weights(data, "balanced")
    raw = torch.tensor([1 / 10, 1 / 40, 1.0])  # an empty class counts once
    assert torch.allclose(balanced, raw * 3 / raw.sum())
    assert float(balanced.mean()) == pytest.approx(1.0)
    sqrt = compute_class_weights(data, "sqrt")
    raw = 1 / torch.tensor([10.0, 40.0, 1.0]).sqrt()
    assert torch.allclose(sqrt, raw * 3 / raw.sum())
    assert float(sqrt[0] / sqrt[1]) == pytest.approx(2.0)
    with pytest.raises(ConfigError, match="class weighting"):
        compute_class_weights(data, "inverse")


def test_optimizers() -> None:
    model = create_model("vgg_gap", num_classes=3, input_size=40, **TINY_MODEL)
    adamw = build_optimizer(model, name="adamw", lr=1e-3, weight_decay=0.01)
    assert isinstance(adamw, torch.optim.AdamW)
    decay, no_decay = adamw.param_groups
    assert decay["weight_decay"] == 0.01 and no_decay["weight_decay"] == 0.0
    assert all(p.ndim > 1 for p in decay["params"]) and all(p.ndim <= 1 for p in no_decay["params"])
    assert decay["lr"] == 1e-3
    sgd = build_optimizer(model, name="sgd", lr=0.05, weight_decay=5e-4, momentum=0.8)
    assert isinstance(sgd, torch.optim.SGD)
    assert sgd.param_groups[0]["nesterov"] and sgd.param_groups[0]["momentum"] == 0.8
    with pytest.raises(ConfigError, match="unknown optimizer"):
        build_optimizer(model, name="lamb", lr=0.1, weight_decay=0.0)


def test_build_training_follows_args(tmp_path) -> None:
    args = tiny_args(tmp_path, tmp_path, optimizer="adamw", lr=0.002, epochs=3, batch_size=8,
                     warmup_epochs=1, schedule="cosine", class_weights="sqrt", mean=0.4,
                     std=0.3, input_size=36, device="cpu")
    data = _data([20, 12])
    run = build_training(args, data)
    assert isinstance(run.optimizer, torch.optim.AdamW)
    assert run.schedule.total == 3 * 4 and run.schedule.warmup == 4  # 32 images / 8
    assert run.optimizer.param_groups[0]["lr"] == pytest.approx(0.002 / 4)  # warm-up step 1
    assert run.class_weights is not None and run.class_weights.shape == (2,)
    assert run.preprocess == args.preprocess()
    assert (run.preprocess.mean, run.preprocess.std, run.preprocess.input_size) == (0.4, 0.3, 36)
    assert run.device == torch.device("cpu")
    # seeded: the same args build the same initial weights
    again = build_training(args, data)
    first = next(iter(run.model.state_dict().values()))
    assert torch.equal(first, next(iter(again.model.state_dict().values())))


def test_one_loss_scaler_serves_every_epoch(tmp_path, monkeypatch) -> None:
    """The fp16 loss scale a run has found carries over: every epoch gets the run's scaler,
    not a fresh one (whose scale would restart at 2**16)."""
    import ferbatch.train.build as build

    args = tiny_args(tmp_path, tmp_path, epochs=2, batch_size=8, device="cpu")
    run = build.build_training(args, _data([8, 8]))
    assert isinstance(run.scaler, torch.amp.GradScaler)
    seen = []
    real = build.train_one_epoch

    def spy(*a, **kw):
        seen.append(kw["scaler"])
        return real(*a, **kw)

    monkeypatch.setattr(build, "train_one_epoch", spy)
    for epoch in (1, 2):
        build.run_epoch(run, _data([8, 8]), None, epoch)
    assert len(seen) == 2 and seen[0] is seen[1] is run.scaler
