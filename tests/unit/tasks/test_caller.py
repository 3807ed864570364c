"""The outbound Task call, against httpx.MockTransport."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator, Callable
from typing import Any

import httpx
import pytest
from structlog.testing import capture_logs

from stepd import __version__
from stepd.errors import ConfigError
from stepd.tasks.caller import (
    DEFAULT_USER_AGENT,
    MAX_RESULT_BYTES,
    TaskCaller,
    TaskOutcome,
    TaskRequest,
    parse_retry_after,
)
from stepd.tasks.signing import verify

SECRET = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"
NOW = 1_700_000_000.0  # 2023-11-14T22:13:20Z
URL = "http://classroom.test/recording/start"
KEY = "classroom:exec-1:StartRecording:1"

Handler = Callable[[httpx.Request], Any]


class Recorder:
    """A MockTransport handler that keeps the requests and answers with `respond`."""

    def __init__(self, respond: Handler) -> None:
        self.requests: list[httpx.Request] = []
        self._respond = respond

    async def __call__(self, request: httpx.Request) -> httpx.Response:
        self.requests.append(request)
        answer = self._respond(request)
        if asyncio.iscoroutine(answer):
            answer = await answer
        assert isinstance(answer, httpx.Response)
        return answer


def ok(request: httpx.Request) -> httpx.Response:
    return httpx.Response(200, json={"ok": True})


def task(payload: Any = None, *, timeout_seconds: float = 5.0, url: str = URL) -> TaskRequest:
    return TaskRequest(
        url=url,
        payload={"classroom": "c1"} if payload is None else payload,
        idempotency_key=KEY,
        timeout_seconds=timeout_seconds,
    )


@pytest.fixture
async def make_caller() -> AsyncIterator[Callable[..., TaskCaller]]:
    callers: list[TaskCaller] = []

    def make(respond: Handler | Recorder = ok, **options: Any) -> TaskCaller:
        handler = respond if isinstance(respond, Recorder) else Recorder(respond)
        options.setdefault("user_agent", DEFAULT_USER_AGENT)
        options.setdefault("clock", lambda: NOW)
        caller = TaskCaller(transport=httpx.MockTransport(handler), **options)
        callers.append(caller)
        return caller

    yield make
    for caller in callers:
        await caller.aclose()


async def test_headers_of_a_signed_call(make_caller: Callable[..., TaskCaller]) -> None:
    """Every POST carries JSON content type, the key twice, the timestamp, UA and signature."""
    recorder = Recorder(ok)
    await make_caller(recorder, signing_secret=SECRET).call(task())
    (sent,) = recorder.requests
    assert sent.method == "POST"
    assert str(sent.url) == URL
    assert sent.headers["content-type"] == "application/json"
    assert sent.headers["idempotency-key"] == KEY
    assert sent.headers["webhook-id"] == KEY
    assert sent.headers["webhook-timestamp"] == str(int(NOW))
    assert sent.headers["user-agent"] == f"stepd/{__version__}"
    assert verify(SECRET, sent.headers, sent.content, now=NOW)


async def test_no_signature_without_a_secret(make_caller: Callable[..., TaskCaller]) -> None:
    """Without a signing secret the webhook-signature header is left out."""
    recorder = Recorder(ok)
    await make_caller(recorder).call(task())
    assert "webhook-signature" not in recorder.requests[0].headers


async def test_timestamp_is_taken_per_attempt(make_caller: Callable[..., TaskCaller]) -> None:
    """Each attempt is stamped with the clock at that attempt; the key stays the same."""
    recorder = Recorder(ok)
    ticks = iter([NOW, NOW + 30])
    caller = make_caller(recorder, clock=lambda: next(ticks))
    await caller.call(task())
    await caller.call(task())
    assert [r.headers["webhook-timestamp"] for r in recorder.requests] == [
        str(int(NOW)),
        str(int(NOW + 30)),
    ]
    assert {r.headers["webhook-id"] for r in recorder.requests} == {KEY}


async def test_body_is_compact_utf8_json(make_caller: Callable[..., TaskCaller]) -> None:
    """The body is the payload as compact JSON in UTF-8, and the signature covers those bytes."""
    recorder = Recorder(ok)
    payload = {"room": "Phòng 1", "at": [1, 2.5, None, True]}
    await make_caller(recorder, signing_secret=SECRET).call(task(payload))
    sent = recorder.requests[0]
    assert sent.content == '{"room":"Phòng 1","at":[1,2.5,null,true]}'.encode()
    assert verify(SECRET, sent.headers, sent.content, now=NOW)


@pytest.mark.parametrize(
    ("response", "expected"),
    [
        pytest.param(
            httpx.Response(200, json={"ok": True, "n": 1}),
            TaskOutcome(result={"ok": True, "n": 1}, status=200),
            id="200-json",
        ),
        pytest.param(
            httpx.Response(201, text='"started"'),
            TaskOutcome(result="started", status=201),
            id="201-json-string-without-content-type",
        ),
        pytest.param(httpx.Response(204), TaskOutcome(result=None, status=204), id="204-empty"),
        pytest.param(
            httpx.Response(200, text=" \n"), TaskOutcome(result=None, status=200), id="200-blank"
        ),
        pytest.param(
            httpx.Response(200, text="OK"),
            TaskOutcome(
                error="States.TaskFailed",
                cause="the answer is not JSON: HTTP 200 OK: OK",
                status=200,
            ),
            id="200-not-json",
        ),
        pytest.param(
            httpx.Response(200, text='{"x": NaN}'),
            TaskOutcome(
                error="States.TaskFailed",
                cause='the answer is not JSON: HTTP 200 OK: {"x": NaN}',
                status=200,
            ),
            id="200-nan",
        ),
        pytest.param(
            httpx.Response(302, headers={"Location": "http://elsewhere.test/"}),
            TaskOutcome(error="States.Http.StatusCode.302", cause="HTTP 302 Found", status=302),
            id="302-not-followed",
        ),
        pytest.param(
            httpx.Response(404, text="no such path"),
            TaskOutcome(
                error="States.Http.StatusCode.404",
                cause="HTTP 404 Not Found: no such path",
                status=404,
            ),
            id="404",
        ),
        pytest.param(
            httpx.Response(500, json={"error": "boom"}),
            TaskOutcome(
                error="States.Http.StatusCode.500",
                cause='HTTP 500 Internal Server Error: {"error":"boom"}',
                status=500,
            ),
            id="500",
        ),
        pytest.param(
            httpx.Response(503, headers={"Retry-After": "120"}),
            TaskOutcome(
                error="States.Http.StatusCode.503",
                cause="HTTP 503 Service Unavailable",
                status=503,
                retry_after=120.0,
            ),
            id="503-retry-after",
        ),
        pytest.param(
            httpx.Response(429, headers={"Retry-After": "Tue, 14 Nov 2023 22:14:20 GMT"}),
            TaskOutcome(
                error="States.Http.StatusCode.429",
                cause="HTTP 429 Too Many Requests",
                status=429,
                retry_after=60.0,
            ),
            id="429-retry-after-date",
        ),
    ],
)
async def test_answer_to_outcome(
    make_caller: Callable[..., TaskCaller], response: httpx.Response, expected: TaskOutcome
) -> None:
    """2xx JSON is the result, empty 2xx is null, anything else an ASL error name."""
    recorder = Recorder(lambda _: response)
    assert expected == await make_caller(recorder).call(task())
    assert len(recorder.requests) == 1


async def test_cause_keeps_the_first_256_characters_of_the_body(
    make_caller: Callable[..., TaskCaller],
) -> None:
    """A long error body is cut so that the cause stays short."""
    outcome = await make_caller(lambda _: httpx.Response(500, text="x" * 1000)).call(task())
    assert outcome.cause == "HTTP 500 Internal Server Error: " + "x" * 256


async def test_oversized_result_exceeds_the_data_limit(
    make_caller: Callable[..., TaskCaller],
) -> None:
    """A 2xx body larger than AWS's 256 KiB result quota fails with States.DataLimitExceeded."""
    big = json.dumps(["x" * MAX_RESULT_BYTES])
    outcome = await make_caller(lambda _: httpx.Response(200, text=big)).call(task())
    assert (outcome.error, outcome.status) == ("States.DataLimitExceeded", 200)


