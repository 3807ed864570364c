"""structlog: JSON lines under a service manager, the console renderer on a terminal.

Under journald (stdout is the stream named by $JOURNAL_STREAM, as systemd.exec(5) says to
check) each JSON line carries a `<N>` syslog priority prefix so `journalctl -p err` works.
"""

from __future__ import annotations

import logging
import os
import sys
from typing import Any, TextIO

import structlog

LEVELS = {
    "debug": logging.DEBUG,
    "info": logging.INFO,
    "warning": logging.WARNING,
    "error": logging.ERROR,
}
# sd-daemon(3) prefixes: the syslog priority of each structlog method.
SYSLOG_PRIORITY = {
    "debug": 7,
    "info": 6,
    "msg": 6,
    "warning": 4,
    "warn": 4,
    "error": 3,
    "exception": 3,
    "critical": 2,
    "fatal": 2,
}
DEFAULT_PRIORITY = 6  # info


def stdout_is_journal(stream: TextIO = sys.stdout) -> bool:
    value = os.environ.get("JOURNAL_STREAM", "")
    device, _, inode = value.partition(":")
    if not device.isdigit() or not inode.isdigit():
        return False
    try:
        stat = os.fstat(stream.fileno())
    except (OSError, ValueError):
        return False
    return stat.st_dev == int(device) and stat.st_ino == int(inode)


def _journal_prefix(_: Any, method: str, event: str) -> str:
    return f"<{SYSLOG_PRIORITY.get(method, DEFAULT_PRIORITY)}>{event}"


def configure(level: str = "info", fmt: str = "auto", stream: TextIO | None = None) -> None:
    out = stream or sys.stdout
    console = fmt == "console" or (fmt == "auto" and out.isatty())
    processors: list[Any] = [
        structlog.contextvars.merge_contextvars,
        structlog.processors.add_log_level,
        structlog.processors.TimeStamper(fmt="iso", utc=True),
        structlog.processors.StackInfoRenderer(),
    ]
    if console:
        processors.append(structlog.dev.ConsoleRenderer())
    else:
        processors += [structlog.processors.dict_tracebacks, structlog.processors.JSONRenderer()]
        if stdout_is_journal(out):
            processors.append(_journal_prefix)
    structlog.configure(
        processors=processors,
        wrapper_class=structlog.make_filtering_bound_logger(LEVELS.get(level, logging.INFO)),
        logger_factory=structlog.WriteLoggerFactory(out),
        cache_logger_on_first_use=False,
    )
