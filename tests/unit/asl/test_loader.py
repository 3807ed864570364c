"""Loading definitions from ASL JSON, ASL YAML and serverless.yml."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from stepd.asl.loader import HttpEvent, LoadedDefinition, load_definition, parse_definition_text
from stepd.asl.validate import MAX_DEFINITION_BYTES
from stepd.errors import DefinitionError

FIXTURES = Path(__file__).parent / "fixtures"
CONFIG = Path(__file__).parents[3] / "config"

MINIMAL = {"StartAt": "Done", "States": {"Done": {"Type": "Succeed"}}}
MINIMAL_YAML = "StartAt: Done\nStates:\n  Done:\n    Type: Succeed\n"


def serverless(definition: str, extra: str = "") -> str:
    """A serverless.yml with one machine `m` whose definition is the YAML text given."""
    indented = "\n".join("        " + line for line in definition.splitlines())
    return f"stepFunctions:\n  stateMachines:\n    m:\n{extra}      definition:\n{indented}\n"


def resource_of(text: str) -> Any:
    """The Resource of state T in a one-Task ASL YAML whose Resource line is `text`."""
    document = f"StartAt: T\nStates:\n  T:\n    Type: Task\n    Resource: {text}\n    End: true\n"
    loaded = parse_definition_text(document, "m.asl.yaml")
    return loaded.definition["States"]["T"]["Resource"]


def test_seed_serverless_loads() -> None:
    """The blog post's serverless.yml loads as its one machine, with its name and http event."""
    loaded = load_definition(FIXTURES / "seed-serverless.yml")
    expected = (
        "stepFunction",
        "classroom-state-machine",
        (HttpEvent(path="/classroom/create", method="POST"),),
        "RecordingWait",
        6,
    )
    actual = (
        loaded.machine_key,
        loaded.machine_name,
        loaded.http_events,
        loaded.definition["StartAt"],
        len(loaded.definition["States"]),
    )
    assert expected == actual


@pytest.mark.parametrize(
    ("source", "text"),
    [
        pytest.param("m.asl.json", json.dumps(MINIMAL), id="asl-json"),
        pytest.param("m.asl.yaml", MINIMAL_YAML, id="asl-yaml"),
        pytest.param("m.yml", MINIMAL_YAML, id="asl-yml"),
        pytest.param("m", json.dumps(MINIMAL, indent=2), id="json-sniffed-without-suffix"),
        pytest.param("m", MINIMAL_YAML, id="yaml-without-suffix"),
        pytest.param("s.yml", serverless(MINIMAL_YAML), id="serverless-object"),
        pytest.param("s.yml", serverless(f"'{json.dumps(MINIMAL)}'"), id="serverless-json-string"),
    ],
)
def test_formats_give_the_same_definition(source: str, text: str) -> None:
    """ASL JSON, ASL YAML and both serverless definition forms give the same ASL object."""
    assert parse_definition_text(text, source).definition == MINIMAL


