r"""JSONPath as ASL uses it: reference paths, `$$` context paths, and the indefinite paths
(wildcards, slices, filters, deep scan, unions) that AWS evaluates with Jayway JsonPath.

Supported steps: `.name`, `['name']` / `["name"]`, `[0]`, `[-1]` (from the end), `.*`, `[*]`,
and slices `[1:5]`, `[1:]`, `[:2]`, `[-2:]` (end exclusive, as in Python). A path without
wildcards, slices, filters, deep scans or unions is *definite*: reading it gives one value or
fails. A path with them gives the list of every match, possibly empty (`$.missing[1:]` is
`[]`, as AWS gives).

Deep scan `..name` (or `..['name']`) gives the member `name` of every object in the value, in
document order: an object's own member before its descendants' (`$..id`, `$..book[0]`); `..*`
gives every member and item, each container's children before their descendants', and must end
the path (what Jayway does with steps after it differs between its versions). Other steps
after `..` (`..[0]`, `..[?(...)]`) are not supported. A union of indexes `[0,2]` gives those
items in the order written, skipping the missing ones. A union of names `['a','b']` gives, as
Jayway does, one object holding the members present when it ends the path (`$['a','b']` is
`{"a": 1, "b": 2}`, a definite path), and the list of those members when more steps follow.

In a quoted name a backslash keeps the next character from closing the name and is kept
itself: AWS reads `$['a\"b']` as the name `a\"b`.

Three parsers, one per kind of field, and `stepd check` calls the same ones:
`parse` for a path (InputPath, OutputPath, `.$` values, Choice Variable),
`parse_reference` for a reference path, which names one value at most (SecondsPath,
TimestampPath, TimeoutSecondsPath, HeartbeatSecondsPath, ItemsPath), and `parse_result_path`
for where a result is written (ResultPath: a reference path into the data, not `$$`).
A reference path holds none of `*`, slices, filters, `..` or unions. Each raises ParseError.

Filters `[?(...)]` keep the array items (or the object itself) for which they hold, as Jayway
does; a path with one gives a list, as a wildcard does. A test is `@.name` (the item has the
member), `@.name op value` (op one of == != < <= > >=, the value a number, a quoted string,
true, false, null or a JSON array or object), or `@.name =~ /regex/flags`; tests combine with
`&&` and `||` (`&&` binds tighter) and parentheses. `!`, `in`, `$` inside a filter and other
Jayway operators are not supported.

`=~` matches the whole value (Java's `matches()`): a string as it is, a number as written, true
or false as words, an array when one of its items matches, and anything else (null, an
object, a missing member) as the empty string, as Jayway does. The flags are `i` (ignore
case), `m` and `s`. The regex runs in Python's `re` with `re.ASCII`, as close to Java's as that
gets: `\d`, `\w`, `\s` and `i` are ASCII-only in both. Java-only syntax (`\p{Alpha}`,
`(?<name>...)`, `\z`, `\Q...\E`, class intersection `[a-z&&[^e]]`) is refused at load, and a
few forms differ: `\Z` is the very end in Python (before a final newline too in Java), Python's
`(?P<name>...)` is accepted, and a number is matched as Python writes it (`10000000.0`, where
Java writes `1.0E+7`).

A path starting `$name` (a letter or `_` after the `$`) reads the variable `name`, which the
context object given to `resolve` carries in its `variables` attribute.
"""

from __future__ import annotations

import json
import re
import warnings
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
_COMMA: Final = re.compile(r"\s*,\s*(?=.)")
_INDEXES: Final = re.compile(r"-?[0-9]+(?:\s*,\s*-?[0-9]+)+")


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
class Indexes:
    """The `[0,2]` step: those items of an array, in the order written, the missing ones left
    out."""

    indexes: tuple[int, ...]

    def __repr__(self) -> str:
        return ",".join(str(index) for index in self.indexes)


@dataclass(frozen=True, kw_only=True)
class Names:
    """The `['a','b']` step: those members of an object. Ending a path (`merge`), one object
    holding the members present, as Jayway gives; before more steps, each member in turn."""

    names: tuple[str, ...]
    merge: bool

    def __repr__(self) -> str:
        return ",".join(f"'{name}'" for name in self.names)


@dataclass(frozen=True, kw_only=True)
class Scan:
    """The `..name` or `..*` step: `name` (or every member and item) at any depth, in
    document order."""

    target: str | Wildcard

    def __repr__(self) -> str:
        return f"..{self.target!r}"


