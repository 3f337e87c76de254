"""The three MTCNN networks (Zhang et al., 2016) with the weights shipped in facenet-pytorch.

Why not ``import facenet_pytorch``: its package ``__init__`` imports torchvision's Python
package, whose ``ops`` import ``torch._dynamo`` — about 170 MB of resident memory and a second
of start-up per process for nothing the pipeline uses. The networks are small and their layout
is fixed by the paper and by the state dicts in facenet-pytorch's wheel
(``facenet_pytorch/data/{pnet,rnet,onet}.pt``), which are found with
:func:`importlib.util.find_spec` (that does not run the package) and loaded with
``weights_only=True``. ``tests/test_detect.py`` checks these modules give exactly facenet-pytorch's
outputs.

The fully connected layers of R-Net / O-Net were converted from Caffe, which flattens feature
maps as (W, H, C): the features are transposed the same way before flattening.
"""

from __future__ import annotations

import importlib.util
from pathlib import Path

import torch
from torch import nn

from .errors import ModelError


def _conv_block(layers: list[tuple[int, int, int, int | None]], owner: nn.Module) -> list[str]:
    """Add ``conv{i}`` + ``prelu{i}`` (+ a ceil-mode max pool) per (in, out, kernel, pool) row;
    returns the forward order of the attribute names."""
    order = []
    for i, (cin, cout, kernel, pool) in enumerate(layers, start=1):
        setattr(owner, f"conv{i}", nn.Conv2d(cin, cout, kernel_size=kernel))
        setattr(owner, f"prelu{i}", nn.PReLU(cout))
        order += [f"conv{i}", f"prelu{i}"]
        if pool:
            setattr(owner, f"pool{i}", nn.MaxPool2d(pool, 2, ceil_mode=True))
            order.append(f"pool{i}")
    return order


class _Trunk(nn.Module):
    """Shared forward over the convolutional layers named in ``self._order``."""

    _order: list[str]

    def trunk(self, x: torch.Tensor) -> torch.Tensor:
        for name in self._order:
            x = getattr(self, name)(x)
        return x


class PNet(_Trunk):
    """Proposal net: fully convolutional, 12×12 receptive field → (box offsets, face prob)."""

    def __init__(self) -> None:
        super().__init__()
        # the first pool is 2×2 here (3×3 in R-Net / O-Net)
        self._order = _conv_block([(3, 10, 3, 2), (10, 16, 3, None), (16, 32, 3, None)], self)
        self.conv4_1 = nn.Conv2d(32, 2, kernel_size=1)
        self.conv4_2 = nn.Conv2d(32, 4, kernel_size=1)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        x = self.trunk(x)
        return self.conv4_2(x), torch.softmax(self.conv4_1(x), dim=1)


class RNet(_Trunk):
    """Refine net on 24×24 crops → (box offsets, face prob)."""

    def __init__(self) -> None:
        super().__init__()
        self._order = _conv_block([(3, 28, 3, 3), (28, 48, 3, 3), (48, 64, 2, None)], self)
        self.dense4 = nn.Linear(576, 128)
        self.prelu4 = nn.PReLU(128)
        self.dense5_1 = nn.Linear(128, 2)
        self.dense5_2 = nn.Linear(128, 4)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        x = self.trunk(x).permute(0, 3, 2, 1).flatten(1)  # Caffe's (W, H, C) flattening
        x = self.prelu4(self.dense4(x))
        return self.dense5_2(x), torch.softmax(self.dense5_1(x), dim=1)


class ONet(_Trunk):
    """Output net on 48×48 crops → (box offsets, 5 landmarks, face prob)."""

    def __init__(self) -> None:
        super().__init__()
        self._order = _conv_block(
            [(3, 32, 3, 3), (32, 64, 3, 3), (64, 64, 3, 2), (64, 128, 2, None)], self)
        self.dense5 = nn.Linear(1152, 256)
        self.prelu5 = nn.PReLU(256)
        self.dense6_1 = nn.Linear(256, 2)
        self.dense6_2 = nn.Linear(256, 4)
        self.dense6_3 = nn.Linear(256, 10)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        x = self.trunk(x).permute(0, 3, 2, 1).flatten(1)
        x = self.prelu5(self.dense5(x))
        return self.dense6_2(x), self.dense6_3(x), torch.softmax(self.dense6_1(x), dim=1)


def weights_dir() -> Path:
    """facenet-pytorch's ``data/`` folder, located without importing the package."""
    spec = importlib.util.find_spec("facenet_pytorch")
    if spec is None or not spec.submodule_search_locations:
        raise ModelError("facenet-pytorch is not installed: it provides the MTCNN weights "
                         "(run `make setup`, or `pip install --no-deps facenet-pytorch==2.6.0`)")
    return Path(next(iter(spec.submodule_search_locations))) / "data"


def load_nets(device: torch.device) -> tuple[PNet, RNet, ONet]:
    """The three networks with facenet-pytorch's weights, in eval mode on ``device``, stored
    channels-last (feed them channels-last inputs)."""
    folder = weights_dir()
    nets = []
    for name, cls in (("pnet", PNet), ("rnet", RNet), ("onet", ONet)):
        path = folder / f"{name}.pt"
        net = cls()
        try:
            state = torch.load(path, map_location="cpu", weights_only=True)
            net.load_state_dict(state)
        except (OSError, RuntimeError) as exc:
            raise ModelError(f"cannot load MTCNN weights {path}: {exc}") from exc
        # channels-last: the CPU max-pool and convolution kernels are 2-3x faster on it
        nets.append(net.to(device, memory_format=torch.channels_last).eval())
    return nets[0], nets[1], nets[2]  # type: ignore[return-value]
