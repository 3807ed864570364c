"""The outbound Task call, through the daemon's own transport (aiohttp) over loopback.

Answers come from an aiohttp server on 127.0.0.1; servers that misbehave below HTTP (reset,
drop, garbage, silence) are raw TCP servers. Nothing is mocked: what is checked here is what
production sends and how it reads what comes back.
"""

from __future__ import annotations

import asyncio
import contextlib
import gzip
import inspect
import json
import socket
import struct
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

import pytest
from aiohttp import web
from multidict import CIMultiDict
from structlog.testing import capture_logs

from stepd import __version__
from stepd.errors import ConfigError
from stepd.tasks import caller as caller_module
from stepd.tasks.caller import (
    DEFAULT_USER_AGENT,
    MAX_RESULT_BYTES,
    TaskCaller,
    TaskOutcome,
    TaskRequest,
    parse_retry_after,
)
from stepd.tasks.signing import verify
from stepd.testing import free_port

SECRET = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"
NOW = 1_700_000_000.0  # 2023-11-14T22:13:20Z
PATH = "/recording/start"
KEY = "classroom:exec-1:StartRecording:1"
SHORT = 0.2  # seconds: the timeout of calls meant to time out
WAIT_SECONDS = 5.0  # upper bound for anything that should happen at once on loopback

Respond = Callable[[web.Request], web.StreamResponse | Awaitable[web.StreamResponse]]


def ok(_: web.Request) -> web.StreamResponse:
    return web.json_response({"ok": True})


@dataclass(frozen=True, kw_only=True)
class Received:
    method: str
    path: str
    headers: CIMultiDict[str]
    body: bytes


@dataclass
class Server:
    """An aiohttp server on 127.0.0.1 that keeps each request and answers with `respond`."""

    respond: Respond
    port: int = field(default_factory=free_port)
    requests: list[Received] = field(default_factory=list)
    runner: web.AppRunner | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}{PATH}"

    async def start(self) -> None:
        app = web.Application()
        app.router.add_route("*", "/{tail:.*}", self._handle)
        self.runner = web.AppRunner(app)
        await self.runner.setup()
        await web.TCPSite(self.runner, "127.0.0.1", self.port).start()

    async def stop(self) -> None:
        if self.runner is not None:
            await self.runner.cleanup()

    async def _handle(self, request: web.Request) -> web.StreamResponse:
        self.requests.append(
            Received(
                method=request.method,
                path=request.path_qs,
                headers=CIMultiDict(request.headers),
                body=await request.read(),
            )
        )
        answer = self.respond(request)
        return await answer if inspect.isawaitable(answer) else answer


# What a raw server does once it has read a request: write to the socket, or wait for `done`.
Misbehave = Callable[[asyncio.StreamWriter, asyncio.Event], Awaitable[None]]


@dataclass
class RawServer:
    """A TCP server on 127.0.0.1 that reads each request and then does `misbehave`."""

    misbehave: Misbehave
    port: int = field(default_factory=free_port)
    requests: int = 0
    arrived: asyncio.Event = field(default_factory=asyncio.Event)
    done: asyncio.Event = field(default_factory=asyncio.Event)  # set at teardown
    handlers: set[asyncio.Task[None]] = field(default_factory=set)
    server: asyncio.Server | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}{PATH}"

    async def start(self) -> None:
        self.server = await asyncio.start_server(self._serve, "127.0.0.1", self.port)

    async def stop(self) -> None:
        self.done.set()
        await asyncio.gather(*self.handlers)
        if self.server is not None:
            self.server.close()
            await self.server.wait_closed()

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        assert task is not None
        self.handlers.add(task)
        try:
            head = await reader.readuntil(b"\r\n\r\n")
            length = next(
                (
                    int(line.split(b":", 1)[1])
                    for line in head.split(b"\r\n")
                    if line.lower().startswith(b"content-length:")
                ),
                0,
            )
            await reader.readexactly(length)
            self.requests += 1
            self.arrived.set()
            await self.misbehave(writer, self.done)
        except (ConnectionError, asyncio.IncompleteReadError):
            pass
        finally:
            writer.close()


async def reset(writer: asyncio.StreamWriter, _: asyncio.Event) -> None:
    sock = writer.get_extra_info("socket")
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    writer.transport.abort()


