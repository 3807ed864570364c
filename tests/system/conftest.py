"""Fixtures for the system tests: measured figures, listed at the end of the run."""

from __future__ import annotations

from collections.abc import Callable

import pytest

_FIGURES = pytest.StashKey[list[str]]()


@pytest.fixture
def figures(request: pytest.FixtureRequest) -> Callable[[str], None]:
    """Note a measured figure; the terminal summary lists them all."""
    noted = request.config.stash.setdefault(_FIGURES, [])

    def note(text: str) -> None:
        noted.append(f"{request.node.name}: {text}")

    return note


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter) -> None:
    noted = terminalreporter.config.stash.get(_FIGURES, [])
    if noted:
        terminalreporter.section("stepd system figures")
        for line in noted:
            terminalreporter.write_line(line)