@pytest.mark.parametrize(
    ("exception", "error"),
    [
        pytest.param(httpx.ConnectTimeout, "States.Timeout", id="connect-timeout"),
        pytest.param(httpx.ReadTimeout, "States.Timeout", id="read-timeout"),
        pytest.param(httpx.WriteTimeout, "States.Timeout", id="write-timeout"),
        pytest.param(httpx.PoolTimeout, "States.Timeout", id="pool-timeout"),
        pytest.param(httpx.ConnectError, "States.Http.Socket", id="connect-error"),
        pytest.param(httpx.ReadError, "States.Http.Socket", id="reset"),
        pytest.param(httpx.WriteError, "States.Http.Socket", id="write-error"),
        pytest.param(httpx.RemoteProtocolError, "States.Http.Socket", id="protocol-error"),
        pytest.param(httpx.UnsupportedProtocol, "States.Runtime", id="unsupported-scheme"),
    ],
)
async def test_transport_errors_to_outcome(
    make_caller: Callable[..., TaskCaller], exception: type[httpx.RequestError], error: str
) -> None:
    """Timeouts of any phase are States.Timeout; other network failures States.Http.Socket."""

    def fail(request: httpx.Request) -> httpx.Response:
        raise exception("it went wrong", request=request)

    outcome = await make_caller(fail).call(task())
    assert (outcome.error, outcome.status, outcome.result) == (error, None, None)
    assert outcome.cause is not None
    assert "it went wrong" in outcome.cause


