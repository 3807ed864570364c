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
from collections.abc import Iterable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import aiohttp
from bare import bare_posts
from harness import Bench, daemon_sources, fill_waiting, percentile, rfc3339

from stepd.classroom import ClassroomServer
from stepd.testing import free_port

RESULTS = Path(__file__).with_name("RESULTS.md")

# Map and Parallel: every iteration or branch one Task call, like the `ping` machine's
DELIVER = "arn:aws:lambda:us-east-1:123456789012:function:deliver"
BRANCHES = 10


def _deliver(end: bool = True) -> dict[str, Any]:
    return {"Type": "Task", "Resource": DELIVER, "ResultPath": None, "End": end}


MAP_MACHINE = {
    "StartAt": "Fan",
    "States": {
        "Fan": {
            "Type": "Map",
            "MaxConcurrency": 0,  # no limit of its own: AWS's 40 inline iterations at once
            "ItemProcessor": {"StartAt": "Deliver", "States": {"Deliver": _deliver()}},
            "End": True,
        }
    },
}
PARALLEL_MACHINE = {
    "StartAt": "Until",
    "States": {
        "Until": {"Type": "Wait", "TimestampPath": "$.at", "Next": "Fan"},
        "Fan": {
            "Type": "Parallel",
            "Branches": [
                {"StartAt": f"Deliver{b}", "States": {f"Deliver{b}": _deliver()}}
                for b in range(BRANCHES)
            ],
            "ResultPath": None,
            "End": True,
        },
    },
}
PASS_MAP_MACHINE = {
    "StartAt": "Fan",
    "States": {
        "Fan": {
            "Type": "Map",
            "MaxConcurrency": 0,
            "ItemProcessor": {"StartAt": "Keep", "States": {"Keep": {"Type": "Pass", "End": True}}},
            "End": True,
        }
    },
}
# the `ping` machine written in JSONata: the wait's end, the call's arguments and the state's
# output each an expression (ResultPath null's "keep the input" is Output {% $states.input %})
JSONATA_MACHINE = {
    "QueryLanguage": "JSONata",
    "StartAt": "Until",
    "States": {
        "Until": {"Type": "Wait", "Timestamp": "{% $states.input.at %}", "Next": "Ping"},
        "Ping": {
            "Type": "Task",
            "Resource": "ping",
            "Arguments": {"at": "{% $states.input.at %}"},
            "Output": "{% $states.input %}",
            "End": True,
        },
    },
}
FANOUT_MACHINES = {
    "map": (MAP_MACHINE, {"deliver": "/map"}),
    "parallel": (PARALLEL_MACHINE, {"deliver": "/parallel"}),
    "passmap": (PASS_MAP_MACHINE, {}),
    "jsonata": (JSONATA_MACHINE, {"Ping": "/jsonata"}),
}
HISTORY_LIMIT_LIFTED = 1_000_000


async def precision(
    count: int, spread_seconds: float, *, source: Path | None = None
) -> dict[str, float]:
    """Executions due at whole seconds spread over a window: how late does each POST arrive?"""
    with tempfile.TemporaryDirectory(prefix="stepd-bench-") as folder:
        bench = Bench(Path(folder), source=source)
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


async def intake(count: int, connections: int, *, source: Path | None = None) -> dict[str, float]:
    """StartExecution over the API from `connections` concurrent clients: rate and latency."""
    with tempfile.TemporaryDirectory(prefix="stepd-bench-") as folder:
        bench = Bench(Path(folder), source=source)
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


REFERENCE_RUNS = 3  # the bare client's time is the median of this many runs
LOADED_PER_SECOND = 400  # the herd is due 3 s, plus 1 s per this many executions, ahead