async def close_at_once(writer: asyncio.StreamWriter, _: asyncio.Event) -> None:
    writer.close()


async def half_a_body(writer: asyncio.StreamWriter, _: asyncio.Event) -> None:
    writer.write(b'HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\n{"ok":')
    await writer.drain()


async def not_http(writer: asyncio.StreamWriter, _: asyncio.Event) -> None:
    writer.write(b"HELLO THERE\r\n\r\n")
    await writer.drain()


async def silence(_: asyncio.StreamWriter, done: asyncio.Event) -> None:
    await done.wait()


async def stalled_body(writer: asyncio.StreamWriter, done: asyncio.Event) -> None:
    writer.write(b"HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\n{")
    await writer.drain()
    await done.wait()


async def trickle(writer: asyncio.StreamWriter, done: asyncio.Event) -> None:
    """A byte of the body every 20 ms: no read ever waits long, the answer never ends."""
    writer.write(b"HTTP/1.1 200 OK\r\nContent-Length: 10000\r\n\r\n")
    while not done.is_set():
        writer.write(b" ")
        await writer.drain()
        await asyncio.sleep(0.02)


@pytest.fixture
async def serve() -> AsyncIterator[Callable[..., Awaitable[Server]]]:
    started: list[Server] = []

    async def start(respond: Respond = ok) -> Server:
        server = Server(respond)
        await server.start()
        started.append(server)
        return server

    yield start
    for server in started:
        await server.stop()


@pytest.fixture
async def serve_raw() -> AsyncIterator[Callable[[Misbehave], Awaitable[RawServer]]]:
    started: list[RawServer] = []

    async def start(misbehave: Misbehave) -> RawServer:
        server = RawServer(misbehave)
        await server.start()
        started.append(server)
        return server

    yield start
    for server in started:
        await server.stop()


@pytest.fixture
async def make_caller() -> AsyncIterator[Callable[..., TaskCaller]]:
    callers: list[TaskCaller] = []

    def make(**options: Any) -> TaskCaller:
        options.setdefault("user_agent", DEFAULT_USER_AGENT)
        options.setdefault("clock", lambda: NOW)
        caller = TaskCaller(**options)
        callers.append(caller)
        return caller

    yield make
    for caller in callers:
        await caller.aclose()


def task(url: str, payload: Any = None, *, timeout_seconds: float = WAIT_SECONDS) -> TaskRequest:
    return TaskRequest(
        url=url,
        payload={"classroom": "c1"} if payload is None else payload,
        idempotency_key=KEY,
        timeout_seconds=timeout_seconds,
    )


# -- what is sent ---------------------------------------------------------------------------


async def test_headers_of_a_signed_call(
    serve: Callable[..., Awaitable[Server]], make_caller: Callable[..., TaskCaller]
) -> None:
    """Every POST carries JSON content type, the key twice, the timestamp, UA and signature."""
    server = await serve()
    await make_caller(signing_secret=SECRET).call(task(server.url))
    (sent,) = server.requests
    assert (sent.method, sent.path) == ("POST", PATH)
    assert sent.headers["Host"] == f"127.0.0.1:{server.port}"
    assert sent.headers["Content-Type"] == "application/json"
    assert sent.headers["Accept"] == "application/json"
    assert sent.headers["Idempotency-Key"] == KEY
    assert sent.headers["webhook-id"] == KEY
    assert sent.headers["webhook-timestamp"] == str(int(NOW))
    assert sent.headers["User-Agent"] == f"stepd/{__version__}"
    assert sent.headers.getall("User-Agent") == [f"stepd/{__version__}"]
    assert verify(SECRET, sent.headers, sent.body, now=NOW)


async def test_no_signature_without_a_secret(
    serve: Callable[..., Awaitable[Server]], make_caller: Callable[..., TaskCaller]
) -> None:
    """Without a signing secret the webhook-signature header is left out."""
    server = await serve()
    await make_caller().call(task(server.url))
    assert "webhook-signature" not in server.requests[0].headers


