"""SQL over the Parquet output with DuckDB: per-video emotion counts without loading it all.

    python examples/duckdb_query.py OUT

DuckDB reads the Hive-partitioned folder directly (``video_id`` from the folder names) and joins
``videos.parquet``; the same queries work in the ``duckdb`` CLI. Needs ``pip install duckdb``.
"""

from __future__ import annotations

import sys

from _common import out_dir

try:
    import duckdb
except ImportError:
    sys.exit("this example needs DuckDB: pip install duckdb")

out = out_dir(sys.argv, "python examples/duckdb_query.py OUT")
con = duckdb.connect()
faces_glob = ((out / 'faces').as_posix() + '/*/*.parquet').replace("'", "''")
# hive_types: keep ids like "0001" as text (DuckDB would otherwise guess an integer)
faces = f"read_parquet('{faces_glob}', hive_partitioning = true, hive_types = {{'video_id': VARCHAR}})"
videos_path = (out / 'videos.parquet').as_posix().replace("'", "''")
videos = f"read_parquet('{videos_path}')"

# 1. every video with its status, face rows, and top emotion by number of face rows
rows = con.sql(f"""
    WITH counts AS (
        SELECT video_id, emotion, count(*) AS n FROM {faces} GROUP BY ALL
    ), ranked AS (
        SELECT *, n / sum(n) OVER (PARTITION BY video_id) AS share,
               row_number() OVER (PARTITION BY video_id ORDER BY n DESC, emotion) AS rk
        FROM counts
    )
    SELECT v.video_id, v.status, coalesce(sum(r.n), 0) AS face_rows,
           max(CASE WHEN r.rk = 1 THEN r.emotion END) AS top_emotion,
           max(CASE WHEN r.rk = 1 THEN r.share END) AS top_share
    FROM {videos} v LEFT JOIN ranked r USING (video_id)
    GROUP BY v.video_id, v.status
    ORDER BY face_rows DESC, v.video_id
""").fetchall()
print("video_id | status | face_rows | top_emotion | top_share")
for vid, status, n, top, share in rows:
    print(f"{vid} | {status} | {n} | {top or '-'} | {'-' if share is None else f'{share:.3f}'}")

# 2. faces per video and how long each was on screen (first to last detection)
print("\nvideo_id | face_id | first_s | last_s")
for vid, fid, first, last in con.sql(f"""
        SELECT video_id, face_id, min(timestamp_s), max(timestamp_s)
        FROM {faces} GROUP BY ALL ORDER BY video_id, face_id""").fetchall():
    print(f"{vid} | {fid} | {first:.2f} | {last:.2f}")
