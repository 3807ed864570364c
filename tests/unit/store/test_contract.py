"""The store port's contract (stepd.store.base), held against every store.

Each test runs once per entry of BACKENDS: a store is added to the suite by writing its
`Backend` and adding one line there.
"""

from __future__ import annotations

import asyncio
import sqlite3
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import psycopg
import pytest
from tests.postgres_server import PostgresServer

from stepd import __version__
from stepd.errors import RecordError, StoreError, StoreTooNew
from stepd.store.base import Store
from stepd.store.formats import FORMAT_VERSION
from stepd.store.memory import MemoryDatabase, MemoryStore
from stepd.store.pg_schema import SCHEMA_VERSION as PG_SCHEMA_VERSION
from stepd.store.postgres import PostgresStore
from stepd.store.records import (
    ABORTED,
    FAILED,
    QUEUED,
    RUNNING,
    SUCCEEDED,
    TIMED_OUT,
    Activity,
    ActivityTask,
    ChildLink,
    Cursor,
    Execution,
    Fanout,
    NewEvent,
    NewExecution,
    Pending,
    Progress,
    TaskCall,
    Transition,
    WaitThen,
    notice_key,
)
from stepd.store.schema import SCHEMA_VERSION, StoreVersion
from stepd.store.sqlite import SqliteStore

NEWER_STEPD = "9.4.1"
# A pending record in a format this stepd does not read.
UNREADABLE_RECORD = '{"v": 99, "task": {}}'


@dataclass(frozen=True, kw_only=True)
class Backend:
    """One kind of store, and the ways round it that the suite needs."""

    new_store: Callable[[], Store]  # a new store object (not open) on the same data
    put_record: Callable[[int, str], Awaitable[None]]  # store raw text as a pending record
    make_newer: Callable[[str], Awaitable[None]]  # the data now says a newer stepd wrote it


@asynccontextmanager
async def sqlite_backend(tmp_path: Path) -> AsyncIterator[Backend]:
    path = tmp_path / "stepd.db"

    async def put_record(execution_id: int, text: str) -> None:
        with sqlite3.connect(path) as conn:
            conn.execute("UPDATE executions SET pending = ? WHERE id = ?", (text, execution_id))
        conn.close()

    async def make_newer(written_by: str) -> None:
        with sqlite3.connect(path) as conn:
            conn.execute(f"PRAGMA user_version = {SCHEMA_VERSION + 1}")
            conn.execute("UPDATE meta SET value = ? WHERE key = 'written_by'", (written_by,))
        conn.close()

    yield Backend(new_store=lambda: SqliteStore(path), put_record=put_record, make_newer=make_newer)


@asynccontextmanager
async def memory_backend(tmp_path: Path) -> AsyncIterator[Backend]:
    database = MemoryDatabase()

    async def put_record(execution_id: int, text: str) -> None:
        database.rows[execution_id] = replace(database.rows[execution_id], pending=text)

    async def make_newer(written_by: str) -> None:
        database.version = StoreVersion(
            schema=SCHEMA_VERSION + 1, record_format=FORMAT_VERSION, written_by=written_by
        )

    yield Backend(
        new_store=lambda: MemoryStore(database), put_record=put_record, make_newer=make_newer
    )


@asynccontextmanager
async def postgres_backend(
    tmp_path: Path, request: pytest.FixtureRequest
) -> AsyncIterator[Backend]:
    """A new database of the session's throwaway PostgreSQL server (tests/postgres_server.py)."""
    server: PostgresServer = request.getfixturevalue("postgres")
    url = await asyncio.to_thread(server.new_database)

    async def run(sql: str, params: tuple[Any, ...]) -> None:
        async with await psycopg.AsyncConnection.connect(url, autocommit=True) as conn:
            await conn.execute(sql.encode(), params)

    async def put_record(execution_id: int, text: str) -> None:
        await run("UPDATE executions SET pending = %s WHERE id = %s", (text, execution_id))

    async def make_newer(written_by: str) -> None:
        await run(
            "UPDATE meta SET value = CASE key WHEN 'schema' THEN %s ELSE %s END"
            " WHERE key IN ('schema', 'written_by')",
            (str(PG_SCHEMA_VERSION + 1), written_by),
        )

    yield Backend(
        new_store=lambda: PostgresStore(url), put_record=put_record, make_newer=make_newer
    )


BACKENDS = [
    pytest.param(sqlite_backend, id="sqlite"),
    pytest.param(memory_backend, id="memory"),
    pytest.param(postgres_backend, id="postgres"),
]


