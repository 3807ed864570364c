"""JSONPath as ASL uses it: reference paths, `$$` context paths, and `[*]` wildcards.

Supported steps: `.name`, `['name']` / `["name"]`, `[0]`, `[-1]` (from the end), `.*`, `[*]`,
and slices `[1:5]`, `[1:]`, `[:2]`, `[-2:]` (end exclusive, as in Python). A path without
wildcards or slices is *definite*: reading it gives one value or fails. A path with them gives
the list of every match, possibly empty (`$.missing[1:]` is `[]`, as AWS gives).

In a quoted name a backslash keeps the next character from closing the name and is kept
itself: AWS reads `$['a\"b']` as the name `a\"b`.

Three parsers, one per kind of field, and `stepd check` calls the same ones:
`parse` for a path (InputPath, OutputPath, `.$` values, Choice Variable),
`parse_reference` for a reference path, which names one value at most (SecondsPath,
TimestampPath, TimeoutSecondsPath, HeartbeatSecondsPath, ItemsPath), and `parse_result_path`
for where a result is written (ResultPath: a reference path into the data, not `$$`).
Each raises ParseError. Filters `[?(@.name)]` and `[?(@.name op value)]` (op one of == != <
<= > >=, the value a number, a quoted string, true, false or null) keep the array items for
which they hold, as Jayway does; a path with one gives a list, as a wildcard does. Deep scan
(`..`), slice steps (`[::2]`), unions and compound filters (`&&`, `||`) are not supported.
A path starting `$name` (a letter or `_` after the `$`) reads the variable `name`, which the
context object given to `resolve` carries in its `variables` attribute.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from dataclasses import dataclass
from functools import lru_cache
from typing import Any, Final, TypeAlias

from stepd.asl.decisions import ContextObject
from stepd.errors import ParseError, PathError, ResultPathMatchError

ROOT: Final = "$"
CONTEXT_ROOT: Final = "$$"
_INDEX: Final = re.compile(r"-?[0-9]+")
_VARIABLE: Final = re.compile(r"\$([A-Za-z_][A-Za-z0-9_]*)")
_SLICE: Final = re.compile(r"(-?[0-9]+)?:(-?[0-9]+)?")


class Wildcard:
    """The `*` step: every member of an object or every item of an array."""

    def __repr__(self) -> str:
        return "*"


ALL: Final = Wildcard()


@dataclass(frozen=True, kw_only=True)
class Slice:
    """The `[start:end]` step: the items of an array from start up to (not including) end."""

    start: int | None
    end: int | None

    def __repr__(self) -> str:
        start = "" if self.start is None else str(self.start)
        end = "" if self.end is None else str(self.end)
        return f"{start}:{end}"


@dataclass(frozen=True, kw_only=True)
class Filter:
    """The `[?(@.name op value)]` step: the items of an array (or the object itself) for which
    the comparison holds; `[?(@.name)]` keeps the ones that have the member."""

    text: str  # the expression inside `[?( )]`, as written
    steps: tuple[Any, ...]  # the path after `@`
    op: str | None = None
    value: Any = None

    def __repr__(self) -> str:
        return f"?({self.text})"

    def holds(self, item: Any) -> bool:
        found = _select(item, self.steps)
        if not found:
            return False
        if self.op is None:
            return True
        return _compare(found[0], self.op, self.value)


Step: TypeAlias = str | int | Wildcard | Slice | Filter


@dataclass(frozen=True, kw_only=True)
class Path:
    """A parsed path: its text as written and its steps after `$`."""

    text: str
    steps: tuple[Step, ...]
    variable: str | None = None  # `$name…` reads the variable `name`

    @property
    def is_definite(self) -> bool:
        return not any(isinstance(step, Wildcard | Slice | Filter) for step in self.steps)

    @property
    def normalized(self) -> str:
        """Bracket notation, as Jayway JSONPath prints it: `$['a'][0]`."""
        parts = [ROOT]
        for step in self.steps:
            if isinstance(step, str):
                parts.append(f"['{step}']")
            else:
                parts.append(f"[{step!r}]")
        return "".join(parts)


def to_json(value: Any) -> str:
    """Compact JSON as AWS writes it (Jackson), in `States.JsonToString` and in error causes:
    no spaces, and characters beyond ASCII kept as they are (`é`, not `\\u00e9`)."""
    return json.dumps(value, separators=(",", ":"), ensure_ascii=False)


def is_context_path(text: str) -> bool:
    return text.startswith(CONTEXT_ROOT)


def parse(text: Any) -> Path:
    """Parse a path: `$…`, or a `$$…` context path. Raises ParseError."""
    if not isinstance(text, str):
        raise ParseError(f"Invalid path {_show(text)}: a path is a string starting with '$'")
    return _parse(text)


def parse_reference(text: Any) -> Path:
    """Parse a reference path: a path without `*`, naming one value at most."""
    path = parse(text)
    if not path.is_definite:
        kinds = {type(step) for step in path.steps}
        what = "a filter" if Filter in kinds else "a slice" if Slice in kinds else "a '*' wildcard"
        raise ParseError(f"Invalid path '{text}': a reference path cannot hold {what}")
    return path


def parse_result_path(text: Any) -> Path:
    """Parse a ResultPath: a reference path into the state's data (`$$` is read-only)."""
    path = parse_reference(text)
    if is_context_path(path.text):
        raise ParseError(f"Invalid path '{text}': a ResultPath cannot write to the context object")
    return path


