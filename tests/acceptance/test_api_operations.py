"""The operations beyond executions, as boto3 and the AWS CLI see them against a real daemon:
ValidateStateMachineDefinition, TestState, the machine/version/alias family that the config
file stands in for, tags, map runs, activities and StartSyncExecution.

botocore parses every answer with its own model of the service, so a wrong shape fails the
call itself; `model_problems` also catches keys and enum values a parser would drop.
"""

from __future__ import annotations

import hashlib
import json
import subprocess
import time
from typing import Any

import boto3
import httpx
import pytest
from botocore.config import Config
from tests.acceptance.callback_support import callback_machine, token_for

REGION = "us-east-1"
ACCOUNT = "123456789012"
QUICK_ARN = f"arn:aws:states:{REGION}:{ACCOUNT}:stateMachine:quick"
UNKNOWN_ARN = f"arn:aws:states:{REGION}:{ACCOUNT}:stateMachine:no-such-machine"
FAILING_ARN = f"arn:aws:states:{REGION}:{ACCOUNT}:stateMachine:failing"
ALIAS_ARN = f"{QUICK_ARN}:live"
MAP_RUN_ARN = f"arn:aws:states:{REGION}:{ACCOUNT}:mapRun:quick/Map:5e3d1bd2-0f9c-4c36-9d3c"
ACTIVITY_ARN = f"arn:aws:states:{REGION}:{ACCOUNT}:activity:review"
CLI_TIMEOUT_SECONDS = 60.0
CONFIG_HINT = "[[machines]]"  # every refusal of the machine family says how to add one

VALID = {
    "StartAt": "Prepare",
    "States": {
        "Prepare": {"Type": "Pass", "Result": {"room": "blue"}, "ResultPath": "$.p", "Next": "End"},
        "End": {"Type": "Succeed"},
    },
}
BROKEN = {
    "StartAt": "Prepare",
    "States": {
        "Prepare": {"Type": "Pass", "Next": "Nowhere"},
        "Wait": {"Type": "Wait", "End": True},
    },
}
# a Task whose result replaces the data, then a state reading the input: a WARNING only
WARNED = {
    "StartAt": "Call",
    "States": {
        "Call": {
            "Type": "Task",
            "Resource": f"arn:aws:lambda:{REGION}:{ACCOUNT}:function:f",
            "Next": "Nap",
        },
        "Nap": {"Type": "Wait", "TimestampPath": "$.end", "End": True},
    },
}
TASK = {
    "Type": "Task",
    "Resource": f"arn:aws:lambda:{REGION}:{ACCOUNT}:function:start-recording",
    "Parameters": {"room.$": "$.room"},
    "ResultSelector": {"id.$": "$.recordingId"},
    "ResultPath": "$.recording",
    "Retry": [
        {"ErrorEquals": ["Classroom.Busy"], "IntervalSeconds": 2, "MaxAttempts": 3},
    ],
    "Catch": [{"ErrorEquals": ["States.ALL"], "ResultPath": "$.error", "Next": "Cleanup"}],
    "Next": "Ping",
}


def model_problems(sfn: Any, operation: str, answer: dict[str, Any]) -> list[str]:
    """Keys the model's output shape does not know, and values outside its enums."""
    shape = sfn.meta.service_model.operation_model(operation).output_shape
    return _problems({k: v for k, v in answer.items() if k != "ResponseMetadata"}, shape, "$")


def _problems(value: Any, shape: Any, where: str) -> list[str]:
    if shape.type_name == "structure":
        found = []
        for key, item in value.items():
            member = shape.members.get(key)
            if member is None:
                found.append(f"{where}.{key}")
            else:
                found += _problems(item, member, f"{where}.{key}")
        missing = [
            f"{where}.{key} (required)" for key in shape.required_members if key not in value
        ]
        return found + missing
    if shape.type_name == "list":
        return [p for i, item in enumerate(value) for p in _problems(item, shape.member, f"{i}")]
    if shape.type_name == "string" and shape.enum and value not in shape.enum:
        return [f"{where}: {value!r} not in {shape.enum}"]
    return []


@pytest.fixture(scope="module")
def tsfn(daemon):
    """A client for TestState and StartSyncExecution: botocore sends those to the host
    "sync-" + the endpoint's host, which an address such as 127.0.0.1 cannot have, so the
    prefix is turned off (as the README tells users to)."""
    return boto3.client(
        "stepfunctions",
        endpoint_url=daemon.url,
        region_name=REGION,
        aws_access_key_id="stepd",
        aws_secret_access_key="stepd",
        config=Config(inject_host_prefix=False, retries={"total_max_attempts": 1}, read_timeout=30),
    )


def error_of(exc_info: pytest.ExceptionInfo[Any]) -> tuple[str, str]:
    error = exc_info.value.response["Error"]
    return error["Code"], error["Message"]


# -- ValidateStateMachineDefinition ----------------------------------------------------------


def test_validate_a_valid_definition_is_ok(sfn):
    answer = sfn.validate_state_machine_definition(definition=json.dumps(VALID))
    assert (answer["result"], answer["diagnostics"], answer["truncated"]) == ("OK", [], False)
    assert model_problems(sfn, "ValidateStateMachineDefinition", answer) == []


def test_validate_a_broken_definition_fails_with_located_diagnostics(sfn):
    answer = sfn.validate_state_machine_definition(definition=json.dumps(BROKEN), type="STANDARD")
    assert answer["result"] == "FAIL"
    found = {(d["severity"], d["code"], d.get("location")) for d in answer["diagnostics"]}
    assert ("ERROR", "MISSING_TRANSITION_TARGET", "/States/Prepare/Next") in found
    assert ("ERROR", "SCHEMA_VALIDATION_FAILED", "/States/Wait") in found
    assert model_problems(sfn, "ValidateStateMachineDefinition", answer) == []


