"""Several nodes on one PostgreSQL store: leases, claims when due, reaping, hand-over.

The engine runs as it does on one node; this module stands between it and its timers and its
task caller:

- Claims. Every node arms the instants of everything due in its window (stepd.timers), so all
  of them wake when an execution falls due; `on_due` gathers what woke in one turn of the loop
  and claims it in one statement (`FOR UPDATE SKIP LOCKED`): each execution goes to exactly one
  node's engine. A node holds an execution while it runs there (a call in flight, its
  children); a transition to a wait lets it go (stepd.store.postgres.holds).
- Leases with fencing. A renewer on a connection of its own extends this node's lease every
  RENEW_SECONDS. The store writes this node's transitions only while the lease runs (checked by
  the database in the same statement), and this node sends a task call only while its last
  good renewal is younger than SEND_SECONDS, well within the lease: cut off from the database,
  it stops sending before any other node may take its work. A call held back so waits, while
  the lease may still run, for a renewal under the same id, and then goes out.
- Reaping. Every node that renewed recently removes the nodes whose lease ran out and lets go
  of what they held; a survivor then claims what is due, and sends again, with the same
  Idempotency-Key, a call that was in flight on the dead node (the engine's resend). A node
  whose own lease ran out joins again under a new id.
- Hand-over. A node that stops (SIGTERM) lets its calls in flight finish, then lets go of
  everything at once and tells the others (NOTIFY) to look at what falls due soon.
- Clocks. Each renewal compares this node's clock with the database's; a node further off than
  MAX_SKEW_SECONDS claims nothing (it would send early) and logs `node.clock_skew`.
- Definitions. Each node records with its lease a hash of each machine's definition it serves
  (`publish`, at start and after a reload); machines whose definition differs between the
  nodes are listed in `status()` and logged once as `node.definitions_differ`. An execution
  keeps the definition it started with whatever node runs it.
- Hints. A node that commits work any node may claim, due soon (an execution started, a
  wait, a back-off, a callback answered, an update), tells the others its instants (LISTEN/
  NOTIFY, stepd.store.pg_hints); each arms a look at each instant and claims what is due then,
  so whichever node is free sends it on time even if the one that wrote it stalls or dies.
  A hint is only a hint: a watch every `watch_seconds` (and the timers' sweep, every 2 s)
  finds what falls due without it, and a node configured without NOTIFY neither sends nor
  listens.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import heapq
import itertools
import json
import math
import time
from collections.abc import Awaitable, Callable, Coroutine, Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from stepd import __version__, logs
from stepd.engine.machines import Machine
from stepd.errors import NotLeased, StoreError
from stepd.store import pg_hints
from stepd.store.formats import FORMAT_VERSION
from stepd.store.pg_nodes import LEASE_SECONDS, NodeLeases, NodeRow, listen
from stepd.store.pg_schema import SCHEMA_VERSION
from stepd.store.postgres import PostgresStore
from stepd.store.schema import too_new
from stepd.tasks.caller import Caller, TaskOutcome, TaskRequest

log = logs.get_logger("stepd.cluster")

RENEW_SECONDS = 1.0
RENEW_RETRY_SECONDS = 0.2  # after a renewal failed: the database is back within this of it
SEND_SECONDS = 3.0  # a node sends only while its last good renewal is younger than this
REAP_SECONDS = 1.0
CLAIM_BATCH = 256  # executions claimed per statement
# While other nodes run, a node claims more only while its engine has fewer than this many
# claimed executions waiting for a worker (what it could not start soon is left for another
# node to take), and claims ahead of their instant at most this many still to come: by
# default, and per worker (two rounds of its workers)
CLAIM_BACKLOG = CLAIM_BATCH // 2
BACKLOG_PER_WORKER = 2
BACKLOG_POLL_SECONDS = 0.005  # how often a node with a full backlog looks at it again
CLAIM_AHEAD_SECONDS = 1.0  # claim what falls due this soon (a timer fires a little early)
MAX_MINE = 10_000  # executions claimed ahead remembered (then those long due are forgotten)
RETRY_SECONDS = 0.1  # a claim that could not be made (no lease, no database) is tried again
WINDOW_DEBOUNCE_SECONDS = 0.2
WATCH_SECONDS = 0.5  # how often, and how far ahead, what falls due is looked for
MAX_LOOKS = 10_000  # hinted instants a node keeps armed at once (more: the watch finds them)
LOOK_MERGE_SECONDS = 0.005  # a look at one instant also covers those this close after it
WATCH_LIMIT = 1000
MAX_SKEW_SECONDS = 0.5  # a node whose clock is further off the database's claims nothing
DEFINITIONS_SECONDS = 5.0  # how often a node compares its definitions with the others'

Dispatch = Callable[[int, float], None]
LoadWindow = Callable[[], Awaitable[None]]


def definition_hashes(definitions: Mapping[str, str]) -> dict[str, str]:
    """{machine name: a short hash of its definition text} (canonical JSON)."""
    return {
        name: hashlib.sha256(text.encode()).hexdigest()[:16]
        for name, text in sorted(definitions.items())
    }


NOT_SERVED = "not served"  # what `differing` gives a node whose config lacks the machine
# Published beside the machines: settings every node must share (an ARN names the region and
# account: a node of another one finds no execution by an ARN another node gave)
API_SETTINGS = "[api] region and account"


def published(machines: Mapping[str, Machine], *, region: str, account: str) -> dict[str, str]:
    """What a node publishes with its lease ({name: text}, hashed): each machine's definition
    with its endpoints and base URL (where its calls go), and its region and account."""
    texts = {
        name: json.dumps(
            [machine.definition_text, machine.endpoints.base_url, dict(machine.state_endpoints)],
            sort_keys=True,
        )
        for name, machine in machines.items()
    }
    texts[API_SETTINGS] = f"{region} {account}"
    return texts


def differing(rows: Iterable[NodeRow]) -> dict[str, dict[str, str]]:
    """The machines whose definition differs between the nodes `rows`, or that some nodes do
    not serve at all (NOT_SERVED for those): {machine: {node id: hash}}. A node that serves
    nothing (or has not said yet: it just joined) is left out."""
    rows = [row for row in rows if row.definitions]
    served: dict[str, dict[str, str]] = {}
    for row in rows:
        for name, digest in row.definitions.items():
            served.setdefault(name, {})[row.id] = digest
    found: dict[str, dict[str, str]] = {}
    for name, by_node in sorted(served.items()):
        every = {row.id: by_node.get(row.id, NOT_SERVED) for row in rows}
        if len(set(every.values())) > 1:
            found[name] = every
    return found


@dataclass
class ClusterStats:
    claimed: int = 0
    reaped: int = 0  # executions let go of by reaping dead nodes
    nodes_reaped: int = 0
    rejoins: int = 0
    renew_failures: int = 0
    unsent: int = 0  # task calls not sent: the lease was not fresh
    handed_over: int = 0


class Cluster:
    def __init__(
        self,
        store: PostgresStore,
        leases: NodeLeases,
        *,
        password: str | None = None,
        clock: Callable[[], float] = time.time,
        watch_seconds: float = WATCH_SECONDS,
        listening: bool = True,
    ) -> None:
        self.store = store
        self.leases = leases
        self._password = password
        self.clock = clock
        self.watch_seconds = watch_seconds
        self.listening = listening  # LISTEN for the others' hints (NOTIFY)
        self.stats = ClusterStats()
        self.closing = False
        self.skew = 0.0  # this node's clock minus the database's, at the last renewal
        self.skewed = False  # too far off: claims nothing
        # why a newer release's store cannot be read here (claims nothing); None while it can
        self.store_too_new: str | None = None
        self.on_store_too_new: Callable[[str], None] | None = None
        self._last_good = -math.inf  # monotonic instant the last good renewal was sent
        self._dispatch: Dispatch | None = None
        self._overdue: Dispatch | None = None
        self._load_window: LoadWindow | None = None
        self._in_hand: Callable[[int], bool] = lambda _: False
        self._backlog: Callable[[], int] = lambda: 0
        self._backlog_limit = CLAIM_BACKLOG
        self._wanted: dict[int, float] = {}
        self._order: list[tuple[float, int]] = []  # a heap of (due_at, id) of `_wanted` (stale too)
        self._looked: set[int] = set()  # wanted only as found by a look (sweep, watch)
        # what this node claimed ahead of its instant: id -> instant (until woken and claimed
        # again); when due, its wake-up passes a full backlog (no other node may take it)
        self._mine: dict[int, float] = {}
        self._mine_wanted: dict[int, None] = {}  # of those, the ones woken (in `_wanted`)
        self._flusher: asyncio.Task[None] | None = None
        self._tasks: list[asyncio.Task[None]] = []
        self._window_wanted = asyncio.Event()
        self._reap_wanted = asyncio.Event()  # joined again: reap the old id's work at once
        self._differences_seen: set[tuple[str, frozenset[str]]] = set()  # logged once each
        self._looks: dict[float, asyncio.TimerHandle] = {}  # hinted instant -> its look
        self._looking: set[asyncio.Task[int]] = set()

    @property
    def node(self) -> str:
        return self.leases.id

    def attach(
        self,
        *,
        dispatch: Dispatch,
        load_window: LoadWindow,
        overdue: Dispatch | None = None,
        in_hand: Callable[[int], bool] | None = None,
        backlog: Callable[[], int] | None = None,
        workers: int | None = None,
    ) -> None:
        """Where claimed executions go (the engine: `dispatch` for a wake-up, `overdue` for
        what a look at the store found, which leaves alone what the engine has in hand), how
        the timers load their window, and whether the engine has an execution in hand (then
        what a look found of it is neither claimed nor run: this node holds it already or
        its handler's next write claims it), how many claimed executions wait in the engine
        for a worker and how many workers it has (a node claims more only while that is
        under BACKLOG_PER_WORKER per worker; by default, CLAIM_BACKLOG)."""
        self._dispatch = dispatch
        self._overdue = overdue
        self._load_window = load_window
        if in_hand is not None:
            self._in_hand = in_hand
        if backlog is not None:
            self._backlog = backlog
        if workers is not None:
            self._backlog_limit = max(1, BACKLOG_PER_WORKER * workers)

    async def load_due(self, before: float, limit: int) -> Sequence[tuple[int, float]]:
        """What the timers load and sweep: what falls due before `before` that no node holds
        or this node holds (another node's is that node's to run)."""
        return await self.store.claimable(before, limit)

    async def start(self) -> None:
        """Join (a new lease) and start renewing, reaping and listening."""
        sent = time.monotonic()
        self.store.node = await self.leases.join()
        self._last_good = sent
        log.info("node.joined", node=self.node, lease_seconds=LEASE_SECONDS)
        loops: list[tuple[str, Callable[[], Coroutine[Any, Any, None]]]] = [
            ("renew", self._renew_loop),
            ("reap", self._reap_loop),
            ("window", self._window_loop),
            ("watch", self._watch_loop),
            ("definitions", self._definitions_loop),
        ]
        if self.listening:
            loops.append(("listen", self._listen_loop))
        for name, loop in loops:
            self._tasks.append(asyncio.create_task(loop(), name=f"stepd-cluster-{name}"))

    async def publish(self, definitions: Mapping[str, str]) -> None:
        """Record with this node's lease the definitions it serves ({machine: definition
        text}); a failure is logged (the next join writes them)."""
        try:
            await self.leases.publish(definition_hashes(definitions))
        except StoreError as exc:
            log.warning("node.publish_failed", node=self.node, error=str(exc))

    def note_definitions(self, rows: Iterable[NodeRow]) -> dict[str, dict[str, str]]:
        """The machines whose definition differs between `rows`; each difference not seen
        before is logged once (a warning)."""
        found = differing(rows)
        seen = {(name, frozenset(by_node.values())) for name, by_node in found.items()}
        for name in sorted({name for name, _ in seen - self._differences_seen}):
            log.warning(
                "node.definitions_differ",
                node=self.node,
                machine=name,
                nodes=found[name],
                note="the nodes serve different definitions of this machine, or some do not"
                " serve it; reload them all with the same configuration",
            )
        self._differences_seen = seen
        return found

    async def _definitions_loop(self) -> None:
        while True:
            await asyncio.sleep(DEFINITIONS_SECONDS)
            try:
                self.note_definitions(await self.leases.nodes())
            except StoreError:
                continue  # the renewer says so

    async def stop(self) -> None:
        """Hand everything over: let go of what this node holds and leave."""
        self.closing = True
        for task in self._tasks:
            task.cancel()
        for task in self._tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await task
        self._tasks = []
        for handle in self._looks.values():
            handle.cancel()
        self._looks.clear()
        for look in list(self._looking):
            look.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await look
        if self._flusher is not None:
            self._flusher.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._flusher
        await self.leases.close()  # a renewal cut short may have left it mid-query
        try:
            held = await self.leases.leave()
        except StoreError as exc:
            log.warning("node.leave_failed", node=self.node, error=str(exc))
        else:
            self.stats.handed_over += held
            log.info("node.left", node=self.node, handed_over=held)
        await self.leases.close()

    def fresh(self) -> bool:
        """Whether this node may send: its last good renewal is recent enough."""
        return time.monotonic() - self._last_good < SEND_SECONDS

    def lease_age(self) -> float:
        return time.monotonic() - self._last_good

    # -- claims ----------------------------------------------------------------------

    def on_due(self, execution_id: int, due_at: float) -> None:
        """The timers' wake-up: claim it (with whatever else woke in this turn), then run it."""
        self._looked.discard(execution_id)
        self._want(execution_id, due_at)

    def on_overdue(self, execution_id: int, due_at: float) -> None:
        """What a look at the store found due (the timers' sweep, the watch): claim it, then
        run it unless the engine has it in hand already (its handler arms what it commits)."""
        if self._in_hand(execution_id):
            return
        if execution_id not in self._wanted:
            self._looked.add(execution_id)
        self._want(execution_id, due_at)

    def _want(self, execution_id: int, due_at: float) -> None:
        if self.closing:
            return
        known = self._wanted.get(execution_id)
        if known is None or due_at < known:
            self._wanted[execution_id] = due_at
            heapq.heappush(self._order, (due_at, execution_id))
        if execution_id in self._mine:
            self._mine_wanted[execution_id] = None
        if self._flusher is None or self._flusher.done():
            self._flusher = asyncio.create_task(self._flush(), name="stepd-cluster-claim")

    async def _flush(self) -> None:
        await asyncio.sleep(0)  # the rest of this turn's wake-ups join the batch
        failing = False
        while self._wanted and not self.closing:
            now = self.clock()
            ids, before, pause = self._next_batch(now, sharing=self.leases.live > 1)
            if not ids:
                await asyncio.sleep(pause)
                continue
            try:
                claimed = await self.store.claim(ids, before=before, limit=len(ids))
            except StoreError as exc:
                if not failing:  # once per outage, not at every retry
                    log.warning("node.claim_failed", error=str(exc), retry_seconds=RETRY_SECONDS)
                failing = True
                for execution_id in ids:  # tried again
                    heapq.heappush(self._order, (self._wanted[execution_id], execution_id))
                await asyncio.sleep(RETRY_SECONDS)
                continue
            failing = False
            self._run(ids, claimed)
            self._mine.update((i, due_at) for i, due_at in claimed if due_at > now)
        if not self._wanted:
            self._order.clear()  # what is left on it is stale

    def _next_batch(self, now: float, *, sharing: bool) -> tuple[list[int], float, float]:
        """What to claim now and the instant it is claimed up to; none (and how long to wait)
        while this node may not claim (its lease not fresh, its clock off). While other nodes
        run (`sharing`), what this node claimed ahead goes first, and the rest waits while
        its engine is busy (the others may take it meanwhile); it claims ahead at most
        its backlog limit still to come. What falls due further off than CLAIM_AHEAD_SECONDS is
        not wanted any more (its timer, or a later look, finds it)."""
        if not self.fresh() or self.skewed or self.store_too_new is not None:
            return [], now, RETRY_SECONDS
        reach = now + CLAIM_AHEAD_SECONDS
        if not sharing:
            ids = self._batch(reach, now, CLAIM_BATCH)
        else:
            if self._mine_wanted:
                return list(itertools.islice(self._mine_wanted, CLAIM_BATCH)), reach, 0.0
            if self._backlog() >= self._backlog_limit:
                return [], now, BACKLOG_POLL_SECONDS
            room = self._backlog_limit - self._ahead_count(now)
            ids = self._batch(reach, now, room)
        if not ids:
            self._forget_after(reach)
        return ids, reach, BACKLOG_POLL_SECONDS

    def _forget_after(self, reach: float) -> None:
        """No longer want what falls due after `reach` (all that is left, when the earliest
        does)."""
        order = self._order
        if order and order[0][0] > reach:
            for due_at, execution_id in order:
                if self._wanted.get(execution_id) == due_at:
                    del self._wanted[execution_id]
                    self._looked.discard(execution_id)
                    self._mine_wanted.pop(execution_id, None)
            order.clear()

    def _ahead_count(self, now: float) -> int:
        """How many executions this node claimed ahead of their instant, still to come."""
        if len(self._mine) > MAX_MINE:  # wake-ups that never came (reaped, stopped)
            self._mine = {i: t for i, t in self._mine.items() if t > now - CLAIM_AHEAD_SECONDS}
        return sum(1 for t in self._mine.values() if t > now)

    def _run(self, ids: Sequence[int], claimed: Sequence[tuple[int, float]]) -> None:
        """`ids` were asked for and `claimed` taken: hand these to the engine."""
        looked = {i for i in ids if i in self._looked}
        for execution_id in ids:  # claimed here, held elsewhere, or not due any more
            self._wanted.pop(execution_id, None)
            self._looked.discard(execution_id)
            self._mine.pop(execution_id, None)
            self._mine_wanted.pop(execution_id, None)
        self.stats.claimed += len(claimed)
        for execution_id, due_at in claimed:
            run = self._dispatch
            if execution_id in looked and self._overdue is not None:
                run = self._overdue
            if run is not None:
                run(execution_id, due_at)

    def _batch(self, before: float, now: float, ahead: int) -> list[int]:
        """The CLAIM_BATCH earliest due of what is wanted (equal ones by id), due before
        `before`, at most `ahead` of them due after `now`; taken off the heap (a heap: a herd
        of wake-ups is not sorted again for every batch)."""
        if not self._order:  # not expected: every id wanted is on the heap
            self._order = [(due_at, i) for i, due_at in self._wanted.items()]
            heapq.heapify(self._order)
        ids: dict[int, None] = {}
        order = self._order
        while order and len(ids) < CLAIM_BATCH and order[0][0] <= before:
            if order[0][0] > now:
                if ahead <= 0:
                    break
                ahead -= 1
            due_at, execution_id = heapq.heappop(order)
            if self._wanted.get(execution_id) == due_at:  # else wanted earlier, or no more
                ids[execution_id] = None
        return list(ids)

    # -- lease, reaping, hints ---------------------------------------------------------

    async def _renew_loop(self) -> None:
        failed = 0  # renewals failed in a row
        while True:
            sent = time.monotonic()
            asked = self.clock()
            pause = RENEW_SECONDS
            try:
                database_now = await self.leases.renew()
            except StoreError as exc:
                failed += 1
                self.stats.renew_failures += 1
                if failed == 1:  # once per outage; the count when it ends
                    log.warning("node.renew_failed", node=self.node, error=str(exc))
                pause = RENEW_RETRY_SECONDS
            else:
                if failed:
                    log.info("node.renewing_again", node=self.node, failures=failed)
                    failed = 0
                if database_now is not None:
                    self._last_good = sent
                    self._note_skew((asked + self.clock()) / 2 - database_now)
                    self._check_version()
                else:
                    await self._rejoin(sent)
            await asyncio.sleep(max(0.0, pause - (time.monotonic() - sent)))

    def _check_version(self) -> None:
        """A node of a newer release migrated the store past what this one reads (a rolling
        upgrade): this node claims nothing more and tells the daemon (`on_store_too_new`),
        which hands its work over and stops, as a node of this release refuses to start on
        such a store."""
        found = self.leases.store_version
        if found is None or self.store_too_new is not None:
            return
        reason = too_new(
            found, schema=SCHEMA_VERSION, record_format=FORMAT_VERSION, version=__version__
        )
        if reason is None:
            return
        self.store_too_new = reason
        log.error("node.store_too_new", node=self.node, reason=reason)
        if self.on_store_too_new is not None:
            self.on_store_too_new(reason)

    def _note_skew(self, skew: float) -> None:
        """Compare this node's clock with the database's. Due instants are wall-clock times
        that every node reads: a node whose clock is ahead would send early, so a node too
        far off claims nothing until its clock is right again, and says so."""
        self.skew = skew
        skewed = abs(skew) > MAX_SKEW_SECONDS
        if skewed != self.skewed:
            self.skewed = skewed
            if skewed:
                log.error(
                    "node.clock_skew",
                    node=self.node,
                    seconds=round(skew, 3),
                    limit_seconds=MAX_SKEW_SECONDS,
                    note="this node claims nothing until its clock agrees with the database's",
                )
            else:
                log.info("node.clock_agrees", node=self.node, seconds=round(skew, 3))

    async def _rejoin(self, sent: float) -> None:
        """This node's lease ran out (others may have taken its work): join under a new id.
        What it was doing under the old one cannot be written any more (fenced)."""
        old = self.node
        self._last_good = -math.inf
        self.store.node = None
        try:
            self.store.node = await self.leases.join()
        except StoreError as exc:
            log.warning("node.rejoin_failed", node=old, error=str(exc))
            return
        self._last_good = sent
        self.stats.rejoins += 1
        log.warning("node.rejoined", old=old, node=self.node)
        self._window_wanted.set()
        self._reap_wanted.set()

    async def _reap_loop(self) -> None:
        failing = False  # said once per outage, not every second
        while True:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._reap_wanted.wait(), REAP_SECONDS)
            self._reap_wanted.clear()
            if not self.fresh():  # a node cut off itself must not judge the others
                continue
            try:
                gone, freed = await self.leases.reap()
            except StoreError as exc:
                if not failing:
                    log.warning("node.reap_failed", error=str(exc))
                failing = True
                continue
            failing = False
            self.stats.nodes_reaped += gone
            if not freed and not gone:
                continue
            self.stats.reaped += len(freed)
            log.warning("node.reaped", nodes=gone, executions=len(freed))
            now = self.clock()
            for execution_id, due_at in freed:
                if due_at is not None and due_at <= now + CLAIM_AHEAD_SECONDS:
                    self.on_due(execution_id, due_at)
            with contextlib.suppress(StoreError):
                await self.leases.notify()
            self._window_wanted.set()

    async def _watch_loop(self) -> None:
        """What falls due within `watch_seconds`, claimed by whichever node asks first: an
        execution that another node set waiting and then died with is not in this node's
        timers until its next window load; this finds it on time, not only at the sweep. A
        look that found a full page is followed by the next as soon as this node claimed
        most of what it found (a herd another node's timers woke for is shared out, not left
        to that node)."""
        full = False
        while True:
            if full:
                await self._claimed_most(self.watch_seconds)
            else:
                await asyncio.sleep(self.watch_seconds)
            full = await self._look(self.clock() + self.watch_seconds) >= WATCH_LIMIT

    async def _claimed_most(self, seconds: float) -> None:
        """Wait up to `seconds` for this node to claim most of what it wants."""
        claimed = self.stats.claimed
        deadline = time.monotonic() + seconds
        while time.monotonic() < deadline:
            await asyncio.sleep(min(RETRY_SECONDS, seconds))
            if self.stats.claimed > claimed and len(self._wanted) < self._backlog_limit:
                return

    async def _look(self, before: float) -> int:
        """Claim what falls due before `before` (then run it when due); how many it found."""
        if self.closing or not self.fresh() or self.skewed:
            return 0
        try:
            due = await self.store.claimable(before, WATCH_LIMIT, own=False)
        except StoreError:
            return 0  # the renewer and the claims say so
        for execution_id, due_at in due:
            self.on_overdue(execution_id, due_at)
        return len(due)

    def heard(self, payload: str) -> None:
        """A NOTIFY from a node: "window" loads this node's window; another node's "due" hint
        arms a look at each of its instants (this node's own hints it knows already)."""
        hint = pg_hints.parse(payload)
        if hint is None:
            self._window_wanted.set()
            return
        node, instants = hint
        if node == self.node or self.closing:
            return
        loop = asyncio.get_running_loop()
        now = self.clock()
        for instant in instants:
            if instant in self._looks or len(self._looks) >= MAX_LOOKS:
                continue
            self._looks[instant] = loop.call_later(max(0.0, instant - now), self._look_at, instant)

    def _look_at(self, instant: float) -> None:
        """A hinted instant came: one look covers it and those armed just after it."""
        upto = instant
        for other in [t for t in self._looks if t <= instant + LOOK_MERGE_SECONDS]:
            upto = max(upto, other)
            self._looks.pop(other).cancel()
        look = asyncio.create_task(self._look(upto + 0.001), name="stepd-cluster-look")
        self._looking.add(look)
        look.add_done_callback(self._looking.discard)

    async def _listen_loop(self) -> None:
        while True:
            try:
                async for payload in listen(self.leases.url, password=self._password):
                    self.heard(payload)
            except StoreError as exc:
                log.debug("node.listen_failed", error=str(exc))
            await asyncio.sleep(RENEW_SECONDS)
            self._window_wanted.set()  # notices may have been missed meanwhile

    async def _window_loop(self) -> None:
        while True:
            await self._window_wanted.wait()
            self._window_wanted.clear()
            if self._load_window is not None:
                try:
                    await self._load_window()
                except StoreError as exc:
                    log.warning("node.window_failed", error=str(exc))
            await asyncio.sleep(WINDOW_DEBOUNCE_SECONDS)

    @property
    def claiming(self) -> bool:
        """Whether this node takes work now."""
        return self.fresh() and not self.skewed and not self.closing and not self.store_too_new

    def problems(self) -> list[str]:
        """Why this node does no work now, if it does none (what /healthz reports as
        degraded): an operator's words."""
        found = []
        if not self.fresh():
            found.append(
                f"its lease is not fresh (last renewal {self.lease_age():.1f} s ago): it sends"
                " no task call and claims nothing until the database answers it again"
            )
        if self.skewed:
            found.append(
                f"its clock is {self.skew:+.3f} s off the database's (more than"
                f" {MAX_SKEW_SECONDS} s): it claims nothing until its clock is set right"
            )
        if self.store_too_new is not None:
            found.append(self.store_too_new)
        return found

    async def status(self) -> dict[str, Any]:
        """This node, its lease and every node's (for /healthz)."""
        differ: dict[str, dict[str, str]] = {}
        try:
            rows = await self.leases.nodes()
            differ = self.note_definitions(rows)
            database_now = self.clock() - self.skew
            nodes = [
                {
                    "id": row.id,
                    "host": row.host,
                    "pid": row.pid,
                    "api": row.api,
                    "version": row.version,
                    "lease_left_seconds": round(row.lease_until - database_now, 3),
                    "renewed_at": row.renewed_at,
                    "lease_until": row.lease_until,
                    "started_at": row.started_at,
                    "holds": row.held,
                    "machines": sum(1 for name in row.definitions if name != API_SETTINGS),
                }
                for row in rows
            ]
        except StoreError as exc:
            nodes = [{"error": str(exc)}]
        return {**self.local_status(), "nodes": nodes, "definitions_differ": differ}

    def local_status(self) -> dict[str, Any]:
        """This node and its lease, as it knows them without the database."""
        return {
            "id": self.node,
            "lease_fresh": self.fresh(),
            "last_renewal_seconds_ago": round(self.lease_age(), 3),
            "clock_skew_seconds": round(self.skew, 3),
            "claiming": self.claiming,
            "problems": self.problems(),
            "claimed": self.stats.claimed,
            "reaped": self.stats.reaped,
            "rejoins": self.stats.rejoins,
            "renew_failures": self.stats.renew_failures,
            "unsent": self.stats.unsent,
        }