def test_plain_asl_has_no_serverless_details() -> None:
    """A plain ASL file has no machine key, name, events or Lambda names."""
    expected = LoadedDefinition(definition=MINIMAL, source="m.asl.yaml")
    assert expected == parse_definition_text(MINIMAL_YAML, "m.asl.yaml")


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        pytest.param("!GetAtt fn.Arn", {"Fn::GetAtt": ["fn", "Arn"]}, id="getatt-dotted"),
        pytest.param("!GetAtt [fn, Arn]", {"Fn::GetAtt": ["fn", "Arn"]}, id="getatt-list"),
        pytest.param("!Ref fnAlias", {"Ref": "fnAlias"}, id="ref"),
        pytest.param(
            "!Sub arn:aws:lambda:${AWS::Region}:1:function:f",
            {"Fn::Sub": "arn:aws:lambda:${AWS::Region}:1:function:f"},
            id="sub",
        ),
        pytest.param(
            '!Join [":", [arn, aws, !Ref AWS::Region]]',
            {"Fn::Join": [":", ["arn", "aws", {"Ref": "AWS::Region"}]]},
            id="join-nested-ref",
        ),
        pytest.param("!ImportValue shared-arn", {"Fn::ImportValue": "shared-arn"}, id="import"),
        pytest.param("!If [isProd, a, b]", {"Fn::If": ["isProd", "a", "b"]}, id="if"),
        pytest.param(
            "{Fn::GetAtt: [startRecorder, Arn]}",
            {"Fn::GetAtt": ["startRecorder", "Arn"]},
            id="long-form-getatt",
        ),
        pytest.param("${self:custom.fnArn}", "${self:custom.fnArn}", id="self-variable"),
        pytest.param(
            "arn:aws:lambda:#{AWS::Region}:1:function:f-${opt:stage}",
            "arn:aws:lambda:#{AWS::Region}:1:function:f-${opt:stage}",
            id="pseudo-parameter-and-opt",
        ),
    ],
)
def test_resource_forms(text: str, expected: Any) -> None:
    """CloudFormation short tags become their long form; serverless variables stay verbatim."""
    assert expected == resource_of(text)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        pytest.param("2016-03-14T01:59:00Z", "2016-03-14T01:59:00Z", id="timestamp-stays-string"),
        pytest.param("2016-03-14", "2016-03-14", id="date-stays-string"),
        pytest.param("yes", "yes", id="yes-is-a-string"),
        pytest.param("on", "on", id="on-is-a-string"),
        pytest.param("true", True, id="true-is-boolean"),
        pytest.param("False", False, id="False-is-boolean"),
        pytest.param("60", 60, id="integer"),
        pytest.param("null", None, id="null"),
    ],
)
def test_yaml_scalars_read_like_serverless(text: str, expected: Any) -> None:
    """YAML scalars are read as serverless reads them: only true/false are booleans."""
    document = f"StartAt: W\nStates:\n  W:\n    Type: Wait\n    Timestamp: {text}\n"
    loaded = parse_definition_text(document, "m.asl.yaml")
    assert expected == loaded.definition["States"]["W"]["Timestamp"]


@pytest.mark.parametrize(
    ("key", "expected"),
    [
        pytest.param("openClassroom", ("openClassroom", "open-classroom", "Open"), id="first"),
        pytest.param("closeClassroom", ("closeClassroom", None, "Close"), id="json-string"),
    ],
)
def test_several_machines_with_key(key: str, expected: tuple[Any, ...]) -> None:
    """With several machines, the key picks one."""
    loaded = load_definition(FIXTURES / "several-machines-serverless.yml", key)
    actual = (loaded.machine_key, loaded.machine_name, loaded.definition["StartAt"])
    assert expected == actual


@pytest.mark.parametrize(
    ("key", "expected"),
    [
        pytest.param(
            None,
            "serverless.yml defines several state machines; "
            "choose one of: closeClassroom, openClassroom",
            id="no-key",
        ),
        pytest.param(
            "lecture",
            'serverless.yml has no state machine "lecture"; '
            "available: closeClassroom, openClassroom",
            id="unknown-key",
        ),
    ],
)
def test_several_machines_key_errors(key: str | None, expected: str) -> None:
    """Without a key, or with an unknown one, the error names the machines there are."""
    with pytest.raises(DefinitionError) as caught:
        load_definition(FIXTURES / "several-machines-serverless.yml", key)
    assert expected == caught.value.message


def test_single_machine_key_may_be_given() -> None:
    """With one machine, its key may be given as well as left out."""
    loaded = load_definition(FIXTURES / "seed-serverless.yml", "stepFunction")
    assert loaded.machine_key == "stepFunction"


@pytest.mark.parametrize(
    ("key", "expected"),
    [
        pytest.param(
            "openClassroom",
            (HttpEvent(path="/classroom/open", method="POST"),),
            id="string-form",
        ),
        pytest.param(
            "closeClassroom",
            (
                HttpEvent(path="/classroom/close", method="POST"),
                HttpEvent(path="/classroom/close", method="DELETE", action="StopExecution"),
            ),
            id="mapping-form-normalised",
        ),
    ],
)
def test_http_events(key: str, expected: tuple[HttpEvent, ...]) -> None:
    """http events get a leading slash, an upper-case method and StartExecution by default."""
    loaded = load_definition(FIXTURES / "several-machines-serverless.yml", key)
    assert expected == loaded.http_events


def test_non_http_events_are_ignored() -> None:
    """Events other than http (schedules, say) are not stepd's business."""
    extra = "      events:\n        - schedule: rate(1 hour)\n        - http: GET status\n"
    loaded = parse_definition_text(serverless(MINIMAL_YAML, extra), "s.yml")
    assert (HttpEvent(path="/status", method="GET"),) == loaded.http_events


