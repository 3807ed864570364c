"""`stepd backup` of a running daemon, and the restore procedure of the README, followed step
by step with the real daemon: stop it (SIGTERM, as `systemctl stop`), copy the backup over the
store, remove the `-wal` and `-shm` files next to it, start it.
"""

from __future__ import annotations

import asyncio
import shutil
import time
from pathlib import Path

from tests.integration.harness import (
    MACHINE,
    START_PATH,
    Classroom,
    Delivery,
    Stepd,
    check_history,
    execution_arn,
    records_of,
    run_cli,
    whole_second,
)

from stepd.classroom import ClassroomServer, Record

# Class A is due this long after the test starts it: `stepd backup` (a Python process start,
# typically 0.5 s; over 10x that) is done before.
BACKUP_LEAD_SECONDS = 8
# Class B is due this long after A: the stop, the restore and the start (about 1 s; 10x) are
# over before it, so B makes no call before the backup is restored.
B_AFTER_A_SECONDS = 10
RUN_SECONDS = 30.0  # generous bound past a class's end for its execution to close
ARRIVAL_SECONDS = 10.0  # a POST the test waits for arrives within this


def restore(backup: Path, store: Path) -> None:
    """The README's restore, the daemon stopped: the backup copied over the store, and no
    `-wal` or `-shm` file left of the store it replaces."""
    shutil.copyfile(backup, store)
    for suffix in ("-wal", "-shm"):
        Path(f"{store}{suffix}").unlink(missing_ok=True)


def fields(text: str) -> dict[str, str]:
    """`stepd backup`'s `key: value` lines as a dict."""
    pairs = (line.strip().partition(": ") for line in text.splitlines())
    return {key: value for key, sep, value in pairs if sep}


async def wait_for_post(classroom: ClassroomServer, name: str, path: str) -> Record:
    """The first POST to `path` for execution `name`, once it has arrived."""
    async with asyncio.timeout(ARRIVAL_SECONDS):
        while True:
            found = [r for r in records_of(classroom.records, name) if r.path == path]
            if found:
                return found[0]
            await classroom.wait_for(len(classroom.records) + 1)


async def delivery(
    stepd: Stepd, classroom: ClassroomServer, room: Classroom, since: float = 0.0
) -> Delivery:
    """The execution's history (checked complete) and the POSTs made for it from `since`."""
    events = await stepd.history(room.name)
    check_history(events, stepd.tail())
    records = [r for r in records_of(classroom.records, room.name) if r.received_at >= since]
    return Delivery(classroom=room, events=events, records=records, uid=await stepd.uid(room.name))


async def test_a_restored_backup_carries_on_from_where_it_was(
    stepd: Stepd, classroom: ClassroomServer, tmp_path: Path
) -> None:
    """After a restore, executions continue from the backup: a call made after it is sent
    again with the same Idempotency-Key (the server answers it once); an execution started
    after it is not there, and started again under the same name its calls get new keys."""
    await stepd.start()
    start = whole_second(BACKUP_LEAD_SECONDS)
    room_a = Classroom(name="class-a", start=start, end=start + 4)
    b_start = start + B_AFTER_A_SECONDS
    room_b = Classroom(name="class-b", start=b_start, end=b_start + 3)
    await stepd.start_execution(room_a)
    await stepd.start_execution(room_b)

    backup = tmp_path / "backup.db"
    taken = await asyncio.to_thread(run_cli, "backup", backup, "-c", stepd.config)
    assert (taken.returncode, taken.stderr) == (0, ""), stepd.tail()
    assert time.time() < start, "the backup took too long for this test to mean anything"
    printed = fields(taken.stdout)
    assert (printed["backup"], printed["of"]) == (str(backup), str(tmp_path / "stepd.db"))
    assert (printed["executions"], printed["RUNNING"]) == ("2", "2")

    first_a = await wait_for_post(classroom, room_a.name, START_PATH)
    room_c = Classroom(name="class-c", start=int(time.time()), end=room_b.end)  # due now
    await stepd.start_execution(room_c)
    first_c = await wait_for_post(classroom, room_c.name, START_PATH)
    uid_c = await stepd.uid(room_c.name)
    (entered_c,) = [
        e["id"] for e in await stepd.history(room_c.name) if e["type"] == "TaskStateEntered"
    ]
    assert first_c.idempotency_key == f"{MACHINE}/{room_c.name}/{uid_c}/{entered_c}"

    assert await stepd.stop() == 0, stepd.tail()
    assert records_of(classroom.records, room_b.name) == [], "B was due before the restore"
    restore(backup, tmp_path / "stepd.db")
    await stepd.start()

    status, answer = await stepd.call(
        "DescribeExecution", {"executionArn": execution_arn(room_c.name)}
    )
    assert (status, answer["__type"]) == (400, "ExecutionDoesNotExist"), answer
    await stepd.wait_status(
        [room_a.name, room_b.name], "SUCCEEDED", timeout=room_b.end - time.time() + RUN_SECONDS
    )
    delivered_a = await delivery(stepd, classroom, room_a)
    delivered_a.check(max_sends=2, explain=stepd.tail())
    sent, resent = delivered_a.by_path()[START_PATH]
    assert sent == first_a
    assert sent.received_at < stepd.started_at < resent.received_at
    assert (resent.idempotency_key, resent.duplicate) == (sent.idempotency_key, True)
    (await delivery(stepd, classroom, room_b)).check(explain=stepd.tail())

    restarted = stepd.started_at
    await stepd.start_execution(room_c)
    await stepd.wait_status(
        [room_c.name], "SUCCEEDED", timeout=room_c.end - time.time() + RUN_SECONDS
    )
    again = await delivery(stepd, classroom, room_c, since=restarted)
    again.check(explain=stepd.tail())  # each call once, none taken for a re-send
    assert again.uid != uid_c
    resent_c = again.by_path()[START_PATH][0]
    assert resent_c.idempotency_key != first_c.idempotency_key
    # the same name and the same history: only the uid keeps the keys apart
    assert resent_c.idempotency_key.replace(again.uid, uid_c) == first_c.idempotency_key
