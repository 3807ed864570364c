"""stepd benchmarks. `python bench/run.py --quick` (make bench) or `--full` for the figures.

Each benchmark runs the real daemon against a real stand-in classroom server on loopback and
prints its figures; the run appends them, with the commit, to bench/RESULTS.md.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import math
import subprocess
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path

import aiohttp
from harness import Bench, fill_waiting, percentile, rfc3339

from stepd.classroom import ClassroomServer
from stepd.testing import free_port

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
        figures = await _intake_on(bench, count, connections, prefix="i")
        await bench.close()
    return figures


async def _intake_on(
    bench: Bench, count: int, connections: int, *, prefix: str
) -> dict[str, float]:
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
                    {"stateMachineArn": "ping", "name": f"{prefix}{n}", "input": body_input}
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
        "delivered_percent": 100 * len(lateness) / count,
        "early": sum(1 for v in lateness if v < 0),
        "p50_ms": percentile(lateness, 50),
        "p99_ms": percentile(lateness, 99),
        "max_ms": max(lateness) if lateness else float("nan"),
        "all_committed_s": done_at - at,
    }


async def scale(count: int) -> dict[str, float]:
    """`count` executions waiting in the store: memory, restart to ready, intake, idle CPU."""
    with tempfile.TemporaryDirectory(prefix="stepd-bench-") as folder:
        bench = Bench(Path(folder))
        await bench.setup()
        bench.start_daemon()
        await bench.wait_ready()
        await bench.start_execution("template", time.time() + 86_400)
        bench.stop()
        far = time.time() + 30 * 86_400
        fill_waiting(Path(folder) / "stepd.db", "template", count, first_due=far)
        db_bytes = sum(
            f.stat().st_size for f in Path(folder).iterdir() if f.name.startswith("stepd.db")
        )
        bench.start_daemon()
        ready = await bench.wait_ready()
        ready_s = ready - bench.started_at
        await asyncio.sleep(2)
        cpu0, wall0 = bench.cpu_seconds(), time.monotonic()
        await asyncio.sleep(10)
        idle_cpu = (bench.cpu_seconds() - cpu0) / (time.monotonic() - wall0) * 100
        figures = await _intake_on(bench, 2000, 64, prefix="s")
        rss_mb = bench.rss_bytes() / 2**20
        await bench.close()
    return {
        "waiting": count,
        "db_bytes_per_execution": db_bytes / count,
        "restart_to_ready_s": ready_s,
        "rss_mb": rss_mb,
        "idle_cpu_percent": idle_cpu,
        "start_p99_ms": figures["p99_ms"],
        "start_per_second": figures["per_second"],
    }


class Baseline:
    """bench/baseline.py as a subprocess, with the same stand-in classroom server."""

    def __init__(self, folder: Path, server: ClassroomServer) -> None:
        self.folder = folder
        self.server = server
        self.port = free_port()
        self.process: subprocess.Popen[bytes] | None = None

    async def start(self) -> None:
        base_url = await self.server.start()
        self.process = subprocess.Popen(
            [
                sys.executable,
                str(Path(__file__).with_name("baseline.py")),
                str(self.folder / "jobs.db"),
                str(self.port),
                base_url,
            ],
            stdout=subprocess.PIPE,
        )
        assert self.process.stdout is not None
        await asyncio.to_thread(self.process.stdout.readline)

    async def create(self, count: int, start: float, connections: int) -> list[float]:
        latencies: list[float] = []
        names = iter(range(count))
        url = f"http://127.0.0.1:{self.port}/classroom"
        async with aiohttp.ClientSession(
            connector=aiohttp.TCPConnector(limit=connections)
        ) as session:

            async def client() -> None:
                for n in names:
                    body = {"name": f"b{n}", "start": rfc3339(start), "end": rfc3339(start + 3600)}
                    sent = time.perf_counter()
                    async with session.post(url, json=body) as response:
                        await response.read()
                    latencies.append((time.perf_counter() - sent) * 1000)

            await asyncio.gather(*(client() for _ in range(connections)))
        return latencies

    async def close(self) -> None:
        if self.process is not None:
            self.process.kill()
            self.process.wait()
        await self.server.stop()


async def baseline_intake(count: int, connections: int) -> dict[str, float]:
    """The baseline's intake: classrooms added per second (three date jobs each)."""
    with tempfile.TemporaryDirectory(prefix="stepd-baseline-") as folder:
        baseline = Baseline(Path(folder), ClassroomServer())
        await baseline.start()
        began = time.perf_counter()
        latencies = await baseline.create(count, time.time() + 86_400, connections)
        elapsed = time.perf_counter() - began
        await baseline.close()
    return {
        "classrooms": len(latencies),
        "per_second": len(latencies) / elapsed,
        "p99_ms": percentile(latencies, 99),
    }


async def baseline_herd(count: int, load_rate: float) -> dict[str, float]:
    """The baseline's herd: `count` classrooms starting in the same second."""
    with tempfile.TemporaryDirectory(prefix="stepd-baseline-") as folder:
        server = ClassroomServer()
        baseline = Baseline(Path(folder), server)
        await baseline.start()
        at = float(int(time.time() + count / load_rate) + 5)
        await baseline.create(count, at, 32)
        loaded_in_time = time.time() < at
        deadline = at + 60
        while time.time() < deadline and len(server.records) < count:
            await asyncio.sleep(0.5)
        lateness = [(r.received_at - at) * 1000 for r in server.records]
        await baseline.close()
    return {
        "loaded_before_due": loaded_in_time,
        "delivered": len(lateness),
        "delivered_within_60s_percent": 100 * len(lateness) / count,
        "p50_ms": percentile(lateness, 50),
        "p99_ms": percentile(lateness, 99),
    }


def _ratios(results: dict[str, dict[str, float]]) -> dict[str, float]:
    """stepd's figures over the baseline's (lateness: the baseline's over stepd's), on the same
    intake and herd; inf where the baseline delivered nothing."""
    ours_intake = results["intake (StartExecution, 64 connections)"]
    ours_herd = results["herd (same due second)"]
    base_intake = results["baseline intake (APScheduler 3 + SQLAlchemy store + httpx)"]
    base_herd = results["baseline herd (APScheduler 3 + SQLAlchemy store + httpx)"]
    delivered = base_herd["delivered_within_60s_percent"]
    return {
        "intake_rate_x": ours_intake["per_second"] / base_intake["per_second"],
        "intake_p99_latency_baseline_over_stepd": base_intake["p99_ms"] / ours_intake["p99_ms"],
        "herd_delivered_x": ours_herd["delivered_percent"] / delivered if delivered else math.inf,
        "herd_p99_lateness_baseline_over_stepd": base_herd["p99_ms"] / ours_herd["p99_ms"]
        if delivered
        else math.inf,
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
        "baseline intake (APScheduler 3 + SQLAlchemy store + httpx)": await baseline_intake(
            1000 if quick else 5000, 64
        ),
        "baseline herd (APScheduler 3 + SQLAlchemy store + httpx)": await baseline_herd(
            1000 if quick else 5000, load_rate=60
        ),
        "scale (waiting executions in the store)": await scale(100_000 if quick else 1_000_000),
    }
    results["stepd against the baseline (ratios)"] = _ratios(results)
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
