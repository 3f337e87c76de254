"""FER+: the FER2013 faces with the crowd votes of ``fer2013new.csv`` as targets.

:func:`load_ferplus` turns the FER+ votes (row-aligned with the FER2013 CSV) into hard or soft
targets over the 8 labels of :data:`FERPLUS_LABELS`; :func:`ferplus_targets` holds the rules.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import torch

from ...errors import ConfigError, DataError
from ..args import FERPLUS_MODES
from ..data import FaceData, file_hash, select_classes
from ..labels import canonical_label
from .fer2013 import FER2013_SPLITS, read_fer2013

if TYPE_CHECKING:
    import pandas as pd

    from ..args import TrainArgs

#: FER+'s label set: FER2013's seven in FER2013's order, then contempt.
FERPLUS_LABELS = ["angry", "disgust", "fear", "happy", "sad", "surprise", "neutral", "contempt"]
#: The vote columns of ``fer2013new.csv`` (FER+ spelling; mapped through ``canonical_label``).
FERPLUS_VOTE_COLUMNS = ["neutral", "happiness", "surprise", "sadness", "anger", "disgust", "fear",
                        "contempt"]

__all__ = ["FERPLUS_LABELS", "FERPLUS_MODES", "FERPLUS_VOTE_COLUMNS", "ferplus_targets",
           "load_ferplus", "train_splits", "eval_split"]


def _read_votes(votes_path: Path) -> pd.DataFrame:
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


def _vote_arrays(frame: pd.DataFrame, usage: np.ndarray, csv_path: Path,
                 votes_path: Path) -> tuple[np.ndarray, np.ndarray]:
    """Check the votes are row-aligned with the CSV; return N×8 emotion votes in
    :data:`FERPLUS_LABELS` order and N×2 (unknown, NF) votes."""
    if len(frame) != len(usage):
        raise DataError(f"FER+ votes {votes_path} have {len(frame)} rows but {csv_path} has "
                        f"{len(usage)}: the two files must be row-aligned")
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
    return votes[:, [canon.index(label) for label in FERPLUS_LABELS]], other


def _keep_classes(rows: np.ndarray, targets: np.ndarray,
                  classes: list[str]) -> tuple[np.ndarray, np.ndarray, list[str]]:
    """Rows whose top emotion is in ``classes``, targets re-indexed (soft ones renormalised)
    onto them, and the kept labels."""
    labels = list(FERPLUS_LABELS)
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
    return rows, targets, [labels[i] for i in index]


#: why a row is dropped (what ``FaceData.left_out`` reports): FER+'s first rule, then per mode
#: the rest of :func:`ferplus_targets`'s rules
_NOT_AN_EMOTION = "unknown/not-a-face votes tie or beat the top emotion"
_VOTE_RULE = {
    "majority": "no emotion has more than half of the votes (no majority label)",
    "probability": "no emotion vote left after FER+'s single-vote outlier rule",
    "crossentropy": "no emotion vote",
}


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
    dropped and soft targets are renormalised over the kept classes. Each split's
    ``left_out`` counts its dropped rows by reason (the rules above, in that order). Raises
    :class:`DataError` for a bad mode, unreadable or misaligned files.
    """
    csv_path, votes_path = Path(csv_path), Path(votes_path)
    if mode not in FERPLUS_MODES:
        raise DataError(f"unknown FER+ mode {mode!r}; choose one of {', '.join(FERPLUS_MODES)}")
    images, _emotion, usage = read_fer2013(csv_path, cache_dir)
    frame = _read_votes(votes_path)
    votes, other = _vote_arrays(frame, usage, csv_path, votes_path)
    names = frame["Image name"].to_numpy(dtype=object)
    has_name = np.array([isinstance(n, str) and n.strip() != "" for n in names])
    keep, targets = ferplus_targets(votes, other, mode)
    emotion = np.flatnonzero(other.max(axis=1) < votes.max(axis=1))  # FER+'s first rule
    rows = np.flatnonzero(keep)
    voted = rows
    labels = list(FERPLUS_LABELS)
    if classes:
        rows, targets, labels = _keep_classes(rows, targets, classes)
    chosen = rows
    named = has_name[rows]
    rows, targets = rows[named], targets[named]
    reasons = (_NOT_AN_EMOTION, _VOTE_RULE[mode], "top emotion outside the chosen classes",
               "no Image name (FER+: not a face)")
    splits: dict[str, FaceData] = {}
    for split, usage_name in FER2013_SPLITS.items():
        mask = usage[rows] == usage_name
        split_rows = rows[mask]
        counts = [int((usage == usage_name).sum()), int((usage[emotion] == usage_name).sum()),
                  int((usage[voted] == usage_name).sum()),
                  int((usage[chosen] == usage_name).sum()), len(split_rows)]
        left_out = {reason: before - after for reason, before, after
                    in zip(reasons, counts, counts[1:]) if before > after}
        splits[split] = FaceData(
            torch.from_numpy(images[split_rows].copy()),
            torch.from_numpy(np.ascontiguousarray(targets[mask])),
            labels, f"ferplus-{mode}:{usage_name}",
            soft_sampling=(mode == "probability"), left_out=left_out)
    return splits


def _votes_path(ferplus: str | None) -> Path:
    if not ferplus:
        raise ConfigError("--dataset ferplus needs --ferplus PATH/fer2013new.csv")
    return Path(ferplus)


def train_splits(args: TrainArgs) -> tuple[dict[str, FaceData], str]:
    """The registry's training entry: FER+ splits in ``args.ferplus_mode`` and a hash of both
    files. Raises :class:`ConfigError` without ``args.ferplus``."""
    votes = _votes_path(args.ferplus)
    splits = load_ferplus(Path(args.data), votes, args.ferplus_mode, args.classes)
    return splits, file_hash(Path(args.data)) + "+" + file_hash(votes)


def eval_split(path: Path, split: str, *, labels: list[str], image_size: int,
               ferplus: str | None = None) -> tuple[FaceData, list[str]]:
    """The registry's evaluation entry: majority labels (the protocol FER+ reports)."""
    del labels, image_size
    return load_ferplus(path, _votes_path(ferplus), "majority", None)[split], []