async def herd(count: int, *, source: Path | None = None) -> dict[str, float]:
    """`count` executions due in the same second: lateness of every start call, and beside
    each figure its ratio to the reference, the time a bare keep-alive client takes to send
    the same POSTs to the same server, measured right after in the same daemon's run.
    `source`: run the daemon from that copy of daemon/ instead (to compare commits)."""
    with tempfile.TemporaryDirectory(prefix="stepd-bench-") as folder:
        bench = Bench(Path(folder), source=source)
        try:
            await bench.setup()
            bench.start_daemon()
            await bench.wait_ready()
            at = float(int(time.time()) + 3 + count // LOADED_PER_SECOND)
            execution_input = {"at": rfc3339(at)}
            await _start_many(bench, "ping", (f"h{n}" for n in range(count)), execution_input)
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
                if bench.succeeded() >= count:
                    done_at = time.time()
                    break
                await asyncio.sleep(0.1)
            cpu = bench.cpu_seconds() - cpu_before
            reference_ms = await _reference(bench, count, execution_input) * 1000
        finally:
            await bench.close()
    p50, p99 = percentile(lateness, 50), percentile(lateness, 99)
    latest = max(lateness) if lateness else float("nan")
    committed_ms = (done_at - at) * 1000
    return {
        "reference_ms": reference_ms,
        "daemon_cpu_s": cpu,
        "cpu_per_step_us": cpu / count * 1e6,
        "delivered": len(lateness),
        "delivered_percent": 100 * len(lateness) / count,
        "early": sum(1 for v in lateness if v < 0),
        "p50_ms": p50,
        "p50_x_reference": p50 / reference_ms,
        "p99_ms": p99,
        "p99_x_reference": p99 / reference_ms,
        "max_ms": latest,
        "max_x_reference": latest / reference_ms,
        "all_committed_s": committed_ms / 1000,
        "all_committed_x_reference": committed_ms / reference_ms,
    }


async def _reference(bench: Bench, count: int, execution_input: Any) -> float:
    """Seconds a bare keep-alive client takes to POST the herd's `count` calls (same path,
    body and header sizes, as many connections as the daemon's call slots) to the same
    classroom server: the median of REFERENCE_RUNS runs."""
    body = json.dumps(execution_input, separators=(",", ":")).encode()
    runs = []
    for run in range(REFERENCE_RUNS):
        keys = [f"ping/r{run}{n:04d}/{n:016x}/3" for n in range(count)]  # a herd key's size
        runs.append(
            await bare_posts(
                bench.server.base_url, "/ping", keys, body, connections=bench.concurrency
            )
        )
    return sorted(runs)[len(runs) // 2]


async def _start_many(
    bench: Bench, machine: str, names: Iterable[str], execution_input: Any
) -> None:
    """Start an execution of `machine` for each name, over 32 connections."""
    url = f"http://127.0.0.1:{bench.port}/"
    headers = {
        "Content-Type": "application/x-amz-json-1.0",
        "X-Amz-Target": "AWSStepFunctions.StartExecution",
    }
    body_input = json.dumps(execution_input)
    pending = iter(names)
    async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=32)) as session:

        async def client() -> None:
            for name in pending:
                body = json.dumps({"stateMachineArn": machine, "name": name, "input": body_input})
                async with session.post(url, data=body, headers=headers) as response:
                    await response.read()
                    if response.status != 200:
                        raise RuntimeError(await response.text())

        await asyncio.gather(*(client() for _ in range(32)))


def _calls(bench: Bench, path: str, prefix: str) -> list[Any]:
    """The requests the classroom server got on `path` whose Idempotency-Key starts with
    `prefix` (`<machine>/<execution name>/` or `<machine>/<name prefix>`)."""
    return [
        r
        for r in bench.server.records
        if r.path == path and (r.idempotency_key or "").startswith(prefix)
    ]


def _each_once(records: list[Any], expected: int) -> bool:
    """`expected` calls, every Idempotency-Key distinct."""
    return len(records) == expected and len({r.idempotency_key for r in records}) == expected


async def _succeeded(bench: Bench, count: int, deadline: float) -> float:
    """Wait until the daemon has committed `count` SUCCEEDED executions in all; when it did
    (read from its database, not its API, to leave the daemon's CPU alone)."""
    while time.time() < deadline:
        if bench.succeeded() >= count:
            return time.time()
        await asyncio.sleep(0.05)
    raise RuntimeError(f"fewer than {count} executions succeeded in time")


