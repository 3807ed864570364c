"""The in-memory store: the port's whole contract without a disk, for unit tests and trials.

A `MemoryDatabase` holds the data, as a file does for SQLite: a `MemoryStore` opened on it
sees what every other store on it committed, and what a closed store acknowledged is there for
the next one (a restart). Records are kept the way a store on disk keeps them: pending records
and event details as JSON text, decoded afresh on every read, so a record this stepd cannot
read fails with RecordError here too, and nothing handed out shares state with what is stored.
Each call yields to the event loop once before it takes effect, as a call doing I/O would.
"""

from __future__ import annotations

import asyncio
import json
import time
from collections import Counter
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field, replace

from stepd import __version__
from stepd.errors import RecordError, StoreError, StoreTooNew
from stepd.store.base import Store
from stepd.store.formats import FORMAT_VERSION, decode_pending, encode_pending
from stepd.store.records import (
    NOTICED,
    QUEUED,
    RUNNING,
    SUCCEEDED,
    Activity,
    ActivityTask,
    ChildLink,
    Cursor,
    Event,
    Execution,
    NewEvent,
    NewExecution,
    Notice,
    Transition,
    notice_key,
)
from stepd.store.schema import SCHEMA_VERSION, StoreVersion, too_new


@dataclass(frozen=True, kw_only=True)
class _Definition:
    machine: str
    body: str
    created_at: float
    endpoints: Mapping[str, str] = field(default_factory=dict)


@dataclass(frozen=True, kw_only=True)
class _Row:
    """An execution as stored: everything but its pending record, and that record's text."""

    execution: Execution  # with `pending` None
    pending: str | None


@dataclass(frozen=True, kw_only=True)
class _CursorRow:
    """A child cursor as stored: everything but its pending record, and that record's text."""

    cursor: Cursor  # with `pending` None
    pending: str | None


@dataclass(frozen=True, kw_only=True)
class _Event:
    id: int
    previous_id: int
    ts: float
    type: str
    details: str  # JSON text


@dataclass(kw_only=True)
class MemoryDatabase:
    """The data of in-memory stores. Open several `MemoryStore`s on one to model a restart
    (one after the other) or several nodes (at once)."""

    name: str = "memory"
    # What the store says of itself; a fresh one has no schema yet.
    version: StoreVersion = field(
        default_factory=lambda: StoreVersion(schema=0, record_format=None, written_by=None)
    )
    definitions: dict[int, _Definition] = field(default_factory=dict, repr=False)
    definition_ids: dict[tuple[str, str], int] = field(default_factory=dict, repr=False)
    rows: dict[int, _Row] = field(default_factory=dict, repr=False)
    names: dict[tuple[str, str], int] = field(default_factory=dict, repr=False)
    events: dict[int, list[_Event]] = field(default_factory=dict, repr=False)
    cursors: dict[int, dict[str, _CursorRow]] = field(default_factory=dict, repr=False)
    outbox: dict[int, Notice] = field(default_factory=dict, repr=False)
    last_definition_id: int = 0
    last_execution_id: int = 0
    last_notice_id: int = 0

    def add_notice(self, execution: Execution) -> None:
        self.last_notice_id += 1
        self.outbox[self.last_notice_id] = Notice(
            id=self.last_notice_id,
            key=notice_key(execution),
            execution_id=execution.id,
            machine=execution.machine,
            name=execution.name,
            status=execution.status,
            error=execution.error,
            cause=execution.cause,
            stop_date=execution.stop_date if execution.stop_date is not None else time.time(),
        )

    activities: dict[str, Activity] = field(default_factory=dict, repr=False)
    activity_tasks: dict[str, ActivityTask] = field(default_factory=dict, repr=False)
    child_links: dict[int, ChildLink] = field(default_factory=dict, repr=False)
    tags: dict[str, dict[str, str]] = field(default_factory=dict, repr=False)