async def test_timestamp_is_taken_per_attempt(
    serve: Callable[..., Awaitable[Server]], make_caller: Callable[..., TaskCaller]
) -> None:
    """Each attempt is stamped with the clock at that attempt; the key stays the same."""
    server = await serve()
    ticks = iter([NOW, NOW + 30])
    caller = make_caller(clock=lambda: next(ticks))
    await caller.call(task(server.url))
    await caller.call(task(server.url))
    assert [r.headers["webhook-timestamp"] for r in server.requests] == [
        str(int(NOW)),
        str(int(NOW + 30)),
    ]
    assert {r.headers["webhook-id"] for r in server.requests} == {KEY}


async def test_body_is_compact_utf8_json(
    serve: Callable[..., Awaitable[Server]], make_caller: Callable[..., TaskCaller]
) -> None:
    """The body is the payload as compact JSON in UTF-8, and the signature covers those bytes."""
    server = await serve()
    payload = {"room": "Phòng 1", "at": [1, 2.5, None, True]}
    await make_caller(signing_secret=SECRET).call(task(server.url, payload))
    sent = server.requests[0]
    assert sent.body == '{"room":"Phòng 1","at":[1,2.5,null,true]}'.encode()
    assert sent.headers["Content-Length"] == str(len(sent.body))
    assert verify(SECRET, sent.headers, sent.body, now=NOW)


async def test_no_cookie_is_kept_between_calls(
    serve: Callable[..., Awaitable[Server]], make_caller: Callable[..., TaskCaller]
) -> None:
    """A Set-Cookie in one answer (from a host named, not an IP address) is not sent back on
    later calls: each call stands alone."""

    def with_cookie(_: web.Request) -> web.StreamResponse:
        response = web.json_response({"ok": True})
        response.set_cookie("session", "from-the-first-call")
        return response

    server = await serve(with_cookie)
    caller = make_caller()
    outcomes = [await caller.call(task(f"http://localhost:{server.port}{PATH}")) for _ in range(2)]
    assert [outcome.ok for outcome in outcomes] == [True, True]
    assert [r.headers.get("Cookie") for r in server.requests] == [None, None]


async def test_proxies_from_the_environment_are_ignored(
    serve: Callable[..., Awaitable[Server]],
    make_caller: Callable[..., TaskCaller],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """HTTP_PROXY and friends do not divert a call: it goes where it is configured."""
    nowhere = f"http://127.0.0.1:{free_port()}"
    for name in ("HTTP_PROXY", "http_proxy", "ALL_PROXY", "all_proxy"):
        monkeypatch.setenv(name, nowhere)
    monkeypatch.delenv("NO_PROXY", raising=False)
    monkeypatch.delenv("no_proxy", raising=False)
    server = await serve()
    outcome = await make_caller().call(task(server.url))
    assert (outcome.ok, len(server.requests)) == (True, 1)


# -- what comes back ------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("answer", "expected"),
    [
        pytest.param(
            {"status": 200, "text": '{"ok": true, "n": 1}', "content_type": "application/json"},
            TaskOutcome(result={"ok": True, "n": 1}, status=200),
            id="200-json",
        ),
        pytest.param(
            {"status": 201, "text": '"started"'},
            TaskOutcome(result="started", status=201),
            id="201-json-string-sent-as-text",
        ),
        pytest.param({"status": 204}, TaskOutcome(result=None, status=204), id="204-empty"),
        pytest.param(
            {"status": 200, "text": " \n"}, TaskOutcome(result=None, status=200), id="200-blank"
        ),
        pytest.param(
            {"status": 200, "text": "OK", "content_type": "text/plain"},
            TaskOutcome(result="OK", status=200),
            id="200-plain-text-is-a-string-result",
        ),
        pytest.param(
            {"status": 202, "text": "<html><body>Accepted</body></html>"},
            TaskOutcome(result="<html><body>Accepted</body></html>", status=202),
            id="202-html-is-a-string-result",
        ),
        pytest.param(
            {"status": 200, "text": '{"x": NaN}', "content_type": "application/json"},
            TaskOutcome(result='{"x": NaN}', status=200),
            id="200-invalid-json-is-a-string-result",
        ),
        pytest.param(
            {"status": 200, "text": '{"x": 1e400}', "content_type": "application/json"},
            TaskOutcome(result='{"x": 1e400}', status=200),
            id="200-a-number-beyond-a-double-is-a-string-result",
        ),
        pytest.param(
            {"status": 302, "headers": {"Location": PATH + "/elsewhere"}},
            TaskOutcome(error="States.Http.StatusCode.302", cause="HTTP 302 Found", status=302),
            id="302-not-followed",
        ),
        pytest.param(
            {"status": 404, "text": "no such path"},
            TaskOutcome(
                error="States.Http.StatusCode.404",
                cause="HTTP 404 Not Found: no such path",
                status=404,
            ),
            id="404",
        ),
        pytest.param(
            {"status": 500, "text": '{"error":"boom"}', "content_type": "application/json"},
            TaskOutcome(
                error="States.Http.StatusCode.500",
                cause='HTTP 500 Internal Server Error: {"error":"boom"}',
                status=500,
            ),
            id="500",
        ),
        pytest.param(
            {"status": 503, "headers": {"Retry-After": "120"}},
            TaskOutcome(
                error="States.Http.StatusCode.503",
                cause="HTTP 503 Service Unavailable",
                status=503,
                retry_after=120.0,
            ),
            id="503-retry-after",
        ),
        pytest.param(
            {"status": 429, "headers": {"Retry-After": "Tue, 14 Nov 2023 22:14:20 GMT"}},
            TaskOutcome(
                error="States.Http.StatusCode.429",
                cause="HTTP 429 Too Many Requests",
                status=429,
                retry_after=60.0,
            ),
            id="429-retry-after-date",
        ),
        pytest.param(
            {"status": 599, "text": "odd"},
            TaskOutcome(error="States.Http.StatusCode.599", cause="HTTP 599: odd", status=599),
            id="599-no-reason",
        ),
    ],
)
async def test_answer_to_outcome(
    serve: Callable[..., Awaitable[Server]],
    make_caller: Callable[..., TaskCaller],
    answer: dict[str, Any],
    expected: TaskOutcome,
) -> None:
    """2xx JSON is the result, empty 2xx is null, anything else an ASL error name."""
    server = await serve(lambda _: web.Response(**answer))
    assert expected == await make_caller().call(task(server.url))
    assert len(server.requests) == 1


