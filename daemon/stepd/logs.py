"""structlog: JSON lines under a service manager, the console renderer on a terminal.

Under journald (stdout is the stream named by $JOURNAL_STREAM, as systemd.exec(5) says to
check) each JSON line carries a `<N>` syslog priority prefix so `journalctl -p err` works.

Lines logged on the event loop are written together at the end of the loop's turn (one write
for a burst of task results instead of one each); anywhere else they are written at once.
"""

from __future__ import annotations

import asyncio
import atexit
import contextvars
import logging
import os
import sys
import threading
import time
import traceback
from collections.abc import Callable, Mapping
from types import MappingProxyType
from typing import Any, TextIO

import structlog
from structlog.tracebacks import ExceptionDictTransformer

from stepd import jsontext

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


class LineWriter:
    """A structlog logger writing whole lines to `stream`, batched per event-loop turn."""

    def __init__(self, stream: TextIO) -> None:
        self._stream = stream
        self._lines: list[str] = []
        self._lock = threading.Lock()
        self._flush_on: asyncio.AbstractEventLoop | None = None  # a flush is scheduled there

    def msg(self, message: str) -> None:
        try:
            loop = asyncio.get_running_loop()
        except RuntimeError:
            loop = None
        with self._lock:
            self._lines.append(message)
            if loop is None:
                self._write()
                return
            if self._flush_on is loop:
                return
            self._flush_on = loop
        loop.call_soon(self.flush)

    def flush(self) -> None:
        with self._lock:
            self._flush_on = None
            self._write()

    def _write(self) -> None:
        if not self._lines:
            return
        text = "\n".join(self._lines) + "\n"
        self._lines.clear()
        try:
            self._stream.write(text)
            self._stream.flush()
        except (OSError, ValueError):
            pass  # stdout gone (closed pipe, closed file): nowhere to write a line about it

    log = debug = info = warn = warning = msg
    fatal = failure = err = error = critical = exception = msg


_writer: LineWriter | None = None  # the configured one


def _fallback(value: Any) -> Any:
    """What a line holds that JSON has no type for: its `__structlog__()`, else its repr (as
    structlog's JSONRenderer does)."""
    try:
        return value.__structlog__()
    except AttributeError:
        return repr(value)


# The fields the lines logged in the current context carry (`bind`): one variable holding
# them all, set and reset once per step (structlog's contextvars keep one variable a field,
# and merging them copies the whole context: about 3 µs a step and 1 µs a line).
_context: contextvars.ContextVar[Mapping[str, Any]] = contextvars.ContextVar(
    "stepd_log_context", default=MappingProxyType({})
)


def bind(**fields: Any) -> contextvars.Token[Mapping[str, Any]]:
    """Add `fields` to the lines logged in this context (a task's, or a step's until
    `reset`); a field a line sets itself wins."""
    return _context.set({**_context.get(), **fields})


def unbound() -> None:
    """Log from here on (in this task) without the fields bound where it was started: a
    background job that the scheduler started from whatever step ran last is about no
    execution."""
    _context.set(MappingProxyType({}))


def reset(token: contextvars.Token[Mapping[str, Any]]) -> None:
    """Take back what the `bind` that gave `token` added."""
    _context.reset(token)


def merge_context(_: Any, __: str, event_dict: Any) -> Any:
    """A structlog processor: the bound fields (`bind`) the line does not set itself."""
    for name, value in _context.get().items():
        event_dict.setdefault(name, value)
    return event_dict


_STANDARD_FIELDS: tuple[Callable[[Any, str, Any], Any], ...] = (
    merge_context,
    structlog.processors.add_log_level,
    structlog.processors.TimeStamper(fmt="iso", utc=True),
    structlog.processors.StackInfoRenderer(),
    # tracebacks as data, without each frame's local variables: a frame may hold an
    # execution's input, a task token or a connection's password
    structlog.processors.ExceptionRenderer(ExceptionDictTransformer(show_locals=False)),
)
_second: tuple[int, str] = (0, "")  # the last whole second stamped, as ISO text


def _timestamp() -> str:
    """Now in UTC as ISO 8601 with microseconds, the date and time of day formatted once a
    second."""
    global _second  # noqa: PLW0603 - a one-entry cache
    now = time.time()
    whole = int(now)
    if whole != _second[0]:
        _second = (whole, time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(whole)))
    return f"{_second[1]}.{int((now - whole) * 1_000_000):06d}Z"


def _line_fields(logger: Any, method: str, event_dict: Any) -> Any:
    """The fields every JSON line carries, in one step: the context (structlog's contextvars;
    the line's own keys win), `level` and an ISO `timestamp` in UTC; a line with `exc_info`
    or `stack_info` goes through structlog's own processors for them (a line a step costs
    about half of those five processors in turn)."""
    if "exc_info" in event_dict or "stack_info" in event_dict:
        for processor in _STANDARD_FIELDS:
            event_dict = processor(logger, method, event_dict)
        return event_dict
    for name, value in _context.get().items():
        event_dict.setdefault(name, value)
    event_dict = structlog.processors.add_log_level(logger, method, event_dict)
    event_dict["timestamp"] = _timestamp()
    return event_dict


def _json_line(logger: Any, method: str, event_dict: Any) -> str:
    """A JSON line: `_line_fields`, rendered as structlog's JSONRenderer would."""
    return jsontext.line(_line_fields(logger, method, event_dict), _fallback)


def _journal_line(logger: Any, method: str, event_dict: Any) -> str:
    """A JSON line for the journal: `_json_line` after its `<N>` syslog priority."""
    return _journal_prefix(logger, method, _json_line(logger, method, event_dict))


