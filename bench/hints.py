"""Two nodes on PostgreSQL: a step due 0.2 s after its start on node 1 (at a whole second, as
Wait timestamps are), which then stalls
(SIGSTOP) past it, so node 2 sends it; its lateness with LISTEN/NOTIFY hints and without them
(`[store] notify = false`: node 2 finds it by its watch, every 0.5 s), in one run.

    .venv/bin/python bench/hints.py [ROUNDS]      # default 40 rounds per case

Prints one JSON line per case.
"""

from __future__ import annotations

import asyncio
import json
import math
import os
import signal
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from harness import Bench, percentile, rfc3339
from nodes import start_node

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
from tests.postgres_server import remove_server, start_server  # noqa: E402

AHEAD_SECONDS = 0.2  # the first step falls due this long after the start
STALL_SECONDS = 1.5  # node 1 stalls this long after the start (past the due instant)


def sent(bench: Bench, body: dict[str, str]) -> list[float]:
    """When the classroom server received the step whose input is `body`."""
    return [r.received_at for r in bench.server.records if r.body == body]


async def stalls(rounds: int, *, url: str, notify: bool) -> dict[str, Any]:
    with tempfile.TemporaryDirectory(prefix="stepd-bench-hints-") as folder:
        bench = Bench(Path(folder))
        await bench.setup()
        env = {"STEPD_STORE__URL": url, "STEPD_STORE__NOTIFY": str(notify).lower()}
        os.environ.update(env)
        bench.start_daemon()
        await bench.wait_ready()
        other = start_node(Path(folder), 1)
        await asyncio.sleep(2.0)
        assert bench.process is not None
        lateness = []
        for n in range(rounds):
            at = float(math.ceil(time.time() + 0.5))  # waits end at whole seconds
            await asyncio.sleep(at - AHEAD_SECONDS - time.time())
            body = {"at": rfc3339(at)}
            await bench.start(f"s{n}", body)
            os.kill(bench.process.pid, signal.SIGSTOP)
            try:
                deadline = time.time() + STALL_SECONDS
                while not sent(bench, body) and time.time() < deadline:
                    await asyncio.sleep(0.005)
            finally:
                os.kill(bench.process.pid, signal.SIGCONT)
            while not sent(bench, body):
                await asyncio.sleep(0.01)
            lateness.append((min(sent(bench, body)) - at) * 1000)
        other.terminate()
        other.wait(timeout=30)
        await bench.close()
        for key in env:
            os.environ.pop(key, None)
    return {
        "notify": notify,
        "rounds": rounds,
        "due_after_start_s": AHEAD_SECONDS,
        "early": sum(1 for v in lateness if v < 0),
        "p50_ms": round(percentile(lateness, 50), 1),
        "p99_ms": round(percentile(lateness, 99), 1),
        "max_ms": round(max(lateness), 1),
    }


async def main(rounds: int) -> None:
    server = start_server()
    try:
        for notify in (True, False):
            url = server.new_database()
            print(json.dumps(await stalls(rounds, url=url, notify=notify)), flush=True)
    finally:
        remove_server(server)


if __name__ == "__main__":
    asyncio.run(main(int(sys.argv[1]) if len(sys.argv) > 1 else 40))
