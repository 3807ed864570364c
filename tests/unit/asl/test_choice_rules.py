"""Choice rules: comparisons, type tests, combinators."""

from __future__ import annotations

from typing import Any

import pytest

from stepd.asl.choice import matches
from stepd.errors import StatesRuntimeError

DATA = {
    "s": "banana",
    "n": 10,
    "f": 2.5,
    "b": True,
    "t": "2024-08-18T17:33:00Z",
    "later": "2024-08-18T17:34:00.5Z",
    "bad_t": "2024-08-18 17:33:00",
    "null": None,
    "other_s": "apple",
    "other_n": 10.0,
    "star": "a*b",
}
CONTEXT = {"State": {"Name": "Check"}}


def rule(variable: str, **operator: Any) -> dict[str, Any]:
    """One comparison rule on `variable`."""
    return {"Variable": variable, **operator}


@pytest.mark.parametrize(
    ("choice", "expected"),
    [
        pytest.param(rule("$.s", StringEquals="banana"), True, id="StringEquals"),
        pytest.param(rule("$.s", StringEquals="Banana"), False, id="StringEquals-case"),
        pytest.param(rule("$.s", StringLessThan="cherry"), True, id="StringLessThan"),
        pytest.param(rule("$.s", StringGreaterThan="apple"), True, id="StringGreaterThan"),
        pytest.param(rule("$.s", StringLessThanEquals="banana"), True, id="StringLessThanEquals"),
        pytest.param(
            rule("$.s", StringGreaterThanEquals="bananas"), False, id="StringGreaterThanEquals"
        ),
        pytest.param(rule("$.s", StringEqualsPath="$.other_s"), False, id="StringEqualsPath"),
        pytest.param(
            rule("$.s", StringGreaterThanPath="$.other_s"), True, id="StringGreaterThanPath"
        ),
        pytest.param(rule("$.n", NumericEquals=10), True, id="NumericEquals"),
        pytest.param(rule("$.n", NumericEquals=10.0), True, id="NumericEquals-int-float"),
        pytest.param(rule("$.n", NumericLessThan=10), False, id="NumericLessThan"),
        pytest.param(rule("$.f", NumericGreaterThan=2), True, id="NumericGreaterThan"),
        pytest.param(rule("$.n", NumericLessThanEquals=10), True, id="NumericLessThanEquals"),
        pytest.param(
            rule("$.n", NumericGreaterThanEquals=11), False, id="NumericGreaterThanEquals"
        ),
        pytest.param(rule("$.n", NumericEqualsPath="$.other_n"), True, id="NumericEqualsPath"),
        pytest.param(rule("$.f", NumericLessThanPath="$.n"), True, id="NumericLessThanPath"),
        pytest.param(
            rule("$.t", TimestampEquals="2024-08-18T19:33:00+02:00"),
            True,
            id="TimestampEquals-offset",
        ),
        pytest.param(
            rule("$.t", TimestampLessThan="2024-08-18T17:33:00.001Z"), True, id="TimestampLessThan"
        ),
        pytest.param(
            rule("$.t", TimestampGreaterThan="2024-08-18T17:33:00Z"),
            False,
            id="TimestampGreaterThan",
        ),
        pytest.param(
            rule("$.t", TimestampLessThanEquals="2024-08-18T17:33:00Z"),
            True,
            id="TimestampLessThanEquals",
        ),
        pytest.param(
            rule("$.t", TimestampGreaterThanEquals="2024-08-19T00:00:00Z"),
            False,
            id="TimestampGreaterThanEquals",
        ),
        pytest.param(
            rule("$.later", TimestampGreaterThanPath="$.t"), True, id="TimestampGreaterThanPath"
        ),
        pytest.param(rule("$.b", BooleanEquals=True), True, id="BooleanEquals"),
        pytest.param(rule("$.b", BooleanEquals=False), False, id="BooleanEquals-false"),
        pytest.param(rule("$.b", BooleanEqualsPath="$.b"), True, id="BooleanEqualsPath"),
        pytest.param(rule("$.s", StringMatches="ban*"), True, id="StringMatches-prefix"),
        pytest.param(rule("$.s", StringMatches="*nan*"), True, id="StringMatches-infix"),
        pytest.param(rule("$.s", StringMatches="b*x"), False, id="StringMatches-no-match"),
        pytest.param(rule("$.s", StringMatches="ban.na"), False, id="StringMatches-dot-literal"),
        pytest.param(rule("$.star", StringMatches=r"a\*b"), True, id="StringMatches-escaped-star"),
        pytest.param(rule("$.s", StringMatches=r"b\*"), False, id="StringMatches-escaped-no-glob"),
        pytest.param(rule("$$.State.Name", StringEquals="Check"), True, id="context-variable"),
    ],
)
def test_comparisons(choice: dict[str, Any], expected: bool) -> None:
    """Each comparison operator compares values of its own type."""
    assert expected == matches(choice, DATA, CONTEXT)


