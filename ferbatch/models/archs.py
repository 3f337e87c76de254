"""Facial-expression architectures, all taking 1-channel square grey faces.

- The seed projects' nets, so their results can be reproduced: ``baseline_cnn``,
  ``cnn4_dense1024``, ``complex_cnn``, ``cnn4_bn_noise``.
- The nets behind the strongest from-scratch FER2013 single models: ``vgg_gap`` (VGG-style
  blocks, global average pooling instead of huge dense layers) and ``resnet18_cifar``.
- torchvision backbones for transfer learning (``tv_*``), adapted to 1-channel input; their
  ImageNet weights load only from a local file the user gives (``pretrained_path``).
"""

from __future__ import annotations

from pathlib import Path

import torch
from torch import nn

from ..errors import ModelError
from .registry import register_model


class GaussianNoise(nn.Module):
    """Adds N(0, sigma) noise during training only (a Keras GaussianNoise equivalent)."""

    def __init__(self, sigma: float = 0.1) -> None:
        super().__init__()
        self.sigma = sigma

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.training and self.sigma > 0:
            return x + torch.randn_like(x) * self.sigma
        return x


def _flat_features(features: nn.Module, input_size: int) -> int:
    """Number of features ``features`` yields for one input image (shape inference)."""
    with torch.no_grad():
        was_training = features.training
        features.eval()
        n = features(torch.zeros(1, 1, input_size, input_size)).numel()
        features.train(was_training)
    return n


def _dense_head(in_features: int, widths: list[int], num_classes: int, dropout: float,
                batchnorm: bool = False, act: type[nn.Module] = nn.ReLU) -> nn.Sequential:
    layers: list[nn.Module] = [nn.Flatten()]
    prev = in_features
    for width in widths:
        layers.append(nn.Linear(prev, width))
        if batchnorm:
            layers.append(nn.BatchNorm1d(width))
        layers.append(act())
        if dropout > 0:
            layers.append(nn.Dropout(dropout))
        prev = width
    layers.append(nn.Linear(prev, num_classes))
    return nn.Sequential(*layers)


class SequentialNet(nn.Module):
    """features → head, with the flattened size computed from ``input_size``."""

    def __init__(self, features: nn.Module, head_widths: list[int], num_classes: int,
                 input_size: int, dropout: float, batchnorm_head: bool = False,
                 act: type[nn.Module] = nn.ReLU) -> None:
        super().__init__()
        self.features = features
        self.head = _dense_head(_flat_features(features, input_size), head_widths, num_classes,
                                dropout, batchnorm_head, act)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.features(x))


@register_model
def baseline_cnn(num_classes: int, input_size: int = 48, dropout: float = 0.5) -> nn.Module:
    """Seed baseline: 3 conv layers (16/32/64 filters, 5×5/5×5/3×3), dense 128."""
    features = nn.Sequential(
        nn.Conv2d(1, 16, 5, padding=2), nn.ReLU(), nn.MaxPool2d(2),
        nn.Conv2d(16, 32, 5, padding=2), nn.ReLU(), nn.MaxPool2d(2),
        nn.Conv2d(32, 64, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),
    )
    return SequentialNet(features, [128], num_classes, input_size, dropout)


@register_model
def cnn4_dense1024(num_classes: int, input_size: int = 48, dropout: float = 0.5) -> nn.Module:
    """Seed net: 4 conv layers 32-64-128-128, dense 1024 with dropout."""
    features = nn.Sequential(
        nn.Conv2d(1, 32, 3, padding=1), nn.ReLU(),
        nn.Conv2d(32, 64, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2), nn.Dropout(0.25),
        nn.Conv2d(64, 128, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),
        nn.Conv2d(128, 128, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2), nn.Dropout(0.25),
    )
    return SequentialNet(features, [1024], num_classes, input_size, dropout)


def _bn_block(cin: int, cout: int, act: type[nn.Module], pool: bool = True,
              dropout: float = 0.0) -> list[nn.Module]:
    layers: list[nn.Module] = [nn.Conv2d(cin, cout, 3, padding=1, bias=False),
                               nn.BatchNorm2d(cout), act()]
    if pool:
        layers.append(nn.MaxPool2d(2))
    if dropout > 0:
        layers.append(nn.Dropout(dropout))
    return layers


class _LeakyReLU(nn.LeakyReLU):
    def __init__(self) -> None:
        super().__init__(0.1)


@register_model
def complex_cnn(num_classes: int, input_size: int = 48, dropout: float = 0.4,
                noise: float = 0.1) -> nn.Module:
    """Seed "complex CNN": 5 blocks 32→512 with batch-norm, LeakyReLU, Gaussian noise,
    dense 256/512."""
    widths = [32, 64, 128, 256, 512]
    layers: list[nn.Module] = [GaussianNoise(noise)]
    prev = 1
    for i, width in enumerate(widths):
        layers += _bn_block(prev, width, _LeakyReLU, pool=i < 4, dropout=0.1)
        prev = width
    return SequentialNet(nn.Sequential(*layers), [256, 512], num_classes, input_size, dropout,
                         batchnorm_head=True, act=_LeakyReLU)


