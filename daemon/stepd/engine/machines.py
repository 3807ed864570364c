"""A state machine as the engine runs it: its definition and where its tasks go."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Final

from stepd.asl.loader import HttpEvent
from stepd.tasks.endpoints import EndpointMap

LATE_RUN: Final = "run"  # a late step runs anyway, as AWS does
LATE_FAIL: Final = "fail"  # a step later than the threshold fails the execution (stepd.StepLate)
DEFAULT_LATE_THRESHOLD_SECONDS = 60.0  # a task step starting later than this is late
DEFAULT_TASK_TIMEOUT_SECONDS = 10.0  # a task call's limit, unless its state sets a shorter one


@dataclass(frozen=True, kw_only=True)
class Machine:
    name: str
    definition: Mapping[str, Any]
    definition_text: str  # canonical JSON, what the store snapshots
    endpoints: EndpointMap
    source: str = ""
    http_events: tuple[HttpEvent, ...] = ()
    late_threshold_seconds: float = DEFAULT_LATE_THRESHOLD_SECONDS
    late_policy: str = LATE_RUN
    wait_for_host_seconds: float = 0.0  # how long a call may wait for a down host (hosts.py)
    created_at: float = 0.0
    definition_id: int = 0
