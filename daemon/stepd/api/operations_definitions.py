"""ValidateStateMachineDefinition and TestState: a definition checked, or one state run, with
no state machine behind it.

Both use what `stepd check` and the runtime use: `stepd.asl.validate` judges a definition and
`stepd.asl.interpreter` runs the state. TestState never calls anything: a Task, Map or
Parallel state is tested with a `mock` (its result, or its error and cause); without one the
request is refused with ValidationException. A Wait state reports where it goes without
waiting. TRACE shows what DEBUG shows (there is no HTTP call to show).
"""

from __future__ import annotations

import contextlib
import json
import uuid
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Final

from stepd.api import fields
from stepd.asl import interpreter, paths
from stepd.asl.decisions import (
    CallTask,
    Caught,
    Context,
    ContextObject,
    Fail,
    FanOut,
    GoTo,
    RetryAt,
    Succeed,
    WaitUntil,
)
from stepd.asl.failures import STATES_QUERY_EVALUATION_ERROR, STATES_RUNTIME
from stepd.asl.loader import parse_json_text
from stepd.asl.retry import error_matches, next_retry
from stepd.asl.validate import UNASSIGNED_VARIABLE, validate
from stepd.engine.arns import ROLE_ARN, Arns
from stepd.engine.express import express_arn
from stepd.engine.history import dumps
from stepd.errors import (
    DefinitionError,
    DuplicateKeyError,
    InvalidDefinition,
    InvalidExecutionInput,
    StateError,
    ValidationException,
)

MAX_DIAGNOSTICS: Final = 100  # ValidateStateMachineDefinition's maxResults: default and maximum
MACHINE_TYPES: Final = ("STANDARD", "EXPRESS")
SEVERITIES: Final = ("ERROR", "WARNING")
INSPECTION_LEVELS: Final = ("INFO", "DEBUG", "TRACE")
MOCK_VALIDATION_MODES: Final = ("STRICT", "PRESENT", "NONE")
MOCKED_TYPES: Final = frozenset({"Task", "Map", "Parallel"})
TEST_MACHINE: Final = "TestState"  # the machine name `$$.StateMachine` shows
SINGLE_STATE: Final = "StateName"  # the name a lone state is tested under, as AWS's
EXPRESS_PATTERNS: Final = (".sync", ".waitForTaskToken")
SOURCE: Final = "definition"
REQUIRED_FIELDS: Final = ("States", "StartAt")  # in the order AWS names them
MAX_PROBLEMS_SHOWN: Final = 5  # findings quoted in an InvalidDefinition message


@dataclass(frozen=True, kw_only=True)
class Diagnostic:
    severity: str  # ERROR or WARNING
    code: str
    message: str
    location: str = ""  # a JSON pointer into the definition; "" when it is the whole

    def as_json(self) -> dict[str, Any]:
        shaped = {"severity": self.severity, "code": self.code, "message": self.message}
        if self.location:
            shaped["location"] = self.location
        return shaped


def diagnose(text: str, machine_type: str = "STANDARD") -> list[Diagnostic]:
    """Every diagnostic for the definition `text` (ASL JSON), errors first."""
    if not text.strip():
        return [
            Diagnostic(
                severity="ERROR",
                code="SCHEMA_VALIDATION_FAILED",
                message="Definition must be a valid JSON object",
            )
        ]
    try:
        document = parse_json_text(text, SOURCE)
    except DefinitionError as exc:
        duplicate = exc.__cause__
        if isinstance(duplicate, DuplicateKeyError) and duplicate.is_state:
            message = f'State name "{duplicate.key}" is defined more than once'
            return [Diagnostic(severity="ERROR", code="DUPLICATE_STATE_NAME", message=message)]
        return [Diagnostic(severity="ERROR", code="INVALID_JSON_DESCRIPTION", message=str(exc))]
    found = [
        Diagnostic(
            severity=finding.severity.upper(),
            code=finding.code,
            message=finding.message,
            location=finding.where,
        )
        for finding in validate(document)
    ]
    missing = [key for key in REQUIRED_FIELDS if isinstance(document, dict) and key not in document]
    if missing:  # one finding for the fields a machine must have, at its root, as AWS's
        found = [d for d in found if d.location not in {f"/{key}" for key in missing}]
        found.insert(
            0,
            Diagnostic(
                severity="ERROR",
                code="SCHEMA_VALIDATION_FAILED",
                message=f"These fields are required: [{', '.join(missing)}]",
                location="/",
            ),
        )
    if machine_type == "EXPRESS":
        found += _express_problems(document, "")
    return sorted(found, key=lambda d: d.severity != "ERROR")


