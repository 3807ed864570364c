"""Stand-ins for the outside world, for stepd's unit tests and for tests of code that runs stepd.

    MemoryStore, MemoryDatabase  the store port in memory (`stepd.store.memory`), held to the
                                 same contract test suite as the SQLite store
    FakeCaller                   a task caller (`stepd.tasks.caller.Caller`) that makes no HTTP
                                 call: it records each request and answers what the test
                                 scripted; it can hold calls in flight and look at the store
                                 while a call is in flight
    free_port()                  a TCP port on 127.0.0.1 that nothing listens on
    with_history_limit(n)        the interpreter arguments that run `stepd` with a history
                                 limit of `n` events per execution instead of AWS's 25,000
                                 (an inline Map of 10,000 iterations writes about 40,000)

The engine with both fakes::

    store, caller = MemoryStore(), FakeCaller(TaskOutcome(error="States.Timeout"))
    await store.open()
    engine = Engine(store=store, caller=caller, machines={}, arns=Arns(), clock=clock)
"""

from __future__ import annotations

import asyncio
import inspect
import socket
from collections import deque
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

from stepd.store.base import Store
from stepd.store.memory import MemoryDatabase, MemoryStore
from stepd.store.records import Execution
from stepd.tasks.caller import Caller, TaskOutcome, TaskRequest

__all__ = [
    "DEFAULT_RESULT",
    "Call",
    "FakeCaller",
    "MemoryDatabase",
    "MemoryStore",
    "free_port",
    "with_history_limit",
]

DEFAULT_RESULT = {"ok": True}  # what an unscripted call answers (HTTP 200)
OK_STATUS = 200
WAIT_SECONDS = 5.0  # how long `FakeCaller.wait_for` waits by default
_WITH_HISTORY_LIMIT = (
    "import sys; import stepd.engine.steps as steps; from stepd.cli import main; "
    "steps.MAX_EVENTS = int(sys.argv.pop(1)); sys.exit(main(sys.argv[1:]))"
)

# A scripted reply: a TaskOutcome is answered as it is, an exception is raised by the call
# (a BaseException that is not an Exception stands for a crash), anything else is the task's
# result, answered with status 200.
Reply = Any
Respond = Callable[[TaskRequest], Reply | Awaitable[Reply]]


@dataclass(frozen=True, kw_only=True)
class Call:
    """One call the FakeCaller received, and what the store held while it was in flight."""

    url: str
    payload: Any
    idempotency_key: str
    timeout_seconds: float
    execution: Execution | None = None  # the calling execution as stored (with `store=`)
    events: tuple[str, ...] = ()  # the types of its history events then


class FakeCaller(Caller):
    """A task caller that answers without HTTP.

    Each call is answered by the first of: `respond(request)` unless it returns None; the
    next reply scripted for its URL (`script`); the next of `replies`; `DEFAULT_RESULT`.
    With `store`, each call records the execution it comes from (found by the engine's
    idempotency key, ``machine/name/...``) and its history, as they stood during the call.
    `probe` answers `probe_status` (None: the host cannot be reached).
    """

    def __init__(
        self,
        *replies: Reply,
        respond: Respond | None = None,
        store: Store | None = None,
        probe_status: int | None = None,
    ) -> None:
        self.calls: list[Call] = []
        self.probes: list[tuple[str, float]] = []  # (url, timeout_seconds)
        self.probe_status = probe_status
        self.closed = False
        self._replies: deque[Reply] = deque(replies)
        self._by_url: dict[str, deque[Reply]] = {}
        self._respond = respond
        self._store = store
        self._open = asyncio.Event()  # cleared while calls are held
        self._open.set()
        self._held = 0
        self._arrived = asyncio.Event()

    @property
    def keys(self) -> list[str]:
        """The idempotency key of each call, in order."""
        return [call.idempotency_key for call in self.calls]

    @property
    def urls(self) -> list[str]:
        """The URL of each call, in order."""
        return [call.url for call in self.calls]

    @property
    def held(self) -> int:
        """How many calls are in flight, held until `release`."""
        return self._held

    def script(self, url: str, *replies: Reply) -> None:
        """Answer the next calls to `url` with `replies`, in order."""
        self._by_url.setdefault(url, deque()).extend(replies)

    def hold(self) -> None:
        """Keep every call from now on in flight (recorded, unanswered) until `release`."""
        self._open.clear()

    def release(self) -> None:
        """Answer the held calls, and from now on answer at once."""
        self._open.set()

    async def wait_for(self, count: int, timeout: float = WAIT_SECONDS) -> list[Call]:
        """The calls, once at least `count` have arrived. Raises TimeoutError."""
        async with asyncio.timeout(timeout):
            while len(self.calls) < count:
                self._arrived.clear()
                await self._arrived.wait()
        return self.calls

    async def call(self, request: TaskRequest) -> TaskOutcome:
        execution, events = await self._observe(request)
        self.calls.append(
            Call(
                url=request.url,
                payload=request.payload,
                idempotency_key=request.idempotency_key,
                timeout_seconds=request.timeout_seconds,
                execution=execution,
                events=events,
            )
        )
        self._arrived.set()
        if not self._open.is_set():
            self._held += 1
            try:
                await self._open.wait()
            finally:
                self._held -= 1
        reply = await self._reply(request)
        if isinstance(reply, BaseException):
            raise reply
        if isinstance(reply, TaskOutcome):
            return reply
        return TaskOutcome(result=reply, status=OK_STATUS)

    async def probe(self, url: str, timeout_seconds: float) -> int | None:
        self.probes.append((url, timeout_seconds))
        return self.probe_status

    async def aclose(self) -> None:
        self.closed = True

    async def _reply(self, request: TaskRequest) -> Reply:
        if self._respond is not None:
            reply = self._respond(request)
            if inspect.isawaitable(reply):
                reply = await reply
            if reply is not None:
                return reply
        scripted = self._by_url.get(request.url)
        if scripted:
            return scripted.popleft()
        if self._replies:
            return self._replies.popleft()
        return dict(DEFAULT_RESULT)

    async def _observe(self, request: TaskRequest) -> tuple[Execution | None, tuple[str, ...]]:
        if self._store is None:
            return None, ()
        machine, name = request.idempotency_key.split("/", 2)[:2]
        execution = await self._store.find_execution(machine, name)
        if execution is None:
            return None, ()
        history = await self._store.history(
            execution.id, reverse=False, limit=execution.last_event_id or 1, after=None
        )
        return execution, tuple(event.type for event in history)


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listened on a moment ago: for a server to
    listen on, or for a call that must find nothing there."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
    return port


def with_history_limit(max_events: int) -> list[str]:
    """`python` arguments that run stepd's command line (the arguments after them) with a
    history limit of `max_events` per execution: for tests and benchmarks of long Maps."""
    return ["-c", _WITH_HISTORY_LIMIT, str(max_events)]