def _show(value: Any) -> str:
    try:
        return to_json(value)
    except (TypeError, ValueError):
        return repr(value)


@lru_cache(maxsize=1024)
def _parse(text: str) -> Path:
    variable = _VARIABLE.match(text)
    if variable is not None:
        rest = _parse(ROOT + text[variable.end() :])
        return Path(text=text, steps=rest.steps, variable=variable[1])
    body = text[1:] if is_context_path(text) else text
    if not body.startswith(ROOT):
        raise ParseError(f"Invalid path '{text}': a path must start with '$'")
    steps: list[Step] = []
    position = 1
    while position < len(body):
        char = body[position]
        if char == ".":
            position = _parse_dot(text, body, position + 1, steps)
        elif char == "[":
            position = _parse_bracket(text, body, position + 1, steps)
        else:
            raise ParseError(f"Invalid path '{text}': unexpected '{char}' at {position}")
    return Path(text=text, steps=tuple(steps))


def _parse_dot(text: str, body: str, start: int, steps: list[Step]) -> int:
    end = start
    while end < len(body) and body[end] not in ".[":
        end += 1
    name = body[start:end]
    if body.startswith(".", start):
        raise ParseError(f"Invalid path '{text}': deep scan ('..') is not supported")
    if not name and body.startswith("[", start):  # `$.[0]` is `$[0]`, as Jayway reads it
        return start
    if not name:
        raise ParseError(f"Invalid path '{text}': empty name after '.'")
    steps.append(ALL if name == "*" else name)
    return end


def _parse_bracket(text: str, body: str, start: int, steps: list[Step]) -> int:
    if body.startswith("?(", start):
        close = body.find(")]", start)
        if close < 0:
            raise ParseError(f"Invalid path '{text}': a filter '[?(' needs ')]'")
        steps.append(_parse_filter(text, body[start + 2 : close]))
        return close + 2
    close = body.find("]", start)
    if close < 0:
        raise ParseError(f"Invalid path '{text}': missing ']'")
    if body[start] in "'\"":
        name, end = _parse_quoted(text, body, start)
        if body[end : end + 1] != "]":
            raise ParseError(f"Invalid path '{text}': expected ']' after a quoted name")
        steps.append(name)
        return end + 1
    inner = body[start:close].strip()
    slice_match = _SLICE.fullmatch(inner)
    if inner == "*":
        steps.append(ALL)
    elif _INDEX.fullmatch(inner):
        steps.append(int(inner))
    elif slice_match:
        low, high = slice_match.groups()
        steps.append(
            Slice(start=None if low is None else int(low), end=None if high is None else int(high))
        )
    else:
        raise ParseError(f"Invalid path '{text}': unsupported selector [{inner}]")
    return close + 1


_FILTER: Final = re.compile(
    r"\s*@((?:\.[A-Za-z_][A-Za-z0-9_-]*|\[-?[0-9]+\]|\['[^']*'\])*)\s*"
    r"(?:(==|!=|<=|>=|<|>)\s*(.+?))?\s*"
)
_COMPARISONS: Final = {
    "==": lambda a, b: a == b,
    "!=": lambda a, b: a != b,
    "<": lambda a, b: a < b,
    "<=": lambda a, b: a <= b,
    ">": lambda a, b: a > b,
    ">=": lambda a, b: a >= b,
}


def _parse_filter(text: str, expression: str) -> Filter:
    """`@.name`, `@.name op literal` (a number, a 'string' or "string", true, false, null)."""
    match = _FILTER.fullmatch(expression)
    if match is None:
        raise ParseError(f"Invalid path '{text}': unsupported filter [?({expression})]")
    steps = _parse(ROOT + match[1]).steps
    if match[2] is None:
        return Filter(text=expression, steps=steps)
    literal = match[3]
    if literal.startswith("'") and literal.endswith("'") and len(literal) > 1:
        value: Any = literal[1:-1]
    else:
        try:
            value = json.loads(literal)
        except ValueError:
            raise ParseError(
                f"Invalid path '{text}': unsupported value {literal} in filter [?({expression})]"
            ) from None
    return Filter(text=expression, steps=steps, op=match[2], value=value)


def _compare(left: Any, op: str, right: Any) -> bool:
    """Jayway's comparison: numbers with numbers, strings with strings, == across types is
    false."""
    numbers = all(isinstance(v, int | float) and not isinstance(v, bool) for v in (left, right))
    same_kind = numbers or type(left) is type(right)
    if not same_kind:
        return op == "!="
    if op in {"==", "!="} or numbers or isinstance(left, str):
        try:
            return bool(_COMPARISONS[op](left, right))
        except TypeError:
            return False
    return False


