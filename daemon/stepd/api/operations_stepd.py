"""stepd's own operations, on the same endpoint as AWS's: `X-Amz-Target: Stepd.<Operation>`.

Signed and answered exactly as the AWS ones are (JSON 1.0, SigV4, AWS's error shape), so any
SigV4 client can call them (stepd.boto3_update shows how with botocore):

- `Stepd.UpdateExecution` {executionArn, input, merge?}: replace (or merge into) a running
  execution's input and data; a Wait it is in works out its instant again.
- `Stepd.ApplyTimetable` {stateMachineArn, timetable, format: csv|jsonl, prune?, dryRun?}:
  start, update and (with prune) stop executions to match a timetable (stepd.engine.timetable).
- `Stepd.GetAgenda` {from?, to?, stateMachineArn?}: running executions falling due, per minute.
"""

from __future__ import annotations

from typing import Any

from stepd.api.fields import string
from stepd.engine import timetable
from stepd.engine.agenda import MAX_DUE, per_minute
from stepd.engine.arns import Arns
from stepd.engine.executor import Engine
from stepd.errors import ExecutionDoesNotExist, StateMachineDoesNotExist, ValidationException

TARGET_PREFIX = "Stepd."
DEFAULT_AGENDA_SECONDS = 3600.0
MAX_AGENDA_SECONDS = 31 * 86400.0


def _flag(body: dict[str, Any], key: str) -> bool:
    value = body.get(key, False)
    if value is None:
        return False
    if not isinstance(value, bool):
        raise ValidationException(f"'{key}' must be a boolean")
    return value


def _instant(body: dict[str, Any], key: str, default: float) -> float:
    value = body.get(key)
    if value is None:
        return default
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise ValidationException(f"'{key}' must be a number (unix seconds)")
    return float(value)


class StepdOperations:
    """The `Stepd.*` operations; `by` names who asked (the access key, or the local client)."""

    def __init__(self, engine: Engine) -> None:
        self.engine = engine

    @property
    def arns(self) -> Arns:
        return self.engine.arns

    async def handle(self, operation: str, body: dict[str, Any], by: str) -> dict[str, Any] | None:
        """The answer to `operation` (without the prefix); None when it is not one of these."""
        if operation == "UpdateExecution":
            return await self.update_execution(body, by)
        if operation == "ApplyTimetable":
            return await self.apply_timetable(body, by)
        if operation == "GetAgenda":
            return await self.get_agenda(body)
        return None

    def _machine(self, arn: str) -> str:
        if not self.arns.is_ours(arn):
            raise StateMachineDoesNotExist(f"State Machine Does Not Exist: '{arn}'")
        return self.engine.machine(self.arns.machine_of(arn)).name

    async def update_execution(self, body: dict[str, Any], by: str) -> dict[str, Any]:
        arn = string(body, "executionArn", required=True) or ""
        input_text = string(body, "input", required=True) or ""
        if not self.arns.is_ours(arn):
            raise ExecutionDoesNotExist(f"Execution Does Not Exist: '{arn}'")
        machine, name = self.arns.execution_of(arn)
        before = await self.engine.find_execution(machine, name)
        updated = await self.engine.update_execution(
            machine, name, input_text, merge=_flag(body, "merge"), by=by
        )
        return {
            "executionArn": arn,
            "updateDate": self.engine.clock(),
            "input": updated.input,
            "state": updated.state,
            "dueAt": updated.due_at,
            "previousDueAt": None if before is None else before.due_at,
        }

    async def apply_timetable(self, body: dict[str, Any], by: str) -> dict[str, Any]:
        machine = self._machine(string(body, "stateMachineArn", required=True) or "")
        text = string(body, "timetable", required=True) or ""
        fmt = string(body, "format") or "csv"
        return await timetable.apply(
            self.engine,
            machine,
            text,
            fmt,
            prune=_flag(body, "prune"),
            dry_run=_flag(body, "dryRun"),
            by=by,
        )

    async def get_agenda(self, body: dict[str, Any]) -> dict[str, Any]:
        now = self.engine.clock()
        start = _instant(body, "from", now)
        end = _instant(body, "to", start + DEFAULT_AGENDA_SECONDS)
        if not 0 < end - start <= MAX_AGENDA_SECONDS:
            raise ValidationException("'to' must come after 'from', and at most 31 days after it")
        arn = string(body, "stateMachineArn")
        machine = None if arn is None else self._machine(arn)
        due = await self.engine.falling_due(start, end, machine=machine, limit=MAX_DUE + 1)
        minutes = per_minute(due[:MAX_DUE])
        answer: dict[str, Any] = {
            "from": start,
            "to": end,
            "total": min(len(due), MAX_DUE),
            "minutes": [
                {
                    "minute": m.start,
                    "count": m.count,
                    "executions": [
                        {
                            "executionArn": self.arns.execution(e.machine, e.name),
                            "name": e.name,
                            "machine": e.machine,
                            "state": e.state,
                            "dueAt": e.due_at,
                        }
                        for e in m.executions
                    ],
                }
                for m in minutes
            ],
        }
        if len(due) > MAX_DUE:
            answer["truncated"] = True
        return answer
