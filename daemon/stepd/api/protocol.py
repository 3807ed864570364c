"""The AWS Step Functions JSON 1.0 protocol: operations in, AWS-shaped answers out.

`Operations` speaks plain dicts so that any transport (the aiohttp server here) can carry it.
Errors are raised as ApiError subclasses; the server shapes them as AWS does.
"""

from __future__ import annotations

import json
import re
import time
import uuid
from dataclasses import replace
from typing import Any, Final

from stepd import logs
from stepd.api.fields import MAX_PAGE, REDRIVE_FILTERS, Handler, choice, execution_filters, string
from stepd.api.fields import page_start as _untoken
from stepd.api.fields import page_token_for as _token
from stepd.api.links import linked
from stepd.api.operations_activities import ActivityOperations
from stepd.api.operations_config import ConfigOperations
from stepd.api.operations_definitions import DefinitionOperations
from stepd.api.operations_map_runs import MapRunOperations
from stepd.api.operations_stepd import TARGET_PREFIX as STEPD_PREFIX
from stepd.api.operations_stepd import StepdOperations
from stepd.api.operations_tags import TagOperations
from stepd.engine import history
from stepd.engine.arns import ROLE_ARN, Arns
from stepd.engine.executor import Engine
from stepd.engine.express import express_arn, run_sync, sync_answer
from stepd.engine.machines import EXPRESS
from stepd.engine.redrive import NOT_REDRIVABLE, REDRIVABLE
from stepd.engine.testruns import NOT_TESTED, split_test_case
from stepd.errors import (
    ApiError,
    ExecutionDoesNotExist,
    InvalidExecutionInput,
    InvalidName,
    InvalidOutput,
    SerializationException,
    StateMachineDoesNotExist,
    StateMachineTypeNotSupported,
    UnknownOperationException,
    ValidationException,
)
from stepd.jsontext import unpaired_surrogate
from stepd.store.records import TIMED_OUT, Event, Execution

TARGET_PREFIX = "AWSStepFunctions."
MAX_LOGGED = 300  # characters of a refused request's fields in its log line
LINK_CONTEXT = 4  # events read before a history page, for the links of its first ones
log = logs.get_logger("stepd.api")
# what AWS describes of a machine with no logging or tracing configured (stepd has neither:
# its log is its own)
UNCONFIGURED: Final = {
    "loggingConfiguration": {"level": "OFF", "includeExecutionData": False},
    "tracingConfiguration": {"enabled": False},
}
MAX_CLIENT_TOKEN = 64  # AWS: clientToken is 1 to 64 characters
MAX_TASK_TOKEN = 2048  # AWS: taskToken is 1 to 2,048 characters
DEFAULT_PAGE = 100
MAX_ARN = 256  # AWS: an ARN member is 1 to 256 characters
MAX_TRACE_HEADER = 256
INCLUDED_DATA = ("ALL_DATA", "METADATA_ONLY")
CLIENT_TOKEN = re.compile(r"[!-~]+")  # AWS's pattern for clientToken


def _int(body: dict[str, Any], key: str, default: int, maximum: int) -> int:
    value = body.get(key, default)
    if value is None:
        return default
    if isinstance(value, bool) or not isinstance(value, int):
        raise ValidationException(f"'{key}' must be an integer")
    if value == 0:
        return default
    if not 0 < value <= maximum:
        raise ValidationException(f"'{key}' must be between 1 and {maximum}")
    return value


def _bool(body: dict[str, Any], key: str, default: bool) -> bool:
    value = body.get(key, default)
    if value is None:
        return default
    if not isinstance(value, bool):
        raise ValidationException(f"'{key}' must be a boolean")
    return value


def _failure(execution: Execution) -> dict[str, str]:
    """DescribeExecution's `error` and `cause`: none for the execution's own timeout, and no
    `error` for a SendTaskFailure that named none, as AWS describes them."""
    if execution.status == TIMED_OUT:
        return {}
    failure = {"error": execution.error} if execution.error else {}
    return failure if execution.cause is None else {**failure, "cause": execution.cause}


def _arn(body: dict[str, Any], key: str) -> str:
    """A required ARN member: 1 to 256 characters, as AWS's model has it."""
    arn = string(body, key, required=True) or ""
    if not 0 < len(arn) <= MAX_ARN:
        raise ValidationException(
            f"1 validation error detected: Value at '{key}' failed to satisfy constraint: "
            f"Member must have length between 1 and {MAX_ARN}"
        )
    return arn


