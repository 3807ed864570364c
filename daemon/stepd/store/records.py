"""What the store holds, as frozen values.

An execution is its identity (machine, name, input, start) and its `Progress`: where it stands
and what it does next. A transition replaces the whole `Progress` at once. What a waiting
execution keeps for its next action is a typed `Pending` record (`WaitThen`, `TaskCall`,
`Fanout` while a Parallel or Map state runs its children, which are `Cursor`s of their own, or
`Resume` once it closed without succeeding, for a redrive); how those records are written to
disk, and read back from every earlier release's format, is `stepd.store.formats`.
"""

from __future__ import annotations

from dataclasses import dataclass, fields, replace
from typing import Any

from stepd.frozen import quick_init

RUNNING = "RUNNING"
SUCCEEDED = "SUCCEEDED"
FAILED = "FAILED"
TIMED_OUT = "TIMED_OUT"
ABORTED = "ABORTED"
STATUSES = (RUNNING, SUCCEEDED, FAILED, TIMED_OUT, ABORTED)
# An execution that closes in one of these gets an outbox entry (a `Notice`) with its closing.
NOTICED = (FAILED, TIMED_OUT, ABORTED)

# What an execution does next, when `due_at` comes.
PHASE_ENTER = "enter"  # enter `state` with `data` as its input
PHASE_WAIT = "wait"  # a Wait state is waiting; its `WaitThen` says where it goes
PHASE_TASK = "task"  # call the task of its `TaskCall`; `sent` once the intent is committed
PHASE_FANOUT = "fanout"  # a Parallel or Map state runs its children; its `Fanout` counts them

# A child cursor created and not yet started (a Map item beyond MaxConcurrency, in the window
# of children created ahead of the slots; an earlier stepd created every child at once).
QUEUED = "QUEUED"
ROOT = ""  # the id of an execution's root cursor: its row in `executions`


@quick_init
@dataclass(frozen=True, kw_only=True)
class WaitThen:
    """A Wait state is waiting: what happens when its instant comes."""

    next_state: str | None  # None: the execution succeeds with `output`
    output: str  # the Wait state's output, JSON text


@quick_init
@dataclass(frozen=True, kw_only=True)
class TaskCall:
    """A Task state's call: what to send, and how far the sending got."""

    resource: Any  # the state's Resource, as the definition has it
    payload: str  # the request body, JSON text
    timeout_seconds: float | None  # the state's TimeoutSeconds, if any
    due: float  # the instant this attempt was due (the end of the wait that led to it)
    first_due: float | None = None  # the first attempt's due instant, once retried
    sent: bool = False  # the intent (TaskScheduled, TaskStarted) is committed
    sent_at: float | None = None
    waiting_since: float | None = None  # the call waits for its host to come back since
    # `.waitForTaskToken`: the token `$$.Task.Token` gave the task, and once the call was
    # answered, the task waits for SendTaskSuccess/Failure with that token
    token: str | None = None
    heartbeat_seconds: float | None = None  # the state's HeartbeatSeconds, if any
    answered_at: float | None = None  # the call was answered: waiting for the callback since
    heartbeat_at: float | None = None  # the last SendTaskHeartbeat
    # an activity's task recorded as AWS does (ActivityScheduled ... ActivitySucceeded); one
    # stored by an earlier stepd keeps the Task* events it was scheduled with
    activity_events: bool = False

    def as_sent(self, at: float) -> TaskCall:
        """This call with its intent committed at `at` (`dataclasses.replace(self, sent=True,
        sent_at=at)` without its __init__ of every field: once a step)."""
        sent = object.__new__(TaskCall)
        values = sent.__dict__
        values.update(self.__dict__)
        values["sent"] = True
        values["sent_at"] = at
        return sent

    @property
    def awaiting_callback(self) -> bool:
        """The call went out and was answered: only a callback (or a timeout) ends it."""
        return self.token is not None and self.answered_at is not None

    def callback_deadline(self) -> float | None:
        """When the task times out without a callback: TimeoutSeconds from its start, or
        HeartbeatSeconds from its start or its last heartbeat, whichever comes first."""
        started = self.sent_at if self.sent_at is not None else self.due
        deadlines = []
        if self.timeout_seconds is not None:
            deadlines.append(started + self.timeout_seconds)
        if self.heartbeat_seconds is not None:
            beat = self.heartbeat_at if self.heartbeat_at is not None else started
            deadlines.append(beat + self.heartbeat_seconds)
        return min(deadlines) if deadlines else None

    def timed_out_by_heartbeat(self, now: float) -> bool:
        """Whether, at `now`, the heartbeat deadline (not TimeoutSeconds) is what ran out."""
        if self.heartbeat_seconds is None:
            return False
        started = self.sent_at if self.sent_at is not None else self.due
        beat = self.heartbeat_at if self.heartbeat_at is not None else started
        heartbeat_due = beat + self.heartbeat_seconds
        timeout_due = None if self.timeout_seconds is None else started + self.timeout_seconds
        return now >= heartbeat_due and (timeout_due is None or heartbeat_due <= timeout_due)


