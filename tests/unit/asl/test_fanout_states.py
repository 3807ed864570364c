"""Parallel and Map states on entry: the children's inputs, limits and tolerances."""

from __future__ import annotations

import json
from typing import Any

import pytest
from tests.unit.asl.asl_support import NOW, context, machine

from stepd.asl.decisions import Caught, Fail, FanOut, GoTo, JsonText, RetryAt, Succeed
from stepd.asl.interpreter import (
    branch,
    enter,
    map_inputs,
    passed_through,
    task_failed,
    task_succeeded,
)

PASS_END = {"StartAt": "P", "States": {"P": {"Type": "Pass", "End": True}}}
PROCESSOR = {"ItemProcessor": PASS_END}


def run(state: dict[str, Any], state_input: Any) -> Any:
    """enter a definition made of `state` (named S) with `state_input`."""
    return enter(machine("S", {"End": True, **state}), "S", state_input, context("S"), NOW)


def fan_map(inputs: list[Any], limit: int = 40, **kw: Any) -> FanOut:
    return FanOut(kind="Map", inputs=tuple(inputs), limit=limit, **kw)


@pytest.mark.parametrize(
    ("state", "state_input", "expected"),
    [
        pytest.param(
            {"Type": "Parallel", "Branches": [PASS_END, PASS_END]},
            {"a": 1},
            FanOut(kind="Parallel", inputs=({"a": 1}, {"a": 1}), limit=2),
            id="parallel-every-branch-gets-the-input",
        ),
        pytest.param(
            {
                "Type": "Parallel",
                "Branches": [PASS_END],
                "InputPath": "$.x",
                "Parameters": {"v.$": "$.y"},
            },
            {"x": {"y": 5}},
            FanOut(kind="Parallel", inputs=({"v": 5},), limit=1),
            id="parallel-input-path-then-parameters",
        ),
        pytest.param(
            {"Type": "Map", **PROCESSOR}, [1, 2, 3], fan_map([1, 2, 3]), id="map-items-at-root"
        ),
        pytest.param(
            {"Type": "Map", "ItemsPath": "$.xs", **PROCESSOR},
            {"xs": ["a"], "other": 1},
            fan_map(["a"]),
            id="map-items-path",
        ),
        pytest.param(
            {"Type": "Map", "InputPath": "$.d", "ItemsPath": "$.xs", **PROCESSOR},
            {"d": {"xs": [7]}},
            fan_map([7]),
            id="map-items-path-after-input-path",
        ),
        pytest.param(
            {
                "Type": "Map",
                "ItemsPath": "$.xs",
                "ItemSelector": {
                    "i.$": "$$.Map.Item.Index",
                    "v.$": "$$.Map.Item.Value",
                    "k.$": "$.k",
                },
                **PROCESSOR,
            },
            {"xs": ["a", "b"], "k": 9},
            fan_map([{"i": 0, "v": "a", "k": 9}, {"i": 1, "v": "b", "k": 9}]),
            id="map-item-selector",
        ),
        pytest.param(
            {"Type": "Map", "Parameters": {"v.$": "$$.Map.Item.Value"}, "Iterator": PASS_END},
            ["a"],
            fan_map([{"v": "a"}]),
            id="map-legacy-parameters-and-iterator",
        ),
        pytest.param(
            {"Type": "Map", "MaxConcurrency": 1, **PROCESSOR},
            [1],
            fan_map([1], 1, max_concurrency=1),
            id="max-1",
        ),
        pytest.param(
            {"Type": "Map", "MaxConcurrency": 500, **PROCESSOR},
            [1],
            fan_map([1], 40, max_concurrency=500),
            id="max-concurrency-capped-at-40",
        ),
        pytest.param(
            {"Type": "Map", "MaxConcurrencyPath": "$$.Execution.Input.n", **PROCESSOR},
            [1],
            fan_map([1], 40),
            id="max-concurrency-path-0-is-no-limit",
        ),
        pytest.param(
            {"Type": "Map", "ItemBatcher": {"MaxItemsPerBatch": 2}, **PROCESSOR},
            [1, 2, 3],
            fan_map([{"Items": [1, 2]}, {"Items": [3]}]),
            id="item-batcher",
        ),
        pytest.param(
            {
                "Type": "Map",
                "ItemSelector": {"v.$": "$$.Map.Item.Value"},
                "ItemBatcher": {"MaxItemsPerBatch": 5, "BatchInput": {"n.$": "$[0]"}},
                **PROCESSOR,
            },
            [1, 2],
            fan_map([{"Items": [{"v": 1}, {"v": 2}], "BatchInput": {"n": 1}}]),
            id="item-batcher-after-item-selector-with-batch-input",
        ),
        pytest.param(
            {"Type": "Map", "ItemBatcher": {"MaxInputBytesPerBatch": 30}, **PROCESSOR},
            ["aaaaaaaa", "bbbbbbbb", "cccccccc", "d"],
            # {"Items":["aaaaaaaa"]} is 23 bytes; one more item would make it 34
            fan_map(
                [{"Items": ["aaaaaaaa"]}, {"Items": ["bbbbbbbb"]}, {"Items": ["cccccccc", "d"]}]
            ),
            id="item-batcher-bytes",
        ),
        pytest.param(
            {
                "Type": "Map",
                "ItemBatcher": {"MaxItemsPerBatch": 2, "MaxInputBytesPerBatchPath": "$[0]"},
                **PROCESSOR,
            },
            [100, 2, 3, 4, 5],
            fan_map([{"Items": [100, 2]}, {"Items": [3, 4]}, {"Items": [5]}]),
            id="item-batcher-items-and-bytes-path",
        ),
        pytest.param(
            {
                "Type": "Map",
                "QueryLanguage": "JSONata",
                "Items": "{% $states.input.xs %}",
                "ItemBatcher": {
                    "MaxItemsPerBatch": "{% $states.input.n %}",
                    "BatchInput": {"k": "{% $states.input.k %}"},
                },
                **PROCESSOR,
            },
            {"xs": [1, 2, 3], "n": 2, "k": "K"},
            fan_map(
                [
                    {"Items": [1, 2], "BatchInput": {"k": "K"}},
                    {"Items": [3], "BatchInput": {"k": "K"}},
                ]
            ),
            id="jsonata-item-batcher",
        ),
        pytest.param(
            {
                "Type": "Map",
                "QueryLanguage": "JSONata",
                "ItemBatcher": {"MaxInputBytesPerBatch": "{% 18 %}"},
                **PROCESSOR,
            },
            [1, 22, 333, 4444],
            fan_map([{"Items": [1, 22]}, {"Items": [333]}, {"Items": [4444]}]),
            id="jsonata-item-batcher-bytes",
        ),
        pytest.param(
            {
                "Type": "Map",
                "ToleratedFailureCount": 2,
                "ToleratedFailurePercentage": 50,
                **PROCESSOR,
            },
            [1],
            fan_map([1], tolerated_count=2, tolerated_percentage=50.0),
            id="tolerated-failures",
        ),
        pytest.param({"Type": "Map", **PROCESSOR}, [], fan_map([]), id="map-of-nothing"),
    ],
)
def test_enter_fans_out(state: dict[str, Any], state_input: Any, expected: FanOut) -> None:
    """Parallel and Map states enter as a FanOut listing each child's input in order."""
    ctx = context("S", execution_input={"n": 0})
    actual = enter(machine("S", {"End": True, **state}), "S", state_input, ctx, NOW)
    assert expected == actual


