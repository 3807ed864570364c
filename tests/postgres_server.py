"""The tests' PostgreSQL: the throwaway server of stepd.pgserver. A node is cut off from it in
a network namespace of its own (tests/netns.py): `reachable_server` also listens on the
network's hub address and trusts the nodes' addresses."""

from __future__ import annotations

from stepd.pgserver import PostgresServer, find_bin, remove_server, start_server

__all__ = ["PostgresServer", "find_bin", "reachable_server", "remove_server", "start_server"]


def reachable_server(hub: str, subnet: str) -> PostgresServer:
    """A new running server on 127.0.0.1 and `hub`, trusting clients of `subnet` (CIDR)."""
    return start_server(listen=(hub,), trusted=subnet)
