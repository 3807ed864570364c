"""The columns of the executions and cursors tables, and records to and from their rows.

Shared by the SQLite and PostgreSQL stores, whose tables have the same columns: a row is
anything that maps a column's name to its value (sqlite3.Row, psycopg's dict rows).
"""

from __future__ import annotations

import json
import time
from collections.abc import Mapping, Sequence
from typing import Any

from stepd import jsontext
from stepd.errors import RecordError
from stepd.store.formats import decode_pending, decode_variables, encode_pending, encode_variables
from stepd.store.records import Cursor, Event, Execution, NewEvent, Progress, notice_key

COLUMNS = (
    "id, machine, name, definition_id, status, input, start_date, stop_date, output, error,"
    " cause, state, phase, data, pending, state_entered_event, state_entered_at, attempt,"
    " retry_counts, due_at, last_event_id, version, uid, redrive_count, redrive_date,"
    " redrive_token, variables"
)
# Each field of `Progress` and the column that holds it; a transition writes them all.
PROGRESS_COLUMNS: dict[str, str] = {
    "status": "status",
    "state": "state",
    "phase": "phase",
    "data": "data",
    "pending": "pending",
    "state_entered_event": "state_entered_event",
    "state_entered_at": "state_entered_at",
    "attempt": "attempt",
    "retry_counts": "retry_counts",
    "due_at": "due_at",
    "stop_date": "stop_date",
    "output": "output",
    "error": "error",
    "cause": "cause",
    "variables": "variables",
}
CURSOR_COLUMNS = "id, parent, slot, " + ", ".join(PROGRESS_COLUMNS.values())


def row_to_execution(row: Mapping[str, Any]) -> Execution:
    try:
        pending = decode_pending(row["pending"])
        variables = decode_variables(row["variables"])
    except RecordError as exc:
        raise RecordError(f"execution {row['machine']}/{row['name']}: {exc}") from None
    return Execution(
        id=row["id"],
        machine=row["machine"],
        name=row["name"],
        definition_id=row["definition_id"],
        status=row["status"],
        input=row["input"],
        start_date=row["start_date"],
        uid=row["uid"],
        redrive_count=row["redrive_count"],
        redrive_date=row["redrive_date"],
        redrive_token=row["redrive_token"],
        stop_date=row["stop_date"],
        output=row["output"],
        error=row["error"],
        cause=row["cause"],
        state=row["state"],
        phase=row["phase"],
        data=row["data"],
        pending=pending,
        state_entered_event=row["state_entered_event"],
        state_entered_at=row["state_entered_at"],
        attempt=row["attempt"],
        retry_counts=tuple(json.loads(row["retry_counts"])),
        due_at=row["due_at"],
        last_event_id=row["last_event_id"],
        version=row["version"],
        variables=variables,
    )


def row_to_cursor(execution_id: int, row: Mapping[str, Any]) -> Cursor:
    try:
        pending = decode_pending(row["pending"])
        variables = decode_variables(row["variables"])
    except RecordError as exc:
        raise RecordError(f"execution {execution_id}, cursor {row['id']!r}: {exc}") from None
    return Cursor(
        id=row["id"],
        parent=row["parent"],
        slot=row["slot"],
        pending=pending,
        retry_counts=tuple(json.loads(row["retry_counts"])),
        variables=variables,
        **{
            name: row[column]
            for name, column in PROGRESS_COLUMNS.items()
            if name not in {"pending", "retry_counts", "variables"}
        },
    )


def progress_values(progress: Progress) -> list[Any]:
    """The column values of `progress`, in PROGRESS_COLUMNS' order (written out: this runs
    twice a step)."""
    p = progress
    return [
        p.status,
        p.state,
        p.phase,
        p.data,
        encode_pending(p.pending),
        p.state_entered_event,
        p.state_entered_at,
        p.attempt,
        jsontext.plain(list(p.retry_counts)) if p.retry_counts else "[]",
        p.due_at,
        p.stop_date,
        p.output,
        p.error,
        p.cause,
        encode_variables(p.variables),
    ]


def changed_values(base: Progress, progress: Progress) -> tuple[tuple[str, ...], list[Any]]:
    """The columns whose value `progress` changes from `base` (the row as committed, at the
    version the write checks), and their values; the columns it leaves as they are are not
    written, so that SQLite leaves the indexes on them alone (a step's first commit: about
    7 µs of the store's writer thread instead of 16)."""
    columns: list[str] = []
    values: list[Any] = []
    before, after = vars(base), vars(progress)  # both plain dataclasses: no getattr a field
    for name, column in PROGRESS_COLUMNS.items():
        value = after[name]
        old = before[name]
        if value is old or value == old:
            continue
        columns.append(column)
        if name == "pending":
            value = encode_pending(value)
        elif name == "retry_counts":
            value = jsontext.plain(list(value)) if value else "[]"
        elif name == "variables":
            value = encode_variables(value)
        values.append(value)
    return tuple(columns), values


