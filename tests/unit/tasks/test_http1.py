"""The lean HTTP/1.1 path of a plain Task call, against raw servers on loopback that answer
with each framing HTTP/1.1 allows and close connections the ways servers do."""

from __future__ import annotations

import asyncio
import zlib
from collections.abc import AsyncIterator, Awaitable, Callable

import pytest

from stepd.tasks.caller import DEFAULT_USER_AGENT, TaskCaller, TaskOutcome, TaskRequest

WAIT_SECONDS = 5.0

# what the server writes for the n-th request on a connection (0-based); None: close it
Answer = Callable[[int], bytes | None]


class Raw:
    """A TCP server that reads whole requests (Content-Length bodies) and writes `answer`'s
    bytes for each; it counts connections and requests."""

    def __init__(self, answer: Answer) -> None:
        self.answer = answer
        self.connections = 0
        self.requests: list[bytes] = []
        self.server: asyncio.Server | None = None
        self.writers: list[asyncio.StreamWriter] = []

    async def start(self) -> str:
        self.server = await asyncio.start_server(self._serve, "127.0.0.1", 0)
        port = self.server.sockets[0].getsockname()[1]
        return f"http://127.0.0.1:{port}/call"

    async def stop(self) -> None:
        for writer in self.writers:
            writer.close()
        if self.server is not None:
            self.server.close()
            await self.server.wait_closed()

    async def close_idle(self) -> None:
        """Close every connection, as a server does with idle keep-alive connections."""
        for writer in self.writers:
            writer.close()
        await asyncio.sleep(0.05)

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.connections += 1
        self.writers.append(writer)
        n = 0
        try:
            while True:
                head = await reader.readuntil(b"\r\n\r\n")
                length = next(
                    int(line.split(b":", 1)[1])
                    for line in head.split(b"\r\n")
                    if line.lower().startswith(b"content-length:")
                )
                self.requests.append(head + await reader.readexactly(length))
                data = self.answer(n)
                n += 1
                if data is None:
                    writer.close()
                    return
                writer.write(data)
                await writer.drain()
        except (ConnectionError, asyncio.IncompleteReadError):
            writer.close()


def answer(body: bytes, *extra: str, status: str = "200 OK") -> bytes:
    headers = "".join(f"{line}\r\n" for line in extra)
    return f"HTTP/1.1 {status}\r\n{headers}Content-Length: {len(body)}\r\n\r\n".encode() + body


@pytest.fixture
async def serve() -> AsyncIterator[Callable[[Answer], Awaitable[tuple[Raw, str]]]]:
    servers: list[Raw] = []

    async def start(respond: Answer) -> tuple[Raw, str]:
        server = Raw(respond)
        servers.append(server)
        return server, await server.start()

    yield start
    for server in servers:
        await server.stop()


@pytest.fixture
async def caller() -> AsyncIterator[TaskCaller]:
    async with TaskCaller(user_agent=DEFAULT_USER_AGENT) as made:
        yield made


def task(url: str, n: int = 0) -> TaskRequest:
    return TaskRequest(
        url=url, payload={"n": n}, idempotency_key=f"m/e/{n}", timeout_seconds=WAIT_SECONDS
    )


async def test_calls_one_after_another_share_one_connection(
    serve: Callable[[Answer], Awaitable[tuple[Raw, str]]], caller: TaskCaller
) -> None:
    server, url = await serve(lambda n: answer(b'{"n": %d}' % n))
    outcomes = [await caller.call(task(url, n)) for n in range(3)]
    assert [o.result for o in outcomes] == [{"n": 0}, {"n": 1}, {"n": 2}]
    assert (server.connections, len(server.requests)) == (1, 3)


async def test_a_connection_the_server_closed_while_idle_is_not_used_again(
    serve: Callable[[Answer], Awaitable[tuple[Raw, str]]], caller: TaskCaller
) -> None:
    server, url = await serve(lambda _: answer(b"{}"))
    assert (await caller.call(task(url))).ok
    await server.close_idle()
    assert (await caller.call(task(url, 1))).ok
    assert (server.connections, len(server.requests)) == (2, 2)


