"""A lean HTTP/1.1 keep-alive client for the plain Task call: one POST over plain http.

At the top of the hour the daemon makes thousands of the same small POST at once; aiohttp's
request machinery (request and response objects, header multidicts, stream readers, a timer
context per call) was a quarter of the event loop's time. Here a call is one `write()` of a
request built from the caller's headers and body, and its answer is parsed from the bytes
received by an asyncio Protocol, on a pool of keep-alive connections per host.

It takes only what it fully handles: POST, ``http://``, no user info in the URL, header names
and values that are plain Latin-1 without line breaks. Everything else (https, other methods,
an HTTP Task's request) goes through aiohttp (`stepd.tasks.transport`). Like that path it
keeps no cookies, follows no redirects, takes no proxy from the environment, and it does not
send a POST again on a connection that closed under it. Answers are read with Content-Length,
chunked transfer coding, or up to the connection's end; gzip and deflate bodies are
decompressed. Failures are the same `TransportError` kinds as the aiohttp path's.
"""

from __future__ import annotations

import asyncio
import zlib
from collections import deque
from collections.abc import Mapping
from dataclasses import dataclass
from typing import cast

from yarl import URL

from stepd.errors import TransportError, TransportTimeout

ACCEPT_ENCODING = "gzip, deflate"  # what aiohttp sends without brotli or zstd
MAX_HEAD_BYTES = 64 * 1024  # status line and headers of an answer
RAW_BODY_FACTOR = 4  # a compressed body is read up to this many times the caller's limit
_NO_BODY = frozenset({204, 304})


@dataclass(frozen=True, slots=True)
class Target:
    """Where a plain POST goes: the host and port to connect to and the request's first
    bytes (request line and Host header)."""

    host: str
    port: int
    head: bytes


def target_of(url: URL) -> Target | None:
    """The target of a POST to `url`, or None when the lean client does not take it."""
    if url.scheme != "http" or url.user is not None or url.password is not None:
        return None
    host, port = url.raw_host, url.port
    if not host or port is None:
        return None
    # Host as aiohttp sends it: the port only when it is not the default
    shown = f"[{host}]" if ":" in host else host
    host_header = shown if url.is_default_port() else f"{shown}:{port}"
    path = url.raw_path_qs or "/"
    if not _plain(path + host_header) or " " in path:
        return None
    line = f"POST {path} HTTP/1.1\r\nHost: {host_header}\r\n"
    return Target(host=host, port=port, head=line.encode("latin-1"))


def _plain(text: str) -> bool:
    """Latin-1 text without CR, LF or NUL (anything else goes through aiohttp)."""
    if text.isascii() and text.isprintable():
        return True
    try:
        text.encode("latin-1")
    except UnicodeEncodeError:
        return False
    return not any(c in text for c in "\r\n\0")


def request_bytes(target: Target, headers: Mapping[str, str], body: bytes) -> bytes | None:
    """The whole request, or None when a header is one the lean client does not send."""
    if not _plain("".join(headers) + "".join(headers.values())):
        return None
    lines = [f"{name}: {value}\r\n" for name, value in headers.items()]
    lines.append(f"Accept-Encoding: {ACCEPT_ENCODING}\r\nContent-Length: {len(body)}\r\n\r\n")
    return target.head + "".join(lines).encode("latin-1") + body


@dataclass(slots=True, kw_only=True)
class Answer:
    """What the server answered: its status, and the body up to the caller's limit (the
    lean client's parse of it, or the aiohttp path's, `stepd.tasks.transport`)."""

    status: int
    reason: str
    retry_after: str | None  # the Retry-After header, as sent
    body: bytes
    complete: bool  # False when the body was longer than the limit and was cut there
    keep_alive: bool = False  # the lean client may send the next request on the connection
    headers: tuple[tuple[str, str], ...] = ()  # every response header, as sent (aiohttp only)
    function_error: str | None = None  # the X-Amz-Function-Error header, as sent
    named_error: str | None = None  # the Stepd-Error header, as sent


