"""The PostgreSQL store beyond the shared contract: its config, migrations under a lock shared
by nodes starting together, `stepd check`, and a database that restarts (a real throwaway
server, tests/postgres_server.py)."""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import hashlib
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import psycopg
import pytest
from tests.postgres_server import PostgresServer

from stepd.cli import main
from stepd.config import load_settings, store_password
from stepd.errors import (
    ConfigError,
    ConnectionLost,
    StoreError,
    StoreRefused,
    StoreTooNew,
    StoreUnreachable,
)
from stepd.store.formats import FORMAT_VERSION
from stepd.store.pg_schema import MIGRATIONS, SCHEMA_VERSION
from stepd.store.postgres import PostgresStore, read_version
from stepd.store.records import NewEvent, NewExecution, Progress, Transition
from stepd.store.sqlite import SqliteStore

CONFIG = """
[store]
url = "{url}"
"""


MACHINE = """
[[machines]]
name = "m"
definition = "m.asl.json"
"""


def config(tmp_path: Path, url: str, extra: str = "") -> Path:
    path = tmp_path / "stepd.toml"
    path.write_text(CONFIG.format(url=url) + extra, encoding="utf-8")
    return path


def checked_config(tmp_path: Path, url: str) -> Path:
    """A config `stepd check` finds nothing wrong with but the store."""
    (tmp_path / "m.asl.json").write_text(
        '{"StartAt": "A", "States": {"A": {"Type": "Succeed"}}}', encoding="utf-8"
    )
    return config(tmp_path, url, MACHINE)


def new(name: str, definition_id: int) -> NewExecution:
    return NewExecution(
        machine="m",
        name=name,
        definition_id=definition_id,
        input="{}",
        start_date=1.0,
        uid=name,
        progress=Progress(status="RUNNING", state="A", phase="enter", data="{}", due_at=2.0),
        events=(NewEvent(ts=1.0, type="ExecutionStarted", details={}),),
    )


# -- config ---------------------------------------------------------------------------------


