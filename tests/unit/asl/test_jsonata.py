"""JSONata states and variables: expressions, AWS's functions, Assign, `$name` paths."""

from __future__ import annotations

import re
from dataclasses import replace
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from stepd.asl import jsonata
from stepd.asl.decisions import Fail, FanOut, GoTo, Succeed
from stepd.asl.interpreter import enter, task_succeeded
from stepd.asl.intrinsics import seeded_random
from stepd.errors import QueryEvaluationError

from .asl_support import NOW, context

J = {"QueryLanguage": "JSONata"}


def scope(variables: dict[str, Any] | None = None, **states: Any) -> jsonata.Scope:
    """A scope at NOW reading `states` and `variables`."""
    return jsonata.Scope(
        states=states, variables=variables or {}, now=NOW, random=seeded_random("s")
    )


def one(state: dict[str, Any], **top: Any) -> dict[str, Any]:
    """A machine of the single state S."""
    return {**top, "StartAt": "S", "States": {"S": state}}


@pytest.mark.parametrize(
    ("expression", "expected"),
    [
        pytest.param("$range(0, 9, 3)", [0, 3, 6, 9], id="range"),
        pytest.param("$range(1, 9, 9)", 1, id="range-of-one-is-a-value"),
        pytest.param("$partition([1, 2, 3], 2)", [[1, 2], [3]], id="partition"),
        pytest.param('$parse("{\\"a\\": [1]}")', {"a": [1]}, id="parse"),
        pytest.param('$hash("a", "MD5")', "0cc175b9c0f1b6a831c399e269772661", id="hash"),
        pytest.param("$now()", "2024-08-18T12:00:00.500Z", id="now-is-given"),
        pytest.param("$millis()", 1723982400500, id="millis-is-given"),
        pytest.param("$states.input.a", 1, id="states-input"),
        pytest.param("$v = null", True, id="null-variable-is-null"),
        pytest.param('$number("2")', 2, id="integral-number"),
        pytest.param('$string({"s": "héllo ✓"})', '{"s":"héllo ✓"}', id="string-keeps-non-ascii"),
        pytest.param(
            '$string({"s": ["é"]}, true)',
            '{\n  "s": [\n    "é"\n  ]\n}',
            id="string-prettified-keeps-non-ascii",
        ),
        pytest.param('"é: " & {"s": "é"}', 'é: {"s":"é"}', id="concatenation-keeps-non-ascii"),
        pytest.param(
            '$hash($string({"s": "héllo ✓"}), "MD5")',
            "96b70cd0016b4aa4dc68561950a9560a",
            id="hash-of-string-hashes-the-characters-utf8",
        ),
    ],
)
def test_expressions_evaluate_as_aws(expression: str, expected: Any) -> None:
    """Each expression gives AWS's value, with `$now` and `$millis` at the instant given."""
    assert expected == jsonata.evaluate(
        "{% " + expression + " %}", "Output", scope({"v": None}, input={"a": 1})
    )


@pytest.mark.parametrize(
    ("expression", "cause"),
    [
        pytest.param("$nothing", "returned nothing (undefined).", id="undefined"),
        pytest.param("function($x){$x}", "returned an unsupported result type.", id="function"),
        pytest.param('$eval("1")', "$eval is not available", id="eval"),
        pytest.param("1 +", "is invalid", id="syntax"),
        pytest.param("$undefinedFunction()", "threw an error during evaluation", id="no-function"),
    ],
)
def test_failures_are_query_evaluation_errors(expression: str, cause: str) -> None:
    """A failing expression raises States.QueryEvaluationError saying what went wrong."""
    with pytest.raises(QueryEvaluationError, match=re.escape(cause)):
        jsonata.evaluate("{% " + expression + " %}", "Output", scope())


