"""JSONata as Step Functions runs it: `{% expression %}` strings, `$states`, and AWS's functions.

Expressions are compiled once and cached (`compiled`). An evaluation sees `$states` (`input`,
`context`, and `result` or `errorOutput` where the field allows), the execution's variables
as `$name`, and AWS's functions: `$partition`, `$range`, `$hash`, `$random`, `$uuid` and
`$parse`; `$eval` is not available. `$now()` and `$millis()` give the instant the caller
passes in, and `$random()` / `$uuid()` draw from the caller's seeded generator, so a state
evaluated again gives the same values. Nothing here reads a clock or draws randomness.

Any failure is a QueryEvaluationError whose message is the cause AWS gives ("The JSONata
expression '…' specified for the field '…' …"). The library's stray `print()` calls are
kept off stdout. Where the library (jsonata-python) differs from JSONata 2.0.6, the version
AWS runs, its functions are replaced here: numbers written in strings, `$sort`, `$number`,
arithmetic, filters over nulls, and its error messages.
"""

from __future__ import annotations

import contextlib
import decimal
import hashlib
import inspect
import io
import json
import math
import re
import time
import uuid
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from functools import lru_cache
from typing import Any, Final

from stepd.asl.decisions import ContextObject
from stepd.asl.intrinsics import HASH_ALGORITHMS, Random
from stepd.errors import ParseError, QueryEvaluationError

with contextlib.redirect_stdout(io.StringIO()):  # the library prints while it initialises
    import jsonata as _library
    from jsonata import jexception as _jexception
    from jsonata import parser as _parser
    from jsonata import utils as _utils


def _discard(*_args: Any, **_kwargs: Any) -> None:
    """Where the library's diagnostic `print()` calls go."""


_library.jsonata.print = _discard
_parser.print = _discard


def _string(value: Any, prettify: bool) -> str:
    """`$string` of a value that is not a string (and the `&` operator's), as JSONata 2.0.6
    writes it: JSON.stringify with every number rounded to 15 significant digits, characters
    beyond ASCII kept as they are (the library escapes them and writes `1e+15`)."""
    if isinstance(value, _library.jsonata.Jsonata.JFunction | _parser.Parser.Symbol):
        return ""
    if _is_number(value) and not math.isfinite(value):
        raise _jexception.JException("D3001", -1, value)
    return _json_text(value, "  " if prettify else "", "")


def _is_number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


def _json_text(value: Any, indent: str, margin: str) -> str:
    """`value` as JSON.stringify writes it (indented by `indent` when not empty, at `margin`),
    its numbers as `_number_text` writes them and its functions as `""`."""
    if value is None or value is _utils.Utils.NULL_VALUE:
        return "null"
    if isinstance(value, bool):
        return "true" if value else "false"
    if _is_number(value):
        return _number_text(value)
    if isinstance(value, str):
        return json.dumps(value, ensure_ascii=False)
    if isinstance(value, list | dict):
        return _container_text(value, indent, margin)
    return '""'  # a function


def _container_text(value: list[Any] | dict[Any, Any], indent: str, margin: str) -> str:
    inner = margin + indent
    if isinstance(value, list):
        items = [_json_text(item, indent, inner) for item in value]
        opening, closing = "[", "]"
    else:
        colon = ": " if indent else ":"
        items = [
            json.dumps(str(key), ensure_ascii=False) + colon + _json_text(item, indent, inner)
            for key, item in value.items()
        ]
        opening, closing = "{", "}"
    if not items:
        return opening + closing
    if not indent:
        return opening + ",".join(items) + closing
    return f"{opening}\n{inner}" + f",\n{inner}".join(items) + f"\n{margin}{closing}"


def _number_text(number: float) -> str:
    """`number` as JSONata 2.0.6 writes it in a string: rounded to 15 significant digits, then
    as JavaScript prints a number (plain digits below 1e21, `1e+21` from there, `1e-7` below
    1e-6). NaN is `null`; Infinity fails (D1001), as JSON.stringify's number check does."""
    number = _double(number)
    if math.isnan(number):
        return "null"
    if math.isinf(number):
        raise _jexception.JException("D1001", -1, "null")
    if number == 0:
        return "0"
    magnitude = decimal.Decimal(abs(number))  # exactly the double
    step = decimal.Decimal(1).scaleb(magnitude.adjusted() - _SIGNIFICANT_DIGITS + 1)
    rounded = float(magnitude.quantize(step, decimal.ROUND_HALF_UP, _WIDE))
    if math.isinf(rounded):  # rounded up beyond the largest double
        return "null"
    return ("-" if number < 0 else "") + _javascript_text(rounded)


