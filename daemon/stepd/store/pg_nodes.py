"""The nodes sharing one PostgreSQL store: their leases, on a connection of their own.

A node joins under a new id (one per incarnation: a node that lost its lease joins again under
another), renews its lease every second to LEASE_SECONDS ahead, reaps the nodes whose lease ran
out (the executions they held are let go, for any node to take when due) and leaves when it
stops (it lets go of what it holds at once). The lease is the fencing token: the store writes a
node's transitions only while that node's row says its lease runs (stepd.store.postgres).

Times are the database's (`clock_timestamp()`), so the nodes' clocks do not have to agree for
leases to work. The connection has short timeouts: a renewal that does not come back within
STATEMENT_MS is a failed renewal, never a hang.
"""

from __future__ import annotations

import contextlib
import json
import os
import socket
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

import psycopg
from psycopg.rows import dict_row

from stepd import __version__
from stepd.errors import StoreError
from stepd.store.pg_hints import CHANNEL, WINDOW
from stepd.store.postgres import Conn, connect_kwargs, describe
from stepd.store.schema import StoreVersion

LEASE_SECONDS = 5.0  # a renewal extends the lease this far ahead
STATEMENT_MS = 1500  # a renewal (or a reap) that takes longer has failed
# The nodes that hold executions but are no longer there (their work is let go). They are
# found by skipping from one holder to the next along the index of holders: a few probes
# however many executions the nodes hold, not a read of every held execution at every reap.
GONE_HOLDERS_SQL = """
WITH RECURSIVE holders AS (
    SELECT min(owner) AS owner FROM executions WHERE owner IS NOT NULL
    UNION ALL
    SELECT (SELECT min(owner) FROM executions WHERE owner > h.owner)
    FROM holders h WHERE h.owner IS NOT NULL
)
SELECT owner FROM holders WHERE owner IS NOT NULL AND owner NOT IN (SELECT id FROM nodes)
"""


@dataclass(frozen=True, kw_only=True)
class NodeRow:
    id: str
    host: str
    pid: int
    api: str
    version: str
    started_at: float
    renewed_at: float
    lease_until: float
    held: int  # executions it holds
    definitions: dict[str, str]  # machine name: hash of the definition it serves


def new_node_id() -> str:
    return uuid.uuid4().hex[:12]


