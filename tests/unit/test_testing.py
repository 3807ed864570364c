"""stepd.testing: the fakes other tests stand on behave as documented."""

from __future__ import annotations

import asyncio
import socket
from collections.abc import AsyncIterator

import pytest

from stepd.store.records import NewEvent, NewExecution, Progress
from stepd.tasks.caller import TaskOutcome, TaskRequest
from stepd.testing import DEFAULT_RESULT, FakeCaller, MemoryStore, free_port

URL = "http://classroom.test/start"
OTHER = "http://classroom.test/stop"
TIMEOUT = TaskOutcome(error="States.Timeout", cause="slow")


def request(url: str = URL, key: str = "m/c1/4") -> TaskRequest:
    return TaskRequest(url=url, payload={"n": 1}, idempotency_key=key, timeout_seconds=3.0)


@pytest.fixture
async def store() -> AsyncIterator[MemoryStore]:
    opened = MemoryStore()
    await opened.open()
    yield opened
    await opened.close()


async def test_an_unscripted_call_succeeds_with_the_default_result() -> None:
    """Without a script, every call answers DEFAULT_RESULT with status 200."""
    outcome = await FakeCaller().call(request())
    assert outcome == TaskOutcome(result=DEFAULT_RESULT, status=200)


async def test_replies_are_answered_in_order_then_the_default() -> None:
    """Outcomes are answered as they are and other values as 200 results, one per call."""
    caller = FakeCaller(TIMEOUT, {"n": 2}, None)
    outcomes = [await caller.call(request()) for _ in range(4)]
    assert outcomes == [
        TIMEOUT,
        TaskOutcome(result={"n": 2}, status=200),
        TaskOutcome(result=None, status=200),
        TaskOutcome(result=DEFAULT_RESULT, status=200),
    ]


async def test_a_url_script_is_used_for_that_url_before_the_replies() -> None:
    """script(url, ...) answers calls to that URL first; other URLs take the plain replies."""
    caller = FakeCaller("plain")
    caller.script(URL, TIMEOUT)
    assert [(await caller.call(request(u))).result for u in (OTHER, URL, URL)] == [
        "plain",
        None,
        DEFAULT_RESULT,
    ]
    assert caller.urls == [OTHER, URL, URL]


async def test_respond_answers_first_and_none_falls_through() -> None:
    """A respond function (sync or async) answers; when it returns None the script does."""

    async def only_stop(call: TaskRequest) -> TaskOutcome | None:
        return TIMEOUT if call.url == OTHER else None

    caller = FakeCaller("scripted", respond=only_stop)
    assert [await caller.call(request(u)) for u in (OTHER, URL)] == [
        TIMEOUT,
        TaskOutcome(result="scripted", status=200),
    ]


async def test_an_exception_reply_is_raised() -> None:
    """A scripted exception is raised by the call (a crash, when it is a BaseException)."""

    class Crash(BaseException):
        pass

    with pytest.raises(Crash):
        await FakeCaller(Crash()).call(request())


async def test_each_call_is_recorded_with_its_request() -> None:
    """URL, payload, idempotency key and timeout of every call are kept in order."""
    caller = FakeCaller()
    await caller.call(request(URL, "m/a/4"))
    await caller.call(request(OTHER, "m/b/7"))
    first = caller.calls[0]
    assert (first.url, first.payload, first.idempotency_key, first.timeout_seconds) == (
        URL,
        {"n": 1},
        "m/a/4",
        3.0,
    )
    assert caller.keys == ["m/a/4", "m/b/7"]


async def test_held_calls_stay_in_flight_until_released() -> None:
    """hold() keeps calls recorded but unanswered; release() answers them."""
    caller = FakeCaller()
    caller.hold()
    calls = [asyncio.create_task(caller.call(request())) for _ in range(2)]
    await caller.wait_for(2)
    await asyncio.sleep(0)
    assert (caller.held, [c.done() for c in calls]) == (2, [False, False])
    caller.release()
    outcomes = await asyncio.gather(*calls)
    assert (caller.held, [o.ok for o in outcomes]) == (0, [True, True])


async def test_wait_for_gives_up_after_its_timeout() -> None:
    """Waiting for calls that never come raises TimeoutError."""
    with pytest.raises(TimeoutError):
        await FakeCaller().wait_for(1, timeout=0.01)


async def test_with_a_store_a_call_records_its_execution_as_stored_then(
    store: MemoryStore,
) -> None:
    """The execution named by the key, and its event types, as they stood during the call."""
    definition_id = await store.put_definition("m", "{}")
    execution, _ = await store.create_execution(
        NewExecution(
            machine="m",
            name="c1",
            definition_id=definition_id,
            input="{}",
            start_date=1.0,
            uid="0123456789abcdef",
            progress=Progress(status="RUNNING"),
            events=(NewEvent(type="ExecutionStarted", details={}, ts=1.0),),
        )
    )
    caller = FakeCaller(store=store)
    await caller.call(request(key="m/c1/0123456789abcdef/4"))
    await caller.call(request(key="m/other/4"))
    assert [(c.execution, c.events) for c in caller.calls] == [
        (execution, ("ExecutionStarted",)),
        (None, ()),
    ]


async def test_probe_is_recorded_and_answers_probe_status() -> None:
    """probe() keeps (url, timeout) and answers probe_status: None until set."""
    caller = FakeCaller()
    before = await caller.probe(URL, 5.0)
    caller.probe_status = 204
    assert (before, await caller.probe(URL, 1.0), caller.probes) == (
        None,
        204,
        [(URL, 5.0), (URL, 1.0)],
    )


async def test_aclose_marks_the_caller_closed() -> None:
    """aclose() is recorded, for tests of who closes the caller."""
    caller = FakeCaller()
    await caller.aclose()
    assert caller.closed


def test_free_port_is_a_port_nothing_listens_on() -> None:
    """A connection to it is refused, and a server can listen on it."""
    port = free_port()
    with socket.socket() as client, pytest.raises(ConnectionRefusedError):
        client.connect(("127.0.0.1", port))
    with socket.socket() as server:
        server.bind(("127.0.0.1", port))