def test_the_url_comes_from_the_file_or_the_environment(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """[store] url, overridden by STEPD_STORE__URL."""
    path = config(tmp_path, "postgresql://stepd@db1:5432/stepd")
    assert load_settings(path).store.url == "postgresql://stepd@db1:5432/stepd"
    monkeypatch.setenv("STEPD_STORE__URL", "postgresql://stepd@db2/stepd")
    assert load_settings(path).store.url == "postgresql://stepd@db2/stepd"


@pytest.mark.parametrize(
    "url",
    [
        "postgresql://stepd:s3cret@db/stepd",
        "postgresql://db/stepd?password=s3cret",
        "postgresql://db/stepd?pass%77ord=s3cret",  # libpq decodes the key too
    ],
)
def test_a_password_in_the_url_is_refused_without_showing_it(tmp_path: Path, url: str) -> None:
    """The password goes in a file or a credential; the refusal says where, not what."""
    with pytest.raises(ConfigError, match="password_file") as raised:
        load_settings(config(tmp_path, url))
    assert "s3cret" not in str(raised.value)


def test_a_url_that_is_not_postgresql_is_refused(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"store\.url: .*postgresql://USER@HOST"):
        load_settings(config(tmp_path, "mysql://db/stepd"))


def test_the_password_comes_from_the_credential_else_the_file(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The systemd credential 'store_password' wins over [store] password_file."""
    (tmp_path / "pw").write_text("from-file\n", encoding="utf-8")
    path = config(tmp_path, "postgresql://stepd@db/stepd", 'password_file = "pw"\n')
    settings = load_settings(path)
    assert store_password(settings) == "from-file"
    credentials = tmp_path / "credentials"
    credentials.mkdir()
    (credentials / "store_password").write_text("from-credential\n", encoding="utf-8")
    monkeypatch.setenv("CREDENTIALS_DIRECTORY", str(credentials))
    assert store_password(settings) == "from-credential"


# -- the database ---------------------------------------------------------------------------


async def test_nodes_opening_a_new_database_together_create_the_schema_once(
    postgres: PostgresServer,
) -> None:
    """Migrations run under an advisory lock: every node opens, none fails on a table that
    another one created meanwhile."""
    url = await asyncio.to_thread(postgres.new_database)
    stores = [PostgresStore(url) for _ in range(4)]
    await asyncio.gather(*(store.open() for store in stores))
    try:
        version = await read_version(url)
    finally:
        await asyncio.gather(*(store.close() for store in stores))
    assert (version.schema, version.written_by is not None) == (SCHEMA_VERSION, True)


async def test_an_unreachable_database_is_a_store_error_naming_it_without_a_password() -> None:
    store = PostgresStore("postgresql://stepd@127.0.0.1:1/nothing", password="s3cret")
    with pytest.raises(StoreError, match=r"postgresql://127\.0\.0\.1:1/nothing") as raised:
        await store.open()
    assert "s3cret" not in str(raised.value)


async def test_a_store_goes_on_after_the_database_restarts_after_a_crash(
    postgres: PostgresServer,
) -> None:
    """An immediate stop (no checkpoint: WAL replay at start) loses nothing acknowledged, and
    the pool's connections to the old server are replaced, not used."""
    url = await asyncio.to_thread(postgres.new_database)
    store = PostgresStore(url)
    await store.open()
    try:
        definition_id = await store.put_definition("m", "{}")
        before, _ = await store.create_execution(new("before", definition_id))
        await asyncio.to_thread(postgres.restart, immediate=True)
        after, created = await store.create_execution(new("after", definition_id))
        found = await store.find_execution("m", "before")
    finally:
        await store.close()
    assert (found, created, after.id > before.id) == (before, True, True)


def break_connections(url: str) -> int:
    """Terminate every other session of `url`'s database, as a restart of the database or a
    dropped network would: the number broken."""
    with psycopg.connect(url, autocommit=True) as conn:
        rows = conn.execute(
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity"
            " WHERE datname = current_database() AND pid <> pg_backend_pid()"
        ).fetchall()
    return len(rows)


async def test_writes_and_reads_go_on_when_the_pooled_connections_broke_a_moment_ago(
    postgres: PostgresServer,
) -> None:
    """Connections used a moment ago are handed out unchecked; when they turn out broken,
    each write and read is made again on another one, not failed (a failed commit of a
    call's answer would send the call again)."""
    url = await asyncio.to_thread(postgres.new_database)
    store = PostgresStore(url)
    await store.open()
    try:
        definition_id = await store.put_definition("m", "{}")
        made = [
            created
            for created, _ in await asyncio.gather(
                *(store.create_execution(new(f"e{n}", definition_id)) for n in range(4))
            )
        ]
        assert await asyncio.to_thread(break_connections, url) >= 1
        moved = await asyncio.gather(
            *(
                store.commit(
                    Transition(
                        base=execution,
                        progress=Progress(status="SUCCEEDED", state="A", phase="done", data="{}"),
                        events=(NewEvent(ts=3.0, type="ExecutionSucceeded", details={}),),
                    )
                )
                for execution in made
            )
        )
        assert await asyncio.to_thread(break_connections, url) >= 1
        after, created = await store.create_execution(new("after", definition_id))
        assert await asyncio.to_thread(break_connections, url) >= 1
        found = [await store.get_execution(execution.id) for execution in made]
    finally:
        await store.close()
    assert all(m is not None and m.status == "SUCCEEDED" for m in moved)
    assert (found, created, after.name) == (moved, True, "after")


async def test_a_create_applied_before_its_connection_broke_is_made_again_and_reported_created(
    postgres: PostgresServer,
) -> None:
    """When the connection breaks after a create was applied but before its answer came, the
    create is made again: the execution found by its name carries the create's uid, so it is
    reported created (and so scheduled), and nothing is written twice; another start of the
    same name is still not created."""
    url = await asyncio.to_thread(postgres.new_database)
    store = PostgresStore(url)
    await store.open()
    # the answer of the first create's write is lost, after its commit
    connect = store._creates._connect
    lost = [ConnectionLost("the answer was lost")]

    @contextlib.asynccontextmanager
    async def losing() -> AsyncIterator[Any]:
        async with connect() as conn:
            yield conn
        if lost:
            raise lost.pop()

    store._creates._connect = losing
    try:
        definition_id = await store.put_definition("m", "{}")
        first, made = await store.create_execution(new("e", definition_id))
        history = await store.history(first.id, reverse=False, limit=10, after=None)
        other = dataclasses.replace(new("e", definition_id), uid="another start")
        second, made_second = await store.create_execution(other)
    finally:
        await store.close()
    assert (lost, made, made_second, second) == ([], True, False, first)
    assert [event.type for event in history] == ["ExecutionStarted"]


async def test_a_store_of_schema_4_is_migrated_with_its_history(postgres: PostgresServer) -> None:
    """A store the previous release wrote (schema 4, the history's rows checked against their
    execution by a foreign key) opens at the current schema: what it held reads back, and
    new executions and their history are written beside it."""
    url = await asyncio.to_thread(postgres.new_database)
    async with await psycopg.AsyncConnection.connect(url, autocommit=True) as conn:
        for script in MIGRATIONS[:4]:
            await conn.execute(script.encode())
        await conn.execute(
            "INSERT INTO meta (key, value) VALUES ('schema', '4'), ('record_format', %s)",
            (str(FORMAT_VERSION),),
        )
        await conn.execute(
            "INSERT INTO definitions (machine, sha256, body, created_at) VALUES ('m', 'x', '{}', 1)"
        )
        await conn.execute(
            "INSERT INTO executions (machine, name, definition_id, status, input, start_date,"
            " state, phase, data, due_at, last_event_id) VALUES"
            " ('m', 'old', 1, 'RUNNING', '{}', 1, 'A', 'enter', '{}', 2, 1)"
        )
        await conn.execute(
            "INSERT INTO events (execution_id, id, previous_id, ts, type, details)"
            " SELECT id, 1, 0, 1, 'ExecutionStarted', '{}' FROM executions"
        )
    store = PostgresStore(url)
    await store.open()
    try:
        old = await store.find_execution("m", "old")
        assert old is not None
        old_history = await store.history(old.id, reverse=False, limit=10, after=None)
        created, _ = await store.create_execution(new("new", 1))
        new_history = await store.history(created.id, reverse=False, limit=10, after=None)
    finally:
        await store.close()
    assert (await read_version(url)).schema == SCHEMA_VERSION
    assert [e.type for e in old_history] == ["ExecutionStarted"]
    assert [e.type for e in new_history] == ["ExecutionStarted"]


async def test_a_store_of_schema_8_is_migrated_its_definitions_without_endpoints(
    postgres: PostgresServer,
) -> None:
    """A store written before definitions kept their endpoints (schema 8) opens at the current
    schema: its running execution reads back, its definition has no endpoints until nodes put
    it with some, and then has every node's (two nodes putting it together)."""
    url = await asyncio.to_thread(postgres.new_database)
    async with await psycopg.AsyncConnection.connect(url, autocommit=True) as conn:
        for script in MIGRATIONS[:8]:
            await conn.execute(script.encode())
        await conn.execute(
            "INSERT INTO meta (key, value) VALUES ('schema', '8'), ('record_format', %s)",
            (str(FORMAT_VERSION),),
        )
        await conn.execute(
            "INSERT INTO definitions (machine, sha256, body, created_at) VALUES ('m', %s, '{}', 1)",
            (hashlib.sha256(b"{}").hexdigest(),),
        )
        await conn.execute(
            "INSERT INTO executions (machine, name, definition_id, status, input, start_date,"
            " state, phase, data, due_at, last_event_id, uid) VALUES"
            " ('m', 'old', 1, 'RUNNING', '{}', 1, 'W', 'enter', '{}', 500, 1, 'u')"
        )
    nodes = [PostgresStore(url), PostgresStore(url)]
    await asyncio.gather(*(node.open() for node in nodes))
    try:
        old = await nodes[0].find_execution("m", "old")
        before = await nodes[1].get_definition_endpoints(1)
        put = await asyncio.gather(
            nodes[0].put_definition("m", "{}", {"Call": "/call", "Ping": "/ping"}),
            nodes[1].put_definition("m", "{}", {"Stop": "/stop"}),
        )
        after = await nodes[1].get_definition_endpoints(1)
    finally:
        await asyncio.gather(*(node.close() for node in nodes))
    assert (await read_version(url)).schema == SCHEMA_VERSION
    assert old is not None
    assert (old.state, old.due_at, old.definition_id) == ("W", 500.0, 1)
    assert (before, put) == ({}, [1, 1])
    assert after == {"Call": "/call", "Ping": "/ping", "Stop": "/stop"}


async def test_a_newer_schema_is_refused_and_left_as_it_is(postgres: PostgresServer) -> None:
    url = await asyncio.to_thread(postgres.new_database)
    store = PostgresStore(url)
    await store.open()
    await store.close()
    async with await psycopg.AsyncConnection.connect(url, autocommit=True) as conn:
        await conn.execute("UPDATE meta SET value = %s WHERE key = 'schema'", (str(99),))
    with pytest.raises(StoreTooNew, match="schema 99"):
        await PostgresStore(url).open()
    assert (await read_version(url)).schema == 99


async def test_a_role_that_cannot_create_the_store_is_refused_and_a_standby_is_waited_for(
    postgres: PostgresServer, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """A role that may connect but not create tables (PostgreSQL 15's default on a database
    it does not own): refused, naming what it needs (the daemon exits 78, not 1 into a
    restart loop). A read-only database (a standby after a failover): waited for."""
    url = await asyncio.to_thread(postgres.new_database)
    database = url.rsplit("/", 1)[1]
    role = "limited_" + database
    async with await psycopg.AsyncConnection.connect(postgres.url(), autocommit=True) as conn:
        await conn.execute(f'CREATE ROLE "{role}" LOGIN')
    limited = f"postgresql://{role}@{url.split('@', 1)[1]}"
    with pytest.raises(StoreRefused, match="CREATE on its schema"):
        await PostgresStore(limited).open()
    checked = await asyncio.to_thread(main, ["check", "-c", str(checked_config(tmp_path, limited))])
    assert checked == 78  # `stepd check` says so before a node fails on it
    assert f"the role {role} may not create tables" in capsys.readouterr().out
    async with await psycopg.AsyncConnection.connect(postgres.url(), autocommit=True) as conn:
        await conn.execute(f'ALTER DATABASE "{database}" SET default_transaction_read_only = on')
    with pytest.raises(StoreUnreachable, match="read-only"):
        await PostgresStore(url).open()


# -- stepd check ----------------------------------------------------------------------------


def test_check_reaches_the_database_and_reports_the_schema_version(
    postgres: PostgresServer, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    url = postgres.new_database()
    path = checked_config(tmp_path, url)
    assert main(["check", "-c", str(path)]) == 0
    assert "reached; no store there yet" in capsys.readouterr().err

    async def open_once() -> None:
        store = PostgresStore(url)
        await store.open()
        await store.close()

    asyncio.run(open_once())
    assert main(["check", "-c", str(path)]) == 0
    assert f"reached; schema {SCHEMA_VERSION} of {SCHEMA_VERSION}" in capsys.readouterr().err


def test_check_says_when_the_database_cannot_be_reached(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    """A database not there right now: 69 (try again later), not 78 (the file is wrong);
    --offline checks the file alone, as a reload does; a credential that cannot be read is
    named (78), not a traceback."""
    path = checked_config(tmp_path, "postgresql://stepd@127.0.0.1:1/stepd")
    assert main(["check", "-c", str(path)]) == 69
    assert "postgresql://127.0.0.1:1/stepd: STORE_UNREACHABLE" in capsys.readouterr().out
    assert main(["check", "--offline", "-c", str(path)]) == 0
    assert "STORE_UNREACHABLE" not in capsys.readouterr().out
    real_is_file = Path.is_file

    def refused(self: Path) -> bool:
        if self.name == "store_password":
            raise PermissionError(13, "Permission denied")
        return real_is_file(self)

    monkeypatch.setenv("CREDENTIALS_DIRECTORY", str(tmp_path / "credentials"))
    monkeypatch.setattr(Path, "is_file", refused)
    assert main(["check", "-c", str(path)]) == 78
    out = capsys.readouterr().out
    assert "the credential store_password" in out
    assert "Permission denied" in out


def test_check_warns_of_executions_left_in_the_sqlite_store_it_no_longer_uses(
    postgres: PostgresServer, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """With [store] url set, a SQLite store still at [store] path that holds executions is
    named (a warning: they would not run), and check still passes."""
    url = postgres.new_database()
    sqlite_path = tmp_path / "old.db"
    path = checked_config(tmp_path, url)
    path.write_text(
        path.read_text(encoding="utf-8").replace("[store]\n", f'[store]\npath = "{sqlite_path}"\n'),
        encoding="utf-8",
    )
    assert main(["check", "-c", str(path)]) == 0
    assert "STORE_PATH_UNUSED" not in capsys.readouterr().out  # no SQLite store there

    async def one_running() -> None:
        store = SqliteStore(sqlite_path)
        await store.open()
        try:
            definition = await store.put_definition("m", '{"StartAt": "A", "States": {}}')
            await store.create_execution(new("left", definition))
        finally:
            await store.close()

    asyncio.run(one_running())
    assert main(["check", "-c", str(path)]) == 0
    out = capsys.readouterr().out
    assert f"{sqlite_path}: STORE_PATH_UNUSED:" in out
    assert "1 execution(s) (1 running) do not run" in out