@dataclass(frozen=True, kw_only=True)
class Test:
    """`@.name` (the member is there), `@.name op value`, or `@.name =~ /regex/`."""

    steps: tuple[Any, ...]  # the path after `@`
    op: str | None = None
    value: Any = None  # a literal, or a compiled pattern for `=~`

    def holds(self, item: Any) -> bool:
        found = _select(item, self.steps)
        if self.op == "=~":
            return _matches(self.value, found[0] if found else None)
        if not found:
            return False
        if self.op is None:
            return True
        return _compare(found[0], self.op, self.value)


@dataclass(frozen=True, kw_only=True)
class Logical:
    """Tests joined by `&&` (`all_of`) or `||`."""

    all_of: bool
    parts: tuple[Condition, ...]

    def holds(self, item: Any) -> bool:
        results = (part.holds(item) for part in self.parts)
        return all(results) if self.all_of else any(results)


Condition: TypeAlias = Test | Logical


@dataclass(frozen=True, kw_only=True)
class Filter:
    """The `[?(...)]` step: the items of an array (or the object itself) for which the
    condition holds."""

    text: str  # the expression inside `[?( )]`, as written
    condition: Condition

    def __repr__(self) -> str:
        return f"?({self.text})"

    def holds(self, item: Any) -> bool:
        return self.condition.holds(item)


Step: TypeAlias = str | int | Wildcard | Slice | Filter | Indexes | Names | Scan
_INDEFINITE: Final = (Wildcard, Slice, Filter, Indexes, Scan)


@dataclass(frozen=True, kw_only=True)
class Path:
    """A parsed path: its text as written and its steps after `$`."""

    text: str
    steps: tuple[Step, ...]
    variable: str | None = None  # `$name…` reads the variable `name`

    @property
    def is_definite(self) -> bool:
        return not any(
            isinstance(step, _INDEFINITE) or (isinstance(step, Names) and not step.merge)
            for step in self.steps
        )

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
    kinds = {type(step) for step in path.steps}
    for kind, what in _NOT_IN_REFERENCE:
        if kind in kinds:
            raise ParseError(f"Invalid path '{text}': a reference path cannot hold {what}")
    return path


_NOT_IN_REFERENCE: Final = (
    (Scan, "a deep scan ('..')"),
    (Filter, "a filter"),
    (Indexes, "a union"),
    (Names, "a union"),
    (Slice, "a slice"),
    (Wildcard, "a '*' wildcard"),
)


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
    for index, step in enumerate(steps[:-1]):
        if isinstance(step, Scan) and isinstance(step.target, Wildcard):
            raise ParseError(f"Invalid path '{text}': a deep scan '..*' must end the path")
        if isinstance(step, Names):
            steps[index] = Names(names=step.names, merge=False)
    return Path(text=text, steps=tuple(steps))


def _parse_dot(text: str, body: str, start: int, steps: list[Step]) -> int:
    if body.startswith(".", start):
        return _parse_scan(text, body, start + 1, steps)
    end = start
    while end < len(body) and body[end] not in ".[":
        end += 1
    name = body[start:end]
    if not name and body.startswith("[", start):  # `$.[0]` is `$[0]`, as Jayway reads it
        return start
    if not name:
        raise ParseError(f"Invalid path '{text}': empty name after '.'")
    steps.append(ALL if name == "*" else name)
    return end


def _parse_names(text: str, body: str, start: int, steps: list[Step]) -> int:
    """`['name']`, or the union `['a','b']` (`start` is at the first quote)."""
    name, end = _parse_quoted(text, body, start)
    names = [name]
    while (comma := _COMMA.match(body, end)) and body[comma.end() : comma.end() + 1] in "'\"":
        name, end = _parse_quoted(text, body, comma.end())
        names.append(name)
    if body[end : end + 1] != "]":
        raise ParseError(f"Invalid path '{text}': expected ']' after a quoted name")
    steps.append(name if len(names) == 1 else Names(names=tuple(names), merge=True))
    return end + 1


def _parse_scan(text: str, body: str, start: int, steps: list[Step]) -> int:
    """`..name`, `..['name']` or `..*` (`start` is just after the `..`)."""
    following: list[Step] = []
    if body.startswith("[", start):
        end = _parse_bracket(text, body, start + 1, following)
    elif start < len(body) and body[start] != ".":
        end = _parse_dot(text, body, start, following)
    else:
        end = start
    target = following[0] if len(following) == 1 else None
    if not isinstance(target, str | Wildcard):
        raise ParseError(f"Invalid path '{text}': a deep scan ('..') needs a name or '*' after it")
    steps.append(Scan(target=target))
    return end


