"""The dataset registry: one name per format, one module per name.

``DATASETS`` maps ``--dataset`` names to :class:`DatasetKind` entries. Each entry's module
(imported on first use, so the CLI can list the names without importing torch) provides

- ``train_splits(args: TrainArgs) -> (splits, data_hash)``: ``{"train", "val", "test"} →``
  :class:`~ferbatch.train.data.FaceData` (``test`` may be missing) and a short hash of the
  data recorded in the checkpoint;
- ``eval_split(path, split, *, labels, image_size, ferplus=None) -> (face_data, skipped)``:
  one split for ``ferbatch evaluate``; ``skipped`` lists class names left out already.

A new format is a new module plus one :func:`register_dataset` call; neither ``ferbatch train``
nor ``ferbatch evaluate`` changes.
"""

from __future__ import annotations

import importlib
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType
from typing import TYPE_CHECKING

from ...errors import ConfigError

if TYPE_CHECKING:
    from ..args import TrainArgs
    from ..data import FaceData


@dataclass(frozen=True)
class DatasetKind:
    """A registered dataset format: its ``--dataset`` name, a one-line summary, the module
    (absolute, or relative to this package) that implements it, and what its ``test`` split is
    called where figures are shown (``ferbatch models``)."""

    name: str
    summary: str
    module: str
    test_name: str = "test"

    def _impl(self) -> ModuleType:
        return importlib.import_module(self.module, __package__)

    def train_splits(self, args: TrainArgs) -> tuple[dict[str, FaceData], str]:
        """Train / val / test splits for ``args`` and a hash of the data (raises
        :class:`~ferbatch.errors.DataError` / :class:`ConfigError` for bad input)."""
        return self._impl().train_splits(args)

    def eval_split(self, path: str | Path, split: str, *, labels: list[str], image_size: int,
                   ferplus: str | None = None) -> tuple[FaceData, list[str]]:
        """Split ``split`` for evaluation with a model's ``labels`` and ``image_size`` px
        faces; also the class names left out."""
        return self._impl().eval_split(Path(path), split, labels=labels, image_size=image_size,
                                       ferplus=ferplus)


DATASETS: dict[str, DatasetKind] = {}


def register_dataset(kind: DatasetKind) -> DatasetKind:
    """Add ``kind`` to :data:`DATASETS` (a name may be registered once: ``ValueError``)."""
    if kind.name in DATASETS:
        raise ValueError(f"dataset {kind.name!r} is registered twice")
    DATASETS[kind.name] = kind
    return kind


def test_split_name(dataset: str | None) -> str:
    """What the ``test`` split of registered dataset ``dataset`` is called (FER2013's is
    ``PrivateTest``); ``test`` for ``None`` or an unknown name."""
    kind = DATASETS.get(dataset or "")
    return kind.test_name if kind else "test"


def dataset_names() -> list[str]:
    """The registered ``--dataset`` names, in registration order."""
    return list(DATASETS)


def check_dataset_options(dataset: str, ferplus: str | None = None,
                          val_data: str | None = None) -> None:
    """``--ferplus`` is read only with ``--dataset ferplus`` and ``--val-data`` only with
    ``--dataset folder``: with any other dataset they would be ignored silently, so they are a
    :class:`ConfigError`."""
    for option, value, wanted in (("--ferplus", ferplus, "ferplus"),
                                  ("--val-data", val_data, "folder")):
        if value and dataset != wanted:
            raise ConfigError(f"{option} {value} is read only with --dataset {wanted}, and this "
                              f"command uses --dataset {dataset}: add --dataset {wanted}, or "
                              f"drop {option}")


def get_dataset(name: str) -> DatasetKind:
    """The registered dataset ``name``; an unknown name is a :class:`ConfigError` listing the
    valid ones."""
    try:
        return DATASETS[name]
    except KeyError:
        raise ConfigError(f"unknown dataset {name!r}; choose one of: "
                          f"{', '.join(dataset_names())}") from None


register_dataset(DatasetKind("fer2013", "FER2013 CSV (emotion,pixels,Usage; .csv or .csv.gz)",
                             ".fer2013", test_name="PrivateTest"))
register_dataset(DatasetKind("ferplus", "FER2013 CSV + FER+ votes (--ferplus fer2013new.csv)",
                             ".ferplus", test_name="FER+ test"))
register_dataset(DatasetKind("folder", "image folders ROOT/<class>/*.png|jpg, or "
                             "ROOT/train|val|test/<class>/…", ".folder"))