async def test_a_compressed_answer_is_read_decompressed(
    serve: Callable[..., Awaitable[Server]], make_caller: Callable[..., TaskCaller]
) -> None:
    """A gzip-encoded result is the JSON it decompresses to."""
    body = gzip.compress(b'{"ok": true}')
    server = await serve(
        lambda _: web.Response(
            body=body, headers={"Content-Encoding": "gzip", "Content-Type": "application/json"}
        )
    )
    outcome = await make_caller().call(task(server.url))
    assert outcome == TaskOutcome(result={"ok": True}, status=200)


@pytest.mark.parametrize(
    ("body", "size"),
    [
        pytest.param('{"name": "Zo\u00eb"}', 16, id="utf8"),
        pytest.param("0.0", 3, id="number"),
        pytest.param("", 0, id="empty"),
    ],
)
async def test_a_result_carries_the_size_of_its_body(
    serve: Callable[..., Awaitable[Server]],
    make_caller: Callable[..., TaskCaller],
    body: str,
    size: int,
) -> None:
    """A 2xx answer's outcome says how many bytes its body held (a Lambda Invoke answer's
    Content-Length)."""
    server = await serve(lambda _: web.Response(text=body, content_type="application/json"))
    outcome = await make_caller().call(task(server.url))
    assert (outcome.ok, outcome.size) == (True, size)


async def test_cause_keeps_the_first_256_characters_of_the_body(
    serve: Callable[..., Awaitable[Server]], make_caller: Callable[..., TaskCaller]
) -> None:
    """A long error body is cut so that the cause stays short."""
    server = await serve(lambda _: web.Response(status=500, text="x" * 1000))
    outcome = await make_caller().call(task(server.url))
    assert outcome.cause == "HTTP 500 Internal Server Error: " + "x" * 256


async def test_oversized_result_exceeds_the_data_limit(
    serve: Callable[..., Awaitable[Server]], make_caller: Callable[..., TaskCaller]
) -> None:
    """A 2xx body larger than AWS's 256 KiB result quota fails with States.DataLimitExceeded."""
    big = json.dumps(["x" * MAX_RESULT_BYTES])
    server = await serve(lambda _: web.Response(text=big))
    outcome = await make_caller().call(task(server.url))
    assert (outcome.error, outcome.status) == ("States.DataLimitExceeded", 200)


