"""What the acceptance tests of `.waitForTaskToken` callbacks share: a one-Task machine whose
call carries the task token to the classroom stand-in, and reading that token back."""

from __future__ import annotations

import time
from typing import Any

import pytest

TOKEN_DEADLINE_SECONDS = 10.0  # for the task call to reach the stand-in server


def callback_machine(**fields: Any) -> dict[str, Any]:
    """Ask: a `.waitForTaskToken` Task that sends `{token, room}`; `fields` add to it."""
    return {
        "StartAt": "Ask",
        "States": {
            "Ask": {
                "Type": "Task",
                "Resource": "arn:aws:states:::lambda:invoke.waitForTaskToken",
                "Parameters": {"token.$": "$$.Task.Token", "room.$": "$.room"},
                **fields,
                "End": True,
            }
        },
    }


def records(classroom: Any) -> list[Any]:
    """What the stand-in server received so far (nothing before its log file exists)."""
    try:
        return list(classroom.records())
    except FileNotFoundError:
        return []


def token_for(classroom: Any, room: str, deadline: float = TOKEN_DEADLINE_SECONDS) -> str:
    """The token the call of the execution for `room` carried."""
    end = time.monotonic() + deadline
    while time.monotonic() < end:
        for record in records(classroom):
            if isinstance(record.body, dict) and record.body.get("room") == room:
                return str(record.body["token"])
        time.sleep(0.05)
    pytest.fail(f"no call for {room}")
