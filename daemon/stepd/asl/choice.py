"""Choice rules: comparisons, type tests and `And`/`Or`/`Not`.

A comparison between values of different types is false. A `Variable` (or a `…Path`
operand) that matches nothing is a States.Runtime failure; only `IsPresent` tolerates it.
"""

from __future__ import annotations

import operator
import re
from typing import TYPE_CHECKING, Any, Final

from stepd.asl import paths
from stepd.asl.timestamps import is_timestamp, parse_timestamp
from stepd.errors import InvalidTimestampError, PathError, StatesRuntimeError

if TYPE_CHECKING:
    from collections.abc import Callable, Mapping

_COMPARISON: Final = re.compile(
    r"(?P<kind>String|Numeric|Timestamp)"
    r"(?P<relation>Equals|LessThan|GreaterThan|LessThanEquals|GreaterThanEquals)"
    r"(?P<path>Path)?"
)
_RELATIONS: Final[Mapping[str, Callable[[Any, Any], bool]]] = {
    "Equals": operator.eq,
    "LessThan": operator.lt,
    "GreaterThan": operator.gt,
    "LessThanEquals": operator.le,
    "GreaterThanEquals": operator.ge,
}
_NOT_OPERATORS: Final = frozenset({"Variable", "Next", "Comment"})


def _is_number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


_TYPE_TESTS: Final[Mapping[str, Callable[[Any], bool]]] = {
    "IsNull": lambda value: value is None,
    "IsNumeric": _is_number,
    "IsString": lambda value: isinstance(value, str),
    "IsBoolean": lambda value: isinstance(value, bool),
    "IsTimestamp": is_timestamp,
}


def matches(rule: Mapping[str, Any], data: Any, context: Mapping[str, Any]) -> bool:  # noqa: C901 - one branch per kind of rule, in the order the spec lists them
    """Whether `rule` holds for `data`. Raises StatesRuntimeError for a missing Variable."""
    if "And" in rule:
        return all(matches(inner, data, context) for inner in rule["And"])
    if "Or" in rule:
        return any(matches(inner, data, context) for inner in rule["Or"])
    if "Not" in rule:
        return not matches(rule["Not"], data, context)
    name = _operator(rule)
    variable = rule.get("Variable")
    if not isinstance(variable, str):
        raise StatesRuntimeError("A choice rule has no Variable")
    expected = rule[name]
    if name == "IsPresent":
        return bool(_present(variable, data, context) == expected)
    actual = _value(variable, data, context)
    if name in _TYPE_TESTS:
        return bool(_TYPE_TESTS[name](actual) == expected)
    if name.endswith("Path"):
        if not isinstance(expected, str):
            raise StatesRuntimeError(f"The value of {name} must be a path")
        expected = _value(expected, data, context)
    if name in {"BooleanEquals", "BooleanEqualsPath"}:
        return isinstance(actual, bool) and isinstance(expected, bool) and actual == expected
    if name == "StringMatches":
        return isinstance(actual, str) and isinstance(expected, str) and _glob(expected, actual)
    comparison = _COMPARISON.fullmatch(name)
    if comparison is None:  # pragma: no cover - _operator only returns known names
        raise StatesRuntimeError(f"Unknown choice operator {name}")
    return _compare(comparison["kind"], _RELATIONS[comparison["relation"]], actual, expected)


def _operator(rule: Mapping[str, Any]) -> str:
    names = [key for key in rule if key not in _NOT_OPERATORS]
    known = [name for name in names if _is_operator(name)]
    if len(known) != 1:
        raise StatesRuntimeError(f"A choice rule needs exactly one operator, found {names}")
    return known[0]


def _is_operator(name: str) -> bool:
    return (
        name in _TYPE_TESTS
        or name in {"IsPresent", "BooleanEquals", "BooleanEqualsPath", "StringMatches"}
        or _COMPARISON.fullmatch(name) is not None
    )


def _invalid_path(path: str) -> StatesRuntimeError:
    return StatesRuntimeError(
        f"Invalid path '{path}': The choice state's condition path references an invalid value."
    )


def _value(path: str, data: Any, context: Mapping[str, Any]) -> Any:
    try:
        return paths.resolve(path, data, context)
    except PathError:
        raise _invalid_path(path) from None


def _present(path: str, data: Any, context: Mapping[str, Any]) -> bool:
    return paths.exists(context if paths.is_context_path(path) else data, path)


def _compare(kind: str, relation: Callable[[Any, Any], bool], actual: Any, expected: Any) -> bool:
    if kind == "String":
        both = isinstance(actual, str) and isinstance(expected, str)
        return both and relation(actual, expected)
    if kind == "Numeric":
        both = _is_number(actual) and _is_number(expected)
        return both and relation(actual, expected)
    if not isinstance(actual, str) or not isinstance(expected, str):
        return False
    try:
        return relation(parse_timestamp(actual), parse_timestamp(expected))
    except InvalidTimestampError:
        return False


def _glob(pattern: str, text: str) -> bool:
    """`StringMatches`: `*` matches any run of characters, `\\*` a literal star."""
    parts: list[str] = []
    position = 0
    while position < len(pattern):
        char = pattern[position]
        if char == "\\" and position + 1 < len(pattern):
            parts.append(re.escape(pattern[position + 1]))
            position += 2
            continue
        parts.append(".*" if char == "*" else re.escape(char))
        position += 1
    return re.fullmatch("".join(parts), text, re.DOTALL) is not None
