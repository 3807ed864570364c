"""Calls that wait for a down host: `Hosts` alone, the run queue's hold, and the engine.

A refused or reset call, or a 502/503/504, marks its host down; while it is down, a call that
its state would retry waits (spending no attempt) until a HEAD probe or another call is
answered, then the waiting calls go back to the queue earliest-due first. Probes are scripted
and their sleeps recorded, so nothing here waits for real intervals.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from types import SimpleNamespace
from typing import Any

import pytest

from stepd.engine import hosts as hosts_module
from stepd.engine.arns import Arns
from stepd.engine.executor import Engine
from stepd.engine.hosts import Hosts, origin
from stepd.engine.machines import Machine
from stepd.engine.queue import DueQueue
from stepd.store.base import Store
from stepd.store.records import Execution
from stepd.tasks.caller import TaskOutcome, TaskRequest
from stepd.tasks.endpoints import EndpointMap
from stepd.testing import FakeCaller

T0 = 1_800_000_000.0  # 2027-01-15T08:00:00Z
BASE_URL = "http://svc.test"
CALL_URL = f"{BASE_URL}/call"

SOCKET = TaskOutcome(error="States.Http.Socket", cause="connection refused")
TIMEOUT = TaskOutcome(error="States.Timeout", cause="read timed out")

UID = "u1"  # every execution's uid here: keys read <machine>/<name>/u1/<event>


def _status(code: int) -> TaskOutcome:
    return TaskOutcome(error=f"States.Http.StatusCode.{code}", cause=str(code), status=code)


class Clock:
    def __init__(self, now: float = T0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


async def _eventually(check: Callable[[], bool], timeout: float = 10.0) -> None:
    """Wait until `check` holds; the timeout is generous, for a slow machine."""
    async with asyncio.timeout(timeout):
        while not check():
            await asyncio.sleep(0.001)


# -- Hosts alone -------------------------------------------------------------------------


class Probe:
    """A scripted HEAD probe: each call takes the next answer, waiting for one if none is
    queued (so the probe loop stops where the test wants it)."""

    def __init__(self, *answers: int | Exception | None) -> None:
        self.answers: asyncio.Queue[int | Exception | None] = asyncio.Queue()
        for answer in answers:
            self.answers.put_nowait(answer)
        self.urls: list[str] = []

    async def __call__(self, url: str) -> int | None:
        self.urls.append(url)
        answer = await self.answers.get()
        if isinstance(answer, Exception):
            raise answer
        return answer


@dataclass
class Sleeps:
    """Stands in for the probe loop's asyncio.sleep: records the delay, only yields."""

    delays: list[float] = field(default_factory=list)

    async def __call__(self, delay: float) -> None:
        self.delays.append(delay)
        await asyncio.sleep(0)


@pytest.fixture
def sleeps(monkeypatch: pytest.MonkeyPatch) -> Sleeps:
    recorded = Sleeps()
    fake_asyncio = SimpleNamespace(
        sleep=recorded,
        create_task=asyncio.create_task,
        current_task=asyncio.current_task,
    )
    monkeypatch.setattr(hosts_module, "asyncio", fake_asyncio)
    return recorded


@dataclass
class Made:
    hosts: Hosts
    probe: Probe
    clock: Clock
    released: list[tuple[int, float]]


@pytest.fixture
async def make(sleeps: Sleeps) -> AsyncIterator[Callable[..., Made]]:
    made: list[Made] = []

    def build(*answers: int | Exception | None) -> Made:
        released: list[tuple[int, float]] = []
        probe, clock = Probe(*answers), Clock()
        hosts = Hosts(probe=probe, release=lambda e, d: released.append((e, d)), clock=clock)
        made.append(Made(hosts=hosts, probe=probe, clock=clock, released=released))
        return made[-1]

    yield build
    for one in made:
        one.hosts.close()
    await asyncio.sleep(0)  # let the cancelled probes finish


def _probe_task(hosts: Hosts, url: str) -> asyncio.Task[None]:
    task = hosts._down[origin(url)].probe
    assert task is not None
    return task


