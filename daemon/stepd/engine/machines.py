"""A state machine as the engine runs it: its definition and where its tasks go."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from stepd.asl.loader import HttpEvent
from stepd.tasks.endpoints import EndpointMap

LATE_RUN = "run"  # a late step runs anyway, as AWS does
LATE_FAIL = "fail"  # a step later than the threshold fails the execution (stepd.StepLate)


@dataclass(frozen=True, kw_only=True)
class Machine:
    name: str
    definition: Mapping[str, Any]
    definition_text: str  # canonical JSON, what the store snapshots
    endpoints: EndpointMap
    source: str = ""
    http_events: tuple[HttpEvent, ...] = ()
    late_threshold_seconds: float = 60.0
    late_policy: str = LATE_RUN
    wait_for_host_seconds: float = 0.0  # how long a call may wait for a down host (hosts.py)
    created_at: float = 0.0
    definition_id: int = 0