def _parse_bracket(text: str, body: str, start: int, steps: list[Step]) -> int:
    if body.startswith("?(", start):
        close = _closing_parenthesis(body, start + 1)
        if close < 0 or body[close + 1 : close + 2] != "]":
            raise ParseError(f"Invalid path '{text}': a filter '[?(' needs ')]'")
        steps.append(_parse_filter(text, body[start + 2 : close]))
        return close + 2
    close = body.find("]", start)
    if close < 0:
        raise ParseError(f"Invalid path '{text}': missing ']'")
    if body[start] in "'\"":
        return _parse_names(text, body, start, steps)
    inner = body[start:close].strip()
    slice_match = _SLICE.fullmatch(inner)
    if inner == "*":
        steps.append(ALL)
    elif _INDEX.fullmatch(inner):
        steps.append(int(inner))
    elif _INDEXES.fullmatch(inner):
        steps.append(Indexes(indexes=tuple(int(index) for index in inner.split(","))))
    elif slice_match:
        low, high = slice_match.groups()
        steps.append(
            Slice(start=None if low is None else int(low), end=None if high is None else int(high))
        )
    else:
        raise ParseError(f"Invalid path '{text}': unsupported selector [{inner}]")
    return close + 1


_TEST_PATH: Final = re.compile(r"\s*@((?:\.[A-Za-z_][A-Za-z0-9_-]*|\[-?[0-9]+\]|\['[^']*'\])*)\s*")
_OPERATOR: Final = re.compile(r"(=~|==|!=|<=|>=|<|>)\s*")
_BLANKS: Final = re.compile(r"\s*")
_SHOWN_VALUE: Final = re.compile(r"[^\s)]+|.+")
_REGEX_FLAGS: Final = {"i": re.IGNORECASE, "m": re.MULTILINE, "s": re.DOTALL}
_COMPARISONS: Final = {
    "==": lambda a, b: a == b,
    "!=": lambda a, b: a != b,
    "<": lambda a, b: a < b,
    "<=": lambda a, b: a <= b,
    ">": lambda a, b: a > b,
    ">=": lambda a, b: a >= b,
}


def _closing_parenthesis(body: str, start: int) -> int:
    """Where the `(` at `start` closes, skipping quoted strings and `/regex/`, as Jayway
    does; -1 when it does not."""
    depth = 0
    position = start
    while position < len(body):
        char = body[position]
        if char in "'\"/":
            position = _closing_quote(body, position)
            if position < 0:
                return -1
        elif char == "(":
            depth += 1
        elif char == ")":
            depth -= 1
            if depth == 0:
                return position
        position += 1
    return -1


def _closing_quote(body: str, start: int) -> int:
    """Where the quote (or `/`) at `start` closes, a backslash escaping the next character."""
    position = start + 1
    while position < len(body):
        if body[position] == "\\":
            position += 2
        elif body[position] == body[start]:
            return position
        else:
            position += 1
    return -1


def _parse_filter(text: str, expression: str) -> Filter:
    """Tests (`@.name`, `@.name op literal`, `@.name =~ /regex/flags`) joined by `&&`, `||`
    and parentheses."""
    reader = _FilterReader(text=text, expression=expression)
    condition = reader.either()
    if reader.position != len(expression):
        raise reader.unsupported()
    return Filter(text=expression, condition=condition)


