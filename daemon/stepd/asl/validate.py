"""Check a definition the way AWS does at CreateStateMachine, and a little more.

Errors use AWS's diagnostic codes (ValidateStateMachineDefinition). Where AWS and statelint
differ, AWS wins. Two checks go further than the peer validators:

* reachability is a real walk from `StartAt` over `Next`, `Default`, `Choices[].Next` and
  `Catch[].Next` in each (nested) machine, so an isolated cycle is reported too, in the AWS
  console's wording: `State "X" is not reachable` (code MISSING_TRANSITION_TARGET);
* DATA_REPLACED_BY_TASK (a warning) follows the data from `StartAt`: when a Task, or a Pass
  with `Result`, has no `ResultPath`, its result replaces the state's data, and a later state
  reading an input path (`$.end`, say) is probably reading something that is no longer there.

Paths, timestamps, intrinsic calls, `.$` values and Choice rules are read with the runtime's
own parsers (`paths`, `timestamps`, `payload` and `intrinsics`, `choice`): what they refuse
is reported in their words, and a definition check accepts never fails at run time on a
parse error (tests/unit/asl/test_check_agrees.py states the rule).

JSONata states (`QueryLanguage: "JSONata"`, at the top or per state) are checked for their own
fields (the JSONPath fields are refused in them) and every `{% … %}` expression is compiled.
A variable read (`$name` in JSONata, a `$name…` path or intrinsic argument in JSONPath) that
no `Assign` anywhere in the definition sets is a warning (UNASSIGNED_VARIABLE): AWS accepts
such a definition, and the read fails only when it runs.

Every finding has a JSON pointer into the definition (`/States/W/Timestamp`); `validate()`
returns them sorted, so the same definition always gives the same list.
"""

from __future__ import annotations

import json
import re
from collections import deque
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from functools import partial
from typing import Any, Literal, TypeGuard

from stepd.asl import choice, jsonata, paths, payload, timestamps
from stepd.asl.failures import STATES_ALL
from stepd.asl.http_task import is_http_invoke, static_problems
from stepd.errors import ParseError

# Codes: AWS's, then stepd's own.
SCHEMA_VALIDATION_FAILED = "SCHEMA_VALIDATION_FAILED"
INVALID_RESOURCE = "INVALID_RESOURCE"
MISSING_END_STATE = "MISSING_END_STATE"
DUPLICATE_STATE_NAME = "DUPLICATE_STATE_NAME"
INVALID_STATE_NAME = "INVALID_STATE_NAME"
MISSING_TRANSITION_TARGET = "MISSING_TRANSITION_TARGET"
TOO_DEEPLY_NESTED = "TOO_DEEPLY_NESTED"
NO_DOLLAR = "NO_DOLLAR"
NO_PATH = "NO_PATH"
PASS_RESULT_IS_STATIC = "PASS_RESULT_IS_STATIC"  # noqa: S105 - a diagnostic code
DATA_REPLACED_BY_TASK = "DATA_REPLACED_BY_TASK"
UNASSIGNED_VARIABLE = "UNASSIGNED_VARIABLE"
INVALID_HTTP_TASK = "INVALID_HTTP_TASK"
ITEM_READER_NOT_RUN = "ITEM_READER_NOT_RUN"
RESULT_WRITER_NOT_RUN = "RESULT_WRITER_NOT_RUN"

MAX_DEFINITION_BYTES = 1_048_576  # bytes as compact JSON: AWS's limit on a definition
MAX_STATE_NAME_LENGTH = 80  # characters
MAX_VARIABLE_NAME_LENGTH = 80  # characters
RESERVED_VARIABLE_NAMES = frozenset({"states"})  # `$states` is the state's input, result, context
MAX_SECONDS = 99_999_999  # seconds: Wait Seconds, TimeoutSeconds, HeartbeatSeconds, intervals
MAX_ATTEMPTS = 99_999_999  # retries
MAX_DELAY_SECONDS_BOUND = 31_622_401  # seconds, exclusive: a retrier's MaxDelaySeconds
MIN_BACKOFF_RATE = 1.0
TOLERATED_PERCENTAGE_MAX = 100  # percent

Severity = Literal["error", "warning"]


@dataclass(frozen=True, kw_only=True)
class Finding:
    """One problem in a definition."""

    where: str  # JSON pointer inside the definition, e.g. "/States/W/Timestamp"
    code: str  # AWS diagnostic code, or stepd's own (DATA_REPLACED_BY_TASK)
    message: str
    severity: Severity


def validate(definition: Mapping[str, Any]) -> list[Finding]:
    """Every problem AWS would report for `definition`, plus stepd's warnings, sorted."""
    report = _Report()
    document: object = definition  # callers may hand over any parsed JSON
    if not isinstance(document, Mapping):
        report.error("", SCHEMA_VALIDATION_FAILED, "The definition must be a JSON object")
        return report.sorted()
    if document.get("QueryLanguage") == _JSONATA:
        report.language = _JSONATA
    try:
        _check_size(document, report)
        _check_machine(document, "", report, _TOP_LEVEL_FIELDS, frozenset())
    except RecursionError:
        report.error("", TOO_DEEPLY_NESTED, "The definition is nested too deeply")
    for where, name in report.references:
        if name not in report.assigned:
            message = f"The variable ${name} is read here but no Assign sets it"
            report.warning(where, UNASSIGNED_VARIABLE, message)
    return report.sorted()


# Findings -----------------------------------------------------------------------------------


@dataclass
class _Report:
    findings: list[Finding] = field(default_factory=list)
    state_names: dict[str, str] = field(default_factory=dict)  # name -> where first seen
    language: str = "JSONPath"  # the machine's QueryLanguage: nested states default to it
    assigned: set[str] = field(default_factory=set)  # every variable some Assign sets
    references: list[tuple[str, str]] = field(default_factory=list)  # (where, variable) read

    def error(self, where: str, code: str, message: str) -> None:
        self.findings.append(Finding(where=where, code=code, message=message, severity="error"))

    def warning(self, where: str, code: str, message: str) -> None:
        self.findings.append(Finding(where=where, code=code, message=message, severity="warning"))

    def schema(self, where: str, message: str) -> None:
        self.error(where, SCHEMA_VALIDATION_FAILED, message)

    def sorted(self) -> list[Finding]:
        return sorted(set(self.findings), key=lambda f: (f.where, f.code, f.message, f.severity))


def _pointer(base: str, *tokens: str | int) -> str:
    escaped = (str(token).replace("~", "~0").replace("/", "~1") for token in tokens)
    return "/".join([base, *escaped])


