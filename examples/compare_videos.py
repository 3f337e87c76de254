"""How do two videos differ emotionally? Mean probabilities side by side.

    python examples/compare_videos.py OUT VIDEO_A VIDEO_B

Averages every face row's probabilities per video (all faces pooled) and prints both profiles,
their difference, and the emotion that differs most.
"""

from __future__ import annotations

import sys

import pandas as pd
from _common import check_video_ids, labels, out_dir, read_faces

usage = "python examples/compare_videos.py OUT VIDEO_A VIDEO_B"
out = out_dir(sys.argv, usage)
if len(sys.argv) < 4:
    sys.exit(f"usage: {usage}")
a, b = sys.argv[2], sys.argv[3]
check_video_ids(out, a, b)
faces = read_faces(out)
order = labels(out, faces)
prob = [f"p_{lb}" for lb in order]

profile = faces[faces["video_id"].isin([a, b])].groupby("video_id")[prob].mean()
missing = [v for v in (a, b) if v not in profile.index]
if missing:
    sys.exit(f"no faces in video(s) {', '.join(missing)} (in the output, but no face was found)")
table = pd.DataFrame({a: profile.loc[a].to_numpy(), b: profile.loc[b].to_numpy()}, index=order)
table["difference"] = table[b] - table[a]

print(f"Mean probability per emotion, {a} vs {b}:")
print(table.round(3).to_string())
most = table["difference"].abs().idxmax()
d = table.loc[most, "difference"]
print(f"Biggest difference: {most} ({'+' if d >= 0 else ''}{d:.3f} in {b} vs {a})")
