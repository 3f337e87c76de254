"""What ``ferbatch evaluate --data PATH`` is, when ``--dataset`` is not given, and split names.

:func:`infer_dataset` looks at the path: a folder is an image folder (``folder``); a CSV (or
``.csv.gz``) whose header has ``pixels`` and ``Usage`` is a FER2013 CSV (``fer2013``, or
``ferplus`` when ``--ferplus`` names the votes); a CSV with FER+'s ``Image name`` and vote
columns is the FER+ votes file (``fer2013new.csv``) — it holds no pixels, so the FER2013 CSV it
is row-aligned with is looked for beside it. Only the header line is read. A name ending in
``.npz.xz`` is a packed FER2013 (:func:`~ferbatch.train.datasets.fer2013.pack_fer2013`).

:func:`canonical_split` accepts the splits in ferbatch's words (``train`` / ``val`` / ``test``)
in FER2013's own (``Training`` / ``PublicTest`` / ``PrivateTest``) and in FER+'s
(``FER2013Train`` / ``FER2013Valid`` / ``FER2013Test``), any case.
"""

from __future__ import annotations

import csv
import gzip
import io
import logging
from dataclasses import dataclass
from pathlib import Path

from ...errors import ConfigError, DataError

log = logging.getLogger(__name__)

SPLITS = ("train", "val", "test")
#: FER2013's ``Usage`` names (and common spellings) of ferbatch's three splits, lower case
#: and FER+'s (the folders its generator writes: FER2013Train / FER2013Valid / FER2013Test)
SPLIT_ALIASES = {"training": "train", "publictest": "val", "privatetest": "test",
                 "validation": "val", "valid": "val",
                 "fer2013train": "train", "fer2013valid": "val", "fer2013test": "test"}
#: the names ferbatch evaluate --split accepts
SPLIT_CHOICES = ("test", "val", "train", "PrivateTest", "PublicTest", "Training",
                 "FER2013Test", "FER2013Valid", "FER2013Train")
#: image-folder sub-folders that hold a split, tried in order
SPLIT_FOLDERS = {"train": ("train", "Training", "FER2013Train"),
                 "val": ("val", "validation", "PublicTest", "FER2013Valid"),
                 "test": ("test", "PrivateTest", "FER2013Test")}
_FER2013_COLUMNS = {"pixels", "Usage"}
_VOTES_COLUMNS = {"Image name", "neutral", "happiness"}


def canonical_split(name: str) -> str:
    """``train`` / ``val`` / ``test`` for ``name`` in ferbatch's or FER2013's words (any case);
    anything else is a :class:`ConfigError` listing the accepted names."""
    low = name.strip().lower()
    if low in SPLITS:
        return low
    if low in SPLIT_ALIASES:
        return SPLIT_ALIASES[low]
    raise ConfigError(f"unknown split {name!r}; choose {', '.join(SPLIT_CHOICES)} "
                      "(Training = FER2013Train = train, PublicTest = FER2013Valid = val, "
                      "PrivateTest = FER2013Test = test)")


@dataclass(frozen=True)
class Inferred:
    """The dataset kind of a path, and the files it needs (``ferplus``: the votes file)."""

    dataset: str
    data: Path
    ferplus: Path | None = None


def _header(path: Path) -> list[str]:
    """The first CSV line of ``path`` (gzip when it ends in ``.gz``); ``[]`` when unreadable."""
    try:
        raw = gzip.open(path, "rb") if path.name.endswith(".gz") else open(path, "rb")
        with raw as fh:
            line = fh.readline(1 << 16)
    except (OSError, EOFError):
        return []
    text = line.decode("utf-8-sig", "replace")
    rows = list(csv.reader(io.StringIO(text)))
    return [c.strip() for c in rows[0]] if rows else []


def csv_kind(path: Path) -> str | None:
    """``fer2013`` for a FER2013 CSV, ``votes`` for FER+'s votes file, else ``None``."""
    columns = set(_header(path))
    if _FER2013_COLUMNS <= columns:
        return "fer2013"
    if _VOTES_COLUMNS <= columns:
        return "votes"
    return None


def _fer2013_beside(votes: Path) -> Path:
    """The one FER2013 CSV in the votes file's folder (or its parent)."""
    for folder in (votes.parent, votes.parent.parent):
        found = sorted(p for p in folder.iterdir()
                       if p.is_file() and p != votes and p.name.endswith((".csv", ".csv.gz"))
                       and csv_kind(p) == "fer2013")
        if len(found) == 1:
            return found[0]
        if len(found) > 1:
            raise ConfigError(f"{votes} is FER+'s votes file; it holds no images and several "
                              f"FER2013 CSVs lie beside it ({', '.join(p.name for p in found)}): "
                              f"give one as --data and {votes.name} as --ferplus")
    raise ConfigError(f"{votes} is FER+'s votes file; it holds no images and no FER2013 CSV "
                      f"(emotion,pixels,Usage) lies beside it: give that CSV as --data and "
                      f"{votes.name} as --ferplus")


def infer_dataset(data: str | Path, ferplus: str | Path | None = None) -> Inferred:
    """The dataset kind of ``data`` (module doc). Raises :class:`DataError` for a missing path,
    :class:`ConfigError` for a file of no known kind (``--dataset`` then says)."""
    path = Path(data)
    if path.is_dir():
        return Inferred("folder", path)
    if not path.is_file():
        raise DataError(f"--data {path}: not found")
    from .fer2013 import PACKED_SUFFIX

    kind = "fer2013" if path.name.endswith(PACKED_SUFFIX) else csv_kind(path)  # packed FER2013
    if kind == "fer2013":
        return Inferred("ferplus" if ferplus else "fer2013", path, Path(ferplus) if ferplus else None)
    if kind == "votes":
        images = Path(ferplus) if ferplus and csv_kind(Path(ferplus)) == "fer2013" else \
            _fer2013_beside(path)
        log.info("%s is FER+'s votes file: evaluating FER+ on %s", path, images)
        return Inferred("ferplus", images, path)
    shown = ",".join(_header(path)[:6]) or "no CSV header"
    raise ConfigError(f"cannot tell what --data {path} is ({shown}): expected an image folder, "
                      "a FER2013 CSV (emotion,pixels,Usage) or FER+'s votes file; give --dataset")
