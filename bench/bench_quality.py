"""How top-1 accuracy falls with each face-quality signal, and the thresholds chosen from it.

Usage::

    .venv/bin/python bench/bench_quality.py [--data ../shared/data/fer2013/fer2013.csv.gz]
        [--limit 1000] [--video ../shared/videos/WolfgangLanger_Pexels.mp4]

1. FER2013 PublicTest faces (a seeded random ``--limit`` of them, via the trainer's loader
   ``ferbatch.train.datasets.fer2013``) are degraded on purpose — Gaussian blur, down-scaling
   (down with area averaging, back up bilinearly), darkening / brightening, contrast reduction,
   synthetic occluders (a flat or noisy patch over the eyes, the mouth or one side), in-plane
   rotation — and classified with the bundled default model. For every level the table gives
   the median of the matching signal of :mod:`ferbatch.quality` and the top-1 accuracy.
2. Head pose: MTCNN (``ferbatch.detect``) finds the five landmarks on the undegraded faces
   (upscaled ×2 into a border-replicated canvas); accuracy per ``|yaw|`` / ``|pitch|`` bin.
3. Occlusion: ROC AUC of the ``occlusion`` signal separating occluded from clean faces, and
   accuracy per ``occlusion`` bin; adopted into ``quality_ok`` only when the AUC ≥ 0.75.
4. ``--video``: the pipeline on a shared clip, every quality signal's median per 2-s window,
   and the time spent in :func:`ferbatch.quality.face_quality` as a share of the pipeline's.

The chosen threshold of a signal is the level at which accuracy falls more than ``--drop``
(default 10) points below the undegraded accuracy, linearly interpolated between levels.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from collections.abc import Callable
from pathlib import Path

import cv2
import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from ferbatch.quality import crop_signals, face_quality, head_pose  # noqa: E402

SHARED = Path(os.environ.get("FERBATCH_SHARED", ROOT.parent / "shared"))


def blur(x: np.ndarray, sigma: float) -> np.ndarray:
    if sigma == 0:
        return x
    return np.stack([cv2.GaussianBlur(im, (0, 0), sigma) for im in x])


def downscale(x: np.ndarray, side: int) -> np.ndarray:
    if side >= x.shape[-1]:
        return x
    s = x.shape[-1]
    return np.stack([cv2.resize(cv2.resize(im, (side, side), interpolation=cv2.INTER_AREA),
                                (s, s), interpolation=cv2.INTER_LINEAR) for im in x])


def gain(x: np.ndarray, factor: float) -> np.ndarray:
    """Darken (factor < 1) or brighten (> 1: towards white) the grey levels."""
    f = x.astype(np.float32)
    out = f * factor if factor <= 1 else 255 - (255 - f) / factor
    return out.clip(0, 255).astype(np.uint8)


def squeeze(x: np.ndarray, factor: float) -> np.ndarray:
    """Contrast reduction about each image's mean."""
    f = x.astype(np.float32)
    m = f.mean(axis=(1, 2), keepdims=True)
    return (m + (f - m) * factor).clip(0, 255).astype(np.uint8)


def rotate(x: np.ndarray, deg: float) -> np.ndarray:
    if deg == 0:
        return x
    s = x.shape[-1]
    m = cv2.getRotationMatrix2D((s / 2, s / 2), deg, 1.0)
    return np.stack([cv2.warpAffine(im, m, (s, s), borderMode=cv2.BORDER_REPLICATE) for im in x])