def test_validate_reports_what_stepd_check_reports(sfn, tmp_path, stepd_cli):
    """The API and `stepd check` judge a definition with the same validator."""
    definition = tmp_path / "broken.asl.json"
    definition.write_text(json.dumps(BROKEN), encoding="utf-8")
    config = tmp_path / "stepd.toml"
    config.write_text(
        f'[store]\npath = "{tmp_path / "s.db"}"\n[http]\nbase_url = "http://127.0.0.1:9"\n'
        f'[[machines]]\nname = "broken"\ndefinition = "{definition}"\n',
        encoding="utf-8",
    )
    checked = stepd_cli("check", "-c", str(config))
    answer = sfn.validate_state_machine_definition(definition=json.dumps(BROKEN))
    assert checked.returncode == 78
    for diagnostic in answer["diagnostics"]:
        assert f"{diagnostic['code']}: {diagnostic['message']}" in checked.stdout


def test_validate_refuses_variable_names_aws_refuses(sfn, tmp_path, stepd_cli):
    """An Assign whose variable name AWS refuses (not an identifier, over 80 characters, or
    the reserved `states`) fails validation at that name, in the API and in `stepd check`."""
    assign = {"my-var": 1, "v" * 81: 2, "states": 3, "fine": 4}
    definition = {
        "StartAt": "Note",
        "States": {"Note": {"Type": "Pass", "Assign": assign, "End": True}},
    }
    answer = sfn.validate_state_machine_definition(definition=json.dumps(definition))
    assert answer["result"] == "FAIL"
    assert sorted((d["code"], d["location"]) for d in answer["diagnostics"]) == [
        ("SCHEMA_VALIDATION_FAILED", "/States/Note/Assign/my-var"),
        ("SCHEMA_VALIDATION_FAILED", "/States/Note/Assign/states"),
        ("SCHEMA_VALIDATION_FAILED", f"/States/Note/Assign/{'v' * 81}"),
    ]
    path = tmp_path / "note.asl.json"
    path.write_text(json.dumps(definition), encoding="utf-8")
    config = tmp_path / "stepd.toml"
    config.write_text(
        f'[store]\npath = "{tmp_path / "s.db"}"\n[http]\nbase_url = "http://127.0.0.1:9"\n'
        f'[[machines]]\nname = "note"\ndefinition = "{path}"\n',
        encoding="utf-8",
    )
    checked = stepd_cli("check", "-c", str(config))
    assert checked.returncode == 78
    assert '/States/Note/Assign/my-var: SCHEMA_VALIDATION_FAILED: The variable name "my-var"' in (
        checked.stdout
    )


def test_validate_warnings_only_with_severity_warning(sfn):
    errors_only = sfn.validate_state_machine_definition(definition=json.dumps(WARNED))
    with_warnings = sfn.validate_state_machine_definition(
        definition=json.dumps(WARNED), severity="WARNING"
    )
    assert (errors_only["result"], errors_only["diagnostics"]) == ("OK", [])
    assert with_warnings["result"] == "OK"
    assert {d["severity"] for d in with_warnings["diagnostics"]} == {"WARNING"}
    assert [d["location"] for d in with_warnings["diagnostics"]] == ["/States/Nap"]


def test_validate_max_results_truncates(sfn):
    answer = sfn.validate_state_machine_definition(definition=json.dumps(BROKEN), maxResults=1)
    assert (len(answer["diagnostics"]), answer["truncated"], answer["result"]) == (1, True, "FAIL")


@pytest.mark.parametrize(
    ("text", "code"),
    [
        ('{"StartAt": "A", "States": {', "INVALID_JSON_DESCRIPTION"),
        (
            '{"StartAt": "A", "States": {"A": {"Type": "Succeed"}, "A": {"Type": "Succeed"}}}',
            "DUPLICATE_STATE_NAME",
        ),
        (" ", "SCHEMA_VALIDATION_FAILED"),
    ],
    ids=["not-json", "duplicate-state", "blank"],
)
def test_validate_text_that_is_no_definition(sfn, text, code):
    answer = sfn.validate_state_machine_definition(definition=text)
    assert answer["result"] == "FAIL"
    assert [d["code"] for d in answer["diagnostics"]] == [code]


@pytest.mark.parametrize(
    ("definition", "message"),
    [
        ({}, "These fields are required: [States, StartAt]"),
        ({"States": {"A": {"Type": "Succeed"}}}, "These fields are required: [StartAt]"),
    ],
    ids=["empty", "no-start-at"],
)
def test_validate_names_missing_top_level_fields_at_the_root_as_aws(sfn, definition, message):
    """One finding at "/" for the fields a machine lacks (AWS-recorded answers)."""
    answer = sfn.validate_state_machine_definition(definition=json.dumps(definition))
    assert answer["result"] == "FAIL"
    assert [(d["code"], d["location"], d["message"]) for d in answer["diagnostics"]] == [
        ("SCHEMA_VALIDATION_FAILED", "/", message)
    ]


def test_validate_express_refuses_waiting_for_a_callback(sfn):
    definition = {
        "StartAt": "Ask",
        "States": {
            "Ask": {
                "Type": "Task",
                "Resource": "arn:aws:states:::sqs:sendMessage.waitForTaskToken",
                "End": True,
            }
        },
    }
    standard = sfn.validate_state_machine_definition(definition=json.dumps(definition))
    express = sfn.validate_state_machine_definition(
        definition=json.dumps(definition), type="EXPRESS"
    )
    assert (standard["result"], express["result"]) == ("OK", "FAIL")
    assert express["diagnostics"][0]["location"] == "/States/Ask/Resource"


def test_validate_max_results_over_100_is_a_validation_error(daemon):
    response = httpx.post(
        f"{daemon.url}/",
        content=json.dumps({"definition": json.dumps(VALID), "maxResults": 101}),
        headers={
            "Content-Type": "application/x-amz-json-1.0",
            "X-Amz-Target": "AWSStepFunctions.ValidateStateMachineDefinition",
        },
        timeout=30.0,
    )
    assert (response.status_code, response.json()["__type"]) == (400, "ValidationException")


# -- TestState -------------------------------------------------------------------------------