class MemoryStore(Store):
    """The store port in memory. `database` holds the data (a new one when not given);
    `clock` gives unix seconds for when definitions are stored."""

    def __init__(
        self, database: MemoryDatabase | None = None, *, clock: Callable[[], float] = time.time
    ) -> None:
        self.database = database if database is not None else MemoryDatabase()
        self._clock = clock
        self._open = False
        self._busy = 0  # calls issued and not yet applied
        self._idle = asyncio.Event()
        self._idle.set()

    # -- lifecycle -------------------------------------------------------------------

    async def open(self) -> None:
        await asyncio.sleep(0)
        db = self.database
        reason = too_new(
            db.version, schema=SCHEMA_VERSION, record_format=FORMAT_VERSION, version=__version__
        )
        if reason is not None:
            raise StoreTooNew(f"{db.name}: {reason}")
        db.version = StoreVersion(
            schema=SCHEMA_VERSION, record_format=FORMAT_VERSION, written_by=__version__
        )
        self._open = True

    async def close(self) -> None:
        self._open = False
        await self._idle.wait()

    async def _enter(self) -> MemoryDatabase:
        """The data, once the event loop has run other tasks; StoreError unless open."""
        if not self._open:
            raise StoreError(f"{self.database.name}: the store is not open")
        self._busy += 1
        self._idle.clear()
        try:
            await asyncio.sleep(0)
        finally:
            self._busy -= 1
            if not self._busy:
                self._idle.set()
        return self.database

    # -- definitions -----------------------------------------------------------------

    async def put_definition(
        self, machine: str, body: str, endpoints: Mapping[str, str] | None = None
    ) -> int:
        db = await self._enter()
        known = db.definition_ids.get((machine, body))
        if known is not None:
            stored = db.definitions[known]
            merged = {**stored.endpoints, **(endpoints or {})}
            db.definitions[known] = replace(stored, endpoints=merged)
            return known
        db.last_definition_id += 1
        definition_id = db.last_definition_id
        db.definitions[definition_id] = _Definition(
            machine=machine, body=body, created_at=self._clock(), endpoints=dict(endpoints or {})
        )
        db.definition_ids[(machine, body)] = definition_id
        return definition_id

    async def first_registered(self, machine: str) -> float | None:
        db = await self._enter()
        times = [d.created_at for d in db.definitions.values() if d.machine == machine]
        return min(times) if times else None

    async def get_definition(self, definition_id: int) -> str:
        db = await self._enter()
        definition = db.definitions.get(definition_id)
        if definition is None:
            raise StoreError(f"definition {definition_id} is not in the store")
        return definition.body

    async def get_definition_endpoints(self, definition_id: int) -> dict[str, str]:
        db = await self._enter()
        definition = db.definitions.get(definition_id)
        if definition is None:
            raise StoreError(f"definition {definition_id} is not in the store")
        return dict(definition.endpoints)

    # -- executions ------------------------------------------------------------------

    async def create_execution(self, new: NewExecution) -> tuple[Execution, bool]:
        db = await self._enter()
        existing = db.names.get((new.machine, new.name))
        if existing is not None:
            return _read(db.rows[existing]), False
        if new.definition_id not in db.definitions:
            raise StoreError(
                f"{db.name}: write failed: definition {new.definition_id} is not in the store"
            )
        pending = encode_pending(new.progress.pending)
        events = _encode_events(0, new.events)
        cursors = {c.id: _encode_cursor(c) for c in new.cursors}
        db.last_execution_id += 1
        execution_id = db.last_execution_id
        execution = Execution(
            id=execution_id,
            machine=new.machine,
            name=new.name,
            definition_id=new.definition_id,
            input=new.input,
            start_date=new.start_date,
            uid=new.uid,
            status=new.progress.status,
        )
        row = _Row(
            execution=execution.moved_to(
                replace(new.progress, pending=None), last_event_id=len(events), version=0
            ),
            pending=pending,
        )
        db.rows[execution_id] = row
        db.names[(new.machine, new.name)] = execution_id
        db.events[execution_id] = events
        if cursors:
            db.cursors[execution_id] = cursors
        if row.execution.status in NOTICED:
            db.add_notice(row.execution)
        return _read(row), True

    async def commit(self, transition: Transition) -> Execution | None:
        db = await self._enter()
        base = transition.base
        row = db.rows.get(base.id)
        if row is None or row.execution.version != base.version:
            return None
        stored = row.execution
        pending = encode_pending(transition.progress.pending)
        events = _encode_events(stored.last_event_id, transition.events)
        upserts = [_encode_cursor(c) for c in transition.cursors]
        row = _Row(
            execution=stored.moved_to(
                replace(transition.progress, pending=None),
                last_event_id=stored.last_event_id + len(events),
                version=stored.version + 1,
                redrive=transition.redrive,
                input_text=transition.input,
            ),
            pending=pending,
        )
        db.rows[base.id] = row
        if stored.status == RUNNING and row.execution.status in NOTICED:
            db.add_notice(row.execution)
        db.events[base.id].extend(events)
        cursors = db.cursors.setdefault(base.id, {})
        for pruned in transition.pruned:
            prefix = pruned + "/"
            for cursor_id in [c for c in cursors if c.startswith(prefix)]:
                del cursors[cursor_id]
        for upsert in upserts:
            cursors[upsert.cursor.id] = upsert
        if not cursors:
            del db.cursors[base.id]
        return _read(row)

    async def running_cursors(self, execution_id: int) -> list[Cursor]:
        db = await self._enter()
        rows = db.cursors.get(execution_id, {}).values()
        running = [_read_cursor(execution_id, r) for r in rows if r.cursor.status == RUNNING]
        return sorted(running, key=lambda c: (c.parent, c.slot))

    async def get_cursor(self, execution_id: int, cursor_id: str) -> Cursor | None:
        db = await self._enter()
        row = db.cursors.get(execution_id, {}).get(cursor_id)
        return None if row is None else _read_cursor(execution_id, row)

    async def finished_children(
        self, execution_id: int, parent: str, *, unsucceeded_only: bool = False
    ) -> list[Cursor]:
        db = await self._enter()
        rows = db.cursors.get(execution_id, {}).values()
        left_out = {RUNNING, QUEUED, SUCCEEDED} if unsucceeded_only else {RUNNING, QUEUED}
        finished = [
            _read_cursor(execution_id, r)
            for r in rows
            if r.cursor.parent == parent and r.cursor.status not in left_out
        ]
        return sorted(finished, key=lambda c: c.slot)

    async def children_output(self, execution_id: int, parent: str) -> str:
        finished = await self.finished_children(execution_id, parent)
        return "[" + ",".join(c.output if c.output is not None else "null" for c in finished) + "]"

    async def get_execution(self, execution_id: int) -> Execution | None:
        db = await self._enter()
        row = db.rows.get(execution_id)
        return None if row is None else _read(row)

    async def find_execution(self, machine: str, name: str) -> Execution | None:
        db = await self._enter()
        execution_id = db.names.get((machine, name))
        return None if execution_id is None else _read(db.rows[execution_id])

    async def list_executions(
        self,
        *,
        machine: str | None,
        status: str | None,
        limit: int,
        before_id: int | None,
        redriven: bool | None = None,
    ) -> list[Execution]:
        db = await self._enter()
        page: list[Execution] = []
        for execution_id in sorted(db.rows, reverse=True):
            if len(page) >= limit:
                break
            row = db.rows[execution_id]
            if (
                (machine is None or row.execution.machine == machine)
                and (status is None or row.execution.status == status)
                and (before_id is None or execution_id < before_id)
                and (redriven is None or (row.execution.redrive_count > 0) == redriven)
            ):
                page.append(_read(row))
        return page

    async def history(
        self, execution_id: int, *, reverse: bool, limit: int, after: int | None
    ) -> list[Event]:
        db = await self._enter()
        stored = db.events.get(execution_id, [])
        if reverse:
            chosen = [e for e in reversed(stored) if after is None or e.id < after]
        else:
            chosen = [e for e in stored if after is None or e.id > after]
        return [
            Event(
                id=e.id,
                previous_id=e.previous_id,
                ts=e.ts,
                type=e.type,
                details=json.loads(e.details),
            )
            for e in chosen[:limit]
        ]

    async def due(self, before: float, limit: int) -> Sequence[tuple[int, float]]:
        db = await self._enter()
        due: list[tuple[float, int]] = []
        for execution_id, row in db.rows.items():
            due_at = row.execution.due_at
            if due_at is not None and due_at < before:
                due.append((due_at, execution_id))
        due.sort()
        return [(execution_id, due_at) for due_at, execution_id in due[:limit]]

    async def purge_closed(self, before: float, limit: int) -> int:
        db = await self._enter()
        closed: list[tuple[float, int]] = []
        for execution_id, row in db.rows.items():
            stopped = row.execution.stop_date
            if stopped is None or stopped >= before:
                continue
            if row.execution.due_at is None and row.execution.status != RUNNING:
                closed.append((stopped, execution_id))
        closed.sort()
        purged = closed[:limit]
        for _, execution_id in purged:
            execution = db.rows.pop(execution_id).execution
            del db.names[(execution.machine, execution.name)]
            del db.events[execution_id]
            db.cursors.pop(execution_id, None)
        gone = {execution_id for _, execution_id in purged}
        for link in list(db.child_links.values()):
            if link.child_id in gone or link.parent_id in gone:
                del db.child_links[link.child_id]
        return len(purged)

    async def count_by_status(self) -> dict[str, int]:
        db = await self._enter()
        return dict(Counter(row.execution.status for row in db.rows.values()))

    async def falling_due(
        self, start: float, end: float, *, machine: str | None, limit: int
    ) -> list[Execution]:
        db = await self._enter()
        due: list[tuple[float, int]] = []
        for execution_id, row in db.rows.items():
            execution = row.execution
            due_at = execution.due_at
            if (
                due_at is not None
                and start <= due_at < end
                and execution.status == RUNNING
                and (machine is None or execution.machine == machine)
            ):
                due.append((due_at, execution_id))
        due.sort()
        return [_read(db.rows[execution_id]) for _, execution_id in due[:limit]]

    async def outbox(self, limit: int) -> list[Notice]:
        db = await self._enter()
        return [db.outbox[i] for i in sorted(db.outbox)[:limit]]

    async def outbox_done(self, ids: Sequence[int]) -> None:
        db = await self._enter()
        for notice_id in ids:
            db.outbox.pop(notice_id, None)

    # -- activities ------------------------------------------------------------------

    async def create_activity(self, name: str, created_at: float) -> Activity:
        db = await self._enter()
        return db.activities.setdefault(name, Activity(name=name, created_at=created_at))

    async def delete_activity(self, name: str) -> None:
        db = await self._enter()
        db.activities.pop(name, None)
        for token in [t.token for t in db.activity_tasks.values() if t.activity == name]:
            del db.activity_tasks[token]

    async def list_activities(self) -> list[Activity]:
        db = await self._enter()
        return sorted(db.activities.values(), key=lambda a: a.name)

    async def queue_activity_task(self, task: ActivityTask) -> None:
        db = await self._enter()
        db.activity_tasks[task.token] = task

    async def take_activity_task(self, activity: str) -> ActivityTask | None:
        db = await self._enter()
        queued = [t for t in db.activity_tasks.values() if t.activity == activity]
        if not queued:
            return None
        first = min(queued, key=lambda t: (t.queued_at, t.token))
        del db.activity_tasks[first.token]
        return first

    # -- nested executions -----------------------------------------------------------

    async def link_child(self, link: ChildLink) -> None:
        db = await self._enter()
        db.child_links.setdefault(link.child_id, link)

    async def child_links(
        self, *, parent_id: int | None = None, child_id: int | None = None
    ) -> list[ChildLink]:
        db = await self._enter()
        if child_id is not None:
            found = db.child_links.get(child_id)
            return [] if found is None else [found]
        return sorted(
            (link for link in db.child_links.values() if link.parent_id == parent_id),
            key=lambda link: link.child_id,
        )

    async def live_links(self, limit: int) -> list[ChildLink]:
        db = await self._enter()

        def running(execution_id: int) -> bool:
            row = db.rows.get(execution_id)
            return row is not None and row.execution.status == RUNNING

        live = [
            link
            for link in db.child_links.values()
            if running(link.parent_id) or running(link.child_id)
        ]
        return sorted(live, key=lambda link: link.child_id)[:limit]

    # -- tags ------------------------------------------------------------------------

    async def put_tags(self, resource: str, tags: Mapping[str, str], limit: int) -> bool:
        db = await self._enter()
        merged = {**db.tags.get(resource, {}), **tags}
        if len(merged) > limit:
            return False
        db.tags[resource] = merged
        return True

    async def remove_tags(self, resource: str, keys: Sequence[str]) -> None:
        db = await self._enter()
        kept = {k: v for k, v in db.tags.get(resource, {}).items() if k not in set(keys)}
        db.tags[resource] = kept

    async def tags_of(self, resource: str) -> dict[str, str]:
        db = await self._enter()
        return dict(sorted(db.tags.get(resource, {}).items()))


def _read(row: _Row) -> Execution:
    execution = row.execution
    try:
        pending = decode_pending(row.pending)
    except RecordError as exc:
        raise RecordError(f"execution {execution.machine}/{execution.name}: {exc}") from None
    return replace(execution, pending=pending)


def _encode_cursor(cursor: Cursor) -> _CursorRow:
    return _CursorRow(cursor=replace(cursor, pending=None), pending=encode_pending(cursor.pending))


def _read_cursor(execution_id: int, row: _CursorRow) -> Cursor:
    try:
        pending = decode_pending(row.pending)
    except RecordError as exc:
        raise RecordError(f"execution {execution_id}, cursor {row.cursor.id!r}: {exc}") from None
    return replace(row.cursor, pending=pending)


def _encode_events(last_id: int, events: Sequence[NewEvent]) -> list[_Event]:
    encoded: list[_Event] = []
    for offset, event in enumerate(events, start=1):
        encoded.append(
            _Event(
                id=last_id + offset,
                previous_id=last_id + offset - 1,
                ts=event.ts,
                type=event.type,
                details=json.dumps(event.details, separators=(",", ":")),
            )
        )
    return encoded