async def _map_once(bench: Bench, name: str, items: int, machine: str = "map") -> dict[str, Any]:
    """One Map execution of `items` iterations, from StartExecution to its end; with the `map`
    machine, each iteration one Task call, with the `passmap` machine none."""
    prefix = f"{machine}/{name}/"
    calls = items if machine == "map" else 0
    cpu0 = bench.cpu_seconds()
    await bench.start(name, [{"item": n} for n in range(items)], machine=machine)
    deadline = time.time() + 120 + items / 20
    # its status read from the database file, not the API: polls would count in the CPU
    while bench.status(name, machine) == "RUNNING" and time.time() < deadline:
        await asyncio.sleep(0.02)
    cpu = bench.cpu_seconds() - cpu0
    described = await bench.describe(name, machine=machine)
    records = _calls(bench, "/map", prefix)
    delivered = sorted(r.body["item"] for r in records)
    output = described.get("output") or "[]"
    return {
        "status": described["status"],
        "error": described.get("error"),
        "seconds": described.get("stopDate", math.nan) - described["startDate"],
        "delivered": len(records),
        "each_once": _each_once(records, calls) and delivered == list(range(calls)),
        "cpu_s": cpu,
        "output_items": len(json.loads(output)),
        "output_bytes": len(output),
    }