def test_state_pass_debug_shows_each_step(tsfn):
    state = {
        "Type": "Pass",
        "InputPath": "$.class",
        "Parameters": {"room.$": "$.room"},
        "ResultPath": "$.prepared",
        "Next": "Call",
    }
    answer = tsfn.test_state(
        definition=json.dumps(state),
        input=json.dumps({"class": {"room": "blue"}, "other": 1}),
        inspectionLevel="DEBUG",
    )
    assert (answer["status"], answer["nextState"]) == ("SUCCEEDED", "Call")
    combined = {"class": {"room": "blue"}, "other": 1, "prepared": {"room": "blue"}}
    assert json.loads(answer["output"]) == combined  # ResultPath writes into the raw input
    data = {key: json.loads(value) for key, value in answer["inspectionData"].items()}
    assert data == {
        "input": {"class": {"room": "blue"}, "other": 1},
        "afterInputPath": {"room": "blue"},
        "afterParameters": {"room": "blue"},
        "afterResultSelector": {"room": "blue"},  # a Pass state's Result, as AWS names it
        "afterResultPath": combined,
    }
    assert model_problems(tsfn, "TestState", answer) == []


def test_state_reads_deep_scan_and_compound_filter_paths(tsfn):
    """A Pass state's `$..id` gives every id in document order and a filter with `&&` the
    items for which both tests hold, as Jayway JsonPath (AWS) gives them."""
    state = {
        "Type": "Pass",
        "Parameters": {
            "ids.$": "$..id",
            "middle.$": "$.items[?(@.n > 1 && @.n < 4)].id",
        },
        "End": True,
    }
    given = {
        "id": 0,
        "items": [{"id": 1, "n": 1, "sub": {"id": 11}}, {"id": 2, "n": 2}, {"id": 3, "n": 3}],
    }
    answer = tsfn.test_state(definition=json.dumps(state), input=json.dumps(given))
    assert (answer["status"], json.loads(answer["output"])) == (
        "SUCCEEDED",
        {"ids": [0, 1, 11, 2, 3], "middle": [2, 3]},
    )


def test_state_reads_the_given_variables_and_shows_them_after_its_assign(tsfn):
    """`variables` are what the state's `$name` paths read; DEBUG shows every variable once
    its Assign ran."""
    state = {
        "Type": "Pass",
        "Parameters": {"room.$": "$room"},
        "Assign": {"seen.$": "$.room", "n": 1},
        "End": True,
    }
    answer = tsfn.test_state(
        definition=json.dumps(state),
        input="{}",
        variables=json.dumps({"room": "blue"}),
        inspectionLevel="DEBUG",
    )
    assert (answer["status"], json.loads(answer["output"])) == ("SUCCEEDED", {"room": "blue"})
    assert json.loads(answer["inspectionData"]["variables"]) == {
        "room": "blue",
        "seen": "blue",
        "n": 1,
    }
    assert model_problems(tsfn, "TestState", answer) == []


def test_state_in_jsonata_reads_the_given_variables(tsfn):
    """A JSONata state reads `variables` as `$name`; a failing expression is FAILED with
    States.QueryEvaluationError, its cause prefixed as in a running execution."""
    state = {
        "QueryLanguage": "JSONata",
        "Type": "Pass",
        "Output": "{% $room & '-' & $states.input.n %}",
        "End": True,
    }
    given = {"definition": json.dumps(state), "variables": json.dumps({"room": "blue"})}
    answer = tsfn.test_state(**given, input=json.dumps({"n": 2}))
    assert (answer["status"], json.loads(answer["output"])) == ("SUCCEEDED", "blue-2")
    failing = {**state, "Output": "{% $number('x') %}"}
    failed = tsfn.test_state(definition=json.dumps(failing), input="{}")
    assert (failed["status"], failed["error"]) == ("FAILED", "States.QueryEvaluationError")
    assert failed["cause"].startswith("An error occurred while executing the state ")


def test_state_json_text_keeps_characters_beyond_ascii(tsfn):
    """`States.JsonToString` and JSONata's `$string` write `é` and `✓` as they are, as AWS
    does (not `\\u00e9`), so a hash of the text is AWS's hash too."""
    data = {"o": {"s": "héllo ✓"}}
    text = '{"s":"héllo ✓"}'
    jsonpath = {
        "Type": "Pass",
        "Parameters": {
            "text.$": "States.JsonToString($.o)",
            "md5.$": "States.Hash(States.JsonToString($.o), 'MD5')",
        },
        "End": True,
    }
    jsonata = {
        "QueryLanguage": "JSONata",
        "Type": "Pass",
        "Output": {"text": "{% $string($states.input.o) %}"},
        "End": True,
    }
    answers = [
        tsfn.test_state(definition=json.dumps(state), input=json.dumps(data))
        for state in (jsonpath, jsonata)
    ]
    assert [json.loads(answer["output"]) for answer in answers] == [
        {"text": text, "md5": hashlib.md5(text.encode()).hexdigest()},
        {"text": text},
    ]


def test_state_info_has_no_inspection_data(tsfn):
    answer = tsfn.test_state(definition=json.dumps({"Type": "Pass", "End": True}), input="{}")
    assert (answer["status"], answer["output"], "nextState") == ("SUCCEEDED", "{}", "nextState")
    assert "inspectionData" not in answer


def test_state_task_with_a_mocked_result(tsfn):
    answer = tsfn.test_state(
        definition=json.dumps(TASK),
        input=json.dumps({"room": "blue"}),
        mock={"result": json.dumps({"recordingId": "r-1", "extra": True})},
        inspectionLevel="TRACE",
    )
    assert (answer["status"], answer["nextState"]) == ("SUCCEEDED", "Ping")
    assert json.loads(answer["output"]) == {"room": "blue", "recording": {"id": "r-1"}}
    data = answer["inspectionData"]
    assert json.loads(data["afterParameters"]) == {"room": "blue"}
    assert json.loads(data["afterResultSelector"]) == {"id": "r-1"}
    assert model_problems(tsfn, "TestState", answer) == []