@dataclass(kw_only=True)
class _FilterReader:
    """Reads a filter expression, `&&` binding tighter than `||`, as Jayway's FilterCompiler."""

    text: str
    expression: str
    position: int = 0

    def unsupported(self) -> ParseError:
        return ParseError(f"Invalid path '{self.text}': unsupported filter [?({self.expression})]")

    def take(self, token: str) -> bool:
        self.skip_blanks()
        if not self.expression.startswith(token, self.position):
            return False
        self.position += len(token)
        self.skip_blanks()
        return True

    def skip_blanks(self) -> None:
        blanks = _BLANKS.match(self.expression, self.position)
        self.position = blanks.end() if blanks else self.position

    def either(self) -> Condition:
        parts = [self.both()]
        while self.take("||"):
            parts.append(self.both())
        return parts[0] if len(parts) == 1 else Logical(all_of=False, parts=tuple(parts))

    def both(self) -> Condition:
        parts = [self.operand()]
        while self.take("&&"):
            parts.append(self.operand())
        return parts[0] if len(parts) == 1 else Logical(all_of=True, parts=tuple(parts))

    def operand(self) -> Condition:
        if self.take("("):
            condition = self.either()
            if not self.take(")"):
                raise self.unsupported()
            return condition
        return self.test()

    def test(self) -> Test:
        path = _TEST_PATH.match(self.expression, self.position)
        if path is None:
            raise self.unsupported()
        steps = _parse(ROOT + path[1]).steps
        self.position = path.end()
        operator = _OPERATOR.match(self.expression, self.position)
        if operator is None:
            return Test(steps=steps)
        self.position = operator.end()
        value = self.pattern() if operator[1] == "=~" else self.literal()
        self.skip_blanks()
        return Test(steps=steps, op=operator[1], value=value)

    def literal(self) -> Any:
        """A number, 'string', "string", true, false, null, or a JSON array or object."""
        start = self.position
        if self.expression.startswith("'", start):
            end = _closing_quote(self.expression, start)
            if end >= 0:
                self.position = end + 1
                return self.expression[start + 1 : end]
        else:
            try:
                value, self.position = json.JSONDecoder().raw_decode(self.expression, start)
            except ValueError:
                pass
            else:
                return value
        shown = _SHOWN_VALUE.match(self.expression, start)
        raise ParseError(
            f"Invalid path '{self.text}': unsupported value {shown[0] if shown else ''} "
            f"in filter [?({self.expression})]"
        )

    def pattern(self) -> re.Pattern[str]:
        """`/regex/flags`, compiled as close to Java's Pattern as Python's `re` gets."""
        start = self.position
        end = (
            _closing_quote(self.expression, start) if self.expression.startswith("/", start) else -1
        )
        if end < 0:
            raise self.unsupported()
        flags_end = end + 1
        while self.expression[flags_end : flags_end + 1].isalpha():
            flags_end += 1
        flags = re.ASCII
        for flag in self.expression[end + 1 : flags_end]:
            if flag not in _REGEX_FLAGS:
                raise ParseError(
                    f"Invalid path '{self.text}': unsupported regex flag '{flag}' "
                    f"in filter [?({self.expression})]"
                )
            flags |= _REGEX_FLAGS[flag]
        self.position = flags_end
        source = self.expression[start + 1 : end]
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("error")  # Python warns of Java's `[a-z&&[^e]]`
                return re.compile(source, flags)
        except (re.error, FutureWarning, DeprecationWarning) as error:
            raise ParseError(
                f"Invalid path '{self.text}': unsupported regex /{source}/ "
                f"in filter [?({self.expression})]: {error}"
            ) from None


def _matches(pattern: re.Pattern[str], value: Any) -> bool:
    """Jayway's `=~`: the whole text of a string, number or boolean, any item of an array,
    and the empty string for anything else."""
    if isinstance(value, list):
        return any(pattern.fullmatch(_regex_input(item)) is not None for item in value)
    return pattern.fullmatch(_regex_input(value)) is not None


def _regex_input(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, str | int | float):
        return str(value)
    return ""


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
    if isinstance(step, Scan):
        return _scan(value, step.target)
    return _union_children(value, step)


def _union_children(value: Any, step: Indexes | Names | int) -> list[Any]:
    if isinstance(step, Indexes):
        if not isinstance(value, list):
            return []
        return [value[index] for index in step.indexes if -len(value) <= index < len(value)]
    if isinstance(step, Names):
        if not isinstance(value, Mapping):
            return []
        if step.merge:
            return [{name: value[name] for name in step.names if name in value}]
        return [value[name] for name in step.names if name in value]
    if isinstance(value, list) and -len(value) <= step < len(value):
        return [value[step]]
    return []


def _scan(value: Any, target: str | Wildcard) -> list[Any]:
    """Jayway's deep scan: visiting containers in document order, each object's member
    `target` (or each container's members and items for `*`) before its descendants'."""
    found: list[Any] = []
    pending = [value]
    while pending:
        node = pending.pop()
        if isinstance(node, Mapping):
            children = list(node.values())
            if isinstance(target, Wildcard):
                found.extend(children)
            elif target in node:
                found.append(node[target])
        elif isinstance(node, list):
            children = node
            if isinstance(target, Wildcard):
                found.extend(children)
        else:
            continue
        pending.extend(reversed(children))
    return found


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