@pytest.mark.parametrize(
    ("url", "expected"),
    [
        pytest.param("http://svc.test/call", "http://svc.test:80", id="path-dropped"),
        pytest.param("http://svc.test:80/x", "http://svc.test:80", id="default-port"),
        pytest.param("https://svc.test/x", "https://svc.test:443", id="https-port"),
        pytest.param("HTTPS://Svc.Test:8443/a?b=c", "https://svc.test:8443", id="lowercased"),
        pytest.param("http://127.0.0.1:9000", "http://127.0.0.1:9000", id="port-kept"),
    ],
)
def test_a_host_is_its_scheme_name_and_port(url: str, expected: str) -> None:
    assert origin(url) == expected


@pytest.mark.parametrize(
    ("outcome", "error"),
    [
        pytest.param(SOCKET, "States.Http.Socket", id="refused"),
        pytest.param(_status(502), "States.Http.StatusCode.502", id="502"),
        pytest.param(_status(503), "States.Http.StatusCode.503", id="503"),
        pytest.param(_status(504), "States.Http.StatusCode.504", id="504"),
    ],
)
async def test_a_refusal_or_a_gateway_error_marks_the_whole_host_down(
    make: Callable[..., Made], outcome: TaskOutcome, error: str
) -> None:
    """The host is down for every path on it, with the error the call got; not other ports."""
    m = make()
    m.hosts.record(CALL_URL, outcome)
    assert (m.hosts.down, m.hosts.down_error(f"{BASE_URL}/other/path")) == (1, error)
    assert m.hosts.down_error("http://svc.test:8080/call") is None
    assert m.hosts.down_error("http://elsewhere.test/call") is None
    assert m.hosts.wait(f"{BASE_URL}/other", 1, T0, T0 + 60)
    assert m.hosts.waiting == 1


@pytest.mark.parametrize(
    "outcome",
    [
        pytest.param(TIMEOUT, id="timeout"),
        pytest.param(_status(500), id="500"),
        pytest.param(_status(404), id="404"),
        pytest.param(_status(429), id="429"),
        pytest.param(TaskOutcome(error="States.Runtime", cause="not http"), id="runtime"),
        pytest.param(TaskOutcome(result={"ok": True}, status=200), id="success"),
    ],
)
async def test_other_outcomes_leave_the_host_up(
    make: Callable[..., Made], outcome: TaskOutcome
) -> None:
    """A timeout, an answered error or a call that was never made says nothing of the host:
    no call waits for it."""
    m = make()
    m.hosts.record(CALL_URL, outcome)
    assert (m.hosts.down, m.hosts.down_error(CALL_URL)) == (0, None)
    assert not m.hosts.wait(CALL_URL, 1, T0, T0 + 60)
    assert m.hosts.waiting == 0


@pytest.mark.parametrize(
    "answer",
    [
        pytest.param(TaskOutcome(result={"ok": True}, status=200), id="200"),
        pytest.param(_status(404), id="404"),
        pytest.param(_status(500), id="500"),
    ],
)
async def test_an_answered_call_brings_the_host_up_and_releases_waiters_in_due_order(
    make: Callable[..., Made], answer: TaskOutcome
) -> None:
    """Calls are released earliest-due first, whatever order they began waiting in, and the
    probe stops."""
    m = make()
    m.hosts.record(CALL_URL, SOCKET)
    probe = _probe_task(m.hosts, CALL_URL)
    for execution_id, due_at in ((7, T0 + 30), (3, T0 + 10), (9, T0 + 20), (1, T0 + 40)):
        assert m.hosts.wait(CALL_URL, execution_id, due_at, T0 + 600)
    assert m.released == []
    m.hosts.record(f"{BASE_URL}/elsewhere", answer)
    assert m.released == [(3, T0 + 10), (9, T0 + 20), (7, T0 + 30), (1, T0 + 40)]
    assert (m.hosts.down, m.hosts.waiting, m.hosts.down_error(CALL_URL)) == (0, 0, None)
    with contextlib.suppress(asyncio.CancelledError):
        await probe
    assert probe.cancelled()


async def test_a_timeout_while_down_keeps_the_host_down_and_its_calls_waiting(
    make: Callable[..., Made],
) -> None:
    m = make()
    m.hosts.record(CALL_URL, _status(503))
    assert m.hosts.wait(CALL_URL, 1, T0, T0 + 60)
    m.hosts.record(CALL_URL, TIMEOUT)
    assert (m.hosts.down, m.hosts.waiting, m.released) == (1, 1, [])
    assert m.hosts.down_error(CALL_URL) == "States.Http.StatusCode.503"