def test_state_task_with_a_mocked_error_that_a_retrier_takes(tsfn):
    answer = tsfn.test_state(
        definition=json.dumps(TASK),
        input=json.dumps({"room": "blue"}),
        mock={"errorOutput": {"error": "Classroom.Busy", "cause": "try later"}},
        stateConfiguration={"retrierRetryCount": 1},
        inspectionLevel="DEBUG",
    )
    assert (answer["status"], answer["error"], answer["cause"]) == (
        "RETRIABLE",
        "Classroom.Busy",
        "try later",
    )
    details = answer["inspectionData"]["errorDetails"]
    assert details == {"retryIndex": 0, "retryBackoffIntervalSeconds": 4}
    assert model_problems(tsfn, "TestState", answer) == []


def test_state_task_with_a_mocked_error_that_a_catcher_takes(tsfn):
    exhausted = tsfn.test_state(
        definition=json.dumps(TASK),
        input=json.dumps({"room": "blue"}),
        mock={"errorOutput": {"error": "Classroom.Busy", "cause": "try later"}},
        stateConfiguration={"retrierRetryCount": 3},
        inspectionLevel="DEBUG",
    )
    other = tsfn.test_state(
        definition=json.dumps(TASK),
        input=json.dumps({"room": "blue"}),
        mock={"errorOutput": {"error": "Classroom.Gone"}},
        inspectionLevel="TRACE",
    )
    for answer in (exhausted, other):
        assert (answer["status"], answer["nextState"]) == ("CAUGHT_ERROR", "Cleanup")
        assert answer["inspectionData"]["errorDetails"] == {"catchIndex": 0}
    at_info = tsfn.test_state(  # as AWS answers at INFO: no inspectionData at all
        definition=json.dumps(TASK),
        input=json.dumps({"room": "blue"}),
        mock={"errorOutput": {"error": "Classroom.Gone"}},
    )
    assert (at_info["status"], "inspectionData" in at_info) == ("CAUGHT_ERROR", False)
    assert json.loads(exhausted["output"]) == {
        "room": "blue",
        "error": {"Error": "Classroom.Busy", "Cause": "try later"},
    }


def test_state_task_without_a_mock_is_refused(tsfn):
    with pytest.raises(tsfn.exceptions.ValidationException) as refused:
        tsfn.test_state(
            definition=json.dumps(TASK),
            roleArn=f"arn:aws:iam::{ACCOUNT}:role/test",
            input="{}",
        )
    assert "mock" in error_of(refused)[1]


def test_state_of_a_whole_machine_by_name_with_a_context(tsfn):
    machine = {
        "StartAt": "Call",
        "States": {
            "Call": {
                "Type": "Task",
                "Resource": f"arn:aws:lambda:{REGION}:{ACCOUNT}:function:f",
                "Parameters": {"execution.$": "$$.Execution.Name"},
                "ResultPath": "$.sent",
                "End": True,
            }
        },
    }
    answer = tsfn.test_state(
        definition=json.dumps(machine),
        stateName="Call",
        input="{}",
        mock={"result": '"ok"'},
        context=json.dumps({"Execution": {"Name": "class-42"}}),
        inspectionLevel="DEBUG",
    )
    assert (answer["status"], "nextState" in answer) == ("SUCCEEDED", False)
    assert json.loads(answer["output"]) == {"sent": "ok"}
    assert json.loads(answer["inspectionData"]["afterParameters"]) == {"execution": "class-42"}


def test_state_choice_wait_and_fail(tsfn):
    choice = tsfn.test_state(
        definition=json.dumps(
            {
                "Type": "Choice",
                "Choices": [{"Variable": "$.late", "BooleanEquals": True, "Next": "Skip"}],
                "Default": "Record",
            }
        ),
        input='{"late": true}',
    )
    wait = tsfn.test_state(
        definition=json.dumps({"Type": "Wait", "Seconds": 3600, "Next": "Stop"}), input="{}"
    )
    fail = tsfn.test_state(
        definition=json.dumps({"Type": "Fail", "Error": "Classroom.Cancelled", "Cause": "ill"})
    )
    assert (choice["status"], choice["nextState"]) == ("SUCCEEDED", "Skip")
    assert (wait["status"], wait["nextState"]) == ("SUCCEEDED", "Stop")
    assert (fail["status"], fail["error"], fail["cause"]) == (
        "FAILED",
        "Classroom.Cancelled",
        "ill",
    )


def test_state_runtime_failure_is_failed_with_states_runtime(tsfn):
    answer = tsfn.test_state(
        definition=json.dumps({"Type": "Pass", "InputPath": "$.missing", "End": True}),
        input="{}",
    )
    assert (answer["status"], answer["error"]) == ("FAILED", "States.Runtime")
    assert "$.missing" in answer["cause"]


def test_state_map_with_a_mocked_result(tsfn):
    state = {
        "Type": "Map",
        "ItemsPath": "$.rooms",
        "ItemProcessor": {"StartAt": "P", "States": {"P": {"Type": "Pass", "End": True}}},
        "MaxConcurrency": 2,
        "ResultPath": "$.done",
        "End": True,
    }
    answer = tsfn.test_state(
        definition=json.dumps(state),
        input='{"rooms": ["a", "b"]}',
        mock={"result": '["A", "B"]'},
        inspectionLevel="DEBUG",
    )
    assert answer["status"] == "SUCCEEDED"
    assert json.loads(answer["output"]) == {"rooms": ["a", "b"], "done": ["A", "B"]}
    data = answer["inspectionData"]
    assert (json.loads(data["afterItemsPath"]), data["maxConcurrency"]) == (["a", "b"], 2)
    assert model_problems(tsfn, "TestState", answer) == []


@pytest.mark.parametrize(
    ("request_fields", "code"),
    [
        ({"definition": '{"Type": "Pass", "Nexxt": "A"}'}, "InvalidDefinition"),
        ({"definition": "{not json"}, "InvalidDefinition"),
        ({"definition": json.dumps(VALID)}, "InvalidDefinition"),
        ({"definition": json.dumps(VALID), "stateName": "Nope"}, "ValidationException"),
        ({"definition": '{"Type": "Pass", "End": true}', "input": "{no"}, "InvalidExecutionInput"),
        (
            {"definition": '{"Type": "Pass", "End": true}', "mock": {"result": "1"}},
            "ValidationException",
        ),
        ({"definition": '{"Type": "Pass", "End": true}', "context": "{}"}, "ValidationException"),
    ],
    ids=[
        "bad-field",
        "not-json",
        "machine-without-state-name",
        "unknown-state-name",
        "bad-input",
        "mock-on-pass",
        "context-without-mock",
    ],
)
def test_state_refusals(tsfn, request_fields, code):
    with pytest.raises(tsfn.exceptions.ClientError) as refused:
        tsfn.test_state(**request_fields)
    assert error_of(refused)[0] == code