def _double(number: float) -> float:
    """`number` as JavaScript holds it (a double; an integer beyond one is Infinity)."""
    try:
        return float(number)
    except OverflowError:
        return math.inf if number > 0 else -math.inf


_SIGNIFICANT_DIGITS: Final = 15  # JSONata's number.toPrecision(15)
_WIDE: Final = decimal.Context(prec=40)
_PLAIN_BELOW: Final = 21  # JavaScript writes plain digits below 1e21…
_PLAIN_FROM: Final = -6  # …and from 1e-6


def _javascript_text(number: float) -> str:
    """The positive finite `number` as JavaScript's Number.prototype.toString writes it."""
    shortest = decimal.Decimal(repr(number)).normalize(_WIDE).as_tuple()
    digits = "".join(map(str, shortest.digits))
    point = len(digits) + int(shortest.exponent)  # the number is 0.<digits> * 10**point
    if len(digits) <= point <= _PLAIN_BELOW:
        return digits + "0" * (point - len(digits))
    if 0 < point <= _PLAIN_BELOW:
        return f"{digits[:point]}.{digits[point:]}"
    if _PLAIN_FROM < point <= 0:
        return "0." + "0" * -point + digits
    exponent = point - 1
    mantissa = digits[0] + ("." + digits[1:] if len(digits) > 1 else "")
    return f"{mantissa}e{'+' if exponent > 0 else '-'}{abs(exponent)}"


_library.functions.Functions._string = staticmethod(_string)  # noqa: SLF001 - as above


OPEN: Final = "{%"
CLOSE: Final = "%}"
MAX_COMPILED: Final = 4096  # expressions kept compiled
MAX_PARTITION_ITEMS: Final = 1000  # as States.ArrayPartition and States.ArrayRange allow
# One expression's bounds: it runs in the daemon's event loop, so a runaway one (a recursive
# function that never ends) would hold up every execution; it fails (D1012, D1011) instead.
MAX_EVALUATION_MS: Final = 2000
MAX_EVALUATION_DEPTH: Final = 1000
_CLOCK_EVERY: Final = 256  # evaluation steps between looks at the clock
_JSONata = _library.Jsonata
_NULL: Final = _utils.Utils.NULL_VALUE


@dataclass(frozen=True, kw_only=True)
class Scope:
    """What an expression can read: `$states`, the variables, the instant and the randomness."""

    states: Mapping[str, Any]  # input, and result / errorOutput where allowed (and context)
    variables: Mapping[str, Any]
    now: datetime
    random: Random
    # what the expressions are given (`$states`, the variables, the functions), made on the
    # first evaluation in this scope: a state's fields all read the same
    bindings: dict[str, Any] = field(default_factory=dict, init=False, repr=False, compare=False)
    # `$states.context`, made when an expression may read it (unless `states` has it)
    context: Callable[[], Any] | None = None


def is_expression(value: Any) -> bool:
    """Whether `value` is a string written `{% expression %}`."""
    return (
        isinstance(value, str)
        and value.startswith(OPEN)
        and value.endswith(CLOSE)
        and len(value) >= len(OPEN) + len(CLOSE)
    )


def body(value: str) -> str:
    """The expression between `{%` and `%}`, without surrounding spaces."""
    return value[len(OPEN) : -len(CLOSE)].strip()


def check(value: str) -> None:
    """Compile the `{% … %}` string `value`. Raises ParseError saying what is wrong."""
    compiled(body(value))


@lru_cache(maxsize=MAX_COMPILED)
def compiled(text: str) -> Any:
    """The compiled expression `text`. Raises ParseError."""
    if not text:
        raise ParseError("The JSONata expression is empty")
    try:
        expression = _JSONata(text)
    except _jexception.JException as exc:
        raise ParseError(f"The JSONata expression '{text}' is invalid: {exc}") from None
    except Exception as exc:  # the library's own bugs surface as any exception  # noqa: BLE001
        raise ParseError(f"The JSONata expression '{text}' is invalid: {exc}") from None
    expression.set_output_convert_nulls(False)
    expression.set_validate_input(False)  # what it reads was parsed from JSON text
    return expression


