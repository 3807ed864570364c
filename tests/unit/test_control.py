"""The control socket: `stepd reload` asks, the daemon answers once the reload is done."""

from __future__ import annotations

import asyncio
import socket
import stat
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from stepd.control import ControlServer, ReloadResult, request_reload, runtime_socket
from stepd.errors import ControlError

REJECTED = ReloadResult(ok=False, findings=("stepd.toml: http2: Extra inputs are not permitted",))


@pytest.fixture
async def served(tmp_path: Path) -> AsyncIterator[tuple[Path, list[str]]]:
    """A control server whose reload records its call and answers REJECTED."""
    calls: list[str] = []

    async def reload() -> ReloadResult:
        calls.append("reload")
        await asyncio.sleep(0.05)  # the answer waits for the work
        return REJECTED

    server = ControlServer(tmp_path / "control.sock", reload)
    await server.start()
    yield server.path, calls
    await server.stop()


async def test_a_reload_request_gets_the_reloads_answer(served: tuple[Path, list[str]]) -> None:
    """The client blocks until the daemon's reload has finished, and gets its result."""
    path, calls = served

    answer = await asyncio.to_thread(request_reload, path)

    assert answer == REJECTED
    assert calls == ["reload"]


async def test_the_socket_is_for_its_owner_only(served: tuple[Path, list[str]]) -> None:
    """The socket file is mode 0600."""
    path, _ = served

    assert stat.S_IMODE(path.stat().st_mode) == 0o600


async def test_an_unknown_command_is_refused(served: tuple[Path, list[str]]) -> None:
    """Anything but `reload` gets a refusal, and nothing is reloaded."""
    path, calls = served

    def ask() -> bytes:
        with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as sock:
            sock.settimeout(2.0)
            sock.connect(str(path))
            sock.sendall(b"restart\n")
            return sock.recv(4096)

    answer = ReloadResult.from_line(await asyncio.to_thread(ask))

    assert not answer.ok
    assert "unknown command" in answer.findings[0]
    assert calls == []


def test_no_daemon_is_a_control_error(tmp_path: Path) -> None:
    """A socket nobody listens on is reported as such, not as a rejected reload."""
    with pytest.raises(ControlError, match="cannot reach the daemon"):
        request_reload(tmp_path / "control.sock", timeout=1.0)


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        pytest.param("/run/stepd", Path("/run/stepd/control.sock"), id="one"),
        pytest.param("/run/stepd:/run/other", Path("/run/stepd/control.sock"), id="first"),
        pytest.param("", None, id="unset"),
    ],
)
def test_runtime_socket(value: str, expected: Path | None) -> None:
    """The socket lives in the first folder of $RUNTIME_DIRECTORY."""
    assert runtime_socket({"RUNTIME_DIRECTORY": value}) == expected
