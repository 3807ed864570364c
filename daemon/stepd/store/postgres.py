"""The PostgreSQL store: the store port on a database that several stepd nodes share.

Each write is one transaction on a connection of a pool (psycopg 3, async); an acknowledged
write is committed (synchronous_commit as the server has it, `on` by default). A transition
is a compare-and-set on the execution's version, so of two transitions computed from one
version, from this node or another, exactly one applies. Migrations run in one transaction
under an advisory lock, so nodes starting together migrate once; a node refuses a store whose
schema or record format is newer than it knows (StoreTooNew), changing nothing.

The URL's password is never taken from the URL text: it comes from a file or a systemd
credential (stepd.config) and is handed to the driver apart, so it is in no message.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import math
import time
import weakref
from collections.abc import AsyncIterator, Mapping, Sequence
from contextlib import asynccontextmanager
from typing import Any

import psycopg
from psycopg.conninfo import conninfo_to_dict
from psycopg.rows import dict_row
from psycopg_pool import AsyncConnectionPool
from psycopg_pool.base import AttemptWithBackoff

from stepd import __version__
from stepd.errors import (
    ClaimLost,
    ConnectionLost,
    StoreError,
    StoreRefused,
    StoreTooNew,
    StoreUnreachable,
)
from stepd.store.base import Store
from stepd.store.formats import FORMAT_VERSION
from stepd.store.pg_batch import CommitGroups, add_notices, again
from stepd.store.pg_create import CreateGroups
from stepd.store.pg_hints import Hints
from stepd.store.pg_schema import MIGRATIONS, SCHEMA_VERSION
from stepd.store.records import (
    ABORTED,
    NOTICED,
    PHASE_FANOUT,
    PHASE_TASK,
    QUEUED,
    RUNNING,
    SUCCEEDED,
    Activity,
    ActivityTask,
    ChildLink,
    Cursor,
    Event,
    Execution,
    NewExecution,
    Notice,
    Progress,
    Transition,
)
from stepd.store.rows import (
    COLUMNS,
    CURSOR_COLUMNS,
    EVENT_COLUMNS,
    NOTICE_COLUMNS,
    PROGRESS_COLUMNS,
    event_rows,
    history_events,
    history_query,
    list_query,
    notice_row,
    progress_values,
    row_to_cursor,
    row_to_execution,
)
from stepd.store.schema import StoreVersion, too_new

Conn = psycopg.AsyncConnection[dict[str, Any]]

MIGRATION_LOCK = 0x73746570_64000001  # pg_advisory_xact_lock key: "stepd", migrations
TAGS_LOCK = 0x73746570  # pg_advisory_xact_lock(int, int) class: "step", a resource's tags
POOL_SIZE = 10
CONNECT_SECONDS = 5.0
# A connection that stops answering is given up after this (TCP keepalives, and the kernel's
# timeout for unacknowledged data), so a lost database is an error, never a hang.
TCP_SECONDS = 5
STATEMENT_TIMEOUT_MS = 30_000
# The pool tries again to connect to a database that went away every RECONNECT_SECONDS, not
# with its default backoff (1 s, doubling): after a restart of the database the backlog goes
# out within a fraction of a second of it accepting connections, not up to 8 s later.
RECONNECT_SECONDS = 0.2
AttemptWithBackoff.INITIAL_DELAY = RECONNECT_SECONDS
AttemptWithBackoff.DELAY_BACKOFF = 1.0
# A connection is checked (an empty query, one round trip) as the pool hands it out only when
# it has not been used well for this long: under load each write and read would pay one more
# round trip for a check, while a connection broken by a query is discarded anyway, and one
# idle through a restart of the database is checked.
CHECK_IDLE_SECONDS = 0.5

UPDATE_SQL = (
    "UPDATE executions SET "  # noqa: S608
    + ", ".join(f"{column} = %s" for column in (*PROGRESS_COLUMNS.values(), "last_event_id"))
    + ", version = %s WHERE id = %s AND version = %s"
)
REDRIVE_SQL = (
    "UPDATE executions SET redrive_count = %s, redrive_date = %s, redrive_token = %s WHERE id = %s"
)
INPUT_SQL = "UPDATE executions SET input = %s WHERE id = %s"
UPSERT_CURSOR_SQL = (
    f"INSERT INTO cursors (execution_id, {CURSOR_COLUMNS})"  # noqa: S608
    f" VALUES (%s, %s, %s, %s, {', '.join('%s' for _ in PROGRESS_COLUMNS)})"
    " ON CONFLICT (execution_id, id) DO UPDATE SET parent = excluded.parent,"
    " slot = excluded.slot, "
    + ", ".join(f"{column} = excluded.{column}" for column in PROGRESS_COLUMNS.values())
)
# the descendants of a cursor: ids in [prefix + "/", prefix + "0") ("0" follows "/")
PRUNE_SQL = "DELETE FROM cursors WHERE execution_id = %s AND id >= %s AND id < %s"
# A node's transition: also only while the execution is not held by another node (but for
# StopExecution and UpdateExecution, which any node may apply: the holder's next write then
# fails its version check, as on one node) and this node's lease runs (its fencing token); the
# node keeps holding it, or lets it go (`holds`). An update applied by another node leaves a
# running execution with its holder (whose call in flight goes on, its answer then applied to
# the updated execution).
FENCED_UPDATE_SQL = (
    UPDATE_SQL.removesuffix(" WHERE id = %s AND version = %s")  # noqa: S608
    + ", owner = CASE WHEN %s AND owner IS NOT NULL AND owner <> %s THEN owner ELSE %s END"
    " WHERE id = %s AND version = %s AND (owner IS NULL OR owner = %s OR %s)"
    " AND EXISTS (SELECT 1 FROM nodes WHERE id = %s AND lease_until > clock_timestamp())"
)
LEASE_RUNS = "EXISTS (SELECT 1 FROM nodes WHERE id = %(node)s AND lease_until > clock_timestamp())"
# A claim takes (writes) what no node holds, locking it (another node taking it right now is
# skipped), and reads back, unlocked and unwritten, what this node holds already (id and due_at
# only, the rest NULL): a wake-up of an execution it claimed ahead of its instant costs no write.
# Each asked id is looked up by its key, whatever the statistics say: the conditions on it are
# written so that they imply no partial index's (`IS NOT DISTINCT FROM`, the coalesce), or a
# plan made while nobody held anything (or everything was held, or closed) reads a whole index
# of holders or of what falls due at every claim of a herd.
KEPT = ("id", "due_at")  # what a claim reads back of an execution this node holds already
DUE_BY = "coalesce(due_at, 'Infinity') <= %(before)s"
CLAIM_SQL = f"""
WITH taken AS (
    UPDATE executions AS e SET owner = %(node)s WHERE e.id = ANY(ARRAY(
        SELECT w.id FROM unnest(%(ids)b::int8[]) AS asked (id), LATERAL (
            SELECT id, due_at FROM executions
            WHERE id = asked.id AND {DUE_BY} AND owner IS NOT DISTINCT FROM NULL
            FOR UPDATE SKIP LOCKED
        ) AS w
        ORDER BY w.due_at, w.id LIMIT %(limit)s
    )) AND {LEASE_RUNS}
    RETURNING {COLUMNS}
)
SELECT NULL AS was, * FROM taken
UNION ALL
SELECT %(node)s, {", ".join(c if c in KEPT else "NULL" for c in COLUMNS.split(", "))}
FROM executions WHERE id = ANY(%(ids)b::int8[]) AND owner IS NOT DISTINCT FROM %(node)s
AND {DUE_BY} AND {LEASE_RUNS}
"""  # noqa: S608
DUE_SQL = (
    "SELECT id, due_at FROM executions WHERE due_at IS NOT NULL AND due_at < %s{held}"
    " ORDER BY due_at, id LIMIT %s"
)
ALL_DUE_SQL = DUE_SQL.format(held="")
UNHELD_SQL = DUE_SQL.format(held=" AND owner IS NULL")
# what no node holds (by executions_unheld_due) and, read apart, what this node holds
CLAIMABLE_SQL = (
    "(SELECT id, due_at FROM executions WHERE due_at IS NOT NULL AND due_at < %(before)s"
    " AND owner IS NULL ORDER BY due_at, id LIMIT %(limit)s)"
    " UNION ALL (SELECT id, due_at FROM executions WHERE owner = %(node)s"
    " AND due_at IS NOT NULL AND due_at < %(before)s ORDER BY due_at, id LIMIT %(limit)s)"
    " ORDER BY due_at, id LIMIT %(limit)s"
)
# The rows a claim took from no node are kept this long, at most CLAIMED_ROWS of them, for the
# engine's first read of each (one read per claim, not one per execution claimed).
CLAIMED_ROW_SECONDS = 10.0
CLAIMED_ROWS = 10_000
# A node's notifier reads the notices no live node has claimed, or that it claimed itself,
# and claims them (again) while its own lease runs: each closing is told by one node at a time;
# a node that dies or leaves lets its claims go with its lease, and another node tells of them
# (deliveries stay at least once: a node may die after a delivery, before its removal).
OUTBOX_CLAIM_SQL = f"""
UPDATE outbox SET claimed_by = %(node)s WHERE id IN (
    SELECT o.id FROM outbox o
    WHERE o.claimed_by IS NULL OR o.claimed_by = %(node)s OR NOT EXISTS (
        SELECT 1 FROM nodes n WHERE n.id = o.claimed_by AND n.lease_until > clock_timestamp())
    ORDER BY o.id LIMIT %(limit)s FOR UPDATE SKIP LOCKED
) AND EXISTS (SELECT 1 FROM nodes WHERE id = %(node)s AND lease_until > clock_timestamp())
RETURNING id, {NOTICE_COLUMNS}
"""  # noqa: S608
LEASED = " WHERE EXISTS (SELECT 1 FROM nodes WHERE id = %s AND lease_until > clock_timestamp())"
QUEUE_TASK_SQL = (
    "INSERT INTO activity_tasks (token, activity, input, queued_at)"
    " SELECT %s, %s, %s, %s::float8{where} ON CONFLICT (token) DO UPDATE SET"
    " activity = excluded.activity, input = excluded.input, queued_at = excluded.queued_at"
)
BY_NAME_SQL = f"SELECT {COLUMNS} FROM executions WHERE machine = %s AND name = %s"  # noqa: S608
# What a server's refusal to connect says when only a person can mend it (the password, the
# role, the database, pg_hba.conf); other failures (down, starting up, shutting down, too many
# connections, the network) are waited for.
REFUSALS = (
    "does not exist",
    "authentication failed",
    "no pg_hba.conf entry",
    "no password supplied",
    "permission denied",
)
HOLD_SECONDS = 1.0  # a node keeps holding an execution due this soon after its transition
EVENTS_SQL = f"INSERT INTO events ({EVENT_COLUMNS}) VALUES (%s, %s, %s, %s, %s, %s, %s)"  # noqa: S608


def describe(url: str) -> str:
    """The URL as messages show it: host, port and database, never a password."""
    try:
        parts = conninfo_to_dict(url)
    except psycopg.Error:
        return "postgresql://?"
    host = parts.get("host") or "localhost"
    port = parts.get("port") or "5432"
    return f"postgresql://{host}:{port}/{parts.get('dbname') or ''}"


def has_password(url: str) -> bool:
    """Whether the URL text carries a password (refused: secrets come from files)."""
    try:
        return bool(conninfo_to_dict(url).get("password"))
    except psycopg.Error:
        return False


def connect_kwargs(password: str | None) -> dict[str, Any]:
    kwargs: dict[str, Any] = {
        "connect_timeout": int(CONNECT_SECONDS),
        "keepalives": 1,
        "keepalives_idle": TCP_SECONDS,
        "keepalives_interval": 1,
        "keepalives_count": 3,
        "tcp_user_timeout": TCP_SECONDS * 1000,
        "options": f"-c statement_timeout={STATEMENT_TIMEOUT_MS}",
        "application_name": f"stepd {__version__}",
    }
    if password is not None:
        kwargs["password"] = password
    return kwargs


class PostgresStore(Store):
    def __init__(
        self, url: str, *, password: str | None = None, pool_size: int = POOL_SIZE
    ) -> None:
        self.url = url
        self.where = describe(url)
        self._password = password
        self._pool_size = pool_size
        self._pool: AsyncConnectionPool[Conn] | None = None
        self._active = 0
        self._closing = False
        # The node this store writes for, when several share the database (stepd.cluster);
        # None: one node, no holding and no fencing.
        self.node: str | None = None
        # Whether a node tells the others (NOTIFY) when what it lets go falls due soon
        # (stepd.store.pg_hints); off for a database or pooler without LISTEN/NOTIFY.
        self.notify = True
        self._idle = asyncio.Event()
        self._idle.set()
        self._hints = Hints(lambda: self.node if self.notify else None)
        self._groups = CommitGroups(self._connection, lambda: self.node, self._hints)
        self._creates = CreateGroups(self._connection, self._create_again, self._hints)
        # execution id -> (when, its row as this node's claim returned it); see `claim`
        self._claimed: dict[int, tuple[float, dict[str, Any]]] = {}
        # connection -> when a use of it last ended well (see CHECK_IDLE_SECONDS)
        self._used: weakref.WeakKeyDictionary[Conn, float] = weakref.WeakKeyDictionary()

    # -- lifecycle -------------------------------------------------------------------

    async def open(self) -> None:
        """Reach the database, then open the pool and migrate. StoreRefused when the server
        refuses this node, StoreUnreachable when it cannot be reached (the pool is not
        opened, so its attempts log nothing)."""
        if self._pool is not None:
            raise StoreError(f"{self.where}: the store is already open")
        try:
            probe = await psycopg.AsyncConnection.connect(
                self.url, **connect_kwargs(self._password)
            )
        except psycopg.Error as exc:
            cause = " ".join(str(exc).split())
            if any(sign in cause for sign in REFUSALS):
                raise StoreRefused(
                    f"{self.where}: the database refused this node: {cause}"
                ) from None
            raise StoreUnreachable(f"{self.where}: cannot reach the database: {cause}") from None
        await probe.close()
        pool: AsyncConnectionPool[Conn] = AsyncConnectionPool(
            self.url,
            kwargs={**connect_kwargs(self._password), "autocommit": True, "row_factory": dict_row},
            min_size=1,
            max_size=self._pool_size,
            open=False,
            check=self._check,
            timeout=CONNECT_SECONDS,
            name="stepd",
        )
        try:
            await pool.open(wait=True, timeout=CONNECT_SECONDS)
            async with pool.connection() as conn:
                await self._migrate(conn)
        except BaseException as exc:
            await pool.close()
            cause = " ".join(str(exc).split())
            if isinstance(exc, psycopg.errors.InsufficientPrivilege):  # a person must grant it
                raise StoreRefused(
                    f"{self.where}: the database refused this node: {cause} (the role needs to"
                    " own the database, or CREATE on its schema, to create and migrate the"
                    " store)"
                ) from None
            if isinstance(exc, psycopg.errors.ReadOnlySqlTransaction):  # a standby: wait
                raise StoreUnreachable(
                    f"{self.where}: the database is read-only (a standby?): {cause}"
                ) from None
            if isinstance(exc, psycopg.Error):
                raise StoreError(f"{self.where}: cannot open the database: {cause}") from None
            raise
        self._pool = pool

    async def _migrate(self, conn: Conn) -> None:
        async with conn.transaction():
            await conn.execute("SELECT pg_advisory_xact_lock(%s)", (MIGRATION_LOCK,))
            found = await _read_version(conn)
            reason = too_new(
                found, schema=SCHEMA_VERSION, record_format=FORMAT_VERSION, version=__version__
            )
            if reason is not None:
                raise StoreTooNew(f"{self.where}: {reason}")
            for script in MIGRATIONS[found.schema :]:
                await conn.execute(script.encode())
            await conn.cursor().executemany(
                "INSERT INTO meta (key, value) VALUES (%s, %s)"
                " ON CONFLICT (key) DO UPDATE SET value = excluded.value",
                [
                    ("schema", str(SCHEMA_VERSION)),
                    ("record_format", str(FORMAT_VERSION)),
                    ("written_by", __version__),
                ],
            )

    async def close(self) -> None:
        pool = self._pool
        if pool is None or self._closing:
            return
        self._closing = True  # no new write from here on
        await self._idle.wait()  # the writes already issued finish
        self._pool = None
        await pool.close()
        self._closing = False

    @asynccontextmanager
    async def _connection(self) -> AsyncIterator[Conn]:
        pool = self._pool
        if pool is None:
            raise StoreError("the store is not open")
        self._active += 1
        self._idle.clear()
        try:
            async with pool.connection() as conn:
                try:
                    yield conn
                except psycopg.Error as exc:
                    if conn.broken:
                        # The others may be broken too (a restart of the database breaks
                        # them all): the pool checks each one before it hands it out again.
                        self._used.clear()
                        raise ConnectionLost(f"{self.where}: {exc}") from exc
                    raise
                self._used[conn] = time.monotonic()
        except psycopg.Error as exc:
            raise StoreError(f"{self.where}: {exc}") from exc
        finally:
            self._active -= 1
            if self._active == 0:
                self._idle.set()

    async def _check(self, conn: Conn) -> None:
        """The pool's check of a connection it hands out (see CHECK_IDLE_SECONDS)."""
        if time.monotonic() - self._used.get(conn, -math.inf) >= CHECK_IDLE_SECONDS:
            await AsyncConnectionPool.check_connection(conn)

    @asynccontextmanager
    async def _transaction(self) -> AsyncIterator[Conn]:
        async with self._connection() as conn, conn.transaction():
            yield conn

    async def _fetch(
        self, sql: str, params: Sequence[Any] | dict[str, Any] = ()
    ) -> list[dict[str, Any]]:
        async def read() -> list[dict[str, Any]]:
            async with self._connection() as conn:
                cur = await conn.execute(sql.encode(), params)
                return await cur.fetchall()

        return await again(lambda _: read())

    # -- definitions -----------------------------------------------------------------

    async def put_definition(
        self, machine: str, body: str, endpoints: Mapping[str, str] | None = None
    ) -> int:
        digest = hashlib.sha256(body.encode()).hexdigest()
        given = json.dumps(dict(endpoints), ensure_ascii=False) if endpoints else None
        async with self._transaction() as conn:
            # a definition stored before gets the given endpoints over its own (jsonb `||`:
            # the right side's keys win), in the row's lock; unchanged when it has them all
            cur = await conn.execute(
                "INSERT INTO definitions (machine, sha256, body, created_at, endpoints)"
                " VALUES (%s, %s, %s, %s, %s::jsonb) ON CONFLICT (machine, sha256) DO UPDATE"
                " SET endpoints = coalesce(definitions.endpoints, '{}'::jsonb)"
                " || excluded.endpoints"
                " WHERE excluded.endpoints IS NOT NULL"
                " AND NOT coalesce(definitions.endpoints, '{}'::jsonb) @> excluded.endpoints"
                " RETURNING id",
                (machine, digest, body, time.time(), given),
            )
            row = await cur.fetchone()
            if row is None:
                cur = await conn.execute(
                    "SELECT id FROM definitions WHERE machine = %s AND sha256 = %s",
                    (machine, digest),
                )
                row = await cur.fetchone()
            assert row is not None
            return int(row["id"])

    async def first_registered(self, machine: str) -> float | None:
        rows = await self._fetch(
            "SELECT min(created_at) AS first FROM definitions WHERE machine = %s", (machine,)
        )
        first = rows[0]["first"] if rows else None
        return None if first is None else float(first)

    async def get_definition(self, definition_id: int) -> str:
        rows = await self._fetch("SELECT body FROM definitions WHERE id = %s", (definition_id,))
        if not rows:
            raise StoreError(f"definition {definition_id} is not in the store")
        return str(rows[0]["body"])

    async def get_definition_endpoints(self, definition_id: int) -> dict[str, str]:
        rows = await self._fetch(
            "SELECT endpoints FROM definitions WHERE id = %s", (definition_id,)
        )
        if not rows:
            raise StoreError(f"definition {definition_id} is not in the store")
        return dict(rows[0]["endpoints"] or {})

    # -- executions ------------------------------------------------------------------

    async def create_execution(self, new: NewExecution) -> tuple[Execution, bool]:
        if self._pool is None or self._closing:
            raise StoreError("the store is not open")
        if new.cursors:
            return await self._create_again(new)
        self._active += 1
        self._idle.clear()
        try:
            return await self._creates.create(new)
        finally:
            self._active -= 1
            if self._active == 0:
                self._idle.set()

    async def _create_again(self, new: NewExecution) -> tuple[Execution, bool]:
        """`_create_alone`, made again when its connection broke."""
        return await again(lambda made_again: self._create_alone(new, made_again=made_again))

    async def _create_alone(
        self, new: NewExecution, *, made_again: bool = False
    ) -> tuple[Execution, bool]:
        """An execution (with its children's cursors), in a transaction of its own."""
        columns: dict[str, Any] = {
            "machine": new.machine,
            "name": new.name,
            "definition_id": new.definition_id,
            "input": new.input,
            "start_date": new.start_date,
            "uid": new.uid,
        }
        columns.update(zip(PROGRESS_COLUMNS.values(), progress_values(new.progress), strict=True))
        columns["last_event_id"] = len(new.events)
        events = event_rows(0, 0, new.events)  # the JSON checked before anything is written
        insert = (
            f"INSERT INTO executions ({', '.join(columns)})"  # noqa: S608
            f" VALUES ({', '.join('%s' for _ in columns)})"
            f" ON CONFLICT (machine, name) DO NOTHING RETURNING {COLUMNS}"
        )
        async with self._connection() as conn:
            async with conn.transaction():
                cur = await conn.execute(insert.encode(), tuple(columns.values()))
                row = await cur.fetchone()
                if row is None:  # there already, or created meanwhile by another node
                    cur = await conn.execute(BY_NAME_SQL.encode(), (new.machine, new.name))
                    existing = await cur.fetchone()
                    if existing is None:
                        raise StoreError(f"execution {new.machine}/{new.name}: created and purged")
                    found = row_to_execution(existing)
                    # with this create's uid when it was applied on a connection that broke
                    # before it answered, and is made again
                    return found, made_again and found.uid == new.uid
                execution_id = int(row["id"])
                await _append(conn, [(execution_id, *event[1:]) for event in events])
                await _write_cursors(conn, execution_id, (), new.cursors)
                created = row_to_execution(row)
                if created.status in NOTICED:
                    await add_notices(conn, [notice_row(created)])
            await _hint(self._hints, conn, created, held=False)
        return created, True

    async def commit(self, transition: Transition) -> Execution | None:
        if self._pool is None or self._closing:
            raise StoreError("the store is not open")
        self._claimed.pop(transition.base.id, None)  # what it read is older than this
        if (
            transition.cursors
            or transition.pruned
            or transition.redrive is not None
            or transition.input is not None
        ):
            return await again(lambda _: self._commit_alone(transition))
        node = self.node
        owner = node if node is not None and holds(transition.progress) else None
        self._active += 1
        self._idle.clear()
        try:
            return await self._groups.commit(transition, owner)
        finally:
            self._active -= 1
            if self._active == 0:
                self._idle.set()

    async def _commit_alone(self, transition: Transition) -> Execution | None:
        """A transition that also writes cursors, a redrive or a new input, in a transaction of
        its own."""
        base = transition.base
        events = event_rows(base.id, base.last_event_id, transition.events)
        params = (
            *progress_values(transition.progress),
            base.last_event_id + len(transition.events),
            base.version + 1,
            base.id,
            base.version,
        )
        node = self.node
        if node is not None:
            owner = node if holds(transition.progress) else None
            update = transition.input is not None
            keep = update and transition.progress.status == RUNNING
            any_node = update or transition.progress.status == ABORTED
            params = (
                *params[:-2],
                keep,
                node,
                owner,
                base.id,
                base.version,
                node,
                any_node,
                node,
            )
        async with self._connection() as conn:
            async with conn.transaction():
                moved = await self._update_alone(conn, transition, params, events, node)
            if moved is not None and node is not None:
                await _hint(self._hints, conn, moved, held=holds(transition.progress))
        return moved

    async def _update_alone(
        self,
        conn: Conn,
        transition: Transition,
        params: tuple[Any, ...],
        events: Sequence[tuple[Any, ...]],
        node: str | None,
    ) -> Execution | None:
        """`_commit_alone`'s writes, in `conn`'s transaction: the execution as they left it,
        or None (changed since it was read)."""
        base = transition.base
        cur = await conn.execute(
            (UPDATE_SQL if node is None else FENCED_UPDATE_SQL).encode(), params
        )
        if cur.rowcount == 0:
            if node is not None:
                await self._refused(conn, base)
            return None
        redrive = transition.redrive
        if redrive is not None:
            await conn.execute(REDRIVE_SQL, (redrive.count, redrive.date, redrive.token, base.id))
        if transition.input is not None:
            await conn.execute(INPUT_SQL, (transition.input, base.id))
        await _append(conn, events)
        await _write_cursors(conn, base.id, transition.pruned, transition.cursors)
        moved = transition.applied()
        if base.status == RUNNING and moved.status in NOTICED:
            await add_notices(conn, [notice_row(moved)])
        return moved

    async def _refused(self, conn: Conn, base: Execution) -> None:
        """Raise ClaimLost when a fenced transition was refused for its holder or this node's
        lease, not for its version (then the caller reads it again, as for any store)."""
        cur = await conn.execute("SELECT version, owner FROM executions WHERE id = %s", (base.id,))
        row = await cur.fetchone()
        if row is not None and row["version"] == base.version:
            holder = row["owner"]
            why = f"node {holder} holds it" if holder not in (None, self.node) else "lease ran out"
            raise ClaimLost(f"execution {base.machine}/{base.name}: not written: {why}")

    async def claim(
        self, ids: Sequence[int], *, before: float, limit: int
    ) -> list[tuple[int, float]]:
        """Take, for this node, up to `limit` of the executions `ids` that are due before
        `before` and held by no node (those another node is taking right now are skipped),
        with those of `ids` due then that this node holds already; (id, due_at) of those taken.
        Nothing while this node's lease is not valid.

        The rows taken from no node are kept a while: `get_execution` of one of them, the
        engine's first read after the claim, answers with it, as the engine's own cache of
        what it committed would (a row changed since, by a StopExecution on another node,
        fails its version check at the next commit, which reads it again). A row this node
        held already is not kept (its engine may be writing it right now), and one whose call
        is in flight is read again (it is sent again without a commit before)."""
        if self.node is None:
            raise StoreError("claim: this store writes for no node")
        rows = await self._fetch(
            CLAIM_SQL,
            {"node": self.node, "ids": list(ids), "before": before, "limit": limit},
        )
        now = time.monotonic()
        claimed = self._claimed
        while claimed:  # the oldest first: forget those the engine did not read
            first = next(iter(claimed))
            if now - claimed[first][0] < CLAIMED_ROW_SECONDS and len(claimed) < CLAIMED_ROWS:
                break
            del claimed[first]
        for row in rows:
            execution_id = int(row["id"])
            claimed.pop(execution_id, None)
            if row["was"] is None:
                claimed[execution_id] = (now, row)
        return [(int(r["id"]), float(r["due_at"])) for r in rows]

    async def running_cursors(self, execution_id: int) -> list[Cursor]:
        rows = await self._fetch(
            f"SELECT {CURSOR_COLUMNS} FROM cursors"  # noqa: S608
            " WHERE execution_id = %s AND status = %s ORDER BY parent, slot",
            (execution_id, RUNNING),
        )
        return [row_to_cursor(execution_id, r) for r in rows]

    async def get_cursor(self, execution_id: int, cursor_id: str) -> Cursor | None:
        rows = await self._fetch(
            f"SELECT {CURSOR_COLUMNS} FROM cursors WHERE execution_id = %s AND id = %s",  # noqa: S608
            (execution_id, cursor_id),
        )
        return row_to_cursor(execution_id, rows[0]) if rows else None

    async def finished_children(
        self, execution_id: int, parent: str, *, unsucceeded_only: bool = False
    ) -> list[Cursor]:
        left_out = (RUNNING, QUEUED, SUCCEEDED if unsucceeded_only else RUNNING)
        rows = await self._fetch(
            f"SELECT {CURSOR_COLUMNS} FROM cursors"  # noqa: S608
            " WHERE execution_id = %s AND parent = %s AND status NOT IN (%s, %s, %s)"
            " ORDER BY slot",
            (execution_id, parent, *left_out),
        )
        return [row_to_cursor(execution_id, r) for r in rows]

    async def children_output(self, execution_id: int, parent: str) -> str:
        # joined by the database: one text comes back, never a row per child
        rows = await self._fetch(
            "SELECT '[' || coalesce(string_agg(coalesce(output, 'null'), ',' ORDER BY slot), '')"
            " || ']' AS joined FROM cursors"
            " WHERE execution_id = %s AND parent = %s AND status NOT IN (%s, %s)",
            (execution_id, parent, RUNNING, QUEUED),
        )
        return str(rows[0]["joined"])

    async def get_execution(self, execution_id: int) -> Execution | None:
        kept = self._claimed.pop(execution_id, None)
        if kept is not None and time.monotonic() - kept[0] < CLAIMED_ROW_SECONDS:
            execution = row_to_execution(kept[1])
            task = execution.task
            if task is None or not task.sent:  # a call sent again is sent as it is now
                return execution
        rows = await self._fetch(
            f"SELECT {COLUMNS} FROM executions WHERE id = %s",  # noqa: S608
            (execution_id,),
        )
        return row_to_execution(rows[0]) if rows else None

    async def held_here(self, execution_id: int) -> bool:
        node = self.node
        if node is None:
            return True
        # by its key, whatever the statistics say of the index of holders (see CLAIM_SQL)
        rows = await self._fetch("SELECT owner FROM executions WHERE id = %s", (execution_id,))
        return bool(rows) and rows[0]["owner"] == node

    async def find_execution(self, machine: str, name: str) -> Execution | None:
        rows = await self._fetch(
            f"SELECT {COLUMNS} FROM executions WHERE machine = %s AND name = %s",  # noqa: S608
            (machine, name),
        )
        return row_to_execution(rows[0]) if rows else None

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
            "%s",
            machine=machine,
            status=status,
            limit=limit,
            before_id=before_id,
            redriven=redriven,
        )
        return [row_to_execution(r) for r in await self._fetch(sql, params)]

    async def history(
        self, execution_id: int, *, reverse: bool, limit: int, after: int | None
    ) -> list[Event]:
        sql, params = history_query("%s", execution_id, reverse=reverse, limit=limit, after=after)
        rows = await self._fetch(sql, params)
        return history_events(rows, reverse=reverse, limit=limit, after=after)

    async def due(self, before: float, limit: int) -> Sequence[tuple[int, float]]:
        rows = await self._fetch(ALL_DUE_SQL, (before, limit))
        return [(int(r["id"]), float(r["due_at"])) for r in rows]

    async def claimable(
        self, before: float, limit: int, *, own: bool = True
    ) -> Sequence[tuple[int, float]]:
        """`due`, for a node of several: only what no node holds (and, with `own`, what this
        node holds), the rest being another node's to run."""
        if self.node is None:
            return await self.due(before, limit)
        if own:
            rows = await self._fetch(
                CLAIMABLE_SQL, {"before": before, "node": self.node, "limit": limit}
            )
        else:
            rows = await self._fetch(UNHELD_SQL, (before, limit))
        return [(int(r["id"]), float(r["due_at"])) for r in rows]

    async def purge_closed(self, before: float, limit: int) -> int:
        async with self._transaction() as conn:
            cur = await conn.execute(
                "SELECT id FROM executions WHERE due_at IS NULL AND status != %s"
                " AND stop_date < %s ORDER BY stop_date, id LIMIT %s FOR UPDATE SKIP LOCKED",
                (RUNNING, before, limit),
            )
            ids = [int(r["id"]) for r in await cur.fetchall()]
            for table, column in (
                ("events", "execution_id"),
                ("cursors", "execution_id"),
                ("child_links", "child_id"),
                ("child_links", "parent_id"),
            ):
                await conn.execute(
                    f"DELETE FROM {table} WHERE {column} = ANY(%s)".encode(),  # noqa: S608
                    (ids,),
                )
            await conn.execute("DELETE FROM executions WHERE id = ANY(%s)", (ids,))
        return len(ids)

    async def count_by_status(self) -> dict[str, int]:
        rows = await self._fetch("SELECT status, count(*) AS n FROM executions GROUP BY status")
        return {str(r["status"]): int(r["n"]) for r in rows}

    async def falling_due(
        self, start: float, end: float, *, machine: str | None, limit: int
    ) -> list[Execution]:
        where = "due_at IS NOT NULL AND due_at >= %s AND due_at < %s AND status = %s"
        params: list[Any] = [start, end, RUNNING]
        if machine is not None:
            where += " AND machine = %s"
            params.append(machine)
        params.append(limit)
        rows = await self._fetch(
            f"SELECT {COLUMNS} FROM executions WHERE {where} ORDER BY due_at, id LIMIT %s",  # noqa: S608
            params,
        )
        return [row_to_execution(r) for r in rows]

    async def outbox(self, limit: int) -> list[Notice]:
        """Also, for a node of several: claims the notices it returns for this node, so that
        one node's notifier tells of each closing (see OUTBOX_CLAIM_SQL)."""
        if self.node is None:
            rows = await self._fetch(
                f"SELECT id, {NOTICE_COLUMNS} FROM outbox ORDER BY id LIMIT %s",  # noqa: S608
                (limit,),
            )
        else:
            rows = await self._fetch(OUTBOX_CLAIM_SQL, {"node": self.node, "limit": limit})
            rows.sort(key=lambda r: int(r["id"]))
        return [Notice(**r) for r in rows]

    async def outbox_done(self, ids: Sequence[int]) -> None:
        async with self._transaction() as conn:
            await conn.execute("DELETE FROM outbox WHERE id = ANY(%s)", (list(ids),))

    # -- activities ------------------------------------------------------------------

    async def create_activity(self, name: str, created_at: float) -> Activity:
        async with self._transaction() as conn:
            await conn.execute(
                "INSERT INTO activities (name, created_at) VALUES (%s, %s)"
                " ON CONFLICT (name) DO NOTHING",
                (name, created_at),
            )
            cur = await conn.execute("SELECT created_at FROM activities WHERE name = %s", (name,))
            row = await cur.fetchone()
        if row is None:  # deleted by another node right after
            return Activity(name=name, created_at=created_at)
        return Activity(name=name, created_at=float(row["created_at"]))

    async def delete_activity(self, name: str) -> None:
        async with self._transaction() as conn:
            await conn.execute("DELETE FROM activity_tasks WHERE activity = %s", (name,))
            await conn.execute("DELETE FROM activities WHERE name = %s", (name,))

    async def list_activities(self) -> list[Activity]:
        rows = await self._fetch("SELECT name, created_at FROM activities ORDER BY name")
        return [Activity(name=str(r["name"]), created_at=float(r["created_at"])) for r in rows]

    async def queue_activity_task(self, task: ActivityTask) -> None:
        """Also, for a node of several: only while this node's lease runs (the queueing is
        the task's call: a node cut off from the database sends nothing), else ClaimLost."""
        values = (task.token, task.activity, task.input, task.queued_at)
        fenced = self.node is not None
        sql = QUEUE_TASK_SQL.format(where=LEASED if fenced else "")
        async with self._transaction() as conn:
            cur = await conn.execute(sql.encode(), (*values, self.node) if fenced else values)
            if cur.rowcount == 0:
                raise ClaimLost(f"activity task {task.token}: not queued: lease ran out")

    async def take_activity_task(self, activity: str) -> ActivityTask | None:
        # a task another node is taking right now is skipped: each goes to one worker
        async with self._transaction() as conn:
            cur = await conn.execute(
                "DELETE FROM activity_tasks WHERE token = ("
                " SELECT token FROM activity_tasks WHERE activity = %s"
                " ORDER BY queued_at, token LIMIT 1 FOR UPDATE SKIP LOCKED)"
                " RETURNING token, input, queued_at",
                (activity,),
            )
            row = await cur.fetchone()
        if row is None:
            return None
        return ActivityTask(
            activity=activity,
            token=str(row["token"]),
            input=str(row["input"]),
            queued_at=float(row["queued_at"]),
        )

    # -- nested executions -----------------------------------------------------------

    async def link_child(self, link: ChildLink) -> None:
        async with self._transaction() as conn:
            await conn.execute(
                "INSERT INTO child_links (child_id, parent_id, mode, token)"
                " VALUES (%s, %s, %s, %s) ON CONFLICT (child_id) DO NOTHING",
                (link.child_id, link.parent_id, link.mode, link.token),
            )

    async def child_links(
        self, *, parent_id: int | None = None, child_id: int | None = None
    ) -> list[ChildLink]:
        column, value = ("child_id", child_id) if child_id is not None else ("parent_id", parent_id)
        rows = await self._fetch(
            "SELECT child_id, parent_id, mode, token FROM child_links"  # noqa: S608
            f" WHERE {column} = %s ORDER BY child_id",
            (value,),
        )
        return [ChildLink(**r) for r in rows]

    async def live_links(self, limit: int) -> list[ChildLink]:
        rows = await self._fetch(
            "SELECT l.child_id, l.parent_id, l.mode, l.token FROM child_links l"
            " LEFT JOIN executions p ON p.id = l.parent_id"
            " LEFT JOIN executions c ON c.id = l.child_id"
            " WHERE p.status = %s OR c.status = %s ORDER BY l.child_id LIMIT %s",
            (RUNNING, RUNNING, limit),
        )
        return [ChildLink(**r) for r in rows]

    # -- tags ------------------------------------------------------------------------

    async def put_tags(self, resource: str, tags: Mapping[str, str], limit: int) -> bool:
        async with self._transaction() as conn:
            # one put of a resource at a time, from any node: the count below stays true
            await conn.execute(
                "SELECT pg_advisory_xact_lock(%s::int4, hashtext(%s))", (TAGS_LOCK, resource)
            )
            cur = await conn.execute("SELECT key FROM tags WHERE resource = %s", (resource,))
            keys = {str(r["key"]) for r in await cur.fetchall()}
            if len(keys | set(tags)) > limit:
                return False
            await conn.cursor().executemany(
                "INSERT INTO tags (resource, key, value) VALUES (%s, %s, %s)"
                " ON CONFLICT (resource, key) DO UPDATE SET value = excluded.value",
                [(resource, key, value) for key, value in tags.items()],
            )
        return True

    async def remove_tags(self, resource: str, keys: Sequence[str]) -> None:
        async with self._transaction() as conn:
            await conn.execute(
                "SELECT pg_advisory_xact_lock(%s::int4, hashtext(%s))", (TAGS_LOCK, resource)
            )
            await conn.execute(
                "DELETE FROM tags WHERE resource = %s AND key = ANY(%s)", (resource, list(keys))
            )

    async def tags_of(self, resource: str) -> dict[str, str]:
        rows = await self._fetch(
            "SELECT key, value FROM tags WHERE resource = %s ORDER BY key", (resource,)
        )
        return {str(r["key"]): str(r["value"]) for r in rows}


