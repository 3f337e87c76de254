"""Every bundled model: size, parameters, CPU speed (faces/s) and the metrics stored with it.

    .venv/bin/python bench/bench_models.py [--threads 2] [--repeats 5] [--json bench/models_results.json]

Speed is ``EmotionClassifier`` on random 48×48 uint8 faces (preprocessing, forward pass and
softmax with the stored temperature), median of ``--repeats`` timings per batch size, on the CPU
with ``--threads`` torch threads; ``unfolded``: batch 1 / batch 64 with the network as trained
instead of the BatchNorm-folded one the classifier runs (timings interleaved). Accuracy figures are the ones stored in each checkpoint by
the trainer (``ferbatch models`` shows the same); the README's model table quotes this output.
"""

from __future__ import annotations

import argparse
import json
import statistics
import time
from typing import Any

import numpy as np
import torch

from ferbatch.classify import EmotionClassifier
from ferbatch.models.bundled import bundled_models


def _rate(clf: EmotionClassifier, faces: np.ndarray, batch: int, total: int) -> float:
    """faces/s of one timing: ``total`` faces classified in batches of ``batch``."""
    calls = max(1, total // batch)
    start = time.perf_counter()
    for _ in range(calls):
        clf(faces[:batch])
    return calls * batch / (time.perf_counter() - start)


def faces_per_s(clf: EmotionClassifier, batch: int, repeats: int, total: int) -> tuple[float, float]:
    """Median faces/s over ``repeats`` timings of the classifier as it runs (BatchNorm folded,
    :func:`~ferbatch.classify.fold_batch_norm`) and of the same classifier running the network
    as trained, the two timings interleaved."""
    faces = np.random.default_rng(0).integers(0, 255, (max(batch, 64), 48, 48), dtype=np.uint8)
    folded, trained = clf.inference_model, clf.model
    rates: dict[str, list[float]] = {"folded": [], "trained": []}
    for _ in range(repeats):
        for name, network in (("folded", folded), ("trained", trained)):
            clf.inference_model = network
            clf(faces[:batch])  # warm-up
            rates[name].append(_rate(clf, faces, batch, total))
    clf.inference_model = folded
    return statistics.median(rates["folded"]), statistics.median(rates["trained"])


def measure(repeats: int, total: int) -> list[dict[str, Any]]:
    rows = []
    for model in bundled_models():
        clf = EmotionClassifier(model.path, device="cpu")
        params = sum(p.numel() for p in clf.model.parameters())
        row = {"name": model.name, "arch": model.arch, "labels": model.labels,
               "parameters": params, "size_mb": round(model.size_mb, 2), "metrics": model.metrics}
        for b in (1, 64):
            row[f"batch{b}_faces_per_s"], row[f"batch{b}_unfolded_faces_per_s"] = \
                faces_per_s(clf, b, repeats, total)
        rows.append(row)
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--threads", type=int, default=2, help="torch threads")
    parser.add_argument("--repeats", type=int, default=5, help="timings per batch size")
    parser.add_argument("--faces", type=int, default=256, help="faces per timing")
    parser.add_argument("--json", default=None, help="also write the figures here")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    rows = measure(args.repeats, args.faces)
    aw = max([len("arch"), *(len(r["arch"]) for r in rows)])
    print(f"{'model':10} {'arch':{aw}} {'classes':>7} {'params':>9} {'MB':>5} "
          f"{'b1 f/s':>7} {'b64 f/s':>8} {'unfolded':>9}  test acc  macro-F1")
    for r in rows:
        m = r["metrics"]
        acc = f"{m['accuracy']:.4f}" if "accuracy" in m else "-"
        f1 = f"{m['macro_f1']:.4f}" if "macro_f1" in m else "-"
        print(f"{r['name']:10} {r['arch']:{aw}} {len(r['labels']):7d} {r['parameters']:9,d} "
              f"{r['size_mb']:5.1f} {r['batch1_faces_per_s']:7.0f} {r['batch64_faces_per_s']:8.0f}"
              f" {r['batch1_unfolded_faces_per_s']:4.0f}/{r['batch64_unfolded_faces_per_s']:<4.0f}"
              f"  {acc:>8}  {f1:>8}")
    if args.json:
        with open(args.json, "w") as fh:
            json.dump(rows, fh, indent=2)


if __name__ == "__main__":
    main()
