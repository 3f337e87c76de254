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
import io
import json
from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np
import torch

from ..devices import resolve_device
from ..errors import ConfigError, DataError
from ..models.bundled import resolve_model
from ..models.checkpoint import load_checkpoint, save_checkpoint
from ..output.atomic import atomic_write_text
from .args import TTA_MODES
from .data import FaceData
from .datasets import check_dataset_options, get_dataset
from .datasets.infer import canonical_split, infer_dataset
from .labels import canonical_label, label_positions


def match_labels(data: FaceData, labels: list[str]) -> tuple[FaceData, list[str]]:
    """Re-index ``data`` onto ``labels`` (a model's label set) by canonical name.

    Samples of classes not in ``labels`` are dropped; their class names are returned (they
    are reported as skipped classes, not added to ``left_out``, which is kept as it was).
    Soft targets are reduced to their argmax first (and ``soft_sampling`` is cleared).
    """
    remap = np.array(label_positions(data.labels, labels), dtype=np.int64)
    hard = data.hard_targets.numpy()
    present = set(np.unique(hard).tolist())
    skipped = sorted({canonical_label(name) for i, name in enumerate(data.labels)
                      if remap[i] < 0 and i in present})
    target = remap[hard]
    keep = np.flatnonzero(target >= 0)
    return replace(data, images=data.images[torch.from_numpy(keep)],
                   targets=torch.from_numpy(target[keep].copy()), labels=list(labels),
                   soft_sampling=False, left_out=dict(data.left_out)), skipped


def load_eval_data(data: str, dataset: str, split: str, labels: list[str], image_size: int,
                   ferplus: str | None = None) -> tuple[FaceData, list[str]]:
    """The split to evaluate (uint8 faces of ``image_size`` px), re-indexed onto the model's
    ``labels``, and the names of the classes skipped because the model lacks them.

    The dataset comes from the registry (:func:`ferbatch.train.datasets.get_dataset`); folders
    use ``data/<split>/<class>/…`` when that sub-folder exists, else ``data/<class>/…``; FER+
    uses majority labels (the protocol its paper reports). Raises :class:`ConfigError` for an
    unknown dataset or split, :class:`DataError` for unreadable data.
    """
    split = canonical_split(split)
    check_dataset_options(dataset, ferplus)
    face, skipped = get_dataset(dataset).eval_split(Path(data), split, labels=labels,
                                                    image_size=image_size, ferplus=ferplus)
    face, more = for_model(face, labels, image_size)
    return face, sorted(set(skipped) | set(more))


def for_model(face: FaceData, labels: list[str], image_size: int) -> tuple[FaceData, list[str]]:
    """``face`` re-indexed onto a model's ``labels`` (:func:`match_labels`) with its faces
    resized to ``image_size`` px (:meth:`FaceData.at_size`), and the class names left out."""
    face, skipped = match_labels(face, labels)
    return face.at_size(image_size), skipped


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


def format_summary(report: dict[str, Any]) -> str:
    """The headline figures (accuracy, macro-F1, n, TTA; ECE, NLL, Brier) and what was left out."""
    lines = [f"accuracy {report['accuracy']:.4f}  macro-F1 {report['macro_f1']:.4f}  "
             f"n {report['n']}  tta {report.get('tta', 'none')}"]
    cal = report.get("calibration")
    if cal:
        line = (f"ECE {cal['ece']:.4f} ({cal['bins']} bins)  NLL {cal['nll']:.4f}  "
                f"Brier {cal['brier']:.4f}  temperature {cal['temperature']:.3f}")
        raw = cal.get("uncalibrated")
        if raw:
            line += f"  (at T = 1: ECE {raw['ece']:.4f}  NLL {raw['nll']:.4f}  Brier {raw['brier']:.4f})"
        lines.append(line)
    for reason, count in report.get("left_out", {}).items():
        lines.append(f"left out by the dataset's rules: {count} face(s): {reason}")
    if report.get("skipped_classes"):
        lines.append(f"skipped classes (not in the model): {', '.join(report['skipped_classes'])}")
    if report.get("predicted_outside"):
        lines.append(f"{report['predicted_outside']} prediction(s) of classes the data lacks")
    return "\n".join(lines)


def format_report(report: dict[str, Any], per_class: bool = True) -> str:
    """A readable per-class table (unless ``per_class`` is false) plus :func:`format_summary`."""
    lines = []
    if per_class:
        lines.append(f"{'class':<12}{'precision':>10}{'recall':>10}{'f1':>10}{'support':>10}")
        for name, m in report["per_class"].items():
            lines.append(f"{name:<12}{m['precision']:>10.4f}{m['recall']:>10.4f}"
                         f"{m['f1']:>10.4f}{m['support']:>10d}")
    lines.append(format_summary(report))
    return "\n".join(lines)


def write_confusion_csv(cm: np.ndarray, labels: list[str], path: Path) -> Path:
    """Confusion matrix as CSV, written atomically: header ``true\\predicted,<labels>``, one
    row per true class."""
    buf = io.StringIO(newline="")
    writer = csv.writer(buf)
    writer.writerow(["true\\predicted", *labels])
    for name, row in zip(labels, np.asarray(cm).tolist()):
        writer.writerow([name, *row])
    atomic_write_text(path, buf.getvalue())
    return path


def output_stem(report: dict[str, Any], json_path: str | Path | None) -> str:
    """What the confusion and reliability files of an evaluation are named after: the JSON
    file's stem, else ``<split>_<tta>``, so several evaluations can share one folder."""
    return Path(json_path).stem if json_path is not None else f"{report['split']}_{report['tta']}"