def _name(body: dict[str, Any]) -> str:
    """StartExecution's `name`: one made up when absent; an empty one is refused (AWS: 1 to 80
    characters), so that a retried start never starts a second execution."""
    name = string(body, "name")
    if name is None:
        return str(uuid.uuid4())
    if not name:
        raise ValidationException(
            "1 validation error detected: Value '' at 'name' failed to satisfy constraint: "
            "Member must have length greater than or equal to 1"
        )
    return name


def _trace_header(body: dict[str, Any]) -> None:
    """Check `traceHeader` (AWS: at most 256 ASCII characters); stepd does not trace by it."""
    header = string(body, "traceHeader")
    if header is not None and (len(header) > MAX_TRACE_HEADER or not header.isascii()):
        raise ValidationException(
            "1 validation error detected: Value at 'traceHeader' failed to satisfy constraint: "
            f"Member must be at most {MAX_TRACE_HEADER} ASCII characters"
        )


def _time_scale(body: dict[str, Any]) -> float | None:
    """stepd's own StartExecution field `timeScale` (testing only), if given."""
    value = body.get("timeScale")
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise ValidationException("'timeScale' must be a number")
    return float(value)


def _task_token(body: dict[str, Any]) -> str:
    token = string(body, "taskToken", required=True) or ""
    if not 0 < len(token) <= MAX_TASK_TOKEN:
        raise ValidationException(
            "1 validation error detected: Value at 'taskToken' failed to satisfy "
            f"constraint: Member must have length between 1 and {MAX_TASK_TOKEN}"
        )
    return token


# The error for a member holding text that is not Unicode (an unpaired UTF-16 surrogate, which
# a JSON escape such as "\\ud800" gives), and how its message begins, by member; any other
# member's is a ValidationException.
NOT_UNICODE_ERRORS: dict[str, tuple[type[ApiError], str]] = {
    "name": (InvalidName, "Invalid Name"),
    "input": (InvalidExecutionInput, "Invalid execution input"),
    "output": (InvalidOutput, "Invalid Output"),
}


def _refuse_unpaired_surrogates(body: dict[str, Any]) -> None:
    """Refuse, before anything is done, a request a member of which holds text that is not
    Unicode: no store could write it."""
    for key, value in body.items():
        if not (unpaired_surrogate(key) or unpaired_surrogate(value)):
            continue
        found = NOT_UNICODE_ERRORS.get(key)
        if found is None:
            raise ValidationException(
                f"1 validation error detected: Value at '{key}' failed to satisfy constraint: "
                "Member must be Unicode text (it holds an unpaired UTF-16 surrogate)"
            )
        error, begins = found
        raise error(f"{begins}: '{key}' holds an unpaired UTF-16 surrogate: it is not Unicode text")


