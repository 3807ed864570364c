"""A state machine as the engine runs it: its definition, where its tasks go, and its
policies (input schema, late steps, calls to a host that is down)."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Final

from stepd.asl.loader import HttpEvent
from stepd.engine.inputs import InputSchema
from stepd.tasks.endpoints import EndpointMap

LATE_RUN: Final = "run"  # a late step runs anyway, as AWS does
LATE_FAIL: Final = "fail"  # a step later than the threshold fails the execution (stepd.StepLate)
DEFAULT_LATE_THRESHOLD_SECONDS = 60.0  # a task step starting later than this is late
DEFAULT_TASK_TIMEOUT_SECONDS = 10.0  # a task call's limit, unless its state sets a shorter one
STANDARD: Final = "STANDARD"  # runs durably, with its history (StartExecution)
EXPRESS: Final = "EXPRESS"  # also runs within a StartSyncExecution request (engine/express.py)
MACHINE_TYPES: Final = (STANDARD, EXPRESS)


@dataclass(frozen=True, kw_only=True)
class Machine:
    name: str
    definition: Mapping[str, Any]
    definition_text: str  # canonical JSON, what the store snapshots
    endpoints: EndpointMap
    # each Task state's endpoint as configured (state name -> path or URL), stored with the
    # definition for its executions once the config names it no more (executor.register)
    state_endpoints: Mapping[str, str] = field(default_factory=dict)
    source: str = ""
    http_events: tuple[HttpEvent, ...] = ()
    late_threshold_seconds: float = DEFAULT_LATE_THRESHOLD_SECONDS
    late_policy: str = LATE_RUN
    wait_for_host_seconds: float = 0.0  # how long a call may wait for a down host (hosts.py)
    input_schema: InputSchema | None = None  # what StartExecution accepts, beyond AWS's rules
    created_at: float = 0.0
    definition_id: int = 0
    type: str = STANDARD

    def is_late(self, lateness_seconds: float) -> bool:
        """Whether a task step starting this long after it was due is late."""
        return lateness_seconds > self.late_threshold_seconds

    @property
    def fails_when_late(self) -> bool:
        """A late task fails with stepd.StepLate instead of being called."""
        return self.late_policy == LATE_FAIL

    def host_wait_limit(self, now: float, waiting_since: float | None) -> float | None:
        """How long a call may wait for its host in all (wait_for_host_seconds), when this
        machine lets calls wait and one waiting since `waiting_since` (None: not yet) has
        time left at `now`; None when the call must go out."""
        limit = self.wait_for_host_seconds
        if limit <= 0 or (waiting_since is not None and now - waiting_since >= limit):
            return None
        return limit