def _express_problems(node: Any, where: str) -> Iterator[Diagnostic]:
    """Express machines cannot wait for a job (`.sync`) or a callback (`.waitForTaskToken`)."""
    if isinstance(node, list):
        for index, item in enumerate(node):
            yield from _express_problems(item, f"{where}/{index}")
        return
    if not isinstance(node, Mapping):
        return
    resource = node.get("Resource")
    if node.get("Type") == "Task" and isinstance(resource, str):
        pattern = next((p for p in EXPRESS_PATTERNS if resource.endswith(p)), None)
        if pattern is not None:
            yield Diagnostic(
                severity="ERROR",
                code="SCHEMA_VALIDATION_FAILED",
                message=f"Express state machines do not support the '{pattern}' pattern",
                location=f"{where}/Resource",
            )
    for key, value in node.items():
        token = str(key).replace("~", "~0").replace("/", "~1")
        yield from _express_problems(value, f"{where}/{token}")


@dataclass(frozen=True, kw_only=True)
class Mock:
    result: Any = None
    has_result: bool = False
    error: str = ""
    cause: str | None = None


@dataclass(frozen=True, kw_only=True)
class _GivenContext(Context):
    """The context object a TestState request gave (`context`), over the default one."""

    given: Mapping[str, Any]

    def as_json(self) -> ContextObject:
        default = super().as_json()
        return ContextObject(default.variables, _merged(default, self.given))


def _merged(base: dict[str, Any], over: Mapping[str, Any]) -> dict[str, Any]:
    merged = dict(base)
    for key, value in over.items():
        below = merged.get(key)
        if isinstance(below, dict) and isinstance(value, Mapping):
            merged[key] = _merged(below, value)
        else:
            merged[key] = value
    return merged


class DefinitionOperations:
    """The two operations; `clock` gives unix seconds, as the engine's does."""

    def __init__(self, arns: Arns, clock: Any) -> None:
        self.arns = arns
        self.clock = clock

    def handlers(self) -> dict[str, fields.Handler]:
        return {
            "ValidateStateMachineDefinition": self.validate_state_machine_definition,
            "TestState": self.test_state,
        }

    async def validate_state_machine_definition(self, body: dict[str, Any]) -> dict[str, Any]:
        text = fields.required_string(body, "definition")
        machine_type = fields.choice(body, "type", MACHINE_TYPES, "STANDARD")
        severity = fields.choice(body, "severity", SEVERITIES, "ERROR")
        limit = fields.integer(body, "maxResults", default=MAX_DIAGNOSTICS, maximum=MAX_DIAGNOSTICS)
        found = diagnose(text, machine_type)
        shown = [d for d in found if severity == "WARNING" or d.severity == "ERROR"]
        return {
            "result": "FAIL" if any(d.severity == "ERROR" for d in found) else "OK",
            "diagnostics": [d.as_json() for d in shown[:limit]],
            "truncated": len(shown) > limit,
        }

    async def test_state(self, body: dict[str, Any]) -> dict[str, Any]:
        text = fields.required_string(body, "definition")
        input_text = fields.string(body, "input")
        level = fields.choice(body, "inspectionLevel", INSPECTION_LEVELS, "INFO")
        role = fields.string(body, "roleArn")  # `$$.Execution.RoleArn`; stepd calls nothing
        reveal = fields.boolean(body, "revealSecrets")  # stepd has no connection secrets
        state_name = fields.string(body, "stateName")
        mock = _mock(fields.structure(body, "mock"))
        if reveal and mock is not None:
            raise ValidationException(
                "TestState does not support RevealSecrets when a mock is specified."
            )
        context_text = fields.string(body, "context")
        if context_text is not None and mock is None:
            raise ValidationException("'context' may only be given together with a 'mock'")
        variables = _json_object(fields.string(body, "variables"), "variables")
        configuration = fields.structure(body, "stateConfiguration")
        retry_count = _retry_count(configuration)
        definition, name = _machine_of(_definition(text), state_name)
        state = definition["States"][name]
        _check_mock(state, mock, fields.counter(configuration or {}, "mapIterationFailureCount"))
        state_input = _input(input_text)
        now = datetime.fromtimestamp(self.clock(), UTC)
        ctx = self._context(
            state_input, name, now, retry_count, context_text, variables=variables or {}, role=role
        )
        test = _Test(definition=definition, name=name, state=state, input=state_input, ctx=ctx)
        answer = test.run(mock, now, retry_count)
        assigned = answer.pop("variables", None)  # every variable once the state's Assign ran
        inspection: dict[str, Any] = {}
        if level != "INFO":
            inspection.update(test.inspect(mock))
            shown = assigned if assigned is not None else variables
            if shown is not None:
                inspection["variables"] = dumps(shown)
        details = answer.pop("inspectionData", {})  # errorDetails: none at INFO, as AWS's
        if level != "INFO":
            inspection.update(details)
        if inspection:
            answer["inspectionData"] = inspection
        return answer

    def _context(
        self,
        state_input: Any,
        name: str,
        now: datetime,
        retry_count: int,
        context_text: str | None,
        *,
        variables: Mapping[str, Any],
        role: str | None,
    ) -> Context:
        execution = str(uuid.uuid4())
        facts: dict[str, Any] = {
            "execution_id": express_arn(self.arns, TEST_MACHINE, execution),  # as AWS's
            "role_arn": role or ROLE_ARN.format(account=self.arns.account),
            "redrive_count": None,
            "execution_name": execution,
            "execution_input": state_input,
            "execution_start_time": now,
            "state_machine_id": self.arns.state_machine(TEST_MACHINE),
            "state_machine_name": TEST_MACHINE,
            "state_name": name,
            "state_entered_time": now,
            "retry_count": retry_count,
            "variables": variables,
        }
        given = _json_object(context_text, "context")
        if given is None:
            return Context(**facts)
        return _GivenContext(**facts, given=given)


