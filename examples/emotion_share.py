"""Which emotion dominates each video? Share of face detections per emotion, per video.

    python examples/emotion_share.py OUT

Counts face rows (one row = one face in one analysed frame) by their top label. With regular
sampling that is the share of face-time; ``ferbatch report`` writes time-weighted shares (robust
to irregular sampling and gaps) to OUT/summary.parquet.
"""

from __future__ import annotations

import sys

import pandas as pd
from _common import labels, out_dir, read_faces

out = out_dir(sys.argv, "python examples/emotion_share.py OUT")
faces = read_faces(out)
videos = pd.read_parquet(out / "videos.parquet", columns=["video_id", "status"])
order = labels(out, faces)

# rows: videos; columns: emotions in model order; values: share of that video's face rows
share = pd.crosstab(faces["video_id"], pd.Categorical(faces["emotion"], categories=order),
                    normalize="index", dropna=False).reindex(columns=order, fill_value=0.0)
share.columns.name = None
share = share.reindex(videos["video_id"])  # every video, faceless/failed ones as NaN
seen = share[order].notna().any(axis=1)
share.insert(0, "dominant", share.loc[seen, order].idxmax(axis=1).reindex(share.index))
share.insert(0, "status", videos.set_index("video_id")["status"])
share.insert(1, "face_rows", faces.groupby("video_id").size().reindex(share.index).fillna(0).astype(int))

pd.set_option("display.width", 200)
print("Share of face rows per emotion (top label of each detection):")
print(share.round(3).to_string(na_rep=""))
for vid, row in share.iterrows():
    if isinstance(row["dominant"], str):
        print(f"{vid}: mostly {row['dominant']} ({row[row['dominant']]:.0%} of {row['face_rows']} face rows)")
    else:
        print(f"{vid}: no faces ({row['status']})")