@dataclass(frozen=True, kw_only=True)
class _Scope:
    """One state being checked, and the machine around it."""

    where: str  # pointer to the state
    names: frozenset[str]  # states of this machine
    outer_names: frozenset[str]  # states of the machines around it
    report: _Report

    def at(self, *tokens: str | int) -> str:
        return _pointer(self.where, *tokens)

    def schema(self, message: str, *tokens: str | int) -> None:
        self.report.schema(self.at(*tokens), message)

    def target(self, target: Any, *tokens: str | int) -> None:
        """Check that a transition target names a state of this machine."""
        if not isinstance(target, str):
            self.schema(f'Field "{tokens[-1]}" must be a state name', *tokens)
        elif target in self.outer_names and target not in self.names:
            message = f'Missing "{tokens[-1]}" target: {target} (a nested machine cannot leave)'
            self.report.error(self.at(*tokens), MISSING_TRANSITION_TARGET, message)
        elif target not in self.names:
            message = f'Missing "{tokens[-1]}" target: {target}'
            self.report.error(self.at(*tokens), MISSING_TRANSITION_TARGET, message)


# Value checks -------------------------------------------------------------------------------


def _is_int(value: Any) -> TypeGuard[int]:
    return isinstance(value, int) and not isinstance(value, bool)


def _is_number(value: Any) -> TypeGuard[int | float]:
    return isinstance(value, int | float) and not isinstance(value, bool)


def _problem(parse: Callable[[Any], object], value: Any) -> str | None:
    """What the runtime's parser finds wrong with `value`; None when it parses."""
    try:
        parse(value)
    except ParseError as error:
        return error.problem
    return None


def _reads_input(path: Any) -> bool:
    """A path into the state's input below its root: `$.end`, `$['a']`, `$[0]`."""
    if _problem(paths.parse, path) is not None:
        return False
    return path != paths.ROOT and not paths.is_context_path(path)


def _check_parsed(
    value: Any, parse: Callable[[Any], object], scope: _Scope, *tokens: str | int
) -> None:
    """Report at `tokens` what the runtime's parser finds wrong with `value`."""
    problem = _problem(parse, value)
    if problem is not None:
        scope.schema(problem, *tokens)


def _check_seconds(state: Mapping[str, Any], name: str, scope: _Scope) -> None:
    """TimeoutSeconds / HeartbeatSeconds: a positive integer up to MAX_SECONDS."""
    value = state[name]
    if not (_is_int(value) and 0 < value <= MAX_SECONDS):
        scope.schema(f'Field "{name}" must be an integer from 1 to {MAX_SECONDS}', name)


# Machines -----------------------------------------------------------------------------------

_TOP_LEVEL_FIELDS = frozenset(
    {"StartAt", "States", "Comment", "Version", "TimeoutSeconds", "QueryLanguage"}
)
_NESTED_FIELDS = frozenset({"StartAt", "States", "Comment"})
_ITEM_PROCESSOR_FIELDS = _NESTED_FIELDS | {"ProcessorConfig"}
_SUPPORTED_QUERY_LANGUAGE = "JSONPath"
_JSONATA = "JSONata"
_TERMINAL_TYPES = frozenset({"Succeed", "Fail"})


def _check_size(definition: Mapping[str, Any], report: _Report) -> None:
    size = len(json.dumps(definition, separators=(",", ":"), default=str).encode("utf-8"))
    if size > MAX_DEFINITION_BYTES:
        message = f"The definition is {size} bytes; the limit is {MAX_DEFINITION_BYTES}"
        report.schema("", message)


def _check_machine(
    machine: Any,
    where: str,
    report: _Report,
    allowed: frozenset[str],
    outer_names: frozenset[str],
) -> None:
    """Check one machine: the top level, a Parallel branch or a Map's item processor."""
    if not isinstance(machine, Mapping):
        report.schema(where, "A state machine must be an object with StartAt and States")
        return
    for unknown in sorted(set(machine) - allowed):
        report.schema(_pointer(where, unknown), f'Field "{unknown}" is not supported here')
    _check_machine_fields(machine, where, report)
    states = machine.get("States")
    if not isinstance(states, Mapping) or not states:
        report.schema(_pointer(where, "States"), 'Field "States" must be a non-empty object')
        return
    names = frozenset(str(name) for name in states)
    _register_names(states, where, report)
    for name, state in states.items():
        scope = _Scope(
            where=_pointer(where, "States", name),
            names=names,
            outer_names=outer_names,
            report=report,
        )
        _check_state(state, scope)
    _check_flow(machine, states, where, report)


def _check_machine_fields(machine: Mapping[str, Any], where: str, report: _Report) -> None:
    start_at = machine.get("StartAt")
    if not isinstance(start_at, str):
        report.schema(_pointer(where, "StartAt"), 'Field "StartAt" must be a state name')
    if "TimeoutSeconds" in machine:
        timeout = machine["TimeoutSeconds"]
        if not (_is_int(timeout) and 0 < timeout <= MAX_SECONDS):
            message = f'Field "TimeoutSeconds" must be an integer from 1 to {MAX_SECONDS}'
            report.schema(_pointer(where, "TimeoutSeconds"), message)
    _check_query_language(machine, where, report)


def _check_query_language(node: Mapping[str, Any], where: str, report: _Report) -> None:
    language = node.get("QueryLanguage", report.language)
    if language not in {_SUPPORTED_QUERY_LANGUAGE, _JSONATA}:
        message = f'QueryLanguage "{language}" is not supported: "JSONPath" or "JSONata"'
        report.schema(_pointer(where, "QueryLanguage"), message)
    elif language != report.language and report.language == _JSONATA:
        message = "A JSONata state machine cannot hold JSONPath states"
        report.schema(_pointer(where, "QueryLanguage"), message)


def _register_names(states: Mapping[str, Any], where: str, report: _Report) -> None:
    """State names: at most 80 characters, and unique across every nested machine."""
    for name in states:
        at = _pointer(where, "States", name)
        if not isinstance(name, str) or not 0 < len(name) <= MAX_STATE_NAME_LENGTH:
            message = f"State names must be 1 to {MAX_STATE_NAME_LENGTH} characters long"
            report.error(at, INVALID_STATE_NAME, message)
        first = report.state_names.setdefault(str(name), at)
        if first != at:
            message = f'State name "{name}" is already used at {first}'
            report.error(at, DUPLICATE_STATE_NAME, message)


