"""One fixed colour and valence per emotion name, so every chart and table agrees.

Labels outside the known set (a custom model's classes) get a stable colour derived from the
name's hash (the same name gets the same colour in every run) and a valence of 0.
"""

from __future__ import annotations

import hashlib

EMOTION_COLORS: dict[str, str] = {
    "angry": "#d62728",
    "disgust": "#2ca02c",
    "fear": "#9467bd",
    "happy": "#f2b701",
    "sad": "#1f77b4",
    "surprise": "#ff7f0e",
    "neutral": "#7f7f7f",
    "contempt": "#8c564b",
}

#: Rough valence (unpleasant −1 … pleasant +1) of each emotion, for the index sparklines.
VALENCE: dict[str, float] = {
    "angry": -0.8,
    "disgust": -0.7,
    "fear": -0.7,
    "sad": -0.7,
    "contempt": -0.5,
    "neutral": 0.0,
    "surprise": 0.2,
    "happy": 0.9,
}

_FALLBACK = ["#17becf", "#bcbd22", "#e377c2", "#393b79", "#637939", "#8c6d31", "#843c39", "#7b4173"]


def color_for(label: str) -> str:
    """Hex colour of an emotion label (fixed for known names, hash-stable for others)."""
    key = str(label).lower()
    if key in EMOTION_COLORS:
        return EMOTION_COLORS[key]
    digest = hashlib.sha1(key.encode("utf-8")).digest()
    return _FALLBACK[digest[0] % len(_FALLBACK)]


def valence_of(label: str) -> float:
    """Valence of an emotion label in [-1, 1]; 0 for unknown names."""
    return VALENCE.get(str(label).lower(), 0.0)
