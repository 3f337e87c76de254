"""Export benchmark: CPU faces/s and PrivateTest accuracy of PyTorch, ONNX fp32 and ONNX int8.

Usage::

    .venv/bin/python bench/bench_export.py [--data ../shared/data/fer2013/fer2013.csv.gz]
        [--model default] [--threads N] [--seconds 3] [--json bench/export_results.json]

Exports the model twice with ``ferbatch.export.export_model`` (fp32, and int8 calibrated on
PublicTest), then, for each of PyTorch (:class:`ferbatch.classify.EmotionClassifier`, backend
``torch``), ONNX Runtime fp32 and ONNX Runtime int8, measures classification throughput on real
PrivateTest faces at batch 1 and batch 32 (uint8 48×48 crops in, probabilities out: the
preprocessing is timed too; each figure is the best of 3 runs of at least ``--seconds``) and the
PrivateTest accuracy. Every figure is a wall-clock measurement: run it on a quiet machine.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from ferbatch.classify import EmotionClassifier  # noqa: E402
from ferbatch.export import OnnxEmotionModel, export_model  # noqa: E402
from ferbatch.models.checkpoint import load_checkpoint  # noqa: E402
from ferbatch.train.evaluate import load_eval_data  # noqa: E402


def faces_per_s(fn, faces: np.ndarray, batch: int, seconds: float) -> float:
    """Best of 3: faces classified per second, calling ``fn`` on consecutive batches."""
    best = 0.0
    fn(faces[:batch])  # warm-up (kernel selection, allocation)
    for _ in range(3):
        n, start, i = 0, time.perf_counter(), 0
        while time.perf_counter() - start < seconds:
            chunk = faces[i:i + batch]
            if len(chunk) < batch:
                i, chunk = 0, faces[:batch]
            fn(chunk)
            n += len(chunk)
            i += batch
        best = max(best, n / (time.perf_counter() - start))
    return best


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--data", default=str(ROOT.parent / "shared/data/fer2013/fer2013.csv.gz"))
    parser.add_argument("--model", default="default")
    parser.add_argument("--threads", type=int, default=torch.get_num_threads())
    parser.add_argument("--seconds", type=float, default=3.0)
    parser.add_argument("--json", default=None)
    args = parser.parse_args()
    if not Path(args.data).is_file():
        sys.exit(f"bench_export: FER2013 CSV not found: {args.data} (--data)")
    torch.set_num_threads(args.threads)
    ckpt = load_checkpoint(args.model)
    test, _ = load_eval_data(args.data, "fer2013", "test", list(ckpt.labels), ckpt.preprocess.image_size)
    faces, targets = test.images.numpy(), test.targets.numpy()

    with tempfile.TemporaryDirectory() as tmp:
        fp32_path, int8_path = Path(tmp, "fp32.onnx"), Path(tmp, "int8.onnx")
        t0 = time.perf_counter()
        export_model(args.model, fp32_path, data=args.data)
        t1 = time.perf_counter()
        report8 = export_model(args.model, int8_path, int8=True, data=args.data)
        t2 = time.perf_counter()
        runners = {
            "pytorch fp32": EmotionClassifier(args.model, device="cpu", batch_size=256),
            "onnxruntime fp32": OnnxEmotionModel(fp32_path, threads=args.threads),
            "onnxruntime int8": OnnxEmotionModel(int8_path, threads=args.threads),
        }
        sizes = {"pytorch fp32": runners["pytorch fp32"].path.stat().st_size,
                 "onnxruntime fp32": fp32_path.stat().st_size, "onnxruntime int8": int8_path.stat().st_size}
        results = {}
        for name, fn in runners.items():
            probs = np.concatenate([fn(faces[i:i + 256]) for i in range(0, len(faces), 256)])
            results[name] = {
                "accuracy": float((probs.argmax(1) == targets).mean()),
                "faces_per_s_batch1": faces_per_s(fn, faces, 1, args.seconds),
                "faces_per_s_batch32": faces_per_s(fn, faces, 32, args.seconds),
                "file_mb": sizes[name] / 1e6,
            }
    out = {"machine": f"{platform.processor() or platform.machine()}, {os.cpu_count()} cores, "
                      f"load average {os.getloadavg()[0]:.1f}",
           "threads": args.threads, "test_n": int(len(targets)),
           "export_s_fp32": round(t1 - t0, 1), "export_s_int8": round(t2 - t1, 1),
           "int8_top1_agreement": report8.top1_agreement_int8, "results": results}
    print(f"model {args.model}, PrivateTest n {len(targets)}, {args.threads} threads, {out['machine']}")
    print(f"{'backend':<18} {'accuracy':>9} {'faces/s b1':>11} {'faces/s b32':>12} {'MB':>6}")
    for name, r in results.items():
        print(f"{name:<18} {r['accuracy']:>9.2%} {r['faces_per_s_batch1']:>11.0f} "
              f"{r['faces_per_s_batch32']:>12.0f} {r['file_mb']:>6.2f}")
    print(f"int8 top-1 agreement with fp32: {report8.top1_agreement_int8:.2%}; export "
          f"{out['export_s_fp32']} s (fp32), {out['export_s_int8']} s (int8, with calibration)")
    if args.json:
        Path(args.json).write_text(json.dumps(out, indent=2) + "\n")


if __name__ == "__main__":
    main()
