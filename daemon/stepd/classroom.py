"""A stand-in classroom server for `stepd demo`, integration tests and benchmarks.

It accepts a JSON POST on any path and answers ``200 {"ok": true, "path": …,
"received_at": …}``. Every request is kept as a `Record` (and, with `log_path`, appended to a
JSON-lines file and fsynced before the answer is sent, so another process can read it even if
the daemon under test is killed). A repeated ``Idempotency-Key`` gets the first answer again
and its record is flagged ``duplicate``.

Faults are scripted per path with `ClassroomServer.fail_next`: each one waits `delay`
seconds, then either answers `status` (with ``Retry-After``) or drops the connection. A fault
with a 2xx status is processed like any request (it counts for deduplication) and then
answered late or dropped: the "done, but the answer was lost" case.

Run on its own: ``python -m stepd.classroom --port 8080 --log requests.jsonl``; the base URL
is the first line on stdout; SIGTERM or SIGINT stops it. A signing secret is read from the
environment variable named by SECRET_ENV; with one, signatures are verified, recorded as
``signature_ok`` and a bad one is answered 401.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import math
import os
import signal
import socket
import sys
import time
from collections import deque
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from aiohttp import web

from stepd.tasks.caller import IDEMPOTENCY_KEY_HEADER
from stepd.tasks.endpoints import DEFAULT_PORT
from stepd.tasks.signing import verify

if TYPE_CHECKING:
    from collections.abc import Sequence

DEFAULT_HOST = "127.0.0.1"
SHUTDOWN_TIMEOUT_SECONDS = 0.5  # in-flight (delayed) answers are cancelled after this on stop
SECRET_ENV = "STEPD_CLASSROOM_SECRET"  # noqa: S105 - the variable's name, not a secret


@dataclass(frozen=True, kw_only=True)
class Fault:
    """One canned misbehaviour for the next request on a path."""

    status: int = 503
    retry_after: float | None = None  # seconds; sent as a whole number, rounded up
    delay: float = 0.0  # seconds before answering (or dropping)
    drop: bool = False  # close the connection instead of answering

    @property
    def processes(self) -> bool:
        """A 2xx fault handles the request normally; only its answer misbehaves."""
        return 200 <= self.status < 300


@dataclass(frozen=True, kw_only=True)
class Record:
    """One request as the server received it."""

    received_at: float  # wall clock, unix seconds
    received_monotonic: float  # time.monotonic() of this process
    method: str
    path: str
    headers: dict[str, str]  # names lower-cased
    body: Any  # the JSON body; None when it was not JSON
    idempotency_key: str | None
    duplicate: bool = False  # the key was answered before: the first answer was repeated
    payload_mismatch: bool = False  # a duplicate whose body differs from the first one
    signature_ok: bool | None = None  # None when the server has no signing secret
    status: int | None = None  # the status answered; None when the connection was dropped
    delay: float = 0.0  # seconds the answer was held back by a fault
    remote: str | None = None  # the sender's address (tells apart nodes on several addresses)


@dataclass(frozen=True, kw_only=True)
class _Answer:
    status: int
    body: dict[str, Any]
    request_body: Any


class ClassroomServer:
    """An aiohttp server on `host`:`port` (0 picks a free port) that records what it gets."""

    def __init__(
        self,
        *,
        host: str = DEFAULT_HOST,
        port: int = 0,
        log_path: Path | None = None,
        signing_secret: str | None = None,
    ) -> None:
        self.records: list[Record] = []
        self._host = host
        self._port = port
        self._log_path = log_path
        self._secret = signing_secret
        self._faults: dict[str, deque[Fault]] = {}
        self._answers: dict[str, _Answer] = {}
        self._recorded = asyncio.Condition()
        self._runner: web.AppRunner | None = None
        self._base_url: str | None = None

    @property
    def base_url(self) -> str:
        """``http://host:port`` once started."""
        if self._base_url is None:
            raise RuntimeError("the classroom server is not started")
        return self._base_url

    async def start(self) -> str:
        """Listen and return the base URL."""
        if self._runner is not None:
            raise RuntimeError("the classroom server is already started")
        app = web.Application()
        app.router.add_route("POST", "/{path:.*}", self._handle)
        runner = web.AppRunner(
            app,
            access_log=None,
            handler_cancellation=True,
            shutdown_timeout=SHUTDOWN_TIMEOUT_SECONDS,
        )
        await runner.setup()
        family = socket.AF_INET6 if ":" in self._host else socket.AF_INET
        sock = socket.create_server((self._host, self._port), family=family)
        try:
            await web.SockSite(runner, sock).start()
        except BaseException:
            sock.close()
            await runner.cleanup()
            raise
        self._runner = runner
        port = sock.getsockname()[1]
        host = f"[{self._host}]" if family == socket.AF_INET6 else self._host
        self._base_url = f"http://{host}:{port}"
        return self._base_url

    async def stop(self) -> None:
        """Stop listening; answers still held back by a fault are cancelled."""
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None

    def fail_next(
        self,
        path: str,
        *,
        status: int = 503,
        times: int = 1,
        retry_after: float | None = None,
        delay: float = 0.0,
        drop: bool = False,
    ) -> None:
        """Misbehave on the next `times` requests to `path` (queued after earlier faults)."""
        fault = Fault(status=status, retry_after=retry_after, delay=delay, drop=drop)
        self._faults.setdefault(path, deque()).extend([fault] * times)

    async def wait_for(self, count: int) -> list[Record]:
        """The records once there are at least `count`; bound it with ``asyncio.timeout``."""
        async with self._recorded:
            await self._recorded.wait_for(lambda: len(self.records) >= count)
        return list(self.records)

    async def _handle(self, request: web.Request) -> web.StreamResponse:
        received_at = time.time()
        received_monotonic = time.monotonic()
        raw = await request.read()
        headers = {name.lower(): value for name, value in request.headers.items()}
        key = _idempotency_key(headers)
        body = _json_or_none(raw)
        signature_ok = (
            None if self._secret is None else verify(self._secret, headers, raw, now=received_at)
        )
        fault = self._next_fault(request.path)
        duplicate = payload_mismatch = False
        extra_headers: dict[str, str] = {}
        if fault is not None and not fault.processes:
            answer = _Answer(
                status=fault.status, body={"ok": False, "fault": True}, request_body=body
            )
            if fault.retry_after is not None:
                extra_headers["Retry-After"] = str(math.ceil(fault.retry_after))
        elif body is None:
            answer = _Answer(
                status=400, body={"ok": False, "error": "body is not JSON"}, request_body=None
            )
        elif signature_ok is False:
            answer = _Answer(
                status=401, body={"ok": False, "error": "bad signature"}, request_body=body
            )
        elif key is not None and key in self._answers:
            answer = self._answers[key]
            duplicate = True
            payload_mismatch = answer.request_body != body
        else:
            answer = _Answer(
                status=200,
                body={"ok": True, "path": request.path, "received_at": received_at},
                request_body=body,
            )
            if key is not None:
                self._answers[key] = answer
        dropped = fault is not None and fault.drop
        delay = 0.0 if fault is None else fault.delay
        await self._record(
            Record(
                received_at=received_at,
                received_monotonic=received_monotonic,
                method=request.method,
                path=request.path,
                headers=headers,
                body=body,
                idempotency_key=key,
                duplicate=duplicate,
                payload_mismatch=payload_mismatch,
                signature_ok=signature_ok,
                status=None if dropped else answer.status,
                delay=delay,
                remote=request.remote,
            )
        )
        if delay > 0:
            await asyncio.sleep(delay)
        if dropped:
            if request.transport is not None:
                request.transport.abort()
            return web.Response()
        return web.json_response(answer.body, status=answer.status, headers=extra_headers)

    def _next_fault(self, path: str) -> Fault | None:
        queue = self._faults.get(path)
        return queue.popleft() if queue else None

    async def _record(self, record: Record) -> None:
        if self._log_path is not None:
            _append_line(self._log_path, json.dumps(asdict(record)))
        self.records.append(record)
        async with self._recorded:
            self._recorded.notify_all()


