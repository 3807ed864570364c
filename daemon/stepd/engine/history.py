"""History events shaped as AWS Step Functions' GetExecutionHistory returns them."""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

from stepd import jsontext
from stepd.asl.decisions import JsonText

RESOURCE_TYPE = "http"
# Keys of stepd's own in an event's details, never shown through the API (`shown`):
# MAP_RUN_CHILD marks an event of a child of a DISTRIBUTED Map (AWS records those in the
# child executions, not in the execution's history): {"run": id of the MapRunStarted event,
# "index": the child's index}; MAP_RUN_ITERATION marks a Map Run's MapIteration events (not
# shown either) the same way; MAP_RUN_FACTS in MapRunStarted keeps the run's settings, and
# MAP_RUN_END in MapRunSucceeded and MapRunFailed names the run.
MAP_RUN_CHILD = "stepdMapRunChild"
MAP_RUN_ITERATION = "stepdMapRunIteration"
MAP_RUN_FACTS = "stepdMapRunFacts"
MAP_RUN_END = "stepdMapRun"
PRIVATE = frozenset({MAP_RUN_CHILD, MAP_RUN_ITERATION, MAP_RUN_FACTS, MAP_RUN_END})
MAX_PAYLOAD_CHARS = 262_144  # AWS truncates history payloads beyond 256 KiB


def dumps(value: Any) -> str:
    """JSON text as stored and returned (compact, key order kept); a `JsonText` as it is."""
    if isinstance(value, JsonText):
        return value.text
    return jsontext.compact(value)


def _payload(text: str) -> dict[str, Any]:
    return {"truncated": len(text) > MAX_PAYLOAD_CHARS}


def execution_started(input_text: str, role_arn: str) -> dict[str, Any]:
    return {
        "executionStartedEventDetails": {
            "input": input_text,
            "inputDetails": _payload(input_text),
            "roleArn": role_arn,
        }
    }


def execution_succeeded(output: str) -> dict[str, Any]:
    return {"executionSucceededEventDetails": {"output": output, "outputDetails": _payload(output)}}


def _error_cause(error: str | None, cause: str | None) -> dict[str, Any]:
    details: dict[str, Any] = {}
    if error:  # SendTaskFailure may give none: AWS records no `error` then
        details["error"] = error
    if cause is not None:
        details["cause"] = cause
    return details


def execution_failed(error: str | None, cause: str | None) -> dict[str, Any]:
    return {"executionFailedEventDetails": _error_cause(error, cause)}


def execution_aborted(error: str | None, cause: str | None) -> dict[str, Any]:
    return {"executionAbortedEventDetails": _error_cause(error, cause)}


def execution_redriven(redrive_count: int) -> dict[str, Any]:
    return {"executionRedrivenEventDetails": {"redriveCount": redrive_count}}


def state_entered(name: str, input_text: str) -> dict[str, Any]:
    return {
        "stateEnteredEventDetails": {
            "name": name,
            "input": input_text,
            "inputDetails": _payload(input_text),
        }
    }


def state_exited(
    name: str, output_text: str, assigned: Mapping[str, Any] | None = None
) -> dict[str, Any]:
    """`assigned`: the variables the state's Assign set, each value as JSON text."""
    details: dict[str, Any] = {}
    if assigned is not None:
        details["assignedVariables"] = {k: dumps(v) for k, v in assigned.items()}
        details["assignedVariablesDetails"] = {"truncated": False}
    details.update(name=name, output=output_text, outputDetails=_payload(output_text))
    return {"stateExitedEventDetails": details}


_INTEGRATION = "arn:aws:states:::"


def task_resource(resource: str) -> dict[str, str]:
    """A Task's `resourceType` and `resource` as AWS records them: an AWS service integration
    (`arn:aws:states:::states:startExecution.sync`) by its service and action (`states`,
    `startExecution.sync`; an SDK integration's type is `aws-sdk:<service>`); any other
    Resource (a stepd task, called over HTTP) as it is."""
    if resource.startswith(_INTEGRATION):
        service, _, action = resource[len(_INTEGRATION) :].partition(":")
        if service == "aws-sdk":
            sdk, _, action = action.partition(":")
            service = f"aws-sdk:{sdk}"
        if service and action:
            return {"resourceType": service, "resource": action}
    return {"resourceType": RESOURCE_TYPE, "resource": resource}


def task_scheduled(
    resource: str, parameters: str, timeout: float | None, region: str
) -> dict[str, Any]:
    details: dict[str, Any] = {
        **task_resource(resource),
        "region": region,
        "parameters": parameters,
    }
    if timeout is not None:
        details["timeoutInSeconds"] = int(timeout)
    return {"taskScheduledEventDetails": details}


def is_lambda_function(resource: str) -> bool:
    """A Resource that is a Lambda function's ARN: AWS records its calls as LambdaFunction*
    events, not Task* ones (`arn:aws:states:::lambda:invoke` is a Task like any other)."""
    return resource.startswith("arn:") and ":lambda:" in resource and ":function:" in resource


def lambda_scheduled(resource: str, payload: str, timeout: float | None) -> dict[str, Any]:
    details: dict[str, Any] = {
        "resource": resource,
        "input": payload,
        "inputDetails": _payload(payload),
    }
    if timeout is not None:
        details["timeoutInSeconds"] = int(timeout)
    return {"lambdaFunctionScheduledEventDetails": details}


def lambda_succeeded(output: str) -> dict[str, Any]:
    return {
        "lambdaFunctionSucceededEventDetails": {"output": output, "outputDetails": _payload(output)}
    }


