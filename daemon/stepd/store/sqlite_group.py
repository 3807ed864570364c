"""The SQLite writer's group commit: the writes queued together, in one transaction.

A write is a function run on the writer thread, or a staged transition (`Staged`): its
UPDATE, its events and its children's rows, made ready on the event loop. Staged transitions
that follow each other in a group are written together: their UPDATEs with one `executemany`
for each set of columns they change, their events with one more. Each sqlite3 call hands
Python's GIL to the event loop's thread and back, so a step written in four calls of its own
cost both threads more than SQLite's own work. A version check that fails among them (an
execution that changed meanwhile) is found by the rows the UPDATEs touched; those UPDATEs
are then undone and run one at a time.
"""

from __future__ import annotations

import asyncio
import contextlib
import sqlite3
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from stepd.errors import StoreError, WriteGroupFailed
from stepd.store.records import NOTICED, RUNNING, Cursor, Execution, Transition
from stepd.store.rows import (
    CURSOR_COLUMNS,
    EVENT_COLUMNS,
    NOTICE_COLUMNS,
    PROGRESS_COLUMNS,
    changed_values,
    event_rows,
    notice_row,
    progress_values,
)

INPUT_SQL = "UPDATE executions SET input = ? WHERE id = ?"
NOTICE_SQL = f"INSERT INTO outbox ({NOTICE_COLUMNS}) VALUES (?, ?, ?, ?, ?, ?, ?, ?)"  # noqa: S608
REDRIVE_SQL = (
    "UPDATE executions SET redrive_count = ?, redrive_date = ?, redrive_token = ? WHERE id = ?"
)
EVENTS_SQL = f"INSERT INTO events ({EVENT_COLUMNS}) VALUES (?, ?, ?, ?, ?, ?, ?)"  # noqa: S608
UPSERT_CURSOR_SQL = (
    f"INSERT OR REPLACE INTO cursors (execution_id, {CURSOR_COLUMNS})"  # noqa: S608
    f" VALUES (?, ?, ?, ?, {', '.join('?' for _ in PROGRESS_COLUMNS)})"
)
# the descendants of a cursor: ids in [prefix + "/", prefix + "0") ("0" follows "/")
PRUNE_SQL = "DELETE FROM cursors WHERE execution_id = ? AND id >= ? AND id < ?"
MAX_UPDATE_SHAPES = 256  # UPDATE statements kept, one per set of columns a commit changes
_UPDATES: dict[tuple[str, ...], str] = {}


def _update_sql(columns: tuple[str, ...]) -> str:
    """The UPDATE of an execution's row that writes `columns` (and its last event and version)
    if its version is still the one read."""
    sql = _UPDATES.get(columns)
    if sql is None:
        sql = (
            "UPDATE executions SET "  # noqa: S608
            + "".join(f"{column} = ?, " for column in columns)
            + "last_event_id = ?, version = ? WHERE id = ? AND version = ?"
        )
        if len(_UPDATES) < MAX_UPDATE_SHAPES:
            _UPDATES[columns] = sql
    return sql


class Staged:
    """A transition's writes, made ready on the event loop: its UPDATE (only the columns it
    changes from the row as committed at the version checked) and its events' rows."""

    __slots__ = ("events", "params", "transition", "update")

    def __init__(self, transition: Transition) -> None:
        base = transition.base
        columns, values = changed_values(base, transition.progress)
        self.transition = transition
        self.update = _update_sql(columns)
        last_event_id = base.last_event_id + len(transition.events)
        self.params = (*values, last_event_id, base.version + 1, base.id, base.version)
        # encoded here: a detail that is not JSON fails this commit alone, on the loop
        self.events = event_rows(base.id, base.last_event_id, transition.events)

    def write(self, conn: sqlite3.Connection) -> Execution | None:
        """Write this transition alone: the execution as it now stands, or None when its
        version check failed."""
        return write_staged(conn, [self])[0]


class Write:
    """One write of a group: `fn`, run on the writer thread; for a `staged` transition, its
    `write`, which the group replaces by writing it with the staged ones next to it."""

    __slots__ = ("fn", "future", "loop", "staged")

    def __init__(
        self,
        fn: Callable[[sqlite3.Connection], Any],
        loop: asyncio.AbstractEventLoop,
        future: asyncio.Future[Any],
        staged: Staged | None = None,
    ) -> None:
        self.fn = fn
        self.loop = loop
        self.future = future
        self.staged = staged


Outcome = tuple[Write, Any, Exception | None]


def settle_all(settled: list[tuple[asyncio.Future[Any], Any, BaseException | None]]) -> None:
    """Resolve a whole group commit's futures with one wake-up of the loop."""
    for future, result, error in settled:
        if future.done():
            continue
        if error is not None:
            future.set_exception(error)
        else:
            future.set_result(result)


