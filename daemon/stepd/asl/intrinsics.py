"""Intrinsic functions (`States.Format(...)` and the rest) in `.$` fields.

Arguments are string literals in single quotes (`\\'`, `\\{`, `\\}`, `\\\\` escapes),
numbers, `true`, `false`, `null`, paths (`$.a`, `$$.Execution.Id`) and nested calls.

`parse` reads a call and checks what can be known without data: the syntax, that every
function exists and gets as many arguments as it takes, and every path argument. It raises
ParseError; `stepd check` calls it too. A failure while evaluating (a path with no value, an
argument of the wrong type) is an IntrinsicError. AWS reports both as `States.Runtime`.

As AWS does (its recorded results): `States.Format` writes a string as is, an object as
`{key=value, ...}` and an array as `[a, b]` (Java's notation, as AWS shows them), any other
value as JSON; `States.MathAdd` and `States.MathRandom` round a number that is not whole to
the nearest integer, halves up (Java's Math.round: 2.5 gives 3, -2.5 gives -2);
`States.StringToJson` of an empty or blank string is null.

Where AWS's documentation leaves room: `States.MathRandom(start, end)` is an integer in
[start, end); `States.StringSplit`
splits on each character of the delimiter and drops empty pieces; `States.JsonMerge` merges
shallowly only (its third argument must be `false`).
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import itertools
import json
import math
import re
import uuid
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, Final, TypeAlias

from stepd.asl import paths
from stepd.errors import IntrinsicError, ParseError, PathError

PREFIX: Final = "States."
FORMAT: Final = "States.Format"
MAX_ARRAY_RANGE_ITEMS: Final = 1000
MAX_ENCODED_CHARACTERS: Final = 10000
MAX_NESTED_CALLS: Final = 50  # calls inside calls: far beyond real use, well within the stack
HASH_ALGORITHMS: Final = {
    "MD5": "md5",
    "SHA-1": "sha1",
    "SHA-256": "sha256",
    "SHA-384": "sha384",
    "SHA-512": "sha512",
}
_RANDOM_BITS: Final = 53
_UUID_WORD_BITS: Final = 32
_UUID_WORDS: Final = 4
_NUMBER: Final = re.compile(r"-?\d+(\.\d+)?([eE][+-]?\d+)?", re.ASCII)
_NAME: Final = re.compile(r"States\.[A-Za-z0-9]+", re.ASCII)

Random: TypeAlias = Callable[[], float]


def is_intrinsic(text: str) -> bool:
    return text.startswith(PREFIX)


def seeded_random(seed: str) -> Random:
    """A deterministic source of floats in [0, 1): the same seed gives the same sequence."""
    counter = itertools.count()

    def draw() -> float:
        digest = hashlib.sha256(f"{seed}:{next(counter)}".encode()).digest()
        numerator = int.from_bytes(digest[:8], "big") >> (64 - _RANDOM_BITS)
        return float(numerator / 2**_RANDOM_BITS)

    return draw


# --- syntax -----------------------------------------------------------------------------


@dataclass(frozen=True, kw_only=True)
class Literal:
    value: Any
    raw: str | None = None  # a string literal as written, escapes kept (States.Format reads it)


@dataclass(frozen=True, kw_only=True)
class PathRef:
    path: str


@dataclass(frozen=True, kw_only=True)
class Call:
    name: str
    args: tuple[Node, ...]


Node: TypeAlias = Literal | PathRef | Call


def parse(text: str) -> Call:
    """Parse one intrinsic call and check its functions, argument counts and paths.

    Raises ParseError.
    """
    parser = _Parser(text)
    call = parser.call()
    parser.skip_spaces()
    if parser.position != len(text):
        raise parser.error("unexpected text after the call")
    _check(call, text)
    return call


def _check(call: Call, text: str) -> None:
    arity = ARITY.get(call.name)
    if arity is None:
        raise ParseError(f"Invalid intrinsic function '{text}': unknown function {call.name}")
    low, high = arity
    if len(call.args) < low or (high is not None and len(call.args) > high):
        raise ParseError(
            f"Invalid intrinsic function '{text}': "
            f"{call.name} takes {_wanted(low, high)}, got {len(call.args)}"
        )
    for arg in call.args:
        if isinstance(arg, Call):
            _check(arg, text)
        elif isinstance(arg, PathRef):
            try:
                paths.parse(arg.path)
            except ParseError as error:
                raise ParseError(f"Invalid intrinsic function '{text}': {error.problem}") from None


def _wanted(low: int, high: int | None) -> str:
    if high is None:
        return f"at least {low} argument{'s' if low != 1 else ''}"
    count = str(low) if low == high else f"{low} to {high}"
    return f"{count} argument{'s' if high != 1 else ''}"


class _Parser:
    def __init__(self, text: str) -> None:
        self.text = text
        self.position = 0
        self.depth = 0

    def error(self, problem: str) -> ParseError:
        return ParseError(
            f"Invalid intrinsic function '{self.text}': {problem} at position {self.position}"
        )

    def skip_spaces(self) -> None:
        while self.position < len(self.text) and self.text[self.position].isspace():
            self.position += 1

    def peek(self) -> str:
        return self.text[self.position : self.position + 1]

    def call(self) -> Call:
        match = _NAME.match(self.text, self.position)
        if match is None:
            raise self.error("expected a States.* function name")
        self.position = match.end()
        if self.peek() != "(":
            raise self.error("expected '('")
        self.depth += 1
        if self.depth > MAX_NESTED_CALLS:
            raise self.error(f"calls nested more than {MAX_NESTED_CALLS} deep")
        self.position += 1
        args: list[Node] = []
        self.skip_spaces()
        if self.peek() == ")":
            self.position += 1
            self.depth -= 1
            return Call(name=match.group(), args=())
        while True:
            self.skip_spaces()
            args.append(self.argument())
            self.skip_spaces()
            char = self.peek()
            self.position += 1
            if char == ")":
                self.depth -= 1
                return Call(name=match.group(), args=tuple(args))
            if char != ",":
                self.position -= 1
                raise self.error("expected ',' or ')'")

    def argument(self) -> Node:
        char = self.peek()
        if char == "'":
            return self.string()
        if char == "$":
            return PathRef(path=self.path())
        if self.text.startswith(PREFIX, self.position):
            return self.call()
        for word, value in (("true", True), ("false", False), ("null", None)):
            if self.text.startswith(word, self.position):
                self.position += len(word)
                return Literal(value=value)
        match = _NUMBER.match(self.text, self.position)
        if match is None:
            raise self.error("expected an argument")
        number = match.group()
        try:
            parsed: float = float(number) if match[1] or match[2] else int(number)
        except ValueError:  # more digits than Python converts
            parsed = math.inf
        if not math.isfinite(parsed):
            raise self.error(f"the number {number[:20]} is too large")
        self.position = match.end()
        return Literal(value=parsed)

    def string(self) -> Literal:
        start = self.position
        self.position += 1
        chars: list[str] = []
        while self.position < len(self.text):
            char = self.text[self.position]
            if char == "\\" and self.position + 1 < len(self.text):
                chars.append(self.text[self.position + 1])
                self.position += 2
            elif char == "'":
                self.position += 1
                raw = self.text[start + 1 : self.position - 1]
                return Literal(value="".join(chars), raw=raw)
            else:
                chars.append(char)
                self.position += 1
        raise self.error("unterminated string")

    def path(self) -> str:
        start = self.position
        depth = 0
        quote = ""
        while self.position < len(self.text):
            char = self.text[self.position]
            if quote:
                if char == "\\":
                    self.position += 1
                elif char == quote:
                    quote = ""
            elif char in "'\"" and depth:
                quote = char
            elif char == "[":
                depth += 1
            elif char == "]":
                depth -= 1
            elif depth == 0 and (char in ",)" or char.isspace()):
                break
            self.position += 1
        return self.text[start : self.position]


# --- evaluation -------------------------------------------------------------------------


def evaluate(text: str, data: Any, context: Mapping[str, Any], random: Random) -> Any:
    """The value of the intrinsic call `text`. Raises ParseError or IntrinsicError."""
    return evaluate_call(parse(text), data, context, random)


def evaluate_call(call: Call, data: Any, context: Mapping[str, Any], random: Random) -> Any:
    """The value of a call `parse` returned. Raises IntrinsicError."""
    return _evaluate(call, data, context, random)


def _evaluate(node: Node, data: Any, context: Mapping[str, Any], random: Random) -> Any:
    if isinstance(node, Literal):
        return node.value
    if isinstance(node, PathRef):
        try:
            return paths.resolve(node.path, data, context)
        except PathError as failure:
            raise IntrinsicError(failure.message) from None
    args = [_evaluate(arg, data, context, random) for arg in node.args]
    if node.name == FORMAT:
        return _format(node, args)
    return FUNCTIONS[node.name](node.name, args, random)


Function: TypeAlias = Callable[[str, list[Any], Random], Any]


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _is_number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


def _integer(name: str, value: Any, what: str) -> int:
    if _is_int(value):
        return int(value)
    if _is_number(value) and float(value).is_integer():
        return int(value)
    raise IntrinsicError(f"{name}: {what} must be an integer, got {json.dumps(value)}")


def _rounded(name: str, value: Any, what: str) -> int:
    """A number rounded to the nearest integer, halves up, as AWS (Java's Math.round) does."""
    if _is_int(value):
        return int(value)
    if _is_number(value) and math.isfinite(value):
        return math.floor(float(value) + 0.5)
    raise IntrinsicError(f"{name}: {what} must be a number, got {json.dumps(value)}")


def _string(name: str, value: Any, what: str) -> str:
    if not isinstance(value, str):
        raise IntrinsicError(f"{name}: {what} must be a string, got {json.dumps(value)}")
    return value


def _array(name: str, value: Any, what: str = "the first argument") -> list[Any]:
    if not isinstance(value, list):
        raise IntrinsicError(f"{name}: {what} must be an array, got {json.dumps(value)}")
    return value


def _render(value: Any) -> str:
    """A `States.Format` argument as AWS writes it: `{a=1, b=[x, y]}` for objects."""
    if isinstance(value, str):
        return value
    if isinstance(value, list):
        return "[" + ", ".join(_render(item) for item in value) + "]"
    if isinstance(value, dict):
        return "{" + ", ".join(f"{key}={_render(item)}" for key, item in value.items()) + "}"
    return paths.to_json(value)


def _format(node: Call, args: list[Any]) -> str:
    name = node.name
    template = _string(name, args[0], "the template")
    first = node.args[0]
    escaped = isinstance(first, Literal) and first.raw is not None
    raw = first.raw if isinstance(first, Literal) and first.raw is not None else template
    pieces: list[str] = []
    values = iter(args[1:])
    position = 0
    while position < len(raw):
        char = raw[position]
        if escaped and char == "\\" and position + 1 < len(raw):
            pieces.append(raw[position + 1])
            position += 2
        elif raw.startswith("{}", position):
            value = next(values, _MISSING)
            if value is _MISSING:
                raise IntrinsicError(f"{name}: more '{{}}' placeholders than arguments")
            pieces.append(_render(value))
            position += 2
        else:
            pieces.append(char)
            position += 1
    if next(values, _MISSING) is not _MISSING:
        raise IntrinsicError(f"{name}: more arguments than '{{}}' placeholders")
    return "".join(pieces)


_MISSING: Final = object()


def _string_to_json(name: str, args: list[Any], _random: Random) -> Any:
    text = _string(name, args[0], "the argument")
    if not text.strip():
        return None
    try:
        return json.loads(text)
    except json.JSONDecodeError as error:
        raise IntrinsicError(f"{name}: the argument is not JSON ({error})") from None


def _json_to_string(_name: str, args: list[Any], _random: Random) -> Any:
    return paths.to_json(args[0])


def _array_of(_name: str, args: list[Any], _random: Random) -> Any:
    return list(args)


def _array_partition(name: str, args: list[Any], _random: Random) -> Any:
    items = _array(name, args[0])
    size = _integer(name, args[1], "the chunk size")
    if size <= 0:
        raise IntrinsicError(f"{name}: the chunk size must be positive, got {size}")
    return [items[start : start + size] for start in range(0, len(items), size)]


def _array_contains(name: str, args: list[Any], _random: Random) -> Any:
    return any(_same(item, args[1]) for item in _array(name, args[0]))


def _same(left: Any, right: Any) -> bool:
    if isinstance(left, bool) != isinstance(right, bool):
        return False
    return bool(left == right)


def _array_range(name: str, args: list[Any], _random: Random) -> Any:
    start = _integer(name, args[0], "the start")
    end = _integer(name, args[1], "the end")
    step = _integer(name, args[2], "the step")
    if step == 0:
        raise IntrinsicError(f"{name}: the step must not be 0")
    items = list(range(start, end + (1 if step > 0 else -1), step))
    if len(items) > MAX_ARRAY_RANGE_ITEMS:
        raise IntrinsicError(f"{name}: more than {MAX_ARRAY_RANGE_ITEMS} items")
    return items


def _array_get_item(name: str, args: list[Any], _random: Random) -> Any:
    items = _array(name, args[0])
    index = _integer(name, args[1], "the index")
    if not 0 <= index < len(items):
        raise IntrinsicError(f"{name}: index {index} is out of bounds for {len(items)} items")
    return items[index]


def _array_length(name: str, args: list[Any], _random: Random) -> Any:
    return len(_array(name, args[0]))


def _array_unique(name: str, args: list[Any], _random: Random) -> Any:
    unique: list[Any] = []
    for item in _array(name, args[0]):
        if not any(_same(item, seen) for seen in unique):
            unique.append(item)
    return unique


def _base64_encode(name: str, args: list[Any], _random: Random) -> Any:
    text = _string(name, args[0], "the argument")
    if len(text) > MAX_ENCODED_CHARACTERS:
        raise IntrinsicError(f"{name}: more than {MAX_ENCODED_CHARACTERS} characters")
    return base64.b64encode(text.encode()).decode("ascii")


def _base64_decode(name: str, args: list[Any], _random: Random) -> Any:
    text = _string(name, args[0], "the argument")
    if len(text) > MAX_ENCODED_CHARACTERS:
        raise IntrinsicError(f"{name}: more than {MAX_ENCODED_CHARACTERS} characters")
    try:
        return base64.b64decode(text, validate=True).decode()
    except (binascii.Error, UnicodeDecodeError) as error:
        raise IntrinsicError(f"{name}: the argument is not Base64 text ({error})") from None


def _hash(name: str, args: list[Any], _random: Random) -> Any:
    text = _string(name, args[0], "the data")
    algorithm = HASH_ALGORITHMS.get(_string(name, args[1], "the algorithm"))
    if algorithm is None:
        known = ", ".join(HASH_ALGORITHMS)
        raise IntrinsicError(f"{name}: the algorithm must be one of {known}, got {args[1]}")
    return hashlib.new(algorithm, text.encode(), usedforsecurity=False).hexdigest()


def _json_merge(name: str, args: list[Any], _random: Random) -> Any:
    left, right, deep = args
    if not isinstance(left, dict) or not isinstance(right, dict):
        raise IntrinsicError(f"{name}: the first two arguments must be objects")
    if deep is not False:
        raise IntrinsicError(f"{name}: only shallow merging is supported (pass false)")
    return {**left, **right}


def _math_random(name: str, args: list[Any], random: Random) -> Any:
    start = _rounded(name, args[0], "the start")
    end = _rounded(name, args[1], "the end")
    if end <= start:
        raise IntrinsicError(f"{name}: the end must be greater than the start")
    draw = seeded_random(_render(args[2])) if len(args) == 3 else random
    return start + math.floor(draw() * (end - start))


def _math_add(name: str, args: list[Any], _random: Random) -> Any:
    return _rounded(name, args[0], "the first argument") + _rounded(
        name, args[1], "the second argument"
    )


def _string_split(name: str, args: list[Any], _random: Random) -> Any:
    text = _string(name, args[0], "the string")
    delimiters = _string(name, args[1], "the delimiter")
    if not delimiters:
        return [text] if text else []
    pattern = "[" + re.escape(delimiters) + "]"
    return [piece for piece in re.split(pattern, text) if piece]


def _uuid(_name: str, _args: list[Any], random: Random) -> Any:
    bits = 0
    for _ in range(_UUID_WORDS):
        bits = (bits << _UUID_WORD_BITS) | int(random() * 2**_UUID_WORD_BITS)
    return str(uuid.UUID(int=bits, version=4))


ARITY: Final[Mapping[str, tuple[int, int | None]]] = {  # fewest and most arguments; None: any
    FORMAT: (1, None),
    "States.StringToJson": (1, 1),
    "States.JsonToString": (1, 1),
    "States.Array": (0, None),
    "States.ArrayPartition": (2, 2),
    "States.ArrayContains": (2, 2),
    "States.ArrayRange": (3, 3),
    "States.ArrayGetItem": (2, 2),
    "States.ArrayLength": (1, 1),
    "States.ArrayUnique": (1, 1),
    "States.Base64Encode": (1, 1),
    "States.Base64Decode": (1, 1),
    "States.Hash": (2, 2),
    "States.JsonMerge": (3, 3),
    "States.MathRandom": (2, 3),
    "States.MathAdd": (2, 2),
    "States.StringSplit": (2, 2),
    "States.UUID": (0, 0),
}
FUNCTIONS: Final[Mapping[str, Function]] = {
    "States.StringToJson": _string_to_json,
    "States.JsonToString": _json_to_string,
    "States.Array": _array_of,
    "States.ArrayPartition": _array_partition,
    "States.ArrayContains": _array_contains,
    "States.ArrayRange": _array_range,
    "States.ArrayGetItem": _array_get_item,
    "States.ArrayLength": _array_length,
    "States.ArrayUnique": _array_unique,
    "States.Base64Encode": _base64_encode,
    "States.Base64Decode": _base64_decode,
    "States.Hash": _hash,
    "States.JsonMerge": _json_merge,
    "States.MathRandom": _math_random,
    "States.MathAdd": _math_add,
    "States.StringSplit": _string_split,
    "States.UUID": _uuid,
}
