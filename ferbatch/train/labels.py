"""Label names and their aliases, shared by every dataset format and the evaluator."""

from __future__ import annotations

ALIASES = {
    "anger": "angry", "angry": "angry", "mad": "angry",
    "disgust": "disgust", "disgusted": "disgust",
    "fear": "fear", "fearful": "fear", "afraid": "fear", "scared": "fear",
    "happy": "happy", "happiness": "happy", "joy": "happy", "smile": "happy",
    "sad": "sad", "sadness": "sad",
    "surprise": "surprise", "surprised": "surprise",
    "neutral": "neutral", "calm": "neutral",
    "contempt": "contempt",
}


def canonical_label(name: str) -> str:
    """The canonical spelling of an emotion name (``anger`` → ``angry``); unknown names are
    lower-cased and returned as they are."""
    key = name.strip().lower()
    return ALIASES.get(key, key)


def label_positions(names: list[str], labels: list[str]) -> list[int]:
    """For each of ``names``, its index in ``labels`` matched by canonical name
    (:func:`canonical_label`: ``happiness`` = ``happy``), or -1 when ``labels`` lacks it; the
    first index when two of ``labels`` mean the same class."""
    index: dict[str, int] = {}
    for i, label in enumerate(labels):
        index.setdefault(canonical_label(label), i)  # the first, should a name repeat
    return [index.get(canonical_label(name), -1) for name in names]
