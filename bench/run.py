"""stepd benchmarks. `python bench/run.py --quick` (make bench) or `--full` for the figures.

Each benchmark runs the real daemon against a real stand-in classroom server on loopback and
prints its figures; the run appends them, with the commit, to bench/RESULTS.md.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import subprocess
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path

import aiohttp
from harness import Bench, percentile, rfc3339

RESULTS = Path(__file__).with_name("RESULTS.md")


async def precision(count: int, spread_seconds: float) -> dict[str, float]:
    """Executions due at whole seconds spread over a window: how late does each POST arrive?"""
    with tempfile.TemporaryDirectory(prefix="stepd-bench-") as folder:
        bench = Bench(Path(folder))
        await bench.setup()
        bench.start_daemon()
        await bench.wait_ready()
        first = int(time.time()) + 3
        due = {f"p{n}": float(first + int(n * spread_seconds / count)) for n in range(count)}
        for name, at in due.items():
            await bench.start_execution(name, at)
        deadline = time.time() + spread_seconds + 30
        while len(bench.server.records) < count and time.time() < deadline:
            await asyncio.sleep(0.2)
        lateness = []
        early = 0
        for record in bench.server.records:
            name = record.idempotency_key.split("/")[1] if record.idempotency_key else ""
            late = record.received_at - due[name]
            early += late < 0
            lateness.append(late * 1000)
        await bench.close()
    return {
        "steps": len(lateness),
        "early": early,
        "p50_ms": percentile(lateness, 50),
        "p99_ms": percentile(lateness, 99),
        "max_ms": max(lateness),
    }


async def restart(count: int) -> dict[str, float]:
    """SIGKILL, stay down past the due time, restart: how soon are the overdue steps sent?"""
    with tempfile.TemporaryDirectory(prefix="stepd-bench-") as folder:
        bench = Bench(Path(folder))
        await bench.setup()
        bench.start_daemon()
        await bench.wait_ready()
        at = float(int(time.time()) + 3)
        for n in range(count):
            await bench.start_execution(f"r{n}", at)
        bench.kill()
        await asyncio.sleep(max(0.0, at - time.time()) + 2)
        bench.start_daemon()
        started = bench.started_at
        ready = await bench.wait_ready()
        deadline = time.time() + 30
        while len(bench.server.records) < count and time.time() < deadline:
            await asyncio.sleep(0.005)
        arrivals = sorted(r.received_at for r in bench.server.records)
        await bench.close()
    return {
        "overdue_steps": len(arrivals),
        "ready_ms": (ready - started) * 1000,
        "first_sent_ms": (arrivals[0] - started) * 1000,
        "all_sent_ms": (arrivals[-1] - started) * 1000,
    }


async def intake(count: int, connections: int) -> dict[str, float]:
    """StartExecution over the API from `connections` concurrent clients: rate and latency."""
    with tempfile.TemporaryDirectory(prefix="stepd-bench-") as folder:
        bench = Bench(Path(folder))
        await bench.setup()
        bench.start_daemon()
        await bench.wait_ready()
        far = time.time() + 3600
        latencies: list[float] = []
        names = iter(range(count))
        url = f"http://127.0.0.1:{bench.port}/"
        headers = {
            "Content-Type": "application/x-amz-json-1.0",
            "X-Amz-Target": "AWSStepFunctions.StartExecution",
        }
        body_input = json.dumps({"at": rfc3339(far)})
        connector = aiohttp.TCPConnector(limit=connections)
        async with aiohttp.ClientSession(connector=connector) as session:

            async def client() -> None:
                for n in names:
                    body = json.dumps(
                        {"stateMachineArn": "ping", "name": f"i{n}", "input": body_input}
                    )
                    sent = time.perf_counter()
                    async with session.post(url, data=body, headers=headers) as response:
                        await response.read()
                        if response.status != 200:
                            raise RuntimeError(await response.text())
                    latencies.append((time.perf_counter() - sent) * 1000)

            began = time.perf_counter()
            await asyncio.gather(*(client() for _ in range(connections)))
            elapsed = time.perf_counter() - began
        await bench.close()
    return {
        "started": len(latencies),
        "per_second": len(latencies) / elapsed,
        "p50_ms": percentile(latencies, 50),
        "p99_ms": percentile(latencies, 99),
    }


async def herd(count: int) -> dict[str, float]:
    """`count` executions due in the same second: lateness of every start call."""
    with tempfile.TemporaryDirectory(prefix="stepd-bench-") as folder:
        bench = Bench(Path(folder))
        await bench.setup()
        bench.start_daemon()
        await bench.wait_ready()
        at = float(int(time.time()) + 3 + count // 1000)
        connector = aiohttp.TCPConnector(limit=32)
        url = f"http://127.0.0.1:{bench.port}/"
        headers = {
            "Content-Type": "application/x-amz-json-1.0",
            "X-Amz-Target": "AWSStepFunctions.StartExecution",
        }
        body_input = json.dumps({"at": rfc3339(at)})
        names = iter(range(count))
        async with aiohttp.ClientSession(connector=connector) as session:

            async def client() -> None:
                for n in names:
                    body = json.dumps(
                        {"stateMachineArn": "ping", "name": f"h{n}", "input": body_input}
                    )
                    async with session.post(url, data=body, headers=headers) as response:
                        await response.read()

            await asyncio.gather(*(client() for _ in range(32)))
        if time.time() >= at:
            raise RuntimeError("the herd was not loaded before its due second")
        cpu_before = bench.cpu_seconds()
        deadline = at + 120
        while len(bench.server.records) < count and time.time() < deadline:
            await asyncio.sleep(0.1)
        lateness = [(r.received_at - at) * 1000 for r in bench.server.records]
        # the results are committed once every execution has left its Task
        done_at = time.time()
        while time.time() < deadline:
            counts = (await bench.api.get("/healthz")).json()["executions"]
            if counts.get("SUCCEEDED", 0) >= count:
                done_at = time.time()
                break
            await asyncio.sleep(0.1)
        cpu = bench.cpu_seconds() - cpu_before
        await bench.close()
    return {
        "daemon_cpu_s": cpu,
        "delivered": len(lateness),
        "early": sum(1 for v in lateness if v < 0),
        "p50_ms": percentile(lateness, 50),
        "p99_ms": percentile(lateness, 99),
        "max_ms": max(lateness) if lateness else float("nan"),
        "all_committed_s": done_at - at,
    }


def _commit() -> str:
    try:
        return subprocess.check_output(
            ["git", "rev-parse", "--short", "HEAD"], text=True, stderr=subprocess.DEVNULL
        ).strip()
    except (OSError, subprocess.CalledProcessError):
        return "unknown"


def _record(mode: str, results: dict[str, dict[str, float]]) -> None:
    stamp = datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC")
    lines = [f"\n## {stamp}, commit {_commit()}, `{mode}`\n"]
    for name, figures in results.items():
        shown = ", ".join(
            f"{k} {v:.1f}" if isinstance(v, float) else f"{k} {v}" for k, v in figures.items()
        )
        lines.append(f"- **{name}**: {shown}")
    with RESULTS.open("a") as out:
        out.write("\n".join(lines) + "\n")


async def main(mode: str) -> int:
    quick = mode == "--quick"
    results = {
        "precision (idle, whole-second due times)": await precision(
            30 if quick else 100, 20 if quick else 60
        ),
        "restart after SIGKILL, down past due": await restart(20 if quick else 200),
        "intake (StartExecution, 64 connections)": await intake(3000 if quick else 20000, 64),
        "herd (same due second)": await herd(1000 if quick else 5000),
    }
    for name, figures in results.items():
        print(f"{name}: {figures}")
    _record(mode, results)
    return 0


if __name__ == "__main__":
    parser = argparse.ArgumentParser()
    group = parser.add_mutually_exclusive_group()
    group.add_argument("--quick", action="store_const", const="--quick", dest="mode")
    group.add_argument("--full", action="store_const", const="--full", dest="mode")
    sys.exit(asyncio.run(main(parser.parse_args().mode or "--quick")))
