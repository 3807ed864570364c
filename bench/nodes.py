"""The herd on PostgreSQL with one and two nodes (two: with and without LISTEN/NOTIFY hints),
beside SQLite, in one run.

    .venv/bin/python bench/nodes.py [COUNT]      # default 5,000 executions
    .venv/bin/python bench/nodes.py 5000 --against COMMIT --repeat 5

With --against: each run, the herd on one SQLite node (this checkout's daemon), then on two
PostgreSQL nodes with that commit's daemon and with this checkout's, in turn (which goes first
alternates from run to run), so that the pairs see the same machine; the daemons run from
copies taken at the start (bench/harness.py, `daemon_sources`).

Each case: a fresh store (a throwaway PostgreSQL server in a temporary folder, as the tests
run it: tests/postgres_server.py), COUNT executions of the `ping` machine loaded through the
API of the first node, all due in the same second, then every start call's lateness at the
classroom server and when every result was committed (read from the store by this process,
not through the nodes' API, every 0.1 s). Intake (StartExecution per second while
loading) is reported too, and the CPU time the nodes used from CPU_LEAD_SECONDS before the due
second (the nodes claim and load ahead of it; the idle seconds after the intake are left out)
until every result was committed (`nodes_cpu_s`: steadier than the times on a shared
machine; with two nodes each one's too, `each_node_cpu_s`, and how many executions each
claimed, `each_node_claimed`, from its /healthz), and PostgreSQL's (`database_cpu_s`: its
server's processes, over the same span). Prints one JSON line per case.

With --statements, the database's work by statement over the same span (pg_stat_statements,
loaded into the bench's server): the statements that took longest, with their calls, rows
and milliseconds (`statements`).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any, Self

import aiohttp
import httpx
import psycopg
from harness import (
    Bench,
    cpu_seconds,
    daemon_sources,
    percentile,
    process_cpu_seconds,
    rfc3339,
    server_pids,
)
from machines import Machine

from stepd.testing import free_port

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
from tests.postgres_server import PostgresServer, remove_server, start_server  # noqa: E402

INTAKE_CONNECTIONS = 32
DEADLINE_SECONDS = 180
CPU_LEAD_SECONDS = 2.0  # CPU time (and the database's statements) is counted from this long before
STATEMENTS_SHOWN = 6
STATEMENTS_SQL = (
    "SELECT calls, rows, round(total_exec_time::numeric, 1)::float8 AS ms,"
    " left(regexp_replace(query, '\\s+', ' ', 'g'), 90) AS query"
    " FROM pg_stat_statements WHERE query NOT LIKE '%%pg_stat_statements%%'"
    " ORDER BY total_exec_time DESC LIMIT %s"
)


def with_statements(server: PostgresServer) -> None:
    """Load pg_stat_statements into `server` (a restart)."""
    with psycopg.connect(server.url(), autocommit=True) as conn:
        conn.execute("ALTER SYSTEM SET shared_preload_libraries = 'pg_stat_statements'")
    server.restart(immediate=False)


async def statements_reset(url: str | None) -> None:
    """Start counting the database's work by statement anew (None: no counting)."""
    if url is None:
        return
    async with await psycopg.AsyncConnection.connect(url, autocommit=True) as conn:
        await conn.execute("CREATE EXTENSION IF NOT EXISTS pg_stat_statements")
        await conn.execute("SELECT pg_stat_statements_reset()")


async def statements_read(url: str | None) -> list[dict[str, Any]]:
    """The statements that took longest since the reset (None: none)."""
    if url is None:
        return []
    async with await psycopg.AsyncConnection.connect(url, autocommit=True) as conn:
        cursor = await conn.execute(STATEMENTS_SQL, (STATEMENTS_SHOWN,))
        names = [c.name for c in cursor.description or ()]
        return [dict(zip(names, row, strict=True)) for row in await cursor.fetchall()]


async def load(port: int, count: int, at: float) -> float:
    """Start `count` executions due at `at`; StartExecution per second."""
    url = f"http://127.0.0.1:{port}/"
    headers = {
        "Content-Type": "application/x-amz-json-1.0",
        "X-Amz-Target": "AWSStepFunctions.StartExecution",
    }
    body_input = json.dumps({"at": rfc3339(at)})
    names = iter(range(count))
    began = time.time()
    async with aiohttp.ClientSession(
        connector=aiohttp.TCPConnector(limit=INTAKE_CONNECTIONS)
    ) as session:

        async def client() -> None:
            for n in names:
                body = json.dumps({"stateMachineArn": "ping", "name": f"h{n}", "input": body_input})
                async with session.post(url, data=body, headers=headers) as response:
                    if response.status != httpx.codes.OK:
                        raise RuntimeError(await response.text())

        await asyncio.gather(*(client() for _ in range(INTAKE_CONNECTIONS)))
    return count / (time.time() - began)


