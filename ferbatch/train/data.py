"""What every dataset loader returns: :class:`FaceData`, one preloaded split, and the helpers
the loaders share (file and content hashes, class selection).

A split is one ``uint8`` tensor ``N×H×W`` of grey faces and integer targets (or soft targets
over the label set), so training augments whole batches with tensor ops and never touches files
or PIL per image. The loaders themselves live in :mod:`ferbatch.train.datasets`.

Parsed FER2013 CSVs (~85 MB each) are cached in :func:`cache_dir`: ``$FERBATCH_CACHE_DIR``
(``off`` disables the cache), else ``$XDG_CACHE_HOME/ferbatch``, else ``~/.cache/ferbatch``.
"""

from __future__ import annotations

import hashlib
import os
from dataclasses import dataclass, field, replace
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from ..errors import DataError
from ..models.checkpoint import file_sha256
from .labels import canonical_label


@dataclass
class FaceData:
    """One split: ``images`` uint8 N×H×W, ``targets`` int64 N (or float32 N×C soft targets).

    ``soft_sampling``: training draws one hard label per sample and batch from the soft
    targets instead of using them as cross-entropy targets (FER+ ``probability`` mode).
    ``left_out``: rows of the source split the loader dropped, reason → count (FER+'s vote
    rules); evaluation reports them. A :meth:`subset` has none (the counts are the split's).
    """

    images: torch.Tensor
    targets: torch.Tensor
    labels: list[str]
    source: str
    soft_sampling: bool = False
    left_out: dict[str, int] = field(default_factory=dict)

    def __len__(self) -> int:
        return int(self.images.shape[0])

    @property
    def hard_targets(self) -> torch.Tensor:
        """Integer class per sample (argmax of soft targets)."""
        return self.targets if self.targets.ndim == 1 else self.targets.argmax(1)

    def at_size(self, size: int) -> FaceData:
        """This split with its faces resized to ``size``×``size`` px (:func:`resize_faces`);
        ``self`` when they already are."""
        images = resize_faces(self.images, size)
        return self if images is self.images else replace(self, images=images)

    def subset(self, index: torch.Tensor | np.ndarray) -> FaceData:
        idx = torch.as_tensor(index, dtype=torch.long)
        # left_out counts what the loader dropped from the whole split: not a subset's
        return FaceData(self.images[idx], self.targets[idx], self.labels, self.source,
                        self.soft_sampling)


def resize_faces(images: torch.Tensor, size: int) -> torch.Tensor:
    """uint8 N×H×W → uint8 N×size×size (bilinear, antialiased); ``images`` itself when
    already that size."""
    if images.shape[-1] == size and images.shape[-2] == size:
        return images
    out = F.interpolate(images.unsqueeze(1).float(), size=(size, size), mode="bilinear",
                        antialias=True, align_corners=False)
    return out.squeeze(1).round_().clamp_(0, 255).to(torch.uint8)


#: environment variable that moves the dataset cache (``off``: no cache)
CACHE_ENV = "FERBATCH_CACHE_DIR"
_CACHE_OFF = {"off", "none", "0", "no", "false"}


def cache_dir() -> Path | None:
    """Folder of the parsed-dataset cache, or ``None`` when it is off: ``$FERBATCH_CACHE_DIR``
    (``off``, ``none``, ``0``: no cache), else ``$XDG_CACHE_HOME/ferbatch``, else
    ``~/.cache/ferbatch``."""
    own = os.environ.get(CACHE_ENV)
    if own is not None and own.strip():
        return None if own.strip().lower() in _CACHE_OFF else Path(own).expanduser()
    xdg = os.environ.get("XDG_CACHE_HOME", "").strip()
    base = Path(xdg).expanduser() if xdg and os.path.isabs(os.path.expanduser(xdg)) \
        else Path.home() / ".cache"
    return base / "ferbatch"


def file_hash(path: str | Path) -> str:
    """First 16 hex digits of a data file's SHA-256 (recorded in checkpoints)."""
    return file_sha256(path)[:16]


def content_hash(splits: dict[str, FaceData]) -> str:
    """Short SHA-256 of what the trainer sees: labels, pixels and targets of every split."""
    digest = hashlib.sha256()
    for name in sorted(splits):
        data = splits[name]
        digest.update(name.encode())
        digest.update("\0".join(data.labels).encode())
        digest.update(data.images.contiguous().numpy().tobytes())
        digest.update(data.targets.contiguous().numpy().tobytes())
    return digest.hexdigest()[:16]


def select_classes(labels: list[str], classes: list[str]) -> list[int]:
    """Indices in ``labels`` of the requested ``classes`` (aliases allowed), in their order.

    Raises :class:`DataError` for a class not in ``labels`` or one named twice.
    """
    index = []
    for name in classes:
        canon = canonical_label(name)
        if canon not in labels:
            raise DataError(f"class {name!r} is not in this dataset's labels {labels}")
        index.append(labels.index(canon))
    if len(set(index)) != len(index):
        raise DataError(f"--classes names a class twice: {classes}")
    return index
