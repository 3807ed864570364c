"""Intrinsic functions in `.$` fields."""

from __future__ import annotations

import re
from typing import Any

import pytest

from stepd.asl.intrinsics import ARITY, FORMAT, FUNCTIONS, evaluate, parse, seeded_random
from stepd.errors import IntrinsicError, ParseError

DATA = {
    "name": "Ada",
    "n": 3,
    "list": [1, 2, 2, "2", True, 1],
    "obj": {"a": 1},
    "accented": {"s": "héllo ✓"},
    "json": '{"k":[1,2]}',
    "arn": "arn:aws:imagebuilder:us-east-1:123:image-recipe/my-recipe.v1/1.0.0",
}
CONTEXT = {"Execution": {"Name": "room-42"}}


def half() -> float:
    """A random source that always returns 0.5."""
    return 0.5


@pytest.mark.parametrize(
    ("expression", "expected"),
    [
        pytest.param("States.Format('Hello {}', $.name)", "Hello Ada", id="format"),
        pytest.param("States.Format('{} of {}', $.n, 4)", "3 of 4", id="format-number"),
        pytest.param("States.Format('{}', $.obj)", "{a=1}", id="format-object-as-aws-writes-it"),
        pytest.param(
            "States.Format('{} {} {}', true, null, 1.5)", "true null 1.5", id="format-literals"
        ),
        pytest.param(r"States.Format('\{\} {}', 'x')", "{} x", id="format-escaped-braces"),
        pytest.param(r"States.Format('it\'s {}', 'ok')", "it's ok", id="format-escaped-quote"),
        pytest.param(r"States.Format('a\\b')", r"a\b", id="format-escaped-backslash"),
        pytest.param("States.Format('{}', $$.Execution.Name)", "room-42", id="format-context"),
        pytest.param("States.StringToJson($.json)", {"k": [1, 2]}, id="string-to-json"),
        pytest.param("States.JsonToString($.obj)", '{"a":1}', id="json-to-string"),
        pytest.param(
            "States.JsonToString($.accented)",
            '{"s":"héllo ✓"}',
            id="json-to-string-keeps-non-ascii-characters",
        ),
        pytest.param(
            "States.Hash(States.JsonToString($.accented), 'MD5')",
            "96b70cd0016b4aa4dc68561950a9560a",
            id="hash-of-json-to-string-hashes-the-characters-utf8",
        ),
        pytest.param(
            "States.Base64Encode(States.JsonToString($.accented))",
            "eyJzIjoiaMOpbGxvIOKckyJ9",
            id="base64-of-json-to-string-encodes-the-characters-utf8",
        ),
        pytest.param("States.Array()", [], id="array-empty"),
        pytest.param("States.Array(1, 'two', $.obj)", [1, "two", {"a": 1}], id="array"),
        pytest.param(
            "States.ArrayPartition(States.Array(1,2,3,4,5), 2)",
            [[1, 2], [3, 4], [5]],
            id="array-partition",
        ),
        pytest.param("States.ArrayContains($.list, 2)", True, id="array-contains"),
        pytest.param(
            "States.ArrayContains(States.Array(1), true)", False, id="array-contains-no-bool-as-int"
        ),
        pytest.param("States.ArrayRange(1, 9, 2)", [1, 3, 5, 7, 9], id="array-range"),
        pytest.param("States.ArrayRange(5, 1, -2)", [5, 3, 1], id="array-range-down"),
        pytest.param("States.ArrayGetItem($.list, 3)", "2", id="array-get-item"),
        pytest.param("States.ArrayLength($.list)", 6, id="array-length"),
        pytest.param("States.ArrayUnique($.list)", [1, 2, "2", True], id="array-unique"),
        pytest.param(
            "States.Base64Encode('Data to encode')", "RGF0YSB0byBlbmNvZGU=", id="base64-encode"
        ),
        pytest.param(
            "States.Base64Decode('RGF0YSB0byBlbmNvZGU=')", "Data to encode", id="base64-decode"
        ),
        pytest.param(
            "States.Hash('input data', 'SHA-1')",
            "aaff4a450a104cd177d28d18d74485e8cae074b7",
            id="hash-sha1",
        ),
        pytest.param("States.Hash('', 'MD5')", "d41d8cd98f00b204e9800998ecf8427e", id="hash-md5"),
        pytest.param(
            "States.JsonMerge($.obj, States.StringToJson('{\"b\":2}'), false)",
            {"a": 1, "b": 2},
            id="json-merge",
        ),
        pytest.param("States.MathAdd($.n, -1)", 2, id="math-add"),
        pytest.param("States.StringSplit('1,2,3', ',')", ["1", "2", "3"], id="string-split"),
        pytest.param(
            "States.StringSplit('This.is+a,test=string', '.+,=')",
            ["This", "is", "a", "test", "string"],
            id="string-split-any-delimiter",
        ),
        pytest.param("States.StringSplit('a,,b', ',')", ["a", "b"], id="string-split-drops-empty"),
        pytest.param(
            "States.Format('{}.{}', States.ArrayGetItem(States.StringSplit("
            "States.ArrayGetItem(States.StringSplit($.arn, '/'), 2), '.'), 0), "
            "States.ArrayGetItem(States.StringSplit(States.ArrayGetItem("
            "States.StringSplit($.arn, '/'), 2), '.'), 1))",
            "1.0",
            id="nested-calls",
        ),
        pytest.param("States.Array( 1 ,  $.n )", [1, 3], id="spaces-around-arguments"),
        pytest.param("States.Array($['name'], $.list[0])", ["Ada", 1], id="bracket-paths"),
    ],
)
def test_evaluate(expression: str, expected: Any) -> None:
    """An intrinsic call evaluates to what AWS documents."""
    assert expected == evaluate(expression, DATA, CONTEXT, half)


