"""The output contract in one place: schemas and rows, file layout, locations, commits, reading.

* :mod:`.schema` — Arrow schemas of ``videos`` / ``frames`` / ``faces``, status values, the
  provenance of a run and the one constructor of a ``videos.parquet`` row;
* :mod:`.layout` — every file and folder name of an output;
* :mod:`.location` — where an output lives (local folder or any pyarrow filesystem URI);
* :mod:`.commit` — :class:`~.commit.OutputStore` and its two committers (local rename vs
  object store), chosen once;
* :mod:`.atomic` — the one atomic write of a local file;
* :mod:`.arrow` — Arrow tables from buffers without importing pandas;
* :mod:`.read` — :func:`ferbatch.load`.
"""
