"""Network namespaces for stepd nodes: each node on an address of its own, and a cut between one
node and the database that leaves its other traffic alone. Root only (`ip netns`); the traffic
stays on this machine.

`Network` is a private /24 (10.213.X.0/24, X free on this machine): a hub address in the
machine's own namespace, which PostgreSQL and the classroom server listen on, and up to 63
`Namespace`s, each joined to the machine by a veth pair on a /30 of its own and routed to the
hub address only. A daemon placed in a namespace (`Namespace.place`) runs there through
`ip netns exec`; its API still listens on 127.0.0.1:PORT, its own loopback, which the test
reaches at 127.0.0.1:PORT on the machine through an `ApiRelay` (the API stays on loopback, so
it needs no key pair). The classroom server tells the nodes apart by the address each request
comes from (`Namespace.address`).

`Namespace.cut(host, port)` adds a blackhole rule for TCP to that address and port
(`ip -n NS rule add to HOST ipproto tcp dport PORT blackhole`): the node's open connections
to the database hang silently and new ones are refused at once; `heal` removes the rule.

Names carry the process id of the test run (namespaces `stepdt-PID-N`, links `sdtPIDhN`,
`sdtPIDhub`), so parallel runs do not collide; `remove_leftovers` removes those of runs that
are no longer alive (a run killed before its finalizers).
"""

from __future__ import annotations

import asyncio
import contextlib
import ctypes
import os
import random
import re
import shutil
import socket
import subprocess
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from collections.abc import Sequence

    from tests.integration.harness import Stepd

    from stepd.classroom import Record

NETNS_PREFIX = "stepdt-"
LINK_PREFIX = "sdt"
SUBNET_PREFIX = "10.213"
MAX_NAMESPACES = 63  # /30 blocks of the /24 below the hub's address (.254)
CLONE_NEWNET = 0x40000000
IP_SECONDS = 10
_RUN_NAME = re.compile(rf"^(?:{NETNS_PREFIX}|{LINK_PREFIX})(\d+)")


class NetnsError(RuntimeError):
    """`ip` refused: what it was asked and what it said."""


def ip(*args: str, check: bool = True) -> str:
    """Run `ip ARGS`; its output. Raises NetnsError when it fails (and `check`)."""
    done = subprocess.run(
        ["ip", *args], capture_output=True, text=True, timeout=IP_SECONDS, check=False
    )
    if check and done.returncode != 0:
        raise NetnsError(f"ip {' '.join(args)}: {done.stderr.strip() or done.stdout.strip()}")
    return done.stdout


def unavailable() -> str | None:
    """Why namespaces cannot be made here (not root, no iproute2), or None."""
    if shutil.which("ip") is None:
        return "iproute2 is not installed (apt-get install iproute2; make test-setup)"
    if os.geteuid() != 0:
        return "`ip netns` needs root: run the node tests as root (make test does, in CI)"
    return None


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _dead_run(name: str) -> bool:
    found = _RUN_NAME.match(name)
    return found is not None and not _alive(int(found.group(1)))


def remove_leftovers() -> None:
    """Remove the namespaces and links of test runs that are no longer alive."""
    for line in ip("netns", "list").splitlines():
        name = line.split()[0] if line.strip() else ""
        if name.startswith(NETNS_PREFIX) and _dead_run(name):
            ip("netns", "delete", name, check=False)
    for line in ip("-o", "link", "show").splitlines():
        parts = line.split(":")
        name = parts[1].strip().split("@")[0] if len(parts) > 1 else ""
        if name.startswith(LINK_PREFIX) and _dead_run(name):
            ip("link", "delete", name, check=False)


def _free_subnet() -> str:
    """10.213.X, an X no address of this machine uses."""
    used = ip("-o", "-4", "addr", "show")
    choices = [x for x in range(1, 254) if f" {SUBNET_PREFIX}.{x}." not in used]
    if not choices:
        raise NetnsError(f"no free /24 in {SUBNET_PREFIX}.0.0/16")
    return f"{SUBNET_PREFIX}.{random.choice(choices)}"


