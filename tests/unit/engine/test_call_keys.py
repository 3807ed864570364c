"""The Idempotency-Key (and webhook-id) a task call carries, as a server reads it."""

from __future__ import annotations

from urllib.parse import unquote

import pytest
from tests.unit.engine.engine_support import CALLING, Clock, running_engine

from stepd.store.base import Store
from stepd.tasks.signing import sign, verify
from stepd.testing import FakeCaller

SECRET = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"


@pytest.mark.parametrize("name", ["数学-クラス", "café-7B", "math-101"])
async def test_a_key_is_ascii_whatever_the_execution_name(store: Store, name: str) -> None:
    """AWS allows names outside ASCII; a header is read as Latin-1 by most servers (Node's,
    Python's), so a key sent as raw UTF-8 would not verify there. The name's characters
    beyond Latin-1 are percent-encoded; a name in Latin-1 is kept as it is (as it was before:
    a call in flight at an upgrade keeps its key)."""
    await store.open()
    caller = FakeCaller()
    engine = await running_engine(store, caller, CALLING, Clock())
    started = await engine.start_execution("m", name, "{}")
    [call] = await caller.wait_for(1)
    engine.close()
    await engine.drain(1.0)
    key = call.idempotency_key
    machine, sent_name, uid, event = key.split("/")
    on_the_wire = key.encode("latin-1")  # as the header goes out
    assert (machine, unquote(sent_name), uid) == ("m", name, started.execution.uid)
    assert (sent_name == name) == (name != "数学-クラス")
    assert int(event) > 0
    # a server that reads the header's bytes as Latin-1 checks the signature it was sent
    as_read = on_the_wire.decode("latin-1")
    signature = sign(SECRET, key, 1_700_000_000, b"{}")
    headers = {
        "webhook-id": as_read,
        "webhook-timestamp": "1700000000",
        "webhook-signature": signature,
    }
    assert verify(SECRET, headers, b"{}", now=1_700_000_000)
