"""The network under a Task call: one POST (a HEAD, or an HTTP Task's method) over aiohttp,
and its answer or a `TransportError`.

aiohttp's connection pool keeps up with hundreds of concurrent calls on loopback, and a call
goes straight from the caller's headers and body to the socket, with nothing built per call
that the call does not need, no cookies kept, no redirects followed and no proxy taken from
the environment. Failures are reported by kind:

    connect refused / unreachable   -> TransportError("ConnectError")       States.Http.Socket
    connect took too long           -> TransportTimeout("ConnectTimeout")    States.Timeout
    read took too long              -> TransportTimeout("ReadTimeout")       States.Timeout
    reset / closed / bad answer     -> TransportError("ReadError",
                                       "RemoteProtocolError")                States.Http.Socket
    not an http(s) URL              -> UnsupportedUrl                        States.Runtime
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Mapping

import aiohttp
from yarl import URL

from stepd.errors import TransportError, TransportTimeout, UnsupportedUrl
from stepd.tasks.http1 import Answer, Pool, Target, request_bytes, target_of

KEEPALIVE_SECONDS = 30.0
CHUNK_BYTES = 64 * 1024
FUNCTION_ERROR_HEADER = "X-Amz-Function-Error"  # AWS Lambda's mark of a function's error
NAMED_ERROR_HEADER = "Stepd-Error"  # the task server names the task's error itself
MAX_CACHED = 10_000  # parsed URLs and timeout settings kept for reuse


class AiohttpTransport:
    """Calls over one pooled aiohttp session of up to `max_connections` connections."""

    def __init__(self, *, max_connections: int) -> None:
        self._max_connections = max_connections
        self._session: aiohttp.ClientSession | None = None
        self._pool: Pool | None = None  # the lean path of a plain POST over http
        self._urls: dict[str, URL] = {}
        self._targets: dict[str, Target | None] = {}
        self._timeouts: dict[tuple[float, float], aiohttp.ClientTimeout] = {}

    def _client(self) -> aiohttp.ClientSession:
        if self._session is None:
            self._session = aiohttp.ClientSession(
                connector=aiohttp.TCPConnector(
                    limit=self._max_connections,
                    keepalive_timeout=KEEPALIVE_SECONDS,
                    ttl_dns_cache=None,
                ),
                auto_decompress=True,
                trust_env=False,
                cookie_jar=aiohttp.DummyCookieJar(),
                skip_auto_headers=("User-Agent",),
            )
        return self._session

    def _url(self, url: str) -> URL:
        parsed = self._urls.get(url)
        if parsed is None:
            try:
                parsed = URL(url)  # aiohttp refuses what is not http(s): UnsupportedUrl
            except ValueError as exc:
                raise UnsupportedUrl("InvalidURL", str(exc)) from exc
            if len(self._urls) < MAX_CACHED:
                self._urls[url] = parsed
        return parsed

    def _lean(self) -> Pool:
        if self._pool is None:
            self._pool = Pool(
                max_connections=self._max_connections, keepalive_seconds=KEEPALIVE_SECONDS
            )
        return self._pool

    def _target(self, url: str) -> Target | None:
        """Where the lean client sends a POST to `url`; None when it leaves it to aiohttp."""
        try:
            return self._targets[url]
        except KeyError:
            pass
        target = target_of(self._url(url))
        if len(self._targets) < MAX_CACHED:
            self._targets[url] = target
        return target

    def _timeout(self, connect: float, read: float) -> aiohttp.ClientTimeout:
        timeout = self._timeouts.get((connect, read))
        if timeout is None:
            # connect: waiting for a pooled connection and opening one; sock_read: between
            # two reads. The caller bounds the whole attempt.
            timeout = aiohttp.ClientTimeout(
                total=None, connect=connect + read, sock_connect=connect, sock_read=read
            )
            if len(self._timeouts) < MAX_CACHED:
                self._timeouts[(connect, read)] = timeout
        return timeout

    async def post(
        self,
        url: str,
        headers: Mapping[str, str],
        body: bytes,
        *,
        connect_timeout: float,
        read_timeout: float,
        max_bytes: int,
    ) -> Answer:
        """POST `body`; the answer's body is read up to `max_bytes` (decompressed)."""
        return await self.send(
            "POST",
            url,
            headers,
            body,
            connect_timeout=connect_timeout,
            read_timeout=read_timeout,
            max_bytes=max_bytes,
            keep_headers=False,
        )

    async def send(
        self,
        method: str,
        url: str,
        headers: Mapping[str, str],
        body: bytes | None,
        *,
        connect_timeout: float,
        read_timeout: float,
        max_bytes: int,
        keep_headers: bool = True,
        bounded: bool = False,
    ) -> Answer:
        """Make a `method` request; the answer's body is read up to `max_bytes`
        (decompressed), its headers kept when `keep_headers`. `bounded`: the caller bounds the
        whole attempt (the lean path then arms no read timer of its own)."""
        if method == "POST" and body is not None and not keep_headers:
            target = self._target(url)
            request = None if target is None else request_bytes(target, headers, body)
            if target is not None and request is not None:
                return await self._lean().post(
                    target,
                    request,
                    connect_timeout=connect_timeout,
                    read_timeout=read_timeout,
                    max_bytes=max_bytes,
                    bounded=bounded,
                )
        try:
            async with self._client().request(
                method,
                self._url(url),
                data=body,
                headers=headers,
                allow_redirects=False,
                timeout=self._timeout(connect_timeout, read_timeout),
                compress=None,
            ) as response:
                chunks = response.content.iter_chunked(CHUNK_BYTES)
                content, complete = await _read_at_most(chunks, max_bytes)
                return Answer(
                    status=response.status,
                    reason=response.reason or "",
                    retry_after=response.headers.get("Retry-After"),
                    body=content,
                    complete=complete,
                    headers=tuple(response.headers.items()) if keep_headers else (),
                    function_error=response.headers.get(FUNCTION_ERROR_HEADER),
                    named_error=response.headers.get(NAMED_ERROR_HEADER),
                )
        except (aiohttp.ClientError, TimeoutError) as exc:
            raise _failure(exc) from exc

    async def head(self, url: str, headers: Mapping[str, str], *, timeout: float) -> int:
        """The status of a HEAD request."""
        try:
            async with self._client().head(
                self._url(url),
                headers=headers,
                allow_redirects=False,
                timeout=self._timeout(timeout, timeout),
            ) as response:
                return response.status
        except (aiohttp.ClientError, TimeoutError) as exc:
            raise _failure(exc) from exc

    async def aclose(self) -> None:
        """Close pooled connections."""
        if self._pool is not None:
            self._pool.close()
            self._pool = None
        if self._session is not None:
            await self._session.close()
            self._session = None
            await asyncio.sleep(0)  # let aiohttp close its transports