def evaluate(value: str, field: str, scope: Scope) -> Any:
    """The JSON value of the `{% … %}` string `value` written in `field`.

    Raises QueryEvaluationError (in AWS's words) when it fails, gives nothing, or gives
    something that is not JSON (a function).
    """
    text = body(value)
    try:
        expression = compiled(text)
    except ParseError as failure:
        raise QueryEvaluationError(failure.problem) from None
    path = _member_path(text)
    if path is not None:
        found = _follow(scope.states, path)
        if found is not _UNSURE:
            return _to_json(found)
    bindings = _bindings(scope, text)
    bounds = _Bounds()
    bindings["__evaluate_entry"] = bounds.entry
    bindings["__evaluate_exit"] = bounds.exit
    try:
        result = expression.evaluate(scope.states.get("input"), bindings)
    except QueryEvaluationError:
        raise
    except _jexception.JException as exc:
        raise QueryEvaluationError(_threw(text, field, f"{exc.error}: {exc}")) from None
    except Exception:  # noqa: BLE001 - whatever the library raises is the expression's failure
        raise QueryEvaluationError(_threw(text, field)) from None
    if result is None:
        raise QueryEvaluationError(
            f"The JSONata expression '{text}' specified for the field '{field}' returned nothing "
            "(undefined)."
        )
    try:
        return _to_json(result)
    except TypeError:
        raise QueryEvaluationError(
            f"The JSONata expression '{text}' specified for the field '{field}' returned an "
            "unsupported result type."
        ) from None


def render(template: Any, field: str, scope: Scope) -> Any:
    """`template` with every `{% … %}` string in it (at any depth) replaced by its value; an
    error names the field as AWS does, down to the key (`Output/result`)."""
    if is_expression(template):
        return evaluate(template, field, scope)
    if isinstance(template, Mapping):
        return {key: render(value, f"{field}/{key}", scope) for key, value in template.items()}
    if isinstance(template, list):
        return [render(item, field, scope) for item in template]
    return template


def type_name(value: Any) -> str:
    """The JSON type of `value` as AWS names it in causes: 'array', 'object', 'null'…"""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, int | float):
        return "number"
    if isinstance(value, str):
        return "string"
    return "array" if isinstance(value, list) else "object"


def _threw(text: str, field: str, detail: str = "") -> str:
    """AWS's cause for an expression that failed: its JSONata code and message as `detail`
    (none when the library failed in a way JSONata has no code for)."""
    return (
        f"The JSONata expression '{text}' specified for the field '{field}' threw an error "
        f"during evaluation.{' ' + detail if detail else ''}"
    )


def _to_json(value: Any) -> Any:
    """A JSON value from the library's (JSONata null, sequences); TypeError for a function.
    A null inside an object or array (read from the input: the library leaves out what is
    undefined) is kept; Infinity and NaN are null."""
    if value is _NULL or value is None:
        return None
    if isinstance(value, bool | str):
        return value
    if isinstance(value, int | float):
        if isinstance(value, float) and not math.isfinite(value):
            return None  # Infinity or NaN (`1/0`), written as JSON.stringify writes them
        if isinstance(value, float) and value.is_integer():
            return int(value)
        return value
    if isinstance(value, list):
        return [_to_json(item) for item in value]
    if isinstance(value, dict):
        return {str(key): _to_json(item) for key, item in value.items()}
    raise TypeError(type(value).__name__)


# `$states.input.a.b`: a field of `$states` and names, the commonest expression of all
_MEMBER_PATH = re.compile(
    r"\$states\.(input|result|errorOutput)((?:\.[A-Za-z_][A-Za-z0-9_]*)*)", re.ASCII
)
_UNSURE: Final = object()  # the path meets something only the library should judge


@lru_cache(maxsize=MAX_COMPILED)
def _member_path(text: str) -> tuple[str, ...] | None:
    """The names `text` reads when it is nothing but `$states.<field>.<name>…`, else None."""
    match = _MEMBER_PATH.fullmatch(text)
    if match is None:
        return None
    return (match[1], *match[2].split(".")[1:])


def _follow(states: Mapping[str, Any], path: tuple[str, ...]) -> Any:
    """The value at `path` when every step is an object that has the name and the value is
    not an array (what the library gives then); _UNSURE otherwise (the library decides:
    arrays map and flatten, a missing name is undefined)."""
    value: Any = states
    for name in path:
        if not isinstance(value, dict) or name not in value:
            return _UNSURE
        value = value[name]
    return _UNSURE if isinstance(value, list) else value