@pytest.mark.parametrize(
    "expression",
    [
        pytest.param("States.Format('{} {}', 1)", id="format-too-few-arguments"),
        pytest.param("States.Format('{}', 1, 2)", id="format-too-many-arguments"),
        pytest.param("States.StringToJson('{')", id="string-to-json-not-json"),
        pytest.param("States.ArrayPartition($.list, 0)", id="partition-size-zero"),
        pytest.param("States.ArrayRange(1, 2, 0)", id="range-step-zero"),
        pytest.param("States.ArrayRange(0, 1000, 1)", id="range-over-1000-items"),
        pytest.param("States.ArrayGetItem($.list, 6)", id="get-item-out-of-bounds"),
        pytest.param("States.ArrayLength($.obj)", id="length-of-object"),
        pytest.param("States.Base64Decode('***')", id="base64-invalid"),
        pytest.param("States.Hash('x', 'SHA-3')", id="hash-unknown-algorithm"),
        pytest.param("States.JsonMerge($.obj, $.obj, true)", id="json-merge-deep"),
        pytest.param("States.MathAdd($.name, 1)", id="math-add-string"),
        pytest.param("States.MathRandom(5, 5)", id="math-random-empty-range"),
        pytest.param("States.Array($.missing)", id="missing-path"),
    ],
)
def test_failures_raise_intrinsic_error(expression: str) -> None:
    """A failing intrinsic raises IntrinsicError, reported as States.Runtime."""
    with pytest.raises(IntrinsicError) as raised:
        evaluate(expression, DATA, CONTEXT, half)
    assert raised.value.error == "States.Runtime"


@pytest.mark.parametrize(
    ("expression", "problem"),
    [
        pytest.param("States.Array(1", "expected ',' or ')' at position 14", id="unclosed-call"),
        pytest.param("States.Array('x)", "unterminated string at position 16", id="open-string"),
        pytest.param(
            "States.Array(1) x", "unexpected text after the call at position 16", id="trailing"
        ),
        pytest.param("States.Array(nope)", "expected an argument at position 13", id="bare-word"),
        pytest.param(
            "Format('x')", "expected a States.* function name at position 0", id="no-prefix"
        ),
        pytest.param("States.Nope()", "unknown function States.Nope", id="unknown-function"),
        pytest.param(
            "States.Array(States.Nope(1))",
            "unknown function States.Nope",
            id="unknown-nested-function",
        ),
        pytest.param("States.UUID(1)", "States.UUID takes 0 arguments, got 1", id="uuid-one"),
        pytest.param(
            "States.MathRandom(1)", "States.MathRandom takes 2 to 3 arguments, got 1", id="few"
        ),
        pytest.param(
            "States.Format()", "States.Format takes at least 1 argument, got 0", id="format-none"
        ),
        pytest.param(
            "States.Array(States.JsonToString())",
            "States.JsonToString takes 1 argument, got 0",
            id="nested-arity",
        ),
        pytest.param(
            "States.Array($.a...b)",
            "Invalid path '$.a...b': a deep scan ('..') needs a name or '*' after it",
            id="malformed-path",
        ),
        pytest.param(
            "States.Array(1e999)", "the number 1e999 is too large at position 13", id="infinity"
        ),
        pytest.param(
            "States.Array(" * 51 + ")" * 51,
            "calls nested more than 50 deep at position 662",
            id="nested-too-deep",
        ),
    ],
)
def test_parse_errors_raise_parse_error(expression: str, problem: str) -> None:
    """A call the parser refuses raises ParseError naming the call and the problem."""
    with pytest.raises(ParseError) as raised:
        evaluate(expression, DATA, CONTEXT, half)
    assert f"Invalid intrinsic function '{expression}': {problem}" == raised.value.problem


