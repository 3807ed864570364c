"""The daemon under a stand-in service manager: sd_notify, watchdog, reload, SIGTERM, secrets.

The test plays systemd. It binds the notification socket and starts `stepd run` with what
systemd gives a Type=notify service (systemd.exec(5)): NOTIFY_SOCKET, WATCHDOG_USEC,
CREDENTIALS_DIRECTORY holding the signing secret, RUNTIME_DIRECTORY, and JOURNAL_STREAM naming
the daemon's real stdout, which makes the daemon write journald priority prefixes. Then it
checks each message sd_notify(3) defines, reload by SIGHUP and by `stepd reload`, and SIGTERM.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import itertools
import json
import os
import re
import signal
import socket
import struct
import subprocess
import sys
import time
import uuid
from collections.abc import AsyncIterator, Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import pytest
from tests.integration.harness import clean_env

from stepd.classroom import ClassroomServer
from stepd.config import EX_CONFIG
from stepd.testing import free_port

READY_TIMEOUT_SECONDS = 20.0
NOTIFY_TIMEOUT_SECONDS = 10.0  # for any one expected notification
EXIT_TIMEOUT_SECONDS = 30.0  # the unit's TimeoutStopSec
SO_TIMESTAMPNS = 35  # Linux (asm-generic/socket.h): a datagram's receive time, in nanoseconds
WATCHDOG_USEC = 1_000_000  # the daemon should ping every 0.5 s
WATCHDOG_PINGS = 4
WAIT_SECONDS = 3  # the Wait before the Task in the reload-rules machine
SLOW_CALL_SECONDS = 1.5  # the in-flight call that SIGTERM must let finish
STUCK_CALL_SECONDS = 60.0  # a call that outlasts the daemon's drain
DRAIN_TIMEOUT_SECONDS = 15.0  # stepd.daemon.DRAIN_TIMEOUT_SECONDS
RUN_TIMEOUT_SECONDS = 20.0
# SIGTERM to exit with nothing in flight, at most: typically 0.07 s; a third of the drain
# timeout, which an exit that waited for the drain would take.
IDLE_STOP_SECONDS = DRAIN_TIMEOUT_SECONDS / 3
MONOTONIC_SLACK_USEC = 5_000_000  # RELOADING=1's MONOTONIC_USEC after the SIGHUP: typically ms
AMZ_JSON = "application/x-amz-json-1.0"
SIGNING_KEY = bytes(range(32))
SECRET = "whsec_" + base64.b64encode(SIGNING_KEY).decode()
LAMBDA = "arn:aws:lambda:us-east-1:123456789012:function:"
PRIORITIES = {"debug": 7, "info": 6, "warning": 4, "error": 3, "critical": 2}
_JOURNAL_LINE = re.compile(r"<(?P<priority>[0-7])>(?P<json>\{.*\})")

CALL = {
    "StartAt": "Call",
    "States": {"Call": {"Type": "Task", "Resource": LAMBDA + "call", "End": True}},
}
WAIT_THEN_CALL = {
    "StartAt": "Nap",
    "States": {
        "Nap": {"Type": "Wait", "Seconds": WAIT_SECONDS, "Next": "Call"},
        "Call": {"Type": "Task", "Resource": LAMBDA + "call", "End": True},
    },
}
WAIT_THEN_PASS = {
    "StartAt": "Nap",
    "States": {
        "Nap": {"Type": "Wait", "Seconds": WAIT_SECONDS, "Next": "Skip"},
        "Skip": {"Type": "Pass", "End": True},
    },
}


# -- the stand-in service manager -------------------------------------------------------------


async def _readable(sock: socket.socket) -> None:
    loop = asyncio.get_running_loop()
    ready = loop.create_future()
    loop.add_reader(sock.fileno(), lambda: ready.done() or ready.set_result(None))
    try:
        await ready
    finally:
        loop.remove_reader(sock.fileno())


@dataclass
class Notifications:
    """The datagrams received on NOTIFY_SOCKET, each as its KEY=VALUE fields."""

    address: str
    messages: list[dict[str, str]] = field(default_factory=list)
    # when each arrived: the kernel's receive time, not when this loop got round to reading it
    arrived: list[float] = field(default_factory=list)
    _changed: asyncio.Condition = field(default_factory=asyncio.Condition)

    async def receive(self, sock: socket.socket) -> None:
        sock.setsockopt(socket.SOL_SOCKET, SO_TIMESTAMPNS, 1)
        while True:
            await _readable(sock)
            try:
                data, ancillary, _, _ = sock.recvmsg(65536, socket.CMSG_SPACE(16))
            except BlockingIOError:
                continue
            stamps = [
                struct.unpack("qq", cmsg[:16])
                for level, kind, cmsg in ancillary
                if (level, kind) == (socket.SOL_SOCKET, SO_TIMESTAMPNS)
            ]
            at = stamps[0][0] + stamps[0][1] / 1e9 if stamps else time.time()
            fields = dict(line.split("=", 1) for line in data.decode().splitlines() if line)
            async with self._changed:
                self.messages.append(fields)
                self.arrived.append(at)
                self._changed.notify_all()

    async def expect(
        self,
        key: str,
        value: str = "1",
        *,
        after: int = -1,
        timeout: float = NOTIFY_TIMEOUT_SECONDS,
    ) -> int:
        """The index of the first message after `after` that sets `key` to `value`."""

        def found() -> int | None:
            return next(
                (i for i, m in enumerate(self.messages) if i > after and m.get(key) == value),
                None,
            )

        try:
            async with asyncio.timeout(timeout), self._changed:
                await self._changed.wait_for(lambda: found() is not None)
        except TimeoutError:
            raise AssertionError(
                f"no {key}={value} after message {after} in {timeout} s: {self.messages}"
            ) from None
        index = found()
        assert index is not None
        return index

    def count(self, key: str, value: str = "1") -> int:
        return sum(1 for m in self.messages if m.get(key) == value)


@dataclass
class Service:
    """`stepd run` as systemd would start it, and what it wrote to its journal stream."""

    folder: Path
    config: Path
    url: str
    notifications: Notifications
    runtime: Path
    stdout: Path
    base_url: str  # the classroom stand-in's
    timeout: float = 10  # [http] timeout_seconds
    process: subprocess.Popen[bytes] | None = None
    ready: int = -1  # index of the READY=1 of the latest start

    def spawn(self, *, watchdog_usec: int = WATCHDOG_USEC) -> subprocess.Popen[bytes]:
        credentials = self.folder / "credentials"
        credentials.mkdir(mode=0o700, exist_ok=True)
        (credentials / "signing_secret").write_text(SECRET + "\n", encoding="utf-8")
        self.runtime.mkdir(exist_ok=True)
        with self.stdout.open("ab") as out:
            stat = os.fstat(out.fileno())
            env = clean_env() | {
                "NOTIFY_SOCKET": self.notifications.address,
                "WATCHDOG_USEC": str(watchdog_usec),
                "CREDENTIALS_DIRECTORY": str(credentials),
                "RUNTIME_DIRECTORY": str(self.runtime),
                "JOURNAL_STREAM": f"{stat.st_dev}:{stat.st_ino}",
            }
            self.process = subprocess.Popen(
                [sys.executable, "-m", "stepd", "run", "-c", str(self.config)],
                stdout=out,
                stderr=subprocess.STDOUT,
                env=env,
            )
        return self.process

    async def start(self) -> None:
        """Spawn and wait for READY=1."""
        after = len(self.notifications.messages) - 1
        process = self.spawn()
        try:
            self.ready = await self.notifications.expect(
                "READY", after=after, timeout=READY_TIMEOUT_SECONDS
            )
        except AssertionError as exc:
            raise AssertionError(f"{exc}\nexit status {process.poll()}\n{self.text()}") from None

    def signal(self, signum: int) -> None:
        assert self.process is not None
        self.process.send_signal(signum)

    async def exit_status(self, timeout: float = EXIT_TIMEOUT_SECONDS) -> int:
        assert self.process is not None
        return await asyncio.to_thread(self.process.wait, timeout)

    def text(self) -> str:
        return self.stdout.read_text(encoding="utf-8", errors="replace")

    def journal(self) -> list[tuple[int, dict[str, Any]]]:
        """Every JSON log line as (priority prefix, event)."""
        entries = []
        for line in self.text().splitlines():
            match = _JOURNAL_LINE.fullmatch(line)
            if match:
                entries.append((int(match["priority"]), json.loads(match["json"])))
        return entries

    def events(self, name: str) -> list[tuple[int, dict[str, Any]]]:
        return [(p, e) for p, e in self.journal() if e.get("event") == name]

    def write_config(self, *machines: tuple[str, dict[str, Any], str], extra: str = "") -> None:
        """The config file: (name, definition, endpoint of its Task `Call`) per machine."""
        entries = []
        for name, definition, endpoint in machines:
            path = self.folder / f"{name}.asl.json"
            path.write_text(json.dumps(definition), encoding="utf-8")
            entries.append(
                f'[[machines]]\nname = "{name}"\ndefinition = "{path.name}"\n'
                f'[machines.endpoints]\nCall = "{endpoint}"\n'
            )
        port = self.url.rsplit(":", 1)[1]
        self.config.write_text(
            f'[store]\npath = "stepd.db"\n[api]\nlisten = "127.0.0.1:{port}"\n'
            f'[http]\nbase_url = "{self.base_url}"\ntimeout_seconds = {self.timeout}\n'
            f'[log]\nlevel = "info"\nformat = "json"\n{extra}\n' + "\n".join(entries),
            encoding="utf-8",
        )

    async def call(self, operation: str, body: dict[str, Any]) -> tuple[int, dict[str, Any]]:
        async with httpx.AsyncClient(timeout=10.0, trust_env=False) as client:
            response = await client.post(
                self.url + "/",
                content=json.dumps(body),
                headers={"Content-Type": AMZ_JSON, "X-Amz-Target": f"AWSStepFunctions.{operation}"},
            )
        return response.status_code, response.json()

    async def start_execution(self, machine: str, name: str) -> tuple[int, dict[str, Any]]:
        return await self.call(
            "StartExecution", {"stateMachineArn": machine, "name": name, "input": "{}"}
        )

    async def status_of(self, machine: str, name: str) -> str:
        arn = f"arn:aws:states:us-east-1:123456789012:execution:{machine}:{name}"
        status, answer = await self.call("DescribeExecution", {"executionArn": arn})
        assert status == httpx.codes.OK, answer
        return str(answer["status"])

    async def wait_status(self, machine: str, name: str, expected: str) -> None:
        deadline = time.monotonic() + RUN_TIMEOUT_SECONDS
        while (status := await self.status_of(machine, name)) != expected:
            assert time.monotonic() < deadline, f"{name} is {status}\n{self.text()}"
            await asyncio.sleep(0.05)

    def reload_cli(self) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [
                sys.executable,
                "-m",
                "stepd",
                "reload",
                "--socket",
                str(self.runtime / "control.sock"),
            ],
            capture_output=True,
            text=True,
            timeout=EXIT_TIMEOUT_SECONDS,
            env=clean_env(),
            check=False,
        )


@pytest.fixture
async def classroom() -> AsyncIterator[ClassroomServer]:
    """The classroom stand-in, verifying signatures made with SECRET."""
    server = ClassroomServer(signing_secret=SECRET)
    await server.start()
    yield server
    await server.stop()


@pytest.fixture
async def notifications() -> AsyncIterator[Notifications]:
    """The notification socket, bound in the abstract namespace as systemd binds its own."""
    name = f"stepd-test-{uuid.uuid4().hex}"
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    sock.bind("\0" + name)
    sock.setblocking(False)  # noqa: FBT003 - the socket API
    received = Notifications(address="@" + name)
    reader = asyncio.create_task(received.receive(sock))
    yield received
    reader.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await reader
    sock.close()


@pytest.fixture
def service(
    tmp_path: Path, classroom: ClassroomServer, notifications: Notifications
) -> Iterator[Service]:
    """A service configured with the machine `classroom` (Task `Call` -> /call); not started."""
    service = Service(
        folder=tmp_path,
        config=tmp_path / "stepd.toml",
        url=f"http://127.0.0.1:{free_port()}",
        notifications=notifications,
        runtime=tmp_path / "run",
        stdout=tmp_path / "stdout.log",
        base_url=classroom.base_url,
    )
    service.write_config(("classroom", CALL, "/call"))
    yield service
    if service.process is not None and service.process.poll() is None:
        service.process.kill()
        service.process.wait(EXIT_TIMEOUT_SECONDS)


# -- start ------------------------------------------------------------------------------------


async def test_ready_comes_once_the_api_answers(service: Service) -> None:
    """READY=1 carries a STATUS= summary, and at that moment the API and control socket are up."""
    await service.start()

    async with httpx.AsyncClient(timeout=2.0, trust_env=False) as client:
        health = await client.get(service.url + "/healthz")
    assert health.status_code == httpx.codes.OK
    assert (service.runtime / "control.sock").is_socket()
    ready = service.notifications.messages[service.ready]
    assert ready["STATUS"].startswith("0 running, 0 timers armed, 0 calls in flight; config loaded")
    assert service.notifications.count("READY") == 1


async def test_a_bad_config_exits_78_without_ready(service: Service) -> None:
    """A config the daemon cannot use at start: exit 78 (EX_CONFIG), and no READY=1."""
    service.config.write_text('[http]\ntimeout_seconds = "soon"\n', encoding="utf-8")

    service.spawn()

    assert await service.exit_status() == EX_CONFIG
    assert service.notifications.count("READY") == 0


async def test_watchdog_pings_at_half_the_interval(service: Service) -> None:
    """WATCHDOG=1 comes from the running daemon every WATCHDOG_USEC/2, again and again."""
    await service.start()

    first = await service.notifications.expect("WATCHDOG")
    index = first
    for _ in range(WATCHDOG_PINGS):
        index = await service.notifications.expect("WATCHDOG", after=index)

    pings = [
        at
        for at, message in zip(
            service.notifications.arrived, service.notifications.messages, strict=True
        )
        if message.get("WATCHDOG") == "1"
    ]
    gaps = [b - a for a, b in itertools.pairwise(pings)]
    half = WATCHDOG_USEC / 2_000_000
    # Never much sooner than half the interval; later only short of the whole interval, when
    # systemd would kill the service (typically a gap is 1 ms over the half).
    assert all(half * 0.5 < gap < 2 * half for gap in gaps), gaps


# -- reload ------------------------------------------------------------------------------------


async def _reload_by_signal(service: Service) -> dict[str, str]:
    """SIGHUP; check RELOADING=1 with MONOTONIC_USEC, then READY=1; the READY message."""
    notifications = service.notifications
    after = len(notifications.messages) - 1
    now_usec = time.monotonic_ns() // 1000
    service.signal(signal.SIGHUP)
    reloading = await notifications.expect("RELOADING", after=after)
    monotonic = int(notifications.messages[reloading]["MONOTONIC_USEC"])
    assert now_usec <= monotonic < now_usec + MONOTONIC_SLACK_USEC
    ready = await notifications.expect("READY", after=reloading)
    return notifications.messages[ready]


async def test_a_bad_reload_keeps_the_old_config(service: Service) -> None:
    """A bad file on SIGHUP: the findings are logged at priority err and the old config serves."""
    await service.start()
    service.write_config(
        ("classroom", CALL, "/call"), ("second", CALL, "/call"), extra="[http2]\nx = 1"
    )

    ready = await _reload_by_signal(service)

    assert "reload rejected" in ready["STATUS"]
    rejected = service.events("config.reload_rejected")
    assert rejected, service.text()
    assert {priority for priority, _ in rejected} == {PRIORITIES["error"]}
    assert any("http2" in event["finding"] for _, event in rejected)
    status, _ = await service.start_execution("classroom", "after-bad-reload")
    assert status == httpx.codes.OK
    status, answer = await service.start_execution("second", "not-there")
    assert (status, answer["__type"]) == (400, "StateMachineDoesNotExist")
    assert service.process is not None
    assert service.process.poll() is None


async def test_a_good_reload_serves_a_new_machine(service: Service) -> None:
    """A good file on SIGHUP: READY=1 after RELOADING=1, and the new machine takes executions."""
    await service.start()
    service.write_config(("classroom", CALL, "/call"), ("second", CALL, "/second"))

    ready = await _reload_by_signal(service)

    assert "config reloaded" in ready["STATUS"]
    status, answer = await service.start_execution("second", "first-of-second")
    assert status == httpx.codes.OK, answer
    await service.wait_status("second", "first-of-second", "SUCCEEDED")
    assert service.events("config.reloaded")


async def test_reload_keeps_running_definitions_and_moves_endpoints(
    service: Service, classroom: ClassroomServer
) -> None:
    """A running execution keeps its definition; its next call goes to the new endpoint."""
    service.write_config(("classroom", WAIT_THEN_CALL, "/before"))
    await service.start()
    status, _ = await service.start_execution("classroom", "started-before")
    assert status == httpx.codes.OK
    service.write_config(("classroom", WAIT_THEN_PASS, "/after"))

    await _reload_by_signal(service)
    status, _ = await service.start_execution("classroom", "started-after")
    assert status == httpx.codes.OK
    await service.wait_status("classroom", "started-before", "SUCCEEDED")
    await service.wait_status("classroom", "started-after", "SUCCEEDED")

    assert [r.path for r in classroom.records] == ["/after"]
    assert classroom.records[0].idempotency_key is not None
    assert "started-before" in classroom.records[0].idempotency_key


async def test_stepd_reload_answers_when_the_daemon_is_done(service: Service) -> None:
    """`stepd reload` exits 0 once a good file is applied, 78 with the findings for a bad one."""
    await service.start()
    service.write_config(("classroom", CALL, "/call"), ("second", CALL, "/call"))

    applied = await asyncio.to_thread(service.reload_cli)

    assert applied.returncode == 0, applied.stderr
    assert service.notifications.count("RELOADING") == 1
    assert service.notifications.count("READY") == 2  # start, reload: done before the answer
    service.config.write_text("[machines]\n", encoding="utf-8")

    rejected = await asyncio.to_thread(service.reload_cli)

    assert rejected.returncode == EX_CONFIG
    assert "machines" in rejected.stderr
    assert "reload rejected" in rejected.stderr
    assert service.notifications.count("READY") == 3
    status, _ = await service.start_execution("second", "still-served")
    assert status == httpx.codes.OK


# -- secrets -------------------------------------------------------------------------------


async def test_the_signing_secret_is_used_and_never_shown(
    service: Service, classroom: ClassroomServer
) -> None:
    """Calls are signed with the credential; neither it nor its key appears in any output."""
    await service.start()
    status, _ = await service.start_execution("classroom", "signed")
    assert status == httpx.codes.OK
    await service.wait_status("classroom", "signed", "SUCCEEDED")
    service.config.write_text(f'[http]\ntimeout_seconds = "{SECRET}"\n', encoding="utf-8")
    await _reload_by_signal(service)
    service.signal(signal.SIGTERM)
    assert await service.exit_status() == 0

    assert [r.signature_ok for r in classroom.records] == [True]
    text = service.text()
    assert service.events("config.reload_rejected")
    assert SECRET not in text
    assert SECRET.removeprefix("whsec_") not in text
    assert SIGNING_KEY.hex() not in text
    assert all(SECRET not in str(m) for m in service.notifications.messages)


# -- stop ---------------------------------------------------------------------------------


async def test_sigterm_lets_the_call_in_flight_finish(
    service: Service, classroom: ClassroomServer, figures: Callable[[str], None]
) -> None:
    """SIGTERM: STOPPING=1, the call in flight finishes and is committed, exit 0."""
    await service.start()
    classroom.fail_next("/call", status=200, delay=SLOW_CALL_SECONDS)
    status, _ = await service.start_execution("classroom", "in-flight")
    assert status == httpx.codes.OK
    async with asyncio.timeout(NOTIFY_TIMEOUT_SECONDS):
        await classroom.wait_for(1)
    after = len(service.notifications.messages) - 1

    sent = time.monotonic()
    service.signal(signal.SIGTERM)
    await service.notifications.expect("STOPPING", after=after)
    code = await service.exit_status()
    took = time.monotonic() - sent

    assert code == 0
    assert SLOW_CALL_SECONDS * 0.5 < took < EXIT_TIMEOUT_SECONDS
    figures(f"SIGTERM to exit with a {SLOW_CALL_SECONDS} s call in flight: {took:.2f} s")
    await service.start()
    assert await service.status_of("classroom", "in-flight") == "SUCCEEDED"
    assert len(classroom.records) == 1  # the result was committed: nothing to send again


async def test_sigterm_when_idle_exits_at_once(
    service: Service, figures: Callable[[str], None]
) -> None:
    """SIGTERM with nothing in flight: STOPPING=1 and exit 0 at once."""
    await service.start()

    sent = time.monotonic()
    service.signal(signal.SIGTERM)
    await service.notifications.expect("STOPPING")
    code = await service.exit_status()
    took = time.monotonic() - sent

    assert code == 0
    assert took < IDLE_STOP_SECONDS
    figures(f"SIGTERM to exit when idle: {took:.2f} s")


@pytest.mark.slow
async def test_a_call_that_outlasts_the_drain_is_sent_again(
    service: Service, classroom: ClassroomServer
) -> None:
    """A call still in flight when the drain ends is cut; after a restart it is re-sent."""
    service.timeout = STUCK_CALL_SECONDS * 2
    service.write_config(("classroom", CALL, "/call"))
    await service.start()
    classroom.fail_next("/call", status=200, delay=STUCK_CALL_SECONDS)
    status, _ = await service.start_execution("classroom", "stuck")
    assert status == httpx.codes.OK
    async with asyncio.timeout(NOTIFY_TIMEOUT_SECONDS):
        await classroom.wait_for(1)

    sent = time.monotonic()
    service.signal(signal.SIGTERM)
    code = await service.exit_status()
    took = time.monotonic() - sent
    await service.start()
    await service.wait_status("classroom", "stuck", "SUCCEEDED")

    assert code == 0
    assert DRAIN_TIMEOUT_SECONDS <= took < EXIT_TIMEOUT_SECONDS
    assert service.events("daemon.drain_timeout")
    first, again = classroom.records
    assert first.idempotency_key == again.idempotency_key
    assert again.duplicate
