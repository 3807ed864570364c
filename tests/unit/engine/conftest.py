"""The engine tests' store: an open MemoryStore (a module may define its own `store`)."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest

from stepd.testing import MemoryStore


@pytest.fixture
async def store() -> AsyncIterator[MemoryStore]:
    opened = MemoryStore()
    await opened.open()
    yield opened
    await opened.close()