async def test_connection_close_in_the_answer_opens_a_new_connection_next_time(
    serve: Callable[[Answer], Awaitable[tuple[Raw, str]]], caller: TaskCaller
) -> None:
    server, url = await serve(lambda _: answer(b"{}", "Connection: close"))
    for n in range(2):
        assert (await caller.call(task(url, n))).ok
    assert server.connections == 2


async def test_a_chunked_answer_is_read_whole(
    serve: Callable[[Answer], Awaitable[tuple[Raw, str]]], caller: TaskCaller
) -> None:
    chunked = (
        b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n"
        b'4\r\n{"a"\r\n5;ext=1\r\n: [1,\r\n3\r\n 2]\r\n1\r\n}\r\n0\r\n\r\n'
    )
    server, url = await serve(lambda _: chunked)
    outcomes = [await caller.call(task(url, n)) for n in range(2)]
    assert [o.result for o in outcomes] == [{"a": [1, 2]}, {"a": [1, 2]}]
    assert server.connections == 1


async def test_an_answer_that_ends_with_the_connection_is_read_whole(
    serve: Callable[[Answer], Awaitable[tuple[Raw, str]]], caller: TaskCaller
) -> None:
    def until_close(_: int) -> bytes:
        return b"HTTP/1.1 200 OK\r\nConnection: close\r\n\r\n[1, 2, 3]"

    server, url = await serve(until_close)
    task_ = asyncio.create_task(caller.call(task(url)))
    await asyncio.sleep(0.1)
    await server.close_idle()
    async with asyncio.timeout(WAIT_SECONDS):
        outcome = await task_
    assert outcome == TaskOutcome(result=[1, 2, 3], status=200)


async def test_an_interim_answer_is_skipped(
    serve: Callable[[Answer], Awaitable[tuple[Raw, str]]], caller: TaskCaller
) -> None:
    _, url = await serve(lambda _: b"HTTP/1.1 100 Continue\r\n\r\n" + answer(b'"done"'))
    assert await caller.call(task(url)) == TaskOutcome(result="done", status=200)


@pytest.mark.parametrize("wbits", [zlib.MAX_WBITS, -zlib.MAX_WBITS], ids=["zlib", "raw"])
async def test_a_deflate_answer_is_read_decompressed(
    serve: Callable[[Answer], Awaitable[tuple[Raw, str]]], caller: TaskCaller, wbits: int
) -> None:
    packer = zlib.compressobj(wbits=wbits)
    body = packer.compress(b'{"ok": true}') + packer.flush()
    _, url = await serve(lambda _: answer(body, "Content-Encoding: deflate"))
    assert await caller.call(task(url)) == TaskOutcome(result={"ok": True}, status=200)


async def test_a_503_with_retry_after_keeps_the_connection(
    serve: Callable[[Answer], Awaitable[tuple[Raw, str]]], caller: TaskCaller
) -> None:
    server, url = await serve(
        lambda n: (
            answer(b"busy", "Retry-After: 7", status="503 Service Unavailable")
            if n == 0
            else answer(b"{}")
        )
    )
    first = await caller.call(task(url))
    assert (first.error, first.retry_after, first.cause) == (
        "States.Http.StatusCode.503",
        7.0,
        "HTTP 503 Service Unavailable: busy",
    )
    assert (await caller.call(task(url, 1))).ok
    assert server.connections == 1


async def test_concurrent_calls_beyond_the_pool_wait_for_a_connection(
    serve: Callable[[Answer], Awaitable[tuple[Raw, str]]],
) -> None:
    server, url = await serve(lambda n: answer(b"%d" % n))
    async with TaskCaller(user_agent=DEFAULT_USER_AGENT, max_connections=2) as caller:
        outcomes = await asyncio.gather(*(caller.call(task(url, n)) for n in range(10)))
    assert all(o.ok for o in outcomes)
    assert (server.connections, len(server.requests)) == (2, 10)


async def test_a_header_with_a_line_break_is_never_sent_raw(
    serve: Callable[[Answer], Awaitable[tuple[Raw, str]]],
) -> None:
    """A value the lean path cannot send as it is goes to aiohttp, which refuses to send
    it: no header is ever injected."""
    server, url = await serve(lambda _: answer(b"{}"))
    async with TaskCaller(user_agent="stepd\r\nX-Injected: 1") as caller:
        with pytest.raises(ValueError, match="header injection"):
            await caller.call(task(url))
    assert server.requests == []
