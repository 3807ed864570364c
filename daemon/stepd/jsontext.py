"""JSON text written on every step, with its encoders made once.

`json.dumps` with any option builds a new encoder on each call, which costs more than
encoding a small value; these encode exactly as the `json.dumps` calls they replace.
"""

from __future__ import annotations

import json
from typing import Any

_COMPACT = json.JSONEncoder(separators=(",", ":"), ensure_ascii=False)
_COMPACT_ASCII = json.JSONEncoder(separators=(",", ":"))
_STRICT = json.JSONEncoder(separators=(",", ":"), ensure_ascii=False, allow_nan=False)
_PLAIN = json.JSONEncoder()


def compact(value: Any) -> str:
    """`json.dumps(value, separators=(",", ":"), ensure_ascii=False)`."""
    return _COMPACT.encode(value)


def compact_ascii(value: Any) -> str:
    """`json.dumps(value, separators=(",", ":"))`."""
    return _COMPACT_ASCII.encode(value)


def strict(value: Any) -> str:
    """`json.dumps(value, separators=(",", ":"), ensure_ascii=False, allow_nan=False)`:
    ValueError for NaN and infinities."""
    return _STRICT.encode(value)


def plain(value: Any) -> str:
    """`json.dumps(value)`."""
    return _PLAIN.encode(value)