def _check_flow(
    machine: Mapping[str, Any], states: Mapping[str, Any], where: str, report: _Report
) -> None:
    """StartAt exists, some state ends the machine, every state is reachable; data flow."""
    start_at = machine.get("StartAt")
    if isinstance(start_at, str) and start_at not in states:
        message = f'Missing "StartAt" target: {start_at}'
        report.error(_pointer(where, "StartAt"), MISSING_TRANSITION_TARGET, message)
    if not any(_is_terminal(state) for state in states.values()):
        message = "No terminal state: no state has End: true or Type Succeed or Fail"
        report.error(_pointer(where, "States"), MISSING_END_STATE, message)
    if not isinstance(start_at, str) or start_at not in states:
        return
    reached = _reachable(states, start_at)
    for name in states:
        if name not in reached:
            message = f'State "{name}" is not reachable'
            report.error(_pointer(where, "States", name), MISSING_TRANSITION_TARGET, message)
    _check_data_flow(states, start_at, where, report)


def _is_terminal(state: Any) -> bool:
    if not isinstance(state, Mapping):
        return False
    return _type_of(state) in _TERMINAL_TYPES or state.get("End") is True


def _type_of(state: Mapping[str, Any]) -> str | None:
    kind = state.get("Type")
    return kind if isinstance(kind, str) else None


def _reachable(states: Mapping[str, Any], start_at: str) -> set[str]:
    reached = {start_at}
    queue = deque([start_at])
    while queue:
        for target in _successors(states[queue.popleft()]):
            if target in states and target not in reached:
                reached.add(target)
                queue.append(target)
    return reached


def _successors(state: Any) -> Iterator[str]:
    """Every state this one can go to: Next, Default, Choices[].Next, Catch[].Next."""
    if not isinstance(state, Mapping):
        return
    for key in ("Next", "Default"):
        if isinstance(state.get(key), str):
            yield state[key]
    for key in ("Choices", "Catch"):
        for entry in _entries(state, key):
            if isinstance(entry.get("Next"), str):
                yield entry["Next"]


def _entries(state: Mapping[str, Any], key: str) -> list[Mapping[str, Any]]:
    """The objects in the list `state[key]` (Choices, Catch), ignoring malformed ones."""
    entries = state.get(key)
    if not isinstance(entries, list):
        return []
    return [entry for entry in entries if isinstance(entry, Mapping)]


# States -------------------------------------------------------------------------------------

_COMMON = frozenset({"Type", "Comment", "QueryLanguage"})
_IO = frozenset({"InputPath", "OutputPath"})
_FLOW = frozenset({"Next", "End"})
_RESULT = frozenset({"ResultPath", "Parameters", "ResultSelector"})
_ERRORS = frozenset({"Retry", "Catch"})
_MAP_ONLY = frozenset(
    {
        "ItemsPath",
        "ItemSelector",
        "MaxConcurrency",
        "MaxConcurrencyPath",
        "Iterator",
        "ItemProcessor",
        "ItemReader",
        "ResultWriter",
        "ItemBatcher",
        "ToleratedFailurePercentage",
        "ToleratedFailurePercentagePath",
        "ToleratedFailureCount",
        "ToleratedFailureCountPath",
        "Label",
    }
)
_TASK_ONLY = frozenset(
    {
        "Resource",
        "TimeoutSeconds",
        "TimeoutSecondsPath",
        "HeartbeatSeconds",
        "HeartbeatSecondsPath",
        "Credentials",
    }
)
_FIELDS: Mapping[str, frozenset[str]] = {
    "Pass": _COMMON | _IO | _FLOW | {"ResultPath", "Parameters", "Result"},
    "Task": _COMMON | _IO | _FLOW | _RESULT | _ERRORS | _TASK_ONLY,
    "Choice": _COMMON | _IO | {"Choices", "Default"},
    "Wait": _COMMON | _IO | _FLOW | {"Seconds", "Timestamp", "SecondsPath", "TimestampPath"},
    "Succeed": _COMMON | _IO,
    "Fail": _COMMON | {"Error", "ErrorPath", "Cause", "CausePath"},
    "Parallel": _COMMON | _IO | _FLOW | _RESULT | _ERRORS | {"Branches"},
    "Map": _COMMON | _IO | _FLOW | _RESULT | _ERRORS | _MAP_ONLY,
}
_PATH_FIELDS: tuple[tuple[str, Callable[[Any], paths.Path]], ...] = (
    ("InputPath", paths.parse),
    ("OutputPath", paths.parse),
    ("ResultPath", paths.parse_result_path),
)
_TEMPLATE_FIELDS = ("Parameters", "ResultSelector", "ItemSelector")


def _check_state(state: Any, scope: _Scope) -> None:
    state_type = _known_type(state, scope)
    if state_type is None:
        return
    if state.get("QueryLanguage", scope.report.language) == _JSONATA:
        _check_jsonata_state(state, state_type, scope)
        return
    _note_assign(state, scope, ())
    _note_jsonpath_reads(state, scope)
    assignable = frozenset() if state_type in _NO_ASSIGN else _ASSIGNS
    for unknown in sorted(set(state) - _FIELDS[state_type] - assignable):
        scope.schema(f'Field "{unknown}" is not supported in a {state_type} state', unknown)
    for name, parse in _PATH_FIELDS:
        if state.get(name) is not None:  # null is allowed: {} in, the input kept, {} out
            _check_parsed(state[name], parse, scope, name)
    for name in _TEMPLATE_FIELDS:
        if name in state:
            _check_template(state[name], scope.at(name), scope.report)
    _check_query_language(state, scope.where, scope.report)
    if state_type not in _TERMINAL_TYPES and state_type != "Choice":
        _check_next_or_end(state, scope)
    _TYPE_CHECKS[state_type](state, scope)


def _known_type(state: Any, scope: _Scope) -> str | None:
    """The state's Type when it is an object of a type stepd knows, else None (reported)."""
    if not isinstance(state, Mapping):
        scope.schema("A state must be an object")
        return None
    state_type = state.get("Type")
    if "Type" not in state:
        scope.schema('Field "Type" is required')
        return None
    if not isinstance(state_type, str) or state_type not in _FIELDS:
        scope.schema(f"Unknown state Type {state_type!r}", "Type")
        return None
    return state_type


def _check_next_or_end(state: Mapping[str, Any], scope: _Scope) -> None:
    has_next, has_end = "Next" in state, "End" in state
    if has_next == has_end:
        scope.schema('Exactly one of "Next" or "End" is required')
    if has_next:
        scope.target(state["Next"], "Next")
    if has_end and state["End"] is not True:
        scope.schema('Field "End" must be true', "End")