class _Connection(asyncio.Protocol):
    """One keep-alive connection; at most one request on it at a time."""

    def __init__(self, pool: Pool, key: tuple[str, int]) -> None:
        self._pool = pool
        self.key = key
        self.transport: asyncio.Transport | None = None
        self.closed = False
        self.idle_since = 0.0
        self._buffer = bytearray()
        self._waiter: asyncio.Future[Answer] | None = None
        self._limit = 0
        self._timer: asyncio.TimerHandle | None = None
        self._read_timeout = 0.0
        self._last_read = 0.0
        self._eof = False

    # -- asyncio.Protocol ---------------------------------------------------------------

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        # a stream transport (uvloop's are not asyncio.Transport subclasses)
        self.transport = cast("asyncio.Transport", transport)

    def data_received(self, data: bytes) -> None:
        self._buffer += data
        if self._waiter is None:
            return
        self._last_read = self._pool.loop.time()
        self._try_parse()

    def eof_received(self) -> bool:
        self._eof = True
        self.closed = True
        if self._waiter is not None:
            self._try_parse()
        return False  # close the transport

    def connection_lost(self, exc: Exception | None) -> None:
        self.closed = True
        self._eof = True
        if self._waiter is not None and not self._waiter.done():
            self._try_parse()
            if not self._waiter.done():
                if exc is not None:
                    self._fail(TransportError("ReadError", str(exc) or type(exc).__name__))
                else:
                    self._fail(TransportError("RemoteProtocolError", self._disconnected()))
        self._pool.lost(self)

    # -- one exchange -------------------------------------------------------------------

    async def exchange(self, request: bytes, limit: int, read_timeout: float | None) -> Answer:
        """Send `request`, read the answer; `read_timeout` None: the caller bounds it."""
        loop = self._pool.loop
        waiter = self._waiter = loop.create_future()
        self._limit = limit
        if read_timeout is not None:
            self._read_timeout = read_timeout
            self._last_read = loop.time()
            self._timer = loop.call_at(self._last_read + read_timeout, self._check_timeout)
        assert self.transport is not None
        self.transport.write(request)
        try:
            reply: Answer = await waiter
        finally:
            if self._timer is not None:
                self._timer.cancel()
            self._timer = None
            self._waiter = None
        return reply

    def _check_timeout(self) -> None:
        """sock_read as aiohttp has it: too long since the last bytes came."""
        waiter = self._waiter
        if waiter is None or waiter.done():
            return
        due = self._last_read + self._read_timeout
        now = self._pool.loop.time()
        if now < due:
            self._timer = self._pool.loop.call_at(due, self._check_timeout)
            return
        self._fail(TransportTimeout("ReadTimeout", "read timed out"))

    def _fail(self, error: TransportError) -> None:
        waiter = self._waiter
        if waiter is not None and not waiter.done():
            waiter.set_exception(error)
        self.close()

    def _disconnected(self) -> str:
        if self._buffer:
            return "Response payload is not completed"
        return "Server disconnected"

    @property
    def unasked(self) -> bool:
        """Bytes came while no request was waiting: the connection cannot be trusted."""
        return bool(self._buffer)

    def close(self) -> None:
        self.closed = True
        if self.transport is not None:
            self.transport.close()

    def _try_parse(self) -> None:
        try:
            reply = self._parse()
        except TransportError as exc:
            self._fail(exc)
            return
        if reply is None:
            return
        waiter = self._waiter
        if waiter is not None and not waiter.done():
            waiter.set_result(reply)

    def _parse(self) -> Answer | None:
        """The answer in the buffer, once all of it (or all the caller reads) is in."""
        buffer = self._buffer
        end = buffer.find(b"\r\n\r\n")
        if end < 0:
            if len(buffer) > MAX_HEAD_BYTES:
                raise TransportError("ReadError", "the answer's headers are too long")
            if self._eof and buffer:
                raise TransportError("ReadError", "the connection closed in the answer's head")
            return None
        head = _head(bytes(buffer[:end]).decode("latin-1"))
        if 100 <= head.status < 200:  # an interim answer: the real one follows
            del buffer[: end + 4]
            return self._parse()
        identity = head.encoding in {"", "identity"}
        framed = self._body(
            head, end + 4, self._limit if identity else self._limit * RAW_BODY_FACTOR
        )
        if framed is None:
            return None
        body, complete, used = framed
        keep_alive = head.keep_alive and complete  # else the rest is still on its way
        del buffer[:used]
        if buffer:
            keep_alive = False  # more than one answer to one request
        if not identity and complete:
            body, complete = _decompress(body, head.encoding, self._limit)
        elif len(body) > self._limit:
            body, complete = body[: self._limit], False
        return Answer(
            status=head.status,
            reason=head.reason,
            retry_after=head.retry_after,
            body=body,
            complete=complete,
            keep_alive=keep_alive and not self._eof,
            function_error=head.function_error,
            named_error=head.named_error,
        )

    def _body(self, head: _Head, start: int, limit: int) -> tuple[bytes, bool, int] | None:
        """(body, whether all of it, bytes of the buffer used), or None until it is in."""
        buffer = self._buffer
        if head.status in _NO_BODY:
            return b"", True, start
        if head.chunked:
            framed = _chunked(buffer, start, limit)
        elif head.length is not None:
            have = len(buffer) - start
            framed = None
            if have >= head.length or have > limit:
                used = start + min(head.length, limit + 1)
                framed = bytes(buffer[start:used]), head.length <= limit, used
        else:  # the body ends with the connection
            head.keep_alive = False
            have = len(buffer) - start
            framed = None
            if self._eof or have > limit:
                framed = bytes(buffer[start : start + limit + 1]), have <= limit, len(buffer)
        if framed is None and self._eof and (head.chunked or head.length is not None):
            raise TransportError("RemoteProtocolError", "Response payload is not completed")
        return framed