async def test_a_second_down_error_updates_the_error_and_keeps_the_one_probe(
    make: Callable[..., Made],
) -> None:
    m = make()
    m.hosts.record(CALL_URL, SOCKET)
    probe = _probe_task(m.hosts, CALL_URL)
    m.hosts.record(CALL_URL, _status(504))
    assert m.hosts.down_error(CALL_URL) == "States.Http.StatusCode.504"
    assert _probe_task(m.hosts, CALL_URL) is probe
    assert not probe.done()


async def test_the_probe_starts_after_half_a_second_and_doubles_up_to_two_seconds(
    make: Callable[..., Made], sleeps: Sleeps
) -> None:
    """Unanswered, 503 and failing probes keep the host down; the first other answer (even
    a 405) brings it up and releases its calls."""
    m = make(None, 503, OSError("boom"), None, 405)
    m.hosts.record(CALL_URL, SOCKET)
    m.hosts.wait(CALL_URL, 1, T0, T0 + 600)
    probe = _probe_task(m.hosts, CALL_URL)
    await asyncio.wait_for(probe, 1.0)
    assert sleeps.delays == [0.5, 1.0, 2.0, 2.0, 2.0]
    assert m.probe.urls == [CALL_URL] * 5
    assert (m.hosts.down, m.released) == (0, [(1, T0)])


async def test_the_probe_asks_the_endpoint_of_the_call_that_found_the_host_down(
    make: Callable[..., Made],
) -> None:
    m = make()
    m.hosts.record(f"{BASE_URL}/first", SOCKET)
    m.hosts.record(f"{BASE_URL}/second", SOCKET)
    await _eventually(lambda: len(m.probe.urls) == 1)
    assert m.probe.urls == [f"{BASE_URL}/first"]


async def test_calls_past_their_limit_are_released_by_the_probe_loop_in_due_order(
    make: Callable[..., Made],
) -> None:
    """Before each probe, calls whose limit has passed go back (earliest-due first); the
    others keep waiting and the host stays down."""
    m = make()
    m.hosts.record(CALL_URL, SOCKET)
    m.hosts.wait(CALL_URL, 1, T0 + 3, T0 + 5)
    m.hosts.wait(CALL_URL, 2, T0 + 1, T0 + 5.5)
    m.hosts.wait(CALL_URL, 3, T0 + 0, T0 + 100)
    m.hosts.wait(CALL_URL, 4, T0 + 2, T0 + 6)  # exactly at its limit: released too
    await _eventually(lambda: len(m.probe.urls) == 1)
    assert m.released == []  # nothing had expired at the first probe
    m.clock.now = T0 + 6
    m.probe.answers.put_nowait(None)
    await _eventually(lambda: len(m.probe.urls) == 2)
    assert m.released == [(2, T0 + 1), (4, T0 + 2), (1, T0 + 3)]
    assert (m.hosts.down, m.hosts.waiting) == (1, 1)
    m.probe.answers.put_nowait(204)
    await _eventually(lambda: m.hosts.down == 0)
    assert m.released[3:] == [(3, T0)]


async def test_waiters_of_another_host_keep_waiting(make: Callable[..., Made]) -> None:
    m = make()
    m.hosts.record(CALL_URL, SOCKET)
    m.hosts.record("http://other.test/x", SOCKET)
    m.hosts.wait(CALL_URL, 1, T0, T0 + 60)
    m.hosts.wait("http://other.test/y", 2, T0 - 5, T0 + 60)
    m.hosts.record(CALL_URL, TaskOutcome(result=None, status=204))
    assert (m.released, m.hosts.down, m.hosts.waiting) == ([(1, T0)], 1, 1)
    assert m.hosts.down_error("http://other.test/z") == "States.Http.Socket"