@pytest.mark.parametrize(
    ("expression", "expected"),
    [
        pytest.param("'order-' & 1700000000000123", "order-1700000000000120", id="16-digit-id"),
        pytest.param("$string($states.input.ms * 1000)", "1733590000123000", id="micros"),
        pytest.param("$string(1000000000000000)", "1000000000000000", id="1e15"),
        pytest.param("$string(1e20)", "100000000000000000000", id="1e20"),
        pytest.param("$string(1e21)", "1e+21", id="1e21"),
        pytest.param("$string(1.5e300)", "1.5e+300", id="huge"),
        pytest.param("$string(0.000001)", "0.000001", id="1e-6"),
        pytest.param("$string(1e-7)", "1e-7", id="1e-7"),
        pytest.param("$string(-1.25e-10)", "-1.25e-10", id="negative-small"),
        pytest.param("$string(0.1 + 0.2)", "0.3", id="fifteen-digits"),
        pytest.param("$string(1000000000000005)", "1000000000000010", id="half-rounds-up"),
        pytest.param("$string(1.7976931348623157e308)", "null", id="rounds-beyond-a-double"),
        pytest.param(
            '$string({"id": 1700000000000123, "n": [1e21, 1e-7, 2.5, -0]})',
            '{"id":1700000000000120,"n":[1e+21,1e-7,2.5,0]}',
            id="inside-an-object",
        ),
        pytest.param(
            '$string({"a": [1e16], "e": [], "o": {}}, true)',
            '{\n  "a": [\n    10000000000000000\n  ],\n  "e": [],\n  "o": {}\n}',
            id="prettified",
        ),
        pytest.param("$join([$string(1e16), 'x'], '-')", "10000000000000000-x", id="join"),
        pytest.param(
            "$string($states.input)",
            '{"ms":1733590000123,"big":12345678901234600000,"f":2}',
            id="input",
        ),
    ],
)
def test_numbers_in_strings_are_written_as_aws_writes_them(expression: str, expected: str) -> None:
    """`$string`, `&` and `$join` write a number rounded to 15 significant digits, in plain
    digits below 1e21, as JSONata 2.0.6 does (`1e+15` and lost digits before)."""
    document = {"ms": 1733590000123, "big": 12345678901234567890, "f": 2.0}
    assert expected == jsonata.evaluate("{% " + expression + " %}", "Output", scope(input=document))


@pytest.mark.parametrize(
    ("comparator", "expected"),
    [
        pytest.param("$a.age > $b.age", ["bob", "dan", "ann", "cat", "eve"], id="ties-keep-order"),
        pytest.param("$a.age < $b.age", ["ann", "cat", "eve", "bob", "dan"], id="descending"),
        pytest.param(
            "$a.age - $b.age",  # a number other than 0 is true, as in JavaScript
            ["cat", "eve", "bob", "dan", "ann"],
            id="number-result-swaps-unless-0",
        ),
    ],
)
def test_sort_with_a_comparator_is_stable(comparator: str, expected: list[str]) -> None:
    """`$sort` with a comparator keeps items that tie in the order they came (ties were
    reversed), as JSONata 2.0.6's merge sort does."""
    people = [
        {"name": name, "age": age}
        for name, age in (("ann", 30), ("bob", 25), ("cat", 30), ("dan", 25), ("eve", 30))
    ]
    text = "{% $sort($states.input, function($a, $b){ " + comparator + " }).name %}"
    assert expected == jsonata.evaluate(text, "Output", scope(input=people))


@pytest.mark.parametrize(
    ("expression", "detail"),
    [
        pytest.param(
            '$number("abc")', 'D3030: Unable to cast value to a number: "abc"', id="number"
        ),
        pytest.param(
            '$number(" 12 ")', 'D3030: Unable to cast value to a number: " 12 "', id="spaces"
        ),
        pytest.param(
            "$string(1/0)", "D3001: Attempting to invoke string function on Infinity or NaN"
        ),
        pytest.param("1/0 + 1", "D1001: Number out of range: null", id="infinity-in-arithmetic"),
        pytest.param(
            "$power(10, 400)",
            "D3061: The power function has resulted in a value that cannot be represented as a "
            "JSON number: base=10, exponent=400",
            id="power",
        ),
        pytest.param(
            '$toMillis("foo")',
            "D3110: The argument of the toMillis function must be an ISO 8601 formatted "
            'timestamp. Given "foo"',
            id="to-millis",
        ),
    ],
)
def test_a_failing_function_gives_jsonata_code_and_message(expression: str, detail: str) -> None:
    """The cause ends with JSONata's code and message, as AWS's does, never Python's
    exception (`ValueError: could not convert string to float: 'abc'` before)."""
    with pytest.raises(QueryEvaluationError) as failure:
        jsonata.evaluate("{% " + expression + " %}", "Output", scope())
    assert str(failure.value) == (
        f"The JSONata expression '{expression}' specified for the field 'Output' threw an error "
        f"during evaluation. {detail}"
    )


