"""The sign-in throttle: a token bucket per client address."""

from __future__ import annotations

import pytest

from stepd.api.throttle import Throttle, client_key

BURST = 3
REFILL_SECONDS = 10.0


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def throttle(clock: Clock, max_clients: int = 100) -> Throttle:
    return Throttle(
        burst=BURST, refill_seconds=REFILL_SECONDS, max_clients=max_clients, clock=clock
    )


def test_a_client_may_fail_burst_times_then_waits():
    """BURST failures in a row are allowed; then the client waits for the next token."""
    clock = Clock()
    limit = throttle(clock)
    waits = []
    for _ in range(BURST):
        waits.append(limit.wait_seconds("192.0.2.1"))
        limit.spend("192.0.2.1")

    assert waits == [0] * BURST
    assert limit.wait_seconds("192.0.2.1") == REFILL_SECONDS


def test_a_token_comes_back_every_refill_period():
    """One token returns every REFILL_SECONDS, up to BURST."""
    clock = Clock()
    limit = throttle(clock)
    for _ in range(BURST):
        limit.spend("192.0.2.1")
    clock.now += REFILL_SECONDS - 1
    almost = limit.wait_seconds("192.0.2.1")
    clock.now += 1
    ready = limit.wait_seconds("192.0.2.1")
    limit.spend("192.0.2.1")

    assert (almost, ready, limit.wait_seconds("192.0.2.1")) == (1, 0, REFILL_SECONDS)


def test_clients_are_counted_apart():
    """One address out of tokens does not hold back another."""
    limit = throttle(Clock())
    for _ in range(BURST):
        limit.spend("192.0.2.1")

    assert (limit.wait_seconds("192.0.2.1") > 0, limit.wait_seconds("192.0.2.2")) == (True, 0)


def test_an_ipv6_host_is_counted_by_its_64_network():
    """Addresses of one /64 share a bucket; IPv4-mapped addresses count as the IPv4 one."""
    limit = throttle(Clock())
    for n in range(BURST):
        limit.spend(f"2001:db8:1:2::{n + 1}")

    assert limit.wait_seconds("2001:db8:1:2:ffff::9") > 0
    assert limit.wait_seconds("2001:db8:1:3::1") == 0


@pytest.mark.parametrize(
    ("address", "key"),
    [
        ("192.0.2.1", "192.0.2.1"),
        ("2001:db8:1:2:3:4:5:6", "2001:db8:1:2::/64"),
        ("::ffff:192.0.2.1", "192.0.2.1"),
        ("unix-socket", "unix-socket"),
    ],
)
def test_what_a_client_is_counted_by(address: str, key: str):
    """IPv4 address, IPv6 /64, or the text for what is not an address."""
    assert client_key(address) == key


def test_only_the_latest_clients_are_remembered():
    """Past max_clients, the least recently seen client is forgotten (a full bucket again)."""
    limit = throttle(Clock(), max_clients=2)
    for address in ("192.0.2.1", "192.0.2.2", "192.0.2.3"):
        for _ in range(BURST):
            limit.spend(address)

    assert [limit.wait_seconds(a) > 0 for a in ("192.0.2.1", "192.0.2.2", "192.0.2.3")] == [
        False,
        True,
        True,
    ]
