"""Hints between the nodes sharing one PostgreSQL store: LISTEN/NOTIFY on one channel.

A node that commits work any node may claim, due soon (an execution started, a wait, a retry's
back-off, a callback answered, an update that moved it nearer), tells the others the instants
it falls due at: one NOTIFY per group commit, after the commit, in a statement of its own on
the same connection (a NOTIFY inside the writing transaction takes a lock at commit that
serialises every commit). The others arm a look at each instant (stepd.cluster). "window" asks
every node to load its window (a node left or was reaped).

A hint is only a hint: one lost (no listener at that moment, a database or pooler without
LISTEN) costs lateness up to the watch's interval, never a step.
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Iterable
from typing import Any

import psycopg
import structlog

log = structlog.get_logger("stepd.store")

CHANNEL = "stepd"
WINDOW = "window"  # load your window: a node left or was reaped
DUE = "due"  # "due NODE T1 T2 ...": work any node may claim falls due at these instants
HINT_SECONDS = 30.0  # further off, the timers' next window load (every 30 s, 120 s ahead) arms it
MAX_INSTANTS = 32  # per NOTIFY (a payload of at most about 600 bytes), the earliest first


def due_instants(
    dues: Iterable[tuple[float | None, bool]], now: float | None = None
) -> list[float]:
    """The instants worth a hint among (due_at, held) of what a group committed: not held by
    the node that wrote it, due within HINT_SECONDS; distinct to the millisecond, earliest
    first, at most MAX_INSTANTS."""
    horizon = (time.time() if now is None else now) + HINT_SECONDS
    found = {round(due, 3) for due, held in dues if due is not None and not held and due <= horizon}
    return sorted(found)[:MAX_INSTANTS]


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
