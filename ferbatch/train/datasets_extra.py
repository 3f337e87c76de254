"""FER+ crowd votes and image folders as :class:`~ferbatch.train.data.FaceData` splits.

``load_ferplus`` turns the FER+ votes (``fer2013new.csv``, row-aligned with FER2013) into hard
or soft targets over 8 labels; ``load_folder`` reads ``root/<class>/*.png|jpg|jpeg|bmp`` into one
preloaded uint8 tensor; ``load_folder_splits`` builds train/val/test from a folder tree, the way
``ferbatch train --dataset folder`` and ``ferbatch evaluate --dataset folder`` need them.
"""

from __future__ import annotations

import hashlib
import sys
import warnings
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import torch

from ..errors import DataError
from .data import FER2013_SPLITS, FaceData, read_fer2013, select_classes
from .labels import canonical_label

if TYPE_CHECKING:
    import pandas as pd

#: FER+'s label set: FER2013's seven in FER2013's order, then contempt.
FERPLUS_LABELS = ["angry", "disgust", "fear", "happy", "sad", "surprise", "neutral", "contempt"]
#: The vote columns of ``fer2013new.csv`` (FER+ spelling; mapped through ``canonical_label``).
FERPLUS_VOTE_COLUMNS = ["neutral", "happiness", "surprise", "sadness", "anger", "disgust", "fear",
                        "contempt"]
FERPLUS_MODES = ("majority", "probability", "crossentropy")
IMAGE_EXTENSIONS = (".png", ".jpg", ".jpeg", ".bmp")


# --------------------------------------------------------------------------------------------
# FER+
# --------------------------------------------------------------------------------------------

def _read_votes(votes_path: Path) -> "pd.DataFrame":
    import pandas as pd

    if not votes_path.is_file():
        raise DataError(f"FER+ votes file not found: {votes_path}")
    try:
        frame = pd.read_csv(votes_path, dtype={"Usage": str, "Image name": str})
    except Exception as exc:  # noqa: BLE001 - any parse failure is a bad input file
        raise DataError(f"cannot read {votes_path} as CSV: {exc}") from exc
    needed = ["Image name", *FERPLUS_VOTE_COLUMNS, "unknown", "NF"]
    missing = [c for c in needed if c not in frame.columns]
    if missing:
        raise DataError(f"{votes_path}: missing column(s) {missing}; expected FER+ layout "
                        "Usage,Image name,neutral,happiness,surprise,sadness,anger,disgust,fear,"
                        "contempt,unknown,NF")
    return frame


def ferplus_targets(votes: np.ndarray, other: np.ndarray, mode: str) -> tuple[np.ndarray, np.ndarray]:
    """Targets from FER+ votes.

    ``votes``: N×8 emotion votes in :data:`FERPLUS_LABELS` order; ``other``: N×2 (unknown, NF).
    Returns ``(keep, targets)``: a bool mask of the rows kept and, for them, int64 labels
    (``majority``) or float32 N×8 distributions summing to 1 (``probability``/``crossentropy``).

    Rules (FER+, Barsoum et al. 2016, and its reference ``ferplus.py``):

    - a row is dropped when unknown or NF gets as many votes as the top emotion or more
      (judged on the raw votes);
    - ``majority`` and ``probability`` first apply FER+'s outlier rule: an emotion with a single
      vote is set to 0 (one annotator out of ten is treated as noise);
    - ``majority`` keeps a row only when its top emotion has more than half of the (remaining)
      emotion votes, and labels it with that emotion;
    - ``probability``/``crossentropy`` use the normalised emotion votes; ``crossentropy`` keeps
      every vote (the full crowd distribution is the target).
    - rows left with no emotion vote are dropped.

    Deviations from the reference script, kept on purpose for simplicity: its majority
    threshold counts unknown/NF votes in the denominator and its soft modes keep only the top
    emotions covering 75 % of the votes (at most 3) and apply the outlier rule in every mode.
    """
    if mode not in FERPLUS_MODES:
        raise DataError(f"unknown FER+ mode {mode!r}; choose one of {', '.join(FERPLUS_MODES)}")
    votes = np.asarray(votes, dtype=np.float64).copy()
    other = np.asarray(other, dtype=np.float64)
    keep = other.max(axis=1) < votes.max(axis=1)
    if mode in ("majority", "probability"):
        votes[votes <= 1] = 0.0
    total = votes.sum(axis=1)
    keep &= total > 0
    if mode == "majority":
        top = votes.max(axis=1)
        keep &= top > 0.5 * total
        return keep, votes[keep].argmax(axis=1).astype(np.int64)
    dist = votes[keep] / total[keep, None]
    return keep, dist.astype(np.float32)