def _check_pass(state: Mapping[str, Any], scope: _Scope) -> None:
    if "Result" in state and any(key.endswith(".$") for key in _template_keys(state["Result"])):
        message = 'Keys ending in ".$" are not resolved in a Pass state\'s Result'
        scope.report.warning(scope.at("Result"), PASS_RESULT_IS_STATIC, message)


def _check_task(state: Mapping[str, Any], scope: _Scope) -> None:
    if "Resource" in state:
        _check_resource(state["Resource"], scope)
        _check_http_task(state, "Parameters", ".$", scope)
    else:
        scope.schema('Field "Resource" is required in a Task state')
    for name in ("TimeoutSeconds", "HeartbeatSeconds"):
        if name in state:
            _check_seconds(state, name, scope)
        if f"{name}Path" in state:
            _check_parsed(state[f"{name}Path"], paths.parse_reference, scope, f"{name}Path")
        if name in state and f"{name}Path" in state:
            scope.schema(f'At most one of "{name}" and "{name}Path" is allowed')
    timeout, heartbeat = state.get("TimeoutSeconds"), state.get("HeartbeatSeconds")
    if _is_int(timeout) and _is_int(heartbeat) and heartbeat >= timeout:
        scope.schema('"HeartbeatSeconds" must be less than "TimeoutSeconds"', "HeartbeatSeconds")
    _check_error_handling(state, scope)


def _check_resource(resource: Any, scope: _Scope) -> None:
    """A URI (an ARN, or a serverless variable) or a CloudFormation intrinsic (`Fn::GetAtt`)."""
    if isinstance(resource, str) and resource.strip():
        return
    if isinstance(resource, Mapping) and len(resource) == 1:
        (function,) = resource
        if function == "Ref" or str(function).startswith("Fn::"):
            return
    message = 'Field "Resource" must be a URI such as an ARN, or a CloudFormation intrinsic'
    scope.report.error(scope.at("Resource"), INVALID_RESOURCE, message)


def _check_http_task(
    state: Mapping[str, Any], field: str, dynamic_suffix: str, scope: _Scope
) -> None:
    """An HTTP Task's Parameters (Arguments in JSONata) name an ApiEndpoint and a Method."""
    if not is_http_invoke(state.get("Resource")):
        return
    if field not in state:
        scope.report.error(
            scope.at(), INVALID_HTTP_TASK, f"an HTTP Task needs {field} with ApiEndpoint and Method"
        )
        return
    if isinstance(state[field], str):  # a JSONata expression: known when it runs
        return
    for where, message in static_problems(state[field], dynamic_suffix=dynamic_suffix):
        tokens = [field, *where.split("/")] if where else [field]
        scope.report.error(scope.at(*tokens), INVALID_HTTP_TASK, message)


_WAIT_FIELDS = ("Seconds", "Timestamp", "SecondsPath", "TimestampPath")


def _check_wait(state: Mapping[str, Any], scope: _Scope) -> None:
    if sum(name in state for name in _WAIT_FIELDS) != 1:
        scope.schema('Exactly one of "Seconds", "Timestamp", "SecondsPath", "TimestampPath"')
    seconds = state.get("Seconds", 0)
    if not (_is_int(seconds) and 0 <= seconds <= MAX_SECONDS):
        scope.schema(f'Field "Seconds" must be an integer from 0 to {MAX_SECONDS}', "Seconds")
    if "Timestamp" in state:
        _check_parsed(state["Timestamp"], timestamps.parse_literal, scope, "Timestamp")
    for name in ("SecondsPath", "TimestampPath"):
        if name in state:
            _check_parsed(state[name], paths.parse_reference, scope, name)


def _check_fail(state: Mapping[str, Any], scope: _Scope) -> None:
    for name in ("Error", "Cause"):
        path_name = f"{name}Path"
        if name in state and path_name in state:
            scope.schema(f'At most one of "{name}" and "{path_name}" is allowed')
        if name in state and not isinstance(state[name], str):
            scope.schema(f'Field "{name}" must be a string', name)
        if _reads_input(state.get(name)):
            message = f'Field "{name}" looks like a path; did you mean "{path_name}"?'
            scope.report.warning(scope.at(name), NO_PATH, message)
        if path_name in state:
            _check_parsed(state[path_name], payload.parse_expression, scope, path_name)


def _check_succeed(state: Mapping[str, Any], scope: _Scope) -> None:
    """Succeed has nothing beyond the common fields."""


def _check_parallel(state: Mapping[str, Any], scope: _Scope) -> None:
    _check_error_handling(state, scope)
    branches = state.get("Branches")
    if not isinstance(branches, list) or not branches:
        scope.schema('Field "Branches" must be a non-empty list', "Branches")
        return
    for index, branch in enumerate(branches):
        _check_nested(branch, scope.at("Branches", index), _NESTED_FIELDS, scope)


def _check_map(state: Mapping[str, Any], scope: _Scope) -> None:
    processors = [name for name in ("Iterator", "ItemProcessor") if name in state]
    if len(processors) != 1:
        scope.schema('Exactly one of "ItemProcessor" or "Iterator" is required')
    for name in processors:
        # AWS accepts ProcessorConfig in the legacy Iterator too (recorded cases run it)
        _check_nested(state[name], scope.at(name), _ITEM_PROCESSOR_FIELDS, scope)
    if "ItemReader" in state:
        message = (
            "stepd does not run an ItemReader (it reads no S3 object or listing): the state "
            "fails with States.ItemReaderFailed; give the items in the state's input instead"
        )
        scope.report.warning(scope.at("ItemReader"), ITEM_READER_NOT_RUN, message)
    if "ResultWriter" in state:
        message = (
            "stepd does not run a ResultWriter (it writes no S3 object): the state's result is "
            "its children's outputs, as without one"
        )
        scope.report.warning(scope.at("ResultWriter"), RESULT_WRITER_NOT_RUN, message)
    if "ItemsPath" in state:
        _check_parsed(state["ItemsPath"], paths.parse_reference, scope, "ItemsPath")
    concurrency = state.get("MaxConcurrency", 0)
    if not (_is_int(concurrency) and concurrency >= 0):
        scope.schema('Field "MaxConcurrency" must be an integer of 0 or more', "MaxConcurrency")
    percentage = state.get("ToleratedFailurePercentage", 0)
    if not (_is_number(percentage) and 0 <= percentage <= TOLERATED_PERCENTAGE_MAX):
        message = 'Field "ToleratedFailurePercentage" must be a number from 0 to 100'
        scope.schema(message, "ToleratedFailurePercentage")
    _check_error_handling(state, scope)


