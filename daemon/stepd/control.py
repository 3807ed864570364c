"""The control socket: `stepd reload` asks the running daemon to reload and waits for the result.

A unix stream socket, mode 0600; a peer must run as the daemon's own user or as root. The
daemon opens it in the first of these places that works (`socket_places`):

1. `control.sock` in $RUNTIME_DIRECTORY (/run/stepd under systemd), and nowhere else when
   that is set;
2. `$XDG_RUNTIME_DIR/stepd/<name>`;
3. `$TMPDIR/stepd-<uid>/<name>`, then `/tmp/stepd-<uid>/<name>`, in a folder of the daemon's
   own user, mode 0700;

where `<name>` is made from the config file's path (`socket_name`), so that `stepd reload -c
FILE` finds the daemon that runs FILE by looking in the same places (`find_daemon`), whatever
started it. A place is skipped, and the log says why, when its path is too long for a unix
socket (107 bytes), its folder is not private, or another daemon answers there.

One request per connection: the client sends one line and the daemon answers one JSON line.
``reload`` answers once the new configuration has been applied or rejected:

    {"ok": false, "findings": ["stepd.toml: http.timeout_seconds: ..."], "restart_needed": [],
     "status": "0 running, 0 timers armed, 0 calls in flight; reload rejected at 09:00:01Z",
     "at": "2027-01-15T09:00:01.250Z", "trigger": "stepd reload"}

``status`` answers which config the daemon runs and how its last reload went (by SIGHUP or
by ``reload``; null before the first):

    {"config": "/etc/stepd/stepd.toml", "pid": 812, "socket": "/run/stepd/control.sock",
     "last_reload": {"ok": true, "findings": [], ...}}

`systemctl reload` runs the client as ExecReload=, so the reload is synchronous: it returns
when the daemon has finished, and fails when the daemon kept its previous configuration.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import json
import os
import re
import socket
import stat
import struct
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from stepd import logs
from stepd.errors import ControlError

log = logs.get_logger("stepd.control")

SOCKET_NAME = "control.sock"
DEFAULT_SOCKET = Path("/run/stepd") / SOCKET_NAME  # the service's ($RUNTIME_DIRECTORY)
DEFAULT_TMPDIR = Path("/tmp")  # noqa: S108 - in a folder of our own, mode 0700, owner checked
SOCKET_MODE = 0o600
FOLDER_MODE = 0o700
MAX_SOCKET_PATH_BYTES = 107  # sockaddr_un.sun_path: 108 bytes with the terminating NUL
NAME_STEM_CHARS = 24  # of the config file's name, in the socket's name
NAME_DIGEST_CHARS = 12  # hex digits of the config file's path hash, in the socket's name
MAX_INSTANCES = 8  # daemons of one config file (different stores) on one host, each a socket
REQUEST_TIMEOUT_SECONDS = 5.0  # a client has this long to send its request line
ANSWER_TIMEOUT_SECONDS = 50.0  # the client waits this long for a reload (below TimeoutStartSec)
STATUS_TIMEOUT_SECONDS = 5.0  # the client waits this long for a status answer
MAX_REQUEST_BYTES = 256
RELOAD = "reload"
STATUS = "status"
TRIGGER_SIGNAL = "SIGHUP"
TRIGGER_SOCKET = "stepd reload"
_PEERCRED = struct.Struct("3i")  # struct ucred: pid, uid, gid
_UNSAFE_NAME = re.compile(r"[^A-Za-z0-9_.-]")


@dataclass(frozen=True, kw_only=True)
class ReloadResult:
    """What a reload came to: applied (`ok`) or rejected with `findings`."""

    ok: bool
    findings: tuple[str, ...] = ()  # where and what, never a configured value
    restart_needed: tuple[str, ...] = ()  # changed settings that apply only after a restart
    status: str = ""  # the daemon's STATUS= line after the reload
    at: str = ""  # when it finished, RFC 3339 UTC
    trigger: str = ""  # TRIGGER_SIGNAL or TRIGGER_SOCKET

    def to_line(self) -> bytes:
        return json.dumps(asdict(self)).encode() + b"\n"

    def outcome(self) -> dict[str, Any]:
        """What /healthz shows of it: when, how it was asked for, and how it went."""
        return {
            "at": self.at,
            "trigger": self.trigger,
            "ok": self.ok,
            "findings": list(self.findings),
            "restart_needed": list(self.restart_needed),
        }

    @classmethod
    def from_line(cls, line: bytes) -> ReloadResult:
        try:
            return cls.from_json(json.loads(line))
        except ValueError as exc:
            raise ControlError(f"the daemon's answer is not understood: {exc}") from exc

    @classmethod
    def from_json(cls, raw: Any) -> ReloadResult:
        try:
            return cls(
                ok=bool(raw["ok"]),
                findings=tuple(str(f) for f in raw.get("findings", ())),
                restart_needed=tuple(str(s) for s in raw.get("restart_needed", ())),
                status=str(raw.get("status", "")),
                at=str(raw.get("at", "")),
                trigger=str(raw.get("trigger", "")),
            )
        except (TypeError, KeyError, AttributeError) as exc:
            raise ControlError(f"the daemon's answer is not understood: {exc!r}") from exc


@dataclass(frozen=True, kw_only=True)
class DaemonStatus:
    """Which daemon answers on a control socket, and how its last reload went."""

    config: str  # the config file it runs, resolved
    pid: int
    socket: str
    last_reload: ReloadResult | None = None  # None until the first reload

    def to_line(self) -> bytes:
        return json.dumps(asdict(self)).encode() + b"\n"

    @classmethod
    def from_line(cls, line: bytes) -> DaemonStatus | None:
        """The status in `line`; None from a daemon that does not know the request."""
        try:
            raw: Any = json.loads(line)
            if not isinstance(raw, dict) or "config" not in raw:
                return None
            last = raw.get("last_reload")
            return cls(
                config=str(raw["config"]),
                pid=int(raw.get("pid", 0)),
                socket=str(raw.get("socket", "")),
                last_reload=None if last is None else ReloadResult.from_json(last),
            )
        except (ValueError, TypeError) as exc:
            raise ControlError(f"the daemon's answer is not understood: {exc}") from exc


# -- where the socket is ------------------------------------------------------------------


def runtime_socket(environ: Mapping[str, str] | None = None) -> Path | None:
    """`control.sock` in the first directory of $RUNTIME_DIRECTORY, if that is set."""
    value = (os.environ if environ is None else environ).get("RUNTIME_DIRECTORY", "")
    first = value.split(":", 1)[0]
    return Path(first) / SOCKET_NAME if first else None


def socket_name(config: Path) -> str:
    """`<config file's stem>-<hash of its resolved path>.sock`: one name per config file."""
    resolved = config.resolve()  # a link to the file names the same daemon
    digest = hashlib.sha256(os.fsencode(resolved)).hexdigest()[:NAME_DIGEST_CHARS]
    stem = _UNSAFE_NAME.sub("_", resolved.stem)[:NAME_STEM_CHARS] or "stepd"
    return f"{stem}-{digest}.sock"


def socket_places(
    config: Path, environ: Mapping[str, str] | None = None, uid: int | None = None
) -> list[Path]:
    """Where a daemon running `config` opens its control socket, in order of preference."""
    env = os.environ if environ is None else environ
    runtime = runtime_socket(env)
    if runtime is not None:
        return [runtime]
    name = socket_name(config)
    user = os.getuid() if uid is None else uid
    folders = []
    xdg = env.get("XDG_RUNTIME_DIR", "")
    if xdg and Path(xdg).is_absolute():
        folders.append(Path(xdg) / "stepd")
    tmpdir = env.get("TMPDIR", "")
    tmp = [Path(tmpdir)] if tmpdir and Path(tmpdir).is_absolute() else []
    folders.extend(folder / f"stepd-{user}" for folder in [*tmp, DEFAULT_TMPDIR])
    # a second daemon of the same config (another store, from the environment) takes -2, ...
    names = [name, *(name.replace(".sock", f"-{n}.sock") for n in range(2, MAX_INSTANCES + 1))]
    return list(dict.fromkeys(folder / each for folder in folders for each in names))


def client_places(
    config: Path, environ: Mapping[str, str] | None = None, uid: int | None = None
) -> list[Path]:
    """Where `stepd reload -c config` looks: every place a daemon may have chosen."""
    env = os.environ if environ is None else environ
    without_runtime = {k: v for k, v in env.items() if k != "RUNTIME_DIRECTORY"}
    places = [runtime_socket(env), *socket_places(config, without_runtime, uid), DEFAULT_SOCKET]
    return list(dict.fromkeys(p for p in places if p is not None))


def find_daemon(config: Path, environ: Mapping[str, str] | None = None) -> Path:
    """The control socket of the daemon that runs `config`.

    Raises ControlError naming every place looked at, and what was found there.
    """
    wanted = str(config.resolve())
    looked: list[str] = []
    for path in client_places(config, environ):
        if not path.is_socket():
            looked.append(f"{path} (no socket)")
            continue
        try:
            status = request_status(path)
        except ControlError as exc:
            looked.append(f"{path} ({exc.message.removeprefix(f'{path}: ')})")
            continue
        if status is None or status.config == wanted:  # None: a daemon too old to say
            return path
        looked.append(f"{path} (runs {status.config})")
    raise ControlError(
        f"no running stepd runs {wanted}; looked at {'; '.join(looked)}. Start it with "
        "`stepd run -c FILE`, name the config it runs with -c FILE, or its socket with "
        "--socket PATH (its log names it: daemon.ready's control)"
    )


def _private_folder(folder: Path) -> str | None:
    """Make `folder` (mode 0700) if needed; why it cannot hold the socket, or None."""
    try:
        folder.mkdir(mode=FOLDER_MODE, exist_ok=True)
        info = folder.lstat()
    except OSError as exc:
        return f"cannot make the folder {folder}: {exc.strerror or exc}"
    if not stat.S_ISDIR(info.st_mode):
        return f"{folder} is not a folder"
    if info.st_uid != os.getuid() or stat.S_IMODE(info.st_mode) & 0o077:
        return (
            f"the folder {folder} is not private to this user "
            f"(owner {info.st_uid}, mode {stat.S_IMODE(info.st_mode):04o})"
        )
    return None


def _in_use(path: Path) -> bool:
    """Whether a live process answers on the socket at `path`."""
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM | socket.SOCK_CLOEXEC) as sock:
        sock.settimeout(REQUEST_TIMEOUT_SECONDS)
        try:
            sock.connect(str(path))
        except OSError:
            return False
    return True


def _unusable(path: Path, *, private: bool) -> str | None:
    """Why the daemon cannot listen at `path`, or None (after removing a stale socket)."""
    size = len(os.fsencode(str(path)))
    if size > MAX_SOCKET_PATH_BYTES:
        return f"the path is {size} bytes; a unix socket's holds at most {MAX_SOCKET_PATH_BYTES}"
    if private:
        problem = _private_folder(path.parent)
        if problem is not None:
            return problem
    if path.is_socket():
        if _in_use(path):
            return "another process answers on it"
        path.unlink(missing_ok=True)  # left by a daemon that was killed
    elif path.exists() or path.is_symlink():
        return "something that is not a socket is in the way"
    return None


# -- the server ---------------------------------------------------------------------------

Reload = Callable[[], Awaitable[ReloadResult]]
Status = Callable[[], ReloadResult | None]


class ControlServer:
    """Serves requests on a unix socket: `reload` does the work and gives the answer,
    `last_reload` says how the latest one went."""

    def __init__(
        self, path: Path, reload: Reload, last_reload: Status | None = None, config: str = ""
    ) -> None:
        self.path = path
        self._reload = reload
        self._last_reload = last_reload or (lambda: None)
        self._config = config
        self._server: asyncio.Server | None = None
        self._uid = os.getuid()

    async def start(self) -> None:
        self.path.unlink(missing_ok=True)
        self._server = await asyncio.start_unix_server(
            self._handle, path=str(self.path), limit=MAX_REQUEST_BYTES
        )
        self.path.chmod(SOCKET_MODE)
        log.info("control.listening", path=str(self.path))

    async def stop(self) -> None:
        if self._server is None:
            return
        self._server.close()
        await self._server.wait_closed()
        self._server = None
        with contextlib.suppress(OSError):
            self.path.unlink()

    def _peer_allowed(self, writer: asyncio.StreamWriter) -> bool:
        sock = writer.get_extra_info("socket")
        if sock is None:
            return False
        raw = sock.getsockopt(socket.SOL_SOCKET, socket.SO_PEERCRED, _PEERCRED.size)
        _, uid, _ = _PEERCRED.unpack(raw)
        return uid in {0, self._uid}

    async def _answer(self, command: str) -> bytes:
        if command == RELOAD:
            return (await self._reload()).to_line()
        if command == STATUS:
            return DaemonStatus(
                config=self._config,
                pid=os.getpid(),
                socket=str(self.path),
                last_reload=self._last_reload(),
            ).to_line()
        log.warning("control.unknown_command", command=command[:MAX_REQUEST_BYTES])
        return ReloadResult(ok=False, findings=(f"unknown command {command!r}",)).to_line()

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            if not self._peer_allowed(writer):
                log.warning("control.refused", reason="peer user")
                return
            try:
                async with asyncio.timeout(REQUEST_TIMEOUT_SECONDS):
                    line = await reader.readline()
            except (TimeoutError, ValueError, ConnectionError):
                return
            if not line:  # connected and left: another daemon looking whether this one lives
                return
            writer.write(await self._answer(line.decode("utf-8", errors="replace").strip()))
            with contextlib.suppress(ConnectionError):
                await writer.drain()
        finally:
            writer.close()
            with contextlib.suppress(ConnectionError):
                await writer.wait_closed()


async def listen(
    places: Sequence[Path], reload: Reload, last_reload: Status, *, config: str
) -> ControlServer:
    """A started ControlServer at the first of `places` that can hold it.

    Each place passed over is logged with the reason. Raises ControlError when none can.
    """
    skipped: list[str] = []
    runtime = runtime_socket()
    for path in places:
        problem = await asyncio.to_thread(_unusable, path, private=path != runtime)
        server = ControlServer(path, reload, last_reload, config=config)
        if problem is None:
            try:
                await server.start()
            except OSError as exc:
                problem = f"cannot listen: {exc.strerror or exc}"
            else:
                return server
        log.warning("control.place_skipped", path=str(path), reason=problem)
        skipped.append(f"{path}: {problem}")
    raise ControlError(f"no place for the control socket: {'; '.join(skipped)}")


# -- the client ---------------------------------------------------------------------------


def _ask(path: Path, command: str, timeout: float) -> bytes:
    try:
        with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM | socket.SOCK_CLOEXEC) as sock:
            sock.settimeout(timeout)
            sock.connect(str(path))
            sock.sendall(f"{command}\n".encode())
            chunks: list[bytes] = []
            while chunk := sock.recv(65536):
                chunks.append(chunk)
    except TimeoutError as exc:
        raise ControlError(f"{path}: no answer from the daemon within {timeout:g} s") from exc
    except OSError as exc:
        raise ControlError(f"{path}: cannot reach the daemon: {exc.strerror or exc}") from exc
    if not chunks:
        raise ControlError(f"{path}: the daemon closed the connection without an answer")
    return b"".join(chunks)


def request_reload(path: Path, timeout: float = ANSWER_TIMEOUT_SECONDS) -> ReloadResult:
    """Ask the daemon listening on `path` to reload; block until it answers."""
    return ReloadResult.from_line(_ask(path, RELOAD, timeout))


def request_status(path: Path, timeout: float = STATUS_TIMEOUT_SECONDS) -> DaemonStatus | None:
    """Ask the daemon listening on `path` which config it runs and how its last reload went.

    None from a daemon too old to answer that.
    """
    return DaemonStatus.from_line(_ask(path, STATUS, timeout))
