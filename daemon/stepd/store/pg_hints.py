"""Hints between the nodes sharing one PostgreSQL store: LISTEN/NOTIFY on one channel.

A node that commits work any node may claim, due soon (an execution started, a wait, a retry's
back-off, a callback answered, an update that moved it nearer), tells the others the instants
it falls due at: at most one NOTIFY per group commit, after the commit, in a statement of its
own on the same connection (a NOTIFY inside the writing transaction takes a lock at commit that
serialises every commit). The others arm a look at each instant (stepd.cluster). "window" asks
every node to load its window (a node left or was reaped).

A hint is only a hint: one lost (no listener at that moment, a database or pooler without
LISTEN) costs lateness up to the watch's interval, never a step.
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Callable, Collection, Iterable
from typing import Any

import psycopg

from stepd import logs

log = logs.get_logger("stepd.store")

CHANNEL = "stepd"
WINDOW = "window"  # load your window: a node left or was reaped
DUE = "due"  # "due NODE T1 T2 ...": work any node may claim falls due at these instants
HINT_SECONDS = 30.0  # further off, the timers' next window load (every 30 s, 120 s ahead) arms it
MAX_INSTANTS = 32  # per NOTIFY (a payload of at most about 600 bytes), the earliest first
MAX_TOLD = 10_000  # instants to come a node remembers having told (then it forgets the past)


def due_instants(
    dues: Iterable[tuple[float | None, bool]],
    now: float | None = None,
    told: Collection[float] = (),
) -> list[float]:
    """The instants worth a hint among (due_at, held) of what a group committed: not held by
    the node that wrote it, due within HINT_SECONDS, not among those `told` already that are
    still to come; distinct to the millisecond, earliest first, at most MAX_INSTANTS."""
    now = time.time() if now is None else now
    horizon = now + HINT_SECONDS
    found = {round(due, 3) for due, held in dues if due is not None and not held and due <= horizon}
    return sorted(t for t in found if t <= now or t not in told)[:MAX_INSTANTS]


class Hints:
    """What one node tells the others. An instant still to come is told once: every node
    listening armed a look at it then, which finds whatever else falls due at it (a herd of
    executions started for the same second costs one NOTIFY, not one per group)."""

    def __init__(self, node: Callable[[], str | None]) -> None:
        self._node = node  # the node writing (None: no hints)
        self._told: set[float] = set()

    async def send(
        self, conn: Any, dues: Iterable[tuple[float | None, bool]], now: float | None = None
    ) -> None:
        """Tell the others the instants of `dues` ((due_at, held) of what was committed on
        `conn`) not told yet."""
        node = self._node()
        if node is None:
            return
        now = time.time() if now is None else now
        instants = due_instants(dues, now, self._told)
        if not instants:
            return
        if len(self._told) >= MAX_TOLD:
            self._told = {t for t in self._told if t > now}
        self._told.update(t for t in instants if t > now)
        await send(conn, node, instants)


def payload(node: str, instants: Iterable[float]) -> str:
    return " ".join([DUE, node, *(f"{t:.3f}" for t in instants)])


def parse(text: str) -> tuple[str, list[float]] | None:
    """(node, instants) of a "due" hint; None for anything else ("window", or unreadable)."""
    kind, _, rest = text.partition(" ")
    if kind != DUE:
        return None
    node, *words = rest.split()
    try:
        return node, [float(word) for word in words]
    except ValueError:
        return None


async def send(conn: Any, node: str | None, instants: list[float]) -> None:
    """NOTIFY the instants on `conn`, outside any transaction (autocommit); a failure is only
    logged: the write it follows is committed, and the watch finds the work anyway."""
    if node is None or not instants:
        return
    with contextlib.suppress(psycopg.Error):
        await conn.execute("SELECT pg_notify(%s, %s)", (CHANNEL, payload(node, instants)))
        return
    log.debug("store.hint_failed", instants=len(instants))