def _write_outputs(report: dict[str, Any], json_path: str | Path | None,
                   out_dir: str | Path | None, title: str) -> None:
    """The report as JSON, ``<stem>_confusion.csv`` / ``.png`` and the reliability diagram
    ``<stem>_reliability.png`` (:func:`output_stem`; all atomic but the PNGs)."""
    from .plots import plot_confusion, plot_reliability

    if json_path is not None:
        json_file = Path(json_path)
        json_file.parent.mkdir(parents=True, exist_ok=True)
        atomic_write_text(json_file, json.dumps(report, indent=2))
        out_dir = out_dir if out_dir is not None else json_file.parent
    if out_dir is not None:
        folder = Path(out_dir)
        folder.mkdir(parents=True, exist_ok=True)
        cm = np.asarray(report["confusion_matrix"])
        stem = output_stem(report, json_path)
        write_confusion_csv(cm, report["labels"], folder / f"{stem}_confusion.csv")
        plot_confusion(cm, report["labels"], folder / f"{stem}_confusion.png", title=title)
        if report.get("calibration"):
            plot_reliability(report["calibration"], folder / f"{stem}_reliability.png", title=title)


def evaluate_main(model_path: str | None, data: str, *, dataset: str | None = None,
                  split: str = "test", tta: str = "none", json_path: str | Path | None = None,
                  out_dir: str | Path | None = None, ferplus: str | None = None,
                  device: str = "auto", batch_size: int = 512,
                  record: bool = False) -> dict[str, Any]:
    """Evaluate a checkpoint (``None``: the bundled default) on one split of a dataset, with
    the checkpoint's own preprocessing.

    ``dataset``: a registered name, or ``None`` to infer it from ``data``
    (:func:`~ferbatch.train.datasets.infer.infer_dataset`: a folder, a FER2013 CSV, FER+'s
    votes file); ``split``: ``train``/``val``/``test`` or FER2013's ``Training``/
    ``PublicTest``/``PrivateTest`` (the report says the canonical name).

    Writes the report as JSON to ``json_path`` and ``<stem>_confusion.csv``/``.png`` and
    ``<stem>_reliability.png`` into ``out_dir`` (default: the JSON file's folder; ``<stem>``:
    the JSON file's name without ``.json``, else ``<split>_<tta>``); prints nothing (see
    :func:`format_report`). With ``record`` the headline figures are also stored in the
    checkpoint file's ``metrics[split]`` (:func:`record_metrics`), which ``ferbatch models`` shows.
    Returns the report (keys: accuracy, macro_f1, per_class, confusion_matrix, labels, n,
    evaluated_labels, skipped_classes, left_out (rows the dataset's rules dropped, reason →
    count), model, data, split, tta, …). Raises
    :class:`ConfigError`, :class:`DataError` or :class:`~ferbatch.errors.ModelError`.
    """
    from .engine import evaluate

    if tta not in TTA_MODES:
        raise ConfigError(f"unknown TTA {tta!r}; choose {', '.join(TTA_MODES)}")
    split = canonical_split(split)
    if dataset is None:  # from the path: a folder, a FER2013 CSV, FER+'s votes file
        found = infer_dataset(data, ferplus)
        dataset, data = found.dataset, str(found.data)
        ferplus = str(found.ferplus) if found.ferplus else None
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
    report = evaluate(model, face, device=dev, preprocess=pre, tta=tta, batch_size=batch_size,
                      temperature=ckpt.temperature)
    if ckpt.temperature != 1.0:  # what the calibration bought: the same figures at T = 1
        raw = evaluate(model, face, device=dev, preprocess=pre, tta=tta, batch_size=batch_size)
        report["calibration"]["uncalibrated"] = {
            k: raw["calibration"][k] for k in ("ece", "mce", "nll", "brier")}
    report = restrict_report(report, sorted(set(face.targets.tolist())))
    report.update(model=str(resolve_model(model_path)), weights_sha256=ckpt.weights_sha256(),
                  temperature=ckpt.temperature, arch=ckpt.arch,
                  data=str(data), dataset=dataset, split=split, tta=tta,
                  skipped_classes=skipped, left_out=dict(face.left_out))
    if ferplus:
        report["ferplus"] = str(ferplus)
    _write_outputs(report, json_path, out_dir, f"{Path(data).name} {split} ({tta})")
    if record:
        record_metrics(resolve_model(model_path), report)
    return report


def record_metrics(path: Path, report: dict[str, Any]) -> None:
    """Store ``report``'s headline figures in the checkpoint at ``path`` as ``metrics[split]``
    (accuracy, macro-F1, per-class F1, n, dataset, TTA, ECE/NLL/Brier); a figure the trainer
    stored there before is kept under ``metrics[split + "_trainer"]``. Atomic rewrite."""
    ckpt = load_checkpoint(path)
    split = report["split"]
    if split in ckpt.metrics and f"{split}_trainer" not in ckpt.metrics:
        ckpt.metrics[f"{split}_trainer"] = ckpt.metrics[split]
    cal = report.get("calibration", {})
    ckpt.metrics[split] = {
        "accuracy": report["accuracy"], "macro_f1": report["macro_f1"], "n": report.get("n"),
        "dataset": report["dataset"], "tta": report["tta"],
        "f1": {label: row["f1"] for label, row in report.get("per_class", {}).items()},
        "calibration": {k: cal[k] for k in ("ece", "nll", "brier") if k in cal}}
    save_checkpoint(ckpt, path)
