"""The pandas side of the output contract: :class:`Results` and its typed DataFrames.

:func:`ferbatch.load` (:mod:`ferbatch.output.read`) reads an output folder and
:meth:`ferbatch.pipeline.VideoResult.to_pandas` converts one video's in-memory tables; both end
in :func:`assemble`, so they give the same dtypes:

* ``videos``: integer columns as pandas' nullable types (``width``/``height``/``tracks``
  ``Int32``, ``rotation`` ``Int16``, counts, sizes and mtimes ``Int64``), floats ``float64``,
  text ``object``, ``finished_at`` ``datetime64[ms, UTC]`` — whatever the rows hold, so a
  failed video (nulls) never turns ``width`` into ``float64``;
* ``frames`` / ``faces``: the Arrow types of the partitions (``int64`` / ``int32`` / ``int16``
  / ``float32``…), ``emotion`` a Categorical over the labels in model order;
* ``video_id``: one Categorical in all three tables.
"""

from __future__ import annotations

import functools
import logging
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pandas as pd
import pyarrow as pa

from ..errors import OutputError
from .schema import VIDEOS_SCHEMA, prob_column

log = logging.getLogger(__name__)

__all__ = ["Results", "assemble", "typed_videos", "with_video_id"]

#: Arrow integer types → pandas nullable dtypes (``pd.NA`` for a missing value)
_NULLABLE: dict[pa.DataType, Any] = {
    pa.int8(): pd.Int8Dtype(), pa.int16(): pd.Int16Dtype(), pa.int32(): pd.Int32Dtype(),
    pa.int64(): pd.Int64Dtype(), pa.bool_(): pd.BooleanDtype(),
}


@dataclass(frozen=True)
class Results:
    """One ferbatch output folder (or one video's result) in memory.

    ``videos``: one row per input file. ``frames``: one row per analysed frame. ``faces``: one
    row per detected face per analysed frame, ``emotion`` a Categorical whose categories are
    ``labels`` in model order. ``video_id`` is a Categorical in all three (categories: the ids of
    ``videos`` in file order), so groupbys line up across tables. Dtypes never depend on the
    data (module doc).
    """

    out: Path | str | None  # a Path for a local folder, else the URI; None: not from a folder
    videos: pd.DataFrame
    frames: pd.DataFrame
    faces: pd.DataFrame
    labels: list[str]
    meta: dict[str, Any] = field(default_factory=dict)

    @property
    def prob_columns(self) -> list[str]:
        """``p_<label>`` column names, in label order."""
        return [prob_column(label) for label in self.labels]

    def __repr__(self) -> str:  # DataFrames make the default repr unreadable
        return (
            f"Results(out={str(self.out)!r}, videos={len(self.videos)}, frames={len(self.frames)}, "
            f"faces={len(self.faces)}, labels={self.labels})"
        )


@functools.cache
def _video_dtypes() -> dict[str, Any]:
    empty = VIDEOS_SCHEMA.empty_table().to_pandas(types_mapper=_NULLABLE.get)
    return dict(empty.dtypes.items())


def typed_videos(table: pa.Table) -> pd.DataFrame:
    """``videos`` rows as a DataFrame with the contract's dtypes (module doc); columns of the
    schema that ``table`` lacks (older, narrower tables) are added empty, extra ones kept."""
    df = table.to_pandas(types_mapper=_NULLABLE.get)
    for name, dtype in _video_dtypes().items():
        if name not in df.columns:
            df[name] = pd.Series([None] * len(df), dtype=object).astype(dtype)
        elif df[name].dtype != dtype:
            try:
                df[name] = df[name].astype(dtype)
            except (TypeError, ValueError):
                pass  # an older table's odd column: kept as read
    return df


def _empty_rows(videos: pd.DataFrame, ids: list[str]) -> pd.DataFrame:
    """Rows of ``ids`` with every other column missing, in ``videos``' dtypes."""
    stub = videos.iloc[0:0].reindex(range(len(ids)))
    for name in stub.columns:
        if stub[name].dtype != videos[name].dtype:
            stub[name] = stub[name].astype(videos[name].dtype)
    stub["video_id"] = ids
    return stub


def _categorize(shown: str, videos: pd.DataFrame, frames: pd.DataFrame,
                faces: pd.DataFrame) -> pd.DataFrame:
    """``video_id`` as one Categorical in all three tables: the videos in file order, then ids
    found only in partitions (each gets a row with only its id in ``videos``, with a warning)."""
    ids = [str(v) for v in videos["video_id"].tolist()]
    extra = sorted(
        (set(frames["video_id"].astype(str)) | set(faces["video_id"].astype(str))) - set(ids)
    )
    if extra:
        log.warning("%s: partitions without a videos.parquet row: %s%s", shown, extra[:5],
                    " ..." if len(extra) > 5 else "")
        stub = _empty_rows(videos, extra)
        videos = pd.concat([videos, stub], ignore_index=True) if len(videos) else stub
        ids += extra
    for df in (videos, frames, faces):
        df["video_id"] = pd.Categorical(df["video_id"].astype(object), categories=ids)
    return videos


def with_video_id(table: pa.Table, video_id: str) -> pa.Table:
    """``table`` (one video's frames or faces) with ``video_id`` as its first column, string
    typed, in place of any ``video_id`` column it had: partitions do not store it (their
    folder names it) and in-memory tables leave it out."""
    if "video_id" in table.column_names:
        table = table.drop_columns(["video_id"])
    return table.add_column(0, "video_id", pa.array([video_id] * table.num_rows, pa.string()))


def assemble(out: Path | str | None, videos: pd.DataFrame, frames: pa.Table, faces: pa.Table,
             labels: list[str], meta: dict[str, Any] | None = None,
             shown: str = "") -> Results:
    """:class:`Results` from the typed ``videos`` frame and the ``frames`` / ``faces`` tables
    (with a ``video_id`` column). Raises :class:`OutputError` when faces lack a label's
    probability column; ``shown`` names the output in messages."""
    missing = [lb for lb in labels if prob_column(lb) not in faces.column_names]
    if missing and faces.num_rows:
        raise OutputError(f"{shown}/faces: no probability column for label(s) {missing}")
    frames_df = frames.to_pandas()
    faces_df = faces.to_pandas()
    for label in missing:  # empty table: give it the columns the labels promise
        faces_df[prob_column(label)] = pd.Series(dtype="float32")
    videos = _categorize(shown, videos, frames_df, faces_df)
    emotions = faces_df["emotion"].astype(object) if "emotion" in faces_df else pd.Series([], dtype=object)
    unknown = sorted(set(emotions.dropna()) - set(labels))
    faces_df["emotion"] = pd.Categorical(emotions, categories=list(labels) + unknown)
    sort_keys = ["video_id", "frame_index"]
    frames_df = frames_df.sort_values(sort_keys, kind="stable").reset_index(drop=True)
    faces_df = faces_df.sort_values(sort_keys + ["face_id"], kind="stable").reset_index(drop=True)
    return Results(out=out, videos=videos, frames=frames_df, faces=faces_df, labels=list(labels),
                   meta=dict(meta or {}))