class FencedCaller:
    """A task caller that sends only while this node's lease is fresh: otherwise it raises
    NotLeased, the call is not made, and the execution (its intent committed) is sent by
    whichever node holds it next, with the same key."""

    def __init__(self, caller: Caller, cluster: Cluster) -> None:
        self.caller = caller
        self._cluster = cluster

    async def call(self, request: TaskRequest) -> TaskOutcome:
        if not self._cluster.fresh() and not await self._fresh_again():
            self._cluster.stats.unsent += 1
            raise NotLeased(
                f"node {self._cluster.node}: lease last renewed "
                f"{self._cluster.lease_age():.1f} s ago; not sending {request.url}"
            )
        return await self.caller.call(request)

    async def _fresh_again(self) -> bool:
        """Wait, while this node's lease may still run, for a renewal under the same id (the
        database was briefly away: a renewal that gets through proves nobody took this node's
        work, so the call goes out at once instead of after a reap and a claim). False when
        the lease ran out meanwhile, the node joined again under a new id, or it is stopping."""
        cluster = self._cluster
        node = cluster.node
        while (  # noqa: ASYNC110 - four conditions, one of them the clock: polled
            cluster.lease_age() < LEASE_SECONDS
            and cluster.node == node
            and not cluster.closing
            and not cluster.fresh()
        ):
            await asyncio.sleep(RETRY_SECONDS)
        return cluster.fresh() and cluster.node == node and not cluster.closing

    async def probe(self, url: str, timeout_seconds: float) -> int | None:
        return await self.caller.probe(url, timeout_seconds)

    async def aclose(self) -> None:
        await self.caller.aclose()