def _check_nested(machine: Any, where: str, allowed: frozenset[str], scope: _Scope) -> None:
    outer = scope.outer_names | scope.names
    _check_machine(machine, where, scope.report, allowed, outer)


# Retry and Catch ----------------------------------------------------------------------------

_HTTP_STATUS_ERROR = re.compile(r"States\.Http\.StatusCode\.[1-5][0-9][0-9]")
_KNOWN_ERRORS = frozenset(
    {
        STATES_ALL,
        "States.DataLimitExceeded",
        "States.ExceedToleratedFailureThreshold",
        "States.HeartbeatTimeout",
        "States.Http.Socket",
        "States.IntrinsicFailure",
        "States.ItemReaderFailed",
        "States.NoChoiceMatched",
        "States.ParameterPathFailure",
        "States.Permissions",
        "States.QueryEvaluationError",
        "States.ResultPathMatchFailure",
        "States.ResultWriterFailed",
        "States.Runtime",
        "States.TaskFailed",
        "States.Timeout",
        "States.BranchFailed",
    }
)
_RETRIER_FIELDS = frozenset(
    {
        "ErrorEquals",
        "IntervalSeconds",
        "MaxAttempts",
        "BackoffRate",
        "MaxDelaySeconds",
        "JitterStrategy",
        "Comment",
    }
)
_CATCHER_FIELDS = frozenset({"ErrorEquals", "Next", "ResultPath", "Comment", "Assign"})
_JITTER_STRATEGIES = frozenset({"FULL", "NONE"})


def _is_interval(value: Any) -> bool:
    return _is_int(value) and 0 < value <= MAX_SECONDS


def _is_max_attempts(value: Any) -> bool:
    return _is_int(value) and 0 <= value <= MAX_ATTEMPTS


def _is_backoff_rate(value: Any) -> bool:
    return _is_number(value) and value >= MIN_BACKOFF_RATE


def _is_max_delay(value: Any) -> bool:
    return _is_int(value) and 0 < value < MAX_DELAY_SECONDS_BOUND


_RETRIER_RULES: tuple[tuple[str, Callable[[Any], bool], str], ...] = (
    ("IntervalSeconds", _is_interval, f"an integer from 1 to {MAX_SECONDS}"),
    ("MaxAttempts", _is_max_attempts, f"an integer from 0 to {MAX_ATTEMPTS}"),
    ("BackoffRate", _is_backoff_rate, f"a number of at least {MIN_BACKOFF_RATE}"),
    ("MaxDelaySeconds", _is_max_delay, f"an integer from 1 to {MAX_DELAY_SECONDS_BOUND - 1}"),
    (
        "JitterStrategy",
        lambda value: isinstance(value, str) and value in _JITTER_STRATEGIES,
        '"FULL" or "NONE"',
    ),
)


def _check_error_handling(state: Mapping[str, Any], scope: _Scope) -> None:
    for name in ("Retry", "Catch"):
        if name not in state:
            continue
        handlers = state[name]
        if not isinstance(handlers, list):
            scope.schema(f'Field "{name}" must be a list', name)
            continue
        for index, handler in enumerate(handlers):
            is_last = index == len(handlers) - 1
            if not isinstance(handler, Mapping):
                scope.schema("A retrier or catcher must be an object", name, index)
            elif name == "Retry":
                _check_retrier(handler, (name, index), is_last, scope)
            else:
                _check_catcher(handler, (name, index), is_last, scope)


def _check_handler_fields(
    handler: Mapping[str, Any], at: tuple[str, int], allowed: frozenset[str], scope: _Scope
) -> None:
    for unknown in sorted(set(handler) - allowed):
        scope.schema(f'Field "{unknown}" is not supported in a {at[0]} entry', *at, unknown)
    _check_error_equals(handler.get("ErrorEquals"), at, scope)


def _check_retrier(
    retrier: Mapping[str, Any], at: tuple[str, int], is_last: bool, scope: _Scope
) -> None:
    _check_handler_fields(retrier, at, _RETRIER_FIELDS, scope)
    _check_states_all_last(retrier, at, is_last, scope)
    for name, is_valid, expected in _RETRIER_RULES:
        if name in retrier and not is_valid(retrier[name]):
            scope.schema(f'Field "{name}" must be {expected}', *at, name)


def _check_catcher(
    catcher: Mapping[str, Any], at: tuple[str, int], is_last: bool, scope: _Scope
) -> None:
    _check_handler_fields(catcher, at, _CATCHER_FIELDS, scope)
    _check_states_all_last(catcher, at, is_last, scope)
    _note_assign(catcher, scope, at)
    if "Next" not in catcher:
        scope.schema('Field "Next" is required in a Catch entry', *at)
    else:
        scope.target(catcher["Next"], *at, "Next")
    if catcher.get("ResultPath") is not None:
        _check_parsed(catcher["ResultPath"], paths.parse_result_path, scope, *at, "ResultPath")


def _check_error_equals(errors: Any, at: tuple[str, int], scope: _Scope) -> None:
    where = (*at, "ErrorEquals")
    if not isinstance(errors, list) or not errors or not all(isinstance(e, str) for e in errors):
        scope.schema('Field "ErrorEquals" must be a non-empty list of error names', *where)
        return
    if STATES_ALL in errors and len(errors) > 1:
        scope.schema('"States.ALL" must be the only error name in its ErrorEquals', *where)
    for error in errors:
        if (
            error.startswith("States.")
            and error not in _KNOWN_ERRORS
            and not _HTTP_STATUS_ERROR.fullmatch(error)
        ):
            message = f'Unknown error name "{error}": names starting "States." are reserved'
            scope.schema(message, *where)


def _check_states_all_last(
    handler: Mapping[str, Any], at: tuple[str, int], is_last: bool, scope: _Scope
) -> None:
    errors = handler.get("ErrorEquals")
    if not is_last and isinstance(errors, list) and STATES_ALL in errors:
        message = f'"States.ALL" may appear only in the last {at[0]} entry'
        scope.schema(message, *at, "ErrorEquals")


# Choice -------------------------------------------------------------------------------------


def _check_choice(state: Mapping[str, Any], scope: _Scope) -> None:
    choices = state.get("Choices")
    if not isinstance(choices, list) or not choices:
        scope.schema('Field "Choices" must be a non-empty list', "Choices")
    else:
        for index, rule in enumerate(choices):
            _check_rule(rule, ("Choices", index), scope, top=True)
    if "Default" in state:
        scope.target(state["Default"], "Default")