def _from_json(value: Any) -> Any:
    return _NULL if value is None else value


# --- AWS's functions --------------------------------------------------------------------


# `$states` not followed by `.input`, `.result` or `.errorOutput`: may read the context
_MAY_READ_CONTEXT = re.compile(r"\$states(?!\.(?:input|result|errorOutput)\b)")


class _Bounds:
    """Fails an evaluation that runs longer than MAX_EVALUATION_MS or nests deeper than
    MAX_EVALUATION_DEPTH (the library's entry and exit callbacks, as its Timebox)."""

    __slots__ = ("deadline", "depth", "steps")

    def __init__(self) -> None:
        self.deadline = time.monotonic() + MAX_EVALUATION_MS / 1000
        self.depth = 0
        self.steps = 0

    def entry(self, _expression: Any, _input: Any, environment: Any) -> None:
        if environment.is_parallel_call:
            return
        self.depth += 1
        if self.depth > MAX_EVALUATION_DEPTH:
            raise _jexception.JException("D1011", -1)
        self.steps += 1
        if self.steps % _CLOCK_EVERY == 0 and time.monotonic() > self.deadline:
            raise _jexception.JException("D1012", -1, MAX_EVALUATION_MS)

    def exit(self, _expression: Any, _input: Any, environment: Any, _result: Any) -> None:
        if not environment.is_parallel_call:
            self.depth -= 1


def _bindings(scope: Scope, text: str) -> dict[str, Any]:
    """What the expression `text` is given; the context is made once one may read it."""
    bindings = scope.bindings
    if not bindings:
        _bind(scope, bindings)
    states = bindings["states"]
    if "context" not in states and scope.context is not None and _MAY_READ_CONTEXT.search(text):
        context = scope.context()
        states["context"] = _from_json(
            context.complete() if isinstance(context, ContextObject) else context
        )
    return bindings


def _bind(scope: Scope, bindings: dict[str, Any]) -> None:
    bindings.update((name, _from_json(value)) for name, value in scope.variables.items())
    bindings["states"] = {
        name: _from_json(value.complete() if isinstance(value, ContextObject) else value)
        for name, value in scope.states.items()
    }
    millis = int(scope.now.timestamp() * 1000)
    from_millis = _library.functions.Functions.datetime_from_millis
    functions: dict[str, Callable[..., Any]] = {
        "now": lambda picture=None, timezone=None: from_millis(millis, picture, timezone),
        "millis": lambda: millis,
        "random": lambda seed=None: _random(scope.random, seed),
        "uuid": lambda: _uuid(scope.random),
    }
    for name, function in functions.items():
        bindings[name] = _JSONata.JLambda(function)
    bindings.update(_FIXED_FUNCTIONS)


def _fail(message: str) -> QueryEvaluationError:
    return QueryEvaluationError(message)


def _is_int(value: Any) -> bool:
    if isinstance(value, bool):
        return False
    return isinstance(value, int) or (isinstance(value, float) and value.is_integer())


def _partition(array: Any, size: Any) -> Any:
    if not isinstance(array, list):
        raise _fail("$partition: the first argument must be an array")
    if not _is_int(size) or size <= 0:
        raise _fail("$partition: the chunk size must be a positive integer")
    chunk = int(size)
    return [array[start : start + chunk] for start in range(0, len(array), chunk)]


def _range(start: Any, end: Any, step: Any) -> Any:
    if not (_is_int(start) and _is_int(end) and _is_int(step)) or step == 0:
        raise _fail("$range: the arguments must be integers and the step must not be 0")
    numbers = list(range(int(start), int(end) + (1 if step > 0 else -1), int(step)))
    if len(numbers) > MAX_PARTITION_ITEMS:
        raise _fail(f"$range: the range has more than {MAX_PARTITION_ITEMS} items")
    return _utils.Utils.create_sequence(*numbers) if len(numbers) == 1 else numbers


def _hash(data: Any, algorithm: Any = "SHA-256") -> Any:
    name = HASH_ALGORITHMS.get(algorithm) if isinstance(algorithm, str) else None
    if name is None:
        raise _fail(f"$hash: the algorithm must be one of {', '.join(HASH_ALGORITHMS)}")
    text = (
        data
        if isinstance(data, str)
        else json.dumps(data, separators=(",", ":"), ensure_ascii=False)
    )
    return hashlib.new(name, text.encode(), usedforsecurity=False).hexdigest()


