"""Arrow arrays and tables from numpy columns and Python rows, without importing pandas.

``pa.array``, ``pa.Table.from_pylist`` and ``Table.to_pylist`` (for time-zone-aware
timestamps) import pandas the first time they run, about 0.5 s and 50 MB in a process that
otherwise never needs it: a ``ferbatch run`` of one short clip. The few types our schemas
use (:mod:`ferbatch.output.schema`) are built here straight from buffers instead; anything else
raises ``TypeError``.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from typing import Any

import numpy as np
import pyarrow as pa

from .layout import readable

_NUMPY = {
    pa.int8(): np.int8, pa.int16(): np.int16, pa.int32(): np.int32, pa.int64(): np.int64,
    pa.uint8(): np.uint8, pa.uint16(): np.uint16, pa.uint32(): np.uint32,
    pa.uint64(): np.uint64, pa.float32(): np.float32, pa.float64(): np.float64,
}
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_TICK = {"s": timedelta(seconds=1), "ms": timedelta(milliseconds=1),
         "us": timedelta(microseconds=1)}


def _validity(valid: np.ndarray) -> pa.Buffer | None:
    """Arrow's validity bitmap (LSB first) of a boolean mask; ``None`` when nothing is null."""
    if valid.all():
        return None
    return pa.py_buffer(np.packbits(valid, bitorder="little"))


def _utf8(value: Any) -> bytes:
    if not isinstance(value, str):
        raise TypeError(f"expected a string, got {type(value).__name__}: {value!r}")
    try:
        return value.encode()
    except UnicodeEncodeError:  # a file name that is not UTF-8, in a path or a message
        return readable(value).encode()


def _bytes(value: Any) -> bytes:
    if not isinstance(value, bytes | bytearray | memoryview):
        raise TypeError(f"expected bytes, got {type(value).__name__}: {value!r}")
    return bytes(value)


def from_numpy(values: Any, type: pa.DataType, valid: np.ndarray | None = None) -> pa.Array:
    """An Arrow array of ``type`` from a numpy array (or sequence); ``valid`` marks non-nulls.

    Numeric and boolean values are copied once into a contiguous buffer; strings are encoded
    as UTF-8 into offsets plus data.
    """
    n = len(values)
    mask = np.ones(n, bool) if valid is None else np.asarray(valid, bool)
    nulls = int(n - mask.sum())
    if type in _NUMPY:
        buffers = [pa.py_buffer(np.ascontiguousarray(values, dtype=_NUMPY[type]))]
    elif pa.types.is_boolean(type):
        buffers = [pa.py_buffer(np.packbits(np.asarray(values, bool), bitorder="little"))]
    elif pa.types.is_string(type) or pa.types.is_large_string(type) or pa.types.is_binary(type):
        convert = _bytes if pa.types.is_binary(type) else _utf8
        encoded = [convert(v) if ok else b"" for v, ok in zip(values, mask)]
        offsets = np.zeros(n + 1, np.int64 if pa.types.is_large_string(type) else np.int32)
        np.cumsum([len(b) for b in encoded], out=offsets[1:])
        buffers = [pa.py_buffer(offsets), pa.py_buffer(b"".join(encoded))]
    else:
        raise TypeError(f"no pandas-free conversion to Arrow type {type}")
    return pa.Array.from_buffers(type, n, [_validity(mask), *buffers], null_count=nulls)


def from_columns(columns: dict[str, Any], schema: pa.Schema) -> pa.Table:
    """A table of ``schema`` from numpy columns named as its fields (no nulls)."""
    return pa.Table.from_arrays([from_numpy(columns[f.name], f.type) for f in schema], schema=schema)


def _tick(type: pa.TimestampType) -> timedelta:
    """One unit of a timestamp type, as a timedelta (nanoseconds have none)."""
    if type.unit not in _TICK:
        raise TypeError(f"no pandas-free conversion of Arrow type {type}")
    return _TICK[type.unit]


def _column(values: list[Any], type: pa.DataType) -> pa.Array:
    """One column of Python values (``None`` for null) as an Arrow array of ``type``."""
    valid = np.array([v is not None for v in values], bool)
    if pa.types.is_null(type):
        return pa.nulls(len(values))
    if pa.types.is_timestamp(type):
        tick = _tick(type)
        ticks = [(v if v.tzinfo else v.replace(tzinfo=UTC)) - _EPOCH if v is not None
                 else timedelta(0) for v in values]
        data = from_numpy([t // tick for t in ticks], pa.int64(), valid)
        return data.view(type)
    if type in _NUMPY or pa.types.is_boolean(type):
        return from_numpy([v if v is not None else 0 for v in values], type, valid)
    return from_numpy(values, type, valid)


def from_rows(rows: Sequence[dict[str, Any]], schema: pa.Schema) -> pa.Table:
    """``pa.Table.from_pylist(rows, schema=schema)`` for our schemas; missing keys are null."""
    return pa.Table.from_arrays(
        [_column([r.get(f.name) for r in rows], f.type) for f in schema], schema=schema)


def to_rows(table: pa.Table) -> list[dict[str, Any]]:
    """``table.to_pylist()``, with time-zone-aware timestamps converted here (to UTC
    datetimes) rather than through pandas."""
    zoned: dict[str, list[datetime | None]] = {}
    for i, f in enumerate(table.schema):
        if pa.types.is_timestamp(f.type) and f.type.tz is not None:
            tick = _tick(f.type)
            ticks = table.column(i).cast(pa.int64()).to_pylist()
            zoned[f.name] = [None if t is None else _EPOCH + t * tick for t in ticks]
            table = table.set_column(i, f.name, pa.nulls(len(table)))
    rows = table.to_pylist()
    for name, values in zoned.items():
        for row, value in zip(rows, values):
            row[name] = value
    return rows
