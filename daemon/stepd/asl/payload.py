"""Payload templates: `Parameters` and `ResultSelector`.

A key ending in `.$` takes its value from a path (`$…` into the data, `$$…` into the
context object) or an intrinsic call, and loses the `.$`; every other value is copied.
Objects and arrays are walked to any depth.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Final

from stepd.asl import intrinsics, paths
from stepd.errors import PathError, StatesRuntimeError

DYNAMIC_SUFFIX: Final = ".$"


def render(template: Any, data: Any, context: Mapping[str, Any], random: intrinsics.Random) -> Any:
    """The payload `template` describes for `data`. Raises StatesRuntimeError."""
    if isinstance(template, Mapping):
        rendered: dict[str, Any] = {}
        for key, value in template.items():
            if key.endswith(DYNAMIC_SUFFIX):
                name = key.removesuffix(DYNAMIC_SUFFIX)
                result = _dynamic(key, value, data, context, random)
            else:
                name = key
                result = render(value, data, context, random)
            if name in rendered:
                raise StatesRuntimeError(f"The field '{name}' is given more than once")
            rendered[name] = result
        return rendered
    if isinstance(template, list):
        return [render(item, data, context, random) for item in template]
    return template


def _dynamic(
    key: str, expression: Any, data: Any, context: Mapping[str, Any], random: intrinsics.Random
) -> Any:
    if not isinstance(expression, str):
        raise StatesRuntimeError(f"The value of the field '{key}' must be a path or intrinsic")
    if intrinsics.is_intrinsic(expression):
        return intrinsics.evaluate(expression, data, context, random)
    try:
        return paths.resolve(expression, data, context)
    except PathError:
        source = context if paths.is_context_path(expression) else data
        raise StatesRuntimeError(
            f"The JSONPath '{expression}' specified for the field '{key}' "
            f"could not be found in the input '{paths.to_json(source)}'"
        ) from None
