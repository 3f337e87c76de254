"""How a face becomes a model's input tensor — defined once, for training and inference.

:class:`Preprocess` travels inside every checkpoint (as timm's pretrained config does), and the
trainer builds its own from :class:`~ferbatch.train.args.TrainArgs` (whose defaults are these),
so what training fed the model and what inference feeds it cannot drift. :func:`center_crop` and
:func:`normalize` are the two tensor steps both sides run; :func:`affine_resample` is the
resampling the trainer's augmentation shares with the centre crop.

Importing this module does not import torch (the CLI reads the defaults at start-up).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import torch


@dataclass
class Preprocess:
    """How a face becomes the model's input tensor.

    Faces are cropped square around the detector's box, scaled by ``crop_scale`` (FER2013 faces
    are loosely framed) and shifted down by ``crop_shift_y`` box heights, converted to grey,
    resized to ``image_size`` px, then centre-cropped to ``input_size`` px; grey levels
    ``x`` in [0, 255] become ``(x / 255 - mean) / std``.
    """

    image_size: int = 48
    input_size: int = 40
    mean: float = 0.5
    std: float = 0.25
    crop_scale: float = 0.95
    crop_shift_y: float = 0.0
    align_eyes: bool = True

    def normalize(self, x: torch.Tensor) -> torch.Tensor:
        """:func:`normalize` with this preprocessing's ``mean`` / ``std``."""
        return normalize(x, self.mean, self.std)

    def to_input(self, faces: torch.Tensor) -> torch.Tensor:
        """uint8 N×image_size×image_size faces → normalised float32 N×1×input_size×input_size."""
        return self.normalize(center_crop(faces, self.input_size))


def normalize(x: torch.Tensor, mean: float, std: float) -> torch.Tensor:
    """uint8 or float grey levels in [0, 255] → float32 ``(x / 255 - mean) / std``."""
    return (x.float() / 255.0 - mean) / std


def affine_resample(images: torch.Tensor, theta: torch.Tensor, out_size: int) -> torch.Tensor:
    """Resample N×1×H×W float images through N×2×3 affine matrices (normalised coordinates)
    to N×1×out_size×out_size (bilinear, border padding, ``align_corners=False``)."""
    import torch.nn.functional as F

    grid = F.affine_grid(theta, [images.shape[0], 1, out_size, out_size], align_corners=False)
    return F.grid_sample(images, grid, mode="bilinear", padding_mode="border", align_corners=False)


def center_crop(images: torch.Tensor, input_size: int) -> torch.Tensor:
    """Centre crop N×H×W (or N×1×H×W) uint8/float square faces to N×1×S×S float in [0, 255].

    An even margin is cut exactly; an odd one is resampled (the same sampling as training's
    augmentation) so the crop stays centred.
    """
    import torch

    x = images.float()
    if x.ndim == 3:
        x = x.unsqueeze(1)
    h = x.shape[-1]
    if h == input_size:
        return x
    off = (h - input_size) // 2
    if (h - input_size) % 2 == 0:
        return x[..., off:off + input_size, off:off + input_size]
    ratio = input_size / h
    theta = torch.zeros(x.shape[0], 2, 3, device=x.device)
    theta[:, 0, 0] = ratio
    theta[:, 1, 1] = ratio
    return affine_resample(x, theta, input_size)
