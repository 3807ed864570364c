"""Hypothesis profiles for the property tests and the API fuzz.

`make test` uses the default: the same few hundred examples on every run, so a pass or a
failure reproduces. `make soak` passes `--hypothesis-profile=explore`: a fresh draw of 20,000.
"""

from collections.abc import Iterator

import pytest
from hypothesis import HealthCheck, settings
from tests.postgres_server import PostgresServer, remove_server, start_server

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
