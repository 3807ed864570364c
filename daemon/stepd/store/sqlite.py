"""The SQLite store: WAL, durable commits, one writer thread that commits in groups.

Every write is a function run on the writer thread; the writer takes whatever writes are
queued, runs them in one transaction and commits once (group commit), so a burst of
transitions costs one fsync instead of one each. When one write of a group fails, the group is
rolled back and run again with each write in its own SAVEPOINT, so that only the failed one is
undone. Each caller's future resolves only after that COMMIT returned: an acknowledged write
is on disk.
"""

from __future__ import annotations

import asyncio
import contextlib
import fcntl
import hashlib
import io
import json
import os
import queue
import sqlite3
import threading
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import IO, Any, TypeVar

from stepd import __version__
from stepd.errors import (
    StoreDamaged,
    StoreError,
    StoreLocked,
    StoreNotFound,
    StoreTooNew,
    WriteGroupFailed,
)
from stepd.store.base import Store
from stepd.store.formats import (
    FORMAT_VERSION,
)
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
)
from stepd.store.rows import (
    COLUMNS,
    CURSOR_COLUMNS,
    PROGRESS_COLUMNS,
    event_rows,
    history_events,
    history_query,
    list_query,
    progress_values,
    row_to_cursor,
    row_to_execution,
)
from stepd.store.schema import MIGRATIONS, SCHEMA_VERSION, StoreVersion, too_new
from stepd.store.sqlite_group import (
    EVENTS_SQL,
    Staged,
    Write,
    add_notice,
    commit_group,
    settle_all,
    write_cursors,
)

T = TypeVar("T")

MAX_BATCH = 512  # writes per group commit
BUSY_TIMEOUT_MS = 5000


def _connect(path: Path) -> sqlite3.Connection:
    conn = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
    conn.row_factory = sqlite3.Row
    conn.execute(f"PRAGMA busy_timeout = {BUSY_TIMEOUT_MS}")
    conn.execute("PRAGMA foreign_keys = ON")
    return conn


