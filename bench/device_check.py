"""The whole GPU check in one call (within 8 minutes), for the lent device: the ``gpu`` tests,
the GPU benchmark and a short profile of the slowest stage, everything written under ``--out``.

On the device (``python3`` 3.12 with torch/numpy/pandas/pyarrow/OpenCV/scikit-image, without
PyAV, facenet-pytorch or pytest), the wheels this checkout cannot install there travel in
``device_wheels/`` (made here by ``bench/prepare_device.sh``; ignored by git, carried by the
device tool) and are installed into ``--out``/site with ``pip --no-deps``::

    python3 bench/device_check.py --out "$OUT"                       # on the device
    .venv/bin/python bench/device_check.py --device cpu --quick --out /tmp/check   # dry run

Writes ``device_check.json`` (steps, timings, exit codes), ``gpu_tests.txt`` / ``.xml``,
``gpu_results.json`` / ``.txt`` (bench/bench_gpu.py) and ``profile.txt`` / ``profile.json``
(torch profiler: the slowest stage's operators, and a Chrome trace).
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def install_wheels(out: Path) -> dict[str, str]:
    """Install the carried wheels (``device_wheels/*.whl``) for modules this Python lacks; returns
    the environment the later steps run with."""
    env = dict(os.environ)
    missing = [m for m in ("av", "facenet_pytorch", "pytest")
               if subprocess.run([sys.executable, "-c", f"import {m}"], capture_output=True).returncode]
    wheels = sorted((ROOT / "device_wheels").glob("*.whl"))
    if missing and wheels:
        site = out / "site"
        pip = subprocess.run([sys.executable, "-m", "pip", "install", "--quiet", "--no-deps",
                              "--target", str(site), *map(str, wheels)], check=False)
        if pip.returncode:  # no pip there: a wheel is a zip of an installed tree
            import zipfile

            for wheel in wheels:
                zipfile.ZipFile(wheel).extractall(site)
        env["PYTHONPATH"] = os.pathsep.join([str(site), env.get("PYTHONPATH", "")])
    env["PYTHONPATH"] = os.pathsep.join([str(ROOT), env.get("PYTHONPATH", "")])
    return env


def step(name: str, cmd: list[str], env: dict[str, str], log: Path, timeout: int,
         record: dict) -> int:
    """Run one step, its output to ``log``; never raises (a step that fails is recorded)."""
    t = time.perf_counter()
    try:
        proc = subprocess.run(cmd, env=env, cwd=ROOT, capture_output=True, text=True, timeout=timeout)
        code, text = proc.returncode, proc.stdout + proc.stderr
    except subprocess.TimeoutExpired as exc:
        code, text = 124, f"timed out after {timeout} s\n{exc.stdout or ''}{exc.stderr or ''}"
    log.write_text(text if isinstance(text, str) else text.decode(errors="replace"))
    record[name] = {"exit_code": code, "seconds": round(time.perf_counter() - t, 1),
                    "log": log.name}
    print(f"{name}: exit {code} in {record[name]['seconds']} s", flush=True)
    return code


def profile(device: str, out: Path, frames: int) -> None:
    """torch.profiler over ``process_video`` of a 1080p clip: operator table + Chrome trace."""
    import tempfile

    from torch.profiler import ProfilerActivity
    from torch.profiler import profile as torch_profile

    sys.path.insert(0, str(ROOT / "bench"))
    from bench_gpu import write_clip

    from ferbatch.config import RunConfig
    from ferbatch.pipeline import Stages, process_video

    config = RunConfig(device=device)
    stages = Stages(config)
    activities = [ProfilerActivity.CPU] + ([ProfilerActivity.CUDA] if device.startswith("cuda") else [])
    with tempfile.TemporaryDirectory() as tmp:
        clip = write_clip(Path(tmp) / "1080p.mp4", (1920, 1080), frames)
        process_video(clip, config, stages)  # warm-up
        with torch_profile(activities=activities, record_shapes=False) as prof:
            process_video(clip, config, stages)
    sort = "cuda_time_total" if device.startswith("cuda") else "cpu_time_total"
    (out / "profile.txt").write_text(prof.key_averages().table(sort_by=sort, row_limit=40))
    prof.export_chrome_trace(str(out / "profile.json"))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--out", type=Path, default=Path(os.environ.get("OUT", "device_check_out")))
    ap.add_argument("--device", default="cuda")
    ap.add_argument("--quick", action="store_true", help="Tiny settings: a dry run in under a minute.")
    args = ap.parse_args()
    out = args.out
    out.mkdir(parents=True, exist_ok=True)
    env = install_wheels(out)
    record: dict = {"device": args.device, "python": sys.version.split()[0]}
    step("gpu_tests", [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "-rs",
                       "tests/gpu", "tests/test_devices_gpu_policy.py",
                       f"--junitxml={out / 'gpu_tests.xml'}"], env, out / "gpu_tests.txt", 180, record)
    bench = ["--sizes", "360", "--frames", "8", "--workers", "1,2", "--copies", "2"] if args.quick \
        else ["--sizes", "360,720,1080", "--frames", "240", "--workers", "1,2,4,8", "--copies", "8"]
    step("bench", [sys.executable, "bench/bench_gpu.py", "--device", args.device, *bench,
                   "--json", str(out / "gpu_results.json")], env, out / "bench.txt", 300, record)
    step("profile", [sys.executable, __file__, "--profile-only", "--device", args.device,
                     "--out", str(out), *(["--quick"] if args.quick else [])],
         env, out / "profile_log.txt", 90, record)
    (out / "device_check.json").write_text(json.dumps(record, indent=2))


if __name__ == "__main__":
    if "--profile-only" in sys.argv:
        sys.argv.remove("--profile-only")
        ap = argparse.ArgumentParser()
        ap.add_argument("--out", type=Path)
        ap.add_argument("--device", default="cuda")
        ap.add_argument("--quick", action="store_true")
        a = ap.parse_args()
        profile(a.device, a.out, 8 if a.quick else 48)
    else:
        main()
