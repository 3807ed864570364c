"""What the pages show of executions, as plain values for the templates, and where pages are.

Everything here is computed from an `Execution`, its events and `now`; the templates only lay
it out.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any
from urllib.parse import quote, urlencode

from stepd.engine.hosts import HostDown
from stepd.graph.progress import EXECUTION_FAILURES, TASK_FAILURES
from stepd.store.records import PHASE_TASK, PHASE_WAIT, RUNNING, Event, Execution
from stepd.ui.format import relative

UI_PATH = "/ui/"
SIGNIN_PATH = UI_PATH + "signin"  # served by stepd.api.signin when key pairs are configured
SIGNOUT_PATH = UI_PATH + "signout"
MAX_TIMELINE_EVENTS = 500  # the latest events shown on an execution's timeline
OVERDUE_GRACE_SECONDS = 1.0  # a step this little past its due time is starting, not late
FAILURE_EVENTS = TASK_FAILURES | EXECUTION_FAILURES
# details on the timeline line
SUMMARY_KEYS = ("error", "cause", "resource", "updatedBy", "workerName")
DATA_KEYS = ("input", "output", "parameters")  # event details shown folded


# -- where pages are --------------------------------------------------------------------------


def list_path(**query: str | int | None) -> str:
    """The list of executions, filtered by the non-empty `query` values."""
    shown = {key: value for key, value in query.items() if value}
    return UI_PATH + ("?" + urlencode(shown) if shown else "")


def execution_path(machine: str, name: str) -> str:
    return f"{UI_PATH}executions/{quote(machine, safe='')}/{quote(name, safe='')}"


def machine_path(machine: str) -> str:
    return f"{UI_PATH}machines/{quote(machine, safe='')}"


# -- an execution -----------------------------------------------------------------------------


@dataclass(frozen=True, kw_only=True)
class NextStep:
    """What a running execution does next, in words: `words`, the instant `at`, a note."""

    words: str
    at: float | None = None
    note: str = ""


@dataclass(frozen=True, kw_only=True)
class Summary:
    """An execution as the pages show it at `now`."""

    execution: Execution
    running: bool
    next: NextStep | None  # None when it is not running, or has nothing due
    late: float | None  # seconds its next step is overdue; None when it is not
    host_down: HostDown | None = None  # the down host its next call goes to


def summarise(execution: Execution, now: float, host_down: HostDown | None = None) -> Summary:
    running = execution.status == RUNNING
    return Summary(
        execution=execution,
        running=running,
        next=next_step(execution, now) if running else None,
        late=lateness(execution, now),
        host_down=host_down if running else None,
    )


def _in_flight(execution: Execution) -> bool:
    return execution.task is not None and execution.task.sent


def lateness(execution: Execution, now: float) -> float | None:
    """How long a running execution's next step is overdue, if it is; None if it is not."""
    if execution.status != RUNNING or execution.due_at is None or _in_flight(execution):
        return None
    late = now - execution.due_at
    return late if late > OVERDUE_GRACE_SECONDS else None


def next_step(execution: Execution, now: float) -> NextStep | None:
    """What a running execution does next."""
    if _in_flight(execution):
        sent_at = execution.task.sent_at if execution.task else None
        note = f"sent {relative(sent_at, now)}" if sent_at is not None else ""
        return NextStep(words="calling its task", note=note)
    if execution.due_at is None:
        return None
    if execution.phase == PHASE_WAIT:
        words = "waiting until"
    elif execution.phase == PHASE_TASK and execution.attempt:
        words = f"retry {execution.attempt} at"
    elif execution.phase == PHASE_TASK:
        words = "calling its task at"
    else:
        words = "next step at"
    return NextStep(words=words, at=execution.due_at, note=relative(execution.due_at, now))


# -- its history ------------------------------------------------------------------------------


@dataclass(frozen=True, kw_only=True)
class Entry:
    """One event on the timeline."""

    id: int
    ts: float
    since_start: float  # seconds
    type: str
    tone: str  # "bad" (a failure), "good" (the execution succeeded) or ""
    state: str  # the state it is about, if any
    summary: str  # its error, cause and resource, `key=value` each
    data: tuple[tuple[str, str], ...]  # its input, output or parameters: (key, text)


@dataclass(frozen=True, kw_only=True)
class Timeline:
    entries: tuple[Entry, ...]
    hidden: int  # the earlier events left out


def timeline(events: Sequence[Event], start: float) -> Timeline:
    """The latest MAX_TIMELINE_EVENTS of `events` in history order (by event id, oldest
    first); `start` is when it started.

    Never by timestamp: a transition writes several events in the same millisecond (a state
    entered, its task scheduled and started), and a clock set back gives later events earlier
    timestamps.
    """
    ordered = sorted(events, key=lambda event: event.id)
    shown = ordered[-MAX_TIMELINE_EVENTS:]
    return Timeline(
        entries=tuple(_entry(event, start) for event in shown), hidden=len(ordered) - len(shown)
    )


def _entry(event: Event, start: float) -> Entry:
    found: Any = next((v for k, v in event.details.items() if k.endswith("EventDetails")), None)
    details: Mapping[str, Any] = found if isinstance(found, Mapping) else {}
    tone = "bad" if event.type in FAILURE_EVENTS else ""
    if event.type == "ExecutionSucceeded":
        tone = "good"
    return Entry(
        id=event.id,
        ts=event.ts,
        since_start=event.ts - start,
        type=event.type,
        tone=tone,
        state=str(details.get("name", "")),
        summary=" ".join(f"{key}={details[key]}" for key in SUMMARY_KEYS if key in details),
        data=tuple((key, str(details[key])) for key in DATA_KEYS if key in details),
    )
