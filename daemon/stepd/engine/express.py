"""EXPRESS machines run by StartSyncExecution: to completion within the request, nothing kept.

The execution runs on an engine of its own over an in-memory store, with the daemon's task
caller, and answers with how it ended (AWS's StartSyncExecution answer); its history is gone
with the request. AWS limits an EXPRESS execution to five minutes: one still running then
ends TIMED_OUT (States.Timeout).
"""

from __future__ import annotations

import asyncio
import contextlib
import time
import uuid
from dataclasses import dataclass, replace
from typing import Any

from stepd import logs
from stepd.asl.failures import STATES_TIMEOUT
from stepd.engine.arns import Arns
from stepd.engine.executor import Engine
from stepd.engine.machines import Machine
from stepd.store.memory import MemoryStore
from stepd.store.records import RUNNING, TIMED_OUT, Execution
from stepd.tasks.caller import Caller

log = logs.get_logger("stepd.express")

MAX_EXPRESS_SECONDS = 300.0  # AWS: an EXPRESS execution runs at most five minutes
POLL_SECONDS = 0.005  # how often the request looks whether its execution closed


def express_arn(arns: Arns, machine: str, name: str) -> str:
    """An EXPRESS execution's ARN, as AWS spells it."""
    return f"arn:aws:states:{arns.region}:{arns.account}:express:{machine}:{name}:{uuid.uuid4()}"


@dataclass(frozen=True, kw_only=True)
class _OneExpress(Arns):
    """The ARNs the engine of one StartSyncExecution gives: its execution is named by the
    express ARN the answer carries (`$$.Execution.Id` too, as on AWS)."""

    express: str
    name: str

    def execution(self, machine: str, name: str) -> str:
        return self.express if name == self.name else super().execution(machine, name)


async def run_sync(
    machine: Machine,
    name: str,
    input_text: str,
    *,
    caller: Caller,
    arns: Arns,
    arn: str,
    limit_seconds: float = MAX_EXPRESS_SECONDS,
) -> Execution:
    """Run one execution of `machine`, whose ARN is `arn` (`express_arn`), to its end (or
    `limit_seconds`); the execution as it ended. Raises what StartExecution raises for a bad
    name or input."""
    store = MemoryStore()
    await store.open()
    named = _OneExpress(region=arns.region, account=arns.account, express=arn, name=name)
    engine = Engine(store=store, caller=caller, machines={}, arns=named, workers=8)
    loop = asyncio.get_running_loop()

    def arm(execution_id: int, due: float) -> None:
        loop.call_later(max(0.0, due - time.time()), engine.dispatch, execution_id, due)

    engine.set_timer(arm)
    await engine.register({machine.name: replace(machine, http_events=())})
    engine.start()
    began = time.monotonic()
    try:
        execution = (await engine.start_execution(machine.name, name, input_text)).execution
        while execution.status == RUNNING and time.monotonic() - began < limit_seconds:
            await asyncio.sleep(POLL_SECONDS)
            execution = await store.get_execution(execution.id) or execution
        if execution.status == RUNNING:
            execution = replace(
                execution, status=TIMED_OUT, error=STATES_TIMEOUT, stop_date=time.time()
            )
        return execution
    finally:
        engine.close()
        with contextlib.suppress(Exception):
            await engine.drain(0.0)
        await store.close()


def sync_answer(execution: Execution, arn: str, arns: Arns, took: float) -> dict[str, Any]:
    """AWS's StartSyncExecution answer for an execution that ended."""
    answer: dict[str, Any] = {
        "executionArn": arn,
        "stateMachineArn": arns.state_machine(execution.machine),
        "name": execution.name,
        "startDate": execution.start_date,
        "stopDate": execution.stop_date,
        "status": execution.status,
        "input": execution.input,
        "inputDetails": {"included": True},
        "billingDetails": {
            "billedMemoryUsedInMB": 64,
            "billedDurationInMilliseconds": max(100, round(took * 1000)),
        },
    }
    if execution.output is not None:
        answer["output"] = execution.output
        answer["outputDetails"] = {"included": True}
    if execution.error is not None:
        answer["error"] = execution.error
    if execution.cause is not None:
        answer["cause"] = execution.cause
    return answer