def _check_rule(rule: Any, at: tuple[str | int, ...], scope: _Scope, *, top: bool) -> None:
    _check_parsed(rule, choice.operator_of, scope, *at)
    if not isinstance(rule, Mapping):
        return
    operators = choice.operators_in(rule)
    allowed = {"Variable", "Comment", *operators} | ({"Next", "Assign"} if top else set())
    if top:
        _note_assign(rule, scope, at)
    for unknown in sorted(set(rule) - allowed):
        where = "a nested Choice rule" if unknown == "Next" else "a Choice rule"
        scope.schema(f'Field "{unknown}" is not supported in {where}', *at, unknown)
    if top:
        if "Next" in rule:
            scope.target(rule["Next"], *at, "Next")
        else:
            scope.schema('Field "Next" is required in a top-level Choice rule', *at)
    for operator in operators:
        if operator in choice.COMBINATORS:
            _check_combinator(rule, operator, at, scope)
        else:
            _check_comparison(rule, operator, at, scope)


def _check_combinator(
    rule: Mapping[str, Any], operator: str, at: tuple[str | int, ...], scope: _Scope
) -> None:
    if "Variable" in rule:
        scope.schema(f'A rule with "{operator}" has no "Variable"', *at, "Variable")
    try:
        nested = choice.nested_rules(rule, operator)
    except ParseError as error:
        scope.schema(error.problem, *at, operator)
        return
    if operator == "Not":
        _check_rule(nested[0], (*at, operator), scope, top=False)
    else:
        for index, inner in enumerate(nested):
            _check_rule(inner, (*at, operator, index), scope, top=False)


def _check_comparison(
    rule: Mapping[str, Any], operator: str, at: tuple[str | int, ...], scope: _Scope
) -> None:
    _check_parsed(rule, choice.parse_variable, scope, *at, "Variable")
    _check_parsed(rule[operator], partial(choice.parse_operand, operator), scope, *at, operator)


def _rule_paths(rule: Any) -> Iterator[str]:
    """Every input path a Choice rule reads: Variables and `...Path` operands."""
    pending = [rule]
    while pending:
        node = pending.pop()
        if not isinstance(node, Mapping):
            continue
        for key, value in node.items():
            if key == "Variable" or (key in choice.OPERATORS and key.endswith("Path")):
                yield value
            elif key in ("And", "Or") and isinstance(value, list):
                pending.extend(value)
            elif key == "Not":
                pending.append(value)


# Payload templates (Parameters, ResultSelector, ItemSelector) -------------------------------


def _template_keys(template: Any) -> Iterator[str]:
    """Every key of every object inside `template`."""
    pending = [template]
    while pending:
        node = pending.pop()
        if isinstance(node, Mapping):
            yield from (str(key) for key in node)
            pending.extend(node.values())
        elif isinstance(node, list):
            pending.extend(node)


def _check_template(template: Any, where: str, report: _Report) -> None:
    pending: list[tuple[Any, str]] = [(template, where)]
    while pending:
        node, at = pending.pop()
        if isinstance(node, Mapping):
            _check_template_object(node, at, report)
            pending.extend((value, _pointer(at, key)) for key, value in node.items())
        elif isinstance(node, list):
            pending.extend((value, _pointer(at, index)) for index, value in enumerate(node))


def _check_template_object(node: Mapping[str, Any], where: str, report: _Report) -> None:
    for key in payload.repeated_keys(node):
        name = payload.field_name(key)
        report.schema(_pointer(where, key), f'Field "{name}" appears twice (with and without ".$")')
    for key, value in node.items():
        at = _pointer(where, key)
        if key.endswith(payload.DYNAMIC_SUFFIX):
            problem = _problem(payload.parse_expression, value)
            if problem is not None:
                report.schema(at, problem)
        elif isinstance(value, str) and value != paths.ROOT and _is_dynamic(value):
            message = f'Field "{key}" looks like a path or intrinsic but does not end in ".$"'
            report.warning(at, NO_DOLLAR, message)


def _is_dynamic(value: Any) -> bool:
    """A path, a context path or an intrinsic function call, as the runtime parses them."""
    return _problem(payload.parse_expression, value) is None


_TYPE_CHECKS: Mapping[str, Callable[[Mapping[str, Any], _Scope], None]] = {
    "Pass": _check_pass,
    "Task": _check_task,
    "Choice": _check_choice,
    "Wait": _check_wait,
    "Succeed": _check_succeed,
    "Fail": _check_fail,
    "Parallel": _check_parallel,
    "Map": _check_map,
}


# Data flow ----------------------------------------------------------------------------------

_READ_PATH_FIELDS = (
    "InputPath",
    "TimestampPath",
    "SecondsPath",
    "TimeoutSecondsPath",
    "HeartbeatSecondsPath",
    "ItemsPath",
    "ErrorPath",
    "CausePath",
)


def _check_data_flow(states: Mapping[str, Any], start_at: str, where: str, report: _Report) -> None:
    """Warn where a state reads input paths after a result may have replaced the data."""
    replaced_by = _replacers_reaching(states, start_at)
    for name, replacers in replaced_by.items():
        read = _first_input_read(states[name])
        if replacers and read is not None:
            report.warning(
                _pointer(where, "States", name),
                DATA_REPLACED_BY_TASK,
                _replaced_message(name, read, replacers, states),
            )


def _replacers_reaching(states: Mapping[str, Any], start_at: str) -> dict[str, frozenset[str]]:
    """State -> the states whose result may be the whole of its input, on some path."""
    incoming: dict[str, frozenset[str]] = {start_at: frozenset()}
    queue = deque([start_at])
    while queue:
        name = queue.popleft()
        state = states[name]
        if not isinstance(state, Mapping):
            continue
        for target, carried in _data_edges(name, state, incoming[name]):
            if target not in states:
                continue
            merged = incoming.get(target, frozenset()) | carried
            if target not in incoming or merged != incoming[target]:
                incoming[target] = merged
                queue.append(target)
    return incoming


def _data_edges(
    name: str, state: Mapping[str, Any], replacers: frozenset[str]
) -> Iterator[tuple[str, frozenset[str]]]:
    after = _replacers_after(name, state, replacers)
    for key in ("Next", "Default"):
        if isinstance(state.get(key), str):
            yield state[key], after
    for rule in _entries(state, "Choices"):
        if isinstance(rule.get("Next"), str):
            yield rule["Next"], after
    for catcher in _entries(state, "Catch"):
        if isinstance(catcher.get("Next"), str):
            yield catcher["Next"], replacers