def holds(progress: Progress, now: float | None = None) -> bool:
    """Whether a node keeps holding an execution after a transition to `progress`: while it
    runs on that node (due now, its task call in flight, its children running), not while
    it waits (a Wait, a retry's back-off, a callback), so any node may take it when due."""
    if progress.status != RUNNING or progress.due_at is None:
        return False
    if progress.phase == PHASE_FANOUT:
        return True
    task = progress.task
    if progress.phase == PHASE_TASK and task is not None and task.sent:
        return not task.awaiting_callback
    return progress.due_at <= (time.time() if now is None else now) + HOLD_SECONDS


async def _hint(hints: Hints, conn: Conn, execution: Execution, *, held: bool) -> None:
    """Tell the other nodes when `execution`, written alone, falls due (stepd.store.pg_hints)."""
    if execution.status == RUNNING:
        await hints.send(conn, [(execution.due_at, held)])


async def _append(conn: Conn, rows: Sequence[tuple[Any, ...]]) -> None:
    if rows:
        await conn.cursor().executemany(EVENTS_SQL, rows)


async def _write_cursors(
    conn: Conn, execution_id: int, pruned: Sequence[str], cursors: Sequence[Cursor]
) -> None:
    for prefix in pruned:
        await conn.execute(PRUNE_SQL, (execution_id, prefix + "/", prefix + "0"))
    if cursors:
        await conn.cursor().executemany(
            UPSERT_CURSOR_SQL.encode(),
            [(execution_id, c.id, c.parent, c.slot, *progress_values(c)) for c in cursors],
        )


