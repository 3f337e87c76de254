"""Batch augmentation and the eval transform, in one place.

Training augments whole uint8 batches on the training device: one ``affine_grid`` /
``grid_sample`` per batch does random scale (resized crop), shift, rotation and horizontal
flip; brightness/contrast and random erasing are per-sample tensor ops; mixup is optional.
Evaluation centre-crops ``input_size`` from ``image_size`` with the same sampling
(:func:`ferbatch.models.preprocess.center_crop`, re-exported here), so the geometry of train and
test (and of the pipeline's face crops) cannot drift.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass

import torch

from ..errors import ConfigError
from ..models.preprocess import affine_resample, center_crop, normalize

__all__ = ["AugmentPreset", "PRESETS", "get_preset", "augment_batch", "mixup", "ten_crop_views",
           "center_crop", "normalize"]


@dataclass(frozen=True)
class AugmentPreset:
    """Strength of each augmentation; ``none`` disables all of them."""

    scale: tuple[float, float] = (0.85, 1.15)  # zoom factor around the nominal centre crop
    shift: float = 0.08  # max shift, fraction of the image side
    rotation_deg: float = 10.0
    flip: bool = True
    brightness: float = 0.25
    contrast: float = 0.25
    erase_p: float = 0.5
    erase_area: tuple[float, float] = (0.02, 0.2)

    def to_dict(self) -> dict[str, object]:
        return asdict(self)


PRESETS: dict[str, AugmentPreset] = {
    "none": AugmentPreset(scale=(1.0, 1.0), shift=0.0, rotation_deg=0.0, flip=False,
                          brightness=0.0, contrast=0.0, erase_p=0.0),
    "light": AugmentPreset(scale=(0.95, 1.05), shift=0.05, rotation_deg=5.0, flip=True,
                           brightness=0.1, contrast=0.1, erase_p=0.0),
    "standard": AugmentPreset(),
    "strong": AugmentPreset(scale=(0.8, 1.2), shift=0.12, rotation_deg=15.0, flip=True,
                            brightness=0.35, contrast=0.35, erase_p=0.6, erase_area=(0.02, 0.25)),
}


def get_preset(name: str) -> AugmentPreset:
    """The preset called ``name``; raises :class:`ConfigError` listing the valid names."""
    try:
        return PRESETS[name]
    except KeyError:
        raise ConfigError(f"unknown augmentation preset {name!r}; choose from {sorted(PRESETS)}") from None


def augment_batch(images: torch.Tensor, input_size: int, preset: AugmentPreset,
                  generator: torch.Generator | None = None) -> torch.Tensor:
    """Random geometric + photometric augmentation of a uint8 N×H×W batch → float N×1×S×S
    in [0, 255] (normalisation is applied by the caller)."""
    x = images.float().unsqueeze(1)
    n, device = x.shape[0], x.device
    h = x.shape[-1]

    def uniform(lo: float, hi: float, *shape: int) -> torch.Tensor:
        return torch.rand(*shape or (n,), generator=generator, device=device) * (hi - lo) + lo

    ratio = input_size / h
    scale = ratio / uniform(*preset.scale)
    angle = uniform(-preset.rotation_deg, preset.rotation_deg) * (math.pi / 180.0)
    flip = torch.ones(n, device=device)
    if preset.flip:
        flip = torch.where(torch.rand(n, generator=generator, device=device) < 0.5, -1.0, 1.0)
    cos, sin = torch.cos(angle) * scale, torch.sin(angle) * scale
    theta = torch.zeros(n, 2, 3, device=device)
    theta[:, 0, 0] = cos * flip
    theta[:, 0, 1] = -sin
    theta[:, 1, 0] = sin * flip
    theta[:, 1, 1] = cos
    theta[:, 0, 2] = uniform(-preset.shift, preset.shift) * 2
    theta[:, 1, 2] = uniform(-preset.shift, preset.shift) * 2
    x = affine_resample(x, theta, input_size)

    if preset.brightness > 0 or preset.contrast > 0:
        mean = x.mean(dim=(1, 2, 3), keepdim=True)
        c = uniform(1 - preset.contrast, 1 + preset.contrast).view(n, 1, 1, 1)
        b = uniform(-preset.brightness, preset.brightness).view(n, 1, 1, 1) * 255.0
        x = ((x - mean) * c + mean + b).clamp_(0, 255)

    if preset.erase_p > 0:
        area = uniform(*preset.erase_area) * input_size * input_size
        aspect = torch.exp(uniform(math.log(0.3), math.log(3.3)))
        eh = (area * aspect).sqrt().clamp(1, input_size)
        ew = (area / aspect).sqrt().clamp(1, input_size)
        y0 = uniform(0, 1) * (input_size - eh)
        x0 = uniform(0, 1) * (input_size - ew)
        coords = torch.arange(input_size, device=device, dtype=torch.float32)
        rows = (coords.view(1, -1) >= y0.view(-1, 1)) & (coords.view(1, -1) < (y0 + eh).view(-1, 1))
        cols = (coords.view(1, -1) >= x0.view(-1, 1)) & (coords.view(1, -1) < (x0 + ew).view(-1, 1))
        mask = rows.unsqueeze(2) & cols.unsqueeze(1)
        mask &= (torch.rand(n, generator=generator, device=device) < preset.erase_p).view(n, 1, 1)
        noise = torch.rand(x.shape, generator=generator, device=device) * 255.0
        x = torch.where(mask.unsqueeze(1), noise, x)
    return x


def mixup(x: torch.Tensor, y: torch.Tensor, alpha: float,
          generator: torch.Generator | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    """Mix each sample with a random partner; ``y`` must be soft (N×C) targets."""
    lam = float(torch.distributions.Beta(alpha, alpha).sample())
    perm = torch.randperm(x.shape[0], generator=generator, device="cpu").to(x.device)
    return lam * x + (1 - lam) * x[perm], lam * y + (1 - lam) * y[perm]


def ten_crop_views(images: torch.Tensor, input_size: int) -> list[torch.Tensor]:
    """The ten-crop test-time views (4 corners + centre, and their mirrors) of N×H×W faces."""
    x = images.float()
    if x.ndim == 3:
        x = x.unsqueeze(1)
    h, s = x.shape[-1], input_size
    offsets = [(0, 0), (0, h - s), (h - s, 0), (h - s, h - s), ((h - s) // 2, (h - s) // 2)]
    views = [x[..., r:r + s, c:c + s] for r, c in offsets]
    return views + [v.flip(-1) for v in views]