class NodeLeases:
    """One node's lease and its view of the others, on its own connection."""

    def __init__(self, url: str, *, password: str | None, api: str) -> None:
        self.url = url
        self.where = describe(url)
        self._password = password
        self.api = api
        self.id = new_node_id()
        self.definitions: dict[str, str] = {}  # written with the lease (join, publish)
        self.live = 1  # nodes whose lease ran at the last renewal, this one among them
        self.store_version: StoreVersion | None = None  # what the store said at that renewal
        self._conn: Conn | None = None

    async def _connection(self) -> Conn:
        if self._conn is None or self._conn.closed or self._conn.broken:
            if self._conn is not None:
                with contextlib.suppress(psycopg.Error):
                    await self._conn.close()
            kwargs = connect_kwargs(self._password)
            kwargs["connect_timeout"] = 2
            kwargs["tcp_user_timeout"] = STATEMENT_MS * 2
            kwargs["options"] = f"-c statement_timeout={STATEMENT_MS}"
            self._conn = await psycopg.AsyncConnection.connect(
                self.url, **kwargs, autocommit=True, row_factory=dict_row
            )
        return self._conn

    async def _run(self, sql: str, params: dict[str, Any]) -> list[dict[str, Any]]:
        try:
            conn = await self._connection()
            cur = await conn.execute(sql.encode(), params)
            return await cur.fetchall() if cur.description else []
        except psycopg.Error as exc:
            if self._conn is not None:
                with contextlib.suppress(psycopg.Error):
                    await self._conn.close()
            self._conn = None
            raise StoreError(f"{self.where}: node lease: {exc}") from exc

    async def join(self) -> str:
        """Join under a new id with a fresh lease; the id."""
        self.id = new_node_id()
        await self._run(
            "INSERT INTO nodes (id, host, pid, api, version, started_at, renewed_at, lease_until,"
            " definitions) VALUES (%(id)s, %(host)s, %(pid)s, %(api)s, %(version)s,"
            " clock_timestamp(), clock_timestamp(),"
            " clock_timestamp() + make_interval(secs => %(lease)s), %(definitions)s::jsonb)",
            {
                "id": self.id,
                "host": socket.gethostname(),
                "pid": os.getpid(),
                "api": self.api,
                "version": __version__,
                "lease": LEASE_SECONDS,
                "definitions": json.dumps(self.definitions),
            },
        )
        return self.id

    async def publish(self, definitions: dict[str, str]) -> None:
        """Record, with this node's lease, the definitions it serves (after a reload)."""
        self.definitions = dict(definitions)
        await self._run(
            "UPDATE nodes SET definitions = %(definitions)s::jsonb WHERE id = %(id)s",
            {"id": self.id, "definitions": json.dumps(self.definitions)},
        )

    async def renew(self) -> float | None:
        """Extend the lease; the database's clock then (unix seconds), or None when the lease
        had run out (reaped, or about to be): the node must join again under a new id. Notes
        how many nodes' leases run (`live`)."""
        rows = await self._run(
            "UPDATE nodes SET renewed_at = clock_timestamp(),"
            " lease_until = clock_timestamp() + make_interval(secs => %(lease)s)"
            " WHERE id = %(id)s AND lease_until > clock_timestamp()"
            " RETURNING extract(epoch FROM clock_timestamp())::float8 AS now,"
            " (SELECT count(*) FROM nodes WHERE lease_until > clock_timestamp()) AS live,"
            " (SELECT value FROM meta WHERE key = 'schema') AS schema,"
            " (SELECT value FROM meta WHERE key = 'record_format') AS record_format,"
            " (SELECT value FROM meta WHERE key = 'written_by') AS written_by",
            {"id": self.id, "lease": LEASE_SECONDS},
        )
        if not rows:
            return None
        row = rows[0]
        self.live = int(row["live"])
        self.store_version = StoreVersion(
            schema=int(row["schema"] or 0),
            record_format=None if row["record_format"] is None else int(row["record_format"]),
            written_by=row["written_by"],
        )
        return float(row["now"])

    async def reap(self) -> tuple[int, list[tuple[int, float | None]]]:
        """Remove the nodes whose lease ran out and let go of what they (or any node no longer
        there) held; how many nodes were removed, (id, due_at) of the executions let go."""
        async with self._transaction() as conn:
            cur = await conn.execute(
                "DELETE FROM nodes WHERE lease_until < clock_timestamp() RETURNING id"
            )
            gone = len(await cur.fetchall())
            cur = await conn.execute(GONE_HOLDERS_SQL)
            holders = [r["owner"] for r in await cur.fetchall()]
            rows = []
            if holders:
                cur = await conn.execute(
                    "UPDATE executions SET owner = NULL WHERE owner IS NOT NULL"
                    " AND owner = ANY(%s) RETURNING id, due_at",
                    (holders,),
                )
                rows = await cur.fetchall()
        return gone, [(int(r["id"]), r["due_at"]) for r in rows]

    async def leave(self) -> int:
        """Let go of everything this node holds and remove its lease; how many it held."""
        async with self._transaction() as conn:
            cur = await conn.execute(
                "UPDATE executions SET owner = NULL WHERE owner = %s RETURNING id", (self.id,)
            )
            held = len(await cur.fetchall())
            await conn.execute("DELETE FROM nodes WHERE id = %s", (self.id,))
            await conn.execute("SELECT pg_notify(%s, %s)", (CHANNEL, WINDOW))
        return held

    async def notify(self) -> None:
        """Ask every node to look at what falls due soon (LISTEN/NOTIFY, its own transaction,
        never inside a write's: NOTIFY at commit takes a lock that serialises commits)."""
        await self._run(
            "SELECT pg_notify(%(channel)s, %(payload)s)", {"channel": CHANNEL, "payload": WINDOW}
        )

    async def nodes(self) -> list[NodeRow]:
        rows = await self._run(
            "SELECT n.id, n.host, n.pid, n.api, n.version,"
            " extract(epoch FROM n.started_at)::float8 AS started_at,"
            " extract(epoch FROM n.renewed_at)::float8 AS renewed_at,"
            " extract(epoch FROM n.lease_until)::float8 AS lease_until,"
            " (SELECT count(*) FROM executions e WHERE e.owner = n.id) AS held,"
            " n.definitions FROM nodes n ORDER BY n.started_at, n.id",
            {},
        )
        return [
            NodeRow(**{**r, "held": int(r["held"]), "definitions": dict(r["definitions"])})
            for r in rows
        ]

    async def close(self) -> None:
        if self._conn is not None:
            with contextlib.suppress(psycopg.Error):
                await self._conn.close()
            self._conn = None

    @contextlib.asynccontextmanager
    async def _transaction(self) -> AsyncIterator[Conn]:
        try:
            conn = await self._connection()
            async with conn.transaction():
                yield conn
        except psycopg.Error as exc:
            self._conn = None
            raise StoreError(f"{self.where}: node lease: {exc}") from exc


async def listen(url: str, *, password: str | None) -> AsyncIterator[str]:
    """The payloads NOTIFY sends on CHANNEL, on a connection of their own, until it breaks
    (raises StoreError; the caller connects again)."""
    try:
        conn = await psycopg.AsyncConnection.connect(
            url, **connect_kwargs(password), autocommit=True
        )
        async with conn:
            await conn.execute(f"LISTEN {CHANNEL}")
            async for notice in conn.notifies():
                yield notice.payload
    except psycopg.Error as exc:
        raise StoreError(f"{describe(url)}: listen: {exc}") from exc