def _parse_quoted(text: str, body: str, start: int) -> tuple[str, int]:
    quote = body[start]
    chars: list[str] = []
    position = start + 1
    while position < len(body):
        char = body[position]
        if char == "\\" and position + 1 < len(body):
            chars.append(body[position : position + 2])
            position += 2
        elif char == quote:
            return "".join(chars), position + 1
        else:
            chars.append(char)
            position += 1
    raise ParseError(f"Invalid path '{text}': unterminated quoted name")


def no_results(path: Path, data: Any = None) -> PathError:
    """Jayway's words: a property missing before the last step is a "Missing property"."""
    missing = _missing_property(data, path.steps[:-1])
    if missing is not None:
        shown = Path(text=path.text, steps=path.steps[: missing + 1]).normalized
        return PathError(f"Invalid path '{path.text}' : Missing property in path {shown}")
    return PathError(f"Invalid path '{path.text}' : No results for path: {path.normalized}")


def _missing_property(data: Any, steps: tuple[Step, ...]) -> int | None:
    """The index of the first name step an object lacks, following definite `steps`."""
    value = data
    for index, step in enumerate(steps):
        if isinstance(step, str) and isinstance(value, Mapping) and step not in value:
            return index
        found = _children(value, step)
        if not found:
            return None
        value = found[0]
    return None


def read(data: Any, text: str) -> Any:
    """The value at a `$` path; a list of matches for a path with wildcards.

    Raises ParseError for a path that cannot be parsed and PathError when a definite path
    has no value.
    """
    return _read(data, parse(text))


def resolve(text: str, data: Any, context: Mapping[str, Any]) -> Any:
    """Read a path from the data, or from the context object when it starts with `$$`."""
    return _read(_source(parse(text), data, context), parse(text))


def resolve_reference(text: str, data: Any, context: Mapping[str, Any]) -> Any:
    """Read a reference path (no wildcards) from the data, or from the context object."""
    path = parse_reference(text)
    return _read(_source(path, data, context), path)


def _source(path: Path, data: Any, context: Mapping[str, Any]) -> Any:
    """What `path` reads: the data, the context object, or one of the context's variables."""
    if path.variable is None:
        if not is_context_path(path.text):
            return data
        return context.complete() if isinstance(context, ContextObject) else context
    variables: Mapping[str, Any] = getattr(context, "variables", {})
    if path.variable not in variables:
        raise PathError(f"Invalid path '{path.text}': the variable '{path.variable}' is not set")
    return variables[path.variable]


def exists(data: Any, text: str) -> bool:
    return bool(_select(data, parse(text).steps))


def _read(data: Any, path: Path) -> Any:
    matches = _select(data, path.steps)
    if path.is_definite:
        if not matches:
            raise no_results(path, data)
        return matches[0]
    return matches


def _select(data: Any, steps: tuple[Step, ...]) -> list[Any]:
    current = [data]
    for step in steps:
        following: list[Any] = []
        for value in current:
            following.extend(_children(value, step))
        current = following
    return current


def _children(value: Any, step: Step) -> list[Any]:
    if isinstance(step, Wildcard):
        if isinstance(value, Mapping):
            return list(value.values())
        if isinstance(value, list):
            return list(value)
        return []
    if isinstance(step, str):
        if isinstance(value, Mapping) and step in value:
            return [value[step]]
        return []
    if isinstance(step, Slice):
        return list(value[step.start : step.end]) if isinstance(value, list) else []
    if isinstance(step, Filter):
        items = value if isinstance(value, list) else [value] if isinstance(value, Mapping) else []
        return [item for item in items if step.holds(item)]
    if isinstance(value, list) and -len(value) <= step < len(value):
        return [value[step]]
    return []


def write(data: Any, text: str, value: Any) -> Any:
    """A copy of `data` with `value` placed at the reference path `text`.

    Missing intermediate objects are created. Raises ParseError for a path that is not a
    ResultPath, and ResultPathMatchError when the path runs into something that is not an
    object (or, for an index, not an array with that item); the data given is never changed.
    """
    path = parse_result_path(text)
    if not path.steps:
        return value
    try:
        return _write(data, path.steps, value)
    except ResultPathMatchError:  # _write's names no path and no input
        raise ResultPathMatchError(
            f"Unable to apply ReferencePath {text} to input {to_json(data)}"
        ) from None


def _write(data: Any, steps: tuple[Step, ...], value: Any) -> Any:
    step, rest = steps[0], steps[1:]
    if isinstance(step, str) and isinstance(data, Mapping):
        copy = dict(data)
        copy[step] = _write(copy.get(step, {}), rest, value) if rest else value
        return copy
    if isinstance(step, int) and isinstance(data, list) and -len(data) <= step < len(data):
        items = list(data)
        items[step] = _write(items[step], rest, value) if rest else value
        return items
    raise ResultPathMatchError
