"""Issue 14's speed and memory figures in one command (``make bench-all``).

Usage::

    .venv/bin/python bench/bench_issue14.py [--json bench/issue14_results.json]
    .venv/bin/python bench/bench_issue14.py --quick            # a smoke run: tiny inputs, minutes
    .venv/bin/python bench/bench_issue14.py --only rss,scaling # some sections only

Sections (every ``ferbatch run`` is a fresh ``python -m ferbatch.cli run ... -q`` process of this
checkout, start-up, model loading and Parquet writing included; "wall" is its elapsed time,
"cpu" the user + system time of the process and all its descendants (Ray's included), "peak
RSS" the largest summed resident memory of the process and its descendants, polled every 20 ms):

``fer``
    ``ferbatch run VIDEO`` (every frame) against the ``fer`` package on the same clip, every
    frame (``Video.analyze(FER(mtcnn=True), frequency=1)``, no annotated frames or video
    written), ``--pairs`` interleaved pairs (ferbatch, fer, ferbatch, fer, ...), medians and
    their ratio. Needs a Python that imports ``fer``: ``--fer-python``, ``$FER_PYTHON``, or
    ``.fer-venv/bin/python`` in this checkout or beside it; skipped with the reason otherwise.
``interval``
    The detection-interval accuracy table (``bench_interval.interval_table``): each
    ``--intervals`` setting against detecting every frame on every clip of ``--videos``.
``decode``
    ``ferbatch run LONG --fps 5 --local`` against a whole-process PyAV decode of every frame of
    LONG to RGB (``--decode-threads`` as ferbatch's default: FFmpeg's choice), ``--pairs``
    interleaved pairs, medians and the ratio. LONG is VIDEO joined to itself without
    re-encoding (PyAV remux) until it lasts ``--long-video-s`` seconds.
``rss``
    Peak RSS of ``ferbatch run --local`` (every frame) on generated ``--rss-seconds``-second
    h264 clips with one moving real face (scikit-image's astronaut) at each of ``--resolutions``,
    and of ``ferbatch run --local --fps 2`` on generated 720p clips of each of ``--long-rss-s``
    lengths (5 fps, libx264 ultrafast, slowly moving face): memory against duration.
``scaling``
    Cost against video length: a generated 640×360 one-second clip (``--scale-fps`` fps) joined
    to itself (remux) to each of ``--lengths`` seconds, every frame, ``--local``; and against the
    number of videos: ``--videos-n`` copies of the one-second clip in one run against one clip
    of ``--videos-n`` seconds made of them, ``--local``, and the copies also through Ray (their
    default mode; ``--ray``: a private local instance, default workers) unless ``--no-ray``.
    The one clip's default mode is ``--local`` (shorter than 2 × ``--segment-s``). Seconds and
    ms per frame.

The machine this runs on may be shared: every figure is one measurement (medians where
pairs are run); CPU times are steadier than wall times when other jobs compete.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "bench"))
sys.path.insert(0, str(ROOT))

from bench_gpu import write_clip  # noqa: E402
from bench_interval import clips_in, interval_table  # noqa: E402

SECTIONS = ("fer", "interval", "decode", "rss", "scaling")
RESOLUTIONS = {"360p": (640, 360), "720p": (1280, 720), "1080p": (1920, 1080), "4k": (3840, 2160)}
FAST_H264 = {"preset": "ultrafast", "crf": "23"}

FER_SCRIPT = """
import sys
try:
    from fer import FER, Video
except ImportError:  # fer 25.x no longer re-exports them from the package
    from fer.classes import Video
    from fer.fer import FER
video = Video(sys.argv[1], outdir=sys.argv[2])
rows = video.analyze(FER(mtcnn=True), frequency=1, display=False, save_frames=False,
                     save_video=False, annotate_frames=False, zip_images=False)
