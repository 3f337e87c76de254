"""One training epoch (``ferbatch.train.engine``): FER+ probability mode samples hard labels."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from ferbatch.models.preprocess import Preprocess
from ferbatch.train.data import FaceData
from ferbatch.train.engine import train_one_epoch
from ferbatch.train.transforms import PRESETS

from train_data import TINY_MODEL


def test_soft_sampling_draws_hard_labels(monkeypatch: pytest.MonkeyPatch) -> None:
    """FER+ probability mode: each batch's soft targets become sampled hard labels."""
    from ferbatch.models import create_model

    torch.manual_seed(0)
    n = 64
    images = torch.randint(0, 256, (n, 48, 48), dtype=torch.uint8)
    targets = torch.zeros(n, 3)
    targets[:, 1] = 1.0
    model = create_model("vgg_gap", num_classes=3, input_size=40, **TINY_MODEL)
    opt = torch.optim.SGD(model.parameters(), lr=0.01)
    draws: list[torch.Tensor] = []
    real = torch.multinomial

    def spy(*args, **kwargs):
        out = real(*args, **kwargs)
        draws.append(out)
        return out

    monkeypatch.setattr(torch, "multinomial", spy)

    def epoch(data: FaceData) -> float:
        return train_one_epoch(model, data, opt, device=torch.device("cpu"), batch_size=32,
                               preprocess=Preprocess(input_size=40), preset=PRESETS["none"],
                               class_weights=None, label_smoothing=0.0, mixup_alpha=0.0,
                               amp=False, channels_last=False,
                               generator=torch.Generator().manual_seed(0)).loss

    assert np.isfinite(epoch(FaceData(images, targets, ["a", "b", "c"], "t", soft_sampling=True)))
    assert len(draws) == 2 and all(d.shape == (32, 1) and bool((d == 1).all()) for d in draws)
    draws.clear()
    epoch(FaceData(images, targets, ["a", "b", "c"], "t"))  # crossentropy: no sampling
    assert draws == []
    mixed = FaceData(images, torch.full((n, 3), 1 / 3), ["a", "b", "c"], "t", soft_sampling=True)
    assert mixed.subset(torch.arange(4)).soft_sampling
    epoch(mixed)
    labels = torch.cat(draws).flatten()
    assert set(labels.tolist()) == {0, 1, 2}