async def _read_version(conn: Conn) -> StoreVersion:
    cur = await conn.execute("SELECT to_regclass('meta') IS NOT NULL AS there")
    row = await cur.fetchone()
    if row is None or not row["there"]:
        return StoreVersion(schema=0, record_format=FORMAT_VERSION, written_by=None)
    cur = await conn.execute("SELECT key, value FROM meta")
    meta = {str(r["key"]): str(r["value"]) for r in await cur.fetchall()}
    record_format = meta.get("record_format")
    return StoreVersion(
        schema=int(meta.get("schema", "0")),
        record_format=int(record_format) if record_format is not None else None,
        written_by=meta.get("written_by"),
    )


async def read_version(url: str, *, password: str | None = None) -> StoreVersion:
    """What the database at `url` says of its store's version (schema 0: no store there yet),
    read without taking anything. Raises StoreError when it cannot be reached or read."""
    try:
        async with await psycopg.AsyncConnection.connect(
            url, **connect_kwargs(password), autocommit=True, row_factory=dict_row
        ) as conn:
            found = await _read_version(conn)
            if found.schema == 0:  # the first node creates the store: may this role?
                cur = await conn.execute(
                    "SELECT has_schema_privilege(current_schema(), 'CREATE') AS may,"
                    " current_user AS role, current_schema() AS schema"
                )
                row = await cur.fetchone()
                if row is not None and not row["may"]:
                    raise StoreRefused(
                        f"{describe(url)}: the role {row['role']} may not create tables in"
                        f" the schema {row['schema']}: the first node could not create the"
                        " store (the role needs to own the database, or CREATE on its schema)"
                    )
            return found
    except psycopg.Error as exc:
        raise StoreError(f"{describe(url)}: cannot read the database: {exc}") from None