def load_ferplus(csv_path: Path, votes_path: Path, mode: str = "majority",
                 classes: list[str] | None = None,
                 cache_dir: str | Path | None = None) -> dict[str, FaceData]:
    """FER+ splits ``train``/``val``/``test`` (FER2013 Usage Training/PublicTest/PrivateTest).

    Faces come from the FER2013 CSV, targets from the row-aligned FER+ votes over
    :data:`FERPLUS_LABELS` (see :func:`ferplus_targets` for the drop rules). Rows with an empty
    ``Image name`` (FER+ judged them not a face) are dropped. In ``probability`` mode the split
    carries soft targets with ``soft_sampling=True``: training draws one hard label per sample
    and batch from the distribution (FER+'s PROBABILITY scheme); evaluation uses the argmax.

    ``classes`` keeps a subset (aliases allowed): rows whose top emotion is outside it are
    dropped and soft targets are renormalised over the kept classes.
    """
    csv_path, votes_path = Path(csv_path), Path(votes_path)
    if mode not in FERPLUS_MODES:
        raise DataError(f"unknown FER+ mode {mode!r}; choose one of {', '.join(FERPLUS_MODES)}")
    images, _emotion, usage = read_fer2013(csv_path, cache_dir)
    frame = _read_votes(votes_path)
    if len(frame) != len(images):
        raise DataError(f"FER+ votes {votes_path} have {len(frame)} rows but {csv_path} has "
                        f"{len(images)}: the two files must be row-aligned")
    if "Usage" in frame.columns:
        fp_usage = frame["Usage"].to_numpy(dtype=object)
        known = np.array([isinstance(u, str) and u != "" for u in fp_usage])
        differ = known & (fp_usage.astype(str) != usage.astype(str))
        if differ.any():
            row = int(np.argmax(differ)) + 2
            raise DataError(f"{votes_path} and {csv_path} disagree on Usage at row {row}: "
                            "the two files are not row-aligned")
    try:
        votes = frame[FERPLUS_VOTE_COLUMNS].to_numpy(dtype=np.float64)
        other = frame[["unknown", "NF"]].to_numpy(dtype=np.float64)
    except (TypeError, ValueError) as exc:
        raise DataError(f"{votes_path}: vote columns must be numbers: {exc}") from exc
    if np.isnan(votes).any() or np.isnan(other).any():
        row = int(np.argmax(np.isnan(votes).any(1) | np.isnan(other).any(1))) + 2
        raise DataError(f"{votes_path}: empty vote in row {row}")
    # reorder the vote columns into FERPLUS_LABELS order through the alias table
    canon = [canonical_label(c) for c in FERPLUS_VOTE_COLUMNS]
    votes = votes[:, [canon.index(label) for label in FERPLUS_LABELS]]

    names = frame["Image name"].to_numpy(dtype=object)
    has_name = np.array([isinstance(n, str) and n.strip() != "" for n in names])
    keep, targets = ferplus_targets(votes, other, mode)
    rows = np.flatnonzero(keep)
    labels = list(FERPLUS_LABELS)
    if classes:
        index = select_classes(labels, classes)
        top = targets if targets.ndim == 1 else targets.argmax(axis=1)
        inside = np.isin(top, index)
        rows, targets = rows[inside], targets[inside]
        if targets.ndim == 1:
            remap = np.full(len(labels), -1, dtype=np.int64)
            remap[index] = np.arange(len(index))
            targets = remap[targets]
        else:
            targets = targets[:, index]
            targets = targets / targets.sum(axis=1, keepdims=True)
        labels = [labels[i] for i in index]
    named = has_name[rows]
    rows, targets = rows[named], targets[named]

    splits: dict[str, FaceData] = {}
    for split, usage_name in FER2013_SPLITS.items():
        mask = usage[rows] == usage_name
        split_rows = rows[mask]
        splits[split] = FaceData(
            torch.from_numpy(images[split_rows].copy()),
            torch.from_numpy(np.ascontiguousarray(targets[mask])),
            labels, f"ferplus-{mode}:{usage_name}",
            soft_sampling=(mode == "probability"))
    return splits


# --------------------------------------------------------------------------------------------
# Image folders
# --------------------------------------------------------------------------------------------

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
    FER+ order for known emotions then alphabetically. With ``labels`` (a model's label set) targets use its indices
    and the returned FaceData carries exactly ``labels``; class folders it lacks are skipped and
    returned as the second value (always ``[]`` without ``labels``). Images are resized as they
    are (no crop): give square face crops. Unreadable images are skipped; their messages go to
    ``warnings_out`` (and one ``warnings.warn`` summary). No readable image → ``DataError``.
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
        warnings.warn(f"skipped {len(problems)} unreadable image(s): "
                      + "; ".join(problems[:3]) + more, stacklevel=2)
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


def _warn_skipped(where: Path, skipped: list[str]) -> None:
    if skipped:
        print(f"warning: {where}: skipped class folder(s) not in the label set: "
              f"{', '.join(skipped)}", file=sys.stderr)


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
