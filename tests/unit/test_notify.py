"""sd_notify messages and the watchdog interval, against a datagram socket bound here."""

from __future__ import annotations

import os
import socket
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from stepd.notify import Notifier, watchdog_interval


@pytest.fixture
def manager(tmp_path: Path) -> Iterator[tuple[str, socket.socket]]:
    """A notification socket at a path, as a service manager binds it."""
    path = tmp_path / "notify.sock"
    with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as sock:
        sock.bind(str(path))
        sock.settimeout(2.0)
        yield str(path), sock


def _fields(sock: socket.socket) -> dict[str, str]:
    return dict(line.split("=", 1) for line in sock.recv(4096).decode().splitlines())


def test_ready_carries_the_status(manager: tuple[str, socket.socket]) -> None:
    """READY=1 and STATUS= go out in one datagram, in UTF-8."""
    address, sock = manager
    Notifier(address).ready("läuft: 3 running")

    assert _fields(sock) == {"READY": "1", "STATUS": "läuft: 3 running"}


def test_a_status_stays_on_one_line(manager: tuple[str, socket.socket]) -> None:
    """A newline in a value cannot start a field of its own."""
    address, sock = manager
    Notifier(address).status("one\nREADY=1")

    assert _fields(sock) == {"STATUS": "one READY=1"}


def test_reloading_carries_the_monotonic_clock(manager: tuple[str, socket.socket]) -> None:
    """RELOADING=1 comes with MONOTONIC_USEC, read from CLOCK_MONOTONIC."""
    address, sock = manager
    before = time.monotonic_ns() // 1000
    Notifier(address).reloading()

    fields = _fields(sock)
    assert fields["RELOADING"] == "1"
    assert before <= int(fields["MONOTONIC_USEC"]) <= time.monotonic_ns() // 1000


def test_an_abstract_address_is_used_as_such() -> None:
    """A NOTIFY_SOCKET starting with @ names the abstract namespace."""
    name = f"stepd-unit-{uuid.uuid4().hex}"
    with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as sock:
        sock.bind("\0" + name)
        sock.settimeout(2.0)
        Notifier("@" + name).stopping()

        assert _fields(sock) == {"STOPPING": "1"}


def test_without_a_socket_nothing_is_sent(monkeypatch: pytest.MonkeyPatch) -> None:
    """Outside a service manager the notifier is off and sending is a no-op."""
    monkeypatch.delenv("NOTIFY_SOCKET", raising=False)
    notifier = Notifier()

    notifier.watchdog()

    assert not notifier.enabled


def test_a_vanished_manager_is_not_an_error(tmp_path: Path) -> None:
    """Sending to a socket that is gone is logged, not raised."""
    Notifier(str(tmp_path / "gone.sock")).watchdog()


@pytest.mark.parametrize(
    ("environ", "expected"),
    [
        pytest.param({"WATCHDOG_USEC": "30000000"}, 15.0, id="half-of-usec"),
        pytest.param({"WATCHDOG_USEC": "1000000", "WATCHDOG_PID": "ours"}, 0.5, id="our-pid"),
        pytest.param({"WATCHDOG_USEC": "1000000", "WATCHDOG_PID": "1"}, None, id="other-pid"),
        pytest.param({"WATCHDOG_USEC": "0"}, None, id="zero"),
        pytest.param({"WATCHDOG_USEC": "soon"}, None, id="not-a-number"),
        pytest.param({}, None, id="unset"),
    ],
)
def test_watchdog_interval(environ: dict[str, str], expected: float | None) -> None:
    """Pings go out every WATCHDOG_USEC/2, only when the watchdog is meant for this process."""
    if environ.get("WATCHDOG_PID") == "ours":
        environ = environ | {"WATCHDOG_PID": str(os.getpid())}

    assert watchdog_interval(environ) == expected
