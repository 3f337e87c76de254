"""Where a whole ``ferbatch run`` spends its time: a py-spy profile sorted into pipeline stages.

Usage::

    .venv/bin/python bench/bench_profile.py [--video PATH] [--rate 25] [--json bench/profile_results.json]
        [-- extra ferbatch run options, e.g. --fps 5]
    .venv/bin/python bench/bench_profile.py --raw FILE      # sort an existing ``py-spy --format raw`` file

Starts ``python -m ferbatch.cli run VIDEO --local -q`` (this checkout, every frame unless options
say otherwise), attaches ``py-spy record --threads --format raw --pid`` to it at once (the first
~0.1 s of imports can be missed), measures the run's wall and CPU time (it is this script's
child), and sorts every sampled Python stack into one stage by its innermost recognised frame:

* ``startup: imports`` / ``startup: models`` — module imports; building the detector and
  classifier (weights read, networks made);
* ``decode`` — the background decode thread (PyAV decoding, colour conversion, display
  rotation; ``ferbatch/decode``);
* ``detect P-Net`` / ``R-Net`` / ``O-Net`` — the three MTCNN networks' forward passes, and the
  ``... glue`` rows their stage's other work (pyramid resampling, candidate extraction, NMS,
  ``roi_align`` crops: the lines between ``# Stage N`` markers of ``FaceDetector._cascade``);
  ``detect other`` the rest of the detector (downscale to ``--det-max-side``, upload,
  per-frame selection);
* ``crop`` (grey conversion and the aligned face warps), ``quality`` (per-face quality
  signals), ``classify`` (the emotion network), ``track`` (face ids; interval tracker);
* ``waiting (thread hand-offs)`` — a thread blocked on a queue, future or idle pool (py-spy
  counts some such samples on a busy machine, as the thread wakes);
* ``tables + write`` — building the Arrow tables and writing the Parquet output;
* ``pipeline glue`` — per-frame Python in ``process_video`` itself; ``run orchestration`` —
  planning, logging, the CLI; ``other`` — anything else.

py-spy samples threads that are not waiting, so ``~s`` (samples / rate) is the time a stage's
thread was running *or ready to run*: on a loaded machine it exceeds CPU time. ``~cpu s`` is the
stage's share of the samples that are not waits times the process's measured CPU time. Work in torch's own
intra-op threads (none on the CPU path's detector threads, which run one thread each) is not
seen, but its Python thread waits in the op and is counted. Samples are taken ``--rate`` times
a second: keep it low on a loaded machine (py-spy falls behind).
"""

from __future__ import annotations

import argparse
import json
import os
import re
import resource
import subprocess
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
FRAME = re.compile(r"^(?P<func>.+) \((?P<file>[^:()]+):(?P<line>\d+)\)$")


def cascade_stages(detect_py: Path) -> list[tuple[int, str]]:
    """(first line, stage) of each ``# Stage N`` block of ``FaceDetector._cascade``."""
    names = {"1": "P-Net", "2": "R-Net", "3": "O-Net"}
    out = []
    for no, text in enumerate(detect_py.read_text().splitlines(), 1):
        m = re.match(r"\s*# Stage ([123])", text)
        if m:
            out.append((no, names[m.group(1)]))
    return out