async def test_a_result_of_exactly_the_limit_is_read(
    serve: Callable[..., Awaitable[Server]], make_caller: Callable[..., TaskCaller]
) -> None:
    """The limit is inclusive: a body of MAX_RESULT_BYTES is still a result."""
    text = json.dumps("x" * (MAX_RESULT_BYTES - 2))
    server = await serve(lambda _: web.Response(text=text))
    outcome = await make_caller().call(task(server.url))
    assert (outcome.ok, len(outcome.result)) == (True, MAX_RESULT_BYTES - 2)


# -- what goes wrong ------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("misbehave", "kind"),
    [
        pytest.param(reset, "ReadError", id="reset"),
        pytest.param(close_at_once, "RemoteProtocolError", id="closed-without-an-answer"),
        pytest.param(half_a_body, "RemoteProtocolError", id="closed-in-the-body"),
        pytest.param(not_http, "ReadError", id="not-http"),
    ],
)
async def test_a_broken_answer_is_a_socket_error(
    serve_raw: Callable[[Misbehave], Awaitable[RawServer]],
    make_caller: Callable[..., TaskCaller],
    misbehave: Misbehave,
    kind: str,
) -> None:
    """Resets, dropped connections and answers that are not HTTP are States.Http.Socket."""
    server = await serve_raw(misbehave)
    outcome = await make_caller().call(task(server.url))
    assert (outcome.error, outcome.status, outcome.result) == ("States.Http.Socket", None, None)
    assert outcome.cause is not None
    assert outcome.cause.startswith(f"{kind}: ")


async def test_nothing_listening_is_a_socket_error(make_caller: Callable[..., TaskCaller]) -> None:
    """A refused connection is States.Http.Socket."""
    outcome = await make_caller().call(task(f"http://127.0.0.1:{free_port()}{PATH}"))
    assert (outcome.error, outcome.status) == ("States.Http.Socket", None)
    assert outcome.cause is not None
    assert outcome.cause.startswith("ConnectError: ")


@pytest.mark.parametrize(
    "misbehave",
    [pytest.param(silence, id="no-answer"), pytest.param(stalled_body, id="stalled-body")],
)
async def test_an_answer_that_does_not_come_times_out(
    serve_raw: Callable[[Misbehave], Awaitable[RawServer]],
    make_caller: Callable[..., TaskCaller],
    misbehave: Misbehave,
) -> None:
    """No status line, or a body that stops, within timeout_seconds is States.Timeout."""
    server = await serve_raw(misbehave)
    started = time.monotonic()
    outcome = await make_caller().call(task(server.url, timeout_seconds=SHORT))
    assert (outcome.error, outcome.status) == ("States.Timeout", None)
    assert outcome.cause is not None
    assert outcome.cause.startswith(f"no answer within {SHORT:g} s")
    assert time.monotonic() - started < WAIT_SECONDS


async def test_whole_attempt_is_bounded_by_timeout_seconds(
    serve_raw: Callable[[Misbehave], Awaitable[RawServer]],
    make_caller: Callable[..., TaskCaller],
) -> None:
    """An answer that keeps coming, too slowly to end in time, is States.Timeout even though
    no single read waited long."""
    server = await serve_raw(trickle)
    started = time.monotonic()
    outcome = await make_caller().call(task(server.url, timeout_seconds=SHORT))
    assert outcome.error == "States.Timeout"
    assert outcome.cause == f"no answer within {SHORT:g} s (TimeoutError)"
    assert time.monotonic() - started < WAIT_SECONDS


async def test_a_connection_that_cannot_be_opened_in_time_is_a_connect_timeout(
    make_caller: Callable[..., TaskCaller], monkeypatch: pytest.MonkeyPatch
) -> None:
    """A host that does not complete the handshake (a full listen backlog) fails the call
    with States.Timeout once the connect timeout passes, before the call's own timeout."""
    monkeypatch.setattr(caller_module, "CONNECT_TIMEOUT_SECONDS", SHORT)
    with contextlib.ExitStack() as sockets:
        listener = sockets.enter_context(socket.socket())
        listener.bind(("127.0.0.1", 0))
        listener.listen(0)
        port = listener.getsockname()[1]
        for _ in range(8):  # fill the backlog: later handshakes get no answer
            filler = sockets.enter_context(socket.socket())
            filler.settimeout(0.0)
            with contextlib.suppress(BlockingIOError):
                filler.connect(("127.0.0.1", port))
        started = time.monotonic()
        outcome = await make_caller().call(task(f"http://127.0.0.1:{port}{PATH}"))
    assert outcome.error == "States.Timeout"
    assert outcome.cause is not None
    assert "ConnectTimeout" in outcome.cause
    assert time.monotonic() - started < WAIT_SECONDS - 1


