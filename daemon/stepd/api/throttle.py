"""A token bucket per client: how many failed sign-ins an address may make, and how fast.

Each client starts with `burst` tokens and regains one every `refill_seconds`, up to `burst`.
A failed attempt spends a token; while a client has none, its attempts are refused without
being checked. Only the most recently seen `max_clients` are remembered (a forgotten client
starts again with a full bucket), so memory stays bounded whatever the addresses.

IPv6 clients are counted by their /64 network: one host usually holds a whole /64.
"""

from __future__ import annotations

import ipaddress
import math
import time
from collections import OrderedDict
from collections.abc import Callable

IPV6_NETWORK_BITS = 64  # the addresses one IPv6 host can pick from


def client_key(address: str) -> str:
    """What a client is counted by: its IPv4 address, its IPv6 /64, or the text as given."""
    try:
        ip = ipaddress.ip_address(address)
    except ValueError:
        return address
    if isinstance(ip, ipaddress.IPv6Address):
        if ip.ipv4_mapped is not None:
            return str(ip.ipv4_mapped)
        return str(ipaddress.ip_network(f"{ip}/{IPV6_NETWORK_BITS}", strict=False))
    return str(ip)


class Throttle:
    """Token buckets by client. Not thread-safe: used from the event loop only."""

    def __init__(
        self,
        *,
        burst: int,
        refill_seconds: float,
        max_clients: int,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._burst = float(burst)
        self._refill_seconds = refill_seconds
        self._max_clients = max_clients
        self._clock = clock
        self._buckets: OrderedDict[str, tuple[float, float]] = OrderedDict()  # tokens, at

    def wait_seconds(self, client: str) -> int:
        """0 when `client` may try now; else the whole seconds until it may."""
        tokens = self._tokens(client)
        if tokens >= 1:
            return 0
        return max(1, math.ceil((1 - tokens) * self._refill_seconds))

    def spend(self, client: str) -> None:
        """Take one token from `client` (a failed attempt)."""
        key = client_key(client)
        self._buckets[key] = (max(0.0, self._tokens(client) - 1), self._clock())
        self._buckets.move_to_end(key)
        while len(self._buckets) > self._max_clients:
            self._buckets.popitem(last=False)

    def _tokens(self, client: str) -> float:
        found = self._buckets.get(client_key(client))
        if found is None:
            return self._burst
        tokens, at = found
        regained = max(0.0, self._clock() - at) / self._refill_seconds
        return min(self._burst, tokens + regained)
