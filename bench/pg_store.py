"""The PostgreSQL store alone, driven as two nodes drive it in the herd: the CPU it costs the
database and the nodes per transition, without the engine, the timers and the task calls.

    .venv/bin/python bench/pg_store.py [COUNT] [--repeat N] [--against COMMIT]

COUNT executions (default 5,000) are created waiting, made due, then two stores (two nodes,
each with its lease) in this process claim their half in batches of 256 and, with 64 workers
each, commit for every execution a task's intent (four events) and, 2 ms later, its outcome
(three events): the group writes of the herd. Prints one JSON line per run: seconds, the
database server's CPU (`database_cpu_s`, all its processes) and this process's
(`client_cpu_s`), how many times the group statement was planned, and how many row updates
of `executions` there were and how many of them were HOT (wrote no index entry). With
--against, that commit's store and this checkout's run in turn (each in a process of its own,
from copies taken at the start: bench/harness.py, `daemon_sources`). `FILLFACTOR=N` in the
environment sets that fill factor on `executions` first (to compare).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import psycopg
from harness import cpu_seconds, daemon_sources, server_pids

from stepd.store.pg_nodes import NodeLeases
from stepd.store.postgres import PostgresStore
from stepd.store.records import (
    RUNNING,
    SUCCEEDED,
    Execution,
    NewEvent,
    NewExecution,
    Progress,
    TaskCall,
    Transition,
    WaitThen,
)

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
from tests.postgres_server import remove_server, start_server  # noqa: E402

WORKERS = 64
CLAIM_BATCH = 256
NODES = 2
CALL_SECONDS = 0.002
PG_STAT = (
    "shared_preload_libraries = 'pg_stat_statements'\npg_stat_statements.track_planning = on\n"
)


async def step(store: PostgresStore, execution: Execution, text: str) -> None:
    """A task's intent, then (after the call's time) its outcome."""
    at = time.time()
    call = TaskCall(resource="ping", payload="{}", timeout_seconds=None, due=execution.due_at or at)
    intent = Progress(
        status=RUNNING,
        state="Ping",
        phase="task",
        data=text,
        pending=call.as_sent(at),
        state_entered_event=4,
        state_entered_at=at,
        due_at=execution.due_at,  # a task reached from a Wait stays due at the wait's end
    )
    events = (
        NewEvent(type="WaitStateExited", details={"name": "Until", "output": text}, ts=at),
        NewEvent(type="TaskStateEntered", details={"name": "Ping", "input": text}, ts=at),
        NewEvent(type="TaskScheduled", details={"resource": "ping", "parameters": {}}, ts=at),
        NewEvent(type="TaskStarted", details={"resource": "ping"}, ts=at),
    )
    sent = await store.commit(Transition(base=execution, progress=intent, events=events))
    if sent is None:
        raise RuntimeError(f"intent of {execution.name} not written")
    await asyncio.sleep(CALL_SECONDS)
    outcome = Progress(status=SUCCEEDED, state_entered_event=8, stop_date=time.time(), output=text)
    events = (
        NewEvent(type="TaskSucceeded", details={"resource": "ping", "output": "{}"}, ts=at),
        NewEvent(type="TaskStateExited", details={"name": "Ping", "output": text}, ts=at),
        NewEvent(type="ExecutionSucceeded", details={"output": text}, ts=at),
    )
    if await store.commit(Transition(base=sent, progress=outcome, events=events)) is None:
        raise RuntimeError(f"outcome of {execution.name} not written")


async def node(k: int, store: PostgresStore, made: list[Execution], text: str) -> None:
    """One node: claims its share in batches; its workers step what it claimed."""
    queue: asyncio.Queue[int | None] = asyncio.Queue()

    async def worker() -> None:
        while (execution_id := await queue.get()) is not None:
            execution = await store.get_execution(execution_id)
            if execution is None:
                raise RuntimeError(f"execution {execution_id} not found")
            await step(store, execution, text)

    workers = [asyncio.create_task(worker()) for _ in range(WORKERS)]
    mine = [e.id for e in made if e.id % NODES == k]
    for i in range(0, len(mine), CLAIM_BATCH):
        ids = mine[i : i + CLAIM_BATCH]
        for execution_id, _ in await store.claim(ids, before=time.time() + 1, limit=len(ids)):
            queue.put_nowait(execution_id)
        await asyncio.sleep(0)
    for _ in workers:
        queue.put_nowait(None)
    await asyncio.gather(*workers)


async def run_once(url: str, data: Path, count: int) -> dict[str, Any]:
    stores = []
    leases = []
    for _ in range(NODES):
        store = PostgresStore(url)
        await store.open()
        lease = NodeLeases(url, password=None, api="bench")
        store.node = await lease.join()
        stores.append(store)
        leases.append(lease)
    first = stores[0]
    definition = await first.put_definition("ping", '{"StartAt": "Until"}')
    fill = os.environ.get("FILLFACTOR")  # another fill factor, to compare
    if fill:
        with psycopg.connect(url, autocommit=True) as conn:
            conn.execute(f"ALTER TABLE executions SET (fillfactor = {int(fill)})")
    now = time.time()
    text = json.dumps({"at": "2026-12-06T20:00:00Z"})
    created = await asyncio.gather(
        *(
            first.create_execution(
                NewExecution(
                    machine="ping",
                    name=f"h{i}",
                    definition_id=definition,
                    input=text,
                    start_date=now,
                    uid=f"u{i}",
                    progress=Progress(
                        status=RUNNING,
                        state="Until",
                        phase="wait",
                        data=text,
                        pending=WaitThen(next_state="Ping", output=text),
                        state_entered_event=2,
                        state_entered_at=now,
                        due_at=now + 1000,
                    ),
                    events=(
                        NewEvent(type="ExecutionStarted", details={"input": text}, ts=now),
                        NewEvent(type="WaitStateEntered", details={"name": "Until"}, ts=now),
                    ),
                )
            )
            for i in range(count)
        )
    )
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute("UPDATE executions SET due_at = %s", (now - 1,))
        conn.execute("CREATE EXTENSION IF NOT EXISTS pg_stat_statements")
        conn.execute("SELECT pg_stat_statements_reset()")
    await asyncio.sleep(1)  # the sessions above have sent their statistics
    updates = _updates(url)

    began, database, client = time.time(), cpu_seconds(server_pids(data)), time.process_time()
    made = [execution for execution, _ in created]
    await asyncio.gather(*(node(k, store, made, text) for k, store in enumerate(stores)))
    seconds = time.time() - began
    database = cpu_seconds(server_pids(data)) - database
    client = time.process_time() - client
    for store, lease in zip(stores, leases, strict=True):
        await store.close()
        await lease.close()
    await asyncio.sleep(1)
    updated, hot = (after - before for after, before in zip(_updates(url), updates, strict=True))
    with psycopg.connect(url, autocommit=True) as conn:
        row = conn.execute(
            "SELECT sum(calls) AS calls, sum(plans) AS plans FROM pg_stat_statements"
            " WHERE query LIKE 'WITH applied AS%%'"
        ).fetchone()
    return {
        "executions": count,
        "seconds": round(seconds, 2),
        "database_cpu_s": round(database, 2),
        "client_cpu_s": round(client, 2),
        "group_statements": int(row[0] or 0) if row else 0,
        "group_plans": int(row[1] or 0) if row else 0,
        "row_updates": updated,
        "hot_updates": hot,
    }


def _updates(url: str) -> tuple[int, int]:
    """Rows of `executions` updated so far, and how many of those updates were HOT (wrote
    no index entry)."""
    with psycopg.connect(url, autocommit=True) as conn:
        row = conn.execute(
            "SELECT n_tup_upd, n_tup_hot_upd FROM pg_stat_user_tables WHERE relname = 'executions'"
        ).fetchone()
    return (int(row[0]), int(row[1])) if row else (0, 0)


def child(count: int, url: str, data: str) -> None:
    print(json.dumps(asyncio.run(run_once(url, Path(data), count))), flush=True)


def main(count: int, repeat: int, against: str | None) -> None:
    server = start_server()
    try:
        with (server.data / "postgresql.conf").open("a", encoding="utf-8") as conf:
            conf.write(PG_STAT)
        server.restart(immediate=False)
        with tempfile.TemporaryDirectory(prefix="stepd-against-") as folder:
            sources: list[tuple[str, Path | None]] = [("this checkout", None)]
            if against:
                sources = [*daemon_sources([against], Path(folder)).items()]
            for run in range(1, repeat + 1):
                for name, source in sources if run % 2 else sources[::-1]:
                    path = {} if source is None else {"PYTHONPATH": str(source)}
                    done = subprocess.run(
                        [sys.executable, __file__, str(count), "--child", server.new_database(),
                         str(server.data)],
                        env={**os.environ, **path},
                        capture_output=True,
                        text=True,
                        check=True,
                    )  # fmt: skip
                    figures = json.loads(done.stdout.strip().splitlines()[-1])
                    print(json.dumps({"run": run, "store": name, **figures}), flush=True)
    finally:
        remove_server(server)


if __name__ == "__main__":
    parser = argparse.ArgumentParser()
    parser.add_argument("count", type=int, nargs="?", default=5000)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--against", metavar="COMMIT", help="that commit's store in turn")
    parser.add_argument("--child", nargs=2, metavar=("URL", "DATA"), help=argparse.SUPPRESS)
    arguments = parser.parse_args()
    if arguments.child:
        child(arguments.count, *arguments.child)
    else:
        main(arguments.count, arguments.repeat, arguments.against)
