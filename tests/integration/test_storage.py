"""Storage faults: a full disk, a database locked by another process, a corrupt database, and
a second daemon on the same database.

What must hold: a clear error; the API refuses work it cannot persist with an AWS-shaped error
(503 ServiceUnavailable) rather than a crash or a 500; every execution it acknowledged is kept
(a SIGKILL afterwards finds it); service resumes by itself when the fault goes away.
"""

from __future__ import annotations

import asyncio
import contextlib
import errno
import os
import signal
import subprocess
import sys
import time
from collections.abc import AsyncIterator, Callable, Iterator
from pathlib import Path

import httpx
import pytest
from tests.integration.chaos_support import Daemon, Lab, MachineSpec
from tests.integration.harness import (
    EXIT_SECONDS,
    STEP_PATHS,
    Classroom,
    records_of,
    sleep_until,
    whole_second,
)

from stepd.config import EX_CONFIG
from stepd.timers import SWEEP_SECONDS

SMALL_DISK = "2m"  # tmpfs size for the full-disk test
FILL_CHUNK = 64 * 1024
RUN_SECONDS = 40.0
LOCK_SECONDS = 8.0  # how long another process holds the database
BUSY_SECONDS = 5.0  # the store's busy_timeout: a write waits this long for a lock
# Steps held up by the lock go out within this once it is released: typically the first within
# 0.1 s, at worst at the next overdue sweep (every SWEEP_SECONDS, 2 s); 10x that.
RESUMED_SECONDS = 10 * SWEEP_SECONDS


@pytest.fixture
async def lab(tmp_path: Path) -> AsyncIterator[Lab]:
    async with Lab(tmp_path) as world:
        yield world


@pytest.fixture
def small_disk(tmp_path: Path) -> Iterator[Path]:
    """A 2 MiB tmpfs mounted for the test (root only)."""
    mount = tmp_path / "disk"
    mount.mkdir()
    done = subprocess.run(  # noqa: PLW1510 - the status is checked below
        ["mount", "-t", "tmpfs", "-o", f"size={SMALL_DISK}", "tmpfs", str(mount)],
        capture_output=True,
        text=True,
    )
    if done.returncode != 0:
        pytest.skip(f"cannot mount a small tmpfs here: {done.stderr.strip()}")
    try:
        yield mount
    finally:
        subprocess.run(["umount", "-l", str(mount)], check=False, capture_output=True)


