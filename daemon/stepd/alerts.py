"""Failure notifications (`[[notify]]`): a signed POST when an execution ends badly.

The store writes a notice into its outbox in the same transaction that closes an execution
FAILED, TIMED_OUT or ABORTED (stepd.store.base, `outbox`). This worker, a task of its own,
reads the outbox, POSTs each notice to every target whose machines and statuses it matches,
and removes it once every one of them answered 2xx; a target that fails is tried again with
back-off (doubling from RETRY_FIRST_SECONDS to RETRY_MAX_SECONDS; once a target answers
again, every notice waiting for it is tried at the next round). A notice no target wants is removed
at once. So a closing is told at least once through restarts and crashes (a crash
after a delivery and before the removal sends it again, with the same `webhook-id`: a
receiver deduplicates by it), and the executions never wait for it.

Requests are signed as task calls are (Standard Webhooks: `webhook-id` is the notice's key,
unique per closing; `webhook-timestamp`; `webhook-signature` when the target has a secret).
The body: {"type": "execution.failed" | "execution.timed_out" | "execution.aborted",
"timestamp": RFC 3339, "data": {executionArn, stateMachineArn, machine, name, status, error,
cause, stopDate, url}} where `url` is the execution's web page.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime

import httpx

from stepd import __version__, logs
from stepd.engine.arns import Arns
from stepd.errors import StoreError
from stepd.store.base import Store
from stepd.store.records import NOTICED, Notice
from stepd.tasks.signing import ID_HEADER, SIGNATURE_HEADER, TIMESTAMP_HEADER, sign
from stepd.ui.views import execution_path

log = logs.get_logger("stepd.alerts")

POLL_SECONDS = 1.0  # how often the outbox is read
BATCH = 100  # notices read at once
TIMEOUT_SECONDS = 10.0
RETRY_FIRST_SECONDS = 1.0
RETRY_MAX_SECONDS = 300.0
USER_AGENT = f"stepd/{__version__} (notify)"


@dataclass(frozen=True, kw_only=True)
class Target:
    """One `[[notify]]` entry."""

    url: str
    machines: frozenset[str] | None = None  # None: every machine
    statuses: frozenset[str] = frozenset(NOTICED)
    secret: str | None = None  # Standard Webhooks signing secret; None: unsigned

    def wants(self, notice: Notice) -> bool:
        machines = self.machines
        return notice.status in self.statuses and (machines is None or notice.machine in machines)


@dataclass(kw_only=True)
class _Pending:
    """What this process knows of a notice it could not deliver to every target yet."""

    delivered: set[str] = field(default_factory=set)  # target urls that answered 2xx
    waiting_for: set[str] = field(default_factory=set)  # target urls that did not, yet
    attempts: int = 0
    next_at: float = 0.0


def payload(notice: Notice, arns: Arns, page_base: str) -> dict[str, object]:
    return {
        "type": f"execution.{notice.status.lower()}",
        "timestamp": datetime.fromtimestamp(notice.stop_date, UTC)
        .isoformat(timespec="milliseconds")
        .replace("+00:00", "Z"),
        "data": {
            "executionArn": arns.execution(notice.machine, notice.name),
            "stateMachineArn": arns.state_machine(notice.machine),
            "machine": notice.machine,
            "name": notice.name,
            "status": notice.status,
            "error": notice.error,
            "cause": notice.cause,
            "stopDate": notice.stop_date,
            "url": page_base.rstrip("/") + execution_path(notice.machine, notice.name),
        },
    }


class Alerts:
    """Delivers the outbox's notices to `targets` until stopped."""

    def __init__(
        self,
        store: Store,
        targets: Sequence[Target],
        *,
        arns: Arns,
        page_base: str,
        clock: Callable[[], float] = time.time,
        transport: httpx.AsyncBaseTransport | None = None,
    ) -> None:
        self._store = store
        self.targets = tuple(targets)
        self._arns = arns
        self._page_base = page_base
        self._clock = clock
        self._pending: dict[int, _Pending] = {}
        self._client = httpx.AsyncClient(
            timeout=TIMEOUT_SECONDS, transport=transport, headers={"User-Agent": USER_AGENT}
        )
        self._task: asyncio.Task[None] | None = None
        self._answered: set[str] = set()  # targets that answered 2xx in this round
        self.delivered = 0  # deliveries answered 2xx since start

    def start(self) -> None:
        self._task = asyncio.create_task(self._run(), name="stepd-alerts")

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None
        await self._client.aclose()

    async def _run(self) -> None:
        failing = False  # the database away: said once per outage, not at every round
        while True:
            try:
                await self.deliver_due()
            except StoreError as exc:
                if not failing:
                    log.warning("notify.round_failed", error=str(exc))
                failing = True
            except Exception:  # a failing round is logged; the next one tries again
                log.exception("notify.round_failed")
            else:
                failing = False
            await asyncio.sleep(POLL_SECONDS)

    async def deliver_due(self) -> int:
        """One round: try every notice that is due; how many were removed from the outbox."""
        notices = await self._store.outbox(BATCH)
        now = self._clock()
        due = [n for n in notices if self._pending.get(n.id, _Pending()).next_at <= now]
        self._answered = set()
        outcomes = await asyncio.gather(*(self._deliver(n) for n in due))
        done = [n.id for n, ok in zip(due, outcomes, strict=True) if ok]
        for pending in self._pending.values():  # a target answers again: its backlog goes now
            if pending.waiting_for & self._answered:
                pending.next_at = 0.0
        if done:
            await self._store.outbox_done(done)
            for notice_id in done:
                self._pending.pop(notice_id, None)
        return len(done)

    async def _deliver(self, notice: Notice) -> bool:
        """Send `notice` to every target that wants it and has not had it; True when all
        have it now."""
        pending = self._pending.setdefault(notice.id, _Pending())
        wanted = [t for t in self.targets if t.wants(notice) and t.url not in pending.delivered]
        if not wanted:
            return True
        body = json.dumps(payload(notice, self._arns, self._page_base)).encode()
        for target in wanted:
            if await self._post(target, notice, body):
                pending.delivered.add(target.url)
                self._answered.add(target.url)
                self.delivered += 1
        pending.waiting_for = {t.url for t in wanted} - pending.delivered
        if not pending.waiting_for:
            return True
        pending.attempts += 1
        delay = min(RETRY_MAX_SECONDS, RETRY_FIRST_SECONDS * 2 ** (pending.attempts - 1))
        pending.next_at = self._clock() + delay
        return False

    async def _post(self, target: Target, notice: Notice, body: bytes) -> bool:
        timestamp = int(self._clock())
        headers = {
            "Content-Type": "application/json",
            ID_HEADER: notice.key,
            TIMESTAMP_HEADER: str(timestamp),
        }
        if target.secret:
            headers[SIGNATURE_HEADER] = sign(target.secret, notice.key, timestamp, body)
        try:
            response = await self._client.post(target.url, content=body, headers=headers)
        except httpx.HTTPError as exc:
            log.warning("notify.failed", url=target.url, execution=notice.name, error=str(exc))
            return False
        if response.is_success:
            log.info("notify.delivered", url=target.url, execution=notice.name, key=notice.key)
            return True
        log.warning(
            "notify.refused", url=target.url, execution=notice.name, status=response.status_code
        )
        return False