@pytest.mark.parametrize(
    ("expression", "expected"),
    [
        pytest.param("1/0", None, id="infinity-is-null"),
        pytest.param("[1/0, -1/0, 0/0]", [None, None, None], id="in-an-array"),
        pytest.param('{"a": 1/0}', {"a": None}, id="in-an-object"),
        pytest.param("5.5 % 2", 1.5, id="remainder-keeps-the-fraction"),
        pytest.param("-5.5 % 2", -1.5, id="remainder-takes-the-dividend-sign"),
        pytest.param('$number("0x1F") + $number("0o17") + $number("0B11")', 49, id="based"),
        pytest.param('$number("1E3")', 1000, id="exponent"),
    ],
)
def test_arithmetic_is_javascripts(expression: str, expected: Any) -> None:
    """Dividing by 0 gives Infinity, written as null, as AWS's JSONata does (it failed with
    Python's `ZeroDivisionError`)."""
    assert expected == jsonata.evaluate("{% " + expression + " %}", "Output", scope())


@pytest.mark.parametrize(
    ("expression", "expected"),
    [
        pytest.param("$states.input.a[$ = null]", None, id="a-lone-null-is-null"),
        pytest.param("[$states.input.a[$ = null]]", [None], id="in-an-array"),
        pytest.param('{"k": $states.input.a[$ = null]}', {"k": None}, id="in-an-object"),
        pytest.param("$states.input.b[$ = null]", [None, None], id="two-nulls"),
        pytest.param("$type($states.input.a[$ != 1])", "null", id="type"),
    ],
)
def test_a_filter_keeps_the_nulls_it_selects(expression: str, expected: Any) -> None:
    """A filter that selects a single null gives null, as AWS does (it gave nothing, and the
    state failed with "returned nothing (undefined)")."""
    document = {"a": [None, 1], "b": [None, 2, None]}
    assert expected == jsonata.evaluate("{% " + expression + " %}", "Output", scope(input=document))


def test_random_and_uuid_repeat_for_the_same_visit() -> None:
    """`$random()` and `$uuid()` draw from the visit's seed: the same state evaluated again
    gives the same values."""
    text = "{% [$random(), $uuid()] %}"
    assert jsonata.evaluate(text, "Output", scope()) == jsonata.evaluate(text, "Output", scope())


@pytest.mark.parametrize(
    ("definition", "state_input", "expected"),
    [
        pytest.param(
            one({"Type": "Pass", "Output": {"b": "{% $states.input.a %}"}, "End": True}, **J),
            {"a": 1},
            Succeed(output={"b": 1}),
            id="pass-output-template",
        ),
        pytest.param(
            one({"Type": "Pass", "End": True}, **J),
            {"a": 1},
            Succeed(output={"a": 1}),
            id="pass-without-output-keeps-input",
        ),
        pytest.param(
            one({"Type": "Pass", "Assign": {"x": "{% $states.input.a %}"}, "End": True}, **J),
            {"a": 1},
            Succeed(output={"a": 1}, variables={"x": 1}),
            id="assign-sets-a-variable",
        ),
        pytest.param(
            one({"Type": "Pass", "Assign": {"x": 2, "y": "{% $x %}"}, "End": True}, **J),
            {},
            Succeed(output={}, variables={"x": 2, "y": 1}),
            id="assign-reads-variables-from-before-the-state",
        ),
        pytest.param(
            one({"Type": "Pass", "Assign": {"y.$": "$x", "z": "$x"}, "End": True}),
            {},
            Succeed(output={}, variables={"x": 1, "y": 1, "z": "$x"}),
            id="jsonpath-assign-reads-variables",
        ),
        pytest.param(
            one(
                {
                    "Type": "Choice",
                    "Choices": [{"Condition": "{% $states.input.go %}", "Next": "T"}],
                    "Default": "F",
                },
                **J,
            ),
            {"go": True},
            GoTo(next_state="T", output={"go": True}),
            id="choice-condition",
        ),
        pytest.param(
            one({"Type": "Map", "Items": "{% 1 %}", "ItemProcessor": {}, "End": True}, **J),
            {},
            Fail(
                error="States.QueryEvaluationError",
                cause="The JSONata expression '1' specified for the field 'Items' returned an "
                "unexpected result type. Expected 'array', but was 'number' for value: 1",
            ),
            id="map-items-not-an-array",
        ),
        pytest.param(
            one({"Type": "Map", "Items": "{% [1, 2] %}", "ItemProcessor": {}, "End": True}, **J),
            {},
            FanOut(kind="Map", inputs=(1, 2), limit=40),
            id="map-items",
        ),
    ],
)
def test_jsonata_states_decide_as_aws(
    definition: dict[str, Any], state_input: Any, expected: Any
) -> None:
    """Entering a JSONata state (or a JSONPath one with Assign) gives AWS's decision."""
    ctx = replace(context("S"), variables={"x": 1})
    assert expected == enter(definition, "S", state_input, ctx, NOW)


