"""AWS's Lambda integration (`arn:aws:states:::lambda:invoke`): which function the Parameters
name, what the function is sent, and the shape of the task's result."""

from __future__ import annotations

from typing import Any

import pytest

from stepd.asl.integrations import (
    function_keys,
    is_lambda_invoke,
    lambda_payload,
    lambda_result,
    names_a_function,
)
from stepd.errors import InvalidPayload

ARN = "arn:aws:lambda:us-east-1:123456789012:function:adder"


@pytest.mark.parametrize(
    ("resource", "expected"),
    [
        pytest.param("arn:aws:states:::lambda:invoke", True, id="invoke"),
        pytest.param("arn:aws:states:::lambda:invoke.waitForTaskToken", True, id="callback"),
        pytest.param(ARN, False, id="function-arn"),
        pytest.param("arn:aws:states:::http:invoke", False, id="http-task"),
        pytest.param({"Fn::GetAtt": ["adder", "Arn"]}, False, id="getatt"),
    ],
)
def test_is_lambda_invoke(resource: Any, expected: bool) -> None:
    """Only the integration's Resource, plain or `.waitForTaskToken`, is the integration."""
    assert expected == is_lambda_invoke(resource)


@pytest.mark.parametrize(
    ("function_name", "keys"),
    [
        pytest.param("adder", ["adder"], id="name"),
        pytest.param("adder:live", ["adder:live", "adder"], id="name-with-alias"),
        pytest.param(ARN, [ARN, "adder"], id="arn"),
        pytest.param(f"{ARN}:7", [f"{ARN}:7", "adder"], id="arn-with-version"),
        pytest.param(
            "123456789012:function:adder", ["123456789012:function:adder", "adder"], id="partial"
        ),
        pytest.param("", [], id="empty"),
        pytest.param(None, [], id="none"),
    ],
)
def test_a_function_is_mapped_by_its_name_as_written_then_its_own(
    function_name: Any, keys: list[str]
) -> None:
    """FunctionName gives the keys a config may use: as written, then the function's name."""
    assert keys == function_keys(function_name)


@pytest.mark.parametrize(
    ("parameters", "sent"),
    [
        pytest.param({"FunctionName": ARN, "Payload": {"x": 5}}, {"x": 5}, id="payload"),
        pytest.param({"FunctionName": ARN, "Payload": [1, "a"]}, [1, "a"], id="array-payload"),
        pytest.param({"FunctionName": ARN}, {}, id="no-payload"),
        pytest.param({"token": "t", "room": "B12"}, {"token": "t", "room": "B12"}, id="no-name"),
        pytest.param("text", "text", id="not-an-object"),
    ],
)
def test_the_function_is_sent_the_payload(parameters: Any, sent: Any) -> None:
    """Parameters naming a function send their Payload; others are sent as they are."""
    assert sent == lambda_payload(parameters)
    assert names_a_function(parameters) == (
        isinstance(parameters, dict) and "FunctionName" in parameters
    )


def test_the_result_is_shaped_as_aws_invoke_answer() -> None:
    """The function's answer is the result's Payload, beside AWS's Invoke metadata and the
    headers AWS records."""
    result = lambda_result(
        {"sum": 6},
        request_id="req-1",
        date="Tue, 15 Jan 2027 08:00:00 GMT",
        trace_id="Root=1-abc",
        content_length=10,
    )
    headers = {
        "Connection": "keep-alive",
        "Content-Length": "10",
        "Content-Type": "application/json",
        "Date": "Tue, 15 Jan 2027 08:00:00 GMT",
        "X-Amz-Executed-Version": "$LATEST",
        "x-amzn-Remapped-Content-Length": "0",
        "x-amzn-RequestId": "req-1",
        "X-Amzn-Trace-Id": "Root=1-abc",
    }
    assert result == {
        "ExecutedVersion": "$LATEST",
        "Payload": {"sum": 6},
        "SdkHttpMetadata": {
            "AllHttpHeaders": {name: [value] for name, value in headers.items()},
            "HttpHeaders": headers,
            "HttpStatusCode": 200,
        },
        "SdkResponseMetadata": {"RequestId": "req-1"},
        "StatusCode": 200,
    }


@pytest.mark.parametrize(
    ("payload", "sent"),
    [
        pytest.param("0", 0, id="number"),
        pytest.param("0.0", 0.0, id="float"),
        pytest.param("true", True, id="boolean"),
        pytest.param('"HelloWorld"', "HelloWorld", id="string"),
        pytest.param("{}", {}, id="object"),
        pytest.param("[]", [], id="array"),
        pytest.param(' {"a": [1, null]} ', {"a": [1, None]}, id="with-spaces"),
        pytest.param(None, {}, id="null"),
    ],
)
def test_a_string_payload_is_json_text(payload: Any, sent: Any) -> None:
    """A string Payload is the JSON text sent to the function, as AWS sends its bytes; a null
    one sends `{}`, as a Lambda function invoked without a payload gets."""
    actual = lambda_payload({"FunctionName": ARN, "Payload": payload})
    assert (sent, type(sent)) == (actual, type(actual))


@pytest.mark.parametrize("payload", ["HelloWorld", "", "{", "NaN", "[1] 2"])
def test_a_string_payload_that_is_not_json_text_is_refused(payload: str) -> None:
    """AWS Lambda refuses a payload that is not JSON text; nothing is sent."""
    with pytest.raises(InvalidPayload):
        lambda_payload({"FunctionName": ARN, "Payload": payload})