@dataclass(frozen=True, kw_only=True)
class Fanout:
    """A Parallel or Map state running its children (child cursors, slots 0..total-1).

    Children are created a window at a time (`QUEUED` until a slot is free): the first with
    the fan-out, the next when the slot to start has no child yet, its input evaluated again
    from the state's input; slots below `next_slot` were started. A finished child keeps its
    output in the store until the state gathers every child's output in slot order.
    """

    kind: str  # "Parallel" or "Map"
    total: int
    started_event: int  # the id of the ...StateStarted event; part of every child's id
    limit: int  # children running at once
    next_slot: int = 0
    running: int = 0
    succeeded: int = 0
    failed: int = 0
    tolerated_count: int | None = None  # Map: failures tolerated (None: not set)
    tolerated_percentage: float | None = None
    retry_at: float | None = None  # the state is retried (fanned out again) at this instant
    map_run: int | None = None  # a DISTRIBUTED Map's run: the id of its MapRunStarted event

    @property
    def complete(self) -> bool:
        """Every child started and finished."""
        return self.next_slot >= self.total and self.running == 0


@quick_init
@dataclass(frozen=True, kw_only=True)
class Resume:
    """A cursor (the root or a child) closed without succeeding: where a redrive takes it up.

    Its `state` is entered again with its `data` (the input that state had); when it was a
    Parallel or Map state running children, `fanout` is their record as it was, and the
    children stay in the store: a redrive runs again only those that did not succeed.
    """

    fanout: Fanout | None = None


Pending = WaitThen | TaskCall | Fanout | Resume | None


@quick_init
@dataclass(frozen=True, kw_only=True)
class Progress:
    """Where an execution stands and what it does next: all that a transition changes."""

    status: str
    state: str | None = None
    phase: str | None = None
    data: str | None = None
    pending: Pending = None
    state_entered_event: int = 0
    state_entered_at: float | None = None
    attempt: int = 0
    retry_counts: tuple[int, ...] = ()
    due_at: float | None = None
    stop_date: float | None = None
    output: str | None = None
    error: str | None = None
    cause: str | None = None
    variables: str | None = None  # what `Assign` set so far: a JSON object as text; None: none

    @property
    def task(self) -> TaskCall | None:
        return self.pending if isinstance(self.pending, TaskCall) else None

    @property
    def wait(self) -> WaitThen | None:
        return self.pending if isinstance(self.pending, WaitThen) else None

    @property
    def fanout(self) -> Fanout | None:
        return self.pending if isinstance(self.pending, Fanout) else None

    @property
    def resume(self) -> Resume | None:
        return self.pending if isinstance(self.pending, Resume) else None


PROGRESS_FIELDS = tuple(f.name for f in fields(Progress))


@quick_init
@dataclass(frozen=True, kw_only=True)
class Execution(Progress):
    id: int
    machine: str
    name: str
    definition_id: int
    input: str
    start_date: float
    uid: str | None = None  # unique across every execution ever started; None before stepd 0.2
    redrive_count: int = 0  # how many times RedriveExecution took it up again
    redrive_date: float | None = None  # when it was last redriven
    redrive_token: str | None = None  # the clientToken of the last redrive
    last_event_id: int = 0
    version: int = 0

    @property
    def progress(self) -> Progress:
        return Progress(**{name: getattr(self, name) for name in PROGRESS_FIELDS})

    def moved_to(
        self,
        progress: Progress,
        *,
        last_event_id: int,
        version: int,
        redrive: Redrive | None = None,
        input_text: str | None = None,
    ) -> Execution:
        """This execution as a committed transition to `progress` (a redrive, and a new
        input, when given) leaves it."""
        # a copy with the progress fields changed, without dataclasses.replace's __init__
        # of every field (twice a step, on the store's writer thread)
        moved = object.__new__(type(self))
        values = moved.__dict__
        values.update(self.__dict__)
        for name in PROGRESS_FIELDS:
            values[name] = getattr(progress, name)
        values["last_event_id"] = last_event_id
        values["version"] = version
        if input_text is not None:
            values["input"] = input_text
        if redrive is None:
            return moved
        return replace(
            moved,
            redrive_count=redrive.count,
            redrive_date=redrive.date,
            redrive_token=redrive.token,
        )