def test_task_output_and_assign_read_the_result() -> None:
    """A JSONata Task's Output and Assign read `$states.result`."""
    definition = one(
        {
            "Type": "Task",
            "Resource": "r",
            "Output": "{% $states.result.a %}",
            "Assign": {"r": "{% $states.result %}"},
            "End": True,
        },
        **J,
    )
    decision = task_succeeded(definition, "S", {}, {"a": 5}, context("S"), NOW)
    assert Succeed(output=5, variables={"r": {"a": 5}}) == decision


_NAMES = st.sampled_from(["a", "b", "c_1", "true", "null", "and"])
_JSON = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=3),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(_NAMES, inner, max_size=3),
    max_leaves=12,
)


@settings(max_examples=500, deadline=None)
@given(document=_JSON, path=st.lists(_NAMES, max_size=3))
def test_a_plain_member_path_reads_as_the_library_does(document: Any, path: list[str]) -> None:
    """`$states.input.a.b` (read directly) gives what the same path in parentheses (evaluated
    by the library) gives: the same value, or the same failure."""
    expression = ".".join(["$states.input", *path])
    outcomes = []
    for text in (expression, f"({expression})"):
        try:
            outcomes.append(
                ("value", jsonata.evaluate("{% " + text + " %}", "F", scope(input=document)))
            )
        except QueryEvaluationError as exc:
            outcomes.append(("error", str(exc).replace(f"({expression})", expression)))
    assert outcomes[0] == outcomes[1]


def test_nulls_read_from_the_input_are_kept() -> None:
    """An object or array passed through keeps its nulls, as AWS does."""
    document = {"a": None, "list": [1, None], "deep": {"b": None}}
    for text in ("$states.input", "$merge([$states.input, {}])", "$states.input.list"):
        value = jsonata.evaluate("{% " + text + " %}", "Output", scope(input=document))
        assert value == (document["list"] if text.endswith("list") else document), text


def test_the_context_is_read_however_the_expression_reaches_it() -> None:
    """`$states.context` is there for an expression that reads it by name or by lookup, and
    made only once for a state's fields."""
    made: list[int] = []

    def context() -> dict[str, Any]:
        made.append(1)
        return {"Execution": {"Name": "class-7"}}

    visit = jsonata.Scope(
        states={"input": {"a": 1}},
        variables={},
        now=NOW,
        random=seeded_random("s"),
        context=context,
    )
    assert jsonata.evaluate("{% $states.input.a %}", "Output", visit) == 1
    assert made == []
    for text in ("$states.context.Execution.Name", '$lookup($states, "context").Execution.Name'):
        assert jsonata.evaluate("{% " + text + " %}", "Output", visit) == "class-7"
    assert made == [1]


@pytest.mark.parametrize(
    ("expression", "code"),
    [
        pytest.param("($f := function($x){$f($x)}; $f(1))", "D1012", id="endless-tail-call"),
        pytest.param(
            "($f := function($x){$x > 0 ? 1 + $f($x - 1) : 0}; $f(100000))",
            "D1011",
            id="recursion-too-deep",
        ),
    ],
)
def test_a_runaway_expression_fails_instead_of_holding_up_the_daemon(
    monkeypatch: pytest.MonkeyPatch, expression: str, code: str
) -> None:
    """An expression that would never end, or nests past the bound, fails the state with
    States.QueryEvaluationError within the time bound (the daemon's loop is not held)."""
    monkeypatch.setattr(jsonata, "MAX_EVALUATION_MS", 200)
    with pytest.raises(QueryEvaluationError, match=code):
        jsonata.evaluate("{% " + expression + " %}", "Output", scope(input={}))


def test_a_recursive_function_within_the_bounds_gives_its_value() -> None:
    expression = "{% ($f := function($x){$x > 0 ? 1 + $f($x - 1) : 0}; $f(300)) %}"
    assert jsonata.evaluate(expression, "Output", scope(input={})) == 300
