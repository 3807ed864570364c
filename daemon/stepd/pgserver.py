"""A throwaway PostgreSQL server: initdb and pg_ctl in a temporary folder (the tests' server,
and `stepd demo --nodes`'s).

Never the machine's own cluster: a cluster made with `initdb` on a free port of
127.0.0.1 (trust authentication, user `stepd`), its socket and data in a temporary folder,
removed at the end. initdb, pg_ctl and postgres refuse to run as root, so as root they run as
the `postgres` user through `runuser`. `restart(immediate=True)` is the crash restart
(`pg_ctl stop -m immediate`, then start: WAL replay), which the store must survive.

`tests/conftest.py` makes one per test session (`postgres` fixture); each test takes a fresh
database of its own with `new_database()`. The tests cut a node off from it in a network
namespace of the node's own (tests/netns.py): the server then also listens on an address the
namespaces reach (`listen`) and trusts their network (`trusted`).
"""

from __future__ import annotations

import os
import shutil
import subprocess
import tempfile
import uuid
from dataclasses import dataclass, field
from pathlib import Path

import psycopg

from stepd.testing import free_port

USER = "stepd"
START_SECONDS = 60


def find_bin() -> Path | None:
    """The newest installed PostgreSQL's bin folder, or None when there is none."""
    roots = sorted(
        Path("/usr/lib/postgresql").glob("*/bin/postgres"),
        key=lambda p: int(p.parent.parent.name) if p.parent.parent.name.isdigit() else 0,
    )
    return roots[-1].parent if roots else None


@dataclass
class PostgresServer:
    """One PostgreSQL server in `folder`, listening on 127.0.0.1:`port`."""

    bin: Path
    folder: Path
    port: int = field(default_factory=free_port)
    # more addresses to listen on besides 127.0.0.1, and the network (CIDR) whose clients
    # it trusts besides loopback: the tests' nodes in network namespaces of their own
    listen: tuple[str, ...] = ()
    trusted: str | None = None

    @property
    def data(self) -> Path:
        return self.folder / "data"

    @property
    def log(self) -> Path:
        return self.folder / "server.log"

    def url(self, database: str = "postgres", host: str = "127.0.0.1") -> str:
        return f"postgresql://{USER}@{host}:{self.port}/{database}"

    def _run(self, *args: str) -> None:
        command = [str(self.bin / args[0]), *args[1:]]
        if os.geteuid() == 0:
            command = ["runuser", "-u", "postgres", "--", *command]
        done = subprocess.run(  # noqa: S603 - PostgreSQL's own programs, fixed arguments
            command, capture_output=True, text=True, timeout=START_SECONDS, check=False
        )
        if done.returncode != 0:
            raise RuntimeError(f"{' '.join(args[:1])} failed: {done.stdout}{done.stderr}")

    def init(self) -> None:
        if os.geteuid() == 0:
            shutil.chown(self.folder, "postgres")
        self._run(
            "initdb", "-D", str(self.data), "-A", "trust", "-U", USER, "--locale=C.UTF-8",
            "-E", "UTF8",
        )  # fmt: skip
        if self.trusted is not None:
            with (self.data / "pg_hba.conf").open("a", encoding="utf-8") as hba:
                hba.write(f"host all all {self.trusted} trust\n")

    def start(self) -> None:
        addresses = ",".join(("127.0.0.1", *self.listen))
        options = f"-p {self.port} -k {self.folder} -c listen_addresses={addresses}"
        options += " -c max_connections=300"
        self._run("pg_ctl", "-D", str(self.data), "-l", str(self.log), "-w", "-o", options, "start")

    def stop(self, *, immediate: bool = False) -> None:
        mode = "immediate" if immediate else "fast"
        self._run("pg_ctl", "-D", str(self.data), "-m", mode, "-w", "stop")

    def restart(self, *, immediate: bool = True) -> None:
        """Stop (by default as a crash: immediate, no checkpoint) and start again."""
        self.stop(immediate=immediate)
        self.start()

    def new_database(self, host: str = "127.0.0.1") -> str:
        """A new empty database's URL (through `host`, one of the addresses it listens on)."""
        name = "t_" + uuid.uuid4().hex[:12]
        with psycopg.connect(self.url(), autocommit=True) as conn:
            conn.execute(f'CREATE DATABASE "{name}"')
        return self.url(name, host)


def start_server(listen: tuple[str, ...] = (), trusted: str | None = None) -> PostgresServer:
    """A new running server in a new temporary folder (also listening on `listen`, trusting
    clients of the network `trusted`). Raises RuntimeError when PostgreSQL is not installed
    (tests/setup.sh installs it)."""
    found = find_bin()
    if found is None:
        raise RuntimeError(
            "PostgreSQL is not installed (apt-get install postgresql; for the tests, "
            "make test-setup)"
        )
    server = PostgresServer(
        bin=found,
        folder=Path(tempfile.mkdtemp(prefix="stepd-pg-", dir=_parent_folder())),
        listen=listen,
        trusted=trusted,
    )
    try:
        server.init()
        server.start()
    except BaseException:
        shutil.rmtree(server.folder, ignore_errors=True)
        raise
    return server


def _parent_folder() -> str | None:
    """Where the server's folder goes: the temporary folder, unless running as root (the
    server then runs as `postgres`) and some folder on its path keeps others out (a private
    TMPDIR): then /tmp, which everyone may pass through."""
    if os.geteuid() != 0:
        return None
    base = Path(tempfile.gettempdir()).resolve()
    if all(folder.stat().st_mode & 0o001 for folder in (base, *base.parents)):
        return None
    return "/tmp"  # noqa: S108 - PostgreSQL's own user must reach the folder


def remove_server(server: PostgresServer) -> None:
    try:
        server.stop(immediate=True)
    finally:
        shutil.rmtree(server.folder, ignore_errors=True)
