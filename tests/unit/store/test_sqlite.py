"""What only the SQLite store does: WAL, the file lock, migrations, versions, group commit.

What every store promises is tested against it in test_contract.py.
"""

from __future__ import annotations

import asyncio
import hashlib
import sqlite3
from dataclasses import replace
from pathlib import Path

import pytest

from stepd import __version__
from stepd.errors import StoreDamaged, StoreError, StoreLocked, StoreNotFound, StoreTooNew
from stepd.store.formats import FORMAT_VERSION
from stepd.store.records import (
    Execution,
    NewEvent,
    NewExecution,
    Progress,
    TaskCall,
    Transition,
    WaitThen,
)
from stepd.store.schema import MIGRATIONS, SCHEMA_VERSION, StoreVersion
from stepd.store.sqlite import SqliteStore, backup, count_by_status, read_version, refusal


def _new(name: str, definition_id: int, due_at: float | None = 100.0) -> NewExecution:
    return NewExecution(
        machine="m",
        name=name,
        definition_id=definition_id,
        input="{}",
        start_date=1.0,
        uid=f"uid-{name}",
        progress=Progress(status="RUNNING", state="A", phase="enter", data="{}", due_at=due_at),
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


async def test_a_second_store_on_the_same_file_is_refused(store: SqliteStore, tmp_path: Path):
    """Two daemons must never share one database."""
    second = SqliteStore(tmp_path / "stepd.db")
    with pytest.raises(StoreLocked, match="in use by another stepd process"):
        await second.open()


async def test_a_corrupt_file_is_a_clear_error(tmp_path: Path):
    """A file that is not a database is refused with its path in the message, as damage a
    restart cannot mend (a ConfigError: exit 78)."""
    path = tmp_path / "stepd.db"
    path.write_bytes(b"this is not a database" * 100)
    with pytest.raises(StoreDamaged, match=str(path)):
        await SqliteStore(path).open()


async def test_concurrent_writes_commit_in_groups_and_one_failure_spares_the_rest(
    store: SqliteStore,
):
    """A failing write in a batch fails alone; the others are committed."""
    definition_id = await store.put_definition("m", "{}")
    bad = NewExecution(
        machine="m",
        name="bad",
        definition_id=999,
        input="{}",
        start_date=1.0,
        uid="u",
        progress=Progress(status="RUNNING"),
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


def _moved(execution: Execution, n: int, *, last_event_id: int | None = None) -> Transition:
    """`execution` moved on to state S<n>, with two events after its last (or `last_event_id`)."""
    base = execution if last_event_id is None else replace(execution, last_event_id=last_event_id)
    return Transition(
        base=base,
        progress=replace(execution.progress, state=f"S{n}", due_at=200.0 + n),
        events=(
            NewEvent(type="PassStateEntered", details={"n": n}, ts=2.0),
            NewEvent(type="PassStateExited", details={"n": n}, ts=2.0),
        ),
    )


async def test_transitions_committed_together_each_check_their_own_version(
    store: SqliteStore,
):
    """Transitions of one group commit are written together; of two made from the same
    version of one execution only the first is committed, the second answers None (changed
    meanwhile) and leaves no events; the others are committed with all their events."""
    definition_id = await store.put_definition("m", "{}")
    executions = [
        (await store.create_execution(_new(f"e{n}", definition_id)))[0] for n in range(20)
    ]
    twice = executions[7]
    results = await asyncio.gather(
        *(store.commit(_moved(e, n)) for n, e in enumerate(executions)),
        store.commit(replace(_moved(twice, 99), events=())),  # nothing else clashes
    )

    assert results[-1] is None
    for n, (before, after) in enumerate(zip(executions, results[:-1], strict=True)):
        assert after is not None
        assert (after.state, after.version, after.last_event_id) == (
            f"S{n}",
            before.version + 1,
            before.last_event_id + 2,
        )
        stored = await store.get_execution(before.id)
        assert stored == after
        events = await store.history(before.id, reverse=False, limit=1000, after=0)
        assert [(e.type, e.details) for e in events[-2:]] == [
            ("PassStateEntered", {"n": n}),
            ("PassStateExited", {"n": n}),
        ]
        assert len(events) == before.last_event_id + 2


async def test_a_transition_whose_events_cannot_be_written_fails_alone(store: SqliteStore):
    """A transition whose events clash with stored ones (its row read before they were
    written) fails with a StoreError naming the file; the others of its group commit, and
    the failed one's execution is left as it was."""
    definition_id = await store.put_definition("m", "{}")
    executions = [
        (await store.create_execution(_new(f"e{n}", definition_id)))[0] for n in range(10)
    ]
    clash = executions[3]
    results = await asyncio.gather(
        *(
            store.commit(_moved(e, n, last_event_id=0 if e is clash else None))
            for n, e in enumerate(executions)
        ),
        return_exceptions=True,
    )

    assert isinstance(results[3], StoreError)
    assert str(store.path) in str(results[3])
    assert await store.get_execution(clash.id) == clash
    assert (
        len(await store.history(clash.id, reverse=False, limit=1000, after=0))
        == clash.last_event_id
    )
    for n, execution in enumerate(executions):
        if execution is not clash:
            assert (await store.get_execution(execution.id)).state == f"S{n}"


def _stamp(path: Path, *, schema: int, record_format: str, written_by: str) -> None:
    conn = sqlite3.connect(path)
    conn.execute(f"PRAGMA user_version = {schema}")
    conn.execute(
        "UPDATE meta SET value = ? WHERE key = 'written_by'",
        (written_by,),
    )
    conn.execute("UPDATE meta SET value = ? WHERE key = 'record_format'", (record_format,))
    conn.commit()
    conn.close()


@pytest.mark.parametrize(
    ("schema", "record_format"),
    [(SCHEMA_VERSION + 1, str(FORMAT_VERSION)), (SCHEMA_VERSION, str(FORMAT_VERSION + 1))],
    ids=["newer schema", "newer record format"],
)
async def test_a_store_written_by_a_newer_stepd_is_refused_naming_both_versions(
    tmp_path: Path, schema: int, record_format: str
):
    """Opening a store a newer stepd wrote fails with both versions named, and changes
    nothing in it."""
    path = tmp_path / "stepd.db"
    store = SqliteStore(path)
    await store.open()
    await store.close()
    _stamp(path, schema=schema, record_format=record_format, written_by="9.4.1")
    before = path.read_bytes()
    with pytest.raises(StoreTooNew) as raised:
        await SqliteStore(path).open()
    message = str(raised.value)
    assert "stepd 9.4.1" in message
    assert f"this is stepd {__version__}" in message
    assert f"schema {schema}" in message
    assert path.read_bytes() == before
    assert refusal(path) is not None
    # the lock was released: an older stepd's refusal does not hold the file
    opened_again = SqliteStore(path)
    with pytest.raises(StoreTooNew):
        await opened_again.open()


async def test_a_store_of_stepd_0_1_is_migrated_and_its_executions_read(tmp_path: Path):
    """A store laid out by stepd 0.1 (schema 2, untyped pending records) opens, migrates,
    and its running executions read back as typed records."""
    path = tmp_path / "stepd.db"
    conn = sqlite3.connect(path)
    for script in MIGRATIONS[:2]:
        conn.executescript(script)
    conn.execute("PRAGMA user_version = 2")
    conn.execute(
        "INSERT INTO definitions (id, machine, sha256, body, created_at)"
        " VALUES (1, 'm', 'x', '{}', 1.0)"
    )
    conn.execute(
        "INSERT INTO executions (machine, name, definition_id, status, input, start_date, state,"
        " phase, data, pending, attempt, retry_counts, due_at, last_event_id, version)"
        " VALUES ('m', 'waiting', 1, 'RUNNING', '{}', 1.0, 'W', 'wait', '{}',"
        ' \'{"then": {"next": "T", "output": "{}"}}\', 0, \'[]\', 500.0, 2, 1),'
        " ('m', 'calling', 1, 'RUNNING', '{}', 1.0, 'T', 'task', '{}',"
        ' \'{"resource": "r", "payload": "{}", "timeout": null, "sent": true, "due": 400.0,'
        " \"sent_at\": 400.5}', 1, '[1]', 400.0, 5, 3)"
    )
    conn.commit()
    conn.close()
    store = SqliteStore(path)
    await store.open()
    try:
        waiting = await store.find_execution("m", "waiting")
        calling = await store.find_execution("m", "calling")
        assert waiting is not None
        assert calling is not None
        assert waiting.pending == WaitThen(next_state="T", output="{}")
        assert calling.task == TaskCall(
            resource="r", payload="{}", timeout_seconds=None, due=400.0, sent=True, sent_at=400.5
        )
        assert (calling.attempt, calling.retry_counts) == (1, (1,))
        moved = await store.commit(
            Transition(base=calling, progress=replace(calling.progress, status="SUCCEEDED"))
        )
        assert moved is not None
        assert await store.find_execution("m", "calling") == moved
    finally:
        await store.close()
    assert read_version(path) == StoreVersion(
        schema=SCHEMA_VERSION, record_format=FORMAT_VERSION, written_by=__version__
    )


async def test_a_store_of_schema_10_is_migrated_its_definitions_without_endpoints(
    tmp_path: Path,
):
    """A store written before definitions kept their endpoints (schema 10) opens at the current
    schema: its running execution reads back, its definition has no endpoints until it is put
    with some, and then has them."""
    path = tmp_path / "stepd.db"
    conn = sqlite3.connect(path)
    for script in MIGRATIONS[:10]:
        conn.executescript(script)
    conn.execute("PRAGMA user_version = 10")
    conn.execute(
        "INSERT INTO definitions (id, machine, sha256, body, created_at)"
        " VALUES (1, 'm', ?, '{}', 1.0)",
        (hashlib.sha256(b"{}").hexdigest(),),
    )
    conn.execute(
        "INSERT INTO executions (machine, name, definition_id, status, input, start_date, state,"
        " phase, data, due_at, last_event_id, uid)"
        " VALUES ('m', 'waiting', 1, 'RUNNING', '{}', 1.0, 'W', 'enter', '{}', 500.0, 1, 'u')"
    )
    conn.commit()
    conn.close()
    store = SqliteStore(path)
    await store.open()
    try:
        waiting = await store.find_execution("m", "waiting")
        before = await store.get_definition_endpoints(1)
        put_again = await store.put_definition("m", "{}", {"Call": "/call"})
        after = await store.get_definition_endpoints(1)
    finally:
        await store.close()
    assert waiting is not None
    assert (waiting.state, waiting.due_at, waiting.definition_id) == ("W", 500.0, 1)
    assert (before, put_again, after) == ({}, 1, {"Call": "/call"})
    assert read_version(path) == StoreVersion(
        schema=SCHEMA_VERSION, record_format=FORMAT_VERSION, written_by=__version__
    )


async def test_a_backup_of_a_store_in_use_holds_every_acknowledged_write(tmp_path: Path):
    """A backup taken while the store is open and being written has every write acknowledged
    before it began, opens as a store of this version, and leaves the original in use."""
    store = SqliteStore(tmp_path / "stepd.db")
    await store.open()
    try:
        definition_id = await store.put_definition("m", '{"StartAt":"A"}')
        before = [await store.create_execution(_new(f"e{n}", definition_id)) for n in range(20)]
        writing = asyncio.gather(
            *(store.create_execution(_new(f"late{n}", definition_id)) for n in range(50))
        )
        version = await asyncio.to_thread(backup, tmp_path / "stepd.db", tmp_path / "copy.db")
        await writing
        assert version.schema == SCHEMA_VERSION
        assert await store.find_execution("m", "late49") is not None
    finally:
        await store.close()
    copy = SqliteStore(tmp_path / "copy.db")
    await copy.open()
    try:
        for execution, _ in before:
            assert await copy.find_execution("m", execution.name) == execution
    finally:
        await copy.close()


def test_a_backup_never_overwrites_a_file(tmp_path: Path):
    """A target that exists is refused by name, and left as it was."""
    asyncio.run(_make_store(tmp_path / "stepd.db"))
    (tmp_path / "taken.db").write_text("mine", encoding="utf-8")
    with pytest.raises(StoreError, match="exists"):
        backup(tmp_path / "stepd.db", tmp_path / "taken.db")
    assert (tmp_path / "taken.db").read_text(encoding="utf-8") == "mine"
    with pytest.raises(StoreNotFound, match="no store there"):
        backup(tmp_path / "missing.db", tmp_path / "other.db")
    assert sorted(p.name for p in tmp_path.glob("*.db*")) == [
        "stepd.db",
        "stepd.db.lock",
        "taken.db",
    ]


async def test_executions_are_counted_by_status_without_taking_the_store_over(
    store: SqliteStore, tmp_path: Path
):
    """count_by_status reads a store a daemon holds open, and sees every acknowledged write;
    a file with no store is StoreNotFound, an empty database has no executions."""
    definition_id = await store.put_definition("m", "{}")
    for n in range(3):
        await store.create_execution(_new(f"e{n}", definition_id))
    assert await asyncio.to_thread(count_by_status, tmp_path / "stepd.db") == {"RUNNING": 3}
    with pytest.raises(StoreNotFound, match="no store there"):
        count_by_status(tmp_path / "missing.db")
    sqlite3.connect(tmp_path / "empty.db").close()
    assert count_by_status(tmp_path / "empty.db") == {}


async def _make_store(path: Path) -> None:
    store = SqliteStore(path)
    await store.open()
    await store.close()