# -- reading the request -----------------------------------------------------------------------


def _definition(text: str) -> Any:
    try:
        return parse_json_text(text, SOURCE)
    except DefinitionError as exc:
        raise InvalidDefinition(f"Invalid State Machine Definition: '{exc}'") from None


def _machine_of(document: Any, state_name: str | None) -> tuple[dict[str, Any], str]:
    """The machine to run and the state to test in it; a lone state gets a machine of its own,
    with a Succeed state for each place it may go."""
    if not isinstance(document, dict):
        raise InvalidDefinition("Invalid State Machine Definition: it must be a JSON object")
    if state_name is not None:
        states = document.get("States")
        _check(document, prefix="")
        if not isinstance(states, dict) or state_name not in states:
            raise ValidationException(
                f"The state '{state_name}' is not among the definition's top-level States"
            )
        return document, state_name
    if "States" in document and "StartAt" in document:
        raise InvalidDefinition(
            "Invalid State Machine Definition: this is a whole state machine; "
            "give 'stateName' to say which of its states to test"
        )
    targets = set(_targets(document))
    taken = targets | set(_state_names(document))
    name = SINGLE_STATE
    while name in taken:
        name += "_"
    machine = {
        "StartAt": name,
        "States": {name: document, **{target: {"Type": "Succeed"} for target in targets}},
    }
    _check(machine, prefix=f"/States/{name}")
    return machine, name


def _state_names(node: Any) -> Iterator[str]:
    """The names of the states nested in `node` (a Map's or a Parallel's)."""
    if isinstance(node, dict):
        states = node.get("States")
        if isinstance(states, dict):
            yield from (name for name in states if isinstance(name, str))
        for value in node.values():
            yield from _state_names(value)
    elif isinstance(node, list):
        for value in node:
            yield from _state_names(value)


