"""The control socket: `stepd reload` asks, the daemon answers once the reload is done."""

from __future__ import annotations

import asyncio
import os
import socket
import stat
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from structlog.testing import capture_logs

from stepd.control import (
    DEFAULT_SOCKET,
    MAX_INSTANCES,
    MAX_SOCKET_PATH_BYTES,
    ControlServer,
    DaemonStatus,
    ReloadResult,
    client_places,
    find_daemon,
    listen,
    request_reload,
    request_status,
    runtime_socket,
    socket_name,
    socket_places,
)
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


# -- where the socket is ----------------------------------------------------------------------

CONFIG = Path("/etc/stepd/stepd.toml")
NAME = socket_name(CONFIG)
UID = 1000


@pytest.mark.parametrize(
    ("environ", "expected"),
    [
        pytest.param(
            {"RUNTIME_DIRECTORY": "/run/stepd", "XDG_RUNTIME_DIR": "/run/user/1000"},
            [Path("/run/stepd/control.sock")],
            id="systemd-only",
        ),
        pytest.param(
            {"XDG_RUNTIME_DIR": "/run/user/1000", "TMPDIR": "/var/tmp"},
            [
                Path(f"/run/user/1000/stepd/{NAME}"),
                Path(f"/var/tmp/stepd-1000/{NAME}"),
                Path(f"/tmp/stepd-1000/{NAME}"),
            ],
            id="session",
        ),
        pytest.param({}, [Path(f"/tmp/stepd-1000/{NAME}")], id="bare"),
        pytest.param(
            {"XDG_RUNTIME_DIR": "run/user", "TMPDIR": "tmp"},
            [Path(f"/tmp/stepd-1000/{NAME}")],
            id="relative-ignored",
        ),
        pytest.param({"TMPDIR": "/tmp"}, [Path(f"/tmp/stepd-1000/{NAME}")], id="no-twice"),
    ],
)
def test_socket_places(environ: dict[str, str], expected: list[Path]) -> None:
    """Under systemd the runtime folder; else the session's, then private temporary folders."""
    assert first_choices(socket_places(CONFIG, environ, uid=UID)) == expected


def first_choices(places: list[Path]) -> list[Path]:
    """Each folder's first choice: the config's own name (or the service's control.sock)."""
    return [p for p in places if p.name in {NAME, "control.sock"}]


def test_a_second_daemon_of_one_config_has_a_place_of_its_own() -> None:
    """Each folder offers the config's name, then -2 … -8, for daemons of the same config file
    on other stores; the client looks at all of them."""
    places = socket_places(CONFIG, {}, uid=UID)
    stem = NAME.removesuffix(".sock")
    assert places == [
        Path(f"/tmp/stepd-1000/{name}")
        for name in [NAME, *(f"{stem}-{n}.sock" for n in range(2, MAX_INSTANCES + 1))]
    ]
    assert set(places) <= set(client_places(CONFIG, {}, uid=UID))


def test_the_socket_name_follows_the_config_file(tmp_path: Path) -> None:
    """Two spellings of one config path (a link among them) give one name; two config files
    give two."""
    first = tmp_path / "a" / "stepd.toml"
    first.parent.mkdir()
    first.write_text("", encoding="utf-8")
    again = tmp_path / "a" / ".." / "a" / "stepd.toml"
    link = tmp_path / "link.toml"
    link.symlink_to(first)
    other = tmp_path / "b" / "stepd.toml"

    assert socket_name(first) == socket_name(again) == socket_name(link)
    assert socket_name(first) != socket_name(other)
    assert socket_name(first).startswith("stepd-")


def test_a_client_looks_wherever_a_daemon_may_be() -> None:
    """`stepd reload -c` tries $RUNTIME_DIRECTORY, every place of socket_places, the service's."""
    environ = {"RUNTIME_DIRECTORY": "/run/x", "XDG_RUNTIME_DIR": "/run/user/1000"}

    assert [
        p for p in client_places(CONFIG, environ, uid=UID) if p.name in {NAME, "control.sock"}
    ] == [
        Path("/run/x/control.sock"),
        Path(f"/run/user/1000/stepd/{NAME}"),
        Path(f"/tmp/stepd-1000/{NAME}"),
        DEFAULT_SOCKET,
    ]


# -- the daemon opens it ----------------------------------------------------------------------


async def _reload() -> ReloadResult:
    return REJECTED


@pytest.fixture
def no_runtime_directory(monkeypatch: pytest.MonkeyPatch) -> None:
    """Not under systemd: every place is in a folder of our own."""
    monkeypatch.delenv("RUNTIME_DIRECTORY", raising=False)


