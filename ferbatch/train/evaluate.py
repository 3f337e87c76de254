"""``ferbatch evaluate``: score a checkpoint on FER2013, FER+ or an image folder.

The dataset's classes are matched to the model's labels by name (aliases allowed). Samples of
classes the model lacks are skipped and reported (``skipped_classes``). When the model has
classes the dataset lacks (a FER+ model with ``contempt`` on FER2013, an 8-class model on a
4-class folder), the model keeps its full argmax — predicting a class the dataset does not
have counts as an error — and per-class and macro metrics are reported over the dataset's
classes only (``evaluated_labels``); the confusion matrix stays square over the model's labels.
"""

from __future__ import annotations

import csv
import json
import sys
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F

from ..errors import ConfigError, DataError
from ..models.checkpoint import DEFAULT_WEIGHTS, load_checkpoint
from .data import FaceData
from .labels import canonical_label

SPLITS = ("train", "val", "test")
TTA_MODES = ("none", "flip", "tencrop")


def resize_faces(images: torch.Tensor, size: int) -> torch.Tensor:
    """uint8 N×H×W → uint8 N×size×size (bilinear, antialiased); unchanged when already there."""
    if images.shape[-1] == size and images.shape[-2] == size:
        return images
    out = F.interpolate(images.unsqueeze(1).float(), size=(size, size), mode="bilinear",
                        antialias=True, align_corners=False)
    return out.squeeze(1).round_().clamp_(0, 255).to(torch.uint8)


def match_labels(data: FaceData, labels: list[str]) -> tuple[FaceData, list[str]]:
    """Re-index ``data`` onto ``labels`` (a model's label set) by canonical name.

    Samples of classes not in ``labels`` are dropped; their class names are returned.
    Soft targets are reduced to their argmax first.
    """
    model_labels = [canonical_label(label) for label in labels]
    hard = data.hard_targets.numpy()
    remap = np.full(len(data.labels), -1, dtype=np.int64)
    for i, name in enumerate(data.labels):
        if canonical_label(name) in model_labels:
            remap[i] = model_labels.index(canonical_label(name))
    present = set(np.unique(hard).tolist())
    skipped = sorted({canonical_label(name) for i, name in enumerate(data.labels)
                      if remap[i] < 0 and i in present})
    target = remap[hard]
    keep = torch.from_numpy(np.flatnonzero(target >= 0))
    return (FaceData(data.images[keep], torch.from_numpy(target[keep.numpy()].copy()),
                     list(labels), data.source), skipped)


def load_eval_data(data: str, dataset: str, split: str, labels: list[str], image_size: int,
                   ferplus: str | None = None) -> tuple[FaceData, list[str]]:
    """The split to evaluate, re-indexed onto the model's ``labels``, and the skipped classes.

    Folders: ``data/<split>/<class>/…`` when that sub-folder exists, else ``data/<class>/…``.
    FER+ uses majority labels (the protocol its paper reports).
    """
    if split not in SPLITS:
        raise ConfigError(f"unknown split {split!r}; choose train, val or test")
    path = Path(data)
    if dataset == "fer2013":
        from .data import load_fer2013

        face = load_fer2013(path)[split]
    elif dataset == "ferplus":
        from .datasets_extra import load_ferplus

        if not ferplus:
            raise ConfigError("--dataset ferplus needs --ferplus PATH/fer2013new.csv")
        face = load_ferplus(path, Path(ferplus), "majority", None)[split]
    elif dataset == "folder":
        from .datasets_extra import load_folder

        folder = path / split if (path / split).is_dir() else path
        face, skipped = load_folder(folder, image_size, labels)
        return face, skipped
    else:
        raise ConfigError(f"unknown dataset kind {dataset!r}; choose fer2013, ferplus or folder")
    face, skipped = match_labels(face, labels)
    return FaceData(resize_faces(face.images, image_size), face.targets, face.labels,
                    face.source), skipped


def restrict_report(report: dict[str, Any], evaluated: list[int]) -> dict[str, Any]:
    """Recompute per-class and macro metrics of ``report`` over the ``evaluated`` class indices
    (the dataset's classes); accuracy and the full confusion matrix are kept."""
    labels = report["labels"]
    names = [labels[i] for i in evaluated]
    per_class = {name: report["per_class"][name] for name in names}
    out = dict(report)
    out["per_class"] = per_class
    out["evaluated_labels"] = names
    for key, field in (("macro_f1", "f1"), ("macro_precision", "precision"),
                       ("macro_recall", "recall")):
        out[key] = float(np.mean([m[field] for m in per_class.values()])) if per_class else 0.0
    support = np.array([m["support"] for m in per_class.values()], dtype=np.float64)
    f1 = np.array([m["f1"] for m in per_class.values()])
    out["weighted_f1"] = float((f1 * support).sum() / support.sum()) if support.sum() else 0.0
    cm = np.asarray(report["confusion_matrix"])
    outside = [i for i in range(len(labels)) if i not in evaluated]
    out["predicted_outside"] = int(cm[:, outside].sum()) if outside else 0
    return out