def _check_mock(state: Mapping[str, Any], mock: Mock | None, failures: int | None) -> None:
    """Whether `state` is tested with a mock when it must be, as AWS checks it."""
    kind = state.get("Type")
    if mock is not None and kind not in MOCKED_TYPES:
        raise ValidationException(
            f"A mock can only be given for a Task, Map or Parallel state, not a {kind} state"
        )
    if mock is None and kind in {"Map", "Parallel"}:
        raise InvalidDefinition(
            "TestState API does not support Map or Parallel states. Supported state types "
            "include: [Task, Wait, Pass, Succeed, Fail, Choice] (give it a 'mock')"
        )
    if mock is None and kind in MOCKED_TYPES:
        raise ValidationException(
            f"stepd's TestState does not call anything: give the {kind} state a 'mock' "
            "with its 'result' (JSON text) or its 'errorOutput' (error and cause)"
        )
    if mock is None or not mock.has_result:
        return
    if kind == "Parallel":
        _check_parallel_mock(mock.result, len(state.get("Branches") or ()))
    if isinstance(mock.result, list) and failures is not None and failures > len(mock.result):
        raise ValidationException(
            "Map iteration failure count must be less than or equal to the number of Map iterations"
        )


def _check_parallel_mock(result: Any, branches: int) -> None:
    """AWS's checks of a Parallel state's mocked result: one item per branch."""
    if not isinstance(result, list):
        raise ValidationException("Mocked result must be an array.")
    if len(result) != branches:
        raise ValidationException(
            "Mocked result must contain the same number of items as number of Parallel branches."
        )


def _targets(state: Mapping[str, Any]) -> Iterator[str]:
    candidates = [state.get("Next"), state.get("Default")]
    for key in ("Choices", "Catch"):
        rules = state.get(key)
        if isinstance(rules, list):
            candidates += [rule.get("Next") for rule in rules if isinstance(rule, dict)]
    yield from (c for c in candidates if isinstance(c, str) and c)


def _check(machine: Mapping[str, Any], prefix: str) -> None:
    """InvalidDefinition quoting the definition's errors, if it has any. A variable no Assign
    sets is not one: the tested state reads the request's `variables`."""
    errors = [
        f for f in validate(machine) if f.severity == "error" and f.code != UNASSIGNED_VARIABLE
    ]
    if not errors:
        return
    own = [f for f in errors if f.where == prefix or f.where.startswith(f"{prefix}/")]
    errors = own or errors  # a lone state: not what its stand-in machine lacks
    shown = [
        f"{f.code}: {f.message} at {f.where.removeprefix(prefix) or '/'}"
        for f in errors[:MAX_PROBLEMS_SHOWN]
    ]
    more = len(errors) - len(shown)
    tail = f" (and {more} more)" if more else ""
    raise InvalidDefinition(f"Invalid State Machine Definition: '{'; '.join(shown)}'{tail}")


def _mock(value: dict[str, Any] | None) -> Mock | None:
    if value is None:
        return None
    fields.choice(value, "fieldValidationMode", MOCK_VALIDATION_MODES, "STRICT")
    result = fields.string(value, "result")
    error_output = fields.structure(value, "errorOutput")
    if (result is None) == (error_output is None):
        raise ValidationException("A mock gives exactly one of 'result' and 'errorOutput'")
    if result is not None:
        try:
            parsed = json.loads(result)
        except ValueError:
            raise ValidationException("The mock's 'result' is not valid JSON") from None
        return Mock(result=parsed, has_result=True)
    assert error_output is not None
    return Mock(
        error=fields.string(error_output, "error") or "",
        cause=fields.string(error_output, "cause"),
    )


def _retry_count(configuration: dict[str, Any] | None) -> int:
    if configuration is None:
        return 0
    for key in ("errorCausedByState", "mapItemReaderData"):
        fields.string(configuration, key)
    fields.counter(configuration, "mapIterationFailureCount")
    return fields.counter(configuration, "retrierRetryCount") or 0


def _input(text: str | None) -> Any:
    if text is None:
        return {}
    try:
        return json.loads(text)
    except ValueError:
        raise InvalidExecutionInput(
            "Invalid State Machine Execution Input: 'the input is not valid JSON'"
        ) from None


def _json_object(text: str | None, key: str) -> dict[str, Any] | None:
    if text is None:
        return None
    try:
        value = json.loads(text)
    except ValueError:
        value = None
    if not isinstance(value, dict):
        raise ValidationException(f"'{key}' must be a JSON object")
    return value


# -- running the state -------------------------------------------------------------------------


def _full_jitter() -> float:
    return 1.0  # a FULL jitter reported at its largest: the backoff a retry waits at most


