"""What did each person (face_id) feel, second by second, in one video?

    python examples/face_timelines.py OUT VIDEO_ID [BIN_SECONDS]

Averages each face's probabilities in time bins (default 1 s) and prints the top emotion per
bin and face: one column per face_id, empty where the face was not seen.
"""

from __future__ import annotations

import sys

import numpy as np
from _common import check_video_ids, clock, labels, out_dir, read_faces

out = out_dir(sys.argv, "python examples/face_timelines.py OUT VIDEO_ID [BIN_SECONDS]")
if len(sys.argv) < 3:
    sys.exit("usage: python examples/face_timelines.py OUT VIDEO_ID [BIN_SECONDS]")
video_id = sys.argv[2]
bin_s = float(sys.argv[3]) if len(sys.argv) > 3 else 1.0
check_video_ids(out, video_id)
faces = read_faces(out)
order = labels(out, faces)
face = faces[faces["video_id"] == video_id]
if face.empty:
    sys.exit(f"no faces in video {video_id!r} (it is in the output, but no face was found)")

prob = [f"p_{lb}" for lb in order]
face = face.assign(bin=np.floor(face["timestamp_s"] / bin_s).astype(int))
means = face.groupby(["bin", "face_id"])[prob].mean()            # mean probabilities per bin
top = means.idxmax(axis=1).str.removeprefix("p_")                 # top emotion per bin and face
table = top.unstack("face_id").reindex(range(face["bin"].max() + 1))
table.index = [clock(b * bin_s) for b in table.index]
table.columns = [f"face {c}" for c in table.columns]

print(f"{video_id}: top emotion per {bin_s:g} s and face")
print(table.fillna("").to_string())
