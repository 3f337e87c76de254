"""Hand-built faces tables for the smoothing and episode tests (irregular timestamps, gaps)."""

from __future__ import annotations

import numpy as np
import pandas as pd

LABELS = ["happy", "sad", "neutral"]


def faces_df(rows: list[tuple], video_id: str = "v") -> pd.DataFrame:
    """rows: (face_id, t, p_happy, p_sad, p_neutral) → a faces table like load() returns."""
    df = pd.DataFrame(rows, columns=["face_id", "timestamp_s", *[f"p_{lb}" for lb in LABELS]])
    df.insert(0, "video_id", pd.Categorical([video_id] * len(df)))
    df["face_id"] = df["face_id"].astype("int32")
    probs = df[[f"p_{lb}" for lb in LABELS]].to_numpy()
    df["emotion"] = pd.Categorical.from_codes(probs.argmax(axis=1), categories=LABELS)
    df["confidence"] = probs.max(axis=1)
    df["frame_index"] = np.arange(len(df))
    return df


def step_series(times, t_step):
    """neutral before t_step, happy from t_step on."""
    return [(0, t, 1.0 if t >= t_step else 0.0, 0.0, 0.0 if t >= t_step else 1.0) for t in times]