class Sorter:
    """Maps one sampled stack (outermost frame first) to a stage name."""

    NETS = {"PNet.forward": "P-Net", "RNet.forward": "R-Net", "ONet.forward": "O-Net"}
    #: innermost frames of a thread blocked on another (py-spy can catch one as it wakes)
    WAITS = {"Condition.wait", "Event.wait", "Semaphore.acquire", "Condition.notify",
             "Condition.notify_all", "Semaphore.release"}

    def __init__(self, detect_py: Path) -> None:
        self.stages = cascade_stages(detect_py)

    def _cascade_stage(self, line: int) -> str:
        stage = "P-Net"  # before the first marker: set-up of the P-Net pyramid
        for first, name in self.stages:
            if line >= first:
                stage = name
        return stage

    def __call__(self, frames: list[str]) -> str:
        parsed = []
        for f in frames:
            m = FRAME.match(f)
            parsed.append((m.group("func"), m.group("file"), int(m.group("line"))) if m else (f, "", 0))
        funcs = [p[0] for p in parsed]
        files = [p[1] for p in parsed]
        if any(fn == "_find_and_load" for fn in funcs) and not any("process_video" == fn for fn in funcs):
            return "startup: imports"
        if any(fn == "Stages.__init__" for fn in funcs):
            return "startup: models"
        if funcs and (funcs[-1] in self.WAITS or (funcs[-1] == "_worker" and len(funcs) > 1)):
            return "waiting (thread hand-offs)"
        if "FaceDetector.refine" in funcs:
            return "track: O-Net refine"
        cascade = [line for fn, _, line in parsed if fn == "FaceDetector._cascade"]
        if cascade:
            net = next((self.NETS[fn] for fn in reversed(funcs) if fn in self.NETS), None)
            return f"detect {net}" if net else f"detect {self._cascade_stage(cascade[-1])} glue"
        if any(f.endswith("ferbatch/detect.py") for f in files):
            return "detect other"
        for fn, file, _ in reversed(parsed):  # innermost first
            if "ferbatch/decode/" in file or fn == "prepared_batches.<locals>.produce":
                return "decode"
            if file.endswith("ferbatch/crop.py"):
                return "crop"
            if file.endswith("ferbatch/quality.py"):
                return "quality"
            if file.endswith("ferbatch/classify.py") or file.endswith("ferbatch/batching.py"):
                return "classify"
            if file.endswith(("ferbatch/track.py", "ferbatch/propagate.py", "ferbatch/interval.py")):
                return "track"
            if fn == "_tables" or "ferbatch/output/" in file:
                return "tables + write"
            if file.endswith("ferbatch/pipeline.py"):
                return "pipeline glue"
        if any("ferbatch/" in f for f in files):
            return "run orchestration"
        if not parsed:
            return "no Python frame (start, exit)"
        return "other"


def sort_raw(raw: Path, rate: float) -> dict[str, Any]:
    """Samples and seconds per stage (and per thread) of a ``py-spy --format raw --threads`` file."""
    sorter = Sorter(ROOT / "ferbatch" / "detect.py")
    stages: Counter[str] = Counter()
    threads: Counter[str] = Counter()
    for text in raw.read_text().splitlines():
        stack, _, count = text.rpartition(" ")
        if not stack or not count.isdigit():
            continue
        frames = stack.split(";")
        thread = frames[0].split(": ", 1)[-1] if frames[0].startswith("thread") else "?"
        threads[re.sub(r"_\d+$", "", thread)] += int(count)
        stages[sorter(frames[1:] if frames[0].startswith("thread") else frames)] += int(count)
    total = sum(stages.values())
    return {"rate_hz": rate, "samples": total,
            "stages": {k: {"samples": v, "seconds": round(v / rate, 2), "share": round(v / total, 4)}
                       for k, v in stages.most_common()},
            "threads": {k: round(v / rate, 2) for k, v in threads.most_common()}}


def estimate_cpu(fig: dict[str, Any]) -> None:
    """Share out the run's measured ``cpu_s`` over the stages by their samples (waits get none)."""
    working = sum(s["samples"] for name, s in fig["stages"].items() if not name.startswith("waiting"))
    for name, stage in fig["stages"].items():
        stage["cpu_s_est"] = 0.0 if name.startswith("waiting") else round(
            stage["samples"] / max(working, 1) * fig["cpu_s"], 2)


