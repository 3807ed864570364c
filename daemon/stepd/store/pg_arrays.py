"""One-dimensional arrays in PostgreSQL's binary format, built by bulk calls.

A group write sends each column of its rows as one array parameter (stepd.store.pg_batch).
psycopg dumps a list element by element in Python, through an element dumper found for each
list: about 0.5 µs an element, the largest item of a node's store work in a herd. Here a
column whose type is known is packed at once: fixed-width values by an `array` and a few
strided copies, texts by one join over their encodings (the per-element steps run in C: `map`,
`zip`, `chain`).
The format is `array_recv`'s: dimensions, a has-nulls flag, the element type, then each
element as its length (-1: NULL) and its bytes.
"""

from __future__ import annotations

import struct
import sys
from array import array
from collections.abc import Sequence
from itertools import chain, repeat
from typing import Any, ClassVar

import psycopg
from psycopg.adapt import Dumper
from psycopg.pq import Format

# SQL type: (element oid, array oid, struct code and width of a value; None: text)
TYPES: dict[str, tuple[int, int, tuple[str, int] | None]] = {
    "int8": (20, 1016, ("q", 8)),
    "int4": (23, 1007, ("i", 4)),
    "float8": (701, 1022, ("d", 8)),
    "bool": (16, 1000, ("?", 1)),
    "text": (25, 1009, None),
}
_LENGTH = struct.Struct(">i")
_NULL = _LENGTH.pack(-1)
_HEAD = struct.Struct(">iiiii")  # dimensions, has nulls, element oid, length, lower bound


class BinaryArray:
    """An array parameter already in binary; `sql_type` its element type (a key of TYPES)."""

    __slots__ = ("data", "sql_type")

    def __init__(self, sql_type: str, data: bytes) -> None:
        self.sql_type = sql_type
        self.data = data


def _values(code: str, width: int, values: Sequence[Any]) -> bytes:
    """Fixed-width values, none of them NULL: their bytes (big-endian) laid out after a
    length each by a few strided copies, whatever their number."""
    count = len(values)
    if code == "?":
        raw = bytes(values)
    else:
        packed = array(code, values)
        if packed.itemsize != width:  # pragma: no cover - a platform with other C sizes
            pairs = chain.from_iterable(zip(repeat(width), values))
            return struct.pack(f">{count * ('i' + code)}", *pairs)
        if sys.byteorder == "little":
            packed.byteswap()
        raw = packed.tobytes()
    stride = 4 + width
    laid = bytearray(stride * count)
    laid[3::stride] = bytes([width]) * count  # each length: 0, 0, 0, width
    for k in range(width):
        laid[4 + k :: stride] = raw[k::width]
    return bytes(laid)


def _texts(values: Sequence[str]) -> bytes:
    """Texts, none of them NULL."""
    encoded = [v.encode() for v in values]
    lengths = map(_LENGTH.pack, map(len, encoded))
    return b"".join(chain.from_iterable(zip(lengths, encoded, strict=True)))


def _with_nulls(code: str | None, width: int, values: Sequence[Any]) -> bytes:
    one = None if code is None else struct.Struct(f">i{code}")
    parts: list[bytes] = []
    for value in values:
        if value is None:
            parts.append(_NULL)
        elif one is not None:
            parts.append(one.pack(width, value))
        else:
            data = value.encode()
            parts.append(_LENGTH.pack(len(data)))
            parts.append(data)
    return b"".join(parts)


def binary_array(sql_type: str, values: Sequence[Any]) -> BinaryArray:
    """`values` as an array of `sql_type` (float8: ints are sent as floats)."""
    oid, _, fixed = TYPES[sql_type]
    count = len(values)
    if not count:
        return BinaryArray(sql_type, struct.pack(">iii", 0, 0, oid))
    nulls = values.count(None)
    head = _HEAD.pack(1, 1 if nulls else 0, oid, count, 1)
    if nulls == count:
        return BinaryArray(sql_type, head + _NULL * count)
    code, width = fixed if fixed is not None else (None, 0)
    if code == "d":
        values = [None if v is None else float(v) for v in values]
    if nulls:
        return BinaryArray(sql_type, head + _with_nulls(code, width, values))
    if code is None:
        return BinaryArray(sql_type, head + _texts(values))
    return BinaryArray(sql_type, head + _values(code, width, values))


def binary_columns(rows: Sequence[Sequence[Any]], types: Sequence[str]) -> list[BinaryArray]:
    """The columns of `rows`, each an array of its type in `types`."""
    if not rows:
        return [binary_array(kind, []) for kind in types]
    columns = zip(*rows, strict=True)
    return [binary_array(kind, column) for kind, column in zip(types, columns, strict=True)]


class _ArrayDumper(Dumper):
    format = Format.BINARY
    oids: ClassVar[dict[str, int]] = {name: array for name, (_, array, _) in TYPES.items()}

    def dump(self, obj: BinaryArray) -> bytes:
        return obj.data

    def get_key(self, obj: BinaryArray, format: Any) -> Any:  # noqa: A002, ARG002 - psycopg's
        return (BinaryArray, obj.sql_type)

    def upgrade(self, obj: BinaryArray, format: Any) -> Dumper:  # noqa: A002, ARG002
        dumper = _ArrayDumper(BinaryArray)
        dumper.oid = self.oids[obj.sql_type]
        return dumper


psycopg.adapters.register_dumper(BinaryArray, _ArrayDumper)
