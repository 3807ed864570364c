"""Choice rules: comparisons, type tests and `And`/`Or`/`Not`.

A comparison between values of different types is false. A `Variable` (or a `…Path`
operand) that matches nothing is a States.Runtime failure; only `IsPresent` tolerates it.

What can be known without data is checked by `operator_of`, `nested_rules`, `parse_variable`
and `parse_operand`, which raise ParseError; `stepd check` calls the same functions.
"""

from __future__ import annotations

import operator
import re
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any, Final

from stepd.asl import paths
from stepd.asl.timestamps import is_timestamp, parse_literal, parse_timestamp
from stepd.errors import InvalidTimestampError, ParseError, PathError, StatesRuntimeError

if TYPE_CHECKING:
    from collections.abc import Callable

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


def _is_number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


_TYPE_TESTS: Final[Mapping[str, Callable[[Any], bool]]] = {
    "IsNull": lambda value: value is None,
    "IsNumeric": _is_number,
    "IsString": lambda value: isinstance(value, str),
    "IsBoolean": lambda value: isinstance(value, bool),
    "IsTimestamp": is_timestamp,
}
COMBINATORS: Final = frozenset({"And", "Or", "Not"})
OPERATORS: Final = frozenset(
    {
        *(
            f"{kind}{relation}{path}"
            for kind in ("String", "Numeric", "Timestamp")
            for relation in _RELATIONS
            for path in ("", "Path")
        ),
        "StringMatches",
        "BooleanEquals",
        "BooleanEqualsPath",
        "IsPresent",
        *_TYPE_TESTS,
    }
)


def matches(rule: Any, data: Any, context: Mapping[str, Any]) -> bool:
    """Whether `rule` holds for `data`.

    Raises ParseError for a rule `stepd check` refuses, and StatesRuntimeError for a
    Variable or `…Path` operand that matches nothing.
    """
    name = operator_of(rule)
    if name in COMBINATORS:
        rules = nested_rules(rule, name)
        if name == "And":
            return all(matches(inner, data, context) for inner in rules)
        if name == "Or":
            return any(matches(inner, data, context) for inner in rules)
        return not matches(rules[0], data, context)
    variable = parse_variable(rule).text
    expected = rule[name]
    parse_operand(name, expected)
    if name == "IsPresent":
        return bool(_present(variable, data, context) == expected)
    actual = _value(variable, data, context)
    if name in _TYPE_TESTS:
        return bool(_TYPE_TESTS[name](actual) == expected)
    if name.endswith("Path"):
        expected = _value(expected, data, context)
    if name in {"BooleanEquals", "BooleanEqualsPath"}:
        return isinstance(actual, bool) and isinstance(expected, bool) and actual == expected
    if name == "StringMatches":
        return isinstance(actual, str) and isinstance(expected, str) and _glob(expected, actual)
    comparison = _COMPARISON.fullmatch(name)
    if comparison is None:  # pragma: no cover - operator_of only returns known names
        raise StatesRuntimeError(f"Unknown choice operator {name}")
    return _compare(comparison["kind"], _RELATIONS[comparison["relation"]], actual, expected)


def operators_in(rule: Mapping[str, Any]) -> list[str]:
    """The fields of a Choice rule that are operators: combinators and comparisons."""
    return [key for key in rule if key in COMBINATORS or key in OPERATORS]


def operator_of(rule: Any) -> str:
    """The one operator of a Choice rule. Raises ParseError."""
    if not isinstance(rule, Mapping):
        raise ParseError("A Choice rule must be an object")
    names = operators_in(rule)
    if len(names) != 1:
        raise ParseError(f"A Choice rule needs exactly one comparison operator, not {len(names)}")
    return names[0]


def nested_rules(rule: Mapping[str, Any], combinator: str) -> list[Any]:
    """The rules inside `And` / `Or` (a non-empty list) or `Not` (one rule)."""
    operand = rule[combinator]
    if combinator == "Not":
        return [operand]
    if not isinstance(operand, list) or not operand:
        raise ParseError(f'Field "{combinator}" must be a non-empty list of rules')
    return operand


def parse_variable(rule: Mapping[str, Any]) -> paths.Path:
    """The path a comparison reads. Raises ParseError."""
    if "Variable" not in rule:
        raise ParseError('A comparison needs a "Variable" field')
    return paths.parse(rule["Variable"])


def parse_operand(name: str, value: Any) -> None:
    """Check the operand of a comparison: its type, or the path or timestamp it holds.

    Raises ParseError.
    """
    if name.endswith("Path"):
        paths.parse(value)
    elif name.startswith("Timestamp"):
        parse_literal(value)
    elif name.startswith("String") and not isinstance(value, str):
        raise ParseError(f'Field "{name}" must be a string')
    elif name.startswith("Numeric") and not _is_number(value):
        raise ParseError(f'Field "{name}" must be a number')
    elif name.startswith(("Boolean", "Is")) and not isinstance(value, bool):
        raise ParseError(f'Field "{name}" must be true or false')


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
