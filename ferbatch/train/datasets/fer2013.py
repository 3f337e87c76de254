"""FER2013: one CSV (``emotion,pixels,Usage``; plain or ``.gz``) with the three splits.

Usage ``Training`` / ``PublicTest`` / ``PrivateTest`` become ``train`` / ``val`` / ``test``.
Parsing the 36k rows takes ~20 s, so the arrays are cached as ``.npz`` (~85 MB) keyed by the
file's hash, in :func:`ferbatch.train.data.cache_dir` (``$FERBATCH_CACHE_DIR``, ``off`` for no
cache; else ``$XDG_CACHE_HOME/ferbatch`` or ``~/.cache/ferbatch``).

A *packed* FER2013 (:func:`pack_fer2013`: the parsed arrays of some splits as an xz-compressed
``.npz``, ``*.npz.xz``) reads like the CSV wherever ``--data`` takes one; it is how the splits
travel to a machine that takes a small upload (the lent GPU's 64 MiB per call).
"""

from __future__ import annotations

import io
import lzma
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import torch

from ...errors import DataError, OutputError
from ...output.atomic import atomic_write_bytes
from ..data import FaceData, file_hash, select_classes
from ..data import cache_dir as default_cache_dir

if TYPE_CHECKING:
    from ..args import TrainArgs

FER2013_LABELS = ["angry", "disgust", "fear", "happy", "sad", "surprise", "neutral"]
FER2013_SPLITS = {"train": "Training", "val": "PublicTest", "test": "PrivateTest"}
#: file-name ending of a packed FER2013 (:func:`pack_fer2013`)
PACKED_SUFFIX = ".npz.xz"
#: xz filters of a packed file: each byte minus the one a face row above it (48 bytes back;
#: vertically adjacent pixels are alike), then LZMA2 at its strongest preset. On a 4,000-face
#: sample: 70 % of the raw bytes, against 77 % for LZMA2 alone and 74 % with 1-byte deltas.
_PACK_FILTERS = [{"id": lzma.FILTER_DELTA, "dist": 48},
                 {"id": lzma.FILTER_LZMA2, "preset": 9 | lzma.PRESET_EXTREME}]


def _parse_pixels(pixels: list[str], path: Path) -> np.ndarray:
    """Space-separated grey levels → uint8 N×48×48."""
    out = np.empty((len(pixels), 48 * 48), dtype=np.uint8)
    for i, row in enumerate(pixels):
        values = np.array(row.split(), dtype=np.uint8) if isinstance(row, str) else np.empty(0)
        if values.size != 48 * 48:
            raise DataError(f"{path}: row {i + 2} has {values.size} pixels, expected 2304")
        out[i] = values
    return out.reshape(-1, 48, 48)


def read_fer2013(path: str | Path, cache_dir: str | Path | None = None) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Read a FER2013 CSV (plain or .gz), or a packed one (``*.npz.xz``, :func:`read_packed`):
    images uint8 N×48×48, emotions int64 N, usage str N.

    The parsed arrays are cached as ``.npz`` keyed by the file's hash (parsing takes ~20 s) in
    ``cache_dir``, default :func:`~ferbatch.train.data.cache_dir` (``None`` there: no cache).
    """
    import pandas as pd

    file = Path(path)
    if not file.is_file():
        raise DataError(f"FER2013 data not found: {file}")
    if file.name.endswith(PACKED_SUFFIX):
        return read_packed(file)
    digest = file_hash(file)
    folder = Path(cache_dir) if cache_dir is not None else default_cache_dir()
    cache = folder / f"fer2013-{digest}.npz" if folder is not None else None
    if cache is not None and cache.is_file():
        with np.load(cache, allow_pickle=False) as npz:
            return npz["images"], npz["emotion"], npz["usage"]
    try:
        frame = pd.read_csv(file, dtype={"emotion": "Int64", "pixels": str, "Usage": str})
    except Exception as exc:  # noqa: BLE001
        raise DataError(f"cannot read {file} as CSV: {exc}") from exc
    missing = {"emotion", "pixels", "Usage"} - set(frame.columns)
    if missing:
        raise DataError(f"{file}: missing column(s) {sorted(missing)}; expected emotion,pixels,Usage")
    if frame["emotion"].isna().any():
        raise DataError(f"{file}: empty emotion value in row {int(frame['emotion'].isna().idxmax()) + 2}")
    images = _parse_pixels(frame["pixels"].tolist(), file)
    emotion = frame["emotion"].to_numpy(dtype=np.int64)
    if emotion.min() < 0 or emotion.max() > 6:
        raise DataError(f"{file}: emotion values must be 0..6")
    usage = frame["Usage"].to_numpy(dtype=str)
    if cache is not None:
        cache.parent.mkdir(parents=True, exist_ok=True)
        buf = io.BytesIO()
        np.savez(buf, images=images, emotion=emotion, usage=usage)
        atomic_write_bytes(cache, buf.getvalue())
    return images, emotion, usage


def read_packed(path: str | Path) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The arrays of a packed FER2013 (:func:`pack_fer2013`), as :func:`read_fer2013` returns
    them; anything else is a :class:`DataError` naming the file and what is wrong."""
    file = Path(path)
    try:
        raw = lzma.decompress(file.read_bytes())
        with np.load(io.BytesIO(raw), allow_pickle=False) as npz:
            arrays = {k: npz[k] for k in ("images", "emotion", "usage")}
    except (OSError, lzma.LZMAError, ValueError, EOFError) as exc:
        raise DataError(f"{file}: not a packed FER2013 (an xz-compressed .npz): {exc}") from exc
    except KeyError as exc:
        raise DataError(f"{file}: packed FER2013 without the array {exc}; expected images, "
                        "emotion, usage") from exc
    images, emotion, usage = arrays["images"], arrays["emotion"], arrays["usage"]
    n = len(images)
    if images.dtype != np.uint8 or images.shape[1:] != (48, 48) or emotion.shape != (n,) \
            or usage.shape != (n,) or (n and (emotion.min() < 0 or emotion.max() > 6)):
        raise DataError(f"{file}: packed FER2013 with unexpected arrays (images {images.dtype} "
                        f"{images.shape}, emotion {emotion.shape}, usage {usage.shape}); "
                        "expected uint8 N×48×48, N emotions 0..6, N usages")
    return images, emotion.astype(np.int64), usage.astype(str)