def start_node(
    folder: Path, n: int, source: Path | None = None, port: int | None = None
) -> subprocess.Popen[bytes]:
    """Another node on the first one's config (and environment), on a port of its own
    (`source`: the daemon/ folder to run it from, as for `Bench`)."""
    port = free_port() if port is None else port
    log = (folder / f"node{n}.log").open("ab")
    path = {} if source is None else {"PYTHONPATH": str(source)}
    return subprocess.Popen(
        [sys.executable, "-m", "stepd", "run", "-c", str(folder / "stepd.toml")],
        stdout=log,
        stderr=subprocess.STDOUT,
        env={**os.environ, "STEPD_API__LISTEN": f"127.0.0.1:{port}", **path},
    )


async def herd(
    count: int,
    *,
    url: str | None,
    nodes: int,
    notify: bool = True,
    server: PostgresServer | None = None,
    source: Path | None = None,
    pin: bool = False,
    statements: bool = False,
    machines: float | None = None,
) -> dict[str, Any]:
    watched = url if statements else None
    with (
        tempfile.TemporaryDirectory(prefix="stepd-bench-nodes-") as folder,
        Placement(pin=pin, cpus=machines) as place,
    ):
        bench = Bench(Path(folder), source=source)
        await bench.setup()
        env = {} if url is None else {"STEPD_STORE__URL": url}
        if not notify:
            env["STEPD_STORE__NOTIFY"] = "false"
        os.environ.update(env)
        place.database(server)
        bench.start_daemon()
        place.node(bench.process, 0)
        await bench.wait_ready()
        ports = [bench.port, *(free_port() for _ in range(1, nodes))]
        others = [start_node(Path(folder), n, source, ports[n]) for n in range(1, nodes)]
        for n, other in enumerate(others, start=1):
            place.node(other, n)
        await asyncio.sleep(2.0 if others else 0)
        at = float(int(time.time()) + 5 + count // 300)
        intake = await load(bench.port, count, at)
        if time.time() >= at:
            raise RuntimeError("the herd was not loaded before its due second")
        deadline = at + DEADLINE_SECONDS
        await asyncio.sleep(max(0.0, at - CPU_LEAD_SECONDS - time.time()))
        await statements_reset(watched)
        pids = [p.pid for p in (bench.process, *others) if p is not None]
        cpu_before = [process_cpu_seconds(pid) for pid in pids]
        database = server_pids(None if server is None else server.data)
        database_before = cpu_seconds(database)
        while len(bench.server.records) < count and time.time() < deadline:
            await asyncio.sleep(0.1)
        lateness = [(r.received_at - at) * 1000 for r in bench.server.records]
        done_at = float("nan")
        async with contextlib.AsyncExitStack() as stack:
            conn = None
            if url is not None:
                conn = await stack.enter_async_context(await psycopg.AsyncConnection.connect(url))
            while time.time() < deadline:
                if await _succeeded(bench, conn) >= count:
                    done_at = time.time()
                    break
                await asyncio.sleep(0.1)
        cpu_each = [process_cpu_seconds(pid) - b for pid, b in zip(pids, cpu_before, strict=True)]
        database_cpu = cpu_seconds(database) - database_before
        work = await statements_read(watched)
        claimed = [await _claimed(port) for port in ports] if url is not None else []
        for process in others:
            process.terminate()
            process.wait(timeout=30)
        await bench.close()
        for key in env:
            os.environ.pop(key, None)
    keys = [r.idempotency_key for r in bench.server.records]
    return {
        "store": "sqlite" if url is None else "postgresql",
        "nodes": nodes,
        "notify": notify,
        **({"pinned": True} if pin else {}),
        **({"cpus_per_machine": machines} if machines is not None else {}),
        "executions": count,
        "intake_per_second": round(intake),
        "delivered": len(lateness),
        "sent_twice": len(keys) - len(set(keys)),
        "early": sum(1 for v in lateness if v < 0),
        "p50_ms": round(percentile(lateness, 50)),
        "p99_ms": round(percentile(lateness, 99)),
        "all_committed_s": round(done_at - at, 2),
        "nodes_cpu_s": round(sum(cpu_each), 2),
        **_each_node(cpu_each, claimed),
        **({} if server is None else {"database_cpu_s": round(database_cpu, 2)}),
        **({"statements": work} if watched else {}),
    }


def _each_node(cpu_each: list[float], claimed: list[int | None]) -> dict[str, Any]:
    if len(cpu_each) < 2:
        return {}
    return {"each_node_cpu_s": [round(c, 2) for c in cpu_each], "each_node_claimed": claimed}


class Placement:
    """Where the processes of a case run: with `pin`, each node on a CPU of its own (the first
    node on the first); with `cpus`, each node and the database on a machine of its own with
    a budget of that many cores (bench/machines.py)."""

    def __init__(self, *, pin: bool, cpus: float | None) -> None:
        self.pin = pin
        self.cpus = cpus
        self.machines: list[Machine] = []

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *_: object) -> None:
        for machine in self.machines:
            machine.remove()

    def node(self, process: subprocess.Popen[bytes] | None, n: int) -> None:
        """Place the `n`th node's `process`, just started (its threads to come too)."""
        if process is None:
            return
        if self.pin:
            cpus = sorted(os.sched_getaffinity(0))
            os.sched_setaffinity(process.pid, {cpus[n % len(cpus)]})
        self._machine([process.pid])

    def database(self, server: PostgresServer | None) -> None:
        """Place the database server's processes (the backends it starts later too)."""
        if server is not None:
            self._machine(server_pids(server.data))

    def _machine(self, pids: list[int]) -> None:
        if self.cpus is None:
            return
        machine = Machine(self.cpus)
        self.machines.append(machine)
        for pid in pids:
            machine.add(pid)