@register_model
def cnn4_bn_noise(num_classes: int, input_size: int = 48, dropout: float = 0.4,
                  noise: float = 0.1) -> nn.Module:
    """Seed net: 4 conv layers with batch-norm, dropout and Gaussian noise, dense 256/512/100."""
    layers: list[nn.Module] = [GaussianNoise(noise)]
    prev = 1
    for width in [64, 128, 256, 512]:
        layers += _bn_block(prev, width, nn.ReLU, pool=True, dropout=0.25)
        prev = width
    return SequentialNet(nn.Sequential(*layers), [256, 512, 100], num_classes, input_size,
                         dropout, batchnorm_head=True)


class VGGGap(nn.Module):
    """VGG-style net: blocks of 3×3 conv-BN-ReLU, max-pool between blocks, global average
    pooling and one linear layer. ``width`` scales every block's channels."""

    def __init__(self, num_classes: int, widths: tuple[int, ...], convs_per_block: int,
                 dropout: float) -> None:
        super().__init__()
        layers: list[nn.Module] = []
        prev = 1
        for i, width in enumerate(widths):
            for _ in range(convs_per_block):
                layers += [nn.Conv2d(prev, width, 3, padding=1, bias=False),
                           nn.BatchNorm2d(width), nn.ReLU(inplace=True)]
                prev = width
            if i < len(widths) - 1:
                layers.append(nn.MaxPool2d(2))
        self.features = nn.Sequential(*layers)
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.dropout = nn.Dropout(dropout)
        self.fc = nn.Linear(prev, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.pool(self.features(x)).flatten(1)
        return self.fc(self.dropout(x))


#: ``vgg_gap``'s defaults, shared by ``vgg_gap_ensemble`` and :mod:`ferbatch.models.ensemble`
VGG_GAP_DEFAULTS: dict[str, int | float] = {"width": 64, "convs_per_block": 2, "dropout": 0.3}


@register_model
def vgg_gap(num_classes: int, input_size: int = 44, width: int = int(VGG_GAP_DEFAULTS["width"]),
            convs_per_block: int = int(VGG_GAP_DEFAULTS["convs_per_block"]),
            dropout: float = VGG_GAP_DEFAULTS["dropout"]) -> nn.Module:
    """VGG-style net with global average pooling (4 blocks: width×1, ×2, ×4, ×8)."""
    del input_size  # fully convolutional: any input size ≥ 16 works
    widths = (width, width * 2, width * 4, width * 8)
    return VGGGap(num_classes, widths, convs_per_block, dropout)


class LogitMean(nn.Module):
    """An ensemble: the mean of its members' logits (each member sees the same input).

    Averaging logits (not probabilities) is the ensemble the trainer distils from
    (:mod:`ferbatch.train.distill`): its softmax is the normalised geometric mean of the
    members' distributions (Hinton et al. 2015). ``members`` is an :class:`torch.nn.ModuleList`,
    so member ``k``'s weights are the state-dict entries ``members.k.*``.
    """

    def __init__(self, members: list[nn.Module]) -> None:
        super().__init__()
        if not members:
            raise ModelError("an ensemble needs at least one member")
        self.members = nn.ModuleList(members)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """N×1×S×S faces → N×C mean logits."""
        out = self.members[0](x)
        for member in self.members[1:]:
            out = out + member(x)
        return out / len(self.members)


@register_model
def vgg_gap_ensemble(num_classes: int, input_size: int = 44,
                     widths: tuple[int, ...] | list[int] = (32, 32),
                     convs_per_block: int = int(VGG_GAP_DEFAULTS["convs_per_block"]),
                     dropout: float = VGG_GAP_DEFAULTS["dropout"]) -> nn.Module:
    """Ensemble of vgg_gap nets (one per entry of widths), their logits averaged.

    ``ferbatch ensemble`` makes one from independently trained ``vgg_gap`` checkpoints;
    training this architecture directly trains its members jointly, on the loss of their mean.
    """
    if not widths or any(int(w) < 1 for w in widths):
        raise ModelError(f"widths must be a non-empty list of positive channel counts, got {widths!r}")
    return LogitMean([vgg_gap(num_classes, input_size, int(w), convs_per_block, dropout)
                      for w in widths])


class _BasicBlock(nn.Module):
    def __init__(self, cin: int, cout: int, stride: int) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(cin, cout, 3, stride, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(cout)
        self.conv2 = nn.Conv2d(cout, cout, 3, 1, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(cout)
        self.relu = nn.ReLU(inplace=True)
        self.shortcut: nn.Module = nn.Identity()
        if stride != 1 or cin != cout:
            self.shortcut = nn.Sequential(nn.Conv2d(cin, cout, 1, stride, bias=False),
                                          nn.BatchNorm2d(cout))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.relu(self.bn1(self.conv1(x)))
        out = self.bn2(self.conv2(out))
        return self.relu(out + self.shortcut(x))


class CifarResNet18(nn.Module):
    """ResNet-18 in its CIFAR form (3×3 stem, no stem pooling), 1-channel input."""

    def __init__(self, num_classes: int, width: int, dropout: float) -> None:
        super().__init__()
        self.stem = nn.Sequential(nn.Conv2d(1, width, 3, 1, 1, bias=False),
                                  nn.BatchNorm2d(width), nn.ReLU(inplace=True))
        layers: list[nn.Module] = []
        prev = width
        for i, mult in enumerate((1, 2, 4, 8)):
            cout = width * mult
            stride = 1 if i == 0 else 2
            layers += [_BasicBlock(prev, cout, stride), _BasicBlock(cout, cout, 1)]
            prev = cout
        self.layers = nn.Sequential(*layers)
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.dropout = nn.Dropout(dropout)
        self.fc = nn.Linear(prev, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.pool(self.layers(self.stem(x))).flatten(1)
        return self.fc(self.dropout(x))


@register_model
def resnet18_cifar(num_classes: int, input_size: int = 44, width: int = 64,
                   dropout: float = 0.2) -> nn.Module:
    """CIFAR-style ResNet-18 for 40–44 px grey faces."""
    del input_size
    return CifarResNet18(num_classes, width, dropout)


def _load_local_weights(model: nn.Module, path: str | None) -> None:
    """Load ImageNet weights from a local file (never downloaded); 3-channel stems are summed
    to 1 channel, and a classifier of the wrong size is skipped."""
    if path is None:
        return
    file = Path(path)
    if not file.is_file():
        raise ModelError(f"pretrained weights not found: {path}")
    from .checkpoint import safe_torch_load

    state = safe_torch_load(file, "pretrained weights")
    if isinstance(state, dict) and "state_dict" in state:
        state = state["state_dict"]
    own = model.state_dict()
    adapted = {}
    for key, value in state.items():
        if key not in own:
            continue
        if value.ndim == 4 and value.shape[1] == 3 and own[key].shape[1] == 1:
            value = value.sum(dim=1, keepdim=True)
        if value.shape == own[key].shape:
            adapted[key] = value
    if not adapted:
        raise ModelError(f"no tensor in {path} matches the architecture")
    model.load_state_dict(adapted, strict=False)


def _first_conv_to_grey(module: nn.Module) -> None:
    """Replace the first 3-channel Conv2d found in ``module`` by a 1-channel one."""
    for name, child in module.named_children():
        if isinstance(child, nn.Conv2d) and child.in_channels == 3:
            new = nn.Conv2d(1, child.out_channels, child.kernel_size, child.stride,
                            child.padding, bias=child.bias is not None)
            setattr(module, name, new)
            return
        if any(True for _ in child.children()):
            before = sum(1 for m in child.modules() if isinstance(m, nn.Conv2d) and m.in_channels == 3)
            if before:
                _first_conv_to_grey(child)
                return


def _replace_classifier(model: nn.Module, num_classes: int) -> None:
    """Swap the last Linear layer for one with ``num_classes`` outputs."""
    parent, attr, last = None, None, None
    for module in model.modules():
        for child_name, child in module.named_children():
            if isinstance(child, nn.Linear):
                parent, attr, last = module, child_name, child
    if last is None or parent is None or attr is None:
        raise ModelError("backbone has no linear classifier to replace")
    setattr(parent, attr, nn.Linear(last.in_features, num_classes))


def _torchvision_backbone(builder_name: str, num_classes: int,
                          pretrained_path: str | None) -> nn.Module:
    import torchvision.models as tvm

    model = getattr(tvm, builder_name)(weights=None)
    _first_conv_to_grey(model)
    _load_local_weights(model, pretrained_path)
    _replace_classifier(model, num_classes)
    return model


def _register_backbone(tv_name: str) -> None:
    def builder(num_classes: int, input_size: int = 48,
                pretrained_path: str | None = None) -> nn.Module:
        del input_size  # torchvision backbones pool adaptively
        return _torchvision_backbone(tv_name, num_classes, pretrained_path)

    builder.__name__ = f"tv_{tv_name}"
    builder.__doc__ = f"torchvision {tv_name} adapted to 1-channel input (transfer learning)."
    register_model(builder)


for _name in ("vgg16", "mobilenet_v2", "mobilenet_v3_small", "mobilenet_v3_large", "resnet18",
              "efficientnet_b0"):
    _register_backbone(_name)
