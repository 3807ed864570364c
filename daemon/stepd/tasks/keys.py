"""The Idempotency-Key of a task call.

    <machine>/<execution name>/<execution uid>/<id of the state's TaskStateEntered event>

The same on every retry and every re-send of one call (a state entry is one call, however many
attempts it takes), and different for every call of every execution ever started: the uid is
drawn at random when the execution starts, so a name used again (after retention deleted the
old execution, or on a store restored from a backup) never repeats an earlier call's key.
Executions started by stepd 0.1 have no uid and keep the key they had then:
`<machine>/<name>/<event id>`.

A header carries the key, and is signed as it is sent: servers read a header's bytes as
Latin-1, so a character of a name beyond Latin-1 (AWS allows `数学-クラス`) is percent-encoded
as its UTF-8 bytes (`%E6%95%B0…`). A name in Latin-1 (`café-7B`) is kept as it is, as it
always was: a call in flight when stepd is upgraded keeps its key.
"""

from __future__ import annotations

import secrets
from urllib.parse import quote

from stepd.store.records import Execution

UID_BYTES = 8  # 64 random bits; the machine and name before them keep keys apart too
LATIN_1_LAST = 0xFF  # names cannot hold `%`, so an encoded character is never ambiguous


def new_uid() -> str:
    return secrets.token_hex(UID_BYTES)


def idempotency_key(execution: Execution, entered_event: int | None = None) -> str:
    """The key of the call `execution`'s current Task state entry makes; with
    `entered_event`, of the Task state entered by that event (a Parallel or Map child's:
    event ids are unique in an execution, so children's keys are too)."""
    event = execution.state_entered_event if entered_event is None else entered_event
    prefix = "".join(
        c if ord(c) <= LATIN_1_LAST else quote(c) for c in f"{execution.machine}/{execution.name}"
    )
    if execution.uid is None:
        return f"{prefix}/{event}"
    return f"{prefix}/{execution.uid}/{event}"
