"""sd_notify(3) in plain Python: one datagram of KEY=VALUE lines to $NOTIFY_SOCKET.

Without $NOTIFY_SOCKET (not started by systemd with Type=notify) every call does nothing. A
failure to send is logged, never raised: the daemon runs on without its service manager.
"""

from __future__ import annotations

import os
import socket
import time
from collections.abc import Mapping

from stepd import logs

log = logs.get_logger("stepd.notify")

USEC_PER_SECOND = 1_000_000


class Notifier:
    def __init__(self, address: str | None = None) -> None:
        address = address if address is not None else os.environ.get("NOTIFY_SOCKET")
        if address and address.startswith("@"):  # the abstract namespace
            address = "\0" + address[1:]
        self._address = address or None

    @property
    def enabled(self) -> bool:
        return self._address is not None

    def send(self, **fields: str | int) -> None:
        """One message; each value on one line (newlines become spaces)."""
        if self._address is None:
            return
        message = "\n".join(
            f"{key.upper()}={str(value).replace(chr(10), ' ')}" for key, value in fields.items()
        )
        try:
            with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM | socket.SOCK_CLOEXEC) as sock:
                sock.connect(self._address)
                sock.sendall(message.encode("utf-8"))
        except OSError as exc:
            log.warning("notify.failed", error=str(exc))

    def ready(self, status: str) -> None:
        """Start-up or a reload is complete."""
        self.send(ready=1, status=status)

    def status(self, status: str) -> None:
        self.send(status=status)

    def reloading(self) -> None:
        """A reload begins; MONOTONIC_USEC lets the manager match it with the next READY=1."""
        self.send(reloading=1, monotonic_usec=time.clock_gettime_ns(time.CLOCK_MONOTONIC) // 1000)

    def stopping(self) -> None:
        self.send(stopping=1)

    def watchdog(self) -> None:
        self.send(watchdog=1)


def watchdog_interval(environ: Mapping[str, str] | None = None) -> float | None:
    """Seconds between pings (half of $WATCHDOG_USEC), when the watchdog is meant for this
    process ($WATCHDOG_PID unset or ours); None when there is no watchdog."""
    env = os.environ if environ is None else environ
    usec = env.get("WATCHDOG_USEC", "")
    pid = env.get("WATCHDOG_PID", "")
    if not usec.isdigit() or int(usec) == 0:
        return None
    if pid.isdigit() and int(pid) != os.getpid():
        return None
    return int(usec) / USEC_PER_SECOND / 2