async def _due_at_once(
    bench: Bench, machine: str, path: str, count: int, *, calls_each: int, done_before: int
) -> dict[str, Any]:
    """`count` executions of `machine` (a Wait for `$.at`, then `calls_each` Task calls to
    `path`) due in the same second: the daemon's CPU from their due second until all of them
    succeeded (`done_before`: executions that had succeeded before them), and their calls."""
    at = float(int(time.time()) + 3 + count // 1000)
    prefix = f"{machine}/{machine[0]}"
    names = (f"{machine[0]}{n}" for n in range(count))
    await _start_many(bench, machine, names, {"at": rfc3339(at)})
    if time.time() >= at:
        raise RuntimeError(f"the {machine} executions were not loaded before their due second")
    cpu0 = bench.cpu_seconds()
    await asyncio.sleep(max(0.0, at - time.time()))
    calls = count * calls_each
    while len(_calls(bench, path, prefix)) < calls and time.time() < at + 120:
        await asyncio.sleep(0.05)
    done = await _succeeded(bench, done_before + count, at + 120)
    cpu = bench.cpu_seconds() - cpu0
    records = _calls(bench, path, prefix)
    return {
        "cpu_s": cpu,
        "figures": {
            "delivered": len(records),
            "each_once_distinct_keys": _each_once(records, calls),
            "due_to_all_succeeded_s": done - at,
            "daemon_cpu_s": cpu,
        },
    }


async def map_cost(
    items: int, steps: int, parallels: int, *, source: Path | None = None
) -> dict[str, dict[str, Any]]:
    """In one daemon, one after the other: a Map of `items` Task iterations (40 at once);
    `steps` executions of the plain one-Task `ping` machine due at once; as many of the same
    machine written in JSONata; `parallels` executions of a Parallel of 10 one-Task branches
    due at once. The daemon's CPU for each, per iteration, per Task step, per JSONata step and
    per branch. `source`: the daemon from that copy of daemon/ (to compare commits)."""
    with tempfile.TemporaryDirectory(prefix="stepd-bench-") as folder:
        bench = Bench(Path(folder), machines=FANOUT_MACHINES, source=source)
        await bench.setup()
        bench.start_daemon()
        await bench.wait_ready()
        await asyncio.sleep(1)

        mapped = await _map_once(bench, "m", items)

        task = await _due_at_once(bench, "ping", "/ping", steps, calls_each=1, done_before=1)
        jsonata = await _due_at_once(
            bench, "jsonata", "/jsonata", steps, calls_each=1, done_before=1 + steps
        )
        parallel = await _due_at_once(
            bench,
            "parallel",
            "/parallel",
            parallels,
            calls_each=BRANCHES,
            done_before=1 + 2 * steps,
        )
        await bench.close()
    per_iteration = mapped["cpu_s"] / items * 1e6
    per_step = task["cpu_s"] / steps * 1e6
    per_jsonata_step = jsonata["cpu_s"] / steps * 1e6
    branches = parallels * BRANCHES
    per_branch = parallel["cpu_s"] / branches * 1e6
    return {
        f"map ({items} Task iterations, MaxConcurrency 0: 40 at once)": {
            "status": mapped["status"],
            "start_to_succeeded_s": mapped["seconds"],
            "delivered": mapped["delivered"],
            "each_once_distinct_keys": mapped["each_once"],
            "daemon_cpu_s": mapped["cpu_s"],
            "cpu_per_iteration_us": per_iteration,
        },
        f"plain Task steps ({steps} one-Task executions due at once, same daemon)": {
            **task["figures"],
            "cpu_per_task_step_us": per_step,
        },
        f"JSONata Task steps ({steps} executions of the same machine in JSONata)": {
            **jsonata["figures"],
            "cpu_per_jsonata_step_us": per_jsonata_step,
        },
        f"parallel ({parallels} executions of {BRANCHES} one-Task branches, due at once)": {
            **parallel["figures"],
            "cpu_per_branch_us": per_branch,
            "cpu_per_execution_us": parallel["cpu_s"] / parallels * 1e6,
        },
        "map and parallel against a plain Task step (CPU ratios)": {
            "map_iteration_over_task_step": per_iteration / per_step,
            "parallel_branch_over_task_step": per_branch / per_step,
            "jsonata_step_over_task_step": per_jsonata_step / per_step,
        },
    }


async def _sample_rss(bench: Bench, into: list[int]) -> None:
    while True:
        into.append(bench.rss_bytes())
        await asyncio.sleep(0.05)


async def map_memory(sizes: tuple[int, ...], machine: str = "passmap") -> dict[str, Any]:
    """For each size, a fresh daemon: its RSS idle, then one Map of that many Pass iterations
    (history limit lifted: 4 events an iteration), or with `machine` "map" Task iterations
    calling the classroom server (7 events an iteration), the RSS sampled every 50 ms while it
    runs, the peak (VmHWM) and the RSS 2 s after it ended."""
    figures: dict[str, Any] = {}
    for items in sizes:
        with tempfile.TemporaryDirectory(prefix="stepd-bench-") as folder:
            bench = Bench(Path(folder), machines=FANOUT_MACHINES, max_events=HISTORY_LIMIT_LIFTED)
            await bench.setup()
            bench.start_daemon()
            await bench.wait_ready()
            await asyncio.sleep(2)
            idle = bench.rss_bytes()
            samples: list[int] = []

            sampler = asyncio.create_task(_sample_rss(bench, samples))
            mapped = await _map_once(bench, "m", items, machine=machine)
            sampler.cancel()
            await asyncio.sleep(2)
            after = bench.rss_bytes()
            peak = bench.peak_rss_bytes()
            await bench.close()
        if mapped["status"] != "SUCCEEDED" or mapped["output_items"] != items:
            raise RuntimeError(f"the Map of {items} did not succeed: {mapped}")
        mb = 2**20
        figures[f"idle_rss_mb_{items}"] = idle / mb
        figures[f"during_max_rss_mb_{items}"] = max(samples) / mb
        figures[f"peak_mb_{items}"] = peak / mb
        figures[f"after_rss_mb_{items}"] = after / mb
        figures[f"output_kb_{items}"] = mapped["output_bytes"] / 1024
        figures[f"seconds_{items}"] = mapped["seconds"]
        figures[f"cpu_per_iteration_us_{items}"] = mapped["cpu_s"] / items * 1e6
    small, large = min(sizes), max(sizes)
    if large > small:
        grown = figures[f"peak_mb_{large}"] - figures[f"peak_mb_{small}"]
        figures["peak_growth_kb_per_1000_items"] = grown * 1024 / (large - small) * 1000
    return figures


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


async def _map_results(quick: bool) -> dict[str, dict[str, Any]]:
    results = await map_cost(*((200, 200, 20) if quick else (1000, 1000, 100)))
    sizes = (200, 2000) if quick else (1000, 10_000)
    results["map memory (peak RSS, a fresh daemon per size)"] = await map_memory(sizes)
    tasks = (2000,) if quick else (10_000,)
    results["map memory, Task iterations (40 calls at once)"] = await map_memory(tasks, "map")
    return results


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


async def herds(
    count: int, repeat: int, against: list[str], *, checks: bool = False
) -> dict[str, dict[str, float]]:
    """The herd `repeat` times; with `against` (commits), those commits' daemons and this
    checkout's in turn, each run with its own reference, so all see the same machine. The
    daemon runs from copies taken at the start: edits made meanwhile do not change it.
    `checks`: before each herd, the same daemon's idle precision and intake too."""
    results: dict[str, dict[str, float]] = {}
    with tempfile.TemporaryDirectory(prefix="stepd-against-") as folder:
        sources = daemon_sources(against, Path(folder))
        for run in range(1, repeat + 1):
            for name, source in sources.items():
                if checks:
                    for what, figures in (
                        ("precision", await precision(30, 20, source=source)),
                        ("intake", await intake(3000, 64, source=source)),
                    ):
                        results[f"{what}, run {run}, {name}"] = figures
                        print(f"{what}, run {run}, {name}: {figures}", flush=True)
                figures = await herd(count, source=source)
                results[f"herd {count}, run {run}, {name}"] = figures
                print(f"herd {count}, run {run}, {name}: {figures}", flush=True)
    return results


async def map_costs(quick: bool, repeat: int, against: list[str]) -> dict[str, dict[str, Any]]:
    """`map_cost` `repeat` times, those commits' daemons and this checkout's in turn."""
    results: dict[str, dict[str, Any]] = {}
    with tempfile.TemporaryDirectory(prefix="stepd-against-") as folder:
        sources = daemon_sources(against, Path(folder))
        for run in range(1, repeat + 1):
            for name, source in sources.items():
                sizes = (200, 200, 20) if quick else (1000, 1000, 100)
                costs = await map_cost(*sizes, source=source)
                figures = {
                    k: v for part in costs.values() for k, v in part.items() if "cpu_per" in k
                }
                figures.update(costs["map and parallel against a plain Task step (CPU ratios)"])
                figures["each_once"] = all(
                    p.get("each_once_distinct_keys") for p in costs.values() if "delivered" in p
                )
                results[f"map cost, run {run}, {name}"] = figures
                print(f"map cost, run {run}, {name}: {figures}", flush=True)
    return results


async def main(
    mode: str,
    only: str | None = None,
    *,
    repeat: int = 1,
    against: list[str] | None = None,
    checks: bool = False,
) -> int:
    quick = mode == "--quick"
    if only == "herd":
        results = await herds(1000 if quick else 5000, repeat, against or [], checks=checks)
        _record(f"{mode} herd" + (f" against {', '.join(against)}" if against else ""), results)
        return 0
    if only == "map" and against:
        results = await map_costs(quick, repeat, against)
        _record(f"{mode} map against {', '.join(against)}", results)
        return 0
    if only == "map":
        results = await _map_results(quick)
        for name, figures in results.items():
            print(f"{name}: {figures}")
        _record(f"{mode} map", results)
        return 0
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
    results.update(await _map_results(quick))
    for name, figures in results.items():
        print(f"{name}: {figures}")
    _record(mode, results)
    return 0


if __name__ == "__main__":
    parser = argparse.ArgumentParser()
    group = parser.add_mutually_exclusive_group()
    group.add_argument("--quick", action="store_const", const="--quick", dest="mode")
    group.add_argument("--full", action="store_const", const="--full", dest="mode")
    parser.add_argument("--only", choices=["map", "herd"], help="run this benchmark alone")
    parser.add_argument("--repeat", type=int, default=1, help="--only herd or map: this many runs")
    parser.add_argument(
        "--against",
        metavar="COMMIT",
        action="append",
        help="--only herd or map (its CPU ratios alone): that commit's daemon in turn with"
        " this checkout's (repeatable)",
    )
    parser.add_argument(
        "--checks",
        action="store_true",
        help="--only herd: each daemon's idle precision and intake before its herd",
    )
    arguments = parser.parse_args()
    sys.exit(
        asyncio.run(
            main(
                arguments.mode or "--quick",
                arguments.only,
                repeat=arguments.repeat,
                against=arguments.against,
                checks=arguments.checks,
            )
        )
    )