class Network:
    """A private /24 on this machine: the hub address and the node namespaces on it."""

    def __init__(self) -> None:
        reason = unavailable()
        if reason is not None:
            raise NetnsError(reason)
        remove_leftovers()
        self.run = os.getpid()
        self.prefix = _free_subnet()
        self.subnet = f"{self.prefix}.0/24"
        self.hub = f"{self.prefix}.254"
        self._hub_link = f"{LINK_PREFIX}{self.run}hub"
        self._made = 0
        self.namespaces: list[Namespace] = []
        ip("link", "add", self._hub_link, "type", "veth", "peer", "name", f"{self._hub_link}p")
        try:
            ip("addr", "add", f"{self.hub}/32", "dev", self._hub_link)
            ip("link", "set", self._hub_link, "up")
            ip("link", "set", f"{self._hub_link}p", "up")
        except NetnsError:
            self.close()
            raise

    def namespace(self) -> Namespace:
        """A new namespace joined to the machine, routed to the hub address."""
        if self._made >= MAX_NAMESPACES:
            raise NetnsError(f"more than {MAX_NAMESPACES} namespaces in one run")
        number = self._made
        self._made += 1
        made = Namespace(self, number)
        self.namespaces.append(made)
        return made

    def close(self) -> None:
        for namespace in self.namespaces:
            namespace.remove()
        self.namespaces = []
        ip("link", "delete", self._hub_link, check=False)


class Namespace:
    """One node's network namespace: `address` inside, a veth pair to the machine."""

    def __init__(self, network: Network, number: int) -> None:
        self.network = network
        self.name = f"{NETNS_PREFIX}{network.run}-{number}"
        self.host_end = f"{network.prefix}.{4 * number + 1}"
        self.address = f"{network.prefix}.{4 * number + 2}"
        self._link = f"{LINK_PREFIX}{network.run}h{number}"
        self._cuts: list[tuple[str, int]] = []
        ip("netns", "add", self.name)
        try:
            ip(
                "link",
                "add",
                self._link,
                "type",
                "veth",
                "peer",
                "name",
                "eth0",
                "netns",
                self.name,
            )
            ip("addr", "add", f"{self.host_end}/30", "dev", self._link)
            ip("link", "set", self._link, "up")
            inside = ("-n", self.name)
            ip(*inside, "addr", "add", f"{self.address}/30", "dev", "eth0")
            ip(*inside, "link", "set", "eth0", "up")
            ip(*inside, "link", "set", "lo", "up")
            ip(*inside, "route", "add", f"{network.hub}/32", "via", self.host_end)
        except NetnsError:
            self.remove()
            raise

    def command(self, *argv: str) -> list[str]:
        """`argv` run inside this namespace."""
        return ["ip", "netns", "exec", self.name, *argv]

    def place(self, daemon: Stepd) -> None:
        """Run `daemon` in this namespace from its next start."""
        daemon.python = "ip"
        daemon.launch = ["netns", "exec", self.name, sys.executable, "-m", "stepd"]

    def cut(self, host: str, port: int) -> None:
        """Blackhole TCP from this namespace to `host`:`port`."""
        ip("-n", self.name, "rule", "add", *self._rule(host, port))
        self._cuts.append((host, port))

    def heal(self, host: str, port: int) -> None:
        ip("-n", self.name, "rule", "del", *self._rule(host, port))
        self._cuts.remove((host, port))

    @staticmethod
    def _rule(host: str, port: int) -> tuple[str, ...]:
        return ("to", host, "ipproto", "tcp", "dport", str(port), "blackhole")

    def socket(self) -> socket.socket:
        """A TCP socket of this namespace (made by a thread that enters it for the moment)."""
        libc = ctypes.CDLL(None, use_errno=True)
        with (
            Path("/proc/thread-self/ns/net").open("rb") as home,
            Path(f"/run/netns/{self.name}").open("rb") as there,
        ):
            if libc.setns(there.fileno(), CLONE_NEWNET) != 0:
                raise OSError(ctypes.get_errno(), f"setns into {self.name}")
            try:
                return socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            finally:
                if libc.setns(home.fileno(), CLONE_NEWNET) != 0:
                    raise OSError(ctypes.get_errno(), "setns back home")

    def remove(self) -> None:
        """Delete the namespace (its end of the veth pair goes with it) and the host's end."""
        ip("netns", "delete", self.name, check=False)
        ip("link", "delete", self._link, check=False)