class _Direct:
    """What `configure` set up, for a line to skip structlog's dispatch: the processors list
    it configured (a line takes this path only while that list is structlog's and holds just
    that), the one processor that renders a line, the lowest level written and the writer."""

    __slots__ = ("level", "processors", "render", "writer")

    def __init__(
        self,
        processors: list[Any],
        render: Callable[[Any, str, Any], str],
        level: int,
        writer: LineWriter,
    ) -> None:
        self.processors = processors
        self.render = render
        self.level = level
        self.writer = writer

    def intact(self) -> bool:
        """Whether structlog's processors are still the one that renders (a test's
        `capture_logs` replaces it in the same list)."""
        processors = self.processors
        return len(processors) == 1 and processors[0] is self.render


_direct: _Direct | None = None  # set by `configure` for JSON lines


class Logger:
    """A module's logger: structlog's, made once for each configuration of structlog (its
    `get_logger` proxy makes a new one on every call, about 1.5 µs a line; caching those
    instead would keep a reconfigured level or a test's `capture_logs` from reaching them).

    Its info and debug lines skip structlog's dispatch while structlog has the JSON
    configuration `configure` made (the same line, about 2 µs sooner); under any other
    configuration (the console's, a test's `capture_logs`) they go through structlog."""

    __slots__ = ("_bound", "_direct", "_factory", "_name", "_processors", "_wrapper")

    def __init__(self, name: str) -> None:
        self._name = name
        self._bound: Any = None
        self._direct: _Direct | None = None
        # the configuration's parts `_bound` was made with
        self._processors: Any = None
        self._wrapper: Any = None
        self._factory: Any = None

    def _logger(self) -> Any:
        config = structlog.get_config()
        processors = config["processors"]
        wrapper = config["wrapper_class"]
        factory = config["logger_factory"]
        if (
            processors is not self._processors
            or wrapper is not self._wrapper
            or factory is not self._factory
        ):
            self._bound = structlog.get_logger(self._name).bind()
            self._processors, self._wrapper, self._factory = processors, wrapper, factory
            direct = _direct
            self._direct = (
                direct if direct is not None and direct.processors is processors else None
            )
        return self._bound

    def _line(self, method: str, level: int, event: str, fields: dict[str, Any]) -> Any:
        bound = self._logger()
        direct = self._direct
        if direct is None or not direct.intact():
            return getattr(bound, method)(event, **fields)
        if level < direct.level:
            return None
        fields["event"] = event  # structlog's order: the line's fields, then its event
        direct.writer.msg(direct.render(None, method, fields))
        return None

    def debug(self, event: str, **fields: Any) -> Any:
        return self._line("debug", logging.DEBUG, event, fields)

    def info(self, event: str, **fields: Any) -> Any:
        return self._line("info", logging.INFO, event, fields)

    def warning(self, event: str, **fields: Any) -> Any:
        return self._logger().warning(event, **fields)

    def error(self, event: str, **fields: Any) -> Any:
        return self._logger().error(event, **fields)

    def exception(self, event: str, **fields: Any) -> Any:
        return self._logger().exception(event, **fields)


def get_logger(name: str) -> Logger:
    """The logger of module `name`."""
    return Logger(name)


# Libraries whose warnings say nothing stepd's own lines do not (psycopg's pool logs each
# failed reconnection while the database is away; the store's lines say what matters).
QUIET_LIBRARIES = {"psycopg.pool": logging.ERROR}
MAX_LIBRARY_EXCEPTION_CHARS = 8000


class _LibraryLines(logging.Handler):
    """What libraries log through the standard `logging` module (aiohttp's request errors,
    psycopg's) as lines of stepd's own, in the configured format: `library.log`, with the
    library's logger, its message and its exception, instead of bare text on stderr."""

    def emit(self, record: logging.LogRecord) -> None:
        fields: dict[str, Any] = {"logger": record.name}
        try:
            fields["message"] = record.getMessage()
        except (TypeError, ValueError):
            fields["message"] = str(record.msg)
        if record.exc_info:
            text = "".join(traceback.format_exception(*record.exc_info))
            fields["exception"] = text[-MAX_LIBRARY_EXCEPTION_CHARS:]
        if record.levelno >= logging.ERROR:
            _library.error("library.log", **fields)
        else:
            _library.warning("library.log", **fields)


_library = Logger("stepd.library")


def _take_library_lines() -> None:
    """Route the standard `logging` module's warnings and errors to stepd's lines."""
    root = logging.getLogger()
    for handler in [h for h in root.handlers if isinstance(h, _LibraryLines)]:
        root.removeHandler(handler)
    root.addHandler(_LibraryLines(logging.WARNING))
    if root.level == logging.NOTSET or root.level > logging.WARNING:
        root.setLevel(logging.WARNING)
    for name, level in QUIET_LIBRARIES.items():
        logging.getLogger(name).setLevel(level)


@atexit.register
def _flush() -> None:
    if _writer is not None:
        _writer.flush()


def configure(level: str = "info", fmt: str = "auto", stream: TextIO | None = None) -> None:
    out = stream or sys.stdout
    console = fmt == "console" or (fmt == "auto" and out.isatty())
    processors: list[Any]
    if console:
        processors = [*_STANDARD_FIELDS[:-1], structlog.dev.ConsoleRenderer()]
    else:
        processors = [_journal_line if stdout_is_journal(out) else _json_line]
    global _writer, _direct  # noqa: PLW0603 - one writer per configuration, flushed at exit
    _flush()
    writer = _writer = LineWriter(out)
    threshold = LEVELS.get(level, logging.INFO)
    structlog.configure(
        processors=processors,
        wrapper_class=structlog.make_filtering_bound_logger(threshold),
        logger_factory=lambda *_: writer,
        cache_logger_on_first_use=False,
    )
    _direct = None if console else _Direct(processors, processors[0], threshold, writer)
    _take_library_lines()