async def test_waiting_for_a_pooled_connection_counts_against_the_timeout(
    serve_raw: Callable[[Misbehave], Awaitable[RawServer]],
    make_caller: Callable[..., TaskCaller],
) -> None:
    """With every connection of the pool busy, a call that gets none in time times out."""
    server = await serve_raw(silence)
    caller = make_caller(max_connections=1)
    first = asyncio.create_task(caller.call(task(server.url)))
    async with asyncio.timeout(WAIT_SECONDS):
        await server.arrived.wait()
    outcome = await caller.call(task(server.url, timeout_seconds=SHORT))
    first.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await first
    assert (outcome.error, server.requests) == ("States.Timeout", 1)


async def test_cancellation_propagates(
    serve_raw: Callable[[Misbehave], Awaitable[RawServer]],
    make_caller: Callable[..., TaskCaller],
) -> None:
    """Cancelling a call (daemon shutdown) is not turned into an outcome."""
    server = await serve_raw(silence)
    call = asyncio.create_task(make_caller().call(task(server.url)))
    async with asyncio.timeout(WAIT_SECONDS):
        await server.arrived.wait()
    call.cancel()
    with pytest.raises(asyncio.CancelledError):
        await call


@pytest.mark.parametrize(
    ("url", "payload", "cause_start"),
    [
        pytest.param(None, {"x": float("nan")}, "task input is not JSON", id="nan-payload"),
        pytest.param(None, {"x": {1, 2}}, "task input is not JSON", id="set-payload"),
        pytest.param("http://[::1/x", None, "cannot call", id="bad-url"),
        pytest.param("http://127.0.0.1:99999/x", None, "cannot call", id="bad-port"),
        pytest.param("ftp://127.0.0.1/x", None, "cannot call", id="not-http"),
        pytest.param("/recording/start", None, "cannot call", id="no-host"),
    ],
)
async def test_requests_that_cannot_be_made_are_runtime_errors(
    serve: Callable[..., Awaitable[Server]],
    make_caller: Callable[..., TaskCaller],
    url: str | None,
    payload: Any,
    cause_start: str,
) -> None:
    """Input that is not JSON or a URL that is not http(s) fails with States.Runtime, and
    nothing is sent."""
    server = await serve()
    outcome = await make_caller().call(task(url or server.url, payload))
    assert outcome.error == "States.Runtime"
    assert outcome.cause is not None
    assert outcome.cause.startswith(cause_start)
    assert server.requests == []


# -- the probe ------------------------------------------------------------------------------


async def test_the_probe_is_a_head_request_and_returns_its_status(
    serve: Callable[..., Awaitable[Server]], make_caller: Callable[..., TaskCaller]
) -> None:
    """probe sends HEAD (no body, no key) to the URL and reports the status, whatever it is."""
    server = await serve(lambda _: web.Response(status=405))
    status = await make_caller().probe(server.url, WAIT_SECONDS)
    (sent,) = server.requests
    assert (status, sent.method, sent.path, sent.body) == (405, "HEAD", PATH, b"")
    assert sent.headers["User-Agent"] == DEFAULT_USER_AGENT
    assert "Idempotency-Key" not in sent.headers


async def test_the_probe_of_an_unreachable_host_is_none(
    make_caller: Callable[..., TaskCaller],
) -> None:
    """Nothing listening: None."""
    assert await make_caller().probe(f"http://127.0.0.1:{free_port()}/", WAIT_SECONDS) is None


async def test_the_probe_of_a_silent_host_is_none_after_its_timeout(
    serve_raw: Callable[[Misbehave], Awaitable[RawServer]],
    make_caller: Callable[..., TaskCaller],
) -> None:
    """No answer within the timeout: None, in about that time."""
    server = await serve_raw(silence)
    started = time.monotonic()
    assert await make_caller().probe(server.url, SHORT) is None
    assert time.monotonic() - started < WAIT_SECONDS