class SqliteStore(Store):
    def __init__(self, path: Path) -> None:
        self.path = path
        self._writer: sqlite3.Connection | None = None
        self._reader: sqlite3.Connection | None = None
        self._lock_file: IO[str] | None = None
        self._writes: queue.SimpleQueue[list[Write] | None] = queue.SimpleQueue()
        self._gathered: list[Write] | None = None
        self._gathered_on: asyncio.AbstractEventLoop | None = None
        self._gather_lock = threading.Lock()
        self._thread: threading.Thread | None = None
        self._reads = ThreadPoolExecutor(max_workers=1, thread_name_prefix="stepd-store-read")

    # -- lifecycle -------------------------------------------------------------------

    async def open(self) -> None:
        await asyncio.to_thread(self._open_sync)
        self._thread = threading.Thread(target=self._write_loop, name="stepd-store-write")
        self._thread.daemon = True
        self._thread.start()

    def _open_sync(self) -> None:
        conn: sqlite3.Connection | None = None
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            self._lock_file = self._take_lock()
            conn = _connect(self.path)
            self._use_wal(conn)
            self._migrate(conn)
            self._writer = conn
            self._reader = _connect(self.path)
            self._reader.execute("PRAGMA query_only = ON")
        except BaseException as exc:
            if conn is not None and self._writer is None:
                conn.close()
            self._release_lock()
            if type(exc) is sqlite3.DatabaseError:  # not a database, or a malformed one
                raise StoreDamaged(
                    f"{self.path}: cannot open the database: {exc}; restore it from a backup "
                    "(README: Back up and restore)"
                ) from exc
            if isinstance(exc, sqlite3.DatabaseError):
                raise StoreError(f"{self.path}: cannot open the database: {exc}") from exc
            if isinstance(exc, OSError):
                raise StoreError(f"{self.path}: {exc.strerror or exc}") from exc
            raise

    def _use_wal(self, conn: sqlite3.Connection) -> None:
        mode = conn.execute("PRAGMA journal_mode = WAL").fetchone()[0]
        if mode != "wal":
            raise StoreError(f"{self.path}: cannot switch to WAL mode (got {mode})")
        conn.execute("PRAGMA synchronous = FULL")

    def _take_lock(self) -> IO[str]:
        path = self.path.resolve()
        lock_path = path.with_name(path.name + ".lock")
        handle = lock_path.open("a+")
        try:
            fcntl.flock(handle.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            handle.close()
            raise StoreLocked(
                f"{self.path}: the database is in use by another stepd process"
            ) from None
        handle.seek(0)
        handle.truncate()
        handle.write(f"{os.getpid()}\n")
        handle.flush()
        return handle

    def _release_lock(self) -> None:
        if self._lock_file is not None:
            self._lock_file.close()
            self._lock_file = None

    def _migrate(self, conn: sqlite3.Connection) -> None:
        found = _read_version(conn)
        reason = too_new(
            found, schema=SCHEMA_VERSION, record_format=FORMAT_VERSION, version=__version__
        )
        if reason is not None:
            raise StoreTooNew(f"{self.path}: {reason}")
        for number, script in enumerate(MIGRATIONS[found.schema :], start=found.schema + 1):
            conn.execute("BEGIN IMMEDIATE")
            try:
                for statement in script.split(";"):
                    if statement.strip():
                        conn.execute(statement)
                conn.execute(f"PRAGMA user_version = {number}")
                conn.execute("COMMIT")
            except BaseException:
                conn.execute("ROLLBACK")
                raise
        conn.executemany(
            "INSERT INTO meta (key, value) VALUES (?, ?)"
            " ON CONFLICT (key) DO UPDATE SET value = excluded.value",
            [("record_format", str(FORMAT_VERSION)), ("written_by", __version__)],
        )

    async def close(self) -> None:
        if self._thread is not None:
            self._hand_over()
            self._writes.put(None)
            await asyncio.to_thread(self._thread.join)
            self._thread = None
        self._reads.shutdown(wait=True)
        for conn in (self._writer, self._reader):
            if conn is not None:
                conn.close()
        self._writer = self._reader = None
        self._release_lock()

    # -- the writer ------------------------------------------------------------------

    def _write_loop(self) -> None:
        conn = self._writer
        assert conn is not None
        while True:
            first = self._writes.get()
            if first is None:
                return
            batch = first
            stop = False
            while len(batch) < MAX_BATCH:
                try:
                    more = self._writes.get_nowait()
                except queue.Empty:
                    break
                if more is None:
                    stop = True
                    break
                batch += more
            self._run_batch(conn, batch)
            if stop:
                return

    def _run_batch(self, conn: sqlite3.Connection, batch: list[Write]) -> None:
        try:
            try:
                outcomes = commit_group(conn, batch, self.path, isolated=False)
            except WriteGroupFailed:  # again, each write in a savepoint: only the failed one undone
                outcomes = commit_group(conn, batch, self.path, isolated=True)
        except Exception as exc:  # noqa: BLE001 - the writer thread hands any error to the waiters
            failure = StoreError(f"{self.path}: write failed: {exc}")
            outcomes = [(write, None, failure) for write in batch]
        by_loop: dict[asyncio.AbstractEventLoop, list[tuple[asyncio.Future[Any], Any, Any]]] = {}
        for write, result, error in outcomes:
            by_loop.setdefault(write.loop, []).append((write.future, result, error))
        for loop, settled in by_loop.items():
            loop.call_soon_threadsafe(settle_all, settled)

    async def _write(
        self, fn: Callable[[sqlite3.Connection], T], staged: Staged | None = None
    ) -> T:
        if self._thread is None:
            raise StoreError("the store is not open")
        loop = asyncio.get_running_loop()
        future: asyncio.Future[T] = loop.create_future()
        write = Write(fn, loop, future, staged)
        with self._gather_lock:
            if self._gathered is None:
                # the writes of this loop turn go to the writer together, after it
                self._gathered = [write]
                self._gathered_on = loop
                loop.call_soon(self._hand_over)
            elif self._gathered_on is loop:
                self._gathered.append(write)
            else:
                self._writes.put([write])
        return await future

    def _hand_over(self) -> None:
        with self._gather_lock:
            gathered, self._gathered = self._gathered, None
        if gathered:
            self._writes.put(gathered)

    async def _read(self, fn: Callable[[sqlite3.Connection], T]) -> T:
        conn = self._reader
        if conn is None:
            raise StoreError("the store is not open")

        def run() -> T:
            try:
                return fn(conn)
            except sqlite3.Error as exc:
                raise StoreError(f"{self.path}: read failed: {exc}") from exc

        return await asyncio.get_running_loop().run_in_executor(self._reads, run)

    # -- definitions -----------------------------------------------------------------

    async def put_definition(
        self, machine: str, body: str, endpoints: Mapping[str, str] | None = None
    ) -> int:
        digest = hashlib.sha256(body.encode()).hexdigest()
        given = dict(endpoints or {})

        def put(conn: sqlite3.Connection) -> int:
            row = conn.execute(
                "SELECT id, endpoints FROM definitions WHERE machine = ? AND sha256 = ?",
                (machine, digest),
            ).fetchone()
            if row is not None:
                stored = json.loads(row[1]) if row[1] else {}
                merged = {**stored, **given}
                if merged != stored:
                    conn.execute(
                        "UPDATE definitions SET endpoints = ? WHERE id = ?",
                        (_endpoints_text(merged), row[0]),
                    )
                return int(row[0])
            cur = conn.execute(
                "INSERT INTO definitions (machine, sha256, body, created_at, endpoints)"
                " VALUES (?, ?, ?, ?, ?)",
                (machine, digest, body, time.time(), _endpoints_text(given) if given else None),
            )
            return int(cur.lastrowid or 0)

        return await self._write(put)

    async def first_registered(self, machine: str) -> float | None:
        def first(conn: sqlite3.Connection) -> float | None:
            row = conn.execute(
                "SELECT min(created_at) FROM definitions WHERE machine = ?", (machine,)
            ).fetchone()
            return None if row is None or row[0] is None else float(row[0])

        return await self._read(first)

    async def get_definition(self, definition_id: int) -> str:
        def get(conn: sqlite3.Connection) -> str:
            row = conn.execute(
                "SELECT body FROM definitions WHERE id = ?", (definition_id,)
            ).fetchone()
            if row is None:
                raise StoreError(f"definition {definition_id} is not in the store")
            return str(row[0])

        return await self._read(get)

    async def get_definition_endpoints(self, definition_id: int) -> dict[str, str]:
        def get(conn: sqlite3.Connection) -> dict[str, str]:
            row = conn.execute(
                "SELECT endpoints FROM definitions WHERE id = ?", (definition_id,)
            ).fetchone()
            if row is None:
                raise StoreError(f"definition {definition_id} is not in the store")
            return dict(json.loads(row[0])) if row[0] else {}

        return await self._read(get)

    # -- executions ------------------------------------------------------------------

    async def create_execution(self, new: NewExecution) -> tuple[Execution, bool]:
        def create(conn: sqlite3.Connection) -> tuple[Execution, bool]:
            existing = conn.execute(
                f"SELECT {COLUMNS} FROM executions WHERE machine = ? AND name = ?",  # noqa: S608
                (new.machine, new.name),
            ).fetchone()
            if existing is not None:
                return row_to_execution(existing), False
            columns = {
                "machine": new.machine,
                "name": new.name,
                "definition_id": new.definition_id,
                "input": new.input,
                "start_date": new.start_date,
                "uid": new.uid,
            }
            columns.update(
                zip(PROGRESS_COLUMNS.values(), progress_values(new.progress), strict=True)
            )
            columns["last_event_id"] = len(new.events)
            names = ", ".join(columns)
            marks = ", ".join("?" for _ in columns)
            cur = conn.execute(
                f"INSERT INTO executions ({names}) VALUES ({marks})",  # noqa: S608
                tuple(columns.values()),
            )
            execution_id = int(cur.lastrowid or 0)
            _append_events(conn, execution_id, 0, new.events)
            write_cursors(conn, execution_id, (), new.cursors)
            row = conn.execute(
                f"SELECT {COLUMNS} FROM executions WHERE id = ?",  # noqa: S608
                (execution_id,),
            ).fetchone()
            created = row_to_execution(row)
            if created.status in NOTICED:
                add_notice(conn, created)
            return created, True

        return await self._write(create)

    async def commit(self, transition: Transition) -> Execution | None:
        # written with the other transitions of its group (stepd.store.sqlite_group)
        staged = Staged(transition)
        return await self._write(staged.write, staged)

    async def running_cursors(self, execution_id: int) -> list[Cursor]:
        def run(conn: sqlite3.Connection) -> list[Cursor]:
            rows = conn.execute(
                f"SELECT {CURSOR_COLUMNS} FROM cursors INDEXED BY cursors_by_status"  # noqa: S608
                " WHERE execution_id = ? AND status = ? ORDER BY parent, slot",
                (execution_id, RUNNING),
            )
            return [row_to_cursor(execution_id, r) for r in rows]

        return await self._read(run)

    async def get_cursor(self, execution_id: int, cursor_id: str) -> Cursor | None:
        def get(conn: sqlite3.Connection) -> Cursor | None:
            row = conn.execute(
                f"SELECT {CURSOR_COLUMNS} FROM cursors"  # noqa: S608
                " WHERE execution_id = ? AND id = ?",
                (execution_id, cursor_id),
            ).fetchone()
            return None if row is None else row_to_cursor(execution_id, row)

        return await self._read(get)

    async def finished_children(
        self, execution_id: int, parent: str, *, unsucceeded_only: bool = False
    ) -> list[Cursor]:
        left_out = (RUNNING, QUEUED, SUCCEEDED if unsucceeded_only else RUNNING)

        def run(conn: sqlite3.Connection) -> list[Cursor]:
            rows = conn.execute(
                f"SELECT {CURSOR_COLUMNS} FROM cursors"  # noqa: S608
                " WHERE execution_id = ? AND parent = ? AND status NOT IN (?, ?, ?)"
                " ORDER BY slot",
                (execution_id, parent, *left_out),
            )
            return [row_to_cursor(execution_id, r) for r in rows]

        return await self._read(run)

    async def children_output(self, execution_id: int, parent: str) -> str:
        def run(conn: sqlite3.Connection) -> str:
            rows = conn.execute(
                "SELECT coalesce(output, 'null') FROM cursors"
                " WHERE execution_id = ? AND parent = ? AND status NOT IN (?, ?)"
                " ORDER BY slot",
                (execution_id, parent, RUNNING, QUEUED),
            )
            joined = io.StringIO()  # one output at a time: never a list of them all
            joined.write("[")
            for n, (output,) in enumerate(rows):
                joined.write("," + output if n else output)
            joined.write("]")
            return joined.getvalue()

        return await self._read(run)

    async def get_execution(self, execution_id: int) -> Execution | None:
        def get(conn: sqlite3.Connection) -> Execution | None:
            row = conn.execute(
                f"SELECT {COLUMNS} FROM executions WHERE id = ?",  # noqa: S608
                (execution_id,),
            ).fetchone()
            return None if row is None else row_to_execution(row)

        return await self._read(get)

    async def find_execution(self, machine: str, name: str) -> Execution | None:
        def find(conn: sqlite3.Connection) -> Execution | None:
            row = conn.execute(
                f"SELECT {COLUMNS} FROM executions WHERE machine = ? AND name = ?",  # noqa: S608
                (machine, name),
            ).fetchone()
            return None if row is None else row_to_execution(row)

        return await self._read(find)

    async def list_executions(
        self,
        *,
        machine: str | None,
        status: str | None,
        limit: int,
        before_id: int | None,
        redriven: bool | None = None,
    ) -> list[Execution]:
        sql, params = list_query(
            "?",
            machine=machine,
            status=status,
            limit=limit,
            before_id=before_id,
            redriven=redriven,
        )

        def run(conn: sqlite3.Connection) -> list[Execution]:
            return [row_to_execution(r) for r in conn.execute(sql, params)]

        return await self._read(run)

    async def history(
        self, execution_id: int, *, reverse: bool, limit: int, after: int | None
    ) -> list[Event]:
        sql, params = history_query("?", execution_id, reverse=reverse, limit=limit, after=after)

        def run(conn: sqlite3.Connection) -> list[Event]:
            rows = conn.execute(sql, params).fetchall()
            return history_events(rows, reverse=reverse, limit=limit, after=after)

        return await self._read(run)

    async def due(self, before: float, limit: int) -> Sequence[tuple[int, float]]:
        def run(conn: sqlite3.Connection) -> list[tuple[int, float]]:
            rows = conn.execute(
                "SELECT id, due_at FROM executions WHERE due_at IS NOT NULL AND due_at < ?"
                " ORDER BY due_at, id LIMIT ?",
                (before, limit),
            )
            return [(int(r[0]), float(r[1])) for r in rows]

        return await self._read(run)

    async def purge_closed(self, before: float, limit: int) -> int:
        def purge(conn: sqlite3.Connection) -> int:
            ids = [
                (row[0],)
                for row in conn.execute(
                    "SELECT id FROM executions WHERE due_at IS NULL AND status != ?"
                    " AND stop_date < ? ORDER BY stop_date, id LIMIT ?",
                    (RUNNING, before, limit),
                )
            ]
            conn.executemany("DELETE FROM events WHERE execution_id = ?", ids)
            conn.executemany("DELETE FROM cursors WHERE execution_id = ?", ids)
            conn.executemany("DELETE FROM executions WHERE id = ?", ids)
            conn.executemany("DELETE FROM child_links WHERE child_id = ?", ids)
            conn.executemany("DELETE FROM child_links WHERE parent_id = ?", ids)
            return len(ids)

        return await self._write(purge)

    async def count_by_status(self) -> dict[str, int]:
        def run(conn: sqlite3.Connection) -> dict[str, int]:
            rows = conn.execute("SELECT status, count(*) FROM executions GROUP BY status")
            return {str(r[0]): int(r[1]) for r in rows}

        return await self._read(run)

    async def falling_due(
        self, start: float, end: float, *, machine: str | None, limit: int
    ) -> list[Execution]:
        where = "due_at IS NOT NULL AND due_at >= ? AND due_at < ? AND status = ?"
        params: list[Any] = [start, end, RUNNING]
        if machine is not None:
            where += " AND machine = ?"
            params.append(machine)
        sql = f"SELECT {COLUMNS} FROM executions WHERE {where} ORDER BY due_at, id LIMIT ?"  # noqa: S608
        params.append(limit)

        def run(conn: sqlite3.Connection) -> list[Execution]:
            return [row_to_execution(r) for r in conn.execute(sql, params)]

        return await self._read(run)

    async def outbox(self, limit: int) -> list[Notice]:
        def run(conn: sqlite3.Connection) -> list[Notice]:
            rows = conn.execute(
                "SELECT id, key, execution_id, machine, name, status, error, cause, stop_date"
                " FROM outbox ORDER BY id LIMIT ?",
                (limit,),
            )
            return [Notice(**dict(r)) for r in rows]

        return await self._read(run)

    async def outbox_done(self, ids: Sequence[int]) -> None:
        def done(conn: sqlite3.Connection) -> None:
            conn.executemany("DELETE FROM outbox WHERE id = ?", [(i,) for i in ids])

        await self._write(done)

    # -- activities ------------------------------------------------------------------

    async def create_activity(self, name: str, created_at: float) -> Activity:
        def create(conn: sqlite3.Connection) -> Activity:
            conn.execute(
                "INSERT OR IGNORE INTO activities (name, created_at) VALUES (?, ?)",
                (name, created_at),
            )
            row = conn.execute(
                "SELECT created_at FROM activities WHERE name = ?", (name,)
            ).fetchone()
            return Activity(name=name, created_at=float(row[0]))

        return await self._write(create)

    async def delete_activity(self, name: str) -> None:
        def delete(conn: sqlite3.Connection) -> None:
            conn.execute("DELETE FROM activity_tasks WHERE activity = ?", (name,))
            conn.execute("DELETE FROM activities WHERE name = ?", (name,))

        await self._write(delete)

    async def list_activities(self) -> list[Activity]:
        def run(conn: sqlite3.Connection) -> list[Activity]:
            rows = conn.execute("SELECT name, created_at FROM activities ORDER BY name")
            return [Activity(name=str(r[0]), created_at=float(r[1])) for r in rows]

        return await self._read(run)

    async def queue_activity_task(self, task: ActivityTask) -> None:
        def queue(conn: sqlite3.Connection) -> None:
            conn.execute(
                "INSERT OR REPLACE INTO activity_tasks (token, activity, input, queued_at)"
                " VALUES (?, ?, ?, ?)",
                (task.token, task.activity, task.input, task.queued_at),
            )

        await self._write(queue)

    async def take_activity_task(self, activity: str) -> ActivityTask | None:
        def take(conn: sqlite3.Connection) -> ActivityTask | None:
            row = conn.execute(
                "SELECT token, input, queued_at FROM activity_tasks WHERE activity = ?"
                " ORDER BY queued_at, token LIMIT 1",
                (activity,),
            ).fetchone()
            if row is None:
                return None
            conn.execute("DELETE FROM activity_tasks WHERE token = ?", (row[0],))
            return ActivityTask(
                activity=activity, token=str(row[0]), input=str(row[1]), queued_at=float(row[2])
            )

        return await self._write(take)

    # -- nested executions -----------------------------------------------------------

    async def link_child(self, link: ChildLink) -> None:
        def link_it(conn: sqlite3.Connection) -> None:
            conn.execute(
                "INSERT OR IGNORE INTO child_links (child_id, parent_id, mode, token)"
                " VALUES (?, ?, ?, ?)",
                (link.child_id, link.parent_id, link.mode, link.token),
            )

        await self._write(link_it)

    async def child_links(
        self, *, parent_id: int | None = None, child_id: int | None = None
    ) -> list[ChildLink]:
        column, value = ("child_id", child_id) if child_id is not None else ("parent_id", parent_id)

        def run(conn: sqlite3.Connection) -> list[ChildLink]:
            rows = conn.execute(
                "SELECT child_id, parent_id, mode, token FROM child_links"  # noqa: S608
                f" WHERE {column} = ? ORDER BY child_id",
                (value,),
            )
            return [_link(r) for r in rows]

        return await self._read(run)

    async def live_links(self, limit: int) -> list[ChildLink]:
        def run(conn: sqlite3.Connection) -> list[ChildLink]:
            rows = conn.execute(
                "SELECT l.child_id, l.parent_id, l.mode, l.token FROM child_links l"
                " LEFT JOIN executions p ON p.id = l.parent_id"
                " LEFT JOIN executions c ON c.id = l.child_id"
                " WHERE p.status = ? OR c.status = ? ORDER BY l.child_id LIMIT ?",
                (RUNNING, RUNNING, limit),
            )
            return [_link(r) for r in rows]

        return await self._read(run)

    # -- tags ------------------------------------------------------------------------

    async def put_tags(self, resource: str, tags: Mapping[str, str], limit: int) -> bool:
        def put(conn: sqlite3.Connection) -> bool:
            keys = {
                str(r[0])
                for r in conn.execute("SELECT key FROM tags WHERE resource = ?", (resource,))
            }
            if len(keys | set(tags)) > limit:
                return False
            conn.executemany(
                "INSERT OR REPLACE INTO tags (resource, key, value) VALUES (?, ?, ?)",
                [(resource, key, value) for key, value in tags.items()],
            )
            return True

        return await self._write(put)

    async def remove_tags(self, resource: str, keys: Sequence[str]) -> None:
        def remove(conn: sqlite3.Connection) -> None:
            conn.executemany(
                "DELETE FROM tags WHERE resource = ? AND key = ?", [(resource, k) for k in keys]
            )

        await self._write(remove)

    async def tags_of(self, resource: str) -> dict[str, str]:
        def run(conn: sqlite3.Connection) -> dict[str, str]:
            rows = conn.execute(
                "SELECT key, value FROM tags WHERE resource = ? ORDER BY key", (resource,)
            )
            return {str(r[0]): str(r[1]) for r in rows}

        return await self._read(run)


def _endpoints_text(endpoints: Mapping[str, str]) -> str:
    """A definition's endpoints as stored: a JSON object, its keys sorted."""
    return json.dumps(endpoints, ensure_ascii=False, separators=(",", ":"), sort_keys=True)


def _link(row: Sequence[Any]) -> ChildLink:
    return ChildLink(
        child_id=int(row[0]),
        parent_id=int(row[1]),
        mode=str(row[2]),
        token=None if row[3] is None else str(row[3]),
    )


def read_version(path: Path) -> StoreVersion | None:
    """What the store at `path` says of its version, read without taking it over; None
    when there is no store there yet. Raises StoreError."""
    if not path.exists():
        return None
    with _reading(path) as conn:
        return _read_version(conn)


def left_behind(path: Path) -> str | None:
    """With PostgreSQL configured ([store] url), what the SQLite store still at `path` holds
    that will not run: "N executions (M running)", or None when there is no store there or
    it holds none (or cannot be read)."""
    try:
        counts = count_by_status(path)
    except StoreError:
        return None
    total = sum(counts.values())
    if not total:
        return None
    return f"{total} execution(s) ({counts.get('RUNNING', 0)} running)"


def count_by_status(path: Path) -> dict[str, int]:
    """The number of executions in each status in the store at `path` (a status no execution
    has is absent), read without taking the store over. Raises StoreNotFound when there is no
    store there, StoreError when it cannot be read."""
    if not path.exists():
        raise StoreNotFound(f"{path}: no store there")
    with _reading(path) as conn:
        if _read_version(conn).schema == 0:  # an empty database: stepd never opened it
            return {}
        rows = conn.execute("SELECT status, count(*) FROM executions GROUP BY status")
        return {str(r[0]): int(r[1]) for r in rows}


@contextlib.contextmanager
def _reading(path: Path) -> Iterator[sqlite3.Connection]:
    """A read-only connection to the store at `path`, which a daemon may be using; its
    SQLite errors raised as StoreError."""
    try:
        conn = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
        try:
            conn.execute(f"PRAGMA busy_timeout = {BUSY_TIMEOUT_MS}")
            yield conn
        finally:
            conn.close()
    except sqlite3.Error as exc:
        raise StoreError(f"{path}: cannot read the database: {exc}") from exc


def refusal(path: Path) -> str | None:
    """Why this stepd would refuse the store at `path` (written by a newer one); None when it
    would open it. Raises StoreError when it cannot be read."""
    found = read_version(path)
    if found is None:
        return None
    return too_new(found, schema=SCHEMA_VERSION, record_format=FORMAT_VERSION, version=__version__)


def _read_version(conn: sqlite3.Connection) -> StoreVersion:
    schema = int(conn.execute("PRAGMA user_version").fetchone()[0])
    has_meta = conn.execute(
        "SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = 'meta'"
    ).fetchone()
    meta: dict[str, str] = {}
    if has_meta:
        meta = {str(k): str(v) for k, v in conn.execute("SELECT key, value FROM meta")}
    record_format = meta.get("record_format")
    return StoreVersion(
        schema=schema,
        record_format=int(record_format) if record_format is not None else None,
        written_by=meta.get("written_by"),
    )


def _append_events(
    conn: sqlite3.Connection, execution_id: int, last_id: int, events: Sequence[NewEvent]
) -> None:
    conn.executemany(EVENTS_SQL, event_rows(execution_id, last_id, events))


def backup(path: Path, target: Path) -> StoreVersion:
    """Copy the store at `path` to a new file `target`, consistent as of one instant, while a
    daemon may be writing it (SQLite's online backup; the daemon is not stopped or locked
    out). Returns the copy's version. Raises StoreNotFound when there is no store at `path`,
    StoreError when `target` exists or either cannot be used."""
    try:
        path.stat()
    except FileNotFoundError:
        raise StoreNotFound(f"{path}: no store there") from None
    except OSError as exc:
        raise StoreError(f"{path}: {exc.strerror or exc}") from exc
    if target.exists():
        raise StoreError(f"{target}: exists; a backup never overwrites a file")
    if not target.parent.is_dir():
        raise StoreError(f"{target}: no folder {target.parent}")
    partial = target.with_name(target.name + ".partial")
    try:
        source = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
        try:
            source.execute(f"PRAGMA busy_timeout = {BUSY_TIMEOUT_MS}")
            copy = sqlite3.connect(partial)
            try:
                source.backup(copy)
                copy.execute("PRAGMA journal_mode = DELETE")
                version = _read_version(copy)
            finally:
                copy.close()
        finally:
            source.close()
        with partial.open("rb+") as handle:
            os.fsync(handle.fileno())
        partial.rename(target)
        folder = os.open(target.parent, os.O_RDONLY)
        try:
            os.fsync(folder)
        finally:
            os.close(folder)
    except sqlite3.Error as exc:
        partial.unlink(missing_ok=True)
        raise StoreError(f"{path}: backup to {target} failed: {exc}") from exc
    except OSError as exc:
        partial.unlink(missing_ok=True)
        raise StoreError(f"{target}: {exc.strerror or exc}") from exc
    return version