@quick_init
@dataclass(frozen=True, kw_only=True)
class Cursor(Progress):
    """A child of a Parallel or Map state: a branch or an iteration, running on its own.

    `id` is unique in its execution and names its ancestors: a child of cursor P started by
    the event E in slot S is `P/E:S` (the root cursor, the execution's own row, is ""), so
    a cursor's descendants are exactly the ids starting with its id and "/".
    """

    id: str
    parent: str
    slot: int


def child_id(parent: str, started_event: int, slot: int) -> str:
    return f"{parent}/{started_event}:{slot}"


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


def new_event(event_type: str, details: dict[str, Any], ts: float) -> NewEvent:
    """`NewEvent(type=event_type, details=details, ts=ts)` without the frozen dataclass's
    __init__, which sets each field through object.__setattr__ (seven events a herd step)."""
    event = object.__new__(NewEvent)
    fields = event.__dict__
    fields["type"] = event_type
    fields["details"] = details
    fields["ts"] = ts
    return event


def progress_of(values: dict[str, Any]) -> Progress:
    """A Progress of `values`, which names every field, without the frozen dataclass's
    __init__ (two a herd step: 2.0 µs each against 0.4 µs)."""
    progress = object.__new__(Progress)
    progress.__dict__.update(values)
    return progress


@dataclass(frozen=True, kw_only=True)
class Redrive:
    """A redrive's mark on the execution it takes up again."""

    count: int
    date: float
    token: str | None = None


@quick_init
@dataclass(frozen=True, kw_only=True)
class Transition:
    """One atomic change to `base`: its new progress and the events to append.

    It applies only while the stored execution is still at `base.version`.
    """

    base: Execution
    progress: Progress
    events: tuple[NewEvent, ...] = ()
    pruned: tuple[str, ...] = ()  # cursor ids whose descendants are deleted (first)
    cursors: tuple[Cursor, ...] = ()  # child cursors inserted or replaced (after pruning)
    redrive: Redrive | None = None  # this transition is a redrive: count, date and token set
    input: str | None = None  # this transition is an update: the execution's input is this now

    def applied(self) -> Execution:
        """The execution as this transition leaves it once it applied."""
        base = self.base
        return base.moved_to(
            self.progress,
            last_event_id=base.last_event_id + len(self.events),
            version=base.version + 1,
            redrive=self.redrive,
            input_text=self.input,
        )


@dataclass(frozen=True, kw_only=True)
class NewExecution:
    machine: str
    name: str
    definition_id: int
    input: str
    start_date: float
    uid: str
    progress: Progress
    events: tuple[NewEvent, ...] = ()
    cursors: tuple[Cursor, ...] = ()  # the children of a Parallel or Map state entered at once


@dataclass(frozen=True, kw_only=True)
class Notice:
    """An outbox entry: an execution closed as FAILED, TIMED_OUT or ABORTED, to be told of.

    Written by the store in the transaction that closed the execution; it stays until
    `Store.outbox_done` removes it, whatever becomes of the execution.
    """

    id: int  # positive, larger for a later entry
    key: str  # the same for every delivery of this closing, unique across closings
    execution_id: int
    machine: str
    name: str
    status: str
    error: str | None
    cause: str | None
    stop_date: float


def notice_key(execution: Execution) -> str:
    """The key of the notice `execution`'s closing (as stored) gets."""
    return f"{execution.uid or execution.id}:{execution.last_event_id}"


@dataclass(frozen=True, kw_only=True)
class Activity:
    """An activity (CreateActivity): a queue of tasks that workers take with GetActivityTask."""

    name: str
    created_at: float


@dataclass(frozen=True, kw_only=True)
class ActivityTask:
    """A task waiting in an activity's queue for a worker: the token that settles it and the
    input the worker gets."""

    activity: str
    token: str
    input: str  # JSON text
    queued_at: float


@dataclass(frozen=True, kw_only=True)
class ChildLink:
    """An execution a Task state started (`states:startExecution`): its parent, and how the
    parent's task waits for it (`mode`: "" not at all, ".sync", ".sync:2", or
    ".waitForTaskToken") with which task token."""

    child_id: int
    parent_id: int
    mode: str
    token: str | None = None
