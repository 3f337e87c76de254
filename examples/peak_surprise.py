"""When were people most surprised? The top moments of one emotion across a whole folder.

    python examples/peak_surprise.py OUT [EMOTION] [N]

EMOTION defaults to ``surprise``, N to 5. Keeps the best moment per (video, face) so one long
surprised face does not fill the list, and joins ``videos.parquet`` for the file path.
"""

from __future__ import annotations

import sys

import pandas as pd
from _common import clock, labels, out_dir, read_faces

out = out_dir(sys.argv, "python examples/peak_surprise.py OUT [EMOTION] [N]")
emotion = sys.argv[2] if len(sys.argv) > 2 else "surprise"
top_n = int(sys.argv[3]) if len(sys.argv) > 3 else 5
faces = read_faces(out)
if emotion not in labels(out, faces):
    sys.exit(f"{emotion!r} is not a label of this model: {', '.join(labels(out, faces))}")
col = f"p_{emotion}"

best = (faces.sort_values([col, "video_id", "timestamp_s"], ascending=[False, True, True])  # ties: earliest
        .drop_duplicates(["video_id", "face_id"])           # best moment per face
        .head(top_n)
        .merge(pd.read_parquet(out / "videos.parquet", columns=["video_id", "path"]), on="video_id"))

print(f"Top {len(best)} moments of {emotion} (best per face):")
for rank, r in enumerate(best.itertuples(), 1):
    print(f"{rank}. {r.video_id} face {r.face_id} at {clock(r.timestamp_s)} "
          f"(t={r.timestamp_s:.2f}s, frame {r.frame_index}): p={getattr(r, col):.2f}  {r.path}")
