"""Numbers and missing values as the report shows them; plain text, escaped by the templates."""

from __future__ import annotations

import hashlib
import math
import re
from typing import Any

import numpy as np
import pandas as pd

__all__ = ["is_missing", "text", "short", "num", "plain_value", "duration", "fixed", "percent",
           "page_name"]

DASH = "–"  # shown for a missing number


def is_missing(value: Any) -> bool:
    """None, NaN and ``pd.NA``/``NaT``."""
    if value is None or value is pd.NA or value is pd.NaT:
        return True
    return isinstance(value, (float, np.floating)) and math.isnan(value)


def text(value: Any) -> str:
    """Text of a value; missing values (None/NaN/NA) become an empty string."""
    return "" if is_missing(value) else str(value)


def short(value: Any, n: int = 90) -> str:
    """:func:`text`, cut to ``n`` characters with an ellipsis."""
    s = text(value)
    return s if len(s) <= n else s[: n - 1] + "…"


def num(value: Any) -> float:
    """A float, NaN for anything that is not a number."""
    try:
        return float(value)
    except (TypeError, ValueError):
        return float("nan")


def plain_value(value: Any) -> Any:
    """Whole floats (ints that went through a nullable column) shown without ``.0``."""
    if isinstance(value, (float, np.floating)) and math.isfinite(value) and float(value).is_integer():
        return int(value)
    return value


def duration(value: Any) -> str:
    """Seconds as ``12.5 s`` below two minutes, else ``h:mm:ss``."""
    v = num(value)
    if math.isnan(v):
        return DASH
    if v < 120:
        return f"{v:.1f} s"
    h, rem = divmod(int(round(v)), 3600)
    return f"{h}:{rem // 60:02d}:{rem % 60:02d}"


def fixed(value: Any, spec: str = ".1f", suffix: str = "") -> str:
    """``value`` formatted with ``spec`` plus ``suffix``; a dash when it is not a number."""
    v = num(value)
    return DASH if math.isnan(v) else f"{v:{spec}}{suffix}"


def percent(share: Any) -> str:
    """A share 0…1 as a whole percentage (``42 %``)."""
    return fixed(num(share) * 100, ".0f", " %")


def page_name(video_id: str) -> str:
    """File name of a video's page: ``<video_id>.html`` when that is a safe, non-clashing name."""
    vid = str(video_id)
    if re.fullmatch(r"[A-Za-z0-9][A-Za-z0-9._-]{0,150}", vid) and vid.lower() != "index":
        return f"{vid}.html"
    safe = re.sub(r"[^A-Za-z0-9._-]+", "_", vid)[:80].strip("._") or "video"
    return f"{safe}-{hashlib.sha1(vid.encode('utf-8')).hexdigest()[:8]}.html"
