"""Image folders: ``root/<class>/*.png|jpg|jpeg|bmp``, optionally under ``train/val/test``.

:func:`load_folder` reads one folder tree into one preloaded uint8 tensor;
:func:`load_folder_splits` builds train/val/test from a tree, the way
``ferbatch train --dataset folder`` and ``ferbatch evaluate --dataset folder`` need them.
Class folder names go through :func:`~ferbatch.train.labels.canonical_label`.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import torch

from ...errors import DataError
from ..data import FaceData, content_hash
from ..labels import canonical_label
from .ferplus import FERPLUS_LABELS

if TYPE_CHECKING:
    from ..args import TrainArgs

log = logging.getLogger(__name__)

IMAGE_EXTENSIONS = (".png", ".jpg", ".jpeg", ".bmp")


def _default_order(names: Sequence[str]) -> list[str]:
    """FER+ label order for known emotions, then any other class names alphabetically."""
    known = [label for label in FERPLUS_LABELS if label in names]
    return known + sorted(n for n in set(names) if n not in FERPLUS_LABELS)


def _class_dirs(root: Path) -> dict[str, list[Path]]:
    """Canonical class name → its folders under ``root`` (``anger`` and ``angry`` merge)."""
    out: dict[str, list[Path]] = {}
    for child in sorted(root.iterdir()):
        if child.is_dir() and not child.name.startswith("."):
            out.setdefault(canonical_label(child.name), []).append(child)
    return out


def _read_image(path: Path, image_size: int) -> np.ndarray:
    from PIL import Image, ImageOps

    with Image.open(path) as img:
        img = ImageOps.exif_transpose(img)
        grey = img.convert("L")
        if grey.size != (image_size, image_size):
            grey = grey.resize((image_size, image_size), Image.Resampling.BILINEAR)
        return np.asarray(grey, dtype=np.uint8)


def load_folder(root: Path, image_size: int, labels: list[str] | None = None,
                warnings_out: list[str] | None = None) -> tuple[FaceData, list[str]]:
    """Grey faces from ``root/<class>/*.png|jpg|jpeg|bmp``, resized to ``image_size``².

    Class folder names go through ``canonical_label`` (``anger`` → ``angry``, ``happiness`` →
    ``happy``). Without ``labels`` the label set is the class folders holding image files, in
    FER+ order for known emotions then alphabetically. With ``labels`` (a model's label set)
    targets use its indices and the returned FaceData carries exactly ``labels``; class folders
    it lacks are skipped and
    returned as the second value (always ``[]`` without ``labels``). Images are resized as they
    are (no crop): give square face crops. Unreadable images are skipped; their messages go to
    ``warnings_out`` (and one logged warning). No readable image → ``DataError``.
    """
    root = Path(root)
    if not root.is_dir():
        raise DataError(f"image folder not found: {root}")
    dirs = _class_dirs(root)
    if not dirs:
        raise DataError(f"{root} has no class sub-folders (expected {root}/<class>/*.png)")
    skipped: list[str] = []
    if labels is None:  # the classes that have image files
        labels = _default_order([name for name, folders in dirs.items()
                                 if any(f.suffix.lower() in IMAGE_EXTENSIONS
                                        for d in folders for f in d.iterdir())])
    else:
        labels = [canonical_label(label) for label in labels]
        skipped = sorted(name for name in dirs if name not in labels)
    files: list[tuple[Path, int]] = []
    for name, folders in dirs.items():
        if name not in labels:
            continue
        for folder in folders:
            files += [(f, labels.index(name)) for f in sorted(folder.iterdir())
                      if f.is_file() and f.suffix.lower() in IMAGE_EXTENSIONS]
    problems: list[str] = []
    images = np.empty((len(files), image_size, image_size), dtype=np.uint8)
    targets = np.empty(len(files), dtype=np.int64)
    n = 0
    for path, target in files:
        try:
            images[n] = _read_image(path, image_size)
        except Exception as exc:  # noqa: BLE001 - one bad file must not kill the run
            problems.append(f"{path}: unreadable image ({type(exc).__name__}: {exc})")
            continue
        targets[n] = target
        n += 1
    if problems:
        if warnings_out is not None:
            warnings_out.extend(problems)
        more = f" (and {len(problems) - 3} more)" if len(problems) > 3 else ""
        log.warning("skipped %d unreadable image(s): %s%s", len(problems),
                    "; ".join(problems[:3]), more)
    if n == 0:
        raise DataError(f"{root}: no readable .png/.jpg/.jpeg/.bmp image in "
                        f"{', '.join(sorted(d for d in dirs if d in labels)) or 'any class folder'}"
                        + (f" (skipped classes: {', '.join(skipped)})" if skipped else ""))
    data = FaceData(torch.from_numpy(images[:n].copy()), torch.from_numpy(targets[:n].copy()),
                    list(labels), f"folder:{root}")
    return data, skipped


def stratified_split(targets: np.ndarray, fractions: Sequence[float],
                     seed: int) -> list[np.ndarray]:
    """Seeded per-class split of sample indices into ``len(fractions)`` parts.

    Each class contributes ``round(fraction × count)`` samples to every part after the first
    (at least one when the class has enough samples); the first part gets the rest, and never
    less than one sample of a class.
    """
    rng = np.random.default_rng(seed)
    parts: list[list[np.ndarray]] = [[] for _ in fractions]
    for cls in np.unique(targets):
        idx = rng.permutation(np.flatnonzero(targets == cls))
        n = len(idx)
        sizes = [int(np.floor(f * n + 0.5)) if f > 0 else 0 for f in fractions[1:]]
        sizes = [max(s, 1) if f > 0 and n >= len(fractions) else s
                 for s, f in zip(sizes, fractions[1:])]
        while sum(sizes) > n - 1 and any(sizes):
            sizes[int(np.argmax(sizes))] -= 1
        start = n - sum(sizes)
        parts[0].append(idx[:start])
        for k, size in enumerate(sizes, start=1):
            parts[k].append(idx[start:start + size])
            start += size
    return [np.sort(np.concatenate(p)) if p else np.empty(0, dtype=np.int64) for p in parts]


def _warn_skipped(where: Path, skipped: list[str]) -> None:
    if skipped:
        log.warning("%s: skipped class folder(s) not in the label set: %s", where,
                    ", ".join(skipped))


def load_folder_splits(root: Path | str, val_root: Path | str | None, classes: list[str] | None,
                       image_size: int, seed: int) -> tuple[dict[str, FaceData], str]:
    """Train/val/test splits from an image-folder tree, and a content hash of them.

    - ``root/train`` exists: train from it, val from ``root/val`` and test from ``root/test``
      when they exist; without a val folder a seeded stratified 10 % of train becomes val.
    - otherwise ``root/<class>/…`` is split per class, seeded, 80/10/10 into train/val/test.
    - ``val_root`` given: it is the val split (the 10 % that would have been val stay in train).

    The label set comes from the training classes (or ``classes``, in that order, aliases
    allowed); val/test classes outside it are skipped with a warning.
    """
    root = Path(root)
    if not root.is_dir():
        raise DataError(f"image folder not found: {root}")
    wanted = [canonical_label(c) for c in classes] if classes else None
    if wanted is not None and len(set(wanted)) != len(wanted):
        raise DataError(f"--classes names a class twice: {classes}")

    def load(folder: Path, labels: list[str] | None) -> FaceData:
        data, skipped = load_folder(folder, image_size, labels)
        _warn_skipped(folder, skipped)
        return data

    splits: dict[str, FaceData] = {}
    if (root / "train").is_dir():
        train = load(root / "train", wanted)
        labels = train.labels
        if val_root is not None:
            splits["val"] = load(Path(val_root), labels)
        elif (root / "val").is_dir():
            splits["val"] = load(root / "val", labels)
        else:
            keep, val = stratified_split(train.targets.numpy(), (0.9, 0.1), seed)
            train, splits["val"] = train.subset(keep), train.subset(val)
        if (root / "test").is_dir():
            splits["test"] = load(root / "test", labels)
        splits["train"] = train
    else:
        data = load(root, wanted)
        if val_root is not None:
            train_idx, test_idx = stratified_split(data.targets.numpy(), (0.9, 0.1), seed)
            splits["val"] = load(Path(val_root), data.labels)
        else:
            train_idx, val_idx, test_idx = stratified_split(data.targets.numpy(),
                                                            (0.8, 0.1, 0.1), seed)
            splits["val"] = data.subset(val_idx)
        splits["train"], splits["test"] = data.subset(train_idx), data.subset(test_idx)
    train = splits["train"]
    counts = torch.bincount(train.targets, minlength=len(train.labels)).tolist()
    empty = [name for name, count in zip(train.labels, counts) if count == 0]
    if empty:
        raise DataError(f"{root}: no training image for class(es) {', '.join(empty)}")
    return splits, content_hash(splits)


def train_splits(args: TrainArgs) -> tuple[dict[str, FaceData], str]:
    """The registry's training entry: :func:`load_folder_splits` of ``args``."""
    return load_folder_splits(Path(args.data), args.val_data, args.classes, args.image_size,
                              args.seed)


def eval_split(path: Path, split: str, *, labels: list[str], image_size: int,
               ferplus: str | None = None) -> tuple[FaceData, list[str]]:
    """The registry's evaluation entry: ``path/<split>/<class>/…`` when that folder exists
    (``split`` in ferbatch's or FER2013's words: ``test`` or ``PrivateTest``…,
    :data:`~ferbatch.train.datasets.infer.SPLIT_FOLDERS`), else ``path/<class>/…``, on the
    model's ``labels``; returns the skipped class folders. A root holding other splits'
    folders but not this one is a :class:`DataError` (their names are no classes)."""
    from .infer import SPLIT_FOLDERS

    del ferplus
    for name in SPLIT_FOLDERS[split]:
        if (path / name).is_dir():
            return load_folder(path / name, image_size, labels)
    others = [n for names in SPLIT_FOLDERS.values() for n in names if (path / n).is_dir()]
    if others:
        raise DataError(f"{path}: no {' or '.join(SPLIT_FOLDERS[split])} folder for split "
                        f"{split!r} (it holds {', '.join(others)})")
    return load_folder(path, image_size, labels)