def fill(folder: Path) -> Path:
    """Fill the filesystem holding `folder` to the last byte; the filler file."""
    filler = folder / "filler"
    descriptor = os.open(filler, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    try:
        chunk = FILL_CHUNK
        while chunk >= 1:
            try:
                os.write(descriptor, b"\0" * chunk)
            except OSError as exc:
                if exc.errno != errno.ENOSPC:
                    raise
                chunk //= 2
    finally:
        os.close(descriptor)
    return filler


async def start_until_refused(
    daemon: Daemon, prefix: str, count: int, start: int
) -> tuple[list[Classroom], list[dict[str, object]]]:
    """Up to `count` StartExecution calls (stopping after 5 refusals): what was acknowledged,
    and each refusal's status and body."""
    acknowledged, refusals = [], []
    for index in range(count):
        room = Classroom(name=f"{prefix}-{index:03d}", start=start, end=start + 3)
        status, answer = await daemon.call("StartExecution", room.start_request())
        if status == httpx.codes.OK:
            acknowledged.append(room)
        else:
            refusals.append({"status": status, **answer})
            if len(refusals) >= 5:
                break
    return acknowledged, refusals


def check_refusals(refusals: list[dict[str, object]], explain: str) -> None:
    assert refusals, f"every StartExecution was accepted: the fault was not felt\n{explain}"
    for refusal in refusals:
        assert refusal["status"] == 503, f"{refusal}\n{explain}"
        assert set(refusal) == {"status", "__type", "message"}, refusal
        assert refusal["__type"] == "ServiceUnavailable", refusal


async def check_all_delivered(lab: Lab, daemon: Daemon, rooms: list[Classroom]) -> int:
    """Every room SUCCEEDED with each step sent (same key on re-sends); the re-send count."""
    await daemon.wait_status(
        [r.name for r in rooms],
        "SUCCEEDED",
        timeout=max(r.end for r in rooms) - time.time() + RUN_SECONDS,
    )
    resent = 0
    for room in rooms:
        records = records_of(lab.server.records, room.name)
        for path in STEP_PATHS:
            sends = [r for r in records if r.path == path]
            assert sends, f"{room.name}: {path} never sent\n{lab.explain()}"
            assert len({r.idempotency_key for r in sends}) == 1, sends
            resent += len(sends) - 1
    return resent


# -- a full disk ------------------------------------------------------------------------------


FULL_SECONDS = 6.0  # how long the disk stays full, with steps falling due meanwhile


@pytest.mark.slow
async def test_full_disk_refuses_new_work_keeps_the_acknowledged_and_recovers(
    lab: Lab, small_disk: Path, figures: Callable[[str], None]
) -> None:
    """The database's filesystem fills up while steps fall due: StartExecution answers 503
    ServiceUnavailable, nothing acknowledged is lost (even across a SIGKILL), no step is sent
    over and over, and once space returns the daemon serves again by itself and finishes
    every execution."""
    daemon = lab.daemon(db=small_disk / "stepd.db")
    await daemon.start()
    start = whole_second(2)
    before = [Classroom(name=f"before-{i}", start=start + i % 3, end=start + 4) for i in range(6)]
    for room in before:
        await daemon.start_execution(room)
    filler = fill(small_disk)
    filled = time.time()

    during, refusals = await start_until_refused(daemon, "during", 400, start + 1)
    explain = lab.explain()
    check_refusals(refusals, explain)
    errors = daemon.log_events("api.store_error")
    assert errors, f"no store error logged\n{explain}"
    assert "full" in errors[-1]["error"], errors[-1]
    await sleep_until(filled + FULL_SECONDS)
    assert daemon.process is not None
    assert daemon.process.poll() is None, f"the daemon died on a full disk\n{explain}"
    posts_while_full = len(lab.server.records)

    filler.unlink()  # space returns
    freed = time.time()
    after, refusals_after = await start_until_refused(daemon, "after", 3, int(freed) + 2)
    assert refusals_after == [], f"still refusing once space returned: {refusals_after}"
    recovered = time.time() - freed
    rooms = before + during + after
    await daemon.wait_status([r.name for r in rooms], "SUCCEEDED", timeout=RUN_SECONDS)
    daemon.kill()  # what was acknowledged is on disk
    await daemon.start()
    resent = await check_all_delivered(lab, daemon, rooms)

    assert resent <= len(before), f"{resent} re-sends\n{lab.explain()}"
    figures(
        f"full disk for {FULL_SECONDS:.0f} s: {len(refusals)} StartExecution refused (503), "
        f"{len(during)} acknowledged; {posts_while_full} POSTs while full; all {len(rooms)} "
        f"acknowledged executions SUCCEEDED (serving again {recovered * 1000:.0f} ms after "
        f"space returned), {resent} re-sends"
    )


# -- a database locked by another process -----------------------------------------------------

LOCKER = """
import sqlite3, sys
conn = sqlite3.connect(sys.argv[1], isolation_level=None, timeout=30)
conn.execute("BEGIN EXCLUSIVE")
print("locked", flush=True)
sys.stdin.read()
conn.execute("ROLLBACK")
"""


@contextlib.contextmanager
def locked(db: Path) -> Iterator[subprocess.Popen[str]]:
    """Another process holds BEGIN EXCLUSIVE on `db` until the block ends."""
    process = subprocess.Popen(
        [sys.executable, "-c", LOCKER, str(db)],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert process.stdout is not None
        assert process.stdout.readline().strip() == "locked"
        yield process
    finally:
        if process.stdin is not None:
            process.stdin.close()
        process.wait(timeout=30)
        if process.stdout is not None:
            process.stdout.close()


@pytest.mark.slow
async def test_locked_database_refuses_new_work_and_resumes_when_released(
    lab: Lab, figures: Callable[[str], None]
) -> None:
    """Another process holds the database: StartExecution answers 503 after the busy
    timeout; steps due meanwhile go out once the lock is released; nothing is lost."""
    daemon = lab.daemon()
    await daemon.start()
    start = whole_second(3)
    rooms = [Classroom(name=f"locked-{i}", start=start + i, end=start + i + 3) for i in range(3)]
    for room in rooms:
        await daemon.start_execution(room)
    db = lab.folder / "stepd.db"
    await sleep_until(start - 1)
    with locked(db):
        locked_at = time.time()
        status, answer = await daemon.call(
            "StartExecution",
            Classroom(name="while-locked", start=start, end=start + 3).start_request(),
        )
        waited = time.time() - locked_at
        assert (status, set(answer)) == (503, {"__type", "message"}), answer
        assert answer["__type"] == "ServiceUnavailable", answer
        assert "locked" in answer["message"], answer
        assert waited < BUSY_SECONDS + 3, waited
        await sleep_until(locked_at + LOCK_SECONDS)
        assert await daemon.healthy(), daemon.tail()
    released = time.time()

    resent = await check_all_delivered(lab, daemon, rooms)
    assert (await daemon.describe("locked-0"))["status"] == "SUCCEEDED"
    assert resent == 0, lab.explain()
    first_after = (
        min(r.received_at for r in lab.server.records if r.received_at >= released - 0.5) - released
    )
    assert first_after < RESUMED_SECONDS, f"{first_after:.2f} s after the lock was released"
    figures(
        f"StartExecution refused after {waited:.2f} s of lock; first step sent "
        f"{first_after * 1000:.0f} ms after the lock was released"
    )
    status, _ = await daemon.call(
        "StartExecution", Classroom(name="after-lock", start=start, end=start + 3).start_request()
    )
    assert status == httpx.codes.OK


# -- a corrupt database -------------------------------------------------------------------------


def corrupt_header(db: Path) -> None:
    with db.open("r+b") as out:
        out.write(b"this is not sqlite" * 4)


def corrupt_pages(db: Path) -> None:
    """Scribble over every page but the first (the schema and user_version stay readable)."""
    size = db.stat().st_size
    page = 4096
    with db.open("r+b") as out:
        for offset in range(page, size, page):
            out.seek(offset)
            out.write(os.urandom(page // 2))


@pytest.mark.parametrize("damage", [corrupt_header, corrupt_pages], ids=["header", "pages"])
async def test_corrupt_database_at_start_is_a_clear_error(
    lab: Lab, damage: Callable[[Path], None]
) -> None:
    """A database damaged while stepd was stopped: the daemon refuses to start with a message
    naming the file, rather than starting on it and failing later."""
    daemon = lab.daemon()
    await daemon.start()
    start = whole_second(60)
    for index in range(40):
        await daemon.start_execution(
            Classroom(name=f"kept-{index:02d}", start=start, end=start + 9)
        )
    daemon.signal(signal.SIGTERM)
    assert await daemon.exited() == 0, daemon.tail()
    daemon.process = None
    db = lab.folder / "stepd.db"
    for suffix in ("-wal", "-shm"):
        Path(f"{db}{suffix}").unlink(missing_ok=True)
    damage(db)

    daemon.spawn()
    try:
        status = await daemon.exited()
    except subprocess.TimeoutExpired:
        status = None
    log = daemon.log_text().rsplit("--- stepd run, start", 1)[-1]
    if status is None:  # it started on a corrupt database: what does it answer?
        code, answer = await daemon.call("ListExecutions", {})
        raise AssertionError(
            f"the daemon started on a corrupt database; ListExecutions answers {code} {answer}"
            f"\n{log[-1500:]}"
        )
    assert status == EX_CONFIG, log[-1500:]  # systemd does not start it again and again
    assert str(db) in log, log
    assert "Traceback" not in log, log[-2000:]
    assert any(word in log for word in ("not a database", "malformed", "corrupt")), log[-1500:]


# -- two daemons, one database ------------------------------------------------------------------


async def test_second_daemon_on_the_same_database_through_a_symlink_refuses(lab: Lab) -> None:
    """A second daemon that reaches the same database through a symlink refuses to start
    (the lock must follow the file, not the name)."""
    first = lab.daemon(name="first")
    await first.start()
    other = lab.folder / "other"
    other.mkdir()
    (other / "stepd.db").symlink_to(lab.folder / "stepd.db")
    second = lab.daemon([MachineSpec(name="classroom")], name="second", db=other / "stepd.db")

    second.spawn()
    deadline = time.monotonic() + EXIT_SECONDS
    status = None
    while time.monotonic() < deadline:
        status = second.process.poll() if second.process else None
        if status is not None or await second.healthy():
            break
        await asyncio.sleep(0.1)

    assert status is not None, (
        "a second daemon runs (and answers /healthz) on the database the first one holds, "
        f"reached through a symlink\n{second.tail()}"
    )
    assert status != 0
    assert "in use" in second.log_text(), second.tail()
    assert await first.healthy()