print("frames analysed:", len(rows))
"""

DECODE_SCRIPT = """
import sys, av
with av.open(sys.argv[1]) as c:
    s = c.streams.video[0]
    s.thread_type = "AUTO"
    n = 0
    for frame in c.decode(s):
        frame.to_ndarray(format="rgb24")
        n += 1
print("frames decoded:", n)
"""


def shared_dir() -> Path:
    """``shared/`` beside this checkout or one of its parents (``../shared`` in a clone)."""
    return next((d / "shared" for d in ROOT.parents if (d / "shared" / "videos").is_dir()),
                ROOT.parent / "shared")


def _poll(proc: subprocess.Popen[str]) -> tuple[float, float]:
    """Until ``proc`` exits, poll it and its descendants every 20 ms: the peak of their summed
    resident memory (MB) and the CPU seconds they were last seen to have used (processes that
    end between polls lose at most their last 20 ms)."""
    import psutil

    root = psutil.Process(proc.pid)
    peak = 0
    cpu: dict[tuple[int, float], float] = {}
    while proc.poll() is None:
        rss = 0
        try:
            tree = [root, *root.children(recursive=True)]
        except psutil.Error:
            tree = []
        for p in tree:
            try:
                with p.oneshot():
                    rss += p.memory_info().rss
                    t = p.cpu_times()
                    cpu[(p.pid, p.create_time())] = t.user + t.system
            except psutil.Error:
                pass
        peak = max(peak, rss)
        time.sleep(0.02)
    return peak / 1e6, sum(cpu.values())


def _kill_tree(proc: subprocess.Popen[str]) -> None:
    """SIGKILL ``proc`` and all its descendants."""
    import psutil

    try:
        tree = [*psutil.Process(proc.pid).children(recursive=True), psutil.Process(proc.pid)]
    except psutil.Error:
        tree = []
    for p in tree:
        try:
            p.kill()
        except psutil.Error:
            pass
    proc.wait()


def measure(cmd: list[str], cwd: Path | None = None) -> dict[str, Any]:
    """Run ``cmd`` to completion: wall s, cpu s, peak RSS MB (it and all its descendants,
    polled). CPU is the larger of what ``getrusage`` counts for it and the descendants it reaped
    and the polled sum (which also sees daemons such as Ray's, never reaped by it). Exits with
    its output if it fails."""
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")])))
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    t0 = time.perf_counter()
    proc = subprocess.Popen(cmd, cwd=cwd or ROOT, env=env, stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, text=True)
    try:
        peak, polled_cpu = _poll(proc)
    except BaseException:  # Ctrl-C, SIGTERM (see main): the measured command and its children go too
        _kill_tree(proc)
        raise
    wall = time.perf_counter() - t0
    output = proc.stdout.read() if proc.stdout else ""
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    if proc.returncode != 0:
        raise SystemExit(f"command failed ({proc.returncode}): {' '.join(cmd)}\n{output[-3000:]}")
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    return {"wall_s": round(wall, 3), "cpu_s": round(max(cpu, polled_cpu), 3), "peak_rss_mb": round(peak, 1)}


def ferbatch_run(inputs: list[Path], *options: str) -> dict[str, Any]:
    """A whole ``ferbatch run`` process of this checkout into a fresh output folder; also
    the frames analysed (from the output's videos table)."""
    import pyarrow.parquet as pq

    with tempfile.TemporaryDirectory(prefix="ferbatch-bench-") as out:
        fig = measure([sys.executable, "-m", "ferbatch.cli", "run", *map(str, inputs), "--out", out,
                       "-q", *options])
        videos = pq.read_table(Path(out) / "videos.parquet", columns=["frames_analyzed", "status"])
    fig["frames"] = int(sum(videos["frames_analyzed"].to_pylist()))
    fig["statuses"] = sorted(set(videos["status"].to_pylist()))
    return fig


def concat_remux(src: Path, dst: Path, min_seconds: float) -> dict[str, Any]:
    """Join ``src``'s video stream to itself without re-encoding (its packets copied, their
    timestamps shifted by one copy's span each time) until the result lasts at least
    ``min_seconds``; audio is left out. Returns copies, seconds and frames of ``dst``."""
    import av

    with av.open(str(src)) as inp:
        stream = inp.streams.video[0]
        packets = [(bytes(p), p.pts, p.dts, p.duration or 0, p.is_keyframe)
                   for p in inp.demux(stream) if p.dts is not None and p.size]
        if not packets:
            raise SystemExit(f"{src}: no video packets")
        tb = stream.time_base
        first = min(p[1] for p in packets)
        span = max(p[1] + p[3] for p in packets) - first
        copies = 1
        while copies * float(span * tb) < min_seconds:
            copies += 1
        with av.open(str(dst), "w") as out:
            ostream = out.add_stream_from_template(stream)
            for k in range(copies):
                shift = k * span - first
                for data, pts, dts, duration, key in packets:
                    packet = av.Packet(data)
                    packet.pts, packet.dts, packet.duration = pts + shift, dts + shift, duration
                    packet.time_base, packet.is_keyframe, packet.stream = tb, key, ostream
                    out.mux(packet)
    return {"copies": copies, "seconds": round(copies * float(span * tb), 2),
            "frames": copies * len(packets)}


def _walls(runs: list[dict[str, Any]]) -> str:
    return ", ".join(f"{r['wall_s']:.1f}" for r in runs)


def _median(runs: list[dict[str, Any]], key: str) -> float:
    return round(statistics.median(r[key] for r in runs), 3)


def _medians(fig: dict[str, Any], who: str, runs: list[dict[str, Any]], width: int,
             rss: bool = False) -> None:
    """Put ``who``'s median wall and CPU seconds (and peak RSS) into ``fig`` and print them."""
    fig[f"{who}_wall_s"], fig[f"{who}_cpu_s"] = _median(runs, "wall_s"), _median(runs, "cpu_s")
    line = f"  {who:{width}} median wall {fig[f'{who}_wall_s']:7.2f} s  cpu {fig[f'{who}_cpu_s']:7.2f} s  "
    if rss:
        fig[f"{who}_peak_rss_mb"] = _median(runs, "peak_rss_mb")
        line += f"peak RSS {fig[f'{who}_peak_rss_mb']:6.0f} MB  "
    print(f"{line}(walls {_walls(runs)})")


def pairs(first: Callable[[], dict[str, Any]], second: Callable[[], dict[str, Any]], n: int
          ) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """``n`` interleaved runs of ``first`` then ``second``."""
    a, b = [], []
    for _ in range(n):
        a.append(first())
        b.append(second())
    return a, b


def find_fer_python(explicit: str | None) -> tuple[str | None, str]:
    """A Python that imports ``fer``, or None and why not."""
    candidates = [explicit] if explicit else [os.environ.get("FER_PYTHON")] + [
        str(d / ".fer-venv" / "bin" / "python") for d in (ROOT, ROOT.parent)]
    tried = []
    for c in filter(None, candidates):
        if not Path(c).exists():
            tried.append(f"{c} (absent)")
            continue
        probe = subprocess.run([c, "-c", "import fer"], capture_output=True, text=True)
        if probe.returncode == 0:
            return c, ""
        tried.append(f"{c} (cannot import fer)")
    return None, "no Python with the fer package: tried " + ", ".join(tried)


def section_fer(args: argparse.Namespace) -> dict[str, Any]:
    python, why = find_fer_python(args.fer_python)
    if python is None:
        print(f"  skipped: {why}")
        return {"skipped": why}

    def fer_run() -> dict[str, Any]:
        with tempfile.TemporaryDirectory(prefix="fer-bench-") as tmp:
            return measure([python, "-c", FER_SCRIPT, str(args.video), tmp], cwd=Path(tmp))

    ours, theirs = pairs(lambda: ferbatch_run([args.video]), fer_run, args.pairs)
    fig = {"ferbatch_runs": ours, "fer_runs": theirs, "fer_python": python}
    for who, runs in (("ferbatch", ours), ("fer", theirs)):
        _medians(fig, who, runs, 9, rss=True)
    fig["speedup_wall"] = round(fig["fer_wall_s"] / fig["ferbatch_wall_s"], 2)
    fig["speedup_cpu"] = round(fig["fer_cpu_s"] / fig["ferbatch_cpu_s"], 2)
    print(f"  ferbatch is {fig['speedup_wall']:.2f}x faster than fer in wall time, "
          f"{fig['speedup_cpu']:.2f}x in CPU time (goal: 8x)")
    return fig


def section_interval(args: argparse.Namespace) -> dict[str, Any]:
    settings = [(int(n), mode) for n in args.intervals.split(",") for mode in args.modes.split(",")]
    return interval_table(clips_in(args.videos), settings, "cpu")


def section_decode(args: argparse.Namespace, tmp: Path) -> dict[str, Any]:
    long = tmp / f"{args.video.stem}_joined.mp4"
    joined = concat_remux(args.video, long, args.long_video_s)
    print(f"  {long.name}: {args.video.name} x {joined['copies']} (remux), {joined['seconds']} s, "
          f"{joined['frames']} frames")
    ours, pure = pairs(lambda: ferbatch_run([long], "--fps", "5", "--local"),
                       lambda: measure([sys.executable, "-c", DECODE_SCRIPT, str(long)]), args.pairs)
    fig: dict[str, Any] = {"clip": joined, "ferbatch_runs": ours, "decode_runs": pure}
    for who, runs in (("ferbatch_fps5", ours), ("pyav_decode", pure)):
        _medians(fig, who, runs, 14)
    fig["ratio_wall"] = round(fig["ferbatch_fps5_wall_s"] / fig["pyav_decode_wall_s"], 2)
    fig["ratio_cpu"] = round(fig["ferbatch_fps5_cpu_s"] / fig["pyav_decode_cpu_s"], 2)
    print(f"  ferbatch --fps 5 / pure decode: {fig['ratio_wall']:.2f}x wall, {fig['ratio_cpu']:.2f}x cpu "
          f"(goal: within 1.5x); {ours[0]['frames']} frames analysed")
    return fig


def section_rss(args: argparse.Namespace, tmp: Path) -> dict[str, Any]:
    fig: dict[str, Any] = {"resolutions": {}, "long_720p_fps2": {}}
    for name in args.resolutions.split(","):
        size = RESOLUTIONS[name]
        clip = write_clip(tmp / f"rss_{name}.mp4", size, int(args.rss_seconds * 30), 30, FAST_H264)
        r = ferbatch_run([clip], "--local")
        fig["resolutions"][name] = r
        args.checkpoint(fig)
        print(f"  {name:6} {size[0]}x{size[1]} {r['frames']:5d} frames every frame  peak RSS "
              f"{r['peak_rss_mb']:6.0f} MB  wall {r['wall_s']:6.1f} s  cpu {r['cpu_s']:6.1f} s")
        clip.unlink()
    for seconds in (float(s) for s in args.long_rss_s.split(",")):
        t0 = time.perf_counter()
        clip = write_clip(tmp / f"long_{seconds:g}s.mp4", RESOLUTIONS["720p"], int(seconds * 5), 5, FAST_H264)
        made = time.perf_counter() - t0
        r = ferbatch_run([clip], "--local", "--fps", "2")
        r["generate_s"] = round(made, 1)
        fig["long_720p_fps2"][f"{seconds:g}"] = r
        args.checkpoint(fig)
        print(f"  720p {seconds / 60:5.1f} min at 5 fps, --fps 2: {r['frames']:5d} frames  peak RSS "
              f"{r['peak_rss_mb']:6.0f} MB  wall {r['wall_s']:6.1f} s  cpu {r['cpu_s']:6.1f} s")
        clip.unlink()
    return fig


def _per_frame(r: dict[str, Any]) -> str:
    return (f"wall {r['wall_s']:7.1f} s  cpu {r['cpu_s']:7.1f} s  {r['frames']:5d} frames  "
            f"{1000 * r['wall_s'] / max(r['frames'], 1):6.1f} ms/frame wall  "
            f"{1000 * r['cpu_s'] / max(r['frames'], 1):6.1f} ms/frame cpu")


def section_scaling(args: argparse.Namespace, tmp: Path) -> dict[str, Any]:
    one = write_clip(tmp / "one_second.mp4", RESOLUTIONS["360p"], args.scale_fps, args.scale_fps, FAST_H264)
    fig: dict[str, Any] = {"length": {}, "count": {}}
    for seconds in (float(s) for s in args.lengths.split(",") if s):
        clip = tmp / f"length_{seconds:g}s.mp4"
        concat_remux(one, clip, seconds)
        r = ferbatch_run([clip], "--local")
        fig["length"][f"{seconds:g}"] = r
        args.checkpoint(fig)
        print(f"  one {seconds:5g} s clip, --local:            {_per_frame(r)}")
        clip.unlink()
    many = tmp / "many"
    many.mkdir()
    for i in range(args.videos_n):
        shutil.copyfile(one, many / f"clip_{i:04d}.mp4")
    joined = tmp / f"joined_{args.videos_n}s.mp4"
    concat_remux(one, joined, args.videos_n)
    runs = [(f"{args.videos_n} one-second clips --local", [many], ["--local"]),
            (f"one {args.videos_n} s clip --local", [joined], ["--local"])]
    if args.ray:  # the default mode for many videos; one clip under 2 x --segment-s runs locally
        runs.insert(1, (f"{args.videos_n} one-second clips --ray", [many], ["--ray"]))
    for label, inputs, options in runs:
        r = ferbatch_run(inputs, *options)
        fig["count"][label] = r
        args.checkpoint(fig)
        print(f"  {label:34} {_per_frame(r)}")
    return fig


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    shared = shared_dir()
    ap.add_argument("--quick", action="store_true",
                    help="smoke run: one pair on a 72-frame clip, interval 3 only, 20 s joined "
                         "clip, 360p/720p 1 s clips, 10/20 s long clips, 2/4 s lengths, 3 videos, "
                         "no Ray")
    ap.add_argument("--only", default=",".join(SECTIONS), help=f"sections to run, in this order (default: all, {','.join(SECTIONS)})")
    ap.add_argument("--json", type=Path, default=None, help="also write every figure here")
    ap.add_argument("--video", type=Path, default=None,
                    help="the clip of the fer and decode sections (default WolfgangLanger_Pexels.mp4, "
                         "472 frames; quick: single_face.mp4, 72 frames)")
    ap.add_argument("--videos", type=Path, default=shared / "videos", help="the interval section's clips")
    ap.add_argument("--fer-python", default=None, help="a Python that imports fer")
    ap.add_argument("--pairs", type=int, default=None, help="interleaved pairs (default 3; quick 1)")
    ap.add_argument("--intervals", default=None, help="default 3,5 (quick: 3)")
    ap.add_argument("--modes", default="adaptive")
    ap.add_argument("--long-video-s", type=float, default=None, help="default 180 (quick: 20)")
    ap.add_argument("--resolutions", default=None, help="default 360p,720p,1080p,4k (quick: 360p,720p)")
    ap.add_argument("--rss-seconds", type=float, default=None, help="default 3 (quick: 0.3)")
    ap.add_argument("--long-rss-s", default=None, help="default 120,600,1800 (quick: 10,20)")
    ap.add_argument("--lengths", default=None, help="default 10,30,90 (quick: 2,4)")
    ap.add_argument("--videos-n", type=int, default=None, help="default 300 (quick: 3)")
    ap.add_argument("--scale-fps", type=int, default=10)
    ap.add_argument("--ray", action=argparse.BooleanOptionalAction, default=None,
                    help="also run the count comparison through Ray (default: yes; quick: no)")
    args = ap.parse_args(argv)
    quick = args.quick
    defaults = {"pairs": (3, 1), "intervals": ("3,5", "3"), "long_video_s": (180.0, 20.0),
                "resolutions": ("360p,720p,1080p,4k", "360p,720p"), "rss_seconds": (3.0, 0.3),
                "long_rss_s": ("120,600,1800", "10,20"), "lengths": ("10,30,90", "2,4"),
                "videos_n": (300, 3), "ray": (True, False)}
    for key, (full, small) in defaults.items():
        if getattr(args, key) is None:
            setattr(args, key, small if quick else full)
    if args.video is None:
        args.video = shared / "videos" / ("single_face.mp4" if quick else "WolfgangLanger_Pexels.mp4")
    args.only = [s for s in args.only.split(",") if s]
    unknown = set(args.only) - set(SECTIONS)
    if unknown:
        ap.error(f"unknown section(s) {', '.join(sorted(unknown))}; choose from {', '.join(SECTIONS)}")
    bad = set(args.resolutions.split(",")) - set(RESOLUTIONS)
    if bad:
        ap.error(f"unknown resolution(s) {', '.join(sorted(bad))}; choose from {', '.join(RESOLUTIONS)}")
    for need in ("video", "videos"):
        if not getattr(args, need).exists():
            ap.error(f"--{need} {getattr(args, need)}: not found")
    return args


def main(argv: list[str] | None = None) -> dict[str, Any]:
    args = parse_args(argv)
    if threading.current_thread() is threading.main_thread():
        # SIGTERM unwinds like Ctrl-C: the command being measured is killed with its children
        signal.signal(signal.SIGTERM, lambda signum, frame: sys.exit(128 + signum))
    import torch

    report: dict[str, Any] = {
        "machine": f"{platform.processor() or platform.machine()}, {os.cpu_count()} cores, "
                   f"torch {torch.__version__}",
        "load_average_at_start": [round(x, 2) for x in os.getloadavg()],
        "when": time.strftime("%Y-%m-%d %H:%M:%S %Z"),
        "quick": args.quick, "sections": {},
    }
    print(f"bench_issue14 {'--quick ' if args.quick else ''}on {report['machine']}; "
          f"load average {report['load_average_at_start']} at start ({report['when']})")
    titles = {"fer": f"whole process vs the fer package, {args.video.name}, every frame",
              "interval": "detection interval vs detecting every frame (accuracy table)",
              "decode": f"--fps 5 vs a pure PyAV decode of every frame, >= {args.long_video_s:g} s clip",
              "rss": "peak RSS per resolution and against duration",
              "scaling": "cost against video length and number of videos"}
    with tempfile.TemporaryDirectory(prefix="bench-issue14-") as tmp_name:
        tmp = Path(tmp_name)
        for name in args.only:  # in the order given
            print(f"\n== {name}: {titles[name]}", flush=True)

            def checkpoint(partial: dict[str, Any], name: str = name) -> None:
                """Keep a section's figures so far (JSON rewritten): a stopped run keeps them."""
                report["sections"][name] = dict(partial, unfinished=True)
                if args.json:
                    args.json.write_text(json.dumps(report, indent=1, default=str))

            args.checkpoint = checkpoint
            t0 = time.perf_counter()
            if name == "fer":
                fig = section_fer(args)
            elif name == "interval":
                fig = section_interval(args)
            else:
                fig = {"decode": section_decode, "rss": section_rss, "scaling": section_scaling}[name](args, tmp)
            fig["section_s"] = round(time.perf_counter() - t0, 1)
            fig["load_average_after"] = [round(x, 2) for x in os.getloadavg()]
            report["sections"][name] = fig
            print(f"  ({fig['section_s']:.0f} s; load average {fig['load_average_after']})", flush=True)
            if args.json:  # after every section: a long run that stops keeps what it measured
                args.json.write_text(json.dumps(report, indent=1, default=str))
    if args.json:
        print(f"\nwrote {args.json}")
    return report


if __name__ == "__main__":
    main()