def _replacers_after(
    name: str, state: Mapping[str, Any], replacers: frozenset[str]
) -> frozenset[str]:
    """Which results may be the whole data after this state has run."""
    if state.get("OutputPath", "$") != "$":
        return frozenset()  # the author picks what goes on
    if _replaces_data(state):
        return frozenset({name})
    if _reshapes_data(state):
        return frozenset()
    return replacers


def _reshapes_data(state: Mapping[str, Any]) -> bool:
    """The output is built on purpose (Parameters, ResultSelector, branch results, InputPath)."""
    if "ResultPath" in state:
        return False  # ResultPath writes into the state's original input
    if state.get("InputPath", "$") != "$":
        return True
    kind = _type_of(state)
    return kind in {"Task", "Parallel", "Map"} or (kind == "Pass" and "Parameters" in state)


def _replaces_data(state: Mapping[str, Any]) -> bool:
    """A Task (or a Pass with Result) whose unshaped result replaces the data by default."""
    if "ResultPath" in state:
        return False
    if state.get("Type") == "Task":
        return "ResultSelector" not in state
    return state.get("Type") == "Pass" and "Result" in state


def _first_input_read(state: Any) -> str | None:
    if not isinstance(state, Mapping):
        return None
    candidates = [state.get(name) for name in _READ_PATH_FIELDS]
    candidates.extend(_rule_paths({"Or": state.get("Choices") or []}))
    parameters = state.get("Parameters")
    if isinstance(parameters, Mapping):
        candidates.extend(_template_paths(parameters))
    return next((path for path in candidates if _reads_input(path)), None)


def _template_paths(template: Mapping[str, Any]) -> Iterator[Any]:
    pending: list[Any] = [template]
    while pending:
        node = pending.pop()
        if isinstance(node, Mapping):
            for key, value in node.items():
                if str(key).endswith(".$"):
                    yield value
                else:
                    pending.append(value)
        elif isinstance(node, list):
            pending.extend(node)


def _replaced_message(
    name: str, read: str, replacers: frozenset[str], states: Mapping[str, Any]
) -> str:
    described = ", ".join(f'{states[r].get("Type", "State")} "{r}"' for r in sorted(replacers))
    return (
        f'State "{name}" reads {read}, but the data may have been replaced by the result of '
        f'{described} (no ResultPath, so ResultPath defaults to "$"); '
        "set ResultPath (e.g. null) to keep the input"
    )


# Variables and JSONata ----------------------------------------------------------------------

_ASSIGNS = frozenset({"Assign"})
_NO_ASSIGN = frozenset({"Succeed", "Fail"})
_VARIABLE_READ = re.compile(r"(?<![\w$.])\$([A-Za-z_][A-Za-z0-9_]*)")
_JSONATA_CALL_OR_READ = re.compile(r"\$([A-Za-z_][A-Za-z0-9_]*)(\s*:=|\s*\()?")
_JSONATA_PARAMETERS = re.compile(r"function\s*\(([^)]*)\)")
_JSONATA_RESERVED = frozenset({"states"})
_JSONATA_COMMON = frozenset({"Type", "Comment", "QueryLanguage", "Output", "Assign"})
_JSONATA_FIELDS: Mapping[str, frozenset[str]] = {
    "Pass": _JSONATA_COMMON | _FLOW,
    "Task": _JSONATA_COMMON
    | _FLOW
    | _ERRORS
    | {"Resource", "Arguments", "TimeoutSeconds", "HeartbeatSeconds", "Credentials"},
    "Choice": _JSONATA_COMMON | {"Choices", "Default"},
    "Wait": _JSONATA_COMMON | _FLOW | {"Seconds", "Timestamp"},
    "Succeed": _JSONATA_COMMON - _ASSIGNS,
    "Fail": frozenset({"Type", "Comment", "QueryLanguage", "Error", "Cause"}),
    "Parallel": _JSONATA_COMMON | _FLOW | _ERRORS | {"Branches", "Arguments"},
    "Map": _JSONATA_COMMON
    | _FLOW
    | _ERRORS
    | {
        "Items",
        "ItemSelector",
        "ItemProcessor",
        "Iterator",
        "ItemReader",
        "ItemBatcher",
        "ResultWriter",
        "MaxConcurrency",
        "ToleratedFailurePercentage",
        "ToleratedFailureCount",
        "Label",
    },
}
_JSONATA_CATCHER_FIELDS = frozenset({"ErrorEquals", "Next", "Comment", "Output", "Assign"})
_JSONATA_RULE_FIELDS = frozenset({"Condition", "Next", "Comment", "Output", "Assign"})


def _note_assign(owner: Mapping[str, Any], scope: _Scope, at: tuple[str | int, ...]) -> None:
    """Record the variables a JSONPath `Assign` sets and the ones its `.$` values read."""
    assign = owner.get("Assign")
    if assign is None:
        return
    if not isinstance(assign, Mapping):
        scope.schema('Field "Assign" must be an object', *at, "Assign")
        return
    scope.report.assigned.update(payload.field_name(str(key)) for key in assign)
    _check_variable_names(assign, at, scope)
    _check_template(assign, scope.at(*at, "Assign"), scope.report)


def _note_jsonpath_reads(state: Mapping[str, Any], scope: _Scope) -> None:
    """Record the variables a JSONPath state's paths, `.$` values and intrinsics read."""
    for at, value in _dynamic_values(state, ()):
        if isinstance(value, str):
            for name in _VARIABLE_READ.findall(value):
                scope.report.references.append((scope.at(*at), name))


def _dynamic_values(
    node: Any, at: tuple[str | int, ...]
) -> Iterator[tuple[tuple[str | int, ...], Any]]:
    """Every path-valued entry (`….$`, `…Path`, `Variable`) in `node`, with where it is."""
    if isinstance(node, Mapping):
        for name, value in node.items():
            text = str(name)
            if text.endswith((payload.DYNAMIC_SUFFIX, "Path")) or text == "Variable":
                yield (*at, text), value
            elif text not in {"Result", "Branches", "ItemProcessor", "Iterator"}:
                yield from _dynamic_values(value, (*at, text))
    elif isinstance(node, list):
        for index, item in enumerate(node):
            yield from _dynamic_values(item, (*at, index))