def lambda_failed(error: str, cause: str | None, *, timed_out: bool) -> dict[str, Any]:
    key = "lambdaFunctionTimedOutEventDetails" if timed_out else "lambdaFunctionFailedEventDetails"
    return {key: _error_cause(error, cause)}


def activity_scheduled(
    resource: str, payload: str, timeout: float | None, heartbeat: float | None
) -> dict[str, Any]:
    """An activity Task's work is queued for a worker (AWS: ActivityScheduled)."""
    details: dict[str, Any] = {
        "resource": resource,
        "input": payload,
        "inputDetails": _payload(payload),
    }
    if timeout is not None:
        details["timeoutInSeconds"] = int(timeout)
    if heartbeat is not None:
        details["heartbeatInSeconds"] = int(heartbeat)
    return {"activityScheduledEventDetails": details}


def activity_started(worker: str | None) -> dict[str, Any]:
    """A worker took the task (GetActivityTask); AWS leaves workerName out without one."""
    return {"activityStartedEventDetails": {} if worker is None else {"workerName": worker}}


def activity_succeeded(output: str) -> dict[str, Any]:
    return {"activitySucceededEventDetails": {"output": output, "outputDetails": _payload(output)}}


def activity_failed(error: str, cause: str | None, *, timed_out: bool) -> dict[str, Any]:
    key = "activityTimedOutEventDetails" if timed_out else "activityFailedEventDetails"
    return {key: _error_cause(error, cause)}


def task_started(resource: str) -> dict[str, Any]:
    return {"taskStartedEventDetails": task_resource(resource)}


def task_submitted(resource: str, output: str) -> dict[str, Any]:
    """A `.sync` Task's call was answered; the task now waits for what it started to end."""
    return {
        "taskSubmittedEventDetails": {
            **task_resource(resource),
            "output": output,
            "outputDetails": _payload(output),
        }
    }


def task_succeeded(resource: str, output: str) -> dict[str, Any]:
    return {
        "taskSucceededEventDetails": {
            **task_resource(resource),
            "output": output,
            "outputDetails": _payload(output),
        }
    }


def task_failed(resource: str, error: str, cause: str | None) -> dict[str, Any]:
    return {
        "taskFailedEventDetails": {
            **task_resource(resource),
            **_error_cause(error, cause),
        }
    }


def task_timed_out(resource: str, error: str, cause: str | None) -> dict[str, Any]:
    return {
        "taskTimedOutEventDetails": {
            **task_resource(resource),
            **_error_cause(error, cause),
        }
    }


_FIELD = re.compile(r"specified for the field '([^']+)'|\. The (Timestamp|Seconds) field ")


def evaluation_failed(error: str, cause: str | None, state: str) -> dict[str, Any]:
    """A JSONata expression of `state` failed; the field it names is the location."""
    details: dict[str, Any] = {**_error_cause(error, cause), "state": state}
    field = _FIELD.search(cause or "")
    if field:
        details["location"] = field[1] or field[2]
    return {"evaluationFailedEventDetails": details}


def execution_timed_out(error: str, cause: str | None) -> dict[str, Any]:
    return {"executionTimedOutEventDetails": _error_cause(error, cause)}


def fanout_started(kind: str, length: int) -> dict[str, Any]:
    """ParallelStateStarted has no details; MapStateStarted says how many items."""
    return {"mapStateStartedEventDetails": {"length": length}} if kind == "Map" else {}


def map_iteration(event_type: str, name: str, index: int) -> dict[str, Any]:
    """MapIterationStarted, MapIterationSucceeded, MapIterationFailed, MapIterationAborted."""
    key = event_type[0].lower() + event_type[1:] + "EventDetails"
    return {key: {"name": name, "index": index}}


def map_run_started(arn: str, facts: dict[str, Any]) -> dict[str, Any]:
    return {"mapRunStartedEventDetails": {"mapRunArn": arn}, MAP_RUN_FACTS: facts}


def map_run_ended(run: int) -> dict[str, Any]:
    """MapRunSucceeded or MapRunAborted of the run whose MapRunStarted has the id `run`."""
    return {MAP_RUN_END: run}


def map_run_failed(run: int, error: str | None, cause: str | None) -> dict[str, Any]:
    return {"mapRunFailedEventDetails": _error_cause(error, cause), MAP_RUN_END: run}


def map_run_redriven(run: int, started: dict[str, Any], execution_redrives: int) -> dict[str, Any]:
    """MapRunRedriven of the run whose MapRunStarted had the id `run` and the details
    `started`, when its execution is redriven for the `execution_redrives`th time (a run below
    another one stays out of sight as its MapRunStarted does)."""
    arn = (started.get("mapRunStartedEventDetails") or {}).get("mapRunArn")
    before = int((started.get(MAP_RUN_FACTS) or {}).get("executionRedrives", 0))
    details: dict[str, Any] = {
        "mapRunRedrivenEventDetails": {
            "mapRunArn": arn,
            "redriveCount": execution_redrives - before,
        },
        MAP_RUN_END: run,
    }
    if MAP_RUN_CHILD in started:
        details[MAP_RUN_CHILD] = started[MAP_RUN_CHILD]
    return details


def hidden(details: dict[str, Any]) -> bool:
    """Whether an event with these details is a Map Run's child's (not shown)."""
    return MAP_RUN_CHILD in details or MAP_RUN_ITERATION in details


def shown(details: dict[str, Any]) -> dict[str, Any]:
    """`details` without stepd's own keys."""
    if PRIVATE.isdisjoint(details):
        return details
    return {k: v for k, v in details.items() if k not in PRIVATE}
