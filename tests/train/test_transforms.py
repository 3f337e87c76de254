"""Training augmentation (``ferbatch.train.transforms``): shapes, range, determinism."""

from __future__ import annotations

import pytest
import torch

from ferbatch.train.transforms import PRESETS, augment_batch


@pytest.mark.parametrize("preset", sorted(PRESETS))
def test_augment_batch_shape_range_determinism(preset: str) -> None:
    images = torch.randint(0, 256, (8, 48, 48), dtype=torch.uint8)
    gen_a, gen_b = torch.Generator().manual_seed(3), torch.Generator().manual_seed(3)
    a = augment_batch(images, 40, PRESETS[preset], gen_a)
    b = augment_batch(images, 40, PRESETS[preset], gen_b)
    assert a.shape == (8, 1, 40, 40) and a.dtype == torch.float32
    assert float(a.min()) >= 0.0 and float(a.max()) <= 255.0
    assert torch.equal(a, b)
    if preset != "none":
        c = augment_batch(images, 40, PRESETS[preset], torch.Generator().manual_seed(4))
        assert not torch.equal(a, c)
    else:  # no augmentation = the centre crop
        assert torch.allclose(a, images[:, 4:44, 4:44].float().unsqueeze(1), atol=1e-3)
