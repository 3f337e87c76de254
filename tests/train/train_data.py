"""Small datasets and tiny training settings for the trainer's tests (plain functions; the
fixtures built from them are in ``tests/train/conftest.py``).

``write_fer_csv`` writes a ~300-row FER2013 CSV (and the row-aligned FER+ votes): the first rows
of the real files when ``../shared`` is present, synthetic pixels and votes otherwise, with the
Usage column rewritten so the small file has all three splits. Every run uses a tiny model so
the whole trainer suite stays well under a minute and a half on two busy cores.
"""

from __future__ import annotations

import csv
import gzip
from pathlib import Path
from typing import Any

import numpy as np

from helpers import shared_path

VOTE_COLUMNS = ["neutral", "happiness", "surprise", "sadness", "anger", "disgust", "fear",
                "contempt", "unknown", "NF"]
TINY_MODEL = {"width": 4, "convs_per_block": 1}


def find_shared() -> Path | None:
    """``../shared`` (or ``$FERBATCH_SHARED``, as in conftest's ``shared_dir``) when it holds
    the FER data; ``None`` otherwise (callers fall back to synthetic data instead of skipping)."""
    path = shared_path()
    return path if (path / "data" / "fer2013" / "fer2013.csv.gz").is_file() else None


def _usage(i: int, n: int) -> str:
    if i < n * 2 // 3:
        return "Training"
    return "PublicTest" if i < n * 5 // 6 else "PrivateTest"


def _real_rows(shared: Path, n: int) -> tuple[list[list[str]], list[list[str]]]:
    fer = shared / "data" / "fer2013"
    with gzip.open(fer / "fer2013.csv.gz", "rt", newline="") as fh:
        reader = csv.reader(fh)
        next(reader)
        rows = [next(reader) for _ in range(n)]
    with open(fer / "fer2013new.csv", newline="") as fh:
        reader = csv.reader(fh)
        next(reader)
        votes = [next(reader) for _ in range(n)]
    return [[r[0], r[1]] for r in rows], [v[1:] for v in votes]


def _synthetic_rows(n: int, seed: int = 0) -> tuple[list[list[str]], list[list[str]]]:
    rng = np.random.default_rng(seed)
    rows, votes = [], []
    # FER2013 emotion index → FER+ vote column (anger, disgust, fear, happiness, sadness, surprise, neutral)
    column = [4, 5, 6, 1, 3, 2, 0]
    for i in range(n):
        emotion = i % 7
        base = rng.integers(0, 256, size=48 * 48)
        base[: 48 * 6] = emotion * 36  # a class-dependent band so a model can learn something
        rows.append([str(emotion), " ".join(map(str, base.tolist()))])
        v = [0] * 10
        v[column[emotion]] = 7
        v[int(rng.integers(0, 8))] += 3
        votes.append([f"fer{i:07d}.png", *map(str, v)])
    return rows, votes


def write_fer_csv(folder: Path, n: int = 300, gz: bool = False) -> tuple[Path, Path]:
    """Write ``fer.csv`` (or ``fer.csv.gz``) and ``fernew.csv`` with ``n`` aligned rows."""
    shared = find_shared()
    rows, votes = _real_rows(shared, n) if shared else _synthetic_rows(n)
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / ("fer.csv.gz" if gz else "fer.csv")
    opener = gzip.open if gz else open
    with opener(path, "wt", newline="") as fh:
        writer = csv.writer(fh)
        writer.writerow(["emotion", "pixels", "Usage"])
        for i, (emotion, pixels) in enumerate(rows):
            writer.writerow([emotion, pixels, _usage(i, n)])
    votes_path = folder / "fernew.csv"
    with open(votes_path, "w", newline="") as fh:
        writer = csv.writer(fh)
        writer.writerow(["Usage", "Image name", *VOTE_COLUMNS])
        for i, row in enumerate(votes):
            writer.writerow([_usage(i, n), *row])
    return path, votes_path


def write_votes(path: Path, rows: list[tuple[str, str, dict[str, int]]]) -> Path:
    """A FER+ votes file from ``(usage, image_name, {column: votes})`` rows."""
    with open(path, "w", newline="") as fh:
        writer = csv.writer(fh)
        writer.writerow(["Usage", "Image name", *VOTE_COLUMNS])
        for usage, name, v in rows:
            writer.writerow([usage, name, *[v.get(c, 0) for c in VOTE_COLUMNS]])
    return path


def write_pixels_csv(path: Path, emotions: list[int], usages: list[str], seed: int = 0) -> Path:
    """A FER2013 CSV with random pixels for the given emotions and usages."""
    rng = np.random.default_rng(seed)
    with open(path, "w", newline="") as fh:
        writer = csv.writer(fh)
        writer.writerow(["emotion", "pixels", "Usage"])
        for emotion, usage in zip(emotions, usages):
            writer.writerow([emotion, " ".join(map(str, rng.integers(0, 256, 2304).tolist())), usage])
    return path


def write_image_folder(root: Path, classes: dict[str, int], size: tuple[int, int] = (60, 50),
                       seed: int = 0) -> Path:
    """``root/<class>/<i>.png|jpg`` with ``count`` random RGB images per class."""
    from PIL import Image

    rng = np.random.default_rng(seed)
    for name, count in classes.items():
        folder = root / name
        folder.mkdir(parents=True, exist_ok=True)
        for i in range(count):
            pixels = rng.integers(0, 256, size=(size[1], size[0], 3), dtype=np.uint8)
            ext = ".png" if i % 2 == 0 else ".jpg"
            Image.fromarray(pixels).save(folder / f"{i:03d}{ext}")
    return root


def tiny_args(data: Path, out: Path, **overrides: Any):
    """TrainArgs of a tiny, quick run (vgg_gap width 4, 1 conv per block, constant lr — so a
    1-epoch run resumed to 2 epochs must retrace a straight 2-epoch run)."""
    from ferbatch.train.args import TrainArgs

    kw: dict[str, Any] = dict(data=str(data), out=str(out), model="vgg_gap",
                              model_kwargs=dict(TINY_MODEL), image_size=48, input_size=40,
                              epochs=1, batch_size=32, warmup_epochs=0, schedule="none",
                              augment="light", amp=False, quiet=True, seed=0)
    kw.update(overrides)
    return TrainArgs(**kw)
