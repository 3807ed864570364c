"""Hypothesis profiles for the property tests and the API fuzz.

`make test` uses the default: the same few hundred examples on every run, so a pass or a
failure reproduces. `make soak` passes `--hypothesis-profile=explore`: a fresh draw of 20,000.
"""

from collections.abc import AsyncIterator, Iterator

import pytest
from hypothesis import HealthCheck, settings
from tests.netns import NetnsError, Network, Placements
from tests.postgres_server import PostgresServer, reachable_server, remove_server, start_server

settings.register_profile(
    "default",
    max_examples=300,
    derandomize=True,
    deadline=None,
    database=None,  # no .hypothesis/ folder in the work tree; failures print their example
    suppress_health_check=list(HealthCheck),
)
settings.register_profile(
    "explore", settings.get_profile("default"), max_examples=20_000, derandomize=False
)
settings.load_profile("default")


@pytest.fixture(scope="session")
def postgres() -> Iterator[PostgresServer]:
    """A throwaway PostgreSQL server for the whole test session (tests/postgres_server.py)."""
    server = start_server()
    try:
        yield server
    finally:
        remove_server(server)


@pytest.fixture(scope="session")
def network() -> Iterator[Network]:
    """A private network on this machine for nodes in namespaces of their own (tests/netns.py).
    Fails, never skips, where namespaces cannot be made (not root): the node tests need them."""
    try:
        made = Network()
    except NetnsError as exc:
        pytest.fail(f"network namespaces for the node tests: {exc}", pytrace=False)
    try:
        yield made
    finally:
        made.close()


@pytest.fixture(scope="session")
def reachable_postgres(network: Network) -> Iterator[PostgresServer]:
    """A throwaway PostgreSQL server that the nodes in `network`'s namespaces reach (at
    `network.hub`), for the whole session."""
    server = reachable_server(network.hub, network.subnet)
    try:
        yield server
    finally:
        remove_server(server)


@pytest.fixture
async def placements(network: Network) -> AsyncIterator[Placements]:
    """Put daemons in network namespaces of their own (tests/netns.py); removed at the end."""
    placed = Placements(network)
    try:
        yield placed
    finally:
        await placed.close()