@pytest.mark.parametrize(
    ("state", "state_input", "cause"),
    [
        pytest.param(
            {"Type": "Map", "ItemsPath": "$.x", **PROCESSOR},
            {"x": {"a": 1}},
            'The ItemsPath field must reference a JSON array: $.x == {"a":1}',
            id="items-not-an-array",
        ),
        pytest.param(
            {"Type": "Map", "MaxConcurrency": -1, **PROCESSOR},
            [1],
            "MaxConcurrency must be a non-negative integer: -1",
            id="negative-max-concurrency",
        ),
        pytest.param(
            {"Type": "Map", "ToleratedFailurePercentage": 101, **PROCESSOR},
            [1],
            "ToleratedFailurePercentage must be between 0 and 100.",
            id="percentage-above-100",
        ),
    ],
)
def test_enter_fails_on_bad_map_input(state: dict[str, Any], state_input: Any, cause: str) -> None:
    """A Map that cannot list its items fails with States.Runtime saying why."""
    assert Fail(error="States.Runtime", cause=cause) == run(state, state_input)


def test_branch_is_the_parallel_branch_or_the_map_processor() -> None:
    """Each slot of a Parallel runs its own branch; every Map item runs the processor."""
    other = {"StartAt": "Q", "States": {"Q": {"Type": "Succeed"}}}
    definition = {
        "StartAt": "P",
        "States": {
            "P": {"Type": "Parallel", "Branches": [PASS_END, other], "Next": "M"},
            "M": {"Type": "Map", "Iterator": other, "End": True},
        },
    }
    assert [branch(definition, "P", 1), branch(definition, "M", 7)] == [other, other]