class Operations:
    def __init__(self, engine: Engine) -> None:
        self.engine = engine
        self.handlers: dict[str, Handler] = {
            "StartExecution": self.start_execution,
            "DescribeExecution": self.describe_execution,
            "StopExecution": self.stop_execution,
            "RedriveExecution": self.redrive_execution,
            "SendTaskSuccess": self.send_task_success,
            "SendTaskFailure": self.send_task_failure,
            "SendTaskHeartbeat": self.send_task_heartbeat,
            "ListExecutions": self.list_executions,
            "GetExecutionHistory": self.get_execution_history,
            "ListStateMachines": self.list_state_machines,
            "DescribeStateMachine": self.describe_state_machine,
            "DescribeStateMachineForExecution": self.describe_state_machine_for_execution,
            "StartSyncExecution": self.start_sync_execution,
        }
        self.handlers.update(DefinitionOperations(engine.arns, engine.clock).handlers())
        self.handlers.update(ConfigOperations(engine.arns, self._machine, self._find).handlers())
        self.map_runs = MapRunOperations(engine)
        self.handlers.update(self.map_runs.handlers())
        self.stepd = StepdOperations(engine)
        self.handlers.update(ActivityOperations(engine.activities, engine.tags).handlers())
        self.handlers.update(TagOperations(engine).handlers())

    @property
    def arns(self) -> Arns:
        return self.engine.arns

    async def handle(self, target: str | None, body: Any, by: str = "") -> dict[str, Any]:
        """Answer the operation `target` names: `AWSStepFunctions.*`, or stepd's own
        `Stepd.*` (stepd.api.operations_stepd); `by` names who asked."""
        if isinstance(body, dict):
            _refuse_unpaired_surrogates(body)
        if target is not None and target.startswith(STEPD_PREFIX):
            if not isinstance(body, dict):
                raise SerializationException("The request body must be a JSON object")
            answer = await self.stepd.handle(target.removeprefix(STEPD_PREFIX), body, by)
            if answer is None:
                raise UnknownOperationException(f"Unknown operation: '{target}'")
            return answer
        operation = (target or "").removeprefix(TARGET_PREFIX)
        handler = self.handlers.get(operation)
        if handler is None:
            raise UnknownOperationException(f"Unknown operation: '{target}'")
        if not isinstance(body, dict):
            raise SerializationException("The request body must be a JSON object")
        return await handler(body)

    # -- executions ------------------------------------------------------------------

    async def start_execution(self, body: dict[str, Any]) -> dict[str, Any]:
        try:
            return await self._start_execution(body)
        except ApiError as exc:  # the log answers "why was class X never recorded?"
            log.info(
                "execution.start_refused",
                machine=str(body.get("stateMachineArn"))[:MAX_LOGGED],
                name=str(body.get("name"))[:MAX_LOGGED],
                error=exc.aws_type,
                message=exc.message[:MAX_LOGGED],
            )
            raise

    async def _start_execution(self, body: dict[str, Any]) -> dict[str, Any]:
        machine_arn, test_case = split_test_case(_arn(body, "stateMachineArn"))
        machine = self._machine(machine_arn)
        name = _name(body)
        _trace_header(body)
        input_text = string(body, "input")
        started = await self.engine.start_execution(
            machine,
            name,
            "{}" if input_text is None else input_text,
            test_case=test_case,
            time_scale=_time_scale(body),
        )
        execution = started.execution
        return {
            "executionArn": self.arns.execution(execution.machine, execution.name),
            "startDate": execution.start_date,
        }

    async def start_sync_execution(self, body: dict[str, Any]) -> dict[str, Any]:
        """Run an EXPRESS machine's execution to its end within the request."""
        machine = self.engine.machine(self._machine(_arn(body, "stateMachineArn")))
        choice(body, "includedData", INCLUDED_DATA, "ALL_DATA")
        _trace_header(body)
        if machine.type != EXPRESS:
            raise StateMachineTypeNotSupported(
                "StartSyncExecution runs EXPRESS state machines; this one is STANDARD: use "
                'StartExecution (or make it type = "EXPRESS" in the config)'
            )
        name = _name(body)
        input_text = string(body, "input")
        began = time.monotonic()
        arn = express_arn(self.arns, machine.name, name)
        execution = await run_sync(
            machine,
            name,
            "{}" if input_text is None else input_text,
            caller=self.engine.caller,
            arns=self.arns,
            arn=arn,
        )
        return sync_answer(execution, arn, self.arns, time.monotonic() - began)

    async def _find(self, arn: str) -> Execution:
        if self.arns.child_of(arn) is not None:
            raise ValidationException(
                f"'{arn[:MAX_ARN]}' is a child execution of a Map Run: stepd runs it inside its "
                "parent execution, which this operation takes (DescribeExecution and "
                "GetExecutionHistory read the child)"
            )
        machine, name = self.arns.execution_of(arn)
        if not self.arns.is_ours(arn):
            raise ExecutionDoesNotExist(f"Execution Does Not Exist: '{arn}'")
        execution = await self.engine.find_execution(machine, name)
        if execution is None:
            raise ExecutionDoesNotExist(f"Execution Does Not Exist: '{arn}'")
        return execution

    def _machine(self, arn: str) -> str:
        machine = self.arns.machine_of(arn)
        if not self.arns.is_ours(arn):
            raise StateMachineDoesNotExist(f"State Machine Does Not Exist: '{arn}'")
        return self.engine.machine(machine).name

    async def describe_execution(self, body: dict[str, Any]) -> dict[str, Any]:
        choice(body, "includedData", INCLUDED_DATA, "ALL_DATA")
        arn = _arn(body, "executionArn")
        if self.arns.child_of(arn) is not None:
            return await self.map_runs.describe_child(arn)
        execution = await self._find(arn)
        described: dict[str, Any] = {
            **self._summary(execution),
            "input": execution.input,
            "inputDetails": {"included": True},
        }
        reason = self.engine.redrive_refusal(execution)
        described["redriveStatus"] = REDRIVABLE if reason is None else NOT_REDRIVABLE
        if reason is not None:
            described["redriveStatusReason"] = reason
        if execution.output is not None:
            described["output"] = execution.output
            described["outputDetails"] = {"included": True}
        described.update(_failure(execution))
        extension: dict[str, Any] = {"uid": execution.uid}
        tested = await self.engine.test_settings(execution)
        if tested != NOT_TESTED:
            extension.update(tested.details())
        parent = await self.engine.nested.parent_of(execution)
        if parent is not None:
            extension["parentExecutionArn"] = self.arns.execution(parent.machine, parent.name)
        if execution.status == "RUNNING":
            extension.update(state=execution.state, dueAt=execution.due_at)
            down = self.engine.host_down_for(execution)
            if down is not None:
                extension["hostDown"] = {
                    "host": down.host,
                    "error": down.error,
                    "since": down.since,
                }
        described["stepd"] = extension
        return described

    def _summary(self, execution: Execution) -> dict[str, Any]:
        summary: dict[str, Any] = {
            "executionArn": self.arns.execution(execution.machine, execution.name),
            "stateMachineArn": self.arns.state_machine(execution.machine),
            "name": execution.name,
            "status": execution.status,
            "startDate": execution.start_date,
        }
        if execution.stop_date is not None:
            summary["stopDate"] = execution.stop_date
        summary["redriveCount"] = execution.redrive_count
        if execution.redrive_date is not None:
            summary["redriveDate"] = execution.redrive_date
        return summary

    async def stop_execution(self, body: dict[str, Any]) -> dict[str, Any]:
        arn = _arn(body, "executionArn")
        execution = await self._find(arn)
        machine, name = execution.machine, execution.name
        stopped = await self.engine.stop_execution(
            machine, name, string(body, "error"), string(body, "cause")
        )
        return {"stopDate": stopped.stop_date}

    async def redrive_execution(self, body: dict[str, Any]) -> dict[str, Any]:
        arn = _arn(body, "executionArn")
        token = string(body, "clientToken")
        if token is not None and not 0 < len(token) <= MAX_CLIENT_TOKEN:
            raise ValidationException(
                "1 validation error detected: Value at 'clientToken' failed to satisfy "
                f"constraint: Member must have length between 1 and {MAX_CLIENT_TOKEN}"
            )
        if token is not None and CLIENT_TOKEN.fullmatch(token) is None:
            raise ValidationException(
                "1 validation error detected: Value at 'clientToken' failed to satisfy "
                "constraint: Member must satisfy regular expression pattern: [!-~]+"
            )
        execution = await self._find(arn)
        redriven = await self.engine.redrive_execution(execution.machine, execution.name, token)
        return {"redriveDate": redriven.redrive_date}

    async def send_task_success(self, body: dict[str, Any]) -> dict[str, Any]:
        token = _task_token(body)
        output = string(body, "output", required=True) or ""
        await self.engine.send_task_success(token, output)
        return {}

    async def send_task_failure(self, body: dict[str, Any]) -> dict[str, Any]:
        token = _task_token(body)
        await self.engine.send_task_failure(token, string(body, "error"), string(body, "cause"))
        return {}

    async def send_task_heartbeat(self, body: dict[str, Any]) -> dict[str, Any]:
        await self.engine.send_task_heartbeat(_task_token(body))
        return {}

    async def list_executions(self, body: dict[str, Any]) -> dict[str, Any]:
        machine_arn = string(body, "stateMachineArn")
        map_run_arn = string(body, "mapRunArn")
        if machine_arn is not None and map_run_arn is not None:
            raise ValidationException("Specify either 'stateMachineArn' or 'mapRunArn', not both")
        if map_run_arn is not None:
            return await self.map_runs.list_children(body)
        machine = None
        if machine_arn is not None:
            machine = self._machine(machine_arn)
        status, redrive_filter = execution_filters(body)
        limit = _int(body, "maxResults", DEFAULT_PAGE, MAX_PAGE)
        scope = f"executions {machine} {status} {redrive_filter}"
        rows = await self.engine.list_executions(
            machine=machine,
            status=status,
            limit=limit + 1,
            before_id=_untoken(string(body, "nextToken"), scope),
            redriven=None if redrive_filter is None else REDRIVE_FILTERS[redrive_filter],
        )
        answer: dict[str, Any] = {"executions": [self._summary(r) for r in rows[:limit]]}
        if len(rows) > limit:
            answer["nextToken"] = _token(rows[limit - 1].id, scope)
        return answer

    async def get_execution_history(self, body: dict[str, Any]) -> dict[str, Any]:
        arn = _arn(body, "executionArn")
        limit = _int(body, "maxResults", DEFAULT_PAGE, MAX_PAGE)
        reverse = _bool(body, "reverseOrder", default=False)
        include_data = _bool(body, "includeExecutionData", default=True)
        token = string(body, "nextToken")
        page: list[Event] | None = None
        if self.arns.child_of(arn) is not None:
            page, token = await self.map_runs.child_history(
                arn, limit=limit, reverse=reverse, token=token
            )
        else:
            execution = await self._find(arn)
            if await self.map_runs.runs_any(execution):
                page, token = await self.map_runs.history(
                    execution, limit=limit, reverse=reverse, token=token
                )
        if page is not None:
            shown = {"events": [_event(e, include_data=include_data) for e in page]}
            return shown if token is None else {**shown, "nextToken": token}
        scope = f"history {execution.id} {execution.uid} {reverse}"
        events = await self.engine.history(
            execution.id, reverse=reverse, limit=limit + 1, after=_untoken(token, scope)
        )
        page = await self._linked(execution.id, events[:limit])
        answer: dict[str, Any] = {"events": [_event(e, include_data=include_data) for e in page]}
        if len(events) > limit:
            answer["nextToken"] = _token(events[limit - 1].id, scope)
        return answer

    async def _linked(self, execution_id: int, page: list[Event]) -> list[Event]:
        """`page` with AWS's previousEventIds (`links.linked`), read with the few events
        before it that they may name."""
        if not page:
            return page
        first = min(e.id for e in page)
        before = await self.engine.history(
            execution_id,
            reverse=False,
            limit=LINK_CONTEXT,
            after=max(0, first - 1 - LINK_CONTEXT),
        )
        ascending = [e for e in before if e.id < first] + sorted(page, key=lambda e: e.id)
        previous = {e.id: e.previous_id for e in linked(ascending)}
        return [replace(e, previous_id=previous[e.id]) for e in page]

    # -- state machines --------------------------------------------------------------

    async def list_state_machines(self, body: dict[str, Any]) -> dict[str, Any]:
        """The configured machines by name, a page at a time (a token: how many came before)."""
        limit = _int(body, "maxResults", DEFAULT_PAGE, MAX_PAGE)
        first = _untoken(string(body, "nextToken"), "machines") or 0
        machines = sorted(self.engine.machines.values(), key=lambda m: m.name)
        page = machines[first : first + limit]
        answer: dict[str, Any] = {
            "stateMachines": [
                {
                    "stateMachineArn": self.arns.state_machine(m.name),
                    "name": m.name,
                    "type": m.type,
                    "creationDate": m.created_at,
                }
                for m in page
            ]
        }
        if first + limit < len(machines):
            answer["nextToken"] = _token(first + limit, "machines")
        return answer

    async def describe_state_machine(self, body: dict[str, Any]) -> dict[str, Any]:
        arn = _arn(body, "stateMachineArn")
        choice(body, "includedData", INCLUDED_DATA, "ALL_DATA")
        machine = self.engine.machine(self._machine(arn))
        return {
            "stateMachineArn": self.arns.state_machine(machine.name),
            "name": machine.name,
            "status": "ACTIVE",
            "definition": json.dumps(machine.definition, indent=2),
            "roleArn": ROLE_ARN.format(account=self.arns.account),
            "type": machine.type,
            "creationDate": machine.created_at,
            **UNCONFIGURED,
        }

    async def describe_state_machine_for_execution(self, body: dict[str, Any]) -> dict[str, Any]:
        """The definition the execution runs: the one it started with, even after the config
        changed the machine."""
        execution = await self._find(_arn(body, "executionArn"))
        definition = await self.engine.definition_of(execution)
        machine = self.engine.machines.get(execution.machine)
        current = machine is not None and machine.definition_id == execution.definition_id
        return {
            "stateMachineArn": self.arns.state_machine(execution.machine),
            "name": execution.machine,
            "definition": json.dumps(definition, indent=2),
            "roleArn": ROLE_ARN.format(account=self.arns.account),
            "updateDate": machine.created_at if current and machine else execution.start_date,
            **UNCONFIGURED,
        }


def _event(event: Event, *, include_data: bool) -> dict[str, Any]:
    shaped: dict[str, Any] = {
        "timestamp": event.ts,
        "type": event.type,
        "id": event.id,
        "previousEventId": event.previous_id,
    }
    for key, details in history.shown(event.details).items():
        if include_data or not isinstance(details, dict):
            shaped[key] = details
        else:
            shaped[key] = {
                k: v for k, v in details.items() if k not in {"input", "output", "parameters"}
            }
    return shaped