def test_lambda_names() -> None:
    """Functions map to their `name:`, else to `<service>-<stage>-<key>`."""
    loaded = load_definition(FIXTURES / "several-machines-serverless.yml", "openClassroom")
    expected = {"openRoom": "school-prod-openRoom", "closeRoom": "close-room-handler"}
    assert expected == dict(loaded.lambda_names)


def test_lambda_names_default_stage() -> None:
    """Without provider.stage the default names use serverless's default stage, dev."""
    extra = "service:\n  name: shop\nfunctions:\n  pay: {handler: pay.handler}\n"
    loaded = parse_definition_text(extra + serverless(MINIMAL_YAML), "s.yml")
    assert dict(loaded.lambda_names) == {"pay": "shop-dev-pay"}


@pytest.mark.parametrize(
    ("source", "text", "expected_where", "expected_message"),
    [
        pytest.param(
            "m.asl.yaml",
            "StartAt: A\nStates:\n  A:\n    Type: Pass\n   End: true\n",
            "m.asl.yaml:5:4",
            "invalid YAML: ",
            id="yaml-bad-indentation",
        ),
        pytest.param(
            "m.asl.yaml",
            "StartAt: A\nStates: [1, 2\n",
            "m.asl.yaml:3:1",
            "invalid YAML: ",
            id="yaml-unclosed-flow",
        ),
        pytest.param(
            "m.asl.json",
            '{\n  "StartAt": "A"\n  "States": {}\n}',
            "m.asl.json:3:3",
            "invalid JSON: Expecting ',' delimiter",
            id="json-missing-comma",
        ),
        pytest.param(
            "m.asl.yaml",
            "StartAt: A\nStates:\n  A:\n    Type: Succeed\n  A:\n    Type: Fail\n",
            "m.asl.yaml:5:3",
            'DUPLICATE_STATE_NAME: state "A" is defined more than once (first on line 3)',
            id="yaml-duplicate-state",
        ),
        pytest.param(
            "m.asl.yaml",
            "StartAt: A\nStates:\n  A:\n    Type: Succeed\n    Type: Fail\n",
            "m.asl.yaml:5:5",
            'duplicate key "Type" (first on line 4)',
            id="yaml-duplicate-field",
        ),
        pytest.param(
            "m.asl.json",
            '{"StartAt": "A", "States": {"A": {"Type": "Succeed"}, "A": {"Type": "Fail"}}}',
            "m.asl.json",
            'DUPLICATE_STATE_NAME: state "A" is defined more than once',
            id="json-duplicate-state",
        ),
        pytest.param(
            "m.asl.json",
            '{"StartAt": "A", "StartAt": "B", "States": {}}',
            "m.asl.json",
            'duplicate key "StartAt"',
            id="json-duplicate-field",
        ),
    ],
)
def test_parse_errors_say_where(
    source: str, text: str, expected_where: str, expected_message: str
) -> None:
    """Syntax errors and duplicate keys name the file, line and column when known."""
    with pytest.raises(DefinitionError) as caught:
        parse_definition_text(text, source)
    actual = (caught.value.where, caught.value.message[: len(expected_message)])
    assert (expected_where, expected_message) == actual


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        pytest.param("- a\n- b\n", "the file must hold an object (a mapping)", id="list"),
        pytest.param("", "the file must hold an object (a mapping)", id="empty"),
        pytest.param(
            "service: x\n",
            "neither an ASL definition (no StartAt/States) nor a serverless.yml "
            "(no stepFunctions.stateMachines)",
            id="neither",
        ),
        pytest.param(
            "stepFunctions:\n  validate: true\n",
            "serverless.yml has no stepFunctions.stateMachines",
            id="no-state-machines",
        ),
        pytest.param(
            serverless("'{\"StartAt\": }'"),
            "stepFunctions.stateMachines.m.definition is a string but invalid JSON: "
            "Expecting value (line 1, column 13)",
            id="definition-string-not-json",
        ),
        pytest.param(
            serverless("${file(machine.json)}"),
            "stepFunctions.stateMachines.m.definition uses ${file(...)}, "
            "which stepd does not resolve; inline it",
            id="definition-file-include",
        ),
        pytest.param(
            serverless("[1, 2]"),
            "stepFunctions.stateMachines.m.definition must be an object or a JSON string",
            id="definition-list",
        ),
        pytest.param(
            serverless(MINIMAL_YAML, "      events:\n        - http: {method: POST}\n"),
            "stepFunctions.stateMachines.m.events: an http event needs a path and a method "
            '(a mapping, or a string like "POST classroom/create")',
            id="http-without-path",
        ),
        pytest.param(
            "StartAt: A\nStates: {A: !!binary aGk=}\n",
            "the value at /States/A is not JSON (bytes)",
            id="binary-value",
        ),
        pytest.param(
            "StartAt: A\nStates: {200: {Type: Succeed}}\n",
            "key 200 at /States is not a string; quote it",
            id="integer-key",
        ),
        pytest.param(
            "StartAt: A\nStates: {A: .nan}\n",
            "the value at /States/A is not JSON (float)",
            id="nan",
        ),
        pytest.param(
            "StartAt: A\nStates: &loop {A: *loop}\n",
            "the document holds more than 1000000 values (recursive aliases?)",
            id="recursive-alias",
        ),
    ],
)
def test_shape_errors(text: str, expected: str) -> None:
    """Files that parse but hold no usable machine are refused with a reason."""
    with pytest.raises(DefinitionError) as caught:
        parse_definition_text(text, "s.yml")
    assert expected == caught.value.message


