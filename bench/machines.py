"""Processes on "machines of their own" on one host: each group of processes gets a CPU budget
of its own (a cgroup with a CPU quota), as a node, or the database, on a machine of its own
would have a machine's CPU to itself and no more.

The bench's host has two cores that the nodes, the database and the bench's classroom server
otherwise share, so two nodes and their database compete for the CPU one SQLite node has to
itself. With a budget each (`Machine(cpus)`), one SQLite node and each PostgreSQL node get
the same CPU, and the database as much again; what is left stays with the bench's classroom
server and clients.

cgroup v2 (`cpu.max`) where the host has it, else v1's cpu controller (`cpu.cfs_quota_us`);
root only.
"""

from __future__ import annotations

import contextlib
import itertools
import os
from pathlib import Path

ROOT = Path("/sys/fs/cgroup")
PERIOD_US = 10_000  # a short period: a budget spent is given back within 10 ms
_names = itertools.count()


def _base() -> tuple[Path, bool]:
    """Where the groups go, and whether it is cgroup v2."""
    if (ROOT / "cgroup.controllers").exists():
        return ROOT, True
    if (ROOT / "cpu" / "cpu.cfs_quota_us").exists():
        return ROOT / "cpu", False
    raise RuntimeError(f"no cgroup cpu controller under {ROOT}: --machines needs one")


class Machine:
    """A CPU budget of `cpus` cores for the processes put in it (and what they start)."""

    def __init__(self, cpus: float) -> None:
        if os.geteuid() != 0:
            raise RuntimeError("--machines sets CPU quotas: run the bench as root")
        base, unified = _base()
        self.unified = unified
        self.base = base
        self.path = base / f"stepd-bench-{os.getpid()}-{next(_names)}"
        if unified:
            (base / "cgroup.subtree_control").write_text("+cpu")
        self.path.mkdir()
        quota = round(cpus * PERIOD_US)
        if unified:
            (self.path / "cpu.max").write_text(f"{quota} {PERIOD_US}")
        else:
            (self.path / "cpu.cfs_period_us").write_text(str(PERIOD_US))
            (self.path / "cpu.cfs_quota_us").write_text(str(quota))

    def add(self, pid: int) -> None:
        """Put process `pid` (all its threads) in this machine."""
        (self.path / "cgroup.procs").write_text(str(pid))

    def remove(self) -> None:
        """Give the processes still in it back to the host, and remove it."""
        with contextlib.suppress(OSError):
            for pid in (self.path / "cgroup.procs").read_text().split():
                with contextlib.suppress(OSError):
                    (self.base / "cgroup.procs").write_text(pid)
        with contextlib.suppress(OSError):
            self.path.rmdir()

    def throttled_seconds(self) -> float:
        """How long its processes were held back by the budget so far."""
        text = (self.path / "cpu.stat").read_text()
        fields = dict(line.split() for line in text.splitlines() if line.strip())
        if self.unified:
            return int(fields.get("throttled_usec", 0)) / 1e6
        return int(fields.get("throttled_time", 0)) / 1e9
