"""Tracing: OpenTelemetry spans of executions and task calls, exported by OTLP (HTTP, JSON).

Off by default; `[tracing] otlp_endpoint` switches it on. No OpenTelemetry package is needed:
spans are sent as OTLP/HTTP JSON (`POST <endpoint>/v1/traces`) by a small batching exporter
over aiohttp. An execution is one trace, whatever restarts it lives through: its trace id and
its root span id are derived from the execution's identity (machine, name, unique id). Each
task call is a CLIENT span under the root, and the call carries it to the classroom server in
a W3C `traceparent` header; the root span (INTERNAL, from the execution's start to its end)
is sent when the execution closes. Export failures are logged and the spans dropped, never
raised; at most MAX_BUFFERED spans wait for export.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import secrets
import time
from dataclasses import replace
from typing import Any, Final

import aiohttp

from stepd import __version__, logs
from stepd.engine.executor import EngineObserver
from stepd.store.records import SUCCEEDED, Execution
from stepd.tasks.caller import Caller, TaskOutcome, TaskRequest
from stepd.tasks.keys import idempotency_key

log = logs.get_logger("stepd.tracing")

FLUSH_SECONDS: Final = 2.0  # spans are sent this often (and at close)
EXPORT_TIMEOUT_SECONDS: Final = 10.0
MAX_BUFFERED: Final = 10_000  # spans waiting for export; beyond, the oldest are dropped
MAX_BATCH: Final = 512  # spans per export request
TRACES_PATH: Final = "/v1/traces"
KIND_INTERNAL: Final = 1
KIND_CLIENT: Final = 3
STATUS_OK: Final = 1
STATUS_ERROR: Final = 2


def _identity(key: str) -> str:
    """The execution part of an idempotency key (machine/name[/uid]), without the event."""
    return key.rsplit("/", 1)[0]


def trace_id(identity: str) -> str:
    """The execution's trace id: 32 hex digits, the same on every node and after restarts."""
    return hashlib.sha256(identity.encode()).hexdigest()[:32]


def root_span_id(identity: str) -> str:
    """The span id of the execution's own (root) span."""
    return hashlib.sha256(f"{identity}#execution".encode()).hexdigest()[:16]


def _attribute(key: str, value: str | int) -> dict[str, Any]:
    if isinstance(value, int):
        return {"key": key, "value": {"intValue": str(value)}}
    return {"key": key, "value": {"stringValue": value}}


def _nanos(ts: float) -> str:
    return str(round(ts * 1_000_000_000))


class Exporter:
    """Batches spans and POSTs them to `<endpoint>/v1/traces` as OTLP JSON."""

    def __init__(self, endpoint: str, *, service_name: str = "stepd") -> None:
        self.url = endpoint.rstrip("/") + TRACES_PATH
        self.service_name = service_name
        self._spans: list[dict[str, Any]] = []
        self._session: aiohttp.ClientSession | None = None
        self._flusher: asyncio.Task[None] | None = None
        self.dropped = 0
        self._failing = False

    def add(self, span: dict[str, Any]) -> None:
        self._spans.append(span)
        if len(self._spans) > MAX_BUFFERED:
            del self._spans[0]
            self.dropped += 1

    def start(self) -> None:
        """Send spans every FLUSH_SECONDS from now on (on the running loop)."""
        self._session = aiohttp.ClientSession(
            timeout=aiohttp.ClientTimeout(total=EXPORT_TIMEOUT_SECONDS)
        )
        self._flusher = asyncio.create_task(self._flush_forever(), name="stepd-tracing-export")

    async def close(self) -> None:
        """Send what is waiting, then stop."""
        if self._flusher is not None:
            self._flusher.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._flusher
            self._flusher = None
        await self.flush()
        if self._session is not None:
            await self._session.close()
            self._session = None

    async def _flush_forever(self) -> None:
        while True:
            await asyncio.sleep(FLUSH_SECONDS)
            await self.flush()

    async def flush(self) -> None:
        while self._spans and self._session is not None:
            batch, self._spans = self._spans[:MAX_BATCH], self._spans[MAX_BATCH:]
            body = {
                "resourceSpans": [
                    {
                        "resource": {"attributes": [_attribute("service.name", self.service_name)]},
                        "scopeSpans": [
                            {"scope": {"name": "stepd", "version": __version__}, "spans": batch}
                        ],
                    }
                ]
            }
            try:
                async with self._session.post(self.url, json=body) as answer:
                    ok = answer.status < 300
                    status = answer.status
            except (aiohttp.ClientError, TimeoutError) as exc:
                ok, status = False, None
                reason = f"{type(exc).__name__}: {exc}"
            else:
                reason = f"HTTP {status}"
            if not ok:
                self.dropped += len(batch)
                if not self._failing:
                    log.warning("tracing.export_failed", url=self.url, reason=reason)
                self._failing = True
                return
            if self._failing:
                log.info("tracing.export_recovered", url=self.url)
            self._failing = False