async def test_release_all_sends_every_waiting_call_back_and_forgets_the_hosts(
    make: Callable[..., Made],
) -> None:
    m = make()
    m.hosts.record(CALL_URL, SOCKET)
    m.hosts.record("http://other.test/x", _status(502))
    probes = [_probe_task(m.hosts, CALL_URL), _probe_task(m.hosts, "http://other.test/x")]
    m.hosts.wait(CALL_URL, 1, T0 + 2, T0 + 60)
    m.hosts.wait("http://other.test/x", 2, T0 + 1, T0 + 60)
    m.hosts.release_all()
    assert sorted(m.released) == [(1, T0 + 2), (2, T0 + 1)]
    assert (m.hosts.down, m.hosts.waiting, m.hosts.down_error(CALL_URL)) == (0, 0, None)
    await asyncio.gather(*probes, return_exceptions=True)
    assert all(probe.cancelled() for probe in probes)


async def test_close_stops_the_probes_and_releases_nothing(make: Callable[..., Made]) -> None:
    m = make(None, None, None)
    m.hosts.record(CALL_URL, SOCKET)
    probe = _probe_task(m.hosts, CALL_URL)
    m.hosts.wait(CALL_URL, 1, T0, T0 + 60)
    m.hosts.close()
    with contextlib.suppress(asyncio.CancelledError):
        await probe
    assert probe.cancelled()
    assert (m.hosts.down, m.hosts.waiting, m.released) == (0, 0, [])
    assert not m.hosts.wait(CALL_URL, 2, T0, T0 + 60)


# -- the run queue's hold ----------------------------------------------------------------


async def test_a_held_execution_ignores_pushes_until_released() -> None:
    """A sweep finding a waiting call overdue does not run it; release queues it once."""
    handled: list[int] = []

    async def handle(execution_id: int) -> None:
        handled.append(execution_id)

    queue = DueQueue(handle, workers=1)
    queue.hold(5)
    queue.push(5, T0)
    assert (len(queue), queue.held, queue.is_active(5)) == (0, 1, True)
    queue.push(6, T0 + 2)
    queue.release(5, T0 + 1)
    queue.push(5, T0 + 3)  # a later push for a queued execution changes nothing
    assert (len(queue), queue.held) == (2, 0)
    queue.start()
    try:
        await _eventually(lambda: len(handled) == 2)
    finally:
        await queue.stop(1.0)
    assert handled == [5, 6]


# -- the engine ----------------------------------------------------------------------------


def _definition(task: dict[str, Any]) -> dict[str, Any]:
    return {
        "StartAt": "Until",
        "States": {
            "Until": {"Type": "Wait", "TimestampPath": "$.start", "Next": "Call"},
            "Call": {
                "Type": "Task",
                "Resource": "arn:aws:lambda:us-east-1:1:function:call",
                "ResultPath": None,
                "End": True,
                **task,
            },
            "Caught": {"Type": "Pass", "End": True},
        },
    }


RETRY: dict[str, Any] = {
    "Retry": [{"ErrorEquals": ["States.ALL"], "IntervalSeconds": 2, "MaxAttempts": 2}]
}


def _machine(name: str, task: dict[str, Any], wait: float = 0.0) -> Machine:
    definition = _definition(task)
    return Machine(
        name=name,
        definition=definition,
        definition_text=json.dumps(definition),
        endpoints=EndpointMap(base_url=BASE_URL, routes={"Call": "/call"}),
        wait_for_host_seconds=wait,
    )


def _input(at: float) -> str:
    return json.dumps({"start": datetime.fromtimestamp(T0 + at, UTC).isoformat()})


