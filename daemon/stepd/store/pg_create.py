"""Executions created in groups on PostgreSQL: one INSERT ... ON CONFLICT DO NOTHING of every
new execution issued in one turn of the loop, one INSERT of their first events, one commit.

Each keeps `create_execution`'s promise: created once by (machine, name), or returned as it is
with False. Two creates of one name never share a group. When a group fails (a definition id
that names no definition), each of its creates is made again on its own, so only that one
fails. Creates with children's cursors take the one-by-one path (stepd.store.postgres).
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Hashable, Sequence
from dataclasses import dataclass
from typing import Any

from stepd.errors import StoreError
from stepd.store.pg_arrays import binary_columns
from stepd.store.pg_batch import (
    COLUMN_TYPES,
    EVENT_TYPES,
    EVENTS_SQL,
    Connect,
    Groups,
    add_notices,
    again,
)
from stepd.store.pg_hints import Hints
from stepd.store.records import NOTICED, RUNNING, Execution, NewExecution
from stepd.store.rows import (
    COLUMNS,
    PROGRESS_COLUMNS,
    EventRow,
    event_rows,
    notice_row,
    progress_values,
    row_to_execution,
)

_IDENTITY = {
    "machine": "text",
    "name": "text",
    "definition_id": "int8",
    "input": "text",
    "start_date": "float8",
    "uid": "text",
}
_ALL = {**_IDENTITY, **{c: COLUMN_TYPES[c] for c in PROGRESS_COLUMNS.values()}}
_ALL["last_event_id"] = "int8"
_TYPES = list(_ALL.values())
INSERT_SQL = (
    f"INSERT INTO executions ({', '.join(_ALL)})"  # noqa: S608
    f" SELECT * FROM unnest({', '.join(f'%b::{t}[]' for t in _TYPES)})"
    f" ON CONFLICT (machine, name) DO NOTHING RETURNING {COLUMNS}"
)
EXISTING_SQL = (
    f"SELECT {COLUMNS} FROM executions WHERE (machine, name) IN"  # noqa: S608
    " (SELECT * FROM unnest(%b::text[], %b::text[]))"
)

Result = tuple[Execution, bool]


@dataclass
class _New:
    new: NewExecution
    events: list[EventRow]
    future: asyncio.Future[Result]


class CreateGroups(Groups[_New]):
    """Gathers `create`s and applies them in groups; `connect` gives one of the store's
    connections, `alone` makes one create on its own. After each group's commit, `hints` tells
    the other nodes when the executions it created fall due."""

    def __init__(
        self,
        connect: Connect,
        alone: Callable[[NewExecution], Awaitable[Result]],
        hints: Hints,
    ) -> None:
        super().__init__()
        self._connect = connect
        self._alone = alone
        self._hints = hints

    async def create(self, new: NewExecution) -> Result:
        events = event_rows(0, 0, new.events)  # the JSON checked before anything is written
        future: asyncio.Future[Result] = asyncio.get_running_loop().create_future()
        self._submit(_New(new, events, future))
        return await future

    def _key(self, pending: _New) -> Hashable:
        return (pending.new.machine, pending.new.name)

    async def _apply(self, group: Sequence[_New]) -> None:
        try:
            made, there = await again(lambda made_again: self._write(group, made_again))
        except StoreError:
            for pending in group:  # each on its own: only the one at fault fails
                await self._one(pending)
            return
        except BaseException as exc:
            for pending in group:
                if not pending.future.done():
                    pending.future.set_exception(exc)
            raise
        for pending in group:
            if not pending.future.done():
                _settle(pending, made, there)

    async def _one(self, pending: _New) -> None:
        try:
            result = await self._alone(pending.new)
        except BaseException as exc:  # noqa: BLE001 - the caller's outcome
            if not pending.future.done():
                pending.future.set_exception(exc)
        else:
            if not pending.future.done():
                pending.future.set_result(result)

    async def _write(
        self, group: Sequence[_New], made_again: bool
    ) -> tuple[dict[tuple[str, str], dict[str, Any]], dict[tuple[str, str], dict[str, Any]]]:
        """Insert the group: the rows created and the rows that were there, by name (when
        `made_again`, those there with the uid of their create count as created: applied on
        a connection that broke before it answered)."""
        rows = [
            [
                p.new.machine,
                p.new.name,
                p.new.definition_id,
                p.new.input,
                p.new.start_date,
                p.new.uid,
                *progress_values(p.new.progress),
                len(p.new.events),
            ]
            for p in group
        ]
        async with self._connect() as conn:
            async with conn.transaction():
                made, there = await self._insert(conn, group, rows)
            if made_again:
                uids = {(p.new.machine, p.new.name): p.new.uid for p in group}
                for key in [key for key, row in there.items() if row["uid"] == uids[key]]:
                    made[key] = there.pop(key)
            dues = ((r["due_at"], False) for r in made.values() if r["status"] == RUNNING)
            await self._hints.send(conn, dues)
        return made, there

    async def _insert(
        self, conn: Any, group: Sequence[_New], rows: list[list[Any]]
    ) -> tuple[dict[tuple[str, str], dict[str, Any]], dict[tuple[str, str], dict[str, Any]]]:
        """The group's INSERT, its events and notices, in `conn`'s transaction."""
        cur = await conn.execute(INSERT_SQL.encode(), binary_columns(rows, _TYPES))
        made = {(r["machine"], r["name"]): r for r in await cur.fetchall()}
        events = [
            (int(made[key]["id"]), *event[1:])
            for p in group
            if (key := (p.new.machine, p.new.name)) in made
            for event in p.events
        ]
        if events:
            await conn.execute(EVENTS_SQL.encode(), binary_columns(events, EVENT_TYPES))
        closed = [r for r in made.values() if r["status"] in NOTICED]
        await add_notices(conn, [notice_row(row_to_execution(r)) for r in closed])
        there: dict[tuple[str, str], dict[str, Any]] = {}
        missing = [p for p in group if (p.new.machine, p.new.name) not in made]
        if missing:
            cur = await conn.execute(
                EXISTING_SQL.encode(),
                ([p.new.machine for p in missing], [p.new.name for p in missing]),
            )
            there = {(r["machine"], r["name"]): r for r in await cur.fetchall()}
        return made, there


def _settle(
    pending: _New,
    made: dict[tuple[str, str], dict[str, Any]],
    there: dict[tuple[str, str], dict[str, Any]],
) -> None:
    key = (pending.new.machine, pending.new.name)
    try:
        if key in made:
            pending.future.set_result((row_to_execution(made[key]), True))
        elif key in there:
            pending.future.set_result((row_to_execution(there[key]), False))
        else:
            pending.future.set_exception(
                StoreError(f"execution {key[0]}/{key[1]}: created and purged")
            )
    except StoreError as exc:  # a record this stepd cannot read
        pending.future.set_exception(exc)