def load_records(path: Path) -> list[Record]:
    """The records in a log file written by a running or stopped server.

    A last line still being written (no newline yet) is left out.
    """
    lines = path.read_text(encoding="utf-8").split("\n")[:-1]
    return [Record(**json.loads(line)) for line in lines if line]


def _append_line(path: Path, line: str) -> None:
    with path.open("a", encoding="utf-8") as log:
        log.write(line + "\n")
        log.flush()
        os.fsync(log.fileno())


def _idempotency_key(headers: dict[str, str]) -> str | None:
    """The key, unquoted when sent as a structured-field string (``"abc"``)."""
    value = headers.get(IDEMPOTENCY_KEY_HEADER.lower())
    if value is None:
        return None
    value = value.strip()
    if len(value) >= 2 and value[0] == value[-1] == '"':
        value = value[1:-1]
    return value


def _json_or_none(raw: bytes) -> Any:
    try:
        return json.loads(raw)
    except ValueError:
        return None


async def _serve(host: str, port: int, log_path: Path | None, secret: str | None) -> None:
    server = ClassroomServer(host=host, port=port, log_path=log_path, signing_secret=secret)
    base_url = await server.start()
    sys.stdout.write(base_url + "\n")
    sys.stdout.flush()
    stopping = asyncio.Event()
    loop = asyncio.get_running_loop()
    signals = (signal.SIGTERM, signal.SIGINT)
    for signum in signals:
        loop.add_signal_handler(signum, stopping.set)
    try:
        await stopping.wait()
    finally:
        for signum in signals:
            loop.remove_signal_handler(signum)
        await server.stop()


def main(argv: Sequence[str] | None = None) -> int:
    """``python -m stepd.classroom``: serve until SIGTERM or SIGINT."""
    parser = argparse.ArgumentParser(
        prog="python -m stepd.classroom",
        description="A stand-in classroom server that records every POST it receives.",
        epilog=f"A signing secret is read from ${SECRET_ENV} when set.",
    )
    parser.add_argument("--host", default=DEFAULT_HOST)
    parser.add_argument("--port", type=int, default=DEFAULT_PORT, help="0 picks a free port")
    parser.add_argument("--log", type=Path, help="append each request to this JSON-lines file")
    args = parser.parse_args(argv)
    asyncio.run(_serve(args.host, args.port, args.log, os.environ.get(SECRET_ENV) or None))
    return 0


if __name__ == "__main__":
    sys.exit(main())
