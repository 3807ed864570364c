"""The Task caller against the stand-in classroom server over real loopback sockets."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import time
from typing import TYPE_CHECKING

import pytest

from stepd.classroom import SECRET_ENV, ClassroomServer, load_records
from stepd.daemon import loop_factory
from stepd.tasks.caller import DEFAULT_USER_AGENT, TaskCaller, TaskRequest
from stepd.tasks.signing import verify
from stepd.testing import free_port

if TYPE_CHECKING:
    from collections.abc import AsyncIterator
    from pathlib import Path

SECRET = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"
KEY = "classroom:exec-1:StartRecording:1"
PATH = "/recording/start"
WAIT_SECONDS = 5.0  # upper bound for anything that should happen at once on loopback
SHORT_TIMEOUT_SECONDS = 0.2
HELD_SECONDS = 30.0  # an answer held back this long: 150x the timeout that cuts it short


@pytest.fixture
async def classroom(tmp_path: Path) -> AsyncIterator[ClassroomServer]:
    server = ClassroomServer(log_path=tmp_path / "requests.jsonl", signing_secret=SECRET)
    await server.start()
    yield server
    await server.stop()


@pytest.fixture
async def caller() -> AsyncIterator[TaskCaller]:
    async with TaskCaller(user_agent=DEFAULT_USER_AGENT, signing_secret=SECRET) as task_caller:
        yield task_caller


def request(
    url: str, *, key: str = KEY, payload: object = None, timeout_seconds: float = WAIT_SECONDS
) -> TaskRequest:
    return TaskRequest(
        url=url,
        payload={"classroom": "c1"} if payload is None else payload,
        idempotency_key=key,
        timeout_seconds=timeout_seconds,
    )


async def test_call_arrives_signed_with_all_headers(
    classroom: ClassroomServer, caller: TaskCaller
) -> None:
    """The server gets the JSON body, both key headers, the UA and a valid signature."""
    before = int(time.time())
    outcome = await caller.call(request(classroom.base_url + PATH))
    (record,) = classroom.records
    assert outcome.result == {"ok": True, "path": PATH, "received_at": record.received_at}
    assert (record.method, record.path, record.body) == ("POST", PATH, {"classroom": "c1"})
    assert record.idempotency_key == KEY
    assert record.headers["webhook-id"] == KEY
    assert record.headers["content-type"] == "application/json"
    assert record.headers["user-agent"] == DEFAULT_USER_AGENT
    assert before <= int(record.headers["webhook-timestamp"]) <= record.received_at
    assert record.signature_ok is True
    assert record.status == 200
    assert not record.duplicate


async def test_a_503_fault_fails_with_its_status_code(
    classroom: ClassroomServer, caller: TaskCaller
) -> None:
    """A scripted 503 with Retry-After fails the call with the status and the delay."""
    classroom.fail_next(PATH, status=503, retry_after=7)
    outcome = await caller.call(request(classroom.base_url + PATH))
    assert (outcome.error, outcome.status, outcome.retry_after) == (
        "States.Http.StatusCode.503",
        503,
        7.0,
    )
    assert classroom.records[0].status == 503


async def test_faults_are_used_up_in_order(classroom: ClassroomServer, caller: TaskCaller) -> None:
    """Queued faults apply to the next requests on their path only, then answers are normal."""
    classroom.fail_next(PATH, status=500, times=2)
    classroom.fail_next(PATH, status=429)
    url = classroom.base_url + PATH
    errors = [(await caller.call(request(url))).error for _ in range(4)]
    other = await caller.call(request(classroom.base_url + "/live/ping", key="other"))
    assert errors == [
        "States.Http.StatusCode.500",
        "States.Http.StatusCode.500",
        "States.Http.StatusCode.429",
        None,
    ]
    assert other.ok


async def test_a_slow_answer_times_out(classroom: ClassroomServer, caller: TaskCaller) -> None:
    """An answer held back past timeout_seconds fails with States.Timeout."""
    classroom.fail_next(PATH, status=200, delay=HELD_SECONDS)
    started = time.monotonic()
    outcome = await caller.call(
        request(classroom.base_url + PATH, timeout_seconds=SHORT_TIMEOUT_SECONDS)
    )
    assert (outcome.error, outcome.status) == ("States.Timeout", None)
    assert f"no answer within {SHORT_TIMEOUT_SECONDS:g} s" in (outcome.cause or ""), outcome
    # Gave up without waiting for the answer: typically after the 0.2 s, bounded at 50x that.
    assert time.monotonic() - started < HELD_SECONDS / 3


async def test_a_closed_port_is_a_socket_error(caller: TaskCaller) -> None:
    """Nothing listening (connection refused) fails with States.Http.Socket."""
    outcome = await caller.call(request(f"http://127.0.0.1:{free_port()}{PATH}"))
    assert (outcome.error, outcome.status) == ("States.Http.Socket", None)


async def test_a_dropped_connection_is_a_socket_error(
    classroom: ClassroomServer, caller: TaskCaller
) -> None:
    """A connection closed without an answer fails with States.Http.Socket."""
    classroom.fail_next(PATH, drop=True)
    outcome = await caller.call(request(classroom.base_url + PATH))
    assert outcome.error == "States.Http.Socket"
    assert classroom.records[0].status is None


async def test_a_repeated_key_is_flagged_duplicate(
    classroom: ClassroomServer, caller: TaskCaller
) -> None:
    """A second call with the same key gets the first answer and is flagged as a duplicate."""
    url = classroom.base_url + PATH
    first = await caller.call(request(url))
    second = await caller.call(request(url))
    assert second.result == first.result
    assert [r.duplicate for r in classroom.records] == [False, True]
    assert not classroom.records[1].payload_mismatch


async def test_a_lost_answer_then_a_retry_is_a_duplicate(
    classroom: ClassroomServer, caller: TaskCaller
) -> None:
    """Done but dropped (a 2xx fault) fails the call; the re-send is recognised by its key."""
    classroom.fail_next(PATH, status=200, drop=True)
    url = classroom.base_url + PATH
    lost = await caller.call(request(url))
    retried = await caller.call(request(url))
    assert (lost.error, retried.ok) == ("States.Http.Socket", True)
    assert [r.duplicate for r in classroom.records] == [False, True]


async def test_a_wrong_secret_is_refused(classroom: ClassroomServer) -> None:
    """A call signed with another secret is answered 401 and recorded as such."""
    async with TaskCaller(user_agent=DEFAULT_USER_AGENT, signing_secret="other") as wrong:
        outcome = await wrong.call(request(classroom.base_url + PATH))
    assert outcome.error == "States.Http.StatusCode.401"
    assert classroom.records[0].signature_ok is False


async def test_concurrent_calls_share_the_pool(
    classroom: ClassroomServer, caller: TaskCaller
) -> None:
    """Many calls at once all arrive, each once, each verified."""
    url = classroom.base_url + PATH
    outcomes = await asyncio.gather(*(caller.call(request(url, key=f"k{i}")) for i in range(50)))
    assert all(outcome.ok for outcome in outcomes)
    assert sorted(r.idempotency_key or "" for r in classroom.records) == sorted(
        f"k{i}" for i in range(50)
    )
    assert all(r.signature_ok for r in classroom.records)


async def test_records_are_in_the_log_file_before_the_answer(
    classroom: ClassroomServer, caller: TaskCaller, tmp_path: Path
) -> None:
    """Each record is a JSON line on disk by the time the caller has its answer."""
    await caller.call(request(classroom.base_url + PATH))
    await caller.call(request(classroom.base_url + PATH))
    assert load_records(tmp_path / "requests.jsonl") == classroom.records


async def test_wait_for_returns_once_enough_records_arrived(
    classroom: ClassroomServer, caller: TaskCaller
) -> None:
    """wait_for wakes up when the expected number of requests has been recorded."""
    waiter = asyncio.create_task(classroom.wait_for(2))
    await caller.call(request(classroom.base_url + PATH, key="a"))
    await caller.call(request(classroom.base_url + PATH, key="b"))
    async with asyncio.timeout(WAIT_SECONDS):
        records = await waiter
    assert [r.idempotency_key for r in records] == ["a", "b"]


async def test_module_entry_serves_until_sigterm(tmp_path: Path, caller: TaskCaller) -> None:
    """`python -m stepd.classroom` prints its URL first, logs requests and exits 0 on SIGTERM."""
    log = tmp_path / "requests.jsonl"
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "stepd.classroom",
        "--port",
        "0",
        "--log",
        str(log),
        stdout=subprocess.PIPE,
        env={**os.environ, SECRET_ENV: SECRET},
    )
    try:
        assert process.stdout is not None
        async with asyncio.timeout(WAIT_SECONDS):
            base_url = (await process.stdout.readline()).decode().strip()
        outcome = await caller.call(request(base_url + PATH))
        process.send_signal(signal.SIGTERM)
        async with asyncio.timeout(WAIT_SECONDS):
            returncode = await process.wait()
    finally:
        if process.returncode is None:
            process.kill()
            await process.wait()
    assert (outcome.ok, returncode) == (True, 0)
    (record,) = load_records(log)
    assert (record.path, record.signature_ok) == (PATH, True)
    assert verify(SECRET, record.headers, b'{"classroom":"c1"}', now=record.received_at)


def test_calls_on_the_daemons_event_loop(tmp_path: Path) -> None:
    """The daemon runs on uvloop's event loop, whose transports are not asyncio.Transport
    subclasses: calls on it arrive, keep their connection, fail and time out as on asyncio's."""
    factory = loop_factory()
    assert factory is not None, "uvloop is a dependency of stepd"

    async def calls() -> list[tuple[str | None, int | None]]:
        server = ClassroomServer(log_path=tmp_path / "requests.jsonl", signing_secret=SECRET)
        await server.start()
        try:
            async with TaskCaller(user_agent=DEFAULT_USER_AGENT, signing_secret=SECRET) as task:
                url = server.base_url + PATH
                outcomes = [await task.call(request(url, key=f"k{n}")) for n in range(3)]
                server.fail_next(PATH, status=503)
                outcomes.append(await task.call(request(url, key="failed")))
                server.fail_next(PATH, status=200, delay=HELD_SECONDS)
                slow = request(url, key="slow", timeout_seconds=SHORT_TIMEOUT_SECONDS)
                outcomes.append(await task.call(slow))
        finally:
            await server.stop()
        assert [r.idempotency_key for r in server.records] == ["k0", "k1", "k2", "failed", "slow"]
        assert all(r.signature_ok for r in server.records)
        return [(o.error, o.status) for o in outcomes]

    with asyncio.Runner(loop_factory=factory) as runner:
        outcomes = runner.run(calls())
    assert outcomes == [
        (None, 200),
        (None, 200),
        (None, 200),
        ("States.Http.StatusCode.503", 503),
        ("States.Timeout", None),
    ]


def test_the_daemon_runs_without_uvloop(monkeypatch: pytest.MonkeyPatch) -> None:
    """Without uvloop installed the daemon takes asyncio's own event loop."""
    monkeypatch.setitem(sys.modules, "uvloop", None)
    assert loop_factory() is None
