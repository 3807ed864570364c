"""AWS's HTTP Task in the engine: how long its call may take."""

from __future__ import annotations

from typing import Any

import pytest
from tests.unit.engine.engine_support import Clock, one_state, running_engine

from stepd.asl.http_task import HTTP_INVOKE, HTTP_TASK_TIMEOUT_SECONDS
from stepd.engine.machines import DEFAULT_TASK_TIMEOUT_SECONDS
from stepd.store.base import Store
from stepd.testing import FakeCaller

INVOICE = {"ApiEndpoint": "https://billing.example/invoices", "Method": "GET"}


@pytest.mark.parametrize(
    ("state", "limit"),
    [
        pytest.param(
            {"Resource": HTTP_INVOKE, "Parameters": INVOICE},
            HTTP_TASK_TIMEOUT_SECONDS,
            id="http-task",
        ),
        pytest.param(
            {"Resource": HTTP_INVOKE, "Parameters": INVOICE, "TimeoutSeconds": 30},
            30,
            id="http-task-shorter",
        ),
        pytest.param(
            {"Resource": HTTP_INVOKE, "Parameters": INVOICE, "TimeoutSeconds": 300},
            HTTP_TASK_TIMEOUT_SECONDS,
            id="http-task-longer",
        ),
        pytest.param(
            {"Resource": "arn:aws:lambda:us-east-1:1:function:deliver", "TimeoutSeconds": 30},
            DEFAULT_TASK_TIMEOUT_SECONDS,
            id="endpoint-of-the-config",
        ),
    ],
)
async def test_an_http_task_call_may_take_what_aws_allows_it(
    store: Store, state: dict[str, Any], limit: float
) -> None:
    """An HTTP Task's request may take AWS's 60 s (a shorter TimeoutSeconds cuts it sooner),
    though `[http] timeout_seconds` gives the calls to the config's endpoints 10 s."""
    await store.open()
    caller = FakeCaller()
    definition = one_state({"Type": "Task", **state})
    engine = await running_engine(store, caller, definition, Clock(), routes={"S": "/deliver"})
    await engine.start_execution("m", "x", "{}")
    [call] = await caller.wait_for(1)
    assert call.timeout_seconds == limit
    engine.close()
    await engine.drain(1.0)


async def test_a_longer_http_timeout_of_the_config_holds_for_http_tasks_too(store: Store) -> None:
    """`[http] timeout_seconds = 120` (for slow APIs) is not cut to AWS's 60 s."""
    await store.open()
    caller = FakeCaller()
    definition = one_state({"Type": "Task", "Resource": HTTP_INVOKE, "Parameters": INVOICE})
    engine = await running_engine(store, caller, definition, Clock())
    engine.task_timeout_seconds = 120.0
    await engine.start_execution("m", "x", "{}")
    [call] = await caller.wait_for(1)
    assert call.timeout_seconds == 120.0
    engine.close()
    await engine.drain(1.0)