def _random(random: Random, seed: Any) -> float:
    if seed is None:
        return random()
    from stepd.asl.intrinsics import seeded_random  # noqa: PLC0415 - only for a seeded call

    return seeded_random(json.dumps(seed))()


def _uuid(random: Random) -> str:
    bits = 0
    for _ in range(4):
        bits = (bits << 32) | int(random() * 2**32)
    return str(uuid.UUID(int=bits, version=4))


def _parse(text: Any) -> Any:
    if not isinstance(text, str):
        raise _fail("$parse: the argument must be a string")
    try:
        return _from_json(json.loads(text))
    except ValueError as exc:
        raise _fail(f"$parse: the argument is not JSON text ({exc})") from None


def _no_eval(*_args: Any) -> Any:
    raise _fail("The function $eval is not available in Step Functions")


# AWS's functions that read nothing of the scope
_FIXED_FUNCTIONS: Final = {
    name: _JSONata.JLambda(function)
    for name, function in (
        ("partition", _partition),
        ("range", _range),
        ("hash", _hash),
        ("parse", _parse),
        ("eval", _no_eval),
    )
}


# --- JSONata 2.0.6 where the library differs --------------------------------------------


def _sort(array: Any, comparator: Any = None) -> Any:
    """`$sort` as JSONata 2.0.6 sorts: a stable merge sort, placing the right item first when
    `comparator(left, right)` is true (without one: numbers or strings, in ascending order)."""
    if array is None or len(array) <= 1:
        return array
    if comparator is None:
        if not (_utils.Utils.is_array_of_numbers(array) or _utils.Utils.is_array_of_strings(array)):
            raise _jexception.JException("D3070", 1)
        return _merge_sort(list(array), _greater)
    return _merge_sort(
        list(array),
        lambda left, right: _truthy(
            _library.functions.Functions.func_apply(comparator, [left, right])
        ),
    )


def _merge_sort(items: list[Any], swap: Callable[[Any, Any], bool]) -> list[Any]:
    """`items` in order, split in halves as JSONata splits them (the same comparisons, so the
    same order even from a comparator that contradicts itself)."""
    if len(items) <= 1:
        return items
    middle = len(items) // 2
    return _merge(_merge_sort(items[:middle], swap), _merge_sort(items[middle:], swap), swap)


def _merge(left: list[Any], right: list[Any], swap: Callable[[Any, Any], bool]) -> list[Any]:
    merged: list[Any] = []
    i = j = 0
    while i < len(left) and j < len(right):
        if swap(left[i], right[j]):
            merged.append(right[j])
            j += 1
        else:
            merged.append(left[i])
            i += 1
    return merged + left[i:] + right[j:]


def _greater(left: Any, right: Any) -> bool:
    """JavaScript's `left > right` for two numbers or two strings (UTF-16 code units)."""
    if isinstance(left, str):
        return _utf16(left) > _utf16(right)
    return bool(left > right)


def _utf16(text: str) -> bytes:
    return text.encode("utf-16-be", "surrogatepass")


def _truthy(value: Any) -> bool:
    """Whether JavaScript takes `value` as true (an empty array or object is true)."""
    if value is None or value is _NULL:
        return False
    if isinstance(value, bool):
        return value
    if _is_number(value):
        return value != 0 and not math.isnan(value)
    if isinstance(value, str):
        return value != ""
    return True


def _arithmetic(_evaluator: Any, left: Any, right: Any, operator: str) -> Any:
    """`left operator right` (`+ - * / %`) as JavaScript computes it: dividing by 0 gives
    Infinity (NaN for 0/0), a result too large for a double is Infinity, `%` keeps the
    fraction; a side that is not a number fails (T2001, T2002)."""
    for code, side in (("T2001", left), ("T2002", right)):
        if side is not None and not _utils.Utils.is_numeric(side):  # D1001 for Infinity
            raise _jexception.JException(code, -1, operator, side)
    if left is None or right is None:
        return None
    result = _javascript_arithmetic(float(left), float(right), operator)
    return result if not math.isfinite(result) else _utils.Utils.convert_number(result)