@dataclass(slots=True)
class _Head:
    status: int
    reason: str
    keep_alive: bool
    length: int | None = None
    chunked: bool = False
    encoding: str = ""
    retry_after: str | None = None
    function_error: str | None = None
    named_error: str | None = None


# headers kept as sent, by the _Head field that keeps them
_KEPT = {
    "retry-after": "retry_after",
    "x-amz-function-error": "function_error",
    "stepd-error": "named_error",
}


def _head(text: str) -> _Head:
    """The status line and the headers that frame an answer."""
    lines = text.split("\r\n")
    status, reason, version = _status_line(lines[0])
    head = _Head(status=status, reason=reason, keep_alive=version == "HTTP/1.1")
    for line in lines[1:]:
        name, sep, value = line.partition(":")
        if not sep:
            raise TransportError("ReadError", f"a header line without a colon: {line[:40]!r}")
        name = name.strip().lower()
        value = value.strip()
        if name == "content-length":
            if not value.isdigit():
                raise TransportError("ReadError", f"a Content-Length of {value[:20]!r}")
            head.length = int(value)
        elif name == "transfer-encoding":
            head.chunked = value.lower().endswith("chunked")
        elif name == "connection":
            tokens = {t.strip().lower() for t in value.split(",")}
            head.keep_alive = "close" not in tokens and (head.keep_alive or "keep-alive" in tokens)
        elif name == "content-encoding":
            head.encoding = value.lower()
        elif name in _KEPT:
            setattr(head, _KEPT[name], value)
    return head


def _status_line(line: str) -> tuple[int, str, str]:
    version, _, rest = line.partition(" ")
    code, _, reason = rest.partition(" ")
    if not version.startswith("HTTP/1.") or len(code) != 3 or not code.isdigit():
        raise TransportError("ReadError", f"not an HTTP answer: {line[:40]!r}")
    return int(code), reason.strip(), version


def _chunked(buffer: bytearray, start: int, limit: int) -> tuple[bytes, bool, int] | None:
    """A chunked body from `start`: (body, complete, bytes used), or None when not all in."""
    parts: list[bytes] = []
    size = 0
    at = start
    while True:
        line_end = buffer.find(b"\r\n", at)
        if line_end < 0:
            return None
        text = bytes(buffer[at:line_end]).split(b";", 1)[0].strip()
        try:
            chunk = int(text, 16)
        except ValueError:
            raise TransportError("ReadError", f"a chunk size of {text[:20]!r}") from None
        at = line_end + 2
        if chunk == 0:
            trailer_end = buffer.find(b"\r\n", at)
            while trailer_end > at:  # trailer fields, ignored
                at = trailer_end + 2
                trailer_end = buffer.find(b"\r\n", at)
            if trailer_end < 0:
                return None
            return b"".join(parts), True, trailer_end + 2
        if len(buffer) < at + chunk + 2:
            if size + len(buffer) - at > limit:
                parts.append(bytes(buffer[at:]))
                return b"".join(parts), False, len(buffer)
            return None
        parts.append(bytes(buffer[at : at + chunk]))
        size += chunk
        at += chunk + 2
        if size > limit:
            return b"".join(parts), False, at


def _decompress(body: bytes, encoding: str, limit: int) -> tuple[bytes, bool]:
    if encoding in {"gzip", "x-gzip"}:
        inflater = zlib.decompressobj(16 + zlib.MAX_WBITS)
    elif encoding == "deflate":
        inflater = zlib.decompressobj(zlib.MAX_WBITS if body[:1] == b"\x78" else -zlib.MAX_WBITS)
    else:  # an encoding not asked for: the body as it came
        return (body, True) if len(body) <= limit else (body[:limit], False)
    try:
        plain = inflater.decompress(body, limit + 1)
    except zlib.error as exc:
        raise TransportError("RemoteProtocolError", f"cannot decompress the body: {exc}") from None
    if len(plain) > limit:
        return plain[:limit], False
    return plain, True


