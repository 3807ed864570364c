"""Prometheus metrics for `GET /metrics`, in a registry of stepd's own.

    stepd_step_lateness_seconds        histogram  how long after its due instant a task step
                                                  started
    stepd_steps_late_total             counter    task steps later than their machine's
                                                  late_threshold_seconds
    stepd_task_calls_total             counter    task calls (re-sends included) by `outcome`
                                                  ("success" or the ASL error name, without
                                                  the status for States.Http.StatusCode) and
                                                  `code` (HTTP status, "none" without an answer)
    stepd_task_calls_in_flight         gauge      task calls waiting for an answer
    stepd_task_calls_waiting_for_host  gauge      task calls held until their host answers
                                                  again (engine/hosts.py)
    stepd_hosts_down                   gauge      task hosts being probed
    stepd_executions                   gauge      executions in the store by `status`
    stepd_timers_armed                 gauge      wake-ups held in memory
    stepd_oldest_overdue_seconds       gauge      how long the earliest-due running execution
                                                  has been due (0 when none is)

The in-memory values are read when scraped; the store's are read by `render`, off the event
loop (the store runs its reads in threads).
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from typing import TYPE_CHECKING

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram
from prometheus_client.exposition import CONTENT_TYPE_PLAIN_0_0_4, generate_latest

from stepd.engine.executor import Engine, EngineObserver
from stepd.errors import StoreError
from stepd.store.records import STATUSES
from stepd.tasks.caller import STATUS_ERROR_PREFIX, TaskOutcome
from stepd.timers import Timers

if TYPE_CHECKING:
    from stepd.cluster import Cluster

CONTENT_TYPE = CONTENT_TYPE_PLAIN_0_0_4
SUCCESS = "success"
NO_STATUS = "none"
STORE_SECONDS = 2.0  # how long a scrape waits for the store's figures
# Seconds: from on time (a few ms of timer and commit latency) to a daemon that was down.
LATENESS_BUCKETS_SECONDS = (
    0.001,
    0.0025,
    0.005,
    0.01,
    0.025,
    0.05,
    0.1,
    0.25,
    0.5,
    1.0,
    2.5,
    5.0,
    10.0,
    30.0,
    60.0,
    300.0,
    900.0,
    3600.0,
    float("inf"),
)


class Metrics(EngineObserver):
    """stepd's metrics. Becomes `engine`'s observer when made."""

    def __init__(
        self,
        engine: Engine,
        timers: Timers | None = None,
        *,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.registry = CollectorRegistry()
        self._task_call_counters: dict[tuple[str, str], Counter] = {}
        self._engine = engine
        self._clock = clock
        self.lateness = Histogram(
            "stepd_step_lateness_seconds",
            "Seconds from a task step's due instant to its start.",
            buckets=LATENESS_BUCKETS_SECONDS,
            registry=self.registry,
        )
        self.steps_late = Counter(
            "stepd_steps_late",
            "Task steps that started later than their machine's late_threshold_seconds.",
            registry=self.registry,
        )
        self.task_calls = Counter(
            "stepd_task_calls",
            "Task calls, re-sends included, by outcome and HTTP status code.",
            ["outcome", "code"],
            registry=self.registry,
        )
        in_flight = Gauge(
            "stepd_task_calls_in_flight",
            "Task calls waiting for an answer.",
            registry=self.registry,
        )
        in_flight.set_function(lambda: engine.status().in_flight)
        waiting = Gauge(
            "stepd_task_calls_waiting_for_host",
            "Task calls held until their host, which refused or failed calls, answers again.",
            registry=self.registry,
        )
        waiting.set_function(lambda: engine.status().waiting_for_host)
        hosts_down = Gauge(
            "stepd_hosts_down",
            "Task hosts that refused or failed the last call and are being probed.",
            registry=self.registry,
        )
        hosts_down.set_function(lambda: engine.status().hosts_down)
        self.executions = Gauge(
            "stepd_executions",
            "Executions in the store by status.",
            ["status"],
            registry=self.registry,
        )
        armed = Gauge("stepd_timers_armed", "Wake-ups held in memory.", registry=self.registry)
        if timers is not None:
            armed.set_function(lambda: timers.armed)
        self.oldest_overdue = Gauge(
            "stepd_oldest_overdue_seconds",
            "Seconds since the earliest-due running execution fell due; 0 when none is due.",
            registry=self.registry,
        )
        self.store_up = Gauge(
            "stepd_store_up",
            "1 when the store answered this scrape (the executions' figures are fresh), else 0.",
            registry=self.registry,
        )
        for status in STATUSES:
            self.executions.labels(status=status)
        engine.observe(self)

    def observe_node(self, cluster: Cluster) -> None:
        """This node's lease and claims, when several nodes share a PostgreSQL store."""
        figures: list[tuple[str, str, Callable[[], float]]] = [
            (
                "stepd_node_lease_age_seconds",
                "Seconds since this node's last good lease renewal was sent.",
                cluster.lease_age,
            ),
            (
                "stepd_node_lease_fresh",
                "1 while this node may send task calls (its lease is fresh), else 0.",
                lambda: float(cluster.fresh()),
            ),
            (
                "stepd_node_claiming",
                (
                    "1 while this node takes work (its lease fresh, its clock agreeing with the"
                    " database's, the store one it reads), else 0: /healthz says why."
                ),
                lambda: float(cluster.claiming),
            ),
            (
                "stepd_node_clock_skew_seconds",
                "This node's clock minus the database's, at its last lease renewal.",
                lambda: cluster.skew,
            ),
            (
                "stepd_node_claimed",
                "Executions this node claimed when they fell due (since it started).",
                lambda: cluster.stats.claimed,
            ),
            (
                "stepd_node_reaped_executions",
                "Executions of dead nodes this node let go of for the others (since it started).",
                lambda: cluster.stats.reaped,
            ),
            (
                "stepd_node_rejoins",
                "Times this node's lease ran out and it joined again under a new id.",
                lambda: cluster.stats.rejoins,
            ),
            (
                "stepd_node_unsent_calls",
                "Task calls this node did not send because its lease was not fresh.",
                lambda: cluster.stats.unsent,
            ),
        ]
        for name, text, read in figures:
            Gauge(name, text, registry=self.registry).set_function(read)

    # -- the engine's reports ------------------------------------------------------------

    def step_started(self, lateness_seconds: float, *, late: bool) -> None:
        self.lateness.observe(lateness_seconds)
        if late:
            self.steps_late.inc()

    def task_called(self, outcome: TaskOutcome) -> None:
        label = SUCCESS if outcome.error is None else outcome.error
        if label.startswith(STATUS_ERROR_PREFIX):
            label = STATUS_ERROR_PREFIX.rstrip(".")
        code = NO_STATUS if outcome.status is None else str(outcome.status)
        counter = self._task_call_counters.get((label, code))
        if counter is None:  # labels() checks and joins its values each time: kept per pair
            counter = self._task_call_counters[label, code] = self.task_calls.labels(
                outcome=label, code=code
            )
        counter.inc()

    # -- scraping ------------------------------------------------------------------------

    async def refresh(self) -> None:
        """Read the store's figures. Raises StoreError when the store cannot answer."""
        counts = await self._engine.count_by_status()
        oldest = await self._engine.oldest_due()
        for status in sorted({*STATUSES, *counts}):
            self.executions.labels(status=status).set(counts.get(status, 0))
        self.oldest_overdue.set(0.0 if oldest is None else max(0.0, self._clock() - oldest))

    async def render(self) -> bytes:
        """The text exposition format (version 0.0.4), freshly refreshed. A store that does
        not answer within STORE_SECONDS leaves its figures as they were (`stepd_store_up`
        0): this node's own figures (its lease above all) are what an outage needs read."""
        try:
            await asyncio.wait_for(self.refresh(), STORE_SECONDS)
        except (StoreError, TimeoutError):
            self.store_up.set(0)
        else:
            self.store_up.set(1)
        return generate_latest(self.registry)
