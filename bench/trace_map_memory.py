"""What holds a daemon's memory while a Map runs: the daemon in this process under tracemalloc.

    .venv/bin/python bench/trace_map_memory.py [items] [--no-trace]   # 2,000 by default

Runs `stepd run` in this process (the history limit lifted, as bench/run.py's map memory
benchmark does), starts one Map of `items` Pass iterations, and prints the Python allocations
alive, and not there when the daemon was idle, at two instants: just after the Map state created
its children (`Step._fan_out`) and just after it gathered their results
(`Step.fanout_succeeded`), by the lines that made them; with the traced peak beside the
process's RSS (what tracemalloc does not see, such as SQLite's page cache, is the difference).
At each instant, and idle and at the end, it also prints the RSS, the bytes SQLite has
allocated (`sqlite3_memory_used`, and its high-water mark) and glibc malloc's bytes in use
and free (`mallinfo2`). Tracing makes the daemon several times slower and its snapshots add
to the RSS: `--no-trace` gives those figures without it.
"""

from __future__ import annotations

import _sqlite3
import ctypes
import json
import os
import signal
import sys
import tempfile
import threading
import time
import tracemalloc
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx
from run import HISTORY_LIMIT_LIFTED, PASS_MAP_MACHINE

from stepd.cli import main
from stepd.engine import steps
from stepd.testing import free_port

FRAMES = 6


def _status_kb(field: str) -> int:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(field):
            return int(line.split()[1])
    return 0


SNAPSHOTS: dict[str, tracemalloc.Snapshot] = {}
FIGURES: dict[str, dict[str, int]] = {}
_SQLITE = ctypes.CDLL(_sqlite3.__file__)
_SQLITE.sqlite3_memory_used.restype = ctypes.c_int64
_SQLITE.sqlite3_memory_highwater.restype = ctypes.c_int64
_SQLITE.sqlite3_memory_highwater.argtypes = [ctypes.c_int]
_LIBC = ctypes.CDLL(None)


class _Mallinfo2(ctypes.Structure):
    _fields_ = [
        (name, ctypes.c_size_t)
        for name in (
            "arena", "ordblks", "smblks", "hblks", "hblkhd", "usmblks", "fsmblks",
            "uordblks", "fordblks", "keepcost",
        )
    ]  # fmt: skip


_LIBC.mallinfo2.restype = _Mallinfo2


def _figures(name: str) -> None:
    """The process's memory now, in KiB."""
    info = _LIBC.mallinfo2()
    FIGURES[name] = {
        "rss": _status_kb("VmRSS:"),
        "peak_rss": _status_kb("VmHWM:"),
        "sqlite_used": _SQLITE.sqlite3_memory_used() // 1024,
        "sqlite_highwater": _SQLITE.sqlite3_memory_highwater(0) // 1024,
        "malloc_in_use": (info.uordblks + info.hblkhd) // 1024,
        "malloc_free": info.fordblks // 1024,
        "traced": tracemalloc.get_traced_memory()[0] // 1024,
    }


def _snapshot_after(name: str, method: Callable[..., None]) -> Callable[..., None]:
    def traced(*args: Any, **kwargs: Any) -> None:
        method(*args, **kwargs)
        _figures(name)
        if tracemalloc.is_tracing():
            SNAPSHOTS[name] = tracemalloc.take_snapshot()

    return traced


def _drive(port: int, items: int, report: dict[str, object]) -> None:
    api = httpx.Client(base_url=f"http://127.0.0.1:{port}", timeout=60)
    while True:
        try:
            if api.get("/healthz").status_code == httpx.codes.OK:
                break
        except httpx.HTTPError:
            time.sleep(0.05)
    time.sleep(1)
    _figures("idle")
    report["idle"] = tracemalloc.take_snapshot() if tracemalloc.is_tracing() else None
    tracemalloc.reset_peak()
    headers = {"Content-Type": "application/x-amz-json-1.0"}
    api.post(
        "/",
        headers={**headers, "X-Amz-Target": "AWSStepFunctions.StartExecution"},
        content=json.dumps(
            {
                "stateMachineArn": "passmap",
                "name": "m",
                "input": json.dumps([{"item": n} for n in range(items)]),
            }
        ),
    ).raise_for_status()
    arn = "arn:aws:states:us-east-1:123456789012:execution:passmap:m"
    while True:
        time.sleep(0.5)
        described = api.post(
            "/",
            headers={**headers, "X-Amz-Target": "AWSStepFunctions.DescribeExecution"},
            content=json.dumps({"executionArn": arn}),
        ).json()
        if described["status"] != "RUNNING":
            break
    time.sleep(1)
    _figures("1 s after the end")
    report["status"] = described["status"]
    report["traced_peak_kb"] = tracemalloc.get_traced_memory()[1] // 1024
    os.kill(os.getpid(), signal.SIGTERM)


def run(items: int, *, trace: bool) -> None:
    steps.MAX_EVENTS = HISTORY_LIMIT_LIFTED
    hooks = (("_fan_out", "children created"), ("fanout_succeeded", "results gathered"))
    for method, name in hooks:  # measured right after the Step method returns
        setattr(steps.Step, method, _snapshot_after(name, getattr(steps.Step, method)))
    with tempfile.TemporaryDirectory(prefix="stepd-trace-") as folder:
        port = free_port()
        (Path(folder) / "passmap.asl.json").write_text(json.dumps(PASS_MAP_MACHINE))
        config = Path(folder) / "stepd.toml"
        config.write_text(
            f'[store]\npath = "stepd.db"\n[api]\nlisten = "127.0.0.1:{port}"\n'
            '[log]\nformat = "json"\nlevel = "warning"\n'
            '[[machines]]\nname = "passmap"\ndefinition = "passmap.asl.json"\n'
        )
        report: dict[str, object] = {}
        if trace:
            tracemalloc.start(FRAMES)
        driver = threading.Thread(target=_drive, args=(port, items, report), daemon=True)
        driver.start()
        main(["run", "-c", str(config)])
        driver.join(5)
        tracemalloc.stop()
    idle = report.pop("idle")
    print(json.dumps(report))
    print("KiB:", " ".join(f"{k:>16}" for k in FIGURES["idle"]))
    for name, figures in FIGURES.items():
        print(f"{name:>18}", " ".join(f"{v:16d}" for v in figures.values()))
    for name, snapshot in SNAPSHOTS.items():
        assert isinstance(idle, tracemalloc.Snapshot)
        growth = snapshot.compare_to(idle, "traceback")
        print(f"\n== {name}: allocations alive then and not when idle, {items} items")
        for stat in growth[:8]:
            print(f"\n{stat.size_diff / 1024:9.0f} KiB in {stat.count_diff:7d} blocks")
            for line in stat.traceback.format(limit=FRAMES, most_recent_first=True)[::2]:
                print("    " + line.strip())


if __name__ == "__main__":
    numbers = [a for a in sys.argv[1:] if a.isdigit()]
    run(int(numbers[0]) if numbers else 2000, trace="--no-trace" not in sys.argv)
