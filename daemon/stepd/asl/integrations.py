"""Task Resources that stepd runs itself instead of calling an endpoint: activities (a worker
takes the task with GetActivityTask) and nested executions (`states:startExecution`); and
AWS's Lambda integration (`arn:aws:states:::lambda:invoke`), whose call goes to an endpoint
as AWS would invoke the function: its Parameters name the function and hold its payload, and
the result is wrapped as AWS's Invoke answer.
"""

from __future__ import annotations

import functools
import re
from collections.abc import Mapping
from typing import Any, Final

from stepd import jsontext
from stepd.errors import InvalidPayload

START_EXECUTION: Final = "arn:aws:states:::states:startExecution"
SYNC: Final = ".sync"  # wait for the child: its DescribeExecution answer, Output as text
SYNC2: Final = ".sync:2"  # wait for the child: its DescribeExecution answer, Output as JSON
CALLBACK: Final = ".waitForTaskToken"  # wait for a callback with the parent's token
START_EXECUTION_MODES: Final = ("", SYNC, SYNC2, CALLBACK)
_ACTIVITY: Final = re.compile(r"arn:aws:states:[a-z0-9-]+:[0-9]{12}:activity:[^:]+")
LAMBDA_INVOKE: Final = "arn:aws:states:::lambda:invoke"
LAMBDA_INVOKE_RESOURCES: Final = frozenset({LAMBDA_INVOKE, LAMBDA_INVOKE + CALLBACK})
FUNCTION_NAME: Final = "FunctionName"
PAYLOAD: Final = "Payload"
EXECUTED_VERSION: Final = "$LATEST"
INVOKED: Final = 200  # the status of AWS Lambda's answer to a synchronous Invoke
_FUNCTION: Final = re.compile(  # a function's ARN, partial ARN or name, with its qualifier
    r"(?:arn:[^:]+:lambda:[^:]*:)?(?:[0-9]{12}:)?(?:function:)?([^:]+)(?::[^:]+)?"
)


def is_activity(resource: Any) -> bool:
    """Whether a Task with this Resource gives its work to an activity's workers."""
    return isinstance(resource, str) and _ACTIVITY.fullmatch(resource) is not None


def start_execution_mode(resource: Any) -> str | None:
    """ "", ".sync", ".sync:2" or ".waitForTaskToken" for a `states:startExecution` Resource;
    None for any other."""
    if not isinstance(resource, str) or not resource.startswith(START_EXECUTION):
        return None
    mode = resource.removeprefix(START_EXECUTION)
    return mode if mode in START_EXECUTION_MODES else None


def runs_inside(resource: Any) -> bool:
    """Whether stepd runs a Task with this Resource itself (no endpoint to map)."""
    return is_activity(resource) or start_execution_mode(resource) is not None


def waits_for_result(resource: Any) -> bool:
    """Whether a Task with this Resource gets a task token and waits for its result after its
    call is answered: a callback, an activity's worker, or a nested execution to end."""
    return isinstance(resource, str) and _waits_for_result(resource)


@functools.lru_cache(maxsize=1024)  # asked on each entry of a Task state
def _waits_for_result(resource: str) -> bool:
    if is_activity(resource):
        return True
    return start_execution_mode(resource) in {SYNC, SYNC2} or resource.endswith(CALLBACK)


def is_lambda_invoke(resource: Any) -> bool:
    """Whether a Task with this Resource uses AWS's Lambda integration (`lambda:invoke`, or its
    `.waitForTaskToken` form)."""
    return isinstance(resource, str) and resource in LAMBDA_INVOKE_RESOURCES


def names_a_function(parameters: Any) -> bool:
    """Whether a `lambda:invoke` Task's rendered Parameters (or Arguments) name the function
    to invoke, as AWS requires: then the call is AWS's Invoke. Parameters without
    `FunctionName` (stepd 0.1 accepted them) are sent as they are, and the answer is the
    result."""
    return isinstance(parameters, Mapping) and isinstance(parameters.get(FUNCTION_NAME), str)


def function_keys(function_name: Any) -> list[str]:
    """The names a config may map a function by: FunctionName as written, then the function's
    own name (of an ARN or a partial ARN, without its version or alias), the names
    `arn:aws:lambda:…:function:NAME` Resources are mapped by too."""
    if not isinstance(function_name, str) or not function_name:
        return []
    match = _FUNCTION.fullmatch(function_name)
    name = match[1] if match is not None else function_name
    return list(dict.fromkeys((function_name, name)))


def lambda_payload(parameters: Any) -> Any:
    """What AWS sends the function a `lambda:invoke` Task names: its `Payload`, a string
    being the JSON text to send (as AWS sends a string's bytes as they are), and `{}` when
    it has none or it is null; Parameters that name no function, as they are.

    Raises InvalidPayload for a string that is not JSON text, which AWS Lambda refuses.
    """
    if not names_a_function(parameters):
        return parameters
    payload = parameters.get(PAYLOAD)
    if payload is None:
        return {}
    if isinstance(payload, str):
        try:
            return _JSON_TEXT.decode(payload)
        except ValueError as exc:
            raise InvalidPayload(str(exc)) from exc
    return payload


def invalid_payload_cause(reason: str, request_id: str) -> str:
    """AWS's cause of Lambda.InvalidRequestContentException for a Payload that is not JSON."""
    return (
        f"Could not parse request body into json: {reason} (Service: AWSLambda; Status Code: "
        "400; Error Code: InvalidRequestContentException; "
        f"Request ID: {request_id}; Proxy: null)"
    )


def lambda_result(
    answer: Any, *, request_id: str, date: str, trace_id: str, content_length: int
) -> dict[str, Any]:
    """The result of a `lambda:invoke` Task whose function answered `answer` (a body of
    `content_length` bytes), in the shape of AWS's Invoke answer: the function's answer is its
    `Payload`, beside the headers AWS's SDK records (`date` is the answer's HTTP date)."""
    headers = {
        "Connection": "keep-alive",
        "Content-Length": str(content_length),
        "Content-Type": "application/json",
        "Date": date,
        "X-Amz-Executed-Version": EXECUTED_VERSION,
        "x-amzn-Remapped-Content-Length": "0",
        "x-amzn-RequestId": request_id,
        "X-Amzn-Trace-Id": trace_id,
    }
    return {
        "ExecutedVersion": EXECUTED_VERSION,
        PAYLOAD: answer,
        "SdkHttpMetadata": {
            "AllHttpHeaders": {name: [value] for name, value in headers.items()},
            "HttpHeaders": headers,
            "HttpStatusCode": INVOKED,
        },
        "SdkResponseMetadata": {"RequestId": request_id},
        "StatusCode": INVOKED,
    }


_JSON_TEXT: Final = jsontext.STRICT