def occlude(x: np.ndarray, area: float, rng: np.random.Generator) -> np.ndarray:
    """A patch of ``area`` (share of the image) over the eyes, the mouth or one side: flat grey
    of a random level or noise of a skin-like level (a hand)."""
    if area == 0:
        return x
    out = x.copy()
    s = x.shape[-1]
    for im in out:
        where = rng.integers(3)
        if where == 0:  # band over the eyes
            h = int(round(area * s))
            y0 = max(0, int(0.38 * s) - h // 2)
            box = (0, y0, s, y0 + h)
        elif where == 1:  # band over the mouth and chin
            h = int(round(area * s))
            box = (0, s - h, s, s)
        else:  # one side (a hand on the cheek)
            w = int(round(area * s))
            x0 = 0 if rng.integers(2) else s - w
            box = (x0, 0, x0 + w, s)
        x0, y0, x1, y1 = box
        if rng.integers(2):
            im[y0:y1, x0:x1] = rng.integers(0, 256)
        else:
            level = rng.integers(100, 200)
            im[y0:y1, x0:x1] = np.clip(rng.normal(level, 12, (y1 - y0, x1 - x0)), 0, 255)
    return out


def threshold(levels: list[tuple[float, float]], base: float, drop: float,
              higher_is_better: bool) -> float | None:
    """The signal value where accuracy crosses ``base - drop`` (points), interpolated; levels
    are (median signal, accuracy) from the best condition to the worst."""
    target = base - drop
    for (s0, a0), (s1, a1) in zip(levels, levels[1:]):
        if a0 >= target > a1:
            t = (a0 - target) / max(a0 - a1, 1e-9)
            return s0 + t * (s1 - s0)
    return None if levels[-1][1] >= target else levels[0][0]


def auc(pos: np.ndarray, neg: np.ndarray) -> float:
    """ROC AUC (Mann–Whitney U / (n_pos · n_neg))."""
    allv = np.concatenate([pos, neg])
    ranks = allv.argsort().argsort().astype(np.float64) + 1
    return float((ranks[:len(pos)].sum() - len(pos) * (len(pos) + 1) / 2) / (len(pos) * len(neg)))


def fer_tables(args: argparse.Namespace) -> dict[str, float | None]:
    from ferbatch.classify import EmotionClassifier
    from ferbatch.train.datasets.fer2013 import load_fer2013

    split = load_fer2013(args.data)["val"]
    rng = np.random.default_rng(0)
    idx = rng.choice(len(split), size=min(args.limit, len(split)), replace=False)
    x, y = split.images.numpy()[idx], split.targets.numpy()[idx]
    clf = EmotionClassifier(None, device="cpu", batch_size=256)
    pre = clf.preprocess

    def acc(images: np.ndarray) -> np.ndarray:
        return clf(images).argmax(1) == y

    base_hits = acc(x)
    base = 100 * base_hits.mean()
    print(f"FER2013 PublicTest, {len(x)} faces (seed 0), bundled default model: "
          f"top-1 {base:.1f} % undegraded\n")
    chosen: dict[str, float | None] = {}

    def family(name: str, signal: str, make: Callable[[float], np.ndarray], levels: list[float],
               to_signal: Callable[[float, np.ndarray], float], higher_is_better: bool,
               key: str | None) -> None:
        if args.only and name.split()[0] not in args.only:
            return
        print(f"{name:<14} {'level':>7} {signal:>11} {'top-1 %':>8}")
        rows = []
        for level in levels:
            images = make(level)
            value = to_signal(level, images)
            a = 100 * acc(images).mean()
            rows.append((value, a))
            print(f"{'':<14} {level:>7g} {value:>11.3f} {a:>8.1f}")
        if key is not None:
            chosen[key] = threshold(rows, base, args.drop, higher_is_better)
            shown = "none (never falls that far)" if chosen[key] is None else f"{chosen[key]:.3f}"
            print(f"{'':<14} → {key} = {shown}")
        print()

    def median_of(col: str) -> Callable[[float, np.ndarray], float]:
        return lambda _level, images: float(np.median(crop_signals(images)[col]))

    family("blur σ px", "sharpness", lambda s: blur(x, s), [0, 0.6, 1.0, 1.5, 2.0, 3.0],
           median_of("sharpness"), True, "min_sharpness")
    # a FER2013 image is the crop of a face whose box side is image_side × crop_scale
    family("downscale px", "face_px", lambda s: downscale(x, int(s)), [48, 32, 24, 18, 14, 10, 8],
           lambda s, _i: s * pre.crop_scale, True, "min_face_px")
    family("darken ×", "brightness", lambda f: gain(x, f), [1, 0.6, 0.4, 0.25, 0.15, 0.08],
           median_of("brightness"), True, "min_brightness")
    family("brighten ÷", "brightness", lambda f: gain(x, f), [1, 2, 3, 5, 8, 12],
           median_of("brightness"), False, "max_brightness")
    family("contrast ×", "contrast", lambda f: squeeze(x, f), [1, 0.5, 0.3, 0.2, 0.1, 0.05, 0.02],
           median_of("contrast"), True, "min_contrast")
    family("rotate °", "|roll|", lambda d: rotate(x, d), [0, 10, 20, 30, 45],
           lambda d, _i: d, True, None)
    if not args.only or "rotate" in args.only:
        print("(in-plane rotation: the pipeline levels the eyes before classifying, so roll is "
              "reported but not thresholded)\n")

    if not args.only or "occlusion" in args.only:
        occlusion_table(x, y, acc, base, base_hits, chosen, args)
    if not args.only or "pose" in args.only:
        chosen.update(pose_table(x, base_hits, args))
    return chosen


def occlusion_table(x: np.ndarray, y: np.ndarray, acc: Callable[[np.ndarray], np.ndarray],
                    base: float, base_hits: np.ndarray, chosen: dict[str, float | None],
                    args: argparse.Namespace) -> None:
    """Synthetic occluders of growing area, then how the occlusion signal separates them."""
    clean = crop_signals(x)["occlusion"]
    print(f"{'occluder area':<14} {'occlusion':>11} {'top-1 %':>8} {'AUC vs clean':>13}")
    occ_vals, occ_hits = [clean], [base_hits]
    for area in [0.15, 0.25, 0.35, 0.5]:
        images = occlude(x, area, np.random.default_rng(int(area * 100)))
        sig = crop_signals(images)["occlusion"]
        hits = acc(images)
        occ_vals.append(sig)
        occ_hits.append(hits)
        print(f"{area:<14g} {np.median(sig):>11.3f} {100 * hits.mean():>8.1f} {auc(sig, clean):>13.3f}")
    vals, hits = np.concatenate(occ_vals), np.concatenate(occ_hits)
    edges = np.quantile(vals, [0, 0.2, 0.4, 0.6, 0.8, 1.0])
    print("accuracy by occlusion quintile (clean and occluded faces together):")
    for lo, hi in zip(edges, edges[1:]):
        sel = (vals >= lo) & (vals <= hi)
        print(f"  occlusion {lo:.3f}–{hi:.3f}: top-1 {100 * hits[sel].mean():.1f} % ({sel.sum()} faces)")
    a25 = auc(occ_vals[2], clean)
    if a25 >= 0.75:
        q = [(float(np.median(v)), 100 * h.mean()) for v, h in zip(occ_vals, occ_hits)]
        chosen["max_occlusion"] = threshold(q, base, args.drop, False)
    else:
        chosen["max_occlusion"] = None
    print(f"→ max_occlusion = {chosen['max_occlusion']} (adopted only if AUC at 25 % area ≥ 0.75; "
          f"it is {a25:.3f})\n")


def pose_table(x: np.ndarray, hits: np.ndarray, args: argparse.Namespace) -> dict[str, float | None]:
    """Accuracy per |yaw| and |pitch| bin of the undegraded faces, pose from MTCNN landmarks."""
    from ferbatch.config import DetectConfig
    from ferbatch.detect import FaceDetector

    det = FaceDetector(DetectConfig(min_face_size=40, min_score=0.5), device="cpu")
    canvas = 160
    pose = np.full((len(x), 3), np.nan, np.float32)
    t0 = time.perf_counter()
    for start in range(0, len(x), 64):
        frames = []
        for im in x[start:start + 64]:
            big = cv2.resize(im, (96, 96), interpolation=cv2.INTER_LINEAR)
            pad = (canvas - 96) // 2
            big = cv2.copyMakeBorder(big, pad, pad, pad, pad, cv2.BORDER_REPLICATE)
            frames.append(cv2.cvtColor(big, cv2.COLOR_GRAY2RGB))
        for k, d in enumerate(det(frames)):
            if len(d):
                pose[start + k] = head_pose(d.landmarks[:1], (canvas, canvas))[0]
    found = np.isfinite(pose[:, 0])
    print(f"head pose: landmarks found on {found.sum()} of {len(x)} faces "
          f"({time.perf_counter() - t0:.0f} s); accuracy by pose bin:")
    out: dict[str, float | None] = {}
    base = 100 * hits[found].mean()
    for j, name in ((0, "yaw"), (1, "pitch")):
        v = np.abs(pose[found, j])
        h = hits[found]
        rows = []
        for lo, hi in [(0, 10), (10, 20), (20, 30), (30, 45), (45, 90)]:
            sel = (v >= lo) & (v < hi)
            if sel.sum() < 20:
                print(f"  |{name}| {lo:>2}–{hi:<2}°: {sel.sum()} faces (too few)")
                continue
            a = 100 * h[sel].mean()
            rows.append((float(hi), a))
            print(f"  |{name}| {lo:>2}–{hi:<2}°: top-1 {a:5.1f} % ({sel.sum()} faces)")
        bound = threshold([(0.0, base)] + rows, base, args.drop, False)
        out[f"max_abs_{name}"] = bound
        print(f"  → max_abs_{name} = {bound}")
    print()
    return out


def clip_table(video: Path) -> None:
    """Quality signals per 2-s window of a clip, and their share of the pipeline's time."""
    import ferbatch.pipeline as pipeline
    from ferbatch.config import RunConfig

    spent = [0.0]

    def timed(*a, **k):  # noqa: ANN002, ANN003, ANN202
        t = time.perf_counter()
        try:
            return face_quality(*a, **k)
        finally:
            spent[0] += time.perf_counter() - t

    pipeline.face_quality = timed  # type: ignore[assignment]
    config = RunConfig(device="cpu")
    stages = pipeline.Stages(config)
    t0 = time.perf_counter()
    res = pipeline.process_video(video, config, stages)
    total = time.perf_counter() - t0
    faces = res.to_pandas().faces
    print(f"{video.name}: {len(faces)} face rows, pipeline {total:.1f} s, quality signals "
          f"{spent[0] * 1e3:.0f} ms = {100 * spent[0] / total:.2f} % of it")
    if faces.empty:
        return
    faces["window"] = (faces["timestamp_s"] // 2 * 2).astype(int)
    cols = ["face_px", "sharpness", "brightness", "contrast", "yaw", "pitch", "roll", "occlusion"]
    table = faces.groupby("window").agg(
        rows=("face_id", "size"), emotion=("emotion", lambda s: s.mode().iat[0]),
        conf=("confidence", "median"), ok=("quality_ok", "mean"),
        **{c: (c, "median") for c in cols})
    with_pandas_width(lambda: print(table.round(2).to_string()))


def with_pandas_width(fn: Callable[[], None]) -> None:
    import pandas as pd

    with pd.option_context("display.width", 200, "display.max_columns", 30):
        fn()


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--data", type=Path, default=SHARED / "data/fer2013/fer2013.csv.gz")
    ap.add_argument("--limit", type=int, default=1000, help="PublicTest faces used (seeded sample)")
    ap.add_argument("--drop", type=float, default=10.0, help="accuracy drop (points) that sets a threshold")
    ap.add_argument("--video", type=Path, action="append", default=None,
                    help="clip(s) for the per-window table and the cost share (repeatable)")
    ap.add_argument("--no-fer", action="store_true", help="skip the FER2013 tables")
    ap.add_argument("--only", action="append", default=None,
                    choices=["blur", "downscale", "darken", "brighten", "contrast", "rotate",
                             "occlusion", "pose"],
                    help="run only these FER2013 tables (repeatable; default all)")
    args = ap.parse_args()
    sys.stdout.reconfigure(line_buffering=True)  # type: ignore[attr-defined]
    import torch

    torch.set_num_threads(max(1, torch.get_num_threads()))
    if not args.no_fer:
        t = time.perf_counter()
        chosen = fer_tables(args)
        print("chosen thresholds (QualityThresholds defaults):")
        for key, value in chosen.items():
            print(f"  {key} = {value if value is None else round(value, 3)}")
        print(f"({time.perf_counter() - t:.0f} s)\n")
    for video in args.video or []:
        clip_table(video)


if __name__ == "__main__":
    main()