# -- machines, versions and aliases come from the config file --------------------------------

QUICK_EXECUTION_ARN = f"arn:aws:states:{REGION}:{ACCOUNT}:execution:quick:x"
REFUSED = {
    "create_state_machine": {
        "name": "new",
        "definition": json.dumps(VALID),
        "roleArn": f"arn:aws:iam::{ACCOUNT}:role/r",
    },
    "update_state_machine": {"stateMachineArn": QUICK_ARN, "definition": json.dumps(VALID)},
    "delete_state_machine": {"stateMachineArn": QUICK_ARN},
    "publish_state_machine_version": {"stateMachineArn": QUICK_ARN},
    "delete_state_machine_version": {"stateMachineVersionArn": f"{QUICK_ARN}:1"},
    "create_state_machine_alias": {
        "name": "live",
        "routingConfiguration": [{"stateMachineVersionArn": f"{QUICK_ARN}:1", "weight": 100}],
    },
    "update_state_machine_alias": {"stateMachineAliasArn": ALIAS_ARN, "description": "x"},
    "delete_state_machine_alias": {"stateMachineAliasArn": ALIAS_ARN},
}


@pytest.mark.parametrize("method", REFUSED.keys())
def test_the_machine_family_is_refused_saying_machines_come_from_the_config(sfn, method):
    with pytest.raises(sfn.exceptions.ValidationException) as refused:
        getattr(sfn, method)(**REFUSED[method])
    message = error_of(refused)[1]
    assert "config file" in message
    assert CONFIG_HINT in message


def test_versions_and_aliases_of_a_configured_machine_are_empty(sfn):
    versions = sfn.list_state_machine_versions(stateMachineArn=QUICK_ARN)
    aliases = sfn.list_state_machine_aliases(stateMachineArn=QUICK_ARN)
    assert (versions["stateMachineVersions"], aliases["stateMachineAliases"]) == ([], [])
    assert model_problems(sfn, "ListStateMachineVersions", versions) == []
    with pytest.raises(sfn.exceptions.StateMachineDoesNotExist):
        sfn.list_state_machine_aliases(stateMachineArn=UNKNOWN_ARN)


def test_describe_an_alias_is_resource_not_found(sfn):
    with pytest.raises(sfn.exceptions.ResourceNotFound):
        sfn.describe_state_machine_alias(stateMachineAliasArn=ALIAS_ARN)


# -- tags, map runs, activities, sync executions ---------------------------------------------


def test_tags_of_a_configured_machine_are_empty(sfn):
    answer = sfn.list_tags_for_resource(resourceArn=QUICK_ARN)
    assert answer["tags"] == []
    assert model_problems(sfn, "ListTagsForResource", answer) == []


def test_tags_of_an_unknown_resource_are_resource_not_found(sfn):
    with pytest.raises(sfn.exceptions.ResourceNotFound):
        sfn.list_tags_for_resource(resourceArn=UNKNOWN_ARN)
    with pytest.raises(sfn.exceptions.InvalidArn):
        sfn.list_tags_for_resource(resourceArn="not-an-arn")


def test_a_machine_is_tagged_and_untagged(sfn):
    """TagResource adds and replaces tags by key, UntagResource removes them, and more than
    50 are refused with AWS's TooManyTags, adding none."""
    sfn.tag_resource(resourceArn=QUICK_ARN, tags=[{"key": "team", "value": "classes"}])
    sfn.tag_resource(
        resourceArn=QUICK_ARN,
        tags=[{"key": "team", "value": "schools"}, {"key": "room", "value": "blue"}],
    )
    listed = sfn.list_tags_for_resource(resourceArn=QUICK_ARN)["tags"]
    assert listed == [{"key": "room", "value": "blue"}, {"key": "team", "value": "schools"}]
    many = [{"key": f"k{n}", "value": ""} for n in range(49)]
    with pytest.raises(sfn.exceptions.TooManyTags):
        sfn.tag_resource(resourceArn=QUICK_ARN, tags=many)
    sfn.untag_resource(resourceArn=QUICK_ARN, tagKeys=["team", "room", "never"])
    assert sfn.list_tags_for_resource(resourceArn=QUICK_ARN)["tags"] == []


def test_map_runs(sfn, new_name, settle):
    started = sfn.start_execution(stateMachineArn=QUICK_ARN, name=new_name("maprun"))
    settle(sfn, started["executionArn"], {"SUCCEEDED", "FAILED"})
    assert sfn.list_map_runs(executionArn=started["executionArn"])["mapRuns"] == []
    with pytest.raises(sfn.exceptions.ExecutionDoesNotExist):
        sfn.list_map_runs(executionArn=started["executionArn"] + "-nope")
    with pytest.raises(sfn.exceptions.ResourceNotFound):
        sfn.describe_map_run(mapRunArn=MAP_RUN_ARN)


