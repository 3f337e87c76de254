"""Train on a machine lent for minutes (a GPU with a hard time limit and a small upload), from
this checkout, with only torch, numpy and pandas there (no PyAV, Ray, click or matplotlib).

Here, before the call (FER2013's Training + PublicTest, ~52 MB, into an ignored folder that
the device tool carries; PrivateTest stays here and is scored here, once)::

    .venv/bin/python jobs/train_on_device.py pack --data ../shared/data/fer2013/fer2013.csv.gz \\
        --out device_data/fer2013_train_val.npz.xz --usages Training,PublicTest
    .venv/bin/python jobs/train_on_device.py run --plan jobs/device_plan.json \\
        --data device_data/fer2013_train_val.npz.xz --out /tmp/plan_dry --dry-run   # checks only

On the lent machine (``$OUT`` comes back; ``last.pt`` files are deleted at the end)::

    python3 jobs/train_on_device.py run --plan jobs/device_plan.json \\
        --data device_data/fer2013_train_val.npz.xz --out "$OUT"

The plan's format and the epoch fitting: :mod:`ferbatch.train.device_plan`.
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from ferbatch.errors import FerbatchError  # noqa: E402
from ferbatch.train.datasets.fer2013 import pack_fer2013  # noqa: E402
from ferbatch.train.device_plan import load_plan, run_plan  # noqa: E402


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    sub = p.add_subparsers(dest="command", required=True)
    pack = sub.add_parser("pack", help="pack FER2013 splits into one xz-compressed .npz")
    pack.add_argument("--data", required=True, help="FER2013 CSV (.csv/.csv.gz)")
    pack.add_argument("--out", required=True, help="file to write, ending in .npz.xz")
    pack.add_argument("--usages", default="Training,PublicTest",
                      help="FER2013 Usage values to keep, comma-separated "
                           "(default: Training,PublicTest)")
    run = sub.add_parser("run", help="run a training plan (stages of side-by-side runs)")
    run.add_argument("--plan", required=True, help="plan JSON (see ferbatch.train.device_plan)")
    run.add_argument("--data", required=True, help="the data every run trains on")
    run.add_argument("--out", required=True, help="output folder (one sub-folder per run)")
    run.add_argument("--no-fit", action="store_true",
                     help="train the planned epochs, without scaling them to the budget")
    run.add_argument("--keep-last", action="store_true",
                     help="keep last.pt and teacher_logits.pt (large) in the run folders")
    run.add_argument("--dry-run", action="store_true",
                     help="check the plan and print the runs, train nothing")
    return p


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s: %(message)s")
    try:
        if args.command == "pack":
            usages = [u.strip() for u in args.usages.split(",") if u.strip()]
            size = pack_fer2013(args.data, args.out, usages)
            print(f"{args.out}: {size / 1e6:.1f} MB ({', '.join(usages)})")
            return 0
        plan = load_plan(args.plan, args.data, args.out)
        if args.dry_run:
            for stage in plan.stages:
                print(f"stage {stage.name} (share {stage.share}):")
                for run in stage.runs:
                    print(f"  {run.name}: {json.dumps(run.args.to_dict())}")
            return 0
        summary = run_plan(plan, args.out, fit=not args.no_fit, keep_last=args.keep_last)
        for stage in summary["stages"]:
            for run in stage["runs"]:
                print(f"{stage['name']}/{run['name']}: rc {run['rc']} epochs "
                      f"{run.get('epochs_run', 0)}/{run['epochs_planned']} best val "
                      f"{run.get('best_val_acc', float('nan')):.4f} in {run['seconds']:.0f} s")
        return 0 if all(r["rc"] == 0 for s in summary["stages"] for r in s["runs"]) else 1
    except FerbatchError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