def test_results_go_through_result_selector_and_result_path_in_order() -> None:
    """The children's outputs, in slot order, are the state's result like a Task's."""
    state = {
        "Type": "Map",
        **PROCESSOR,
        "ResultSelector": {"all.$": "$"},
        "ResultPath": "$.out",
        "Next": "N",
    }
    decision = task_succeeded(machine("S", state), "S", {"in": 1}, [3, 1, 2], context("S"))
    assert GoTo(next_state="N", output={"in": 1, "out": {"all": [3, 1, 2]}}) == decision


@pytest.mark.parametrize(
    ("fields", "expected"),
    [
        pytest.param(
            {"Retry": [{"ErrorEquals": ["E"], "IntervalSeconds": 3}]},
            RetryAt(until=NOW.replace(second=3), retry_counts=(1,), error="E", cause="c"),
            id="retried",
        ),
        pytest.param(
            {"Catch": [{"ErrorEquals": ["States.ALL"], "Next": "N", "ResultPath": "$.err"}]},
            Caught(
                next_state="N",
                output={"a": 1, "err": {"Error": "E", "Cause": "c"}},
                error="E",
                cause="c",
            ),
            id="caught",
        ),
        pytest.param({}, Fail(error="E", cause="c"), id="fails-with-the-childs-error"),
    ],
)
def test_a_failed_child_meets_the_states_retry_and_catch(
    fields: dict[str, Any], expected: Any
) -> None:
    """A child's failure is the Parallel/Map state's own: Retry, then Catch, with its error."""
    state = {"Type": "Parallel", "Branches": [PASS_END], "End": True, **fields}
    decision = task_failed(machine("S", state), "S", {"a": 1}, "E", "c", (), NOW, lambda: 0.5)
    assert expected == decision


WINDOWED_MAPS = {
    "jsonpath-selector": {
        "Type": "Map",
        "ItemSelector": {
            "i.$": "$$.Map.Item.Index",
            "v.$": "$$.Map.Item.Value",
            "u.$": "States.UUID()",
        },
        **PROCESSOR,
    },
    "jsonpath-batcher": {
        "Type": "Map",
        "ItemsPath": "$.xs",
        "ItemSelector": {"v.$": "$$.Map.Item.Value", "u.$": "States.UUID()"},
        "ItemBatcher": {"MaxItemsPerBatch": 3, "BatchInput": {"k.$": "$.k"}},
        **PROCESSOR,
    },
    "jsonata-batcher": {
        "Type": "Map",
        "QueryLanguage": "JSONata",
        "Items": "{% $states.input.xs %}",
        "ItemSelector": {"v": "{% $states.context.Map.Item.Value %}", "u": "{% $uuid() %}"},
        "ItemBatcher": {"MaxItemsPerBatch": 3, "BatchInput": {"k": "{% $states.input.k %}"}},
        **PROCESSOR,
    },
    "jsonpath-bytes": {
        "Type": "Map",
        "ItemsPath": "$.xs",
        "ItemSelector": {"v.$": "$$.Map.Item.Value", "u.$": "States.UUID()"},
        "ItemBatcher": {"MaxInputBytesPerBatch": 200, "BatchInput": {"k.$": "$.k"}},
        **PROCESSOR,
    },
    "jsonata-selector": {
        "Type": "Map",
        "QueryLanguage": "JSONata",
        "Items": "{% $states.input.xs %}",
        "ItemSelector": {"v": "{% $states.context.Map.Item.Value %}", "u": "{% $uuid() %}"},
        **PROCESSOR,
    },
}