@pytest.mark.parametrize(
    "choice",
    [
        pytest.param(rule("$.n", StringEquals="10"), id="number-vs-string"),
        pytest.param(rule("$.s", NumericEquals=10), id="string-vs-number"),
        pytest.param(rule("$.b", NumericEquals=1), id="bool-is-not-numeric"),
        pytest.param(rule("$.n", BooleanEquals=True), id="number-is-not-boolean"),
        pytest.param(rule("$.bad_t", TimestampEquals="2024-08-18T17:33:00Z"), id="bad-timestamp"),
        pytest.param(rule("$.n", TimestampLessThan="2024-08-18T17:33:00Z"), id="number-vs-time"),
        pytest.param(rule("$.null", StringEquals="null"), id="null-vs-string"),
        pytest.param(rule("$.n", StringMatches="1*"), id="StringMatches-on-number"),
        pytest.param(rule("$.s", NumericEqualsPath="$.n"), id="path-twin-mismatch"),
    ],
)
def test_type_mismatch_is_false(choice: dict[str, Any]) -> None:
    """Comparing values of different types is false, not an error."""
    assert matches(choice, DATA, CONTEXT) is False


@pytest.mark.parametrize(
    ("choice", "expected"),
    [
        pytest.param(rule("$.null", IsNull=True), True, id="IsNull"),
        pytest.param(rule("$.s", IsNull=True), False, id="IsNull-string"),
        pytest.param(rule("$.s", IsNull=False), True, id="IsNull-false"),
        pytest.param(rule("$.missing", IsPresent=False), True, id="IsPresent-missing"),
        pytest.param(rule("$.missing", IsPresent=True), False, id="IsPresent-missing-true"),
        pytest.param(rule("$.null", IsPresent=True), True, id="IsPresent-null"),
        pytest.param(rule("$.n", IsNumeric=True), True, id="IsNumeric-int"),
        pytest.param(rule("$.f", IsNumeric=True), True, id="IsNumeric-float"),
        pytest.param(rule("$.b", IsNumeric=True), False, id="IsNumeric-bool"),
        pytest.param(rule("$.s", IsString=True), True, id="IsString"),
        pytest.param(rule("$.n", IsString=True), False, id="IsString-number"),
        pytest.param(rule("$.b", IsBoolean=True), True, id="IsBoolean"),
        pytest.param(rule("$.s", IsBoolean=True), False, id="IsBoolean-string"),
        pytest.param(rule("$.t", IsTimestamp=True), True, id="IsTimestamp"),
        pytest.param(rule("$.bad_t", IsTimestamp=True), False, id="IsTimestamp-bad"),
        pytest.param(rule("$.s", IsTimestamp=False), True, id="IsTimestamp-false"),
    ],
)
def test_type_tests(choice: dict[str, Any], expected: bool) -> None:
    """Type tests compare the value's type with the expected boolean."""
    assert expected == matches(choice, DATA, CONTEXT)


YES = rule("$.b", BooleanEquals=True)
NO = rule("$.b", BooleanEquals=False)


@pytest.mark.parametrize(
    ("choice", "expected"),
    [
        pytest.param({"And": [YES, YES]}, True, id="And-all"),
        pytest.param({"And": [YES, NO]}, False, id="And-one-false"),
        pytest.param({"Or": [NO, YES]}, True, id="Or-one"),
        pytest.param({"Or": [NO, NO]}, False, id="Or-none"),
        pytest.param({"Not": NO}, True, id="Not"),
        pytest.param({"Not": {"Or": [NO, {"And": [YES, NO]}]}}, True, id="nested"),
        pytest.param(
            {"And": [rule("$.missing", IsPresent=True), rule("$.missing", StringEquals="x")]},
            False,
            id="IsPresent-guard-short-circuits",
        ),
    ],
)
def test_combinators(choice: dict[str, Any], expected: bool) -> None:
    """And, Or and Not combine nested rules."""
    assert expected == matches(choice, DATA, CONTEXT)


@pytest.mark.parametrize(
    ("choice", "path"),
    [
        pytest.param(rule("$.missing", StringEquals="x"), "$.missing", id="comparison"),
        pytest.param(rule("$.missing", IsNull=True), "$.missing", id="type-test"),
        pytest.param(rule("$.s", StringEqualsPath="$.gone"), "$.gone", id="path-operand"),
        pytest.param({"Not": rule("$.missing", BooleanEquals=True)}, "$.missing", id="inside-Not"),
    ],
)
def test_missing_variable_is_a_runtime_failure(choice: dict[str, Any], path: str) -> None:
    """A Variable or path operand that matches nothing fails with AWS's cause."""
    with pytest.raises(StatesRuntimeError) as raised:
        matches(choice, DATA, CONTEXT)
    expected = (
        f"Invalid path '{path}': The choice state's condition path references an invalid value."
    )
    assert expected == raised.value.message