EventRow = tuple[int, int, int, float, str, str, str | None]


def event_rows(execution_id: int, last_id: int, events: Sequence[NewEvent]) -> list[EventRow]:
    """The row (EVENT_COLUMNS) holding the events one write appends after event `last_id`:
    none, or one for all of them. Its first event fills the row's own columns; the others,
    which follow it id by id, are its `more` (a JSON array of [ts, type, details]). A step
    appends several events at once, which one row stores and indexes once. Raises TypeError
    or ValueError for details that are not JSON values."""
    if not events:
        return []
    first = events[0]
    details = jsontext.stored(first.details)
    more = (
        jsontext.stored([[e.ts, e.type, e.details] for e in events[1:]])
        if len(events) > 1
        else None
    )
    return [(execution_id, last_id + 1, last_id, first.ts, first.type, details, more)]


def list_query(
    mark: str,
    *,
    machine: str | None,
    status: str | None,
    limit: int,
    before_id: int | None,
    redriven: bool | None,
) -> tuple[str, list[Any]]:
    """The query of `Store.list_executions` and its parameters; `mark` is the driver's
    placeholder ("?" or "%s")."""
    clauses: list[str] = []
    params: list[Any] = []
    if redriven is not None:
        clauses.append("redrive_count > 0" if redriven else "redrive_count = 0")
    for column, value in (("machine", machine), ("status", status)):
        if value is not None:
            clauses.append(f"{column} = {mark}")
            params.append(value)
    if before_id is not None:
        clauses.append(f"id < {mark}")
        params.append(before_id)
    where = f"WHERE {' AND '.join(clauses)}" if clauses else ""
    params.append(limit)
    sql = f"SELECT {COLUMNS} FROM executions {where} ORDER BY id DESC LIMIT {mark}"  # noqa: S608
    return sql, params


_EVENT_FIELDS = "id, previous_id, ts, type, details, more"
EVENT_COLUMNS = f"execution_id, {_EVENT_FIELDS}"


def history_query(
    mark: str, execution_id: int, *, reverse: bool, limit: int, after: int | None
) -> tuple[str, tuple[int, ...]]:
    """The query of `Store.history` (`mark` as for `list_query`): the rows holding its
    events, for `history_events` to take them from. A row holds one event or a run of them
    (`event_rows`), each run starting at its row's id: forward, from the row that holds the
    event after `after`; newest first, each row starting before `after`, which holds at
    least one event of the page."""
    if reverse:
        start = after if after is not None else 2**62
        sql = (
            f"SELECT {_EVENT_FIELDS} FROM events"  # noqa: S608
            f" WHERE execution_id = {mark} AND id < {mark} ORDER BY id DESC LIMIT {mark}"
        )
        return sql, (execution_id, start, limit)
    sql = (
        f"SELECT {_EVENT_FIELDS} FROM events WHERE execution_id = {mark}"  # noqa: S608
        f" AND id >= COALESCE((SELECT MAX(id) FROM events WHERE execution_id = {mark}"
        f" AND id <= {mark}), 0) ORDER BY id ASC LIMIT {mark}"
    )
    # the first row may hold only events up to `after`: one more row than the page
    return sql, (execution_id, execution_id, after if after is not None else 0, limit + 1)


def history_events(
    rows: Sequence[Mapping[str, Any]], *, reverse: bool, limit: int, after: int | None
) -> list[Event]:
    """The page `history_query`'s rows hold: up to `limit` events in id order (newest first
    when `reverse`), only those after `after` in that order."""
    page: list[Event] = []
    for row in rows:
        events = row_events(row)
        if reverse:
            events.reverse()
        for event in events:
            if after is not None and (event.id >= after if reverse else event.id <= after):
                continue
            page.append(event)
            if len(page) == limit:
                return page
    return page


def row_events(row: Mapping[str, Any]) -> list[Event]:
    """The events one row of the history holds, in id order."""
    first = row["id"]
    events = [
        Event(
            id=first,
            previous_id=row["previous_id"],
            ts=row["ts"],
            type=row["type"],
            details=json.loads(row["details"]),
        )
    ]
    more = row["more"]
    if more is not None:
        for offset, (ts, event_type, details) in enumerate(json.loads(more), start=1):
            event_id = first + offset
            events.append(
                Event(
                    id=event_id, previous_id=event_id - 1, ts=ts, type=event_type, details=details
                )
            )
    return events


NOTICE_COLUMNS = "key, execution_id, machine, name, status, error, cause, stop_date"


def notice_row(execution: Execution) -> tuple[Any, ...]:
    """The outbox row (NOTICE_COLUMNS) of `execution`'s closing, as that write left it."""
    return (
        notice_key(execution),
        execution.id,
        execution.machine,
        execution.name,
        execution.status,
        execution.error,
        execution.cause,
        execution.stop_date if execution.stop_date is not None else time.time(),
    )