@pytest.mark.usefixtures("no_runtime_directory")
async def test_a_path_too_long_for_a_socket_is_passed_over(tmp_path: Path) -> None:
    """A place whose path a unix socket cannot hold is skipped, logged, and the next one used."""
    long = tmp_path / ("x" * MAX_SOCKET_PATH_BYTES) / "stepd" / NAME
    short = tmp_path / "s" / NAME
    (tmp_path / "s").mkdir(mode=0o700)

    with capture_logs() as logs:
        server = await listen([long, short], _reload, lambda: None, config=str(CONFIG))
    await server.stop()

    assert server.path == short
    skipped = [e for e in logs if e["event"] == "control.place_skipped"]
    assert [(e["path"], "bytes" in e["reason"]) for e in skipped] == [(str(long), True)]


@pytest.mark.usefixtures("no_runtime_directory")
async def test_the_folder_is_made_private(tmp_path: Path) -> None:
    """The daemon makes the socket's folder with mode 0700; the socket is 0600."""
    place = tmp_path / "stepd-1000" / NAME

    server = await listen([place], _reload, lambda: None, config=str(CONFIG))
    modes = stat.S_IMODE(place.parent.stat().st_mode), stat.S_IMODE(place.stat().st_mode)
    await server.stop()

    assert modes == (0o700, 0o600)


@pytest.mark.usefixtures("no_runtime_directory")
async def test_a_folder_others_can_enter_is_not_used(tmp_path: Path) -> None:
    """A folder that exists with a mode that lets others in is passed over."""
    shared = tmp_path / "shared"
    shared.mkdir()
    shared.chmod(0o755)
    private = tmp_path / "private"

    with capture_logs() as logs:
        server = await listen(
            [shared / NAME, private / NAME], _reload, lambda: None, config=str(CONFIG)
        )
    await server.stop()

    assert server.path == private / NAME
    assert any("not private" in e.get("reason", "") for e in logs)


@pytest.mark.usefixtures("no_runtime_directory")
async def test_a_socket_left_by_a_killed_daemon_is_replaced(tmp_path: Path) -> None:
    """A socket file nobody listens on is removed and the place used."""
    place = tmp_path / "p" / NAME
    place.parent.mkdir(mode=0o700)
    stale = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    stale.bind(str(place))
    stale.close()

    server = await listen([place], _reload, lambda: None, config=str(CONFIG))
    answer = await asyncio.to_thread(request_status, place)
    await server.stop()

    assert answer is not None
    assert answer.pid == os.getpid()


@pytest.mark.usefixtures("no_runtime_directory")
async def test_a_place_another_daemon_answers_on_is_left_to_it(tmp_path: Path) -> None:
    """A live socket is never taken over: the next place is used, the first keeps working."""
    first, second = tmp_path / "a" / NAME, tmp_path / "b" / NAME
    running = await listen([first], _reload, lambda: None, config="/other.toml")

    server = await listen([first, second], _reload, lambda: None, config=str(CONFIG))
    answer = await asyncio.to_thread(request_status, first)
    await server.stop()
    await running.stop()

    assert server.path == second
    assert answer is not None
    assert answer.config == "/other.toml"


@pytest.mark.usefixtures("no_runtime_directory")
async def test_no_usable_place_is_a_control_error(tmp_path: Path) -> None:
    """When every place fails the error names each one and why."""
    long = tmp_path / ("y" * MAX_SOCKET_PATH_BYTES) / NAME

    with pytest.raises(ControlError, match="no place for the control socket"):
        await listen([long], _reload, lambda: None, config=str(CONFIG))


# -- status and finding the daemon ------------------------------------------------------------


async def test_status_answers_the_config_and_the_last_reload(tmp_path: Path) -> None:
    """`status` names the config file the daemon runs and how its latest reload went."""
    last = ReloadResult(ok=False, findings=("f: x: y",), at="2027-01-15T09:00:01.000Z")
    server = ControlServer(tmp_path / "c.sock", _reload, lambda: last, config="/etc/s.toml")
    await server.start()

    answer = await asyncio.to_thread(request_status, server.path)
    await server.stop()

    assert answer == DaemonStatus(
        config="/etc/s.toml", pid=os.getpid(), socket=str(server.path), last_reload=last
    )


async def test_find_daemon_picks_the_one_that_runs_the_config(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A daemon running another config is passed over; the one running ours is found."""
    monkeypatch.delenv("RUNTIME_DIRECTORY", raising=False)
    config = tmp_path / "stepd.toml"
    environ = {"XDG_RUNTIME_DIR": str(tmp_path / "xdg"), "TMPDIR": str(tmp_path / "tmp")}
    (tmp_path / "xdg").mkdir()
    (tmp_path / "tmp").mkdir()
    xdg_place, tmp_place, *_ = socket_places(config, environ)
    other = await listen([xdg_place], _reload, lambda: None, config="/etc/other.toml")
    ours = await listen([tmp_place], _reload, lambda: None, config=str(config))

    found = await asyncio.to_thread(find_daemon, config, environ)
    await ours.stop()
    with pytest.raises(ControlError, match=r"runs /etc/other\.toml") as missing:
        await asyncio.to_thread(find_daemon, config, environ)
    await other.stop()

    assert found == tmp_place
    assert str(tmp_place) in str(missing.value)