def format_report(report: dict[str, Any]) -> str:
    """A readable per-class table plus the headline figures."""
    lines = [f"{'class':<12}{'precision':>10}{'recall':>10}{'f1':>10}{'support':>10}"]
    for name, m in report["per_class"].items():
        lines.append(f"{name:<12}{m['precision']:>10.4f}{m['recall']:>10.4f}{m['f1']:>10.4f}"
                     f"{m['support']:>10d}")
    lines.append(f"accuracy {report['accuracy']:.4f}  macro-F1 {report['macro_f1']:.4f}  "
                 f"n {report['n']}  tta {report.get('tta', 'none')}")
    if report.get("skipped_classes"):
        lines.append(f"skipped classes (not in the model): {', '.join(report['skipped_classes'])}")
    if report.get("predicted_outside"):
        lines.append(f"{report['predicted_outside']} prediction(s) of classes the data lacks")
    return "\n".join(lines)


def write_confusion_csv(cm: np.ndarray, labels: list[str], path: Path) -> Path:
    """Confusion matrix as CSV: header ``true\\predicted,<labels>``, one row per true class."""
    with open(path, "w", newline="") as fh:
        writer = csv.writer(fh)
        writer.writerow(["true\\predicted", *labels])
        for name, row in zip(labels, np.asarray(cm).tolist()):
            writer.writerow([name, *row])
    return path


def evaluate_main(model_path: str | None, data: str, dataset: str = "fer2013",
                  split: str = "test", tta: str = "none", json_path: str | Path | None = None,
                  out_dir: str | Path | None = None, ferplus: str | None = None,
                  device: str = "auto", batch_size: int = 512, quiet: bool = False) -> dict[str, Any]:
    """Evaluate a checkpoint (``None``: the bundled default) on one split of a dataset.

    Writes the report as JSON to ``json_path`` and ``confusion_<split>.csv``/``.png`` into
    ``out_dir`` (default: the JSON file's folder); prints a per-class table unless ``quiet``.
    Returns the report (keys: accuracy, macro_f1, per_class, confusion_matrix, labels, n,
    evaluated_labels, skipped_classes, model, data, split, tta, …).
    """
    from .engine import evaluate
    from .main import resolve_device
    from .plots import plot_confusion

    if tta not in TTA_MODES:
        raise ConfigError(f"unknown TTA {tta!r}; choose none, flip or tencrop")
    ckpt = load_checkpoint(model_path)
    pre = ckpt.preprocess
    if tta == "tencrop" and pre.image_size <= pre.input_size:
        raise ConfigError(f"--tta tencrop needs image_size > input_size; the model uses "
                          f"{pre.image_size}/{pre.input_size}")
    face, skipped = load_eval_data(data, dataset, split, ckpt.labels, pre.image_size, ferplus)
    if len(face) == 0:
        raise DataError(f"{data}: nothing to evaluate in split {split!r} for the model's labels "
                        f"{ckpt.labels}" + (f" (skipped: {', '.join(skipped)})" if skipped else ""))
    dev = resolve_device(device)
    model = ckpt.build().to(dev)
    report = evaluate(model, face, device=dev, input_size=pre.input_size, mean=pre.mean,
                      std=pre.std, tta=tta, batch_size=batch_size)
    evaluated = sorted(set(face.targets.tolist()))
    report = restrict_report(report, evaluated)
    report.update(model=str(model_path) if model_path else str(DEFAULT_WEIGHTS), arch=ckpt.arch,
                  data=str(data), dataset=dataset, split=split, tta=tta,
                  skipped_classes=skipped)
    if ferplus:
        report["ferplus"] = str(ferplus)
    if json_path is not None:
        json_file = Path(json_path)
        json_file.parent.mkdir(parents=True, exist_ok=True)
        json_file.write_text(json.dumps(report, indent=2))
        out_dir = out_dir if out_dir is not None else json_file.parent
    if out_dir is not None:
        folder = Path(out_dir)
        folder.mkdir(parents=True, exist_ok=True)
        cm = np.asarray(report["confusion_matrix"])
        write_confusion_csv(cm, report["labels"], folder / f"confusion_{split}.csv")
        plot_confusion(cm, report["labels"], folder / f"confusion_{split}.png",
                       title=f"{Path(data).name} {split} ({tta})")
    if not quiet:
        print(format_report(report), file=sys.stdout, flush=True)
    return report