async def _claimed(port: int) -> int | None:
    """How many executions the node on `port` claimed (its /healthz), once the herd is done."""
    async with httpx.AsyncClient() as client:
        response = await client.get(f"http://127.0.0.1:{port}/healthz")
    node = response.json().get("node")
    return None if node is None else int(node["claimed"])


async def _succeeded(bench: Bench, conn: psycopg.AsyncConnection[Any] | None) -> int:
    """How many executions are committed SUCCEEDED, read from the store by this process (the
    nodes' API would count in their CPU): the SQLite file, or on `conn`, a connection to the
    PostgreSQL database opened once."""
    if conn is None:
        return bench.succeeded()
    async with conn.transaction():
        cursor = await conn.execute("SELECT count(*) FROM executions WHERE status = 'SUCCEEDED'")
        row = await cursor.fetchone()
    return int(row[0]) if row else 0


async def main(count: int, *, statements: bool = False, machines: float | None = None) -> None:
    print(json.dumps(await herd(count, url=None, nodes=1, machines=machines)), flush=True)
    server = start_server()
    try:
        if statements:
            with_statements(server)
        for nodes, notify in ((1, True), (2, True), (2, False)):
            url = server.new_database()
            result = await herd(
                count,
                url=url,
                nodes=nodes,
                notify=notify,
                server=server,
                statements=statements,
                machines=machines,
            )
            print(json.dumps(result), flush=True)
    finally:
        remove_server(server)


async def against(
    count: int,
    commit: str,
    repeat: int,
    *,
    pin: bool = False,
    statements: bool = False,
    machines: float | None = None,
) -> None:
    """`repeat` runs of: one SQLite node, then two PostgreSQL nodes of `commit` and of this
    checkout in turn; each line says which daemon ran, and each run the two-node times
    against SQLite's."""
    server = start_server()
    try:
        if statements:
            with_statements(server)
        with tempfile.TemporaryDirectory(prefix="stepd-against-") as folder:
            sources = list(daemon_sources([commit], Path(folder)).items())
            for run in range(1, repeat + 1):
                sqlite = await herd(
                    count, url=None, nodes=1, source=sources[-1][1], pin=pin, machines=machines
                )
                print(json.dumps({"run": run, "daemon": sources[-1][0], **sqlite}), flush=True)
                for name, source in sources if run % 2 else sources[::-1]:
                    url = server.new_database()
                    result = await herd(
                        count,
                        url=url,
                        nodes=2,
                        server=server,
                        source=source,
                        pin=pin,
                        statements=statements,
                        machines=machines,
                    )
                    ratio = result["all_committed_s"] / sqlite["all_committed_s"]
                    line = {"run": run, "daemon": name, **result, "x_sqlite": round(ratio, 2)}
                    print(json.dumps(line), flush=True)
    finally:
        remove_server(server)


if __name__ == "__main__":
    parser = argparse.ArgumentParser()
    parser.add_argument("count", type=int, nargs="?", default=5000)
    parser.add_argument("--against", metavar="COMMIT", help="two nodes of COMMIT in turn")
    parser.add_argument("--repeat", type=int, default=1, help="--against: this many runs")
    parser.add_argument(
        "--pin",
        action="store_true",
        help="--against: each node on a CPU of its own (the first node, and SQLite's, on the"
        " first), as nodes on machines of their own would be; the database and the classroom"
        " server on any",
    )
    parser.add_argument(
        "--statements",
        action="store_true",
        help="the database's work by statement in each PostgreSQL case (pg_stat_statements)",
    )
    parser.add_argument(
        "--machines",
        type=float,
        metavar="CPUS",
        help="each node (SQLite's too) and the database on a machine of its own: a CPU budget"
        " of CPUS cores each (bench/machines.py; root only)",
    )
    arguments = parser.parse_args()
    if arguments.against:
        asyncio.run(
            against(
                arguments.count,
                arguments.against,
                arguments.repeat,
                pin=arguments.pin,
                statements=arguments.statements,
                machines=arguments.machines,
            )
        )
    else:
        asyncio.run(
            main(arguments.count, statements=arguments.statements, machines=arguments.machines)
        )