def commit_group(
    conn: sqlite3.Connection, batch: list[Write], path: Path, *, isolated: bool
) -> list[Outcome]:
    """Run `batch` in one transaction and commit it. Not `isolated`, the first write that
    fails rolls everything back (WriteGroupFailed); `isolated`, each write runs in a savepoint
    and a failed one is undone alone, its error becoming its outcome."""
    outcomes: list[Outcome] = []
    conn.execute("BEGIN IMMEDIATE")
    try:
        if isolated:
            outcomes = [_isolated(conn, write, path) for write in batch]
        else:
            try:
                outcomes = _together(conn, batch)
            except Exception as exc:
                raise WriteGroupFailed from exc
        conn.execute("COMMIT")
    except BaseException:
        with contextlib.suppress(sqlite3.Error):
            conn.execute("ROLLBACK")
        raise
    return outcomes


def _together(conn: sqlite3.Connection, batch: list[Write]) -> list[Outcome]:
    """Run `batch` in order, the staged transitions that follow each other written together."""
    outcomes: list[Outcome] = []
    run: list[Write] = []  # staged transitions next to each other, not written yet
    for write in [*batch, None]:
        if write is not None and write.staged is not None:
            run.append(write)
            continue
        if run:  # before the next write: it may read what they write
            staged = [w.staged for w in run if w.staged is not None]
            outcomes += zip(run, write_staged(conn, staged), [None] * len(run), strict=True)
            run = []
        if write is not None:
            outcomes.append((write, write.fn(conn), None))
    return outcomes


def _isolated(conn: sqlite3.Connection, write: Write, path: Path) -> Outcome:
    conn.execute("SAVEPOINT w")
    try:
        outcome: Outcome = (write, write.fn(conn), None)
    except Exception as exc:  # noqa: BLE001 - any write's error is its caller's outcome
        conn.execute("ROLLBACK TO w")
        conn.execute("RELEASE w")
        return (write, None, _wrap(exc, path))
    conn.execute("RELEASE w")
    return outcome


def write_staged(conn: sqlite3.Connection, writes: Sequence[Staged]) -> list[Execution | None]:
    """Write staged transitions together; for each, the execution as it now stands, or None
    when its version check failed."""
    applied = _updates(conn, writes)
    events: list[tuple[Any, ...]] = []
    outcomes: list[Execution | None] = []
    for staged, done in zip(writes, applied, strict=True):
        if not done:
            outcomes.append(None)
            continue
        transition = staged.transition
        base = transition.base
        redrive = transition.redrive
        if redrive is not None:
            conn.execute(REDRIVE_SQL, (redrive.count, redrive.date, redrive.token, base.id))
        if transition.input is not None:
            conn.execute(INPUT_SQL, (transition.input, base.id))
        events += staged.events
        if transition.pruned or transition.cursors:
            write_cursors(conn, base.id, transition.pruned, transition.cursors)
        moved = transition.applied()
        if base.status == RUNNING and moved.status in NOTICED:
            add_notice(conn, moved)
        outcomes.append(moved)
    if events:
        conn.executemany(EVENTS_SQL, events)
    return outcomes


def _updates(conn: sqlite3.Connection, writes: Sequence[Staged]) -> list[bool]:
    """Run the UPDATEs of `writes`, those of one statement together; whether each one's
    version check passed."""
    by_sql: dict[str, list[int]] = {}
    for n, staged in enumerate(writes):
        by_sql.setdefault(staged.update, []).append(n)
    applied = [True] * len(writes)
    for sql, numbers in by_sql.items():
        params = [writes[n].params for n in numbers]
        if len(params) == 1:
            applied[numbers[0]] = conn.execute(sql, params[0]).rowcount == 1
            continue
        conn.execute("SAVEPOINT u")
        if conn.executemany(sql, params).rowcount == len(params):
            conn.execute("RELEASE u")
            continue
        # an execution changed meanwhile: undone, and each one's check seen on its own
        conn.execute("ROLLBACK TO u")
        conn.execute("RELEASE u")
        for n, one in zip(numbers, params, strict=True):
            applied[n] = conn.execute(sql, one).rowcount == 1
    return applied


def write_cursors(
    conn: sqlite3.Connection,
    execution_id: int,
    pruned: Sequence[str],
    cursors: Sequence[Cursor],
) -> None:
    for prefix in pruned:
        conn.execute(PRUNE_SQL, (execution_id, prefix + "/", prefix + "0"))
    if cursors:
        conn.executemany(
            UPSERT_CURSOR_SQL,
            [(execution_id, c.id, c.parent, c.slot, *progress_values(c)) for c in cursors],
        )


def add_notice(conn: sqlite3.Connection, execution: Execution) -> None:
    conn.execute(NOTICE_SQL, notice_row(execution))


def _wrap(exc: Exception, path: Path) -> Exception:
    if isinstance(exc, sqlite3.Error):
        return StoreError(f"{path}: write failed: {exc}")
    return exc
