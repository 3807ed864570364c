"""The tests' PostgreSQL: the throwaway server of stepd.pgserver, and a relay that cuts one
node off from it."""

from __future__ import annotations

import asyncio
from typing import Any

from stepd.pgserver import PostgresServer, find_bin, remove_server, start_server
from stepd.testing import free_port

__all__ = ["Blackhole", "PostgresServer", "find_bin", "remove_server", "start_server"]


class Blackhole:
    """A TCP relay between one node and the database that the test can cut: while cut, bytes
    are neither passed on nor refused (open connections hang silently, as behind a firewall
    rule that drops packets, and new ones are not answered); healed, they flow again. Runs
    in the test's event loop."""

    def __init__(self, port: int) -> None:
        self.target = port
        self.port = free_port()
        self._open = asyncio.Event()
        self._open.set()
        self._server: asyncio.Server | None = None

    def url(self, url: str) -> str:
        """`url` (of the database) through this relay."""
        return url.replace(f":{self.target}/", f":{self.port}/")

    async def start(self) -> None:
        self._server = await asyncio.start_server(self._relay, "127.0.0.1", self.port)

    async def stop(self) -> None:
        if self._server is not None:
            self._server.close()
            self._server = None

    def cut(self) -> None:
        self._open.clear()

    def heal(self) -> None:
        self._open.set()

    async def _relay(self, client_in: Any, client_out: Any) -> None:
        await self._open.wait()
        try:
            server_in, server_out = await asyncio.open_connection("127.0.0.1", self.target)
        except OSError:
            client_out.close()
            return
        await asyncio.gather(self._pipe(client_in, server_out), self._pipe(server_in, client_out))

    async def _pipe(self, reader: Any, writer: Any) -> None:
        try:
            while data := await reader.read(65536):
                await self._open.wait()
                writer.write(data)
                await writer.drain()
        except (ConnectionError, OSError):
            pass
        finally:
            writer.close()
