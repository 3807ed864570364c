"""GET /metrics on the real daemon, scraped after real executions and parsed as Prometheus does."""

from __future__ import annotations

import asyncio
import time

import httpx
from prometheus_client.parser import text_string_to_metric_families
from tests.integration.harness import (
    START_PATH,
    Classroom,
    Stepd,
    wait_until,
    whole_second,
)

from stepd.classroom import ClassroomServer

SETTLE_SECONDS = 30.0  # generous bound for a short execution to close
LATE_BY_SECONDS = 120  # well past the default late_threshold_seconds of 60
WAITING_IN_SECONDS = 90  # inside the timers' 120-second window, so a timer is armed
SLOW_ANSWER_SECONDS = 30.0  # held back until the test ends: in flight whenever it is read
INF = float("inf")

Samples = dict[tuple[str, frozenset[tuple[str, str]]], float]


async def scrape(stepd: Stepd) -> Samples:
    """Every sample of `GET /metrics`, keyed by name and labels."""
    async with httpx.AsyncClient(timeout=10, trust_env=False) as client:
        response = await client.get(stepd.url + "/metrics")
    assert response.status_code == httpx.codes.OK, response.text
    assert response.headers["content-type"].startswith("text/plain; version=0.0.4")
    samples: Samples = {}
    for family in text_string_to_metric_families(response.text):
        for sample in family.samples:
            samples[(sample.name, frozenset(sample.labels.items()))] = sample.value
    return samples


def value(samples: Samples, name: str, **labels: str) -> float:
    return samples[(name, frozenset(labels.items()))]


def bucket(samples: Samples, le: float) -> float:
    bound = "+Inf" if le == INF else str(le)
    return value(samples, "stepd_step_lateness_seconds_bucket", le=bound)


async def test_metrics_report_what_the_executions_did(
    stepd: Stepd, classroom: ClassroomServer
) -> None:
    """Calls by outcome and code, lateness, late steps, statuses and timers match what ran."""
    await stepd.start()
    classroom.fail_next(START_PATH, status=500)
    due = whole_second(0.5)  # a start in the future: its lateness is the daemon's alone
    failing = Classroom(name="failing", start=due, end=due + 60)
    await stepd.start_execution(failing)
    await stepd.wait_status([failing.name], "FAILED", timeout=SETTLE_SECONDS)
    start = whole_second(1)
    on_time = Classroom(name="on-time", start=start, end=start + 3)
    late = Classroom(name="late", start=int(time.time()) - LATE_BY_SECONDS, end=start + 3)
    waiting = Classroom(
        name="waiting", start=start + WAITING_IN_SECONDS, end=start + WAITING_IN_SECONDS + 60
    )
    for room in (on_time, late, waiting):
        await stepd.start_execution(room)
    await stepd.wait_status([on_time.name, late.name], "SUCCEEDED", timeout=SETTLE_SECONDS)

    samples = await scrape(stepd)

    calls = {
        (dict(labels)["outcome"], dict(labels)["code"]): v
        for (name, labels), v in samples.items()
        if name == "stepd_task_calls_total"
    }
    assert calls == {("success", "200"): 6, ("States.Http.StatusCode", "500"): 1}
    assert value(samples, "stepd_step_lateness_seconds_count") == 7
    assert bucket(samples, INF) - bucket(samples, 60.0) == 1  # the late start only
    assert bucket(samples, 5.0) == 6  # every other step started within seconds, not minutes
    assert value(samples, "stepd_step_lateness_seconds_sum") >= LATE_BY_SECONDS
    assert value(samples, "stepd_steps_late_total") == 1
    statuses = {
        dict(labels)["status"]: v
        for (name, labels), v in samples.items()
        if name == "stepd_executions"
    }
    assert statuses == {
        "RUNNING": 1,
        "SUCCEEDED": 2,
        "FAILED": 1,
        "TIMED_OUT": 0,
        "ABORTED": 0,
    }
    assert value(samples, "stepd_timers_armed") >= 1
    assert value(samples, "stepd_task_calls_in_flight") == 0
    assert value(samples, "stepd_oldest_overdue_seconds") == 0


async def test_metrics_show_a_call_in_flight_and_how_long_it_is_overdue(
    stepd: Stepd, classroom: ClassroomServer
) -> None:
    """While the classroom server holds an answer back, the call is in flight and overdue."""
    await stepd.start()
    classroom.fail_next(START_PATH, status=200, delay=SLOW_ANSWER_SECONDS)
    room = Classroom(name="slow", start=int(time.time()), end=int(time.time()) + 60)
    await stepd.start_execution(room)

    async def in_flight() -> bool:
        return value(await scrape(stepd), "stepd_task_calls_in_flight") == 1

    await wait_until(in_flight, timeout=SETTLE_SECONDS, what="a call in flight")
    await asyncio.sleep(1.0)
    samples = await scrape(stepd)

    assert value(samples, "stepd_task_calls_in_flight") == 1
    assert 1.0 <= value(samples, "stepd_oldest_overdue_seconds") < SETTLE_SECONDS
    assert value(samples, "stepd_executions", status="RUNNING") == 1