def _javascript_arithmetic(left: float, right: float, operator: str) -> float:
    if operator == "+":
        return left + right
    if operator == "-":
        return left - right
    if operator == "*":
        return left * right
    if right == 0:
        if operator == "%" or left == 0:
            return math.nan
        return math.copysign(math.inf, left) * math.copysign(1, right)
    return left / right if operator == "/" else math.fmod(left, right)


def _number(value: Any) -> Any:
    """`$number` as JSONata 2.0.6 casts: a decimal or `0x`/`0o`/`0b` string, a boolean; any
    other string fails with D3030, naming it as JSON."""
    if value is None or _is_number(value):
        return value
    if value is _NULL:
        raise _jexception.JException("T0410", -1, 1, json.dumps("number"))
    if isinstance(value, bool):
        return 1 if value else 0
    if isinstance(value, str):
        if _DECIMAL.fullmatch(value) and math.isfinite(float(value)):
            return _utils.Utils.convert_number(float(value))
        if _BASED.search(value):  # as loosely as JSONata matches, then Number(value)
            literal = _BASED_LITERAL.fullmatch(value.strip())
            return int(literal[0], 0) if literal else math.nan
    raise _jexception.JException("D3030", -1, json.dumps(value, ensure_ascii=False))


_DECIMAL: Final = re.compile(r"-?[0-9]+(\.[0-9]+)?([Ee][-+]?[0-9]+)?", re.ASCII)
_BASED: Final = re.compile(r"^(0[xX][0-9A-Fa-f]+)|(0[oO][0-7]+)|(0[bB][0-1]+)$", re.ASCII)
_BASED_LITERAL: Final = re.compile(r"0[xX][0-9A-Fa-f]+|0[oO][0-7]+|0[bB][01]+", re.ASCII)


def _power(base: Any, exponent: Any) -> Any:
    """`$power`: a result that is no JSON number (too large, or NaN) fails with D3061."""
    if base is None:
        return None
    try:
        result = math.pow(float(base), float(exponent))
    except (OverflowError, ValueError):
        result = math.nan
    if not math.isfinite(result):
        raise _jexception.JException("D3061", -1, base, exponent)
    return result


def _use(name: str, implementation: Callable[..., Any]) -> None:
    """JSONata's function `$name` done by `implementation` (in place of the library's)."""
    function = _JSONata.static_frame.lookup(name)
    function.method = implementation
    function.nargs = len(inspect.signature(implementation).parameters)


def _is_numeric(value: Any) -> bool:
    """Whether `value` is a number JSONata computes with: not NaN; Infinity fails with D1001
    (its value written as JSON.stringify writes it, null)."""
    if not _is_number(value):
        return False
    if math.isinf(value):
        raise _jexception.JException("D1001", -1, "null")
    return not math.isnan(value)


def _to_millis(timestamp: Any, picture: Any = None) -> Any:
    """`$toMillis`: a timestamp it cannot read fails with D3110, naming it as JSON."""
    try:
        return _library_to_millis(timestamp, picture)
    except ValueError:
        raise _jexception.JException(
            "D3110", -1, json.dumps(timestamp, ensure_ascii=False)
        ) from None


_library_to_millis: Final = _library.functions.Functions.datetime_to_millis


def _filter(evaluator: Any, predicate: Any, input: Any, environment: Any) -> Any:  # noqa: A002
    """`array[predicate]` with each null item a null for the predicate and in the result (the
    library took it for nothing, so `a[$ = null]` gave undefined)."""
    if predicate.type != "number" and isinstance(input, list) and None in input:
        nulls_kept = _utils.Utils.JList(_NULL if item is None else item for item in input)
        nulls_kept.__dict__.update(getattr(input, "__dict__", {}))  # the library's marks
        input = nulls_kept  # noqa: A001
    return _library_filter(evaluator, predicate, input, environment)


_library_filter: Final = _JSONata.evaluate_filter


def _jsonata_words(message: str) -> str:
    """A message of the library's catalog in JSONata 2.0.6's words: "function" where the
    library says "Object", 'single' quotes where it has double ones."""
    return re.sub(r"\bObject\b", "function", message).replace('"', "'")


_jexception.JException.error_codes.update(
    (code, _jsonata_words(message)) for code, message in _jexception.JException.error_codes.items()
)
_JSONata.evaluate_numeric_expression = _arithmetic
_JSONata.evaluate_filter = _filter
_utils.Utils.is_numeric = staticmethod(_is_numeric)
_use("sort", _sort)
_use("number", _number)
_use("power", _power)
_use("toMillis", _to_millis)
