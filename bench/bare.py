"""The reference for the herd: a bare HTTP/1.1 keep-alive client on asyncio streams.

It sends the POSTs the daemon sends in a herd (same path, same JSON body, headers of the same
names and sizes) to the same stand-in classroom server, over as many keep-alive connections as
the daemon has call slots, each answer read before the next request on its connection. The
time it takes is what the machine needs for the calls alone: no store, no interpreter, no
client library.
"""

from __future__ import annotations

import asyncio
import time
from urllib.parse import urlsplit

from stepd import __version__


def _request(host: str, path: str, key: str, body: bytes) -> bytes:
    """The bytes of one POST, with the headers stepd's task caller sends."""
    headers = (
        f"POST {path} HTTP/1.1\r\n"
        f"Host: {host}\r\n"
        f"User-Agent: stepd/{__version__}\r\n"
        "Accept: application/json\r\n"
        "Accept-Encoding: gzip, deflate\r\n"
        "Content-Type: application/json\r\n"
        f"Idempotency-Key: {key}\r\n"
        f"webhook-id: {key}\r\n"
        f"webhook-timestamp: {int(time.time())}\r\n"
        f"Content-Length: {len(body)}\r\n\r\n"
    )
    return headers.encode() + body


async def _answer(reader: asyncio.StreamReader) -> int:
    """Read one answer (Content-Length bodies only, as the stand-in server sends); its
    status."""
    head = await reader.readuntil(b"\r\n\r\n")
    lines = head.split(b"\r\n")
    status = int(lines[0].split()[1])
    length = 0
    for line in lines[1:]:
        name, _, value = line.partition(b":")
        if name.strip().lower() == b"content-length":
            length = int(value)
    await reader.readexactly(length)
    return status


async def bare_posts(
    base_url: str, path: str, keys: list[str], body: bytes, *, connections: int
) -> float:
    """POST `body` to `path` once per key over `connections` keep-alive connections; the
    seconds from the first request to the last answer (connections opened beforehand)."""
    parts = urlsplit(base_url)
    host, port = parts.hostname or "127.0.0.1", parts.port or 80
    pairs = [await asyncio.open_connection(host, port) for _ in range(connections)]
    pending = iter(keys)
    netloc = parts.netloc

    async def client(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        for key in pending:
            writer.write(_request(netloc, path, key, body))
            if await _answer(reader) != 200:
                raise RuntimeError(f"the server refused the reference POST {key}")

    began = time.perf_counter()
    await asyncio.gather(*(client(r, w) for r, w in pairs))
    elapsed = time.perf_counter() - began
    for _, writer in pairs:
        writer.close()
    return elapsed
