"""Fixtures for the integration tests: a stand-in classroom server and real stepd daemons.

Every daemon a test starts is killed in the test's teardown, and when a test fails the tail of
each daemon's log is added to its report.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable, Generator, Iterator
from pathlib import Path

import pytest
from tests.integration.harness import DaemonFactory, Stepd, write_config
from tests.netns import Network

from stepd.classroom import ClassroomServer
from stepd.testing import free_port

_DAEMONS = pytest.StashKey[list[Stepd]]()
_FIGURES = pytest.StashKey[list[str]]()


@pytest.fixture
async def classroom(tmp_path: Path) -> AsyncIterator[ClassroomServer]:
    """The stand-in classroom server, in the test's event loop; it outlives every daemon kill."""
    server = ClassroomServer(log_path=tmp_path / "classroom.jsonl")
    await server.start()
    yield server
    await server.stop()


@pytest.fixture
def make_stepd(
    request: pytest.FixtureRequest, tmp_path: Path, classroom: ClassroomServer
) -> Iterator[DaemonFactory]:
    """Make a daemon handle on its own config (same database unless `db` says otherwise)."""
    yield from _daemons(request, tmp_path, classroom)


@pytest.fixture
async def hub_classroom(tmp_path: Path, network: Network) -> AsyncIterator[ClassroomServer]:
    """The stand-in classroom server on the hub address of `network`, which the nodes in its
    namespaces reach; each record has the address of the node that sent it."""
    server = ClassroomServer(host=network.hub, log_path=tmp_path / "classroom.jsonl")
    await server.start()
    yield server
    await server.stop()


@pytest.fixture
def make_node(
    request: pytest.FixtureRequest, tmp_path: Path, hub_classroom: ClassroomServer
) -> Iterator[DaemonFactory]:
    """`make_stepd` for nodes placed in network namespaces (`placements`): their tasks go
    to `hub_classroom`."""
    yield from _daemons(request, tmp_path, hub_classroom)


def _daemons(
    request: pytest.FixtureRequest, tmp_path: Path, classroom: ClassroomServer
) -> Iterator[DaemonFactory]:
    daemons: list[Stepd] = []
    request.node.stash[_DAEMONS] = daemons

    def make(*, db: str = "stepd.db", name: str = "stepd", timeout_seconds: float = 10) -> Stepd:
        port = free_port()
        config = write_config(
            tmp_path,
            base_url=classroom.base_url,
            port=port,
            name=f"{name}.toml",
            db=db,
            timeout_seconds=timeout_seconds,
        )
        daemon = Stepd(config, port, tmp_path / f"{name}.log")
        daemons.append(daemon)
        return daemon

    yield make
    for daemon in daemons:
        daemon.cleanup()


@pytest.fixture
def stepd(make_stepd: DaemonFactory) -> Stepd:
    """A daemon handle on a fresh config and database in tmp_path (not started yet)."""
    return make_stepd()


@pytest.fixture
def figures(request: pytest.FixtureRequest) -> Callable[[str], None]:
    """Note a measured figure; the terminal summary lists them all."""
    noted = request.config.stash.setdefault(_FIGURES, [])

    def note(text: str) -> None:
        noted.append(f"{request.node.name}: {text}")

    return note


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(
    item: pytest.Item, call: pytest.CallInfo[None]
) -> Generator[None, pytest.TestReport, pytest.TestReport]:
    report = yield
    if report.failed:
        for daemon in item.stash.get(_DAEMONS, []):
            report.sections.append((f"daemon log: {daemon.log_path.name}", daemon.tail()))
    return report


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter) -> None:
    noted = terminalreporter.config.stash.get(_FIGURES, [])
    if noted:
        terminalreporter.section("stepd integration figures")
        for line in noted:
            terminalreporter.write_line(line)
