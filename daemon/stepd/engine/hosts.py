"""Task hosts that stopped answering, and the calls that wait for them.

A call that its host refused or reset (States.Http.Socket) or answered 502, 503 or 504 marks
the host down. While a host is down, a call to it whose state would retry that error, of a
machine with `wait_for_host_seconds`, waits here instead of being sent and spends none of its
attempts; other calls are made as usual, so their errors, and Catch, come at once. One probe at
a time checks the host: a HEAD request to the endpoint, which has no side effects, half a
second after it went down and then at doubling intervals up to two seconds. When the probe gets
any other answer, or any call to the host succeeds, the host is up again and its waiting calls
go back to the run queue earliest-due first, so a backlog drains in the order it fell due. A
call that has waited its machine's limit goes back at once and takes its Retry as usual.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from urllib.parse import urlsplit

from stepd import logs
from stepd.tasks.caller import ERROR_SOCKET, STATUS_ERROR_PREFIX, TaskOutcome

log = logs.get_logger("stepd.engine")

DOWN_STATUSES = frozenset({502, 503, 504})
FIRST_PROBE_SECONDS = 0.5
MAX_PROBE_SECONDS = 2.0
DEFAULT_PORTS = {"http": 80, "https": 443}

Probe = Callable[[str], Awaitable[int | None]]  # a URL's status for HEAD; None: unreachable
Release = Callable[[int, float], None]  # an execution goes back to the queue at its due instant


def origin(url: str) -> str:
    """The host a URL names, as scheme://host:port (the scheme's port when none is given)."""
    parts = urlsplit(url)
    scheme = parts.scheme.lower()
    try:
        port = parts.port or DEFAULT_PORTS.get(scheme)
    except ValueError:
        port = None
    host = (parts.hostname or "").lower()
    if ":" in host:
        host = f"[{host}]"
    return f"{scheme}://{host}:{port}" if port else f"{scheme}://{host}"


def is_answering(status: int | None) -> bool:
    return status is not None and status not in DOWN_STATUSES


@dataclass(frozen=True, kw_only=True)
class HostDown:
    """A task host that is down, for people to see."""

    host: str  # scheme://host:port
    error: str  # what the last call to it came to
    since: float  # when a call first found it down (unix seconds)
    waiting: int  # calls waiting for it


@dataclass
class _Down:
    error: str  # what the last call to it came to
    url: str  # the endpoint the probe asks
    since: float  # when it was found down
    waiting: dict[int, tuple[float, float]] = field(default_factory=dict)  # id -> due, until
    probe: asyncio.Task[None] | None = None


class Hosts:
    def __init__(
        self, *, probe: Probe, release: Release, clock: Callable[[], float] = time.time
    ) -> None:
        self._probe = probe
        self._release = release
        self._clock = clock
        self._down: dict[str, _Down] = {}
        self._closed = False

    @property
    def down(self) -> int:
        return len(self._down)

    @property
    def waiting(self) -> int:
        return sum(len(down.waiting) for down in self._down.values())

    def down_hosts(self) -> tuple[HostDown, ...]:
        """The hosts down now, longest down first."""
        return tuple(
            HostDown(host=host, error=down.error, since=down.since, waiting=len(down.waiting))
            for host, down in sorted(self._down.items(), key=lambda item: item[1].since)
        )

    def host_down(self, url: str) -> HostDown | None:
        """The host of `url`, when it is down."""
        down = self._down.get(origin(url)) if self._down else None
        if down is None:
            return None
        return HostDown(
            host=origin(url), error=down.error, since=down.since, waiting=len(down.waiting)
        )

    def down_error(self, url: str) -> str | None:
        """The error a call to `url` would likely get now, when its host is down."""
        if not self._down:
            return None
        down = self._down.get(origin(url))
        return None if down is None else down.error

    def wait(self, url: str, execution_id: int, due_at: float, until: float) -> bool:
        """Keep a call to a down host until the host is up, or until `until` at the latest;
        False when the host is up already."""
        down = self._down.get(origin(url))
        if down is None:
            return False
        known = down.waiting.get(execution_id)
        if known is not None:  # another call of the same execution (a Map's): the earliest
            due_at, until = min(due_at, known[0]), min(until, known[1])
        down.waiting[execution_id] = (due_at, until)
        return True

    def record(self, url: str, outcome: TaskOutcome) -> None:
        """Learn from a call's outcome whether its host is up or down."""
        if self._closed or (outcome.ok and not self._down):
            return
        host = origin(url)
        if outcome.ok or is_answering(outcome.status):
            if host in self._down:
                self._up(host, "a call was answered")
            return
        if outcome.error != ERROR_SOCKET and outcome.status not in DOWN_STATUSES:
            return  # a timeout or a refusal of this call only: the host may be fine
        error = outcome.error or f"{STATUS_ERROR_PREFIX}{outcome.status}"
        down = self._down.get(host)
        if down is not None:
            down.error = error
            return
        down = _Down(error=error, url=url, since=self._clock())
        self._down[host] = down
        log.warning("host.down", host=host, error=error, cause=outcome.cause)
        down.probe = asyncio.create_task(self._probe_until_up(host), name=f"stepd-probe {host}")

    def release_all(self) -> None:
        """Send every waiting call back to the queue now (the configuration changed)."""
        for host in list(self._down):
            self._up(host, "released")

    def close(self) -> None:
        """Stop probing and forget the waiting calls (they are due in the store still)."""
        self._closed = True
        for down in self._down.values():
            if down.probe is not None:
                down.probe.cancel()
        self._down.clear()

    def _up(self, host: str, reason: str) -> None:
        down = self._down.pop(host)
        if down.probe is not None and down.probe is not asyncio.current_task():
            down.probe.cancel()
        log.info("host.up", host=host, reason=reason, waiting=len(down.waiting))
        for execution_id, (due_at, _) in sorted(down.waiting.items(), key=lambda item: item[1]):
            self._release(execution_id, due_at)

    def _release_expired(self, down: _Down) -> None:
        now = self._clock()
        expired = sorted(
            (due_at, execution_id)
            for execution_id, (due_at, until) in down.waiting.items()
            if until <= now
        )
        for due_at, execution_id in expired:
            del down.waiting[execution_id]
            self._release(execution_id, due_at)

    async def _probe_until_up(self, host: str) -> None:
        delay = FIRST_PROBE_SECONDS
        while True:
            await asyncio.sleep(delay)
            down = self._down.get(host)
            if down is None:
                return
            self._release_expired(down)
            status: int | None = None
            with contextlib.suppress(Exception):
                status = await self._probe(down.url)
            if self._down.get(host) is not down:
                return
            if is_answering(status):
                self._up(host, f"a probe was answered {status}")
                return
            delay = min(delay * 2, MAX_PROBE_SECONDS)
