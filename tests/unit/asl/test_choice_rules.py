"""Choice rules: comparisons, type tests, combinators."""

from __future__ import annotations

from typing import Any

import pytest

from stepd.asl.choice import matches
from stepd.errors import ParseError, StatesRuntimeError

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


@pytest.mark.parametrize(
    ("choice", "problem"),
    [
        pytest.param(
            rule("$.n", NumericEquals="10"), 'Field "NumericEquals" must be a number', id="n"
        ),
        pytest.param(rule("$.s", StringEquals=1), 'Field "StringEquals" must be a string', id="s"),
        pytest.param(
            rule("$.b", BooleanEquals="true"), 'Field "BooleanEquals" must be true or false', id="b"
        ),
        pytest.param(
            rule("$.null", IsNull=1), 'Field "IsNull" must be true or false', id="is-null-1"
        ),
        pytest.param(
            rule("$.t", TimestampEquals="2024-08-18 17:33:00Z"),
            "String does not match RFC3339 timestamp",
            id="timestamp",
        ),
        pytest.param(
            rule("$.t", TimestampLessThan="0000-01-01T00:00:00Z"),
            "Timestamp 0000-01-01T00:00:00Z is before the year 0001, which stepd cannot represent",
            id="timestamp-year-0000",
        ),
        pytest.param(
            rule("$.s", StringEqualsPath="$.a["),
            "Invalid path '$.a[': missing ']'",
            id="path-operand",
        ),
        pytest.param(
            rule("$.s[", IsPresent=True), "Invalid path '$.s[': missing ']'", id="variable"
        ),
        pytest.param({"IsNull": True}, 'A comparison needs a "Variable" field', id="no-variable"),
        pytest.param(
            {"Variable": "$.s"},
            "A Choice rule needs exactly one comparison operator, not 0",
            id="no-operator",
        ),
        pytest.param(
            {"And": [YES], "Or": [YES]},
            "A Choice rule needs exactly one comparison operator, not 2",
            id="two-combinators",
        ),
        pytest.param({"And": []}, 'Field "And" must be a non-empty list of rules', id="empty-And"),
        pytest.param({"Or": "YES"}, 'Field "Or" must be a non-empty list of rules', id="Or-string"),
        pytest.param({"Not": "YES"}, "A Choice rule must be an object", id="Not-string"),
    ],
)
def test_rules_check_refuses_are_parse_errors(choice: dict[str, Any], problem: str) -> None:
    """A rule `stepd check` refuses raises ParseError with check's words, whatever the data."""
    with pytest.raises(ParseError) as raised:
        matches(choice, DATA, CONTEXT)
    assert problem == raised.value.problem