class TracingCaller:
    """A task caller that makes each call a span of its execution's trace and sends the
    span's `traceparent` with it."""

    def __init__(self, inner: Caller, exporter: Exporter) -> None:
        self.inner = inner
        self.exporter = exporter

    async def call(self, request: TaskRequest) -> TaskOutcome:
        identity = _identity(request.idempotency_key)
        trace, span = trace_id(identity), secrets.token_hex(8)
        started = time.time()
        outcome = await self.inner.call(replace(request, trace_parent=f"00-{trace}-{span}-01"))
        attributes = [
            _attribute("url.full", request.url),
            _attribute("stepd.idempotency_key", request.idempotency_key),
        ]
        if outcome.status is not None:
            attributes.append(_attribute("http.response.status_code", outcome.status))
        if outcome.error is not None:
            attributes.append(_attribute("error.type", outcome.error))
        self.exporter.add(
            {
                "traceId": trace,
                "spanId": span,
                "parentSpanId": root_span_id(identity),
                "name": "task call",
                "kind": KIND_CLIENT,
                "startTimeUnixNano": _nanos(started),
                "endTimeUnixNano": _nanos(time.time()),
                "attributes": attributes,
                "status": _status(outcome.error, outcome.cause),
            }
        )
        return outcome

    async def probe(self, url: str, timeout_seconds: float) -> int | None:
        return await self.inner.probe(url, timeout_seconds)

    async def aclose(self) -> None:
        await self.inner.aclose()


def _status(error: str | None, cause: str | None) -> dict[str, Any]:
    if error is None:
        return {"code": STATUS_OK}
    return {"code": STATUS_ERROR, "message": f"{error}: {cause}" if cause else error}


class TracingObserver(EngineObserver):
    """Sends an execution's root span when it closes; passes every report on to `inner`."""

    def __init__(self, exporter: Exporter, inner: EngineObserver) -> None:
        self.exporter = exporter
        self.inner = inner

    def step_started(self, lateness_seconds: float, *, late: bool) -> None:
        self.inner.step_started(lateness_seconds, late=late)

    def task_called(self, outcome: TaskOutcome) -> None:
        self.inner.task_called(outcome)

    def execution_closed(self, execution: Execution, arn: str) -> None:
        self.inner.execution_closed(execution, arn)
        identity = _identity(idempotency_key(execution, 0))
        self.exporter.add(
            {
                "traceId": trace_id(identity),
                "spanId": root_span_id(identity),
                "name": f"execution {execution.machine}",
                "kind": KIND_INTERNAL,
                "startTimeUnixNano": _nanos(execution.start_date),
                "endTimeUnixNano": _nanos(execution.stop_date or time.time()),
                "attributes": [
                    _attribute("stepd.execution_arn", arn),
                    _attribute("stepd.status", execution.status),
                ],
                "status": {"code": STATUS_OK}
                if execution.status == SUCCEEDED
                else _status(execution.error or execution.status, execution.cause),
            }
        )