async def test_whole_attempt_is_bounded_by_timeout_seconds(
    make_caller: Callable[..., TaskCaller],
) -> None:
    """An answer slower than timeout_seconds is States.Timeout even if no phase timed out."""

    async def slow(request: httpx.Request) -> httpx.Response:
        await asyncio.sleep(10)
        return httpx.Response(200)

    outcome = await make_caller(slow).call(task(timeout_seconds=0.05))
    assert outcome.error == "States.Timeout"
    assert outcome.cause == "no answer within 0.05 s (TimeoutError)"


async def test_cancellation_propagates(make_caller: Callable[..., TaskCaller]) -> None:
    """Cancelling a call (daemon shutdown) is not turned into an outcome."""
    started = asyncio.Event()

    async def hang(request: httpx.Request) -> httpx.Response:
        started.set()
        await asyncio.sleep(10)
        return httpx.Response(200)

    call = asyncio.create_task(make_caller(hang).call(task()))
    await started.wait()
    call.cancel()
    with pytest.raises(asyncio.CancelledError):
        await call


@pytest.mark.parametrize(
    ("request_", "cause_start"),
    [
        pytest.param(task({"x": float("nan")}), "task input is not JSON", id="nan-payload"),
        pytest.param(task({"x": {1, 2}}), "task input is not JSON", id="set-payload"),
        pytest.param(task(url="http://[::1/x"), "cannot call", id="bad-url"),
    ],
)
async def test_requests_that_cannot_be_made_are_runtime_errors(
    make_caller: Callable[..., TaskCaller], request_: TaskRequest, cause_start: str
) -> None:
    """Input that is not JSON or a broken URL fails with States.Runtime, nothing is sent."""
    recorder = Recorder(ok)
    outcome = await make_caller(recorder).call(request_)
    assert outcome.error == "States.Runtime"
    assert outcome.cause is not None
    assert outcome.cause.startswith(cause_start)
    assert recorder.requests == []


@pytest.mark.parametrize(
    ("value", "seconds"),
    [
        pytest.param(None, None, id="absent"),
        pytest.param("120", 120.0, id="delta"),
        pytest.param(" 0 ", 0.0, id="zero-padded"),
        pytest.param("Tue, 14 Nov 2023 22:15:20 GMT", 120.0, id="imf-date"),
        pytest.param("Tuesday, 14-Nov-23 22:15:20 GMT", 120.0, id="rfc850-date"),
        pytest.param("Tue Nov 14 22:15:20 2023", 120.0, id="asctime-date"),
        pytest.param("Tue, 14 Nov 2023 22:00:00 GMT", 0.0, id="date-in-past"),
        pytest.param("-5", None, id="negative"),
        pytest.param("1.5", None, id="fraction"),
        pytest.param("soon", None, id="garbage"),
        pytest.param("", None, id="empty"),
    ],
)
def test_parse_retry_after(value: str | None, seconds: float | None) -> None:
    """Retry-After is delta-seconds or an HTTP date, as seconds from now, never negative."""
    assert seconds == parse_retry_after(value, now=NOW)


async def test_logs_the_result_as_events(make_caller: Callable[..., TaskCaller]) -> None:
    """A call logs task.call and task.result with url, status and duration, never the secret."""
    with capture_logs() as logs:
        await make_caller(signing_secret=SECRET).call(task())
    assert [entry["event"] for entry in logs] == ["task.call", "task.result"]
    result = logs[-1]
    assert (result["url"], result["key"], result["status"]) == (URL, KEY, 200)
    assert result["duration_ms"] >= 0
    assert SECRET.removeprefix("whsec_") not in repr(logs)


async def test_logs_a_failure_with_its_error(make_caller: Callable[..., TaskCaller]) -> None:
    """A failed call logs task.failed with the ASL error name and status."""
    with capture_logs() as logs:
        await make_caller(lambda _: httpx.Response(503)).call(task())
    failed = logs[-1]
    assert (failed["event"], failed["log_level"]) == ("task.failed", "warning")
    assert (failed["error"], failed["status"]) == ("States.Http.StatusCode.503", 503)


def test_an_invalid_secret_is_refused_at_construction() -> None:
    """A bad signing secret fails when the caller is built, not at the first call."""
    with pytest.raises(ConfigError):
        TaskCaller(user_agent=DEFAULT_USER_AGENT, signing_secret="whsec_***")


@pytest.mark.parametrize("seconds", [0, -1.0], ids=["zero", "negative"])
def test_a_request_needs_a_positive_timeout(seconds: float) -> None:
    """A TaskRequest without a positive timeout is a programming error."""
    with pytest.raises(ValueError, match="timeout_seconds"):
        task(timeout_seconds=seconds)


def test_an_outcome_is_a_result_or_an_error() -> None:
    """An outcome cannot carry both a result and an error."""
    with pytest.raises(ValueError, match="not both"):
        TaskOutcome(result={"ok": True}, error="States.TaskFailed")