@pytest.mark.parametrize("name", sorted(WINDOWED_MAPS))
@pytest.mark.parametrize(("start", "stop"), [(0, 4), (3, 5), (5, 99)])
def test_the_inputs_of_some_slots_are_those_the_entry_gave_them(name: str, start: int, stop: int):
    """A Map's children beyond the first window get their inputs later, evaluated again for
    their slots only: the same values `enter` listed, UUIDs included."""
    definition = machine("S", {"End": True, **WINDOWED_MAPS[name]})
    state_input: Any = [{"n": n} for n in range(17)]
    if name != "jsonpath-selector":
        state_input = {"xs": state_input, "k": "key"}
    entered = enter(definition, "S", state_input, context("S"), NOW)
    assert isinstance(entered, FanOut)
    some = map_inputs(definition, "S", state_input, context("S"), NOW, start, stop)
    assert some == list(entered.inputs[start:stop])
    assert len({json.dumps(i, sort_keys=True) for i in entered.inputs}) == len(entered.inputs)


@pytest.mark.parametrize(
    ("fields", "passes"),
    [
        ({}, True),
        ({"ResultPath": "$", "OutputPath": "$"}, True),
        ({"ResultPath": "$.r"}, False),
        ({"ResultPath": None}, False),
        ({"OutputPath": "$[0]"}, False),
        ({"ResultSelector": {"a.$": "$[0]"}}, False),
        ({"Assign": {"x": 1}}, False),
        ({"QueryLanguage": "JSONata"}, False),
    ],
)
def test_a_result_passed_on_as_it_is_needs_no_reading(fields: dict[str, Any], passes: bool):
    """Only a state whose output is its result, unchanged, takes the gathered text as it is."""
    definition = machine("S", {"Type": "Map", "End": True, **PROCESSOR, **fields})
    result = JsonText("[1,2]")
    decided = passed_through(definition, "S", result)
    assert decided == (Succeed(output=result) if passes else None)


READER = {"Resource": "arn:aws:states:::s3:getObject", "Parameters": {"Bucket": "b", "Key": "k"}}


@pytest.mark.parametrize("language", ["JSONPath", "JSONata"])
def test_a_map_with_an_item_reader_fails_with_item_reader_failed(language: str) -> None:
    """stepd reads no S3 object: the state fails with States.ItemReaderFailed saying so, and
    not as if its input were the items."""
    state = {"Type": "Map", "ItemReader": READER, "QueryLanguage": language, **PROCESSOR}
    ctx = context("S", execution_input={})
    decision = enter(machine("S", {"End": True, **state}), "S", [1, 2], ctx, NOW)
    assert isinstance(decision, Fail)
    assert decision.error == "States.ItemReaderFailed"
    assert "ItemReader" in (decision.cause or "")


def test_a_catch_takes_item_reader_failed() -> None:
    state = {
        "Type": "Map",
        "ItemReader": READER,
        "Catch": [{"ErrorEquals": ["States.ItemReaderFailed"], "Next": "S"}],
        **PROCESSOR,
    }
    ctx = context("S", execution_input={})
    decision = enter(machine("S", {"End": True, **state}), "S", {"a": 1}, ctx, NOW)
    assert isinstance(decision, Caught)
    assert decision.output["Error"] == "States.ItemReaderFailed"
