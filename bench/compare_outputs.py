"""Do two git revisions write the same Parquet rows? Runs ``ferbatch run`` of each revision on the
same inputs and compares ``videos``, ``frames`` and ``faces`` column by column.

Every column must be equal except the timing and provenance ones that differ between any two
runs (``processing_s``, ``finished_at``, ``ferbatch_version``); floats are compared exactly unless
``--atol`` is given. Used to show that a refactoring keeps the output contract::

    .venv/bin/python bench/compare_outputs.py 06b12a6 HEAD            # shared clips + demo clips
    .venv/bin/python bench/compare_outputs.py 06b12a6 HEAD --ray      # through the Ray executor

Each revision is checked out with ``git worktree`` into a temporary folder and run with this
checkout's ``.venv`` as ``python -m ferbatch.cli run INPUTS --out TMP -q`` from that folder (so
its own ``ferbatch`` package is imported). Inputs: the clips of ``../shared/videos`` (when
present) and the demo clips (:func:`ferbatch.demo.make_demo_inputs`, written once by this
checkout). Exit status 1 when any table differs.
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np
import pandas as pd

ROOT = Path(__file__).resolve().parents[1]
IGNORED = ["processing_s", "finished_at", "ferbatch_version"]
KEYS = {"frames": ["video_id", "frame_index"], "faces": ["video_id", "frame_index", "face_id"]}


def run_revision(tree: Path, inputs: list[Path], out: Path, mode: str) -> None:
    cmd = [sys.executable, "-m", "ferbatch.cli", "run", *map(str, inputs), "--out", str(out),
           "-q", f"--{mode}"]
    proc = subprocess.run(cmd, cwd=tree, capture_output=True, text=True)
    if proc.returncode not in (0, 1):  # 1: some inputs are meant to fail (the demo's broken file)
        raise SystemExit(f"{tree}: ferbatch run failed ({proc.returncode}):\n{proc.stderr[-3000:]}")


def read(out: Path) -> dict[str, pd.DataFrame]:
    videos = pd.read_parquet(out / "videos.parquet").drop(columns=IGNORED)
    tables = {"videos": videos.sort_values(["path", "video_id"]).reset_index(drop=True)}
    for name, keys in KEYS.items():
        df = pd.read_parquet(out / name)
        df["video_id"] = df["video_id"].astype(str)
        tables[name] = df.sort_values(keys).reset_index(drop=True)
    return tables


def compare(a: pd.DataFrame, b: pd.DataFrame, atol: float) -> list[str]:
    """Differences between two tables, one line each (empty: equal)."""
    if list(a.columns) != list(b.columns):
        return [f"columns differ: {list(a.columns)} vs {list(b.columns)}"]
    if len(a) != len(b):
        return [f"{len(a)} rows vs {len(b)}"]
    problems = []
    for col in a.columns:
        x, y = a[col], b[col]
        if pd.api.types.is_float_dtype(x):
            xv, yv = x.to_numpy(np.float64), y.to_numpy(np.float64)
            same_nan = np.isnan(xv) == np.isnan(yv)
            diff = np.nanmax(np.abs(xv - yv)) if len(xv) and not np.isnan(xv).all() else 0.0
            if not same_nan.all() or diff > atol:
                problems.append(f"{col}: max |difference| {diff:.3g}")
        elif x.astype(object).where(x.notna(), None).tolist() != \
                y.astype(object).where(y.notna(), None).tolist():
            n = int((x.astype(str) != y.astype(str)).sum())
            problems.append(f"{col}: {n} value(s) differ")
    return problems


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("before")
    parser.add_argument("after")
    parser.add_argument("--videos", type=Path, default=ROOT.parent / "shared" / "videos")
    parser.add_argument("--ray", action="store_true", help="run both through Ray (default: --local)")
    parser.add_argument("--atol", type=float, default=0.0)
    args = parser.parse_args()
    sys.path.insert(0, str(ROOT))
    from ferbatch.demo import make_demo_inputs

    with tempfile.TemporaryDirectory() as tmp:
        tmp_path = Path(tmp)
        inputs = sorted(args.videos.glob("*")) if args.videos.is_dir() else []
        make_demo_inputs(tmp_path / "demo")
        inputs.append(tmp_path / "demo")
        outs = {}
        for label, rev in (("before", args.before), ("after", args.after)):
            tree = tmp_path / label
            subprocess.run(["git", "-C", str(ROOT), "worktree", "add", "--detach", "-f", str(tree),
                            rev], check=True, capture_output=True)
            try:
                run_revision(tree, inputs, tmp_path / f"out_{label}", "ray" if args.ray else "local")
            finally:
                subprocess.run(["git", "-C", str(ROOT), "worktree", "remove", "--force", str(tree)],
                               capture_output=True)
            outs[label] = read(tmp_path / f"out_{label}")
        failed = False
        print(f"{args.before} vs {args.after}, {len(inputs)} input(s) "
              f"({'Ray' if args.ray else 'in-process'}), ignoring {', '.join(IGNORED)}:")
        for name in ("videos", "frames", "faces"):
            problems = compare(outs["before"][name], outs["after"][name], args.atol)
            a = outs["before"][name]
            print(f"  {name:7} {len(a):6d} rows x {a.shape[1]:2d} columns: "
                  + ("identical" if not problems else "DIFFERENT"))
            for line in problems:
                print(f"    {line}")
            failed |= bool(problems)
    sys.exit(1 if failed else 0)


if __name__ == "__main__":
    main()
