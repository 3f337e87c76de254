"""Train on a machine lent for minutes (a GPU with a hard time limit and a small upload), from
this checkout, with only torch, numpy and pandas there (no PyAV, Ray, click or matplotlib).

Here, before the call (FER2013's Training + PublicTest, ~52 MB, into an ignored folder that
the device tool carries; PrivateTest stays here and is scored here, once)::

    .venv/bin/python jobs/train_on_device.py pack --data ../shared/data/fer2013/fer2013.csv.gz \\
        --out device_data/fer2013_train_val.npz.xz --usages Training,PublicTest
    .venv/bin/python jobs/train_on_device.py run --plan jobs/device_plan.json \\
        --data device_data/fer2013_train_val.npz.xz --out /tmp/plan --dry-run   # checks only

On the lent machine (the runs train in ``--work``; ``$OUT`` gets what comes back: at most 8
files, :func:`ferbatch.train.device_output.bring_back`)::

    python3 jobs/train_on_device.py run --plan jobs/device_plan.json \\
        --data device_data/fer2013_train_val.npz.xz --out "$OUT"

The plan's format and the epoch fitting: :mod:`ferbatch.train.device_plan`.
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from ferbatch.errors import FerbatchError  # noqa: E402
from ferbatch.train.datasets.fer2013 import pack_fer2013  # noqa: E402
from ferbatch.train.device_output import bring_back  # noqa: E402
from ferbatch.train.device_plan import load_plan, run_plan  # noqa: E402
from ferbatch.train.plan_check import check_plan  # noqa: E402


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
    run.add_argument("--out", required=True,
                     help="what comes back: runs.tar.xz (logs, histories, configs, metrics), "
                          "NAME.pt per run brought back, device_plan.json (at most 8 files)")
    run.add_argument("--work", default=None,
                     help="where the runs train, one sub-folder each (default: a new folder "
                          "ferbatch-plan-* in the system's temp dir)")
    run.add_argument("--no-fit", action="store_true",
                     help="train the planned epochs, without scaling them to the budget")
    run.add_argument("--dry-run", action="store_true",
                     help="check the plan (types, choices, data, models, teachers) and print "
                          "the runs; train nothing")
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
        made = not args.work and not args.dry_run  # a fresh work folder, removed if the plan fails
        work = (Path(args.work) if args.work
                else Path(tempfile.mkdtemp(prefix="ferbatch-plan-")) if made
                else Path(tempfile.gettempdir()) / "ferbatch-plan-WORK")  # a dry run writes nothing
        try:
            plan = load_plan(args.plan, args.data, work)
            check_plan(plan)  # every problem found before a minute of the machine is spent
        except FerbatchError:
            if made:
                work.rmdir()
            raise
        if args.dry_run:
            for stage in plan.stages:
                print(f"stage {stage.name} (share {stage.share} of the budget left):")
                for run in stage.runs:
                    back = ", brought back" if run.bring_back else ""
                    print(f"  {run.name} ({run.args.epochs} epochs before fitting{back}): "
                          f"{json.dumps(run.args.to_dict())}")
            print("the plan is fine")
            return 0
        summary = None
        try:
            summary = run_plan(plan, work, fit=not args.no_fit)
        finally:  # whatever happened, bring back what there is
            if summary is None:
                stored = work / "device_plan.json"
                summary = json.loads(stored.read_text()) if stored.is_file() else {"stages": []}
                summary["error"] = "the job stopped early (its log says why)"
            files = bring_back(summary, plan, work, args.out)
            print(f"runs trained in {work}; brought back: {', '.join(p.name for p in files)}")
        for stage in summary["stages"]:
            for run in stage["runs"]:
                print(f"{stage['name']}/{run['name']}: rc {run['rc']} epochs "
                      f"{run.get('epochs_run', 0)}/{run['epochs_planned']} best val "
                      f"{run.get('best_val_acc', float('nan')):.4f} in {run['seconds']:.0f} s")
        complete = all("error" not in s and s["runs"] and all(r["rc"] == 0 for r in s["runs"])
                       for s in summary["stages"])
        if not complete:
            print("not every stage ran to the end (a stage skipped, a run failed or stopped at "
                  "its deadline): see device_plan.json", file=sys.stderr)
        return 0 if complete else 1
    except FerbatchError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