class Pool:
    """Keep-alive connections per (host, port), at most `max_connections` open at once."""

    def __init__(self, *, max_connections: int, keepalive_seconds: float) -> None:
        self._max = max_connections
        self._keepalive = keepalive_seconds
        self._idle: dict[tuple[str, int], deque[_Connection]] = {}
        self._open = 0
        self._waiters: deque[asyncio.Future[None]] = deque()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._sweep: asyncio.TimerHandle | None = None
        self._closed = False

    @property
    def loop(self) -> asyncio.AbstractEventLoop:
        assert self._loop is not None
        return self._loop

    async def post(
        self,
        target: Target,
        request: bytes,
        *,
        connect_timeout: float,
        read_timeout: float,
        max_bytes: int,
        bounded: bool = False,
    ) -> Answer:
        """Send `request` to `target` on a pooled connection and read the answer. `bounded`:
        the caller bounds the whole attempt itself, so no read timer is armed here."""
        if self._loop is None:
            self._loop = asyncio.get_running_loop()
        connection = self._pooled(target)
        if connection is None:
            connection = await self._connect(target, connect_timeout, read_timeout)
        try:
            reply = await connection.exchange(request, max_bytes, None if bounded else read_timeout)
        except BaseException:
            connection.close()  # an answer may still come: the connection cannot be reused
            raise
        if reply.keep_alive and not connection.closed and not self._closed:
            connection.idle_since = self.loop.time()
            self._idle.setdefault((target.host, target.port), deque()).append(connection)
            self._wake()
            self._arm_sweep()
        else:
            connection.close()
        return reply

    def _pooled(self, target: Target) -> _Connection | None:
        idle = self._idle.get((target.host, target.port))
        if not idle:
            return None
        oldest = self.loop.time() - self._keepalive
        while idle:
            connection = idle.pop()  # the most recently used: the least likely to be closed
            if not connection.closed and not connection.unasked and connection.idle_since >= oldest:
                return connection
            connection.close()
        return None

    async def _connect(
        self, target: Target, connect_timeout: float, read_timeout: float
    ) -> _Connection:
        if self._open >= self._max:
            async with asyncio.timeout(connect_timeout + read_timeout):
                while self._open >= self._max:
                    if not self._close_one_idle():
                        waiter = self.loop.create_future()
                        self._waiters.append(waiter)
                        try:
                            await waiter
                        finally:
                            if waiter in self._waiters:
                                self._waiters.remove(waiter)
                    pooled = self._pooled(target)
                    if pooled is not None:
                        return pooled
        self._open += 1
        key = (target.host, target.port)
        try:
            async with asyncio.timeout(connect_timeout):
                _, protocol = await self.loop.create_connection(
                    lambda: _Connection(self, key), target.host, target.port
                )
        except TimeoutError:
            self._open -= 1
            self._wake()
            raise TransportTimeout(
                "ConnectTimeout", f"connecting to {target.host}:{target.port} timed out"
            ) from None
        except OSError as exc:
            self._open -= 1
            self._wake()
            raise TransportError(
                "ConnectError", f"Cannot connect to host {target.host}:{target.port} ({exc})"
            ) from exc
        except BaseException:
            self._open -= 1
            self._wake()
            raise
        return protocol

    def _close_one_idle(self) -> bool:
        for idle in self._idle.values():
            if idle:
                idle.popleft().close()
                return True
        return False

    def lost(self, connection: _Connection) -> None:
        """`connection` is closed (by either side)."""
        self._open -= 1
        idle = self._idle.get(connection.key)
        if idle is not None and connection in idle:
            idle.remove(connection)
        self._wake()

    def _wake(self) -> None:
        while self._waiters:
            waiter = self._waiters.popleft()
            if not waiter.done():
                waiter.set_result(None)
                return

    def _arm_sweep(self) -> None:
        if self._sweep is None:
            self._sweep = self.loop.call_later(self._keepalive, self._close_expired)

    def _close_expired(self) -> None:
        """Close connections idle longer than the keep-alive time."""
        self._sweep = None
        oldest = self.loop.time() - self._keepalive
        left = False
        for idle in self._idle.values():
            for connection in [c for c in idle if c.idle_since < oldest]:
                idle.remove(connection)
                connection.close()
            left = left or bool(idle)
        if left:
            self._arm_sweep()

    def close(self) -> None:
        """Close every idle connection; those in use close when their exchange ends."""
        self._closed = True
        if self._sweep is not None:
            self._sweep.cancel()
            self._sweep = None
        for idle in self._idle.values():
            while idle:
                idle.pop().close()
        self._idle.clear()