def test_yaml_anchors_are_expanded() -> None:
    """A Retry block shared through a YAML anchor reads as if written out twice."""
    text = (
        "StartAt: A\nStates:\n"
        "  A: {Type: Task, Resource: r, Retry: &retry [{ErrorEquals: [E]}], Next: B}\n"
        "  B: {Type: Task, Resource: r, Retry: *retry, End: true}\n"
    )
    states = parse_definition_text(text, "m.asl.yaml").definition["States"]
    assert [{"ErrorEquals": ["E"]}] == states["A"]["Retry"] == states["B"]["Retry"]


def test_key_for_plain_asl_is_refused() -> None:
    """A machine key only means something for serverless.yml."""
    with pytest.raises(DefinitionError) as caught:
        parse_definition_text(MINIMAL_YAML, "m.asl.yaml", key="m")
    expected = (
        'a state machine key ("m") only applies to a serverless.yml; '
        "this file is a plain ASL definition"
    )
    assert expected == caught.value.message


def test_missing_file(tmp_path: Path) -> None:
    """A missing file is reported as such, with its path."""
    path = tmp_path / "nope.asl.json"
    with pytest.raises(DefinitionError) as caught:
        load_definition(path)
    assert ("file not found", str(path)) == (caught.value.message, caught.value.where)


def test_too_large_file(tmp_path: Path) -> None:
    """A file over 1 MB is refused before it is parsed."""
    path = tmp_path / "big.asl.json"
    path.write_text(" " * (MAX_DEFINITION_BYTES + 1) + json.dumps(MINIMAL))
    with pytest.raises(DefinitionError) as caught:
        load_definition(path)
    assert caught.value.message.startswith("file is ")


def test_file_at_the_limit_loads(tmp_path: Path) -> None:
    """A file of exactly 1 MB loads."""
    text = json.dumps(MINIMAL)
    path = tmp_path / "limit.asl.json"
    path.write_text(" " * (MAX_DEFINITION_BYTES - len(text)) + text)
    assert load_definition(path).definition == MINIMAL


def test_not_utf8(tmp_path: Path) -> None:
    """A file that is not UTF-8 text is refused."""
    path = tmp_path / "latin1.asl.yaml"
    path.write_bytes(b"StartAt: \xe9\n")
    with pytest.raises(DefinitionError) as caught:
        load_definition(path)
    assert caught.value.message.startswith("file is not UTF-8 text")


@pytest.mark.parametrize(
    ("name", "key"),
    [
        pytest.param("classroom.asl.yaml", None, id="asl"),
        pytest.param("serverless.yml", "classroom", id="serverless"),
    ],
)
def test_shipped_examples_describe_the_same_machine(name: str, key: str | None) -> None:
    """Both shipped examples hold the fixed classroom machine, state for state."""
    loaded = load_definition(CONFIG / name, key)
    expected = [
        "CheckInput",
        "InvalidInput",
        "AlreadyOver",
        "RecordingWait",
        "StartRecording",
        "SendLivePingWait",
        "SendLivePing",
        "StoppingWait",
        "StopRecording",
        "StopAfterFailure",
        "RecordingFailed",
    ]
    assert expected == list(loaded.definition["States"])