def test_activities(sfn):
    """An activity not created does not exist; created, it is described, listed (with AWS's
    paging) and tagged until it is deleted, with its tags."""
    with pytest.raises(sfn.exceptions.ActivityDoesNotExist):
        sfn.describe_activity(activityArn=ACTIVITY_ARN)
    with pytest.raises(sfn.exceptions.ActivityDoesNotExist):
        sfn.get_activity_task(activityArn=ACTIVITY_ARN)
    with pytest.raises(sfn.exceptions.InvalidName):
        sfn.create_activity(name="no spaces")
    arns = [sfn.create_activity(name=name)["activityArn"] for name in ("review", "review-2")]
    assert sfn.describe_activity(activityArn=arns[0])["name"] == "review"
    first = sfn.list_activities(maxResults=1)
    rest = sfn.list_activities(maxResults=1, nextToken=first["nextToken"])
    assert [a["activityArn"] for a in first["activities"] + rest["activities"]] == arns
    sfn.tag_resource(resourceArn=arns[0], tags=[{"key": "room", "value": "blue"}])
    assert sfn.list_tags_for_resource(resourceArn=arns[0])["tags"] == [
        {"key": "room", "value": "blue"}
    ]
    for arn in arns:
        sfn.delete_activity(activityArn=arn)
    assert sfn.list_activities()["activities"] == []
    with pytest.raises(sfn.exceptions.ResourceNotFound):
        sfn.list_tags_for_resource(resourceArn=arns[0])
    sfn.create_activity(name="review")  # a new activity of the name has no tags
    assert sfn.list_tags_for_resource(resourceArn=arns[0])["tags"] == []
    sfn.delete_activity(activityArn=arns[0])


def test_an_activity_created_with_tags_has_them(sfn):
    """CreateActivity's tags are the activity's (checked as TagResource checks them)."""
    arn = sfn.create_activity(name="tagged", tags=[{"key": "room", "value": "blue"}])["activityArn"]
    try:
        assert sfn.list_tags_for_resource(resourceArn=arn)["tags"] == [
            {"key": "room", "value": "blue"}
        ]
        with pytest.raises(sfn.exceptions.ValidationException):
            sfn.create_activity(name="tagged-2", tags=[{"key": "k" * 129, "value": "v"}])
        with pytest.raises(sfn.exceptions.ActivityDoesNotExist):
            sfn.describe_activity(activityArn=arn + "-2")
    finally:
        sfn.delete_activity(activityArn=arn)


def test_an_execution_has_no_tags(sfn, new_name, settle):
    """Tag operations on an execution's ARN: ResourceNotFound, as for anything untagged."""
    arn = sfn.start_execution(stateMachineArn=QUICK_ARN, name=new_name("untagged"))
    settle(sfn, arn["executionArn"], {"SUCCEEDED", "FAILED"})
    with pytest.raises(sfn.exceptions.ResourceNotFound):
        sfn.list_tags_for_resource(resourceArn=arn["executionArn"])
    with pytest.raises(sfn.exceptions.ResourceNotFound):
        sfn.tag_resource(resourceArn=arn["executionArn"], tags=[{"key": "k", "value": "v"}])


def test_executions_of_an_unknown_map_run_are_resource_not_found(sfn):
    """ListExecutions of a map run that does not exist is ResourceNotFound (not every
    execution), and a machine and a map run together are refused."""
    with pytest.raises(sfn.exceptions.ResourceNotFound):
        sfn.list_executions(mapRunArn=MAP_RUN_ARN)
    with pytest.raises(sfn.exceptions.ValidationException):
        sfn.list_executions(stateMachineArn=QUICK_ARN, mapRunArn=MAP_RUN_ARN)


def _raw(daemon: Any, operation: str, **members: Any) -> tuple[int, str]:
    response = httpx.post(
        f"{daemon.url}/",
        content=json.dumps(members),
        headers={
            "Content-Type": "application/x-amz-json-1.0",
            "X-Amz-Target": f"AWSStepFunctions.{operation}",
        },
        timeout=30.0,
    )
    return response.status_code, response.json().get("__type", "")


QUICK_EXECUTION_ARN = f"arn:aws:states:{REGION}:{ACCOUNT}:execution:quick:x"
OUT_OF_BOUNDS = {
    "empty-name": ("StartExecution", {"stateMachineArn": QUICK_ARN, "name": ""}),
    "long-trace-header": (
        "StartExecution",
        {"stateMachineArn": QUICK_ARN, "name": "trace", "traceHeader": "a" * 257},
    ),
    "non-ascii-trace-header": (
        "StartExecution",
        {"stateMachineArn": QUICK_ARN, "name": "trace", "traceHeader": "é"},
    ),
    "included-data": (
        "DescribeStateMachine",
        {"stateMachineArn": QUICK_ARN, "includedData": "NOPE"},
    ),
    "client-token-pattern": (
        "RedriveExecution",
        {
            "executionArn": QUICK_ARN.replace("stateMachine", "execution") + ":x",
            "clientToken": "a b",
        },
    ),
    "arn-over-256": ("DescribeStateMachine", {"stateMachineArn": QUICK_ARN + "x" * 256}),
}


@pytest.mark.parametrize(("operation", "members"), OUT_OF_BOUNDS.values(), ids=OUT_OF_BOUNDS.keys())
def test_members_outside_the_models_bounds_are_validation_errors(daemon, sfn, operation, members):
    """What botocore's model bounds (lengths, patterns, enums) is refused as AWS refuses it
    (ValidationException, 400), and starts nothing: an empty name used to start an execution
    under a made-up name at every retry."""
    assert _raw(daemon, operation, **members) == (400, "ValidationException")
    if operation == "StartExecution":
        listed = sfn.list_executions(stateMachineArn=QUICK_ARN, maxResults=1000)["executions"]
        assert "trace" not in {e["name"] for e in listed}


def test_machines_are_listed_a_page_at_a_time(sfn):
    """ListStateMachines honours maxResults and nextToken (the paginator gets every machine
    once), and refuses a token that is not its own."""
    every = [m["name"] for m in sfn.list_state_machines()["stateMachines"]]
    pages = sfn.get_paginator("list_state_machines").paginate(PaginationConfig={"PageSize": 1})
    paged = [[m["name"] for m in page["stateMachines"]] for page in pages]
    assert len(every) > 1
    assert (all(len(page) == 1 for page in paged), [n for p in paged for n in p]) == (True, every)
    with pytest.raises(sfn.exceptions.InvalidToken):
        sfn.list_state_machines(nextToken="garbage")