@pytest.fixture
def fast_probes(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(hosts_module, "FIRST_PROBE_SECONDS", 0.005)
    monkeypatch.setattr(hosts_module, "MAX_PROBE_SECONDS", 0.01)


@dataclass
class Rig:
    """Engines on one store and one caller, which answers each execution's scripted
    `outcomes` (success when none are left) and the probe with `caller.probe_status`."""

    store: Store
    clock: Clock = field(default_factory=Clock)
    outcomes: dict[str, list[TaskOutcome]] = field(default_factory=dict)
    engines: list[Engine] = field(default_factory=list)

    def __post_init__(self) -> None:
        self.caller = FakeCaller(respond=self.answer)

    def answer(self, request: TaskRequest) -> TaskOutcome | None:
        """The next outcome scripted for the execution (named in the key) making `request`."""
        scripted = self.outcomes.get(request.idempotency_key.split("/")[1], [])
        return scripted.pop(0) if scripted else None

    async def engine(self, *machines: Machine) -> Engine:
        engine = Engine(
            uid=lambda: UID,
            store=self.store,
            caller=self.caller,
            machines={},
            arns=Arns(),
            clock=self.clock,
            random=lambda: 0.5,
            workers=1,
        )
        await engine.register({machine.name: machine for machine in machines})
        engine.set_timer(lambda _id, _due: None)
        self.engines.append(engine)
        return engine

    async def row(self, execution_id: int) -> Execution:
        execution = await self.store.get_execution(execution_id)
        assert execution is not None
        return execution

    async def types(self, execution_id: int) -> list[str]:
        events = await self.store.history(execution_id, reverse=False, limit=1000, after=None)
        return [event.type for event in events]


@pytest.fixture
async def rig(store: Store, fast_probes: None) -> AsyncIterator[Rig]:
    made = Rig(store=store)
    yield made
    for engine in made.engines:
        engine._hosts.close()
        await engine._queue.stop(1.0)


async def _start(engine: Engine, machine: str, name: str, at: float) -> int:
    started = await engine.start_execution(machine, name, _input(at))
    return started.execution.id


async def _host_down(rig: Rig, engine: Engine, outcome: TaskOutcome = SOCKET) -> int:
    """Execution "a" of machine "svc" fails at T0+10 and marks the host down; it is due
    to retry at T0+12."""
    a = await _start(engine, "svc", "a", 10)
    rig.outcomes["a"] = [outcome]
    rig.clock.now = T0 + 10
    await engine.advance(a)
    assert engine._hosts.down_error(CALL_URL) == outcome.error
    return a


@pytest.mark.parametrize("outcome", [SOCKET, _status(503)], ids=["refused", "503"])
async def test_a_call_to_a_down_host_waits_without_being_sent_or_spending_attempts(
    rig: Rig, outcome: TaskOutcome
) -> None:
    """The Task state is entered and committed with `waiting_since`, but nothing is
    scheduled or sent; pushes from a sweep are ignored while it waits."""
    engine = await rig.engine(_machine("svc", RETRY, wait=60))
    await _host_down(rig, engine, outcome)
    b = await _start(engine, "svc", "b", 11)
    rig.clock.now = T0 + 11
    await engine.advance(b)
    held = await rig.row(b)
    assert rig.caller.keys == ["svc/a/u1/4"]
    assert (held.state, held.phase, held.attempt, held.retry_counts) == ("Call", "task", 0, ())
    assert (held.task.sent, held.task.waiting_since) == (False, T0 + 11)
    assert (await rig.types(b))[-2:] == ["WaitStateExited", "TaskStateEntered"]
    assert (engine._hosts.waiting, engine._queue.held, engine._queue.is_active(b)) == (1, 1, True)
    engine.dispatch(b, T0)
    rig.clock.now = T0 + 20
    await engine.advance(b)  # looked at again while the host is still down
    assert (len(engine._queue), rig.caller.keys, await rig.row(b)) == (0, ["svc/a/u1/4"], held)


async def test_waiting_calls_go_out_earliest_due_first_when_the_probe_is_answered(
    rig: Rig,
) -> None:
    """Held in the order late, early, a's retry (due T0+12, first due T0+10); sent a, early,
    late once a HEAD probe gets a 200, each on the attempt it was held at."""
    engine = await rig.engine(_machine("svc", RETRY, wait=60))
    late = await _start(engine, "svc", "late", 13)  # ids against due order
    early = await _start(engine, "svc", "early", 12)
    a = await _host_down(rig, engine)
    assert late < early < a
    rig.clock.now = T0 + 13
    for execution_id in (late, early, a):
        await engine.advance(execution_id)
    retrying = await rig.row(a)
    assert (retrying.attempt, retrying.task.first_due) == (1, T0 + 10)
    assert (await rig.types(a)).count("LambdaFunctionScheduled") == 1  # the retry waits, unsent
    assert (rig.caller.keys, engine._hosts.waiting) == (["svc/a/u1/4"], 3)
    await _eventually(lambda: len(rig.caller.probes) >= 2)
    assert engine._hosts.waiting == 3  # unanswered probes release nothing
    engine._queue.start()
    rig.caller.probe_status = 200
    await _eventually(lambda: len(rig.caller.calls) == 4)
    assert rig.caller.keys == ["svc/a/u1/4", "svc/a/u1/4", "svc/early/u1/4", "svc/late/u1/4"]
    assert set(rig.caller.probes) == {(CALL_URL, 5.0)}
    assert (engine._hosts.down, engine._hosts.waiting, engine._queue.held) == (0, 0, 0)
    await _eventually(lambda: engine._queue.busy == 0 and len(engine._queue) == 0)
    for execution_id, sends in ((a, 2), (early, 1), (late, 1)):
        done = await rig.row(execution_id)
        assert done.status == "SUCCEEDED"
        assert (await rig.types(execution_id)).count("LambdaFunctionScheduled") == sends


async def test_any_answered_call_releases_the_waiting_calls_without_the_probe(
    rig: Rig,
) -> None:
    """A machine that does not wait still calls the down host; its answer brings the host up."""
    engine = await rig.engine(_machine("svc", RETRY, wait=60), _machine("plain", RETRY))
    await _host_down(rig, engine)
    b = await _start(engine, "svc", "b", 11)
    p = await _start(engine, "plain", "p", 11)
    rig.clock.now = T0 + 11
    await engine.advance(b)
    assert engine._hosts.waiting == 1
    engine._queue.start()
    await engine.advance(p)  # sent although the host is down, and answered
    await _eventually(lambda: len(rig.caller.calls) == 3)
    assert rig.caller.keys == ["svc/a/u1/4", "plain/p/u1/4", "svc/b/u1/4"]
    assert (engine._hosts.down, engine._hosts.waiting) == (0, 0)


async def test_without_wait_for_host_seconds_calls_spend_their_attempts_as_on_aws(
    rig: Rig,
) -> None:
    """wait_for_host_seconds = 0: a call to a down host is sent, retried and fails after
    MaxAttempts exactly as AWS would."""
    engine = await rig.engine(_machine("svc", RETRY))
    await _host_down(rig, engine)
    b = await _start(engine, "svc", "b", 11)
    rig.outcomes["b"] = [SOCKET, SOCKET, SOCKET]
    for at in (11, 13, 17):
        rig.clock.now = T0 + at
        await engine.advance(b)
        assert (engine._hosts.waiting, engine._queue.held) == (0, 0)
    failed = await rig.row(b)
    assert (failed.status, failed.error) == ("FAILED", "States.Http.Socket")
    assert rig.caller.keys.count("svc/b/u1/4") == 3
    assert engine._hosts.down == 1


@pytest.mark.parametrize(
    ("task", "status"),
    [
        pytest.param({}, "FAILED", id="no-retry"),
        pytest.param(
            {"Retry": [{"ErrorEquals": ["States.Timeout"], "MaxAttempts": 3}]},
            "FAILED",
            id="retry-for-other-errors",
        ),
        pytest.param(
            {"Retry": [{"ErrorEquals": ["States.ALL"], "MaxAttempts": 0}]},
            "FAILED",
            id="retry-never",
        ),
        pytest.param(
            {"Catch": [{"ErrorEquals": ["States.ALL"], "Next": "Caught"}]},
            "SUCCEEDED",
            id="catch-only",
        ),
    ],
)
async def test_a_state_that_would_not_retry_the_error_calls_at_once(
    rig: Rig, task: dict[str, Any], status: str
) -> None:
    """Even on a machine that waits, a call whose state would not retry the host's error is
    sent, and its error (or Catch) comes at once."""
    engine = await rig.engine(_machine("svc", RETRY, wait=60), _machine("once", task, wait=60))
    await _host_down(rig, engine)
    x = await _start(engine, "once", "x", 11)
    rig.outcomes["x"] = [SOCKET]
    rig.clock.now = T0 + 11
    await engine.advance(x)
    closed = await rig.row(x)
    assert (closed.status, rig.caller.keys) == (status, ["svc/a/u1/4", "once/x/u1/4"])
    assert "LambdaFunctionFailed" in await rig.types(x)
    assert (engine._hosts.waiting, engine._queue.held) == (0, 0)


async def test_a_call_that_waited_its_limit_is_sent_and_takes_its_retry(rig: Rig) -> None:
    """Held at T0+11 with a 5 s limit: still waiting at T0+15.9, released by the probe loop
    at T0+16 and sent though the host is still down; its failure is retried as usual."""
    engine = await rig.engine(_machine("svc", RETRY, wait=5))
    await _host_down(rig, engine)
    b = await _start(engine, "svc", "b", 11)
    rig.outcomes["b"] = [SOCKET]
    rig.clock.now = T0 + 11
    await engine.advance(b)
    engine._queue.start()
    rig.clock.now = T0 + 15.9
    probes = len(rig.caller.probes)
    await _eventually(lambda: len(rig.caller.probes) >= probes + 2)
    assert (engine._hosts.waiting, rig.caller.keys) == (1, ["svc/a/u1/4"])
    rig.clock.now = T0 + 16
    await _eventually(lambda: len(rig.caller.calls) == 2)
    await _eventually(lambda: engine._queue.busy == 0)
    retrying = await rig.row(b)
    assert rig.caller.keys == ["svc/a/u1/4", "svc/b/u1/4"]
    assert (retrying.status, retrying.attempt, retrying.due_at) == ("RUNNING", 1, T0 + 18)
    assert (await rig.types(b))[-3:] == [
        "LambdaFunctionScheduled",
        "LambdaFunctionStarted",
        "LambdaFunctionFailed",
    ]
    assert (engine._hosts.down, engine._hosts.waiting, engine._queue.held) == (1, 0, 0)


async def test_the_limit_counts_from_when_the_call_began_waiting_across_a_restart(
    rig: Rig,
) -> None:
    """`waiting_since` is in the store: after a restart, a call that already waited its
    limit is not held again."""
    first = await rig.engine(_machine("svc", RETRY, wait=5))
    a = await _host_down(rig, first)
    b = await _start(first, "svc", "b", 11)
    rig.clock.now = T0 + 11
    await first.advance(b)
    assert first._hosts.waiting == 1
    first._hosts.close()
    await first._queue.stop(1.0)

    restarted = await rig.engine(_machine("svc", RETRY, wait=5))
    rig.outcomes["a"] = [SOCKET]
    rig.clock.now = T0 + 17
    await restarted.advance(a)  # the host is found down again
    assert restarted._hosts.down == 1
    await restarted.advance(b)
    assert rig.caller.keys == ["svc/a/u1/4", "svc/a/u1/4", "svc/b/u1/4"]
    assert restarted._hosts.waiting == 0


async def test_a_call_not_yet_at_its_limit_waits_again_after_a_restart(rig: Rig) -> None:
    """The same stored `waiting_since`, checked before the limit: the call is held."""
    first = await rig.engine(_machine("svc", RETRY, wait=60))
    a = await _host_down(rig, first)
    b = await _start(first, "svc", "b", 11)
    rig.clock.now = T0 + 11
    await first.advance(b)
    first._hosts.close()
    await first._queue.stop(1.0)

    restarted = await rig.engine(_machine("svc", RETRY, wait=60))
    rig.outcomes["a"] = [SOCKET]
    rig.clock.now = T0 + 17
    await restarted.advance(a)
    await restarted.advance(b)
    assert rig.caller.keys == ["svc/a/u1/4", "svc/a/u1/4"]
    assert (await rig.row(b)).task.waiting_since == T0 + 11
    assert restarted._hosts.waiting == 1


async def test_a_call_stopped_while_waiting_is_never_sent(rig: Rig) -> None:
    engine = await rig.engine(_machine("svc", RETRY, wait=60))
    await _host_down(rig, engine)
    b = await _start(engine, "svc", "b", 11)
    rig.clock.now = T0 + 11
    await engine.advance(b)
    await engine.stop_execution("svc", "b", "Cancelled", None)
    engine._queue.start()
    rig.caller.probe_status = 200
    await _eventually(lambda: engine._hosts.down == 0)
    await _eventually(lambda: engine._queue.busy == 0 and len(engine._queue) == 0)
    assert rig.caller.keys == ["svc/a/u1/4"]
    assert (await rig.row(b)).status == "ABORTED"


async def test_registering_the_machines_again_sends_the_waiting_calls_back(rig: Rig) -> None:
    """A reloaded configuration may have moved the endpoint: waiting calls are looked at
    again (and sent, the host no longer being known down)."""
    engine = await rig.engine(_machine("svc", RETRY, wait=60))
    await _host_down(rig, engine)
    b = await _start(engine, "svc", "b", 11)
    rig.clock.now = T0 + 11
    await engine.advance(b)
    engine._queue.start()
    await engine.register({"svc": _machine("svc", RETRY, wait=60)})
    await _eventually(lambda: len(rig.caller.calls) == 2)
    assert rig.caller.keys == ["svc/a/u1/4", "svc/b/u1/4"]
    assert (engine._hosts.down, engine._hosts.waiting, engine._queue.held) == (0, 0, 0)


def _map_machine(name: str, wait: float) -> Machine:
    """A Map whose iterations each call the down host's `Call` (retried on any error)."""
    call = {
        "Type": "Task",
        "Resource": "arn:aws:lambda:us-east-1:1:function:call",
        "ResultPath": None,
        "End": True,
        **RETRY,
    }
    definition = {
        "StartAt": "Fan",
        "States": {
            "Fan": {
                "Type": "Map",
                "ItemProcessor": {"StartAt": "Call", "States": {"Call": call}},
                "End": True,
            }
        },
    }
    return Machine(
        name=name,
        definition=definition,
        definition_text=json.dumps(definition),
        endpoints=EndpointMap(base_url=BASE_URL, routes={"Call": "/call"}),
        wait_for_host_seconds=wait,
    )


async def test_map_iterations_wait_for_a_down_host_as_a_task_does(rig: Rig) -> None:
    """Each iteration enters its Task and commits `waiting_since`, sends nothing and spends no
    attempt while the host is down; when a probe is answered every iteration's call goes out
    once, and the Map succeeds with its items in order."""
    engine = await rig.engine(_machine("svc", RETRY, wait=60), _map_machine("fan", wait=60))
    await _host_down(rig, engine)
    rig.clock.now = T0 + 11
    items = [{"n": n} for n in range(3)]
    started = await engine.start_execution("fan", "m", json.dumps(items))
    m = started.execution.id
    await engine.advance(m)
    await engine.advance(m)  # looked at again (a sweep) while the host is still down
    children = await rig.store.running_cursors(m)
    assert rig.caller.keys == ["svc/a/u1/4"]
    assert [(c.state, c.attempt, c.task.sent, c.task.waiting_since) for c in children] == [
        ("Call", 0, False, T0 + 11)
    ] * 3
    assert (await rig.types(m)).count("LambdaFunctionScheduled") == 0
    assert engine._hosts.waiting == 1
    engine._queue.start()
    rig.caller.probe_status = 200
    await _eventually(lambda: len(rig.caller.calls) == 4)
    async with asyncio.timeout(10):
        while (done := await rig.row(m)).status == "RUNNING":
            await asyncio.sleep(0.001)
    assert (done.status, json.loads(done.output or "")) == ("SUCCEEDED", items)
    assert sorted(rig.caller.keys[1:]) == sorted(set(rig.caller.keys[1:]))
    assert (engine._hosts.down, engine._hosts.waiting) == (0, 0)


async def test_a_map_iteration_that_waited_its_limit_is_sent_and_retried(rig: Rig) -> None:
    """With a 5 s limit the iterations are released by the probe loop at T0+16 and sent
    although the host is still down; their failures take the Retry as usual."""
    engine = await rig.engine(_machine("svc", RETRY, wait=5), _map_machine("fan", wait=5))
    await _host_down(rig, engine)
    rig.clock.now = T0 + 11
    started = await engine.start_execution("fan", "m", json.dumps([1, 2]))
    m = started.execution.id
    rig.outcomes["m"] = [SOCKET, SOCKET]
    await engine.advance(m)
    engine._queue.start()
    assert (engine._hosts.waiting, rig.caller.keys) == (1, ["svc/a/u1/4"])
    rig.clock.now = T0 + 16
    await _eventually(lambda: len(rig.caller.calls) == 3)
    async with asyncio.timeout(10):
        while (await rig.types(m)).count("LambdaFunctionFailed") < 2:
            await asyncio.sleep(0.001)
    children = await rig.store.running_cursors(m)
    assert [(c.attempt, c.due_at) for c in children] == [(1, T0 + 18)] * 2
    assert (await rig.types(m)).count("LambdaFunctionFailed") == 2