async def _read_at_most(chunks: AsyncIterator[bytes], limit: int) -> tuple[bytes, bool]:
    """Up to `limit` bytes of a body, and whether that was all of it."""
    read: list[bytes] = []
    size = 0
    async for chunk in chunks:
        read.append(chunk)
        size += len(chunk)
        if size > limit:
            return b"".join(read)[:limit], False
    return b"".join(read), True


def _failure(exc: aiohttp.ClientError | TimeoutError) -> TransportError:
    if isinstance(exc, aiohttp.ConnectionTimeoutError):
        return TransportTimeout("ConnectTimeout", str(exc) or "connect timed out")
    if isinstance(exc, TimeoutError):  # aiohttp's read timeouts are TimeoutErrors too
        return TransportTimeout("ReadTimeout", str(exc) or "read timed out")
    detail = str(exc) or type(exc).__name__
    if isinstance(exc, aiohttp.InvalidURL | aiohttp.NonHttpUrlClientError):
        return UnsupportedUrl("UnsupportedProtocol", detail)
    if isinstance(exc, aiohttp.ClientConnectorError):
        return TransportError("ConnectError", detail)
    if isinstance(exc, aiohttp.ServerDisconnectedError | aiohttp.ClientPayloadError):
        return TransportError("RemoteProtocolError", detail)
    return TransportError("ReadError", detail)
