"""Transitions committed in groups on PostgreSQL: one transaction, one UPDATE, one INSERT.

The transitions issued in one turn of the event loop (a herd of steps falling due together)
are applied by one `UPDATE executions ... FROM unnest(...)`, each row still a compare-and-set
on its version (and, for a node of several, on its holder and its lease), their events (and
notices) by an `INSERT ... SELECT FROM unnest(...)` of the rows it applied, all in one
statement: one round trip, one commit, one fsync, however many transitions. Arrays are sent
in binary (stepd.store.pg_arrays). Transitions that touch children's cursors or redrive take
the one-by-one path (stepd.store.postgres). Two transitions of one execution never share a group.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Hashable, Sequence
from contextlib import AbstractAsyncContextManager
from dataclasses import dataclass
from typing import Any, Generic, TypeVar

from stepd import logs
from stepd.errors import ClaimLost, ConnectionLost, StoreError
from stepd.store.pg_arrays import binary_columns
from stepd.store.pg_hints import Hints
from stepd.store.records import ABORTED, NOTICED, RUNNING, Execution, Transition
from stepd.store.rows import (
    EVENT_COLUMNS,
    NOTICE_COLUMNS,
    PROGRESS_COLUMNS,
    EventRow,
    event_rows,
    notice_row,
    progress_values,
)

log = logs.get_logger("stepd.store")

MAX_GROUP = 512
# How many times a write whose connection broke is made again, each on another connection.
LOST_RETRIES = 2

# The SQL type of each column a transition writes, in PROGRESS_COLUMNS' order.
COLUMN_TYPES = {
    "status": "text",
    "state": "text",
    "phase": "text",
    "data": "text",
    "pending": "text",
    "state_entered_event": "int8",
    "state_entered_at": "float8",
    "attempt": "int4",
    "retry_counts": "text",
    "due_at": "float8",
    "stop_date": "float8",
    "output": "text",
    "error": "text",
    "cause": "text",
    "variables": "text",
}
_COLUMNS = list(PROGRESS_COLUMNS.values())
# id, version, last_event_id, owner, stop (StopExecution, which any node may apply), progress
_TYPES = ["int8", "int8", "int8", "text", "bool", *(COLUMN_TYPES[c] for c in _COLUMNS)]
_SOURCE = ", ".join(f"%b::{t}[]" for t in _TYPES)
_NAMES = ", ".join(["id", "version", "last_event_id", "owner", "stop", *_COLUMNS])
_SET = ", ".join(f"{c} = v.{c}" for c in _COLUMNS)
EVENT_TYPES = ("int8", "int8", "int8", "float8", "text", "text", "text")
EVENTS_SQL = (
    f"INSERT INTO events ({EVENT_COLUMNS})"  # noqa: S608
    f" SELECT * FROM unnest({', '.join(f'%b::{t}[]' for t in EVENT_TYPES)})"
)
NOTICE_TYPES = ("text", "int8", "text", "text", "text", "text", "text", "float8")
NOTICES_SQL = (
    f"INSERT INTO outbox ({NOTICE_COLUMNS})"  # noqa: S608
    f" SELECT * FROM unnest({', '.join(f'%b::{t}[]' for t in NOTICE_TYPES)})"
)
# The group in one statement (one round trip, its own transaction): the UPDATE, then the
# events and the notices of the transitions it applied (the others' are left out).
GROUP_SQL = (
    "WITH applied AS ("  # noqa: S608
    f" UPDATE executions AS e SET {_SET}, last_event_id = v.last_event_id,"
    " version = v.version + 1, owner = CASE WHEN %s THEN v.owner ELSE e.owner END"
    f" FROM unnest({_SOURCE}) AS v({_NAMES})"
    " WHERE e.id = v.id AND e.version = v.version AND (NOT %s OR ("
    " (e.owner IS NULL OR e.owner = %s OR v.stop)"
    " AND EXISTS (SELECT 1 FROM nodes WHERE id = %s AND lease_until > clock_timestamp())))"
    " RETURNING e.id),"
    f" added AS (INSERT INTO events ({EVENT_COLUMNS})"
    f" SELECT * FROM unnest({', '.join(f'%b::{t}[]' for t in EVENT_TYPES)})"
    f" AS x({EVENT_COLUMNS})"
    " WHERE x.execution_id IN (SELECT id FROM applied)),"
    f" told AS (INSERT INTO outbox ({NOTICE_COLUMNS})"
    f" SELECT * FROM unnest({', '.join(f'%b::{t}[]' for t in NOTICE_TYPES)})"
    f" AS n({NOTICE_COLUMNS}) WHERE n.execution_id IN (SELECT id FROM applied))"
    " SELECT id FROM applied"
)
_NO_EVENTS = binary_columns([], EVENT_TYPES)
_NO_NOTICES = binary_columns([], NOTICE_TYPES)


Connect = Callable[[], AbstractAsyncContextManager[Any]]
P = TypeVar("P")
T = TypeVar("T")


async def again(op: Callable[[bool], Awaitable[T]]) -> T:
    """`op(made_again)`, made again on another connection when the one it used broke (a
    restart of the database breaks every pooled connection; the first use of each finds out).
    Only for writes that are safe to repeat: one that was applied before its connection broke
    is refused the second time by its version check (or found by its name)."""
    attempt = 0
    while True:
        try:
            return await op(attempt > 0)
        except ConnectionLost as exc:
            attempt += 1
            if attempt > LOST_RETRIES:
                raise
            log.info("store.made_again", error=str(exc))


@dataclass
class _Pending:
    transition: Transition
    events: list[EventRow]
    owner: str | None
    future: asyncio.Future[Execution | None]


class Groups(Generic[P]):
    """Work submitted in one turn of the loop, applied in groups of distinct keys."""

    def __init__(self) -> None:
        self._waiting: list[P] = []
        self._runner: asyncio.Task[None] | None = None

    def _submit(self, pending: P) -> None:
        self._waiting.append(pending)
        if self._runner is None or self._runner.done():
            self._runner = asyncio.create_task(self._run(), name="stepd-store-groups")

    def _key(self, pending: P) -> Hashable:
        raise NotImplementedError

    async def _apply(self, group: Sequence[P]) -> None:
        raise NotImplementedError

    async def _run(self) -> None:
        await asyncio.sleep(0)  # the rest of this turn's writes join the group
        while self._waiting:
            group: list[P] = []
            later: list[P] = []
            seen: set[Hashable] = set()
            for pending in self._waiting:
                key = self._key(pending)
                if key in seen or len(group) >= MAX_GROUP:
                    later.append(pending)
                else:
                    seen.add(key)
                    group.append(pending)
            self._waiting = later
            await self._apply(group)


class CommitGroups(Groups[_Pending]):
    """Gathers `commit`s and applies them in groups; `connect` gives one of the store's
    connections, `node` the node the store writes for (None: one node). After each group's
    commit, `hints` tells the other nodes when what it let go falls due."""

    def __init__(
        self,
        connect: Connect,
        node: Callable[[], str | None],
        hints: Hints,
    ) -> None:
        super().__init__()
        self._connect = connect
        self._node = node
        self._hints = hints

    async def commit(self, transition: Transition, owner: str | None) -> Execution | None:
        events = event_rows(transition.base.id, transition.base.last_event_id, transition.events)
        future: asyncio.Future[Execution | None] = asyncio.get_running_loop().create_future()
        self._submit(_Pending(transition, events, owner, future))
        return await future

    def _key(self, pending: _Pending) -> Hashable:
        return pending.transition.base.id

    async def _apply(self, group: Sequence[_Pending]) -> None:
        node = self._node()
        try:
            applied, held = await again(lambda _: self._write(group, node))
        except BaseException as exc:
            for pending in group:
                if not pending.future.done():
                    pending.future.set_exception(exc)
            if not isinstance(exc, StoreError):
                raise
            return
        for pending in group:
            if not pending.future.done():
                self._settle(pending, node, applied, held)

    async def _write(
        self, group: Sequence[_Pending], node: str | None
    ) -> tuple[set[int], dict[int, tuple[int, str | None]]]:
        """Apply the group: the ids applied, and for a node of several, the version and
        holder of those that were not."""
        held: dict[int, tuple[int, str | None]] = {}
        async with self._connect() as conn:
            applied = await self._update(conn, group, node, held)
            await self._hints.send(
                conn,
                (
                    (p.transition.progress.due_at, p.owner is not None)
                    for p in group
                    if p.transition.base.id in applied
                ),
            )
        return applied, held

    async def _update(
        self,
        conn: Any,
        group: Sequence[_Pending],
        node: str | None,
        held: dict[int, tuple[int, str | None]],
    ) -> set[int]:
        """The group's UPDATE, with the events and notices of what it applied, in one
        statement: the ids applied; `held` gets the version and holder of those refused for a
        node of several."""
        events = [e for p in group for e in p.events]
        notices = [notice_row(_moved(p)) for p in group if _closes(p.transition)]
        cur = await conn.execute(
            GROUP_SQL.encode(),
            [
                *self._params(group, node),
                *(binary_columns(events, EVENT_TYPES) if events else _NO_EVENTS),
                *(binary_columns(notices, NOTICE_TYPES) if notices else _NO_NOTICES),
            ],
        )
        applied = {int(row["id"]) for row in await cur.fetchall()}
        refused = [p.transition.base.id for p in group if p.transition.base.id not in applied]
        if node is not None and refused:
            cur = await conn.execute(
                "SELECT id, version, owner FROM executions WHERE id = ANY(%s)", (refused,)
            )
            for row in await cur.fetchall():
                held[int(row["id"])] = (int(row["version"]), row["owner"])
        return applied

    @staticmethod
    def _settle(
        pending: _Pending,
        node: str | None,
        applied: set[int],
        held: dict[int, tuple[int, str | None]],
    ) -> None:
        base = pending.transition.base
        if base.id in applied:
            pending.future.set_result(_moved(pending))
            return
        found = held.get(base.id)
        if found is not None and found[0] == base.version:  # refused for its holder or lease
            holder = found[1]
            why = f"node {holder} holds it" if holder not in (None, node) else "lease ran out"
            pending.future.set_exception(
                ClaimLost(f"execution {base.machine}/{base.name}: not written: {why}")
            )
            return
        pending.future.set_result(None)  # changed or purged since `base` was read

    def _params(self, group: Sequence[_Pending], node: str | None) -> list[Any]:
        rows = [
            [
                p.transition.base.id,
                p.transition.base.version,
                p.transition.base.last_event_id + len(p.transition.events),
                p.owner,
                p.transition.progress.status == ABORTED,
                *progress_values(p.transition.progress),
            ]
            for p in group
        ]
        return [
            node is not None,
            *binary_columns(rows, _TYPES),
            node is not None,
            node,
            node,
        ]


def _moved(pending: _Pending) -> Execution:
    """The execution as its applied transition left it."""
    return pending.transition.applied()


def _closes(transition: Transition) -> bool:
    """Whether `transition` closes its execution in a status that gets a notice."""
    return transition.base.status == RUNNING and transition.progress.status in NOTICED


async def add_notices(conn: Any, rows: Sequence[tuple[Any, ...]]) -> None:
    """Add these outbox rows (`notice_row`), in the transaction of `conn`."""
    if rows:
        await conn.execute(NOTICES_SQL.encode(), binary_columns(rows, NOTICE_TYPES))