def test_a_page_token_is_good_only_for_the_request_it_came_from(sfn, new_name, settle):
    """A GetExecutionHistory token of one execution, or a ListExecutions token of one machine,
    given with another is InvalidToken instead of a page of the other's."""
    arns = [
        sfn.start_execution(stateMachineArn=QUICK_ARN, name=new_name("paged"))["executionArn"]
        for _ in range(2)
    ]
    for arn in arns:
        settle(sfn, arn, {"SUCCEEDED", "FAILED"})
    token = sfn.get_execution_history(executionArn=arns[0], maxResults=1)["nextToken"]
    assert sfn.get_execution_history(executionArn=arns[0], nextToken=token)["events"]
    with pytest.raises(sfn.exceptions.InvalidToken):
        sfn.get_execution_history(executionArn=arns[1], nextToken=token)
    with pytest.raises(sfn.exceptions.InvalidToken):
        sfn.get_execution_history(executionArn=arns[0], nextToken=token, reverseOrder=True)
    listed = sfn.list_executions(stateMachineArn=QUICK_ARN, maxResults=1)["nextToken"]
    with pytest.raises(sfn.exceptions.InvalidToken):
        sfn.list_executions(stateMachineArn=QUICK_ARN, statusFilter="FAILED", nextToken=listed)


def test_start_sync_execution_on_a_standard_machine(tsfn):
    with pytest.raises(tsfn.exceptions.StateMachineTypeNotSupported):
        tsfn.start_sync_execution(stateMachineArn=QUICK_ARN, input="{}")


# -- the AWS CLI -----------------------------------------------------------------------------


@pytest.fixture(scope="module")
def aws(daemon, aws_cli):
    """`aws stepfunctions ...` against the session daemon."""
    return lambda *args: aws_cli(daemon.url, *args)


def test_cli_validate_state_machine_definition(aws):
    ran = aws("validate-state-machine-definition", "--definition", json.dumps(BROKEN))
    assert ran.returncode == 0, ran.stderr
    answer = json.loads(ran.stdout)
    assert answer["result"] == "FAIL"
    assert "MISSING_TRANSITION_TARGET" in {d["code"] for d in answer["diagnostics"]}


def test_cli_test_state(aws):
    ran = aws(
        "test-state",
        "--definition",
        json.dumps(TASK),
        "--input",
        '{"room": "blue"}',
        "--mock",
        json.dumps({"result": '{"recordingId": "r-9"}'}),
        "--inspection-level",
        "DEBUG",
    )
    assert ran.returncode == 0, ran.stderr
    answer = json.loads(ran.stdout)
    assert (answer["status"], answer["nextState"]) == ("SUCCEEDED", "Ping")
    assert json.loads(answer["output"])["recording"] == {"id": "r-9"}


def test_cli_create_state_machine_is_refused(aws):
    ran = aws(
        "create-state-machine",
        "--name",
        "new",
        "--definition",
        json.dumps(VALID),
        "--role-arn",
        f"arn:aws:iam::{ACCOUNT}:role/r",
    )
    assert ran.returncode != 0
    assert "ValidationException" in ran.stderr
    assert CONFIG_HINT in ran.stderr


def _aws_json(ran: subprocess.CompletedProcess[str]) -> dict[str, object]:
    assert ran.returncode == 0, ran.stderr
    answer: dict[str, object] = json.loads(ran.stdout)
    return answer


def test_cli_redrive_describe_for_execution_and_task_callbacks(aws, new_name):
    """The AWS CLI drives the execution-level operations too: start, redrive a FAILED
    execution, describe it and its definition; a callback with a token that is not stepd's is
    refused with AWS's InvalidToken."""
    name = new_name("cli-redrive")
    started = _aws_json(aws("start-execution", "--state-machine-arn", FAILING_ARN, "--name", name))
    arn = str(started["executionArn"])
    deadline = time.monotonic() + CLI_TIMEOUT_SECONDS
    while _aws_json(aws("describe-execution", "--execution-arn", arn))["status"] == "RUNNING":
        assert time.monotonic() < deadline, "the failing execution did not fail"
        time.sleep(0.1)
    redriven = _aws_json(aws("redrive-execution", "--execution-arn", arn))
    assert "redriveDate" in redriven
    described = _aws_json(aws("describe-execution", "--execution-arn", arn))
    assert described["redriveCount"] == 1
    definition = _aws_json(aws("describe-state-machine-for-execution", "--execution-arn", arn))
    assert definition["name"] == "failing"
    assert json.loads(str(definition["definition"]))["StartAt"]
    for command, extra in (
        ("send-task-success", ["--task-output", "{}"]),
        ("send-task-failure", ["--error", "E"]),
        ("send-task-heartbeat", []),
    ):
        ran = aws(command, "--task-token", "not-a-stepd-token", *extra)
        assert ran.returncode != 0, command
        assert "InvalidToken" in ran.stderr, ran.stderr


CALLBACK_ASKER = callback_machine(TimeoutSeconds=300, ResultPath="$.answer")


def test_cli_completes_a_waiting_callback_task(start_daemon, classroom, aws_cli, tmp_path):
    """`aws stepfunctions send-task-success` with the token a running execution's
    `.waitForTaskToken` task sent out: the task's result is the CLI's output and the execution
    succeeds; `send-task-heartbeat` before it is accepted, and a second success is refused
    with TaskTimedOut."""
    path = tmp_path / "asker.asl.json"
    path.write_text(json.dumps(CALLBACK_ASKER), encoding="utf-8")
    room = f"cli-{time.monotonic_ns()}"
    with start_daemon(tmp_path, classroom.base_url, [("asker", path, {"Ask": "/quick"})]) as d:
        started = _aws_json(
            aws_cli(
                d.url,
                "start-execution",
                "--state-machine-arn",
                f"arn:aws:states:{REGION}:{ACCOUNT}:stateMachine:asker",
                "--input",
                json.dumps({"room": room}),
            )
        )
        arn = str(started["executionArn"])
        token = token_for(classroom, room)
        running = _aws_json(aws_cli(d.url, "describe-execution", "--execution-arn", arn))
        assert running["status"] == "RUNNING"

        beat = aws_cli(d.url, "send-task-heartbeat", "--task-token", token)
        assert beat.returncode == 0, beat.stderr
        done = aws_cli(
            d.url, "send-task-success", "--task-token", token, "--task-output", '{"url": "v.mp4"}'
        )
        assert done.returncode == 0, done.stderr

        deadline = time.monotonic() + CLI_TIMEOUT_SECONDS
        while (
            described := _aws_json(aws_cli(d.url, "describe-execution", "--execution-arn", arn))
        )["status"] == "RUNNING":
            assert time.monotonic() < deadline, "the execution did not close"
            time.sleep(0.1)
        assert described["status"] == "SUCCEEDED"
        assert json.loads(str(described["output"])) == {"room": room, "answer": {"url": "v.mp4"}}
        again = aws_cli(d.url, "send-task-success", "--task-token", token, "--task-output", "{}")
        assert again.returncode != 0
        assert "TaskTimedOut" in again.stderr, again.stderr