@dataclass(frozen=True, kw_only=True)
class _Test:
    definition: dict[str, Any]
    name: str
    state: Mapping[str, Any]
    input: Any
    ctx: Context

    def run(self, mock: Mock | None, now: datetime, retry_count: int) -> dict[str, Any]:
        entered = interpreter.enter(self.definition, self.name, self.input, self.ctx, now)
        if mock is None or not isinstance(entered, CallTask | FanOut):
            return self._answer(entered)
        if mock.has_result:
            return self._answer(
                interpreter.task_succeeded(
                    self.definition, self.name, self.input, mock.result, self.ctx, now
                )
            )
        counts = self._retry_counts(mock.error, retry_count)
        decision = interpreter.task_failed(
            self.definition,
            self.name,
            self.input,
            mock.error,
            mock.cause,
            counts,
            now,
            _full_jitter,
            self.ctx,
        )
        answer = self._answer(decision)
        if isinstance(decision, RetryAt):
            retry = next_retry(self._rules("Retry"), mock.error, counts, _full_jitter)
            if retry is not None:
                answer["inspectionData"] = {
                    "errorDetails": {
                        "retryIndex": retry.retrier,
                        "retryBackoffIntervalSeconds": round(retry.delay_seconds),
                    }
                }
        elif isinstance(decision, Fail):  # the retrier that took it has made its attempts
            spent = self._first_matching("Retry", mock.error)
            if spent is not None:
                answer["inspectionData"] = {"errorDetails": {"retryIndex": spent}}
        return answer

    def _rules(self, key: str) -> list[Mapping[str, Any]]:
        rules = self.state.get(key, [])
        return [rule for rule in rules if isinstance(rule, Mapping)]

    def _retry_counts(self, error: str, retry_count: int) -> tuple[int, ...]:
        """The retriers' counters when the first retrier matching `error` has made
        `retry_count` attempts (TestState's `retrierRetryCount`)."""
        index = self._first_matching("Retry", error)
        return () if index is None else (0,) * index + (retry_count,)

    def _first_matching(self, key: str, error: str) -> int | None:
        """The index of the first retrier or catcher (`key`) whose ErrorEquals has `error`."""
        return next(
            (
                index
                for index, rule in enumerate(self._rules(key))
                if error_matches(rule.get("ErrorEquals", ()), error)
            ),
            None,
        )

    def _answer(self, decision: Any) -> dict[str, Any]:
        answer = self._outcome(decision)
        then = decision.then if isinstance(decision, WaitUntil) else decision
        if isinstance(then, GoTo | Succeed | Caught) and then.variables is not None:
            answer["variables"] = then.variables
        return answer

    def _outcome(self, decision: Any) -> dict[str, Any]:
        match decision:
            case WaitUntil(then=then):
                return self._outcome(then)
            case GoTo(next_state=next_state, output=output):
                return {"status": "SUCCEEDED", "output": dumps(output), "nextState": next_state}
            case Succeed(output=output):
                return {"status": "SUCCEEDED", "output": dumps(output)}
            case Caught(next_state=next_state, output=output, error=error, cause=cause):
                answer: dict[str, Any] = {
                    "status": "CAUGHT_ERROR",
                    "output": dumps(output),
                    "nextState": next_state,
                    **_error_fields(error, cause),
                }
                index = self._first_matching("Catch", error)
                if index is not None:
                    answer["inspectionData"] = {"errorDetails": {"catchIndex": index}}
                return answer
            case RetryAt(error=error, cause=cause):
                return {"status": "RETRIABLE", **_error_fields(error, cause)}
            case Fail(error=error, cause=cause):
                prefixed = error in {STATES_RUNTIME, STATES_QUERY_EVALUATION_ERROR}
                if prefixed and self.state.get("Type") != "Fail":
                    prefix = f"An error occurred while executing the state '{self.name}'."
                    cause = f"{prefix} {cause}" if cause else prefix
                return {"status": "FAILED", **_error_fields(error, cause)}
        raise TypeError(f"a decision TestState cannot report: {decision!r}")

    # -- inspection data (DEBUG and TRACE) -----------------------------------------------------

    def inspect(self, mock: Mock | None) -> dict[str, Any]:
        """The data as each field of the state leaves it, as far as the state got."""
        kind = self.state.get("Type")
        data: dict[str, Any] = {"input": dumps(self.input)}
        if interpreter.is_jsonata(self.definition, self.state):
            return self._inspect_jsonata(data)  # AWS shows no JSONPath field there
        if kind == "Fail" and "InputPath" not in self.state:
            return data
        self._add(data, "afterInputPath", self._pass_through("InputPath"))
        if kind == "Pass" or (kind in {"Task", "Parallel"} and "Parameters" in self.state):
            self._add(data, "afterParameters", self._pass_through("InputPath", "Parameters"))
        if kind == "Map":
            self._inspect_map(data)
        if kind == "Pass":  # AWS names a Pass state's Result so
            self._add(
                data,
                "afterResultSelector",
                self._pass_through("InputPath", "Parameters", "Result"),
            )
            self._add(
                data,
                "afterResultPath",
                self._pass_through("InputPath", "Parameters", "Result", "ResultPath"),
            )
        elif kind in MOCKED_TYPES and mock is not None and mock.has_result:
            data["result"] = dumps(mock.result)
            selected = self._after_result(mock.result, "ResultSelector")
            self._add(data, "afterResultSelector", selected)
            self._add(
                data,
                "afterResultPath",
                self._after_result(mock.result, "ResultSelector", "ResultPath"),
            )
        return data

    def _inspect_jsonata(self, data: dict[str, Any]) -> dict[str, Any]:
        """A JSONata state's: its `afterArguments` (a Task's), a Map's `maxConcurrency`."""
        with contextlib.suppress(StateError):  # the run itself reports the failure
            entered = interpreter.enter(
                self.definition, self.name, self.input, self.ctx, self.ctx.state_entered_time
            )
            if isinstance(entered, CallTask) and "Arguments" in self.state:
                data["afterArguments"] = dumps(entered.payload)
            if isinstance(entered, FanOut) and entered.kind == "Map":
                data["maxConcurrency"] = entered.max_concurrency
        return data

    @staticmethod
    def _add(data: dict[str, Any], key: str, value: Any) -> None:
        if value is not _NOTHING:
            data[key] = dumps(value)

    def _probe(self, state: Mapping[str, Any]) -> Mapping[str, Any]:
        return {"StartAt": self.name, "States": {self.name: state}}

    def _pass_through(self, *keys: str) -> Any:
        """What a Pass state with only `keys` of this state outputs: the data after them."""
        probe = {"Type": "Pass", "End": True, **{k: self.state[k] for k in keys if k in self.state}}
        decision = interpreter.enter(
            self._probe(probe), self.name, self.input, self.ctx, self.ctx.state_entered_time
        )
        return decision.output if isinstance(decision, Succeed) else _NOTHING

    def _after_result(self, result: Any, *keys: str) -> Any:
        probe = {
            "Type": "Task",
            "Resource": "stepd:test-state",
            "End": True,
            **{k: self.state[k] for k in keys if k in self.state},
        }
        decision = interpreter.task_succeeded(
            self._probe(probe), self.name, self.input, result, self.ctx
        )
        return decision.output if isinstance(decision, Succeed) else _NOTHING

    def _inspect_map(self, data: dict[str, Any]) -> None:
        effective = self._pass_through("InputPath")
        if effective is not _NOTHING:
            items_path = self.state.get("ItemsPath", paths.ROOT)
            with contextlib.suppress(StateError):  # the run itself reports the failure
                items = paths.resolve(items_path, effective, self.ctx.as_json())
                self._add(data, "afterItemsPath", items)
        fan_out = interpreter.enter(
            self.definition, self.name, self.input, self.ctx, self.ctx.state_entered_time
        )
        if not isinstance(fan_out, FanOut):
            return
        key = "afterItemBatcher" if "ItemBatcher" in self.state else "afterItemSelector"
        data[key] = dumps(list(fan_out.inputs))
        data["maxConcurrency"] = fan_out.max_concurrency  # as evaluated; 0 when not given
        if fan_out.tolerated_count is not None:
            data["toleratedFailureCount"] = fan_out.tolerated_count
        if fan_out.tolerated_percentage is not None:
            data["toleratedFailurePercentage"] = fan_out.tolerated_percentage


_NOTHING: Final[Any] = object()


def _error_fields(error: str, cause: str | None) -> dict[str, str]:
    shaped = {"error": error} if error else {}
    if cause is not None:
        shaped["cause"] = cause
    return shaped
