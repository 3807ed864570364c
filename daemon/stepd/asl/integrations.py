"""Task Resources that stepd runs itself instead of calling an endpoint: activities (a worker
takes the task with GetActivityTask) and nested executions (`states:startExecution`)."""

from __future__ import annotations

import functools
import re
from typing import Any, Final

START_EXECUTION: Final = "arn:aws:states:::states:startExecution"
SYNC: Final = ".sync"  # wait for the child: its DescribeExecution answer, Output as text
SYNC2: Final = ".sync:2"  # wait for the child: its DescribeExecution answer, Output as JSON
CALLBACK: Final = ".waitForTaskToken"  # wait for a callback with the parent's token
START_EXECUTION_MODES: Final = ("", SYNC, SYNC2, CALLBACK)
_ACTIVITY: Final = re.compile(r"arn:aws:states:[a-z0-9-]+:[0-9]{12}:activity:[^:]+")


def is_activity(resource: Any) -> bool:
    """Whether a Task with this Resource gives its work to an activity's workers."""
    return isinstance(resource, str) and _ACTIVITY.fullmatch(resource) is not None


def start_execution_mode(resource: Any) -> str | None:
    """ "", ".sync", ".sync:2" or ".waitForTaskToken" for a `states:startExecution` Resource;
    None for any other."""
    if not isinstance(resource, str) or not resource.startswith(START_EXECUTION):
        return None
    mode = resource.removeprefix(START_EXECUTION)
    return mode if mode in START_EXECUTION_MODES else None


def runs_inside(resource: Any) -> bool:
    """Whether stepd runs a Task with this Resource itself (no endpoint to map)."""
    return is_activity(resource) or start_execution_mode(resource) is not None


def waits_for_result(resource: Any) -> bool:
    """Whether a Task with this Resource gets a task token and waits for its result after its
    call is answered: a callback, an activity's worker, or a nested execution to end."""
    return isinstance(resource, str) and _waits_for_result(resource)


@functools.lru_cache(maxsize=1024)  # asked on each entry of a Task state
def _waits_for_result(resource: str) -> bool:
    if is_activity(resource):
        return True
    return start_execution_mode(resource) in {SYNC, SYNC2} or resource.endswith(CALLBACK)