def _check_jsonata_state(state: Mapping[str, Any], state_type: str, scope: _Scope) -> None:
    """A JSONata state: its fields (no JSONPath ones), its expressions, its transitions."""
    for unknown in sorted(set(state) - _JSONATA_FIELDS[state_type]):
        scope.schema(f'Field "{unknown}" is not supported in a JSONata {state_type} state', unknown)
    _check_query_language(state, scope.where, scope.report)
    if state_type not in _TERMINAL_TYPES and state_type != "Choice":
        _check_next_or_end(state, scope)
    for name, value in state.items():
        if name not in {"Branches", "ItemProcessor", "Iterator", "Choices", "Catch", "Retry"}:
            _check_expressions(value, (name,), scope)
    _note_jsonata_assign(state, (), scope)
    if state_type == "Task" and "Resource" not in state:
        scope.schema('Field "Resource" is required in a Task state')
    if state_type == "Task":
        _check_http_task(state, "Arguments", "", scope)
    if state_type == "Choice":
        _check_jsonata_choices(state, scope)
    if "Retry" in state or "Catch" in state:
        _check_jsonata_handlers(state, scope)
    _check_jsonata_children(state, scope)


def _check_jsonata_children(state: Mapping[str, Any], scope: _Scope) -> None:
    branches = state.get("Branches")
    for index, branch in enumerate(branches if isinstance(branches, list) else []):
        _check_nested(branch, scope.at("Branches", index), _NESTED_FIELDS, scope)
    for name in ("ItemProcessor", "Iterator"):
        if name in state:
            _check_nested(state[name], scope.at(name), _ITEM_PROCESSOR_FIELDS, scope)


def _check_jsonata_choices(state: Mapping[str, Any], scope: _Scope) -> None:
    choices = state.get("Choices")
    if not isinstance(choices, list) or not choices:
        scope.schema('Field "Choices" must be a non-empty list', "Choices")
        return
    for index, rule in enumerate(choices):
        at = ("Choices", index)
        if not isinstance(rule, Mapping):
            scope.schema("A Choice rule must be an object", *at)
            continue
        for unknown in sorted(set(rule) - _JSONATA_RULE_FIELDS):
            scope.schema(f'Field "{unknown}" is not supported in a JSONata Choice rule', *at)
        if "Condition" not in rule:
            scope.schema('Field "Condition" is required in a JSONata Choice rule', *at)
        if "Next" in rule:
            scope.target(rule["Next"], *at, "Next")
        else:
            scope.schema('Field "Next" is required in a top-level Choice rule', *at)
        _check_expressions(rule, at, scope)
        _note_jsonata_assign(rule, at, scope)
    if "Default" in state:
        scope.target(state["Default"], "Default")


def _check_jsonata_handlers(state: Mapping[str, Any], scope: _Scope) -> None:
    for name in ("Retry", "Catch"):
        handlers = state.get(name, [])
        if not isinstance(handlers, list):
            scope.schema(f'Field "{name}" must be a list', name)
            continue
        for index, handler in enumerate(handlers):
            at = (name, index)
            is_last = index == len(handlers) - 1
            if not isinstance(handler, Mapping):
                scope.schema("A retrier or catcher must be an object", *at)
            elif name == "Retry":
                _check_retrier(handler, at, is_last, scope)
            else:
                _check_handler_fields(handler, at, _JSONATA_CATCHER_FIELDS, scope)
                _check_states_all_last(handler, at, is_last, scope)
                scope.target(handler.get("Next"), *at, "Next")
                _check_expressions(handler, at, scope)
                _note_jsonata_assign(handler, at, scope)


def _note_jsonata_assign(
    owner: Mapping[str, Any], at: tuple[str | int, ...], scope: _Scope
) -> None:
    assign = owner.get("Assign")
    if assign is None:
        return
    if not isinstance(assign, Mapping):
        scope.schema('Field "Assign" must be an object', *at, "Assign")
        return
    scope.report.assigned.update(str(key) for key in assign)
    _check_variable_names(assign, at, scope)


def _check_variable_names(
    assign: Mapping[Any, Any], at: tuple[str | int, ...], scope: _Scope
) -> None:
    """Each name an `Assign` sets (without a JSONPath `.$`) is one AWS accepts."""
    for key in assign:
        problem = variable_name_problem(payload.field_name(str(key)))
        if problem is not None:
            scope.schema(problem, *at, "Assign", str(key))


def variable_name_problem(name: str) -> str | None:
    """Why AWS refuses `name` as a variable's name, or None: a name is a Unicode identifier
    (UAX #31: its first character ID_Start, or `_`, the others ID_Continue, as Python's own
    identifiers), of at most 80 characters, and not `states`, which `$states` holds."""
    if name in RESERVED_VARIABLE_NAMES:
        return f'The variable name "{name}" is reserved: $states is the state\'s own data'
    if len(name) > MAX_VARIABLE_NAME_LENGTH:
        return (
            f'The variable name "{name[:20]}…" is {len(name)} characters long; '
            f"at most {MAX_VARIABLE_NAME_LENGTH} are allowed"
        )
    if not name.isidentifier():
        return (
            f'The variable name "{name}" is not valid: a name starts with a letter or "_" '
            'and goes on with letters, digits or "_" (Unicode ID_Start, ID_Continue)'
        )
    return None


def _check_expressions(value: Any, at: tuple[str | int, ...], scope: _Scope) -> None:
    """Compile every `{% … %}` string in `value` and record the variables each one reads."""
    if jsonata.is_expression(value):
        try:
            jsonata.check(value)
        except ParseError as failure:
            scope.schema(failure.problem, *at)
            return
        for name in _jsonata_reads(jsonata.body(value)):
            scope.report.references.append((scope.at(*at), name))
    elif isinstance(value, Mapping):
        for key, item in value.items():
            _check_expressions(item, (*at, str(key)), scope)
    elif isinstance(value, list):
        for index, item in enumerate(value):
            _check_expressions(item, (*at, index), scope)


_JSONATA_STRING = re.compile(r'"(?:[^"\\]|\\.)*"|\'(?:[^\'\\]|\\.)*\'')


def _jsonata_reads(text: str) -> set[str]:
    """The variables an expression reads: `$name`, not calls, not its own `:=` or parameters."""
    text = _JSONATA_STRING.sub('""', text)  # "hello$world" reads no variable
    local = {
        parameter.strip().lstrip("$")
        for group in _JSONATA_PARAMETERS.findall(text)
        for parameter in group.split(",")
    }
    reads: set[str] = set()
    for match in _JSONATA_CALL_OR_READ.finditer(text):
        name, follower = match[1], match[2]
        if follower is not None and ":=" in follower:
            local.add(name)
        elif follower is None and name not in _JSONATA_RESERVED:
            reads.add(name)
    return reads - local