@pytest.mark.parametrize(
    ("expression", "expected"),
    [
        pytest.param("States.MathAdd(1.49, 1.5)", 3, id="add-rounds-each-argument"),
        pytest.param("States.MathAdd(1.5, 1.51)", 4, id="add-half-up"),
        pytest.param("States.MathAdd(-1.49, -1.5)", -2, id="add-negative-half-toward-zero"),
        pytest.param("States.MathAdd(-1.5, -1.51)", -3, id="add-negative-past-half"),
        pytest.param("States.MathAdd(0.5, 0)", 1, id="add-0.5-is-1"),
        pytest.param("States.MathAdd(2.5, 0)", 3, id="add-2.5-is-3-not-even"),
        pytest.param("States.MathAdd(-0.5, 0.5)", 1, id="add-minus-0.5-is-0"),
        pytest.param("States.MathAdd(-2.5, 0)", -2, id="add-minus-2.5-is-minus-2"),
        pytest.param("States.MathAdd(-9, 3)", -6, id="add-integers"),
        pytest.param("States.MathRandom(12.5, 14.4)", 13, id="random-rounds-its-range"),
        pytest.param("States.StringToJson('')", None, id="string-to-json-empty-is-null"),
        pytest.param("States.StringToJson(' ')", None, id="string-to-json-blank-is-null"),
        pytest.param("States.StringToJson('-0')", 0, id="string-to-json-minus-zero"),
        pytest.param("States.Format('{}', $.nested)", "{a=[1, b], c={}}", id="format-nested"),
        pytest.param("States.Format('{}', $.list)", "[1, 2, 2, 2, true, 1]", id="format-array"),
        pytest.param("States.Format('{}', $.n)", "3", id="format-number"),
        pytest.param("States.Format('{}', $.json)", '{"k":[1,2]}', id="format-string-as-is"),
    ],
)
def test_evaluates_as_aws_recorded(expression: str, expected: Any) -> None:
    """An intrinsic call gives what AWS's recorded executions gave."""
    data = {**DATA, "nested": {"a": [1, "b"], "c": {}}}
    assert expected == evaluate(expression, data, CONTEXT, half)


def test_every_function_has_an_arity() -> None:
    """parse knows how many arguments each function that evaluate runs takes."""
    assert {*FUNCTIONS, FORMAT} == set(ARITY)


def test_uuid_is_a_version_4_uuid() -> None:
    """States.UUID returns a version 4 UUID string."""
    value = evaluate("States.UUID()", DATA, CONTEXT, seeded_random("x"))
    assert re.fullmatch(
        r"[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}", value
    )


def test_uuid_follows_the_random_source() -> None:
    """States.UUID is the same for the same seed and differs for another."""
    first, second, other = (
        evaluate("States.UUID()", DATA, CONTEXT, seeded_random(seed)) for seed in "aab"
    )
    assert (first == second, first == other) == (True, False)


@pytest.mark.parametrize(
    ("draw", "expected"),
    [
        pytest.param(0.0, 1, id="lowest-is-start"),
        pytest.param(0.5, 50, id="middle"),
        pytest.param(0.999999, 99, id="highest-is-end-minus-one"),
    ],
)
def test_math_random_is_in_start_inclusive_end_exclusive(draw: float, expected: int) -> None:
    """States.MathRandom(start, end) maps random() onto [start, end)."""
    assert expected == evaluate("States.MathRandom(1, 100)", DATA, CONTEXT, lambda: draw)


def test_math_random_with_a_seed_ignores_the_random_source() -> None:
    """States.MathRandom with a seed gives the same number every time."""
    first = evaluate("States.MathRandom(1, 1000, 7)", DATA, CONTEXT, lambda: 0.0)
    second = evaluate("States.MathRandom(1, 1000, 7)", DATA, CONTEXT, lambda: 0.99)
    assert first == second


def test_parse_keeps_nested_structure() -> None:
    """parse gives the call tree with literal, path and nested call arguments."""
    call = parse("States.Array('a', $.b, States.Array())")
    assert [type(arg).__name__ for arg in call.args] == ["Literal", "PathRef", "Call"]