class ApiRelay:
    """127.0.0.1:`port` on the machine to 127.0.0.1:`port` in `namespace` (a node's API)."""

    def __init__(self, namespace: Namespace, port: int) -> None:
        self.namespace = namespace
        self.port = port
        self._server: asyncio.Server | None = None
        self._pipes: set[asyncio.Task[None]] = set()

    async def start(self) -> None:
        self._server = await asyncio.start_server(self._relay, "127.0.0.1", self.port)

    async def stop(self) -> None:
        if self._server is not None:
            self._server.close()
            self._server = None
        for pipe in list(self._pipes):
            pipe.cancel()

    async def _relay(self, client_in: asyncio.StreamReader, client_out: Any) -> None:
        loop = asyncio.get_running_loop()
        sock = await asyncio.to_thread(self.namespace.socket)
        sock.settimeout(0.0)  # non-blocking, for the event loop
        try:
            await loop.sock_connect(sock, ("127.0.0.1", self.port))
        except OSError:
            sock.close()
            client_out.close()
            return
        server_in, server_out = await asyncio.open_connection(sock=sock)
        pipes = [
            asyncio.create_task(_pipe(client_in, server_out)),
            asyncio.create_task(_pipe(server_in, client_out)),
        ]
        self._pipes.update(pipes)
        try:
            await asyncio.gather(*pipes)
        except asyncio.CancelledError:
            pass
        finally:
            self._pipes.difference_update(pipes)


async def _pipe(reader: asyncio.StreamReader, writer: Any) -> None:
    try:
        while data := await reader.read(65536):
            writer.write(data)
            await writer.drain()
    except (ConnectionError, OSError):
        pass
    finally:
        with contextlib.suppress(ConnectionError, OSError):
            writer.close()


class Placements:
    """Daemons placed in namespaces of `network` for one test, each reached through its
    `ApiRelay`; `close` removes them (a test's finalizer)."""

    def __init__(self, network: Network) -> None:
        self.network = network
        self.namespaces: list[Namespace] = []
        self._relays: list[ApiRelay] = []

    async def place(self, daemon: Stepd) -> Namespace:
        """A new namespace for `daemon` (from its next start) and its API relay."""
        namespace = self.network.namespace()
        self.namespaces.append(namespace)
        namespace.place(daemon)
        relay = ApiRelay(namespace, int(daemon.url.rsplit(":", 1)[1]))
        await relay.start()
        self._relays.append(relay)
        return namespace

    async def close(self) -> None:
        for relay in self._relays:
            await relay.stop()
        for namespace in self.namespaces:
            namespace.remove()
        self.network.namespaces = [n for n in self.network.namespaces if n not in self.namespaces]


def posts_by_node(
    records: Sequence[Record], daemons: Sequence[Stepd], namespaces: Sequence[Namespace]
) -> dict[str, int]:
    """How many requests each daemon (by its log's name) sent, the daemons placed in
    `namespaces` in that order: told apart by the address each request came from."""
    names = {n.address: d.log_path.stem for d, n in zip(daemons, namespaces, strict=True)}
    counts = dict.fromkeys(names.values(), 0)
    for record in records:
        name = names.get(str(record.remote), f"elsewhere ({record.remote})")
        counts[name] = counts.get(name, 0) + 1
    return counts
