"""What a node tells the others of what it committed (the payload of its NOTIFY)."""

from __future__ import annotations

from stepd.store import pg_hints

NOW = 1_000.0


def test_only_what_no_node_holds_due_within_the_horizon_is_hinted_earliest_first() -> None:
    dues = [
        (NOW + 5.0004, False),
        (NOW + 0.2, False),
        (NOW + 0.2001, False),  # the same millisecond
        (NOW + 1.0, True),  # held by the node that wrote it: nobody else may claim it
        (None, False),  # closed
        (NOW + pg_hints.HINT_SECONDS + 1, False),  # the next window load arms it
        (NOW - 3.0, False),  # overdue: claimed at once by whoever looks
    ]
    assert pg_hints.due_instants(dues, now=NOW) == [NOW - 3.0, NOW + 0.2, NOW + 5.0]


def test_a_hint_names_at_most_so_many_instants() -> None:
    dues = [(NOW + n / 10, False) for n in range(100)]
    assert len(pg_hints.due_instants(dues, now=NOW)) == pg_hints.MAX_INSTANTS


def test_a_payload_reads_back_and_anything_else_is_not_a_due_hint() -> None:
    text = pg_hints.payload("abc", [NOW + 0.25, NOW + 1])
    assert text == "due abc 1000.250 1001.000"
    assert pg_hints.parse(text) == ("abc", [1000.25, 1001.0])
    assert pg_hints.parse(pg_hints.WINDOW) is None
    assert pg_hints.parse("due abc soon") is None


class Recorder:
    """Stands for a connection: keeps the payloads NOTIFY would send."""

    def __init__(self) -> None:
        self.sent: list[str] = []

    async def execute(self, sql: str, params: tuple[str, str]) -> None:
        assert "pg_notify" in sql
        self.sent.append(params[1])


async def test_an_instant_to_come_is_told_once_and_one_past_again() -> None:
    """A herd started for one second in many groups costs one NOTIFY; an instant that came
    (its looks are done) is told again."""
    hints = pg_hints.Hints(lambda: "n1")
    conn = Recorder()
    for _ in range(3):
        await hints.send(conn, [(NOW + 5, False)], now=NOW)
    await hints.send(conn, [(NOW + 5, False), (NOW + 6, False)], now=NOW)
    await hints.send(conn, [(NOW + 5, False)], now=NOW + 5)
    assert conn.sent == ["due n1 1005.000", "due n1 1006.000", "due n1 1005.000"]


async def test_a_store_of_one_node_tells_nothing() -> None:
    conn = Recorder()
    await pg_hints.Hints(lambda: None).send(conn, [(NOW + 5, False)], now=NOW)
    assert conn.sent == []