def print_table(fig: dict[str, Any]) -> None:
    est = all("cpu_s_est" in s for s in fig["stages"].values())
    print(f"{'stage':30}{'samples':>9}{'share':>8}{'~s':>8}" + (f"{'~cpu s':>9}" if est else ""))
    for name, s in fig["stages"].items():
        print(f"{name:30}{s['samples']:>9d}{s['share']:>8.1%}{s['seconds']:>8.2f}"
              + (f"{s['cpu_s_est']:>9.2f}" if est else ""))
    print("per thread (~s, running or ready): " + ", ".join(f"{k} {v:.1f}" for k, v in fig["threads"].items()))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    shared = next((d / "shared" for d in ROOT.parents if (d / "shared" / "videos").is_dir()), ROOT.parent / "shared")
    ap.add_argument("--video", type=Path, default=shared / "videos" / "WolfgangLanger_Pexels.mp4")
    ap.add_argument("--rate", type=float, default=25.0, help="samples per second")
    ap.add_argument("--raw", type=Path, default=None, help="sort this raw py-spy file instead of running")
    ap.add_argument("--keep-raw", type=Path, default=None, help="keep the raw py-spy output here")
    ap.add_argument("--cpu-s", type=float, default=None, help="with --raw: the run's CPU seconds")
    ap.add_argument("--json", type=Path, default=None)
    ap.add_argument("options", nargs="*", help="extra `ferbatch run` options (after --)")
    args = ap.parse_args()
    fig: dict[str, Any] = {"load_average_at_start": [round(x, 2) for x in os.getloadavg()]}
    if args.raw is None:
        spy = Path(sys.executable).with_name("py-spy")
        if not spy.exists():
            raise SystemExit(f"py-spy not found beside {sys.executable}: pip install py-spy")
        with tempfile.TemporaryDirectory(prefix="bench-profile-") as tmp:
            raw = args.keep_raw or Path(tmp) / "raw.txt"
            cmd = [sys.executable, "-m", "ferbatch.cli", "run", str(args.video), "--local", "-q",
                   "--out", str(Path(tmp) / "out"), *args.options]
            env = dict(os.environ, PYTHONPATH=str(ROOT))
            before = resource.getrusage(resource.RUSAGE_CHILDREN)
            t0 = time.perf_counter()
            # ferbatch is this script's child (its CPU time is counted); py-spy attaches to it
            run = subprocess.Popen(cmd, cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
            spy_proc = subprocess.Popen([str(spy), "record", "--format", "raw", "--threads", "-r",
                                         f"{args.rate:g}", "-o", str(raw), "--pid", str(run.pid)],
                                        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
            output = run.communicate()[0].decode(errors="replace")
            fig["wall_s"] = round(time.perf_counter() - t0, 2)
            after = resource.getrusage(resource.RUSAGE_CHILDREN)
            spy_out, spy_err = spy_proc.communicate(timeout=120)
            fig["cpu_s"] = round(after.ru_utime + after.ru_stime - before.ru_utime - before.ru_stime, 2)
            if run.returncode != 0 or spy_proc.returncode != 0 or not raw.exists():
                raise SystemExit(f"ferbatch run / py-spy failed:\n{output[-2000:]}\n{spy_out[-1000:]}{spy_err[-2000:]}")
            behind = re.findall(r"([\d.]+)s behind in sampling", spy_err)
            fig["max_sampling_lag_s"] = max(map(float, behind), default=0.0)
            fig["command"] = " ".join(cmd)
            fig.update(sort_raw(raw, args.rate))
        estimate_cpu(fig)
        print(f"{fig['command']}\nwall {fig['wall_s']} s, cpu {fig['cpu_s']} s (the ferbatch process), "
              f"load average {fig['load_average_at_start']} at start, py-spy lag up to "
              f"{fig['max_sampling_lag_s']} s")
    else:
        fig.update(sort_raw(args.raw, args.rate))
        if args.cpu_s:
            fig["cpu_s"] = args.cpu_s
            estimate_cpu(fig)
    print_table(fig)
    if args.json:
        args.json.write_text(json.dumps(fig, indent=1))


if __name__ == "__main__":
    main()
