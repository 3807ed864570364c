"""Payload templates: `Parameters` and `ResultSelector`.

A key ending in `.$` takes its value from a path (`$…` into the data, `$$…` into the
context object) or an intrinsic call, and loses the `.$`; every other value is copied.
Objects and arrays are walked to any depth.

`parse_expression` reads what a `.$` key (or a Fail state's ErrorPath / CausePath) holds and
`repeated_keys` finds keys that fill the same field twice; `stepd check` calls both, so a
template it accepts renders without a ParseError.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Final, TypeAlias

from stepd.asl import intrinsics, paths
from stepd.errors import ParseError, PathError, StatesRuntimeError

DYNAMIC_SUFFIX: Final = ".$"

Expression: TypeAlias = paths.Path | intrinsics.Call


def parse_expression(text: Any) -> Expression:
    """The path or intrinsic function call `text` holds. Raises ParseError."""
    if isinstance(text, str) and intrinsics.is_intrinsic(text):
        return intrinsics.parse(text)
    if not isinstance(text, str):
        raise ParseError(f"{paths.to_json(text)} is not a path or an intrinsic function call")
    return paths.parse(text)


def evaluate(text: Any, data: Any, context: Mapping[str, Any], random: intrinsics.Random) -> Any:
    """The value of the path or intrinsic call `text`.

    Raises ParseError, PathError (a path with no value) or IntrinsicError.
    """
    expression = parse_expression(text)
    if isinstance(expression, intrinsics.Call):
        return intrinsics.evaluate_call(expression, data, context, random)
    return paths.resolve(expression.text, data, context)


def field_name(key: str) -> str:
    """The field a template key fills: `a` and `a.$` both fill `a`."""
    return key.removesuffix(DYNAMIC_SUFFIX)


def repeated_keys(template: Mapping[str, Any]) -> list[str]:
    """The keys of one template object that fill a field an earlier key already fills."""
    seen: set[str] = set()
    repeated: list[str] = []
    for key in template:
        name = field_name(key)
        if name in seen:
            repeated.append(key)
        seen.add(name)
    return repeated


def render(template: Any, data: Any, context: Mapping[str, Any], random: intrinsics.Random) -> Any:
    """The payload `template` describes for `data`. Raises StatesRuntimeError."""
    if isinstance(template, Mapping):
        repeated = repeated_keys(template)
        if repeated:
            raise ParseError(f"The field '{field_name(repeated[0])}' is given more than once")
        rendered: dict[str, Any] = {}
        for key, value in template.items():
            if key.endswith(DYNAMIC_SUFFIX):
                rendered[field_name(key)] = _dynamic(key, value, data, context, random)
            else:
                rendered[key] = render(value, data, context, random)
        return rendered
    if isinstance(template, list):
        return [render(item, data, context, random) for item in template]
    return template


def _dynamic(
    key: str, expression: Any, data: Any, context: Mapping[str, Any], random: intrinsics.Random
) -> Any:
    try:
        return evaluate(expression, data, context, random)
    except PathError:
        source = context if paths.is_context_path(expression) else data
        raise StatesRuntimeError(
            f"The JSONPath '{expression}' specified for the field '{key}' "
            f"could not be found in the input '{paths.to_json(source)}'"
        ) from None
