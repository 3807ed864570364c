"""A PostgreSQL store holding many waiting executions: database bytes per execution, a node's
time to ready and its RSS.

    .venv/bin/python bench/pg_waiting.py [COUNT]      # default 1,000,000

A throwaway PostgreSQL server (stepd.pgserver); the executions are copies of one real waiting
execution (with its first event), due a second apart from tomorrow, made by one INSERT ...
SELECT; then one `stepd run` on that database, timed from process start to /healthz answering.
"""

from __future__ import annotations

import asyncio
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx
import psycopg

from stepd.pgserver import remove_server, start_server
from stepd.store.postgres import PostgresStore
from stepd.store.records import NewEvent, NewExecution, Progress
from stepd.testing import free_port

MACHINE = '{"StartAt": "A", "States": {"A": {"Type": "Wait", "Seconds": 1, "End": true}}}'
SETTLE_SECONDS = 3.0  # RSS is read this long after ready


async def template(url: str) -> int:
    store = PostgresStore(url)
    await store.open()
    try:
        definition_id = await store.put_definition("m", MACHINE)
        execution, _ = await store.create_execution(
            NewExecution(
                machine="m",
                name="template",
                definition_id=definition_id,
                input="{}",
                start_date=time.time(),
                uid="template",
                progress=Progress(
                    status="RUNNING", state="A", phase="wait", data="{}", due_at=time.time() + 86400
                ),
                events=(NewEvent(ts=time.time(), type="ExecutionStarted", details={}),),
            )
        )
    finally:
        await store.close()
    return execution.id


def fill(url: str, template_id: int, count: int) -> int:
    """Copy the template `count` times; the database's size in bytes."""
    with psycopg.connect(url, autocommit=True) as conn:
        rows = conn.execute(
            "SELECT column_name FROM information_schema.columns WHERE table_name = 'executions'"
            " AND column_name NOT IN ('id', 'name', 'due_at', 'uid') ORDER BY ordinal_position"
        )
        columns = ", ".join(str(r[0]) for r in rows)
        conn.execute(
            f"INSERT INTO executions (name, due_at, uid, {columns})"
            f" SELECT 'w' || g, due_at + g, 'u' || g, {columns} FROM executions,"
            " generate_series(1, %s) g WHERE executions.id = %s",
            (count, template_id),
        )
        conn.execute(
            "INSERT INTO events (execution_id, id, previous_id, ts, type, details)"
            " SELECT id, 1, 0, start_date, 'ExecutionStarted', '{}' FROM executions"
            " WHERE id <> %s",
            (template_id,),
        )
        conn.execute("ANALYZE")
        size = conn.execute("SELECT pg_database_size(current_database())").fetchone()
    return int(size[0]) if size else 0


async def node_ready(url: str) -> tuple[float, int]:
    """Seconds from a node's process start to /healthz, and its RSS (KiB) a little later."""
    folder = Path(tempfile.mkdtemp(prefix="stepd-bench-waiting-"))
    (folder / "m.asl.json").write_text(MACHINE)
    port = free_port()
    (folder / "stepd.toml").write_text(
        f'[store]\nurl = "{url}"\n[api]\nlisten = "127.0.0.1:{port}"\n'
        '[[machines]]\nname = "m"\ndefinition = "m.asl.json"\n'
    )
    began = time.time()
    with (folder / "daemon.log").open("wb") as log:
        process = subprocess.Popen(
            [sys.executable, "-m", "stepd", "run", "-c", str(folder / "stepd.toml")],
            stdout=log,
            stderr=subprocess.STDOUT,
        )
    try:
        async with httpx.AsyncClient() as client:
            while True:
                try:
                    if (await client.get(f"http://127.0.0.1:{port}/healthz")).is_success:
                        break
                except httpx.HTTPError:
                    pass
                await asyncio.sleep(0.02)
        ready = time.time() - began
        await asyncio.sleep(SETTLE_SECONDS)
        status = Path(f"/proc/{process.pid}/status").read_text().splitlines()
        rss = int(next(line for line in status if line.startswith("VmRSS:")).split()[1])
    finally:
        process.terminate()
        process.wait()
    return ready, rss


async def main(count: int) -> None:
    server = start_server()
    try:
        url = server.new_database()
        began = time.time()
        size = fill(url, await template(url), count)
        print(f"{count} waiting executions made in {time.time() - began:.1f} s: database "
              f"{size / 1e6:.0f} MB, {size / count:.0f} bytes per execution")  # fmt: skip
        ready, rss = await node_ready(url)
        print(f"node ready {ready:.2f} s after process start; RSS {rss / 1024:.0f} MiB")
    finally:
        remove_server(server)


if __name__ == "__main__":
    asyncio.run(main(int(sys.argv[1]) if len(sys.argv) > 1 else 1_000_000))