# -- logs -----------------------------------------------------------------------------------


async def test_logs_the_result_as_events(
    serve: Callable[..., Awaitable[Server]], make_caller: Callable[..., TaskCaller]
) -> None:
    """A call logs task.call and task.result with url, status and duration, never the secret."""
    server = await serve()
    with capture_logs() as logs:
        await make_caller(signing_secret=SECRET).call(task(server.url))
    assert [entry["event"] for entry in logs] == ["task.call", "task.result"]
    result = logs[-1]
    assert (result["url"], result["key"], result["status"]) == (server.url, KEY, 200)
    assert result["duration_ms"] >= 0
    assert SECRET.removeprefix("whsec_") not in repr(logs)


async def test_logs_a_failure_with_its_error(
    serve: Callable[..., Awaitable[Server]], make_caller: Callable[..., TaskCaller]
) -> None:
    """A failed call logs task.failed with the ASL error name and status."""
    server = await serve(lambda _: web.Response(status=503))
    with capture_logs() as logs:
        await make_caller().call(task(server.url))
    failed = logs[-1]
    assert (failed["event"], failed["log_level"]) == ("task.failed", "warning")
    assert (failed["error"], failed["status"]) == ("States.Http.StatusCode.503", 503)


# -- without the network --------------------------------------------------------------------


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


def test_an_invalid_secret_is_refused_at_construction() -> None:
    """A bad signing secret fails when the caller is built, not at the first call."""
    with pytest.raises(ConfigError):
        TaskCaller(user_agent=DEFAULT_USER_AGENT, signing_secret="whsec_***")


@pytest.mark.parametrize("seconds", [0, -1.0], ids=["zero", "negative"])
def test_a_request_needs_a_positive_timeout(seconds: float) -> None:
    """A TaskRequest without a positive timeout is a programming error."""
    with pytest.raises(ValueError, match="timeout_seconds"):
        task("http://127.0.0.1/", timeout_seconds=seconds)


def test_an_outcome_is_a_result_or_an_error() -> None:
    """An outcome cannot carry both a result and an error."""
    with pytest.raises(ValueError, match="not both"):
        TaskOutcome(result={"ok": True}, error="States.TaskFailed")


@pytest.mark.parametrize(
    ("body", "error"),
    [
        pytest.param(
            '{"errorType": "Room.Busy", "errorMessage": "taken until 14:00"}',
            "Room.Busy",
            id="named",
        ),
        pytest.param('{"errorMessage": "no type"}', "Lambda.Unknown", id="unnamed"),
        pytest.param("not json", "Lambda.Unknown", id="not-json"),
    ],
)
async def test_a_function_error_answer_fails_the_task_with_its_error_type(
    serve: Callable[..., Awaitable[Server]],
    make_caller: Callable[..., TaskCaller],
    body: str,
    error: str,
) -> None:
    """A 200 with X-Amz-Function-Error is a function's error, as AWS Lambda reports one: the
    body's errorType is the error (Lambda.Unknown without one) and the body the cause."""
    headers = {"X-Amz-Function-Error": "Unhandled", "Content-Type": "application/json"}
    server = await serve(lambda _: web.Response(text=body, headers=headers))
    outcome = await make_caller().call(task(server.url))
    assert (outcome.error, outcome.cause, outcome.status) == (error, body, 200)


@pytest.mark.parametrize("status", [200, 400, 503])
async def test_a_named_error_answer_fails_the_task_with_that_error(
    serve: Callable[..., Awaitable[Server]], make_caller: Callable[..., TaskCaller], status: int
) -> None:
    """`Stepd-Error: <name>` on an answer of any status fails the task with that error, the
    body its cause (as an AWS service's error: its name, its message)."""
    message = "Requested resource not found (Service: DynamoDb, Status Code: 400)"
    headers = {"Stepd-Error": "DynamoDB.ResourceNotFoundException"}
    server = await serve(lambda _: web.Response(status=status, text=message, headers=headers))
    outcome = await make_caller().call(task(server.url))
    assert (outcome.error, outcome.cause, outcome.status) == (
        "DynamoDB.ResourceNotFoundException",
        message,
        status,
    )