def pack_fer2013(path: str | Path, out: str | Path,
                 usages: Sequence[str] = tuple(FER2013_SPLITS.values())) -> int:
    """Write the rows of a FER2013 CSV (or packed file) whose ``Usage`` is one of ``usages``
    (FER2013's names: ``Training``, ``PublicTest``, ``PrivateTest``) to ``out`` (a name ending
    in ``.npz.xz``), atomically; returns its size in bytes. Measured: Training + PublicTest
    (32,298 faces) pack to 50.2 MB in 2 min 12 s on one core (the CSV.gz is 94.0 MB) and read
    back in 4.1 s. Raises :class:`DataError` for an unreadable input or one without rows of a
    requested usage, :class:`~ferbatch.errors.ConfigError` for a bad ``out`` name or an
    unknown usage, :class:`~ferbatch.errors.OutputError` when ``out`` cannot be written (its
    folder is made when missing)."""
    from ...errors import ConfigError

    if not str(out).endswith(PACKED_SUFFIX):
        raise ConfigError(f"{out}: a packed FER2013's name must end in {PACKED_SUFFIX}")
    unknown = sorted(set(usages) - set(FER2013_SPLITS.values()))
    if unknown or not usages:
        raise ConfigError(f"unknown FER2013 usage(s) {unknown or '(none given)'}; choose from "
                          f"{', '.join(FER2013_SPLITS.values())}")
    images, emotion, usage = read_fer2013(path)
    empty = [u for u in usages if not (usage == u).any()]
    if empty:
        raise DataError(f"{path}: no rows with Usage {', '.join(empty)} (it has "
                        f"{', '.join(sorted(set(usage.tolist()))) or 'none'})")
    keep = np.isin(usage, list(usages))
    buf = io.BytesIO()
    np.savez(buf, images=np.ascontiguousarray(images[keep]), emotion=emotion[keep].astype(np.int8),
             usage=usage[keep])
    packed = lzma.compress(buf.getvalue(), format=lzma.FORMAT_XZ, filters=_PACK_FILTERS)
    try:
        Path(out).parent.mkdir(parents=True, exist_ok=True)
        atomic_write_bytes(Path(out), packed)
    except OSError as exc:
        raise OutputError(f"{out}: cannot write the packed FER2013: {exc.strerror or exc}") from exc
    return len(packed)


def load_fer2013(path: str | Path, classes: list[str] | None = None,
                 cache_dir: str | Path | None = None) -> dict[str, FaceData]:
    """FER2013 splits ``train`` / ``val`` / ``test`` (Training / PublicTest / PrivateTest).

    ``classes`` keeps a subset of the 7 labels (in the given order) and drops the other rows.
    """
    images, emotion, usage = read_fer2013(path, cache_dir)
    labels = list(FER2013_LABELS)
    if classes:
        keep = select_classes(labels, classes)
        remap = np.full(len(labels), -1, dtype=np.int64)
        for new, old in enumerate(keep):
            remap[old] = new
        emotion = remap[emotion]
        labels = [labels[i] for i in keep]
    splits: dict[str, FaceData] = {}
    for split, usage_name in FER2013_SPLITS.items():
        mask = (usage == usage_name) & (emotion >= 0)
        splits[split] = FaceData(torch.from_numpy(images[mask].copy()),
                                 torch.from_numpy(emotion[mask].copy()), labels,
                                 f"fer2013:{usage_name}")
    return splits


def train_splits(args: TrainArgs) -> tuple[dict[str, FaceData], str]:
    """The registry's training entry: splits of ``args.data`` and the file's hash."""
    path = Path(args.data)
    return load_fer2013(path, args.classes), file_hash(path)


def eval_split(path: Path, split: str, *, labels: list[str], image_size: int,
               ferplus: str | None = None) -> tuple[FaceData, list[str]]:
    """The registry's evaluation entry: split ``split`` as stored (no class skipped here)."""
    del labels, image_size, ferplus
    return load_fer2013(path)[split], []
