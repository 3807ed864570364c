"""/metrics while the store does not answer: the scrape still answers, with this node's own
figures and `stepd_store_up 0`, instead of failing whole (the figures an outage needs)."""

from __future__ import annotations

import asyncio

import pytest
from tests.unit.engine.engine_support import Clock, new_engine

from stepd import metrics as metrics_module
from stepd.errors import StoreError
from stepd.metrics import Metrics
from stepd.testing import FakeCaller, MemoryStore


class AwayStore(MemoryStore):
    """A store whose database went away (`away`: every read fails), or hangs (`hung`)."""

    away = False
    hung = False

    async def count_by_status(self) -> dict[str, int]:
        if self.hung:
            await asyncio.sleep(60)
        if self.away:
            raise StoreError("couldn't get a connection after 5.00 sec")
        return await super().count_by_status()


@pytest.mark.parametrize("how", ["away", "hung"])
async def test_a_scrape_answers_while_the_store_does_not(
    how: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(metrics_module, "STORE_SECONDS", 0.2)
    store = AwayStore()
    await store.open()
    try:
        metrics = Metrics(new_engine(store, FakeCaller(), Clock()))
        before = (await metrics.render()).decode()
        setattr(store, how, True)
        during = (await asyncio.wait_for(metrics.render(), 5)).decode()
    finally:
        await store.close()
    assert "stepd_store_up 1.0" in before
    assert "stepd_store_up 0.0" in during
    assert "stepd_step_lateness_seconds_count" in during
