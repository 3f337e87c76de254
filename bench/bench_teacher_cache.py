"""What the shared teacher-logit cache saves a distillation run: one teacher scored on FER2013's
training split (centre crop + mirror, as ``ferbatch train --teacher`` does), then read back
from the cache, in a fresh cache folder.

    .venv/bin/python bench/bench_teacher_cache.py --data ../shared/data/fer2013/fer2013.csv.gz \\
        [--teacher default] [--threads 2]
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time

import torch


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--data", required=True, help="FER2013 CSV (.csv/.csv.gz) or packed .npz.xz")
    p.add_argument("--teacher", default="default", help="bundled model name or checkpoint")
    p.add_argument("--threads", type=int, default=2)
    args = p.parse_args()
    torch.set_num_threads(args.threads)
    from ferbatch.train.datasets.fer2013 import load_fer2013
    from ferbatch.train.distill import teacher_logits

    train = load_fer2013(args.data)["train"]  # parsed before the cache folder changes
    with tempfile.TemporaryDirectory() as cache:
        os.environ["FERBATCH_CACHE_DIR"] = cache
        start = time.perf_counter()
        scored = teacher_logits([args.teacher], train, torch.device("cpu"))
        first = time.perf_counter() - start
        start = time.perf_counter()
        cached = teacher_logits([args.teacher], train, torch.device("cpu"))
        again = time.perf_counter() - start
    assert torch.equal(scored, cached)
    print(f"teacher {args.teacher} on {len(train)} training faces, {args.threads} threads: "
          f"scored in {first:.1f} s, read from the cache in {again:.2f} s")


if __name__ == "__main__":
    main()
