"""JSON text written on every step, with its encoders made once.

`json.dumps` with any option builds a new encoder on each call, which costs more than
encoding a small value, and `JSONEncoder.encode` still builds the C encoder it runs on each
call (about 1 µs of the 2 µs a history event's details take); these encode exactly as the
`json.dumps` calls they replace, on C encoders made once. The one difference: a value that
holds itself raises RecursionError instead of ValueError (nothing stepd encodes can).

`stored` and `line` encode with orjson (a fifth of the time) what only stepd reads back: a
history event's details, a pending step's record, a log line.
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Callable
from json import encoder as _json_encoder
from typing import Any

import orjson

# A UTF-16 surrogate in a str is one that JSON's \uXXXX escapes gave alone (a pair decodes to one
# character): text that is not Unicode, which no store can write as UTF-8.
_SURROGATE = re.compile("[\ud800-\udfff]")
# JSON text that may hold one once parsed: an escape of one, or one as it is
_SURROGATE_OR_ESCAPE = re.compile(r"[\ud800-\udfff]|\\u[dD][89a-fA-F]")

_COMPACT = json.JSONEncoder(separators=(",", ":"), ensure_ascii=False)
_COMPACT_ASCII = json.JSONEncoder(separators=(",", ":"))
_STRICT = json.JSONEncoder(separators=(",", ":"), ensure_ascii=False, allow_nan=False)
_PLAIN = json.JSONEncoder()


def made_once(encoder: json.JSONEncoder) -> Callable[[Any], str]:
    """`encoder.encode`, on a C encoder made once (without the C accelerator, `encode`)."""
    make = getattr(_json_encoder, "c_make_encoder", None)
    if make is None:  # pragma: no cover - CPython always has it
        return encoder.encode
    escape = (
        _json_encoder.encode_basestring_ascii
        if encoder.ensure_ascii
        else _json_encoder.encode_basestring
    )
    chunks = make(
        None,  # no circular check: nothing stepd encodes holds itself
        encoder.default,
        escape,
        encoder.indent,
        encoder.key_separator,
        encoder.item_separator,
        encoder.sort_keys,
        encoder.skipkeys,
        encoder.allow_nan,
    )
    join = "".join

    def encode(value: Any) -> str:
        return join(chunks(value, 0))

    return encode


def escape_surrogates(text: str) -> str:
    """JSON `text` with each unpaired surrogate in it written as its escape (`\\ud800`): the
    same JSON value, in text that is Unicode, which a store can write as UTF-8 (a surrogate can
    only stand in a string, where the escape means the same)."""
    if _SURROGATE.search(text) is None:
        return text
    return text.encode("utf-8", "backslashreplace").decode("utf-8")


def _unicode(encode: Callable[[Any], str]) -> Callable[[Any], str]:
    def encode_unicode(value: Any) -> str:
        return escape_surrogates(encode(value))

    return encode_unicode


compact: Callable[[Any], str] = _unicode(made_once(_COMPACT))
"""`json.dumps(value, separators=(",", ":"), ensure_ascii=False)`, an unpaired surrogate
(which a task's answer may hold) escaped."""

compact_ascii: Callable[[Any], str] = made_once(_COMPACT_ASCII)
"""`json.dumps(value, separators=(",", ":"))`."""

strict: Callable[[Any], str] = _unicode(made_once(_STRICT))
"""`json.dumps(value, separators=(",", ":"), ensure_ascii=False, allow_nan=False)`, an
unpaired surrogate escaped: ValueError for NaN and infinities."""

plain: Callable[[Any], str] = made_once(_PLAIN)
"""`json.dumps(value)`."""


# orjson encodes dataclasses, datetimes and subclasses of str, int, dict and list itself;
# passed through, they reach `default` (none: TypeError) as they reach the json module's
_PASSTHROUGH = (
    orjson.OPT_PASSTHROUGH_DATACLASS
    | orjson.OPT_PASSTHROUGH_DATETIME
    | orjson.OPT_PASSTHROUGH_SUBCLASS
)


def stored(value: Any) -> str:
    """JSON text that stepd stores and reads back itself: the same value as `compact_ascii`'s
    text when parsed (UTF-8 instead of \\u escapes); `compact_ascii`'s text for what orjson
    does not take (integers beyond 64 bits, keys that are not strings, lone surrogates), and
    its error for what is not JSON. Unlike `compact_ascii`, a NaN or infinite float is written
    as null: stepd stores none in these texts."""
    try:
        return orjson.dumps(value, option=_PASSTHROUGH).decode()
    except (TypeError, UnicodeEncodeError):
        return compact_ascii(value)


def line(value: Any, default: Callable[[Any], Any]) -> str:
    """A log line's JSON: `value` with `default` for what JSON has no type for, as
    `json.dumps(value, default=default)` gives it (UTF-8 instead of \\u escapes)."""
    try:
        return orjson.dumps(value, default=default, option=_PASSTHROUGH).decode()
    except (TypeError, UnicodeEncodeError):
        return json.dumps(value, default=default)


def unpaired_surrogate(value: Any) -> bool:
    """Whether a string in the JSON value `value` (a key too) holds a UTF-16 surrogate that
    is not half of a pair: not Unicode text."""
    stack = [value]
    while stack:
        item = stack.pop()
        if isinstance(item, str):
            if _SURROGATE.search(item) is not None:
                return True
        elif isinstance(item, dict):
            stack.extend(item.keys())
            stack.extend(item.values())
        elif isinstance(item, list):
            stack.extend(item)
    return False


def may_hold_surrogate(text: str) -> bool:
    """Whether JSON `text`, once parsed, may hold an unpaired surrogate (`unpaired_surrogate`
    tells): a quick look that spares the walk for nearly all texts."""
    return _SURROGATE_OR_ESCAPE.search(text) is not None


def _not_json(name: str) -> Any:
    raise ValueError(f"{name} is not JSON")


def _finite(text: str) -> float:
    value = float(text)
    if math.isinf(value):
        raise ValueError(f"the number {text} is beyond the range of a double")
    return value


# JSON text from outside (an execution's input, a task's result, a callback's output): NaN and
# Infinity are refused, and so is a number a double cannot hold (1e400), which would come back
# out as Infinity, not JSON
STRICT = json.JSONDecoder(parse_constant=_not_json, parse_float=_finite)
