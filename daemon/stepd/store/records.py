"""What the store holds, as frozen values."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

RUNNING = "RUNNING"
SUCCEEDED = "SUCCEEDED"
FAILED = "FAILED"
TIMED_OUT = "TIMED_OUT"
ABORTED = "ABORTED"
STATUSES = (RUNNING, SUCCEEDED, FAILED, TIMED_OUT, ABORTED)

# What an execution does next, when `due_at` comes.
PHASE_ENTER = "enter"  # enter `state` with `data` as its input
PHASE_WAIT = "wait"  # a Wait state is waiting; `pending["then"]` says where it goes
PHASE_TASK = "task"  # call the task in `pending`; `pending["sent"]` once the intent is committed


@dataclass(frozen=True, kw_only=True)
class Execution:
    id: int
    machine: str
    name: str
    definition_id: int
    status: str
    input: str
    start_date: float
    stop_date: float | None = None
    output: str | None = None
    error: str | None = None
    cause: str | None = None
    state: str | None = None
    phase: str | None = None
    data: str | None = None
    pending: dict[str, Any] = field(default_factory=dict)
    state_entered_event: int = 0
    state_entered_at: float | None = None
    attempt: int = 0
    retry_counts: tuple[int, ...] = ()
    due_at: float | None = None
    last_event_id: int = 0
    version: int = 0


@dataclass(frozen=True, kw_only=True)
class Event:
    id: int
    previous_id: int
    ts: float
    type: str
    details: dict[str, Any]


@dataclass(frozen=True, kw_only=True)
class NewEvent:
    type: str
    details: dict[str, Any]
    ts: float


@dataclass(frozen=True, kw_only=True)
class Transition:
    """One atomic change to `base`: new column values and events to append.

    It applies only while the stored execution is still at `base.version`.
    """

    base: Execution
    fields: dict[str, Any]
    events: tuple[NewEvent, ...] = ()


@dataclass(frozen=True, kw_only=True)
class NewExecution:
    machine: str
    name: str
    definition_id: int
    input: str
    start_date: float
    fields: dict[str, Any]
    events: tuple[NewEvent, ...] = ()
