"""The control socket: `stepd reload` asks the running daemon to reload and waits for the result.

A unix stream socket, `control.sock` in $RUNTIME_DIRECTORY (/run/stepd under systemd), mode
0600; a peer must run as the daemon's own user or as root. One request per connection: the
client sends the line ``reload`` and the daemon answers with one JSON line once the new
configuration has been applied or rejected:

    {"ok": false, "findings": ["stepd.toml: http.timeout_seconds: ..."], "restart_needed": [],
     "status": "0 running, 0 timers armed, 0 calls in flight; reload rejected at 09:00:01Z"}

`systemctl reload` runs the client as ExecReload=, so the reload is synchronous: it returns
when the daemon has finished, and fails when the daemon kept its previous configuration.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import socket
import struct
from collections.abc import Awaitable, Callable
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import structlog

from stepd.errors import ControlError

log = structlog.get_logger("stepd.control")

SOCKET_NAME = "control.sock"
DEFAULT_SOCKET = Path("/run/stepd") / SOCKET_NAME
SOCKET_MODE = 0o600
REQUEST_TIMEOUT_SECONDS = 5.0  # a client has this long to send its request line
ANSWER_TIMEOUT_SECONDS = 50.0  # the client waits this long for a reload (below TimeoutStartSec)
MAX_REQUEST_BYTES = 256
RELOAD = "reload"
_PEERCRED = struct.Struct("3i")  # struct ucred: pid, uid, gid


@dataclass(frozen=True, kw_only=True)
class ReloadResult:
    """What a reload came to: applied (`ok`) or rejected with `findings`."""

    ok: bool
    findings: tuple[str, ...] = ()  # where and what, never a configured value
    restart_needed: tuple[str, ...] = ()  # changed settings that apply only after a restart
    status: str = ""  # the daemon's STATUS= line after the reload

    def to_line(self) -> bytes:
        return json.dumps(asdict(self)).encode() + b"\n"

    @classmethod
    def from_line(cls, line: bytes) -> ReloadResult:
        try:
            raw: Any = json.loads(line)
            return cls(
                ok=bool(raw["ok"]),
                findings=tuple(str(f) for f in raw.get("findings", ())),
                restart_needed=tuple(str(s) for s in raw.get("restart_needed", ())),
                status=str(raw.get("status", "")),
            )
        except (ValueError, TypeError, KeyError) as exc:
            raise ControlError(f"the daemon's answer is not understood: {exc}") from exc


def runtime_socket(environ: dict[str, str] | None = None) -> Path | None:
    """`control.sock` in the first directory of $RUNTIME_DIRECTORY, if that is set."""
    value = (os.environ if environ is None else environ).get("RUNTIME_DIRECTORY", "")
    first = value.split(":", 1)[0]
    return Path(first) / SOCKET_NAME if first else None


Reload = Callable[[], Awaitable[ReloadResult]]


class ControlServer:
    """Serves reload requests on a unix socket; `reload` does the work and gives the answer."""

    def __init__(self, path: Path, reload: Reload) -> None:
        self.path = path
        self._reload = reload
        self._server: asyncio.Server | None = None
        self._uid = os.getuid()

    async def start(self) -> None:
        self.path.unlink(missing_ok=True)
        self._server = await asyncio.start_unix_server(
            self._handle, path=str(self.path), limit=MAX_REQUEST_BYTES
        )
        self.path.chmod(SOCKET_MODE)
        log.info("control.listening", path=str(self.path))

    async def stop(self) -> None:
        if self._server is None:
            return
        self._server.close()
        await self._server.wait_closed()
        self._server = None
        with contextlib.suppress(OSError):
            self.path.unlink()

    def _peer_allowed(self, writer: asyncio.StreamWriter) -> bool:
        sock = writer.get_extra_info("socket")
        if sock is None:
            return False
        raw = sock.getsockopt(socket.SOL_SOCKET, socket.SO_PEERCRED, _PEERCRED.size)
        _, uid, _ = _PEERCRED.unpack(raw)
        return uid in {0, self._uid}

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            if not self._peer_allowed(writer):
                log.warning("control.refused", reason="peer user")
                return
            try:
                async with asyncio.timeout(REQUEST_TIMEOUT_SECONDS):
                    line = await reader.readline()
            except (TimeoutError, ValueError, ConnectionError):
                return
            command = line.decode("utf-8", errors="replace").strip()
            if command != RELOAD:
                log.warning("control.unknown_command", command=command[:MAX_REQUEST_BYTES])
                answer = ReloadResult(ok=False, findings=(f"unknown command {command!r}",))
            else:
                answer = await self._reload()
            writer.write(answer.to_line())
            with contextlib.suppress(ConnectionError):
                await writer.drain()
        finally:
            writer.close()
            with contextlib.suppress(ConnectionError):
                await writer.wait_closed()


def request_reload(path: Path, timeout: float = ANSWER_TIMEOUT_SECONDS) -> ReloadResult:
    """Ask the daemon listening on `path` to reload; block until it answers."""
    try:
        with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM | socket.SOCK_CLOEXEC) as sock:
            sock.settimeout(timeout)
            sock.connect(str(path))
            sock.sendall(f"{RELOAD}\n".encode())
            chunks: list[bytes] = []
            while chunk := sock.recv(65536):
                chunks.append(chunk)
    except TimeoutError as exc:
        raise ControlError(f"{path}: no answer from the daemon within {timeout:g} s") from exc
    except OSError as exc:
        raise ControlError(f"{path}: cannot reach the daemon: {exc.strerror or exc}") from exc
    if not chunks:
        raise ControlError(f"{path}: the daemon closed the connection without an answer")
    return ReloadResult.from_line(b"".join(chunks))