@pytest.fixture(params=BACKENDS)
async def backend(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[Backend]:
    if request.param is postgres_backend:
        async with postgres_backend(tmp_path, request) as made:
            yield made
        return
    async with request.param(tmp_path) as made:
        yield made


@pytest.fixture
async def store(backend: Backend) -> AsyncIterator[Store]:
    opened = backend.new_store()
    await opened.open()
    yield opened
    await opened.close()


# -- helpers --------------------------------------------------------------------------------

TASK = TaskCall(
    resource={"Fn::GetAtt": ["Start", "Arn"]},
    payload='{"room":"Phòng 1"}',
    timeout_seconds=10.0,
    due=1_800_000_010.25,
    first_due=1_800_000_008.5,
    sent=True,
    sent_at=1_800_000_010.75,
)


FANOUT = Fanout(
    kind="Map",
    total=10,
    started_event=4,
    limit=3,
    next_slot=5,
    running=3,
    succeeded=1,
    failed=1,
    tolerated_count=2,
    tolerated_percentage=25.5,
)


def child(parent: str, slot: int, status: str = RUNNING, **changes: Any) -> Cursor:
    """A child cursor of `parent` started by event 4."""
    fields: dict[str, Any] = {
        "status": status,
        "state": "B",
        "phase": "task" if status == RUNNING else None,
        "data": f'{{"item": {slot}}}',
        "pending": TASK if status == RUNNING else None,
        "due_at": 7.0 if status == RUNNING else None,
    }
    return Cursor(id=f"{parent}/4:{slot}", parent=parent, slot=slot, **{**fields, **changes})


def running(due_at: float | None = 100.0, **changes: Any) -> Progress:
    progress = Progress(status=RUNNING, state="A", phase="enter", data="{}", due_at=due_at)
    return replace(progress, **changes)


def closed(status: str = SUCCEEDED, stop_date: float = 50.0) -> Progress:
    return Progress(status=status, stop_date=stop_date, output="{}")


def new(
    name: str,
    definition_id: int,
    progress: Progress | None = None,
    *,
    machine: str = "m",
    events: int = 1,
) -> NewExecution:
    return NewExecution(
        machine=machine,
        name=name,
        definition_id=definition_id,
        input='{"start": "2027-01-15T08:00:10Z"}',
        start_date=1.0,
        uid=f"uid-{machine}-{name}",
        progress=progress or running(),
        events=tuple(NewEvent(type=f"E{n}", details={"n": n}, ts=1.0) for n in range(events)),
    )


def event(kind: str, **details: Any) -> NewEvent:
    return NewEvent(type=kind, details=details, ts=2.0)


async def definition(store: Store, machine: str = "m") -> int:
    return await store.put_definition(machine, '{"StartAt": "A"}')


async def create(store: Store, name: str, progress: Progress | None = None, **kw: Any) -> Execution:
    execution, created = await store.create_execution(
        new(name, await definition(store, kw.get("machine", "m")), progress, **kw)
    )
    assert created
    return execution


async def move(
    store: Store, execution: Execution, progress: Progress, *events: NewEvent
) -> Execution:
    moved = await store.commit(Transition(base=execution, progress=progress, events=events))
    assert moved is not None
    return moved


async def event_ids(store: Store, execution_id: int, **kw: Any) -> list[int]:
    options: dict[str, Any] = {"reverse": False, "limit": 100, "after": None, **kw}
    return [e.id for e in await store.history(execution_id, **options)]


async def names(store: Store, **kw: Any) -> list[str]:
    options: dict[str, Any] = {"machine": None, "status": None, "limit": 100, "before_id": None}
    return [e.name for e in await store.list_executions(**{**options, **kw})]


# -- what every method promises -------------------------------------------------------------


async def test_an_acknowledged_write_is_there_after_closing_and_opening_again(
    backend: Backend,
) -> None:
    """What a write acknowledged is read back by the next store opened on the same data."""
    first = backend.new_store()
    await first.open()
    execution = await create(first, "one")
    moved = await move(first, execution, running(due_at=200.0), event("Next", x=1))
    await first.close()
    again = backend.new_store()
    await again.open()
    try:
        assert await again.find_execution("m", "one") == moved
        assert await event_ids(again, moved.id) == [1, 2]
    finally:
        await again.close()


async def test_a_read_after_a_write_sees_it(store: Store) -> None:
    """The execution a commit returns is what the next read returns."""
    execution = await create(store, "one")
    moved = await move(store, execution, running(due_at=5.0, attempt=2, retry_counts=(1, 2)))
    assert await store.get_execution(execution.id) == moved


async def test_concurrent_commits_from_one_version_apply_exactly_once(store: Store) -> None:
    """Of transitions computed from the same version, one applies and the others get None."""
    execution = await create(store, "one")
    results = await asyncio.gather(
        *(
            store.commit(Transition(base=execution, progress=closed(stop_date=float(n))))
            for n in range(5)
        )
    )
    applied = [result for result in results if result is not None]
    assert (len(applied), await store.get_execution(execution.id)) == (1, applied[0])


async def test_events_are_numbered_in_commit_order_each_naming_the_one_before(
    store: Store,
) -> None:
    """History ids run 1..n across commits and each previous_id is the id before."""
    execution = await create(store, "one", events=2)
    moved = await move(store, execution, running(), event("A"), event("B"))
    await move(store, moved, running(), event("C"))
    history = await store.history(execution.id, reverse=False, limit=100, after=None)
    assert [(e.id, e.previous_id, e.type) for e in history] == [
        (1, 0, "E0"),
        (2, 1, "E1"),
        (3, 2, "A"),
        (4, 3, "B"),
        (5, 4, "C"),
    ]


async def test_changing_returned_details_changes_nothing_stored(store: Store) -> None:
    """Event details are decoded afresh on each read."""
    execution = await create(store, "one")
    (first,) = await store.history(execution.id, reverse=False, limit=1, after=None)
    first.details["n"] = "changed"
    (again,) = await store.history(execution.id, reverse=False, limit=1, after=None)
    assert again.details == {"n": 0}


async def test_instants_texts_and_records_read_back_exactly(store: Store) -> None:
    """Floats, unicode texts, JSON details and typed pending records come back as written."""
    progress = Progress(
        status=RUNNING,
        state="Phòng ☃",
        phase="task",
        data='{"note": "naïve \\u2028 line"}',
        pending=TASK,
        state_entered_event=3,
        state_entered_at=1_800_000_000.123456,
        attempt=1,
        retry_counts=(1, 0),
        due_at=1_800_000_010.000001,
        variables='{"greeting":"Chào","n":[1,2.5,null]}',
    )
    details = {"nested": [1, 2.5, None, True, {"ü": "ß"}], "big": 2**53}
    execution = await create(store, "exact", progress)
    await move(store, execution, progress, event("Details", **details))
    found = await store.get_execution(execution.id)
    assert found is not None
    assert found.progress == progress
    assert found.input == '{"start": "2027-01-15T08:00:10Z"}'
    (last,) = await store.history(execution.id, reverse=True, limit=1, after=None)
    assert (last.details, last.ts) == (details, 2.0)


@pytest.mark.parametrize(
    "pending",
    [
        pytest.param(TASK, id="task"),
        pytest.param(WaitThen(next_state="B", output='{"x": 1}'), id="wait"),
        pytest.param(WaitThen(next_state=None, output="null"), id="wait-then-end"),
        pytest.param(None, id="none"),
        pytest.param(FANOUT, id="fanout"),
        pytest.param(
            Fanout(kind="Parallel", total=2, started_event=3, limit=2, retry_at=12.5),
            id="fanout-retrying",
        ),
    ],
)
async def test_each_kind_of_pending_record_reads_back_as_written(
    store: Store, pending: Pending
) -> None:
    """Whatever an execution keeps for its next action is read back equal, by every read."""
    execution = await create(store, "one", running(pending=pending))
    moved = await move(store, execution, running(due_at=9.0, pending=pending))
    assert [await store.get_execution(execution.id), await store.find_execution("m", "one")] == [
        moved,
        moved,
    ]
    assert moved.pending == pending


async def test_a_write_whose_details_are_not_json_raises_and_writes_nothing(
    store: Store,
) -> None:
    """A transition is all or nothing: its progress is not written without its events."""
    execution = await create(store, "one")
    with pytest.raises(TypeError):
        await store.commit(
            Transition(base=execution, progress=closed(), events=(event("Bad", x={1, 2}),))
        )
    assert (await store.get_execution(execution.id), await event_ids(store, execution.id)) == (
        execution,
        [1],
    )


CALLS: list[Any] = [
    pytest.param(lambda s: s.put_definition("m", "{}"), id="put_definition"),
    pytest.param(lambda s: s.first_registered("m"), id="first_registered"),
    pytest.param(lambda s: s.get_definition(1), id="get_definition"),
    pytest.param(lambda s: s.get_definition_endpoints(1), id="get_definition_endpoints"),
    pytest.param(lambda s: s.create_execution(new("x", 1)), id="create_execution"),
    pytest.param(lambda s: s.get_execution(1), id="get_execution"),
    pytest.param(lambda s: s.find_execution("m", "x"), id="find_execution"),
    pytest.param(
        lambda s: s.list_executions(machine=None, status=None, limit=1, before_id=None),
        id="list_executions",
    ),
    pytest.param(lambda s: s.history(1, reverse=False, limit=1, after=None), id="history"),
    pytest.param(lambda s: s.due(1.0, 1), id="due"),
    pytest.param(lambda s: s.purge_closed(1.0, 1), id="purge_closed"),
    pytest.param(lambda s: s.count_by_status(), id="count_by_status"),
    pytest.param(lambda s: s.create_activity("a", 1.0), id="create_activity"),
    pytest.param(lambda s: s.delete_activity("a"), id="delete_activity"),
    pytest.param(lambda s: s.list_activities(), id="list_activities"),
    pytest.param(lambda s: s.queue_activity_task(queued("a", "t")), id="queue_activity_task"),
    pytest.param(lambda s: s.take_activity_task("a"), id="take_activity_task"),
    pytest.param(lambda s: s.link_child(ChildLink(child_id=2, parent_id=1, mode="")), id="link"),
    pytest.param(lambda s: s.child_links(parent_id=1), id="child_links"),
    pytest.param(lambda s: s.live_links(1), id="live_links"),
    pytest.param(lambda s: s.put_tags("arn:a", {"k": "v"}, 50), id="put_tags"),
    pytest.param(lambda s: s.remove_tags("arn:a", ["k"]), id="remove_tags"),
    pytest.param(lambda s: s.tags_of("arn:a"), id="tags_of"),
]


@pytest.mark.parametrize("call", CALLS)
async def test_every_method_raises_store_error_before_open(
    backend: Backend, call: Callable[[Store], Awaitable[Any]]
) -> None:
    """A store that was never opened cannot be used."""
    with pytest.raises(StoreError):
        await call(backend.new_store())


@pytest.mark.parametrize("call", CALLS)
async def test_every_method_raises_store_error_after_close(
    backend: Backend, call: Callable[[Store], Awaitable[Any]]
) -> None:
    """A closed store cannot be used."""
    store = backend.new_store()
    await store.open()
    await store.close()
    with pytest.raises(StoreError):
        await call(store)


@pytest.mark.parametrize(
    "read",
    [
        pytest.param(lambda s, e: s.get_execution(e.id), id="get_execution"),
        pytest.param(lambda s, e: s.find_execution(e.machine, e.name), id="find_execution"),
        pytest.param(
            lambda s, e: s.list_executions(machine=None, status=None, limit=5, before_id=None),
            id="list_executions",
        ),
        pytest.param(
            lambda s, e: s.create_execution(new(e.name, e.definition_id)), id="create_existing"
        ),
    ],
)
async def test_a_record_this_stepd_cannot_read_raises_record_error_naming_the_execution(
    backend: Backend, store: Store, read: Callable[[Store, Execution], Awaitable[Any]]
) -> None:
    """A pending record in a newer format is refused, never read as a default."""
    execution = await create(store, "unreadable")
    await backend.put_record(execution.id, UNREADABLE_RECORD)
    with pytest.raises(RecordError, match="m/unreadable"):
        await read(store, execution)


# -- open and close -------------------------------------------------------------------------


async def test_open_refuses_a_store_written_by_a_newer_stepd_naming_both_versions(
    backend: Backend,
) -> None:
    """StoreTooNew names the stepd that wrote the store and this one."""
    first = backend.new_store()
    await first.open()
    await first.close()
    await backend.make_newer(NEWER_STEPD)
    with pytest.raises(StoreTooNew) as raised:
        await backend.new_store().open()
    assert f"stepd {NEWER_STEPD}" in str(raised.value)
    assert f"this is stepd {__version__}" in str(raised.value)


async def test_a_refused_open_changes_nothing_and_holds_nothing(backend: Backend) -> None:
    """After a refusal the store is as it was: opening again meets the same refusal."""
    first = backend.new_store()
    await first.open()
    await first.close()
    await backend.make_newer(NEWER_STEPD)
    with pytest.raises(StoreTooNew):
        await backend.new_store().open()
    with pytest.raises(StoreTooNew, match=f"stepd {NEWER_STEPD}"):
        await backend.new_store().open()


async def test_close_lets_the_writes_already_issued_finish(backend: Backend) -> None:
    """When close returns, the writes issued before it are acknowledged and stored."""
    store = backend.new_store()
    await store.open()
    definition_id = await definition(store)
    writes = [
        asyncio.create_task(store.create_execution(new(f"e{n}", definition_id))) for n in range(5)
    ]
    await asyncio.sleep(0)  # each write is issued
    await store.close()
    again = backend.new_store()
    await again.open()
    try:
        found = [await again.find_execution("m", f"e{n}") for n in range(5)]
    finally:
        await again.close()
    assert found == [execution for execution, _ in await asyncio.gather(*writes)]


async def test_closing_a_store_that_is_not_open_does_nothing(backend: Backend) -> None:
    """Close before open, and close twice, neither fail."""
    never_opened = backend.new_store()
    await never_opened.close()
    store = backend.new_store()
    await store.open()
    await store.close()
    await store.close()


# -- definitions ----------------------------------------------------------------------------


async def test_the_same_body_of_a_machine_is_stored_once(store: Store) -> None:
    """Putting a machine's body again returns the id it already has."""
    first = await store.put_definition("m", '{"a": 1}')
    assert await store.put_definition("m", '{"a": 1}') == first


async def test_another_body_or_another_machine_gets_another_id(store: Store) -> None:
    """Ids are positive and unique: per (machine, body)."""
    ids = [
        await store.put_definition("m", '{"a": 1}'),
        await store.put_definition("m", '{"a": 2}'),
        await store.put_definition("n", '{"a": 1}'),
    ]
    assert (len(set(ids)), all(i > 0 for i in ids)) == (3, True)


async def test_a_definition_reads_back_exactly_as_put(store: Store) -> None:
    """The body is kept byte for byte, whitespace and unicode included."""
    body = '{\n  "Comment": "Phòng ☃",\t"StartAt": "A"\n}\n'
    assert await store.get_definition(await store.put_definition("m", body)) == body


async def test_an_unknown_definition_raises_store_error(store: Store) -> None:
    """get_definition of an id no definition has fails."""
    with pytest.raises(StoreError):
        await store.get_definition(12345)


async def test_a_definition_put_without_endpoints_has_none(store: Store) -> None:
    """A definition put with no endpoints (as stepd 0.1 put them) reads back none."""
    assert await store.get_definition_endpoints(await store.put_definition("m", "{}")) == {}


async def test_endpoints_read_back_with_their_definition_only(store: Store) -> None:
    """The endpoints put with a definition are its own: another body, or the same body under
    another machine, has its own."""
    first = await store.put_definition("m", '{"a": 1}', {"Call": "/call", "Ping": "https://x/p"})
    other_body = await store.put_definition("m", '{"a": 2}', {"Call": "/other"})
    other_machine = await store.put_definition("n", '{"a": 1}')
    assert [
        await store.get_definition_endpoints(definition_id)
        for definition_id in (first, other_body, other_machine)
    ] == [{"Call": "/call", "Ping": "https://x/p"}, {"Call": "/other"}, {}]


async def test_endpoints_put_again_are_merged_the_newest_value_of_a_state_winning(
    store: Store,
) -> None:
    """Putting a definition again merges its endpoints: a state named again gets the new
    value, the others keep theirs, and a put without endpoints changes nothing; the id stays."""
    definition_id = await store.put_definition("m", "{}", {"Call": "/call", "Ping": "/ping"})
    again = await store.put_definition("m", "{}", {"Ping": "/ping/v2", "Stop": "/stop"})
    unchanged = await store.put_definition("m", "{}")
    assert (again, unchanged) == (definition_id, definition_id)
    assert await store.get_definition_endpoints(definition_id) == {
        "Call": "/call",
        "Ping": "/ping/v2",
        "Stop": "/stop",
    }


async def test_endpoints_of_a_definition_stored_without_any_are_added_later(store: Store) -> None:
    """A definition stored without endpoints (by an older stepd) gets them when put with them."""
    definition_id = await store.put_definition("m", "{}")
    assert await store.put_definition("m", "{}", {"Call": "/call"}) == definition_id
    assert await store.get_definition_endpoints(definition_id) == {"Call": "/call"}


async def test_concurrent_puts_of_one_definition_keep_every_state(store: Store) -> None:
    """Puts of one definition made together lose no state's endpoint."""
    ids = await asyncio.gather(
        *(store.put_definition("m", "{}", {f"S{n}": f"/s{n}"}) for n in range(8))
    )
    assert len(set(ids)) == 1
    assert await store.get_definition_endpoints(ids[0]) == {f"S{n}": f"/s{n}" for n in range(8)}


async def test_endpoints_of_an_unknown_definition_raise_store_error(store: Store) -> None:
    """get_definition_endpoints of an id no definition has fails."""
    with pytest.raises(StoreError):
        await store.get_definition_endpoints(12345)


async def test_first_registered_is_when_the_first_definition_was_stored(store: Store) -> None:
    """It is the first put's time, and later puts do not move it."""
    before = time.time()
    await store.put_definition("m", '{"a": 1}')
    after = time.time()
    first = await store.first_registered("m")
    await store.put_definition("m", '{"a": 2}')
    assert first is not None
    assert (before <= first <= after, await store.first_registered("m")) == (True, first)


async def test_first_registered_is_none_for_a_machine_never_stored(store: Store) -> None:
    """A machine without definitions has no registration time."""
    await store.put_definition("m", "{}")
    assert await store.first_registered("other") is None


# -- create_execution -----------------------------------------------------------------------


async def test_a_created_execution_is_stored_as_given_at_version_0(store: Store) -> None:
    """Identity and progress as given, version 0, last_event_id the number of events."""
    definition_id = await definition(store)
    given = new("one", definition_id, running(pending=TASK, phase="task"), events=3)
    execution, created = await store.create_execution(given)
    assert created
    assert (execution.id > 0, execution.version, execution.last_event_id) == (True, 0, 3)
    assert (execution.machine, execution.name, execution.definition_id) == (
        "m",
        "one",
        definition_id,
    )
    assert (execution.input, execution.start_date, execution.uid) == (
        given.input,
        given.start_date,
        given.uid,
    )
    assert execution.progress == given.progress
    assert await store.get_execution(execution.id) == execution


async def test_the_first_events_are_numbered_from_one(store: Store) -> None:
    """A new execution's events are 1..n with previous ids 0..n-1."""
    execution = await create(store, "one", events=3)
    history = await store.history(execution.id, reverse=False, limit=10, after=None)
    assert [(e.id, e.previous_id, e.type, e.details) for e in history] == [
        (1, 0, "E0", {"n": 0}),
        (2, 1, "E1", {"n": 1}),
        (3, 2, "E2", {"n": 2}),
    ]


@pytest.mark.parametrize("status", [RUNNING, SUCCEEDED, ABORTED], ids=str.lower)
async def test_creating_an_existing_name_returns_it_and_writes_nothing(
    store: Store, status: str
) -> None:
    """(machine, name) is unique in any status: a second create gets the stored one, False."""
    execution = await create(store, "dup")
    if status != RUNNING:
        execution = await move(store, execution, closed(status), event("Closed"))
    other = new("dup", execution.definition_id, running(due_at=5.0), events=4)
    assert await store.create_execution(other) == (execution, False)
    assert await event_ids(store, execution.id) == list(range(1, execution.last_event_id + 1))


async def test_concurrent_creates_of_one_name_create_it_once(store: Store) -> None:
    """Of creates racing for one (machine, name), one creates it; all get the same id."""
    definition_id = await definition(store)
    results = await asyncio.gather(
        *(store.create_execution(new("race", definition_id)) for _ in range(10))
    )
    assert sorted(created for _, created in results) == [False] * 9 + [True]
    assert len({execution.id for execution, _ in results}) == 1


async def test_the_same_name_under_another_machine_is_another_execution(store: Store) -> None:
    """Names are unique per machine only."""
    first = await create(store, "same", machine="m")
    second = await create(store, "same", machine="n")
    assert first.id != second.id


async def test_an_execution_created_later_gets_a_larger_id(store: Store) -> None:
    """Ids grow with creation, which is what newest-first listing orders by."""
    ids = [(await create(store, f"e{n}")).id for n in range(5)]
    assert ids == sorted(ids)
    assert len(set(ids)) == 5


async def test_an_unknown_definition_raises_store_error_and_writes_nothing(store: Store) -> None:
    """An execution must name a stored definition."""
    with pytest.raises(StoreError):
        await store.create_execution(new("orphan", 999))
    assert (await store.find_execution("m", "orphan"), await store.count_by_status()) == (None, {})


# -- commit ---------------------------------------------------------------------------------


async def test_a_commit_replaces_the_whole_progress_and_moves_the_version_by_one(
    store: Store,
) -> None:
    """Every progress field is the transition's; identity stays; version + 1."""
    execution = await create(store, "one", running(pending=TASK, phase="task", attempt=2))
    target = Progress(status=FAILED, stop_date=60.0, error="States.Timeout", cause="slow")
    moved = await move(store, execution, target, event("ExecutionFailed"))
    assert moved.progress == target
    assert (moved.version, moved.last_event_id) == (1, 2)
    assert (moved.id, moved.machine, moved.name, moved.input, moved.start_date) == (
        execution.id,
        execution.machine,
        execution.name,
        execution.input,
        execution.start_date,
    )


async def test_commits_that_change_some_fields_read_back_as_they_returned(store: Store) -> None:
    """Fields a commit leaves as they were, and those it changes, read back from the store as
    the commit returned them, commit after commit."""
    execution = await create(store, "one", running(pending=TASK, phase="task", attempt=2))
    moves = (
        lambda p: replace(p, state="Next", data='{"b":1}'),
        lambda p: replace(p, pending=replace(TASK, sent=True, sent_at=3.0), retry_counts=(1, 2)),
        lambda p: replace(p, attempt=0, retry_counts=(), variables='{"x":1}', due_at=None),
        lambda p: replace(closed(FAILED), state=p.state, error="E", cause="c", pending=None),
    )
    for change in moves:
        execution = await move(store, execution, change(execution.progress), event("Step"))
        assert await store.get_execution(execution.id) == execution


async def test_a_commit_that_changes_nothing_still_moves_the_version(store: Store) -> None:
    """An empty transition is a write: the version moves, no event is added."""
    execution = await create(store, "one")
    moved = await move(store, execution, execution.progress)
    assert (moved.version, moved.last_event_id, await event_ids(store, execution.id)) == (
        1,
        1,
        [1],
    )


async def test_a_commit_from_a_stale_version_writes_nothing(store: Store) -> None:
    """A transition computed from an old read is refused, so a stop is never overwritten."""
    execution = await create(store, "one")
    stopped = await move(store, execution, closed(ABORTED), event("ExecutionAborted"))
    stale = await store.commit(
        Transition(base=execution, progress=closed(SUCCEEDED), events=(event("Late"),))
    )
    assert stale is None
    assert (await store.get_execution(execution.id), await event_ids(store, execution.id)) == (
        stopped,
        [1, 2],
    )


async def test_a_commit_to_a_purged_execution_returns_none(store: Store) -> None:
    """An execution that is gone cannot be moved on."""
    execution = await create(store, "one")
    stopped = await move(store, execution, closed(stop_date=10.0))
    assert await store.purge_closed(20.0, 10) == 1
    assert await store.commit(Transition(base=stopped, progress=closed(stop_date=11.0))) is None
    assert await store.get_execution(execution.id) is None


# -- reading executions ---------------------------------------------------------------------


async def test_an_unknown_execution_reads_as_none(store: Store) -> None:
    """get_execution and find_execution return None for what is not there."""
    await create(store, "one")
    assert (await store.get_execution(999), await store.find_execution("m", "two")) == (None, None)


async def test_find_execution_finds_by_machine_and_name(store: Store) -> None:
    """The (machine, name) key finds the one execution, not its namesake elsewhere."""
    mine = await create(store, "same", machine="m")
    await create(store, "same", machine="n")
    assert await store.find_execution("m", "same") == mine


async def test_listing_is_newest_first(store: Store) -> None:
    """Executions come largest id first."""
    for n in range(4):
        await create(store, f"e{n}")
    assert await names(store) == ["e3", "e2", "e1", "e0"]


@pytest.mark.parametrize(
    ("filters", "expected"),
    [
        pytest.param({}, ["n-done", "n-run", "m-done", "m-run"], id="all"),
        pytest.param({"machine": "m"}, ["m-done", "m-run"], id="machine"),
        pytest.param({"status": SUCCEEDED}, ["n-done", "m-done"], id="status"),
        pytest.param({"machine": "n", "status": RUNNING}, ["n-run"], id="both"),
        pytest.param({"machine": "nope"}, [], id="no-match"),
        pytest.param({"limit": 2}, ["n-done", "n-run"], id="limit"),
    ],
)
async def test_listing_filters_by_machine_and_status(
    store: Store, filters: dict[str, Any], expected: list[str]
) -> None:
    """Only executions of the given machine and status; at most `limit` of them."""
    for machine in ("m", "n"):
        await create(store, f"{machine}-run", machine=machine)
        done = await create(store, f"{machine}-done", machine=machine)
        await move(store, done, closed())
    assert await names(store, **filters) == expected


async def test_pages_continue_from_the_last_id_without_repeats(store: Store) -> None:
    """Passing a page's last id as before_id gives the next; a short page is the last."""
    for n in range(7):
        await create(store, f"e{n}")
    pages: list[list[str]] = []
    before: int | None = None
    while True:
        page = await store.list_executions(machine=None, status=None, limit=3, before_id=before)
        pages.append([e.name for e in page])
        if len(page) < 3:
            break
        before = page[-1].id
    assert pages == [["e6", "e5", "e4"], ["e3", "e2", "e1"], ["e0"]]


async def test_an_execution_created_while_paging_is_not_in_later_pages(store: Store) -> None:
    """Later pages hold only ids below the last one seen."""
    for n in range(4):
        await create(store, f"e{n}")
    first = await store.list_executions(machine=None, status=None, limit=2, before_id=None)
    await create(store, "newcomer")
    assert await names(store, before_id=first[-1].id) == ["e1", "e0"]


# -- history --------------------------------------------------------------------------------


async def test_history_is_in_id_order_or_newest_first_when_reversed(store: Store) -> None:
    """reverse turns the order round."""
    execution = await create(store, "one", events=4)
    assert (
        await event_ids(store, execution.id),
        await event_ids(store, execution.id, reverse=True),
    ) == ([1, 2, 3, 4], [4, 3, 2, 1])


@pytest.mark.parametrize(
    ("reverse", "pages"),
    [
        pytest.param(False, [[1, 2], [3, 4], [5]], id="forward"),
        pytest.param(True, [[5, 4], [3, 2], [1]], id="reversed"),
    ],
)
async def test_history_pages_continue_after_the_last_event_id(
    store: Store, reverse: bool, pages: list[list[int]]
) -> None:
    """Passing a page's last id as `after` gives the next page in the same order."""
    execution = await create(store, "one", events=5)
    seen: list[list[int]] = []
    after: int | None = None
    while True:
        page = await event_ids(store, execution.id, reverse=reverse, limit=2, after=after)
        seen.append(page)
        if len(page) < 2:
            break
        after = page[-1]
    assert seen == pages


async def test_history_pages_agree_with_the_whole_history_from_any_event(
    store: Store,
) -> None:
    """Events appended by commits of different sizes page the same from every `after`, in
    both orders and at every page size, and the execution read back has the last id."""
    execution = await create(store, "one", events=2)
    for size, state in ((1, "a"), (3, "b"), (2, "c"), (4, "d")):
        events = [event(f"{state}{n}", n=n) for n in range(size)]
        moved = await move(store, execution, running(state=state), *events)
        assert await store.get_execution(execution.id) == moved
        execution = moved
    whole = await store.history(execution.id, reverse=False, limit=100, after=None)
    assert [(e.id, e.previous_id) for e in whole] == [(n, n - 1) for n in range(1, 13)]
    assert whole[-1].type == "d3"
    assert whole[-1].details == {"n": 3}
    newest_first = whole[::-1]
    for limit in range(1, 6):
        for after in [None, *range(14)]:
            forward = [e for e in whole if after is None or e.id > after][:limit]
            backward = [e for e in newest_first if after is None or e.id < after][:limit]
            assert (
                await store.history(execution.id, reverse=False, limit=limit, after=after)
                == forward
            ), (limit, after)
            assert (
                await store.history(execution.id, reverse=True, limit=limit, after=after)
                == backward
            ), (limit, after)


async def test_an_unknown_execution_has_no_history(store: Store) -> None:
    """history of an id with no execution is empty."""
    assert await store.history(999, reverse=False, limit=10, after=None) == []


# -- due ------------------------------------------------------------------------------------


async def test_due_lists_executions_due_strictly_before_earliest_first(store: Store) -> None:
    """Only due_at < before, earliest first; executions without due_at never."""
    made = {}
    for name, due_at in (("late", 30.0), ("early", 10.0), ("never", None), ("at", 25.0)):
        made[name] = await create(store, name, running(due_at=due_at))
    made["mid"] = await create(store, "mid", running(due_at=20.0))
    assert await store.due(25.0, 10) == [(made["early"].id, 10.0), (made["mid"].id, 20.0)]


async def test_equally_due_executions_come_by_id(store: Store) -> None:
    """Ties in due_at are broken by the smaller id first."""
    ids = [(await create(store, f"e{n}", running(due_at=10.0))).id for n in range(4)]
    assert [execution_id for execution_id, _ in await store.due(11.0, 10)] == ids


async def test_due_returns_at_most_limit_the_earliest(store: Store) -> None:
    """The limit keeps the earliest ones."""
    for n, due_at in enumerate((5.0, 3.0, 4.0, 1.0, 2.0)):
        await create(store, f"e{n}", running(due_at=due_at))
    assert [due_at for _, due_at in await store.due(100.0, 3)] == [1.0, 2.0, 3.0]


async def test_due_goes_by_due_at_whatever_the_status(store: Store) -> None:
    """The store does not look at the status: a due_at is what makes an execution due."""
    execution = await create(store, "odd")
    await move(store, execution, replace(closed(FAILED), due_at=7.0))
    assert await store.due(10.0, 10) == [(execution.id, 7.0)]


async def test_due_claims_nothing(store: Store) -> None:
    """Reading what is due twice gives the same answer."""
    await create(store, "one", running(due_at=1.0))
    assert await store.due(10.0, 10) == await store.due(10.0, 10)


# -- purge_closed ---------------------------------------------------------------------------


async def test_purge_deletes_executions_closed_before_with_their_history(store: Store) -> None:
    """A closed execution that stopped before `before` is gone, events and all."""
    execution = await create(store, "old", events=3)
    await move(store, execution, closed(stop_date=10.0), event("ExecutionSucceeded"))
    assert await store.purge_closed(11.0, 100) == 1
    assert (await store.get_execution(execution.id), await event_ids(store, execution.id)) == (
        None,
        [],
    )


@pytest.mark.parametrize(
    "progress",
    [
        pytest.param(running(due_at=1.0), id="running"),
        pytest.param(Progress(status=RUNNING, stop_date=1.0), id="running-with-a-stop-date"),
        pytest.param(closed(stop_date=20.0), id="stopped-at-before"),
        pytest.param(closed(stop_date=30.0), id="stopped-after-before"),
        pytest.param(replace(closed(stop_date=1.0), due_at=5.0), id="closed-with-a-due-at"),
        pytest.param(Progress(status=FAILED), id="closed-without-a-stop-date"),
    ],
)
async def test_purge_keeps_what_is_not_closed_before(store: Store, progress: Progress) -> None:
    """Running executions, and closed ones that stopped at `before` or later, stay."""
    execution = await create(store, "kept")
    kept = await move(store, execution, progress)
    assert (await store.purge_closed(20.0, 100), await store.get_execution(kept.id)) == (0, kept)


async def test_purge_deletes_at_most_limit_earliest_stopped_first(store: Store) -> None:
    """One call deletes up to `limit`, those that stopped first."""
    for name, stop_date in (("c", 3.0), ("a", 1.0), ("d", 4.0), ("b", 2.0)):
        execution = await create(store, name)
        await move(store, execution, closed(stop_date=stop_date))
    assert await store.purge_closed(10.0, 2) == 2
    assert await names(store) == ["d", "c"]


async def test_purge_returns_fewer_than_limit_once_none_is_left(store: Store) -> None:
    """Calling until a short count deletes every one."""
    for n in range(5):
        execution = await create(store, f"e{n}")
        await move(store, execution, closed(stop_date=float(n)))
    counts = []
    while not counts or counts[-1] == 2:
        counts.append(await store.purge_closed(10.0, 2))
    assert (counts, await store.count_by_status()) == ([2, 2, 1], {})


async def test_a_purged_name_is_free_for_a_new_execution(store: Store) -> None:
    """After a purge, the same (machine, name) creates a new execution."""
    execution = await create(store, "again")
    await move(store, execution, closed(stop_date=1.0))
    await store.purge_closed(2.0, 10)
    _, created = await store.create_execution(new("again", execution.definition_id))
    assert created


# -- count_by_status ------------------------------------------------------------------------


async def test_count_by_status_counts_each_status_present(store: Store) -> None:
    """Statuses no execution has are absent."""
    assert await store.count_by_status() == {}
    for n in range(3):
        await create(store, f"run{n}")
    done = await create(store, "done")
    await move(store, done, closed(ABORTED))
    assert await store.count_by_status() == {RUNNING: 3, ABORTED: 1}


# -- cursors ----------------------------------------------------------------------------------


async def test_cursors_created_with_an_execution_read_back_exactly(store: Store) -> None:
    """An execution's first child cursors are stored with it, each record read back equal."""
    children = (
        replace(child("", 0), variables='{"outer":1}'),
        child("", 1, QUEUED),
        child("", 2, SUCCEEDED, output="[1]"),
    )
    made, created = await store.create_execution(
        replace(new("one", await definition(store), running(pending=FANOUT)), cursors=children)
    )
    assert created
    assert await store.running_cursors(made.id) == [children[0]]
    assert [await store.get_cursor(made.id, c.id) for c in children] == list(children)
    assert await store.finished_children(made.id, "") == [children[2]]


async def test_a_commit_stores_and_replaces_cursors_with_the_execution(store: Store) -> None:
    """Cursors written by a transition appear with it, replacing those of the same id."""
    execution = await create(store, "one", running(pending=FANOUT))
    first = (child("", 0), child("", 1))
    moved = await store.commit(
        Transition(base=execution, progress=execution.progress, cursors=first)
    )
    assert moved is not None
    done = child("", 0, SUCCEEDED, output='"a"')
    again = await store.commit(Transition(base=moved, progress=moved.progress, cursors=(done,)))
    assert again is not None
    assert await store.running_cursors(execution.id) == [first[1]]
    assert await store.finished_children(execution.id, "") == [done]


async def test_a_stale_commit_writes_no_cursor(store: Store) -> None:
    """A refused transition leaves the cursors as they were."""
    execution = await create(store, "one")
    await move(store, execution, execution.progress)
    stale = await store.commit(
        Transition(base=execution, progress=execution.progress, cursors=(child("", 0),))
    )
    assert (stale, await store.running_cursors(execution.id)) == (None, [])


async def test_pruning_deletes_every_descendant_and_keeps_the_cursor_and_the_rest(
    store: Store,
) -> None:
    """Pruning cursor P deletes the ids under "P/", nested ones too, and nothing else."""
    execution = await create(store, "one", running(pending=FANOUT))
    parent = child("", 0, pending=FANOUT, phase="fanout")
    sibling = child("", 1)
    grandchildren = (child(parent.id, 0), child(parent.id, 1, SUCCEEDED, output="1"))
    great = child(grandchildren[0].id, 0)
    moved = await move(store, execution, execution.progress)
    moved = await store.commit(
        Transition(
            base=moved,
            progress=moved.progress,
            cursors=(parent, sibling, *grandchildren, great),
        )
    )
    assert moved is not None
    pruned = await store.commit(
        Transition(base=moved, progress=moved.progress, pruned=(parent.id,))
    )
    assert pruned is not None
    assert await store.running_cursors(execution.id) == [parent, sibling]
    assert await store.get_cursor(execution.id, great.id) is None


async def test_pruning_the_root_deletes_every_cursor_before_the_new_ones(store: Store) -> None:
    """Pruning "" deletes all of an execution's cursors; cursors of the same commit stay."""
    execution = await create(store, "one", running(pending=FANOUT))
    moved = await store.commit(
        Transition(base=execution, progress=execution.progress, cursors=(child("", 0),))
    )
    assert moved is not None
    fresh = replace(child("", 0), id="/9:0")
    again = await store.commit(
        Transition(base=moved, progress=moved.progress, pruned=("",), cursors=(fresh,))
    )
    assert again is not None
    assert await store.running_cursors(execution.id) == [fresh]


async def test_running_cursors_come_by_parent_and_slot_and_exclude_others(store: Store) -> None:
    """Only RUNNING cursors are listed, in (parent, slot) order; queued and finished are not."""
    execution = await create(store, "one", running(pending=FANOUT))
    cursors = (child("", 11), child("", 2), child("", 3, QUEUED), child("", 4, FAILED))
    moved = await store.commit(
        Transition(base=execution, progress=execution.progress, cursors=cursors)
    )
    assert moved is not None
    assert [c.slot for c in await store.running_cursors(execution.id)] == [2, 11]


async def test_children_output_joins_the_finished_outputs_in_slot_order(store: Store) -> None:
    """The stored texts, as they are, in one JSON array by slot: `null` for a finished child
    without output; running and queued children, and other parents' children, left out."""
    execution = await create(store, "one", running(pending=FANOUT))
    assert await store.children_output(execution.id, "") == "[]"
    other = child("", 5, pending=FANOUT, phase="fanout")
    cursors = (
        child("", 11, SUCCEEDED, output='{"b": 2}'),
        child("", 2, SUCCEEDED, output='"a"'),
        child("", 3, QUEUED),
        child("", 4),
        child("", 7, FAILED, output='{"Error":"E","Cause":""}'),
        child("", 9, ABORTED),
        other,
        child(other.id, 0, SUCCEEDED, output="0"),
    )
    moved = await store.commit(
        Transition(base=execution, progress=execution.progress, cursors=cursors)
    )
    assert moved is not None
    assert await store.children_output(execution.id, "") == (
        '["a",{"Error":"E","Cause":""},null,{"b": 2}]'
    )
    assert await store.children_output(execution.id, other.id) == "[0]"
    again = await store.finished_children(execution.id, "", unsucceeded_only=True)
    assert [c.slot for c in again] == [7, 9]  # what a redrive runs again


async def test_cursors_of_other_executions_are_apart(store: Store) -> None:
    """Cursors belong to one execution: another sees none of them."""
    one = await create(store, "one", running(pending=FANOUT))
    two = await create(store, "two")
    await store.commit(Transition(base=one, progress=one.progress, cursors=(child("", 0),)))
    assert (
        await store.running_cursors(two.id),
        await store.get_cursor(two.id, "/4:0"),
        await store.finished_children(two.id, ""),
    ) == ([], None, [])


async def test_purge_deletes_an_executions_cursors(store: Store) -> None:
    """A purged execution leaves no cursor behind."""
    execution = await create(store, "one", running(pending=FANOUT))
    moved = await store.commit(
        Transition(
            base=execution,
            progress=closed(),
            cursors=(child("", 0, SUCCEEDED, output="1"),),
        )
    )
    assert moved is not None
    assert await store.purge_closed(100.0, 10) == 1
    assert await store.get_cursor(execution.id, "/4:0") is None


# -- updates (a transition with a new input) ---------------------------------------------------


async def test_a_transition_with_an_input_replaces_the_input_and_nothing_else(
    store: Store,
) -> None:
    """`Transition.input` sets the execution's input, read back as written; other identity
    fields stay."""
    execution = await create(store, "moved")
    updated = await store.commit(
        Transition(
            base=execution,
            progress=running(due_at=3.0),
            events=(event("ExecutionUpdated", by="me"),),
            input='{"start": "2027-01-15T09:00:00Z"}',
        )
    )
    assert updated is not None
    assert (updated.input, updated.name, updated.start_date, updated.uid) == (
        '{"start": "2027-01-15T09:00:00Z"}',
        execution.name,
        execution.start_date,
        execution.uid,
    )
    assert await store.get_execution(execution.id) == updated


async def test_a_transition_without_an_input_keeps_it(store: Store) -> None:
    execution = await create(store, "kept")
    moved = await move(store, execution, running(due_at=3.0))
    assert moved.input == execution.input == '{"start": "2027-01-15T08:00:10Z"}'


async def test_a_stale_update_changes_no_input(store: Store) -> None:
    execution = await create(store, "stale")
    await move(store, execution, running(due_at=3.0))
    stale = Transition(base=execution, progress=running(due_at=4.0), input='{"x": 1}')
    assert await store.commit(stale) is None
    assert (await store.get_execution(execution.id)).input == execution.input  # type: ignore[union-attr]


# -- falling_due ----------------------------------------------------------------------------


async def test_falling_due_is_a_window_of_running_executions_earliest_first(
    store: Store,
) -> None:
    """start <= due_at < end, RUNNING only, earliest first and ties by id, up to limit."""
    made = {}
    for name, due_at in (("before", 9.0), ("at-start", 10.0), ("b", 15.0), ("a", 12.0)):
        made[name] = await create(store, name, running(due_at=due_at))
    made["tie"] = await create(store, "tie", running(due_at=12.0))
    await create(store, "at-end", running(due_at=20.0))
    await create(store, "never", running(due_at=None))
    odd = await create(store, "closed-with-due")
    await move(store, odd, replace(closed(FAILED), due_at=11.0))
    window = await store.falling_due(10.0, 20.0, machine=None, limit=10)
    assert [e.name for e in window] == ["at-start", "a", "tie", "b"]
    assert window[1] == made["a"]
    short = await store.falling_due(10.0, 20.0, machine=None, limit=2)
    assert [e.name for e in short] == ["at-start", "a"]


async def test_falling_due_keeps_one_machine_when_given(store: Store) -> None:
    await create(store, "x", running(due_at=5.0), machine="m")
    await create(store, "y", running(due_at=5.0), machine="other")
    found = await store.falling_due(0.0, 10.0, machine="other", limit=10)
    assert [(e.machine, e.name) for e in found] == [("other", "y")]


# -- the outbox -----------------------------------------------------------------------------


@pytest.mark.parametrize("status", [FAILED, TIMED_OUT, ABORTED])
async def test_closing_in_a_noticed_status_adds_a_notice_with_the_closing(
    store: Store, status: str
) -> None:
    execution = await create(store, "broke")
    progress = replace(closed(status, stop_date=42.0), error="E", cause="C", output=None)
    moved = await move(store, execution, progress, event("ExecutionFailed"))
    notices = await store.outbox(10)
    assert [(n.execution_id, n.machine, n.name, n.status) for n in notices] == [
        (execution.id, "m", "broke", status)
    ]
    assert (notices[0].error, notices[0].cause, notices[0].stop_date) == ("E", "C", 42.0)
    assert notices[0].key == notice_key(moved)
    assert notices[0].id > 0


async def test_no_notice_for_success_running_or_a_commit_of_a_closed_execution(
    store: Store,
) -> None:
    ok = await create(store, "ok")
    await move(store, ok, closed(SUCCEEDED))
    waiting = await create(store, "waiting")
    await move(store, waiting, running(due_at=9.0))
    broke = await create(store, "broke")
    failed = await move(store, broke, closed(FAILED))
    await store.outbox_done([n.id for n in await store.outbox(10)])
    await move(store, failed, replace(closed(FAILED), cause="again, already closed"))
    assert await store.outbox(10) == []


async def test_an_execution_created_failed_gets_a_notice(store: Store) -> None:
    created = await create(store, "bad-input", Progress(status=FAILED, stop_date=3.0, error="X"))
    notices = await store.outbox(10)
    assert [(n.name, n.status, n.key) for n in notices] == [
        ("bad-input", FAILED, notice_key(created))
    ]


async def test_notices_come_oldest_first_and_done_removes_them_durably(
    backend: Backend,
) -> None:
    first = backend.new_store()
    await first.open()
    for name in ("one", "two", "three"):
        await move(first, await create(first, name), closed(FAILED))
    notices = await first.outbox(10)
    assert [n.name for n in notices] == ["one", "two", "three"]
    assert [n.name for n in await first.outbox(2)] == ["one", "two"]
    await first.outbox_done([notices[0].id, notices[2].id, 999])
    await first.close()
    again = backend.new_store()
    await again.open()
    try:
        assert [n.name for n in await again.outbox(10)] == ["two"]
    finally:
        await again.close()


async def test_a_redrive_that_fails_again_makes_a_notice_with_another_key(
    store: Store,
) -> None:
    execution = await create(store, "twice")
    failed = await move(store, execution, closed(FAILED), event("ExecutionFailed"))
    again = await move(store, failed, running(due_at=1.0), event("ExecutionRedriven"))
    await move(store, again, closed(FAILED), event("ExecutionFailed"))
    keys = [n.key for n in await store.outbox(10)]
    assert len(keys) == len(set(keys)) == 2


async def test_purging_keeps_the_notices(store: Store) -> None:
    execution = await create(store, "gone")
    await move(store, execution, closed(FAILED, stop_date=1.0))
    assert await store.purge_closed(2.0, 10) == 1
    assert [n.name for n in await store.outbox(10)] == ["gone"]


# -- activities -------------------------------------------------------------------------------


def queued(
    activity: str, token: str, at: float = 10.0, data: str = '{"room":"Phòng 1"}'
) -> ActivityTask:
    return ActivityTask(activity=activity, token=token, input=data, queued_at=at)


async def test_an_activity_is_created_once_and_keeps_its_date(backend: Backend) -> None:
    """Creating an activity again returns it as it was; it is there after a restart, listed
    by name, until it is deleted."""
    store = backend.new_store()
    await store.open()
    assert await store.create_activity("record", 5.5) == Activity(name="record", created_at=5.5)
    assert await store.create_activity("record", 9.0) == Activity(name="record", created_at=5.5)
    await store.create_activity("ask", 7.0)
    await store.close()
    store = backend.new_store()
    await store.open()
    assert [a.name for a in await store.list_activities()] == ["ask", "record"]
    await store.delete_activity("record")
    await store.delete_activity("never-created")
    assert await store.list_activities() == [Activity(name="ask", created_at=7.0)]
    await store.close()


async def test_activity_tasks_are_taken_first_queued_first_and_once(store: Store) -> None:
    """A queue hands out its tasks in the order they were queued (ties by token), each once;
    another activity's tasks are not in it; an empty queue gives None."""
    for task in (queued("a", "t3", 30.0), queued("a", "t2", 20.0), queued("a", "t1", 20.0)):
        await store.queue_activity_task(task)
    await store.queue_activity_task(queued("b", "u1", 1.0))
    taken = [await store.take_activity_task("a") for _ in range(4)]
    assert taken == [
        queued("a", "t1", 20.0),
        queued("a", "t2", 20.0),
        queued("a", "t3", 30.0),
        None,
    ]
    assert await store.take_activity_task("b") == queued("b", "u1", 1.0)


async def test_queueing_a_token_again_replaces_its_task(store: Store) -> None:
    """A retried task queued again under its token is one task, with its new input and place."""
    await store.queue_activity_task(queued("a", "t1", 10.0, "{}"))
    await store.queue_activity_task(queued("a", "t2", 20.0))
    await store.queue_activity_task(queued("a", "t1", 30.0, '{"attempt":2}'))
    assert await store.take_activity_task("a") == queued("a", "t2", 20.0)
    assert await store.take_activity_task("a") == queued("a", "t1", 30.0, '{"attempt":2}')
    assert await store.take_activity_task("a") is None


async def test_concurrent_takes_hand_each_task_out_once(backend: Backend) -> None:
    """Two stores on the same data taking at once (two nodes) never get the same task."""
    first, second = backend.new_store(), backend.new_store()
    await first.open()
    for n in range(6):
        await first.queue_activity_task(queued("a", f"t{n}", float(n)))
    await first.close()
    await second.open()
    takes = await asyncio.gather(*(second.take_activity_task("a") for _ in range(8)))
    tokens = [t.token for t in takes if t is not None]
    assert sorted(tokens) == [f"t{n}" for n in range(6)]
    await second.close()


async def test_deleting_an_activity_empties_its_queue(store: Store) -> None:
    """The tasks of a deleted activity are gone with it; others stay."""
    await store.create_activity("a", 1.0)
    await store.queue_activity_task(queued("a", "t1"))
    await store.queue_activity_task(queued("b", "u1"))
    await store.delete_activity("a")
    assert await store.take_activity_task("a") is None
    assert await store.take_activity_task("b") == queued("b", "u1")


# -- nested executions ------------------------------------------------------------------------


async def test_a_child_is_linked_once_and_found_from_either_side(backend: Backend) -> None:
    """A child's link is stored once (a second link of the same child changes nothing) and is
    there after a restart, found by its parent (children by id) or by the child."""
    store = backend.new_store()
    await store.open()
    parent = await create(store, "parent")
    children = [await create(store, f"child-{n}") for n in range(2)]
    links = [
        ChildLink(child_id=c.id, parent_id=parent.id, mode=".sync", token=f"t{n}")
        for n, c in enumerate(children)
    ]
    for link in reversed(links):
        await store.link_child(link)
    await store.link_child(ChildLink(child_id=children[0].id, parent_id=99, mode=""))
    await store.close()
    store = backend.new_store()
    await store.open()
    assert await store.child_links(parent_id=parent.id) == links
    assert await store.child_links(child_id=children[1].id) == [links[1]]
    assert await store.child_links(child_id=parent.id) == []
    await store.close()


async def test_live_links_are_those_with_a_running_side(store: Store) -> None:
    """A link is live while its parent or its child runs; purging a closed execution deletes
    the links that name it."""
    running_parent = await create(store, "p1")
    closed_parent = await create(store, "p2", closed(stop_date=10.0))
    running_child = await create(store, "c1")
    closed_child = await create(store, "c2", closed(stop_date=10.0))
    both_closed = await create(store, "c3", closed(stop_date=10.0))
    links = [
        ChildLink(child_id=running_child.id, parent_id=closed_parent.id, mode=""),
        ChildLink(child_id=closed_child.id, parent_id=running_parent.id, mode=".sync", token="t"),
        ChildLink(child_id=both_closed.id, parent_id=closed_parent.id, mode=".sync:2", token="u"),
    ]
    for link in links:
        await store.link_child(link)
    assert await store.live_links(10) == links[:2]
    assert await store.live_links(1) == links[:1]
    assert await store.purge_closed(100.0, 10) == 3
    assert await store.child_links(parent_id=closed_parent.id) == []
    assert await store.child_links(parent_id=running_parent.id) == []


# -- tags -----------------------------------------------------------------------------------


async def test_tags_are_added_replaced_removed_and_kept(backend: Backend) -> None:
    """Tags of a resource: added and replaced by key, removed by key (unknown keys ignored),
    there after a restart; another resource's are its own."""
    store = backend.new_store()
    await store.open()
    assert await store.put_tags("arn:a", {"team": "classes", "room": "1"}, 50)
    assert await store.put_tags("arn:a", {"room": "2"}, 50)
    assert await store.put_tags("arn:b", {"team": "ops"}, 50)
    await store.remove_tags("arn:a", ["team", "never"])
    await store.close()
    store = backend.new_store()
    await store.open()
    assert await store.tags_of("arn:a") == {"room": "2"}
    assert await store.tags_of("arn:b") == {"team": "ops"}
    assert await store.tags_of("arn:c") == {}
    await store.close()


async def test_tags_beyond_the_limit_write_nothing(store: Store) -> None:
    """A put that would leave more than `limit` tags writes none of them; replacing keys the
    resource has does not count twice."""
    assert await store.put_tags("arn:a", {"k1": "1", "k2": "2"}, 3)
    assert not await store.put_tags("arn:a", {"k3": "3", "k4": "4"}, 3)
    assert await store.put_tags("arn:a", {"k1": "one", "k3": "3"}, 3)
    assert await store.tags_of("arn:a") == {"k1": "one", "k2": "2", "k3": "3"}