PARALLEL_STATE = {
    "Type": "Parallel",
    "Branches": [
        {"StartAt": "A", "States": {"A": {"Type": "Pass", "End": True}}},
        {"StartAt": "B", "States": {"B": {"Type": "Pass", "End": True}}},
    ],
    "End": True,
}


@pytest.mark.parametrize(
    ("request_fields", "error", "says"),
    [
        pytest.param(
            {"definition": PARALLEL_STATE, "mock": {"result": "{}"}},
            "ValidationException",
            "Mocked result must be an array.",
            id="parallel-result-not-an-array",
        ),
        pytest.param(
            {"definition": PARALLEL_STATE, "mock": {"result": "[1]"}},
            "ValidationException",
            "Mocked result must contain the same number of items as number of Parallel branches.",
            id="parallel-result-of-another-length",
        ),
        pytest.param(
            {"definition": TASK, "mock": {"result": "{}"}, "revealSecrets": True},
            "ValidationException",
            "TestState does not support RevealSecrets when a mock is specified.",
            id="reveal-secrets-with-a-mock",
        ),
        pytest.param(
            {"definition": PARALLEL_STATE},
            "InvalidDefinition",
            "TestState API does not support Map or Parallel states.",
            id="parallel-without-a-mock",
        ),
    ],
)
def test_state_checks_its_mocks_as_aws_does(tsfn, request_fields, error, says):
    """AWS-recorded answers (LocalStack's test_state_mock_validation snapshots)."""
    body = {**request_fields, "definition": json.dumps(request_fields["definition"])}
    with pytest.raises(getattr(tsfn.exceptions, error)) as refused:
        tsfn.test_state(input="{}", **body)
    assert says in refused.value.response["Error"]["Message"]


def test_state_of_a_lone_state_runs_in_aws_context(tsfn):
    """A lone state is named `StateName` (one nested in it may be called `TestState`), its
    execution's id is an express ARN and its RoleArn the role given; no RedriveCount."""
    state = {
        "Type": "Pass",
        "Comment": "StateName",  # a string that is no state's name takes no name away
        "Parameters": {"context.$": "$$"},
        "End": True,
    }
    role = "arn:aws:iam::123456789012:role/tester"
    answer = tsfn.test_state(definition=json.dumps(state), input="{}", roleArn=role)
    context = json.loads(answer["output"])["context"]
    assert context["State"]["Name"] == "StateName"
    assert context["Execution"]["RoleArn"] == role
    assert ":express:" in context["Execution"]["Id"]
    assert "RedriveCount" not in context["Execution"]
    named_inside = {
        "Type": "Map",
        "ItemProcessor": {
            "StartAt": "TestState",
            "States": {"TestState": {"Type": "Pass", "End": True}},
        },
        "End": True,
    }
    mapped = tsfn.test_state(
        definition=json.dumps(named_inside), input="[1, 2]", mock={"result": "[1, 2]"}
    )
    assert (mapped["status"], json.loads(mapped["output"])) == ("SUCCEEDED", [1, 2])


def _inspection(answer: dict[str, Any]) -> dict[str, Any]:
    return {
        key: value if key in {"errorDetails", "maxConcurrency"} else json.loads(value)
        for key, value in answer["inspectionData"].items()
    }


def test_state_inspection_data_has_the_fields_aws_shows(tsfn):
    """AWS-recorded shapes (LocalStack's test_test_state_scenarios and test_state_configuration
    snapshots): a Succeed state's afterInputPath; a JSONata Task's afterArguments and none of
    JSONPath's fields; a Map's maxConcurrency, 0 when not set; the retrier that a FAILED task
    has used up."""
    succeed = tsfn.test_state(
        definition=json.dumps({"Type": "Succeed"}), input='{"a": 1}', inspectionLevel="DEBUG"
    )
    assert _inspection(succeed) == {"input": {"a": 1}, "afterInputPath": {"a": 1}}

    jsonata_task = {
        "Type": "Task",
        "QueryLanguage": "JSONata",
        "Resource": "arn:aws:states:::lambda:invoke",
        "Arguments": {"FunctionName": "foo", "Payload": "{% $states.input.v %}"},
        "End": True,
    }
    called = tsfn.test_state(
        definition=json.dumps(jsonata_task),
        input='{"v": "bar"}',
        mock={"result": "{}"},
        inspectionLevel="DEBUG",
    )
    assert _inspection(called) == {
        "input": {"v": "bar"},
        "afterArguments": {"FunctionName": "foo", "Payload": "bar"},
    }

    mapped = tsfn.test_state(
        definition=json.dumps(
            {
                "Type": "Map",
                "ItemProcessor": {"StartAt": "P", "States": {"P": {"Type": "Pass", "End": True}}},
                "End": True,
            }
        ),
        input="[1, 2]",
        mock={"result": "[1, 2]"},
        inspectionLevel="DEBUG",
    )
    assert _inspection(mapped)["maxConcurrency"] == 0

    spent = tsfn.test_state(
        definition=json.dumps({**TASK, "Catch": []}),
        input=json.dumps({"room": "blue"}),
        mock={"errorOutput": {"error": "Classroom.Busy", "cause": "try later"}},
        stateConfiguration={"retrierRetryCount": 3},
        inspectionLevel="DEBUG",
    )
    assert (spent["status"], spent["inspectionData"]["errorDetails"]) == (
        "FAILED",
        {"retryIndex": 0},
    )
