"""The SQLite store: durable, migrated, locked, and safe under batched writes."""

from __future__ import annotations

import asyncio
import sqlite3
from pathlib import Path

import pytest

from stepd.errors import StoreError, StoreLocked
from stepd.store.records import NewEvent, NewExecution, Transition
from stepd.store.schema import SCHEMA_VERSION
from stepd.store.sqlite import SqliteStore


def _new(name: str, definition_id: int, due_at: float | None = 100.0) -> NewExecution:
    return NewExecution(
        machine="m",
        name=name,
        definition_id=definition_id,
        input="{}",
        start_date=1.0,
        fields={"state": "A", "phase": "enter", "data": "{}", "due_at": due_at},
        events=(NewEvent(type="ExecutionStarted", details={}, ts=1.0),),
    )


@pytest.fixture
async def store(tmp_path: Path):
    opened = SqliteStore(tmp_path / "stepd.db")
    await opened.open()
    yield opened
    await opened.close()


async def test_fresh_database_is_migrated_to_the_latest_schema_in_wal_mode(tmp_path: Path):
    """A new database gets every migration and runs in WAL mode."""
    store = SqliteStore(tmp_path / "stepd.db")
    await store.open()
    await store.close()
    conn = sqlite3.connect(tmp_path / "stepd.db")
    assert conn.execute("PRAGMA user_version").fetchone()[0] == SCHEMA_VERSION
    assert conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"


async def test_written_executions_survive_reopening(tmp_path: Path):
    """What a commit acknowledged is there after the store is closed and opened again."""
    store = SqliteStore(tmp_path / "stepd.db")
    await store.open()
    definition_id = await store.put_definition("m", '{"StartAt":"A"}')
    created, _ = await store.create_execution(_new("one", definition_id))
    await store.close()
    reopened = SqliteStore(tmp_path / "stepd.db")
    await reopened.open()
    try:
        found = await reopened.find_execution("m", "one")
        assert found == created
        assert [
            e.type for e in await reopened.history(created.id, reverse=False, limit=10, after=None)
        ] == ["ExecutionStarted"]
    finally:
        await reopened.close()


async def test_a_second_store_on_the_same_file_is_refused(store: SqliteStore, tmp_path: Path):
    """Two daemons must never share one database."""
    second = SqliteStore(tmp_path / "stepd.db")
    with pytest.raises(StoreLocked, match="in use by another stepd process"):
        await second.open()


async def test_a_corrupt_file_is_a_clear_error(tmp_path: Path):
    """A file that is not a database is refused with its path in the message."""
    path = tmp_path / "stepd.db"
    path.write_bytes(b"this is not a database" * 100)
    with pytest.raises(StoreError, match=str(path)):
        await SqliteStore(path).open()


async def test_same_definition_is_stored_once(store: SqliteStore):
    """Definitions are snapshotted by content, so re-registering costs nothing."""
    first = await store.put_definition("m", '{"a":1}')
    again = await store.put_definition("m", '{"a":1}')
    other = await store.put_definition("m", '{"a":2}')
    assert (first == again, first == other) == (True, False)


async def test_creating_an_existing_name_returns_the_original(store: SqliteStore):
    """(machine, name) is unique; a second create hands back the first execution."""
    definition_id = await store.put_definition("m", "{}")
    first, created = await store.create_execution(_new("dup", definition_id))
    second, created_again = await store.create_execution(_new("dup", definition_id, due_at=5.0))
    assert (created, created_again, second) == (True, False, first)


async def test_commit_with_a_stale_version_changes_nothing(store: SqliteStore):
    """A transition computed from an old row is refused, so a stop is never overwritten."""
    definition_id = await store.put_definition("m", "{}")
    execution, _ = await store.create_execution(_new("v", definition_id))
    stopped = await store.commit(Transition(base=execution, fields={"status": "ABORTED"}))
    stale = await store.commit(Transition(base=execution, fields={"status": "SUCCEEDED"}))
    assert stopped is not None
    assert (stopped.status, stopped.version, stale) == ("ABORTED", 1, None)
    assert await store.get_execution(execution.id) == stopped


async def test_events_are_numbered_consecutively_across_commits(store: SqliteStore):
    """History ids run 1..n and each previousEventId is the one before."""
    definition_id = await store.put_definition("m", "{}")
    execution, _ = await store.create_execution(_new("h", definition_id))
    events = tuple(NewEvent(type=f"E{n}", details={}, ts=2.0) for n in range(3))
    await store.commit(Transition(base=execution, fields={}, events=events))
    history = await store.history(execution.id, reverse=False, limit=100, after=None)
    assert [(e.id, e.previous_id) for e in history] == [(1, 0), (2, 1), (3, 2), (4, 3)]


async def test_concurrent_writes_commit_in_groups_and_one_failure_spares_the_rest(
    store: SqliteStore,
):
    """A failing write in a batch fails alone; the others are committed."""
    definition_id = await store.put_definition("m", "{}")
    bad = NewExecution(
        machine="m", name="bad", definition_id=999, input="{}", start_date=1.0, fields={}
    )
    results = await asyncio.gather(
        *(store.create_execution(_new(f"e{n}", definition_id)) for n in range(50)),
        store.create_execution(bad),
        return_exceptions=True,
    )
    assert [type(r).__name__ for r in results[-1:]] == ["StoreError"]
    assert str(store.path) in str(results[-1])
    assert all(isinstance(r, tuple) for r in results[:-1])
    assert (await store.count_by_status()) == {"RUNNING": 50}


async def test_due_lists_running_executions_earliest_first(store: SqliteStore):
    """The timers load due work in due order."""
    definition_id = await store.put_definition("m", "{}")
    for name, due in (("late", 30.0), ("early", 10.0), ("never", None), ("mid", 20.0)):
        await store.create_execution(_new(name, definition_id, due_at=due))
    due = await store.due(25.0, 10)
    assert [d for _, d in due] == [10.0, 20.0]
