"""The `stepd` command line: run and check the daemon, and talk to its API."""

from __future__ import annotations

import argparse
import json
import os
import signal
import sys
from collections.abc import Callable, Mapping, Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from stepd import __version__
from stepd.asl.loader import load_definition
from stepd.catalog import Catalog, build_catalog
from stepd.client import Client, api_url
from stepd.config import (
    EX_CONFIG,
    Settings,
    client_key,
    connection_names,
    load_settings,
    machine_specs,
    open_api_problem,
    test_runs,
)
from stepd.engine.arns import Arns
from stepd.errors import (
    ApiClientError,
    ConfigError,
    DefinitionError,
    InputError,
    StepdError,
    StoreTooNew,
)
from stepd.graph import FORMATS, render

EX_OK = 0
EX_FAILURE = 1
EX_USAGE = 2  # as argparse exits on a bad argument
EX_UNAVAILABLE = 69
UNREACHABLE = "STORE_UNREACHABLE"  # `stepd check`'s finding for a database it cannot reach
EX_SIGPIPE = 128 + signal.SIGPIPE  # 141: what a shell reports for a command SIGPIPE ended
DEFAULT_CONFIG = Path("/etc/stepd/stepd.toml")
HISTORY_PAGE = 1000  # events per GetExecutionHistory call
LIST_PAGE = 1000  # at most this many executions per ListExecutions call (the API's limit)
DEFAULT_LIST_MAX = 100  # executions `stepd list` shows without --max or --all
STDIN = "-"
FILE_PREFIXES = ("@", "file://")  # --input @FILE, --input file://FILE (as the AWS CLI)


def _default_config() -> Path:
    return Path(os.environ.get("STEPD_CONFIG", str(DEFAULT_CONFIG)))


def _err(message: str) -> None:
    print(f"stepd: {message}", file=sys.stderr)


def _catalog(settings: Settings, config: Path) -> Catalog:
    return build_catalog(
        machine_specs(settings),
        base_url=settings.http.base_url,
        config_source=str(config),
        connections=connection_names(settings),
    )


# -- run / check -------------------------------------------------------------------------


def cmd_run(args: argparse.Namespace) -> int:
    from stepd import logs
    from stepd.daemon import run_daemon

    try:
        settings = load_settings(args.config)
    except ConfigError as exc:
        _err(str(exc))
        return EX_CONFIG
    logs.configure(settings.log.level, settings.log.format)
    catalog = _catalog(settings, args.config)
    for report in catalog.reports:
        print(report, file=sys.stderr)
    if catalog.errors:
        _err(f"{len(catalog.errors)} error(s) in the configuration; not starting")
        return EX_CONFIG
    try:
        return run_daemon(args.config, settings, catalog)
    except (ConfigError, StoreTooNew) as exc:  # restarting would not help: a person must act
        _err(str(exc))
        return EX_CONFIG
    except StepdError as exc:
        _err(str(exc))
        return EX_FAILURE


def cmd_check(args: argparse.Namespace) -> int:
    try:
        settings = load_settings(args.config)
        test_runs(settings)  # the mock config file, if any
    except ConfigError as exc:
        print(f"{exc.where or args.config}: CONFIG: {exc.message}")
        return EX_CONFIG
    catalog = _catalog(settings, args.config)
    for report in catalog.reports:
        print(report)
    open_api = open_api_problem(settings)
    if open_api is not None:  # `stepd run` refuses it (exit 78): say so before a restart does
        print(f"{args.config}: API_NEEDS_KEYS: {open_api}")
        if args.offline:  # checked elsewhere than where it runs: its keys may be loaded there
            open_api = None
    store_problem = None if args.offline else _store_findings(settings, quiet=args.quiet)
    if store_problem is not None:
        print(store_problem)
    refused = catalog.errors or open_api is not None
    if refused or (store_problem is not None and UNREACHABLE not in store_problem):
        return EX_CONFIG
    if store_problem is not None:  # the file is right; the database is not there right now
        return EX_UNAVAILABLE
    if not args.quiet:
        print(f"{args.config}: OK: {len(catalog.machines)} state machine(s)", file=sys.stderr)
    return EX_OK


def _store_findings(settings: Settings, *, quiet: bool) -> str | None:
    """A finding when the daemon could not use its store (what PostgreSQL says of itself, on
    stderr unless `quiet`; a SQLite store [store] url leaves unused, a finding printed)."""
    if settings.store.url is None:
        return _store_problem(settings.store.path)
    store_problem, store_note = _postgres_check(settings)
    if store_note is not None and not quiet:
        print(store_note, file=sys.stderr)
    unused = _sqlite_unused(settings)
    if unused is not None:
        print(f"{settings.store.path}: STORE_PATH_UNUSED: {unused}")
    return store_problem


def _sqlite_unused(settings: Settings) -> str | None:
    """With [store] url set, a warning when the SQLite store at [store] path still holds
    executions: they are not run (nothing moves them to PostgreSQL)."""
    from stepd.store.sqlite import left_behind

    held = left_behind(settings.store.path)
    if held is None:
        return None
    return (
        f"[store] url is set, so this SQLite store is not used: its {held} do not run. "
        "Finish them with a daemon on this store first, or start them again on PostgreSQL"
    )


def _store_problem(path: Path) -> str | None:
    """A finding when the daemon would refuse the store at `path`."""
    from stepd.store.sqlite import refusal

    try:
        reason = refusal(path)
    except StepdError as exc:
        return f"{path}: STORE_UNREADABLE: {exc}"
    return None if reason is None else f"{path}: STORE_TOO_NEW: {reason}"


def _postgres_check(settings: Settings) -> tuple[str | None, str | None]:
    """(a finding when the daemon could not use the PostgreSQL store, what the store says of
    itself): the database reached and its schema version read, nothing changed."""
    import asyncio

    from stepd.config import store_password
    from stepd.store.formats import FORMAT_VERSION
    from stepd.store.pg_schema import SCHEMA_VERSION
    from stepd.store.postgres import describe, read_version
    from stepd.store.schema import too_new

    assert settings.store.url is not None
    where = describe(settings.store.url)
    try:
        found = asyncio.run(read_version(settings.store.url, password=store_password(settings)))
    except ConfigError as exc:
        return f"{where}: STORE_UNREADABLE: {exc.message}", None
    except StepdError as exc:
        return f"{where}: {UNREACHABLE}: {exc}", None
    reason = too_new(
        found, schema=SCHEMA_VERSION, record_format=FORMAT_VERSION, version=__version__
    )
    if reason is not None:
        return f"{where}: STORE_TOO_NEW: {reason}", None
    if found.schema == 0:
        return None, f"{where}: reached; no store there yet (the first node creates it)"
    writer = f"written by stepd {found.written_by}" if found.written_by else "new"
    note = (
        f"{where}: reached; schema {found.schema} of {SCHEMA_VERSION} "
        f"(record format {found.record_format}, {writer})"
    )
    return None, note


def cmd_reload(args: argparse.Namespace) -> int:
    """Reload, or with --status report the last reload: 0 applied (or none yet), 78 rejected."""
    from stepd.control import find_daemon, request_reload, request_status

    path = args.socket or find_daemon(args.config)
    if args.status:
        status = request_status(path)
        if status is None:
            _err(f"{path}: this daemon is too old to report its reloads")
            return EX_UNAVAILABLE
        result = status.last_reload
        if args.json:
            print(json.dumps(None if result is None else result.outcome(), indent=2))
        elif result is None:
            print(f"no reload since the daemon started (pid {status.pid}, {status.config})")
        else:
            verdict = "applied" if result.ok else "rejected; the previous configuration stays"
            print(f"last reload: {result.at} by {result.trigger}: {verdict}")
            for line in (*result.findings, *_restart_notes(result.restart_needed)):
                print(f"  {line}")
        return EX_OK if result is None or result.ok else EX_CONFIG
    result = request_reload(path)
    if args.json:
        print(json.dumps(result.outcome(), indent=2))
    else:
        for line in (*result.findings, *_restart_notes(result.restart_needed)):
            print(line, file=sys.stderr)
    if not result.ok:
        _err("reload rejected; the daemon keeps its previous configuration")
        return EX_CONFIG
    return EX_OK


def _restart_notes(settings: Sequence[str]) -> list[str]:
    return [f"{setting}: changed; takes effect at the next restart" for setting in settings]


def cmd_demo(args: argparse.Namespace) -> int:
    from stepd.demo import run_demo

    if args.nodes < 1:
        _err("--nodes: at least 1")
        return EX_USAGE
    return run_demo(keep=args.keep, nodes=args.nodes)


# -- backup ------------------------------------------------------------------------------


def cmd_backup(args: argparse.Namespace) -> int:
    """Copy the configured store to a new file while the daemon runs, and say what the copy
    holds; 0 when written, 78 when the config cannot be read or names no store, 1 when the
    copy cannot be made."""
    from stepd.errors import StoreError, StoreNotFound
    from stepd.store.records import STATUSES
    from stepd.store.sqlite import backup, count_by_status

    try:
        settings = load_settings(args.config)
    except ConfigError as exc:
        _err(str(exc))
        return EX_CONFIG
    if settings.store.url is not None:
        _err(
            "stepd backup copies a SQLite store; [store] url names a PostgreSQL database: "
            "back it up with pg_dump (see the README's PostgreSQL section)"
        )
        return EX_CONFIG
    source, target = settings.store.path, args.file.absolute()
    try:
        version = backup(source, target)
    except StoreNotFound as exc:
        _err(f"{exc}: check [store] path in {args.config} (or STEPD_STORE__PATH)")
        return EX_CONFIG
    except StoreError as exc:
        _err(str(exc))
        return EX_FAILURE
    try:
        counts = count_by_status(target)
        size = target.stat().st_size
    except (StoreError, OSError) as exc:
        _err(f"{target}: written, but cannot be read back: {exc}")
        return EX_FAILURE
    writer = f"written by stepd {version.written_by or '0.1'}"
    lines = [
        ("backup", str(target)),
        ("of", str(source)),
        ("size", f"{size} bytes"),
        ("schema", f"{version.schema} (record format {version.record_format or 0}, {writer})"),
        ("executions", str(sum(counts.values()))),
    ]
    others = sorted(set(counts) - set(STATUSES))
    lines += [(status, str(counts.get(status, 0))) for status in (*STATUSES, *others)]
    for key, value in lines:
        print(f"{key:>14}: {value}")
    return EX_OK


def _backup_arguments(
    p: argparse.ArgumentParser, config_arg: Callable[[argparse.ArgumentParser], None]
) -> None:
    p.description = (
        "Copy the store that [store] path names to FILE, consistent as of one instant, without "
        "stopping the daemon, and print what the copy holds. FILE must not exist. To restore "
        'it, see "Back up and restore" in the README.'
    )
    config_arg(p)
    p.add_argument("file", type=Path, metavar="FILE", help="the new file")
    p.set_defaults(func=cmd_backup)


# -- API clients -------------------------------------------------------------------------


def _client(args: argparse.Namespace) -> tuple[Client, Arns]:
    if args.api:
        return Client(args.api, key=client_key(None)), Arns()
    try:
        settings = load_settings(args.config)
    except ConfigError as exc:
        raise ConfigError(f"{exc} (or pass --api URL)") from None
    arns = Arns(region=settings.api.region, account=settings.api.account)
    key = client_key(settings)
    return Client(api_url(settings.api.listen), key=key, region=settings.api.region), arns


def _when(value: Any) -> str:
    if value is None:
        return "-"
    return datetime.fromtimestamp(float(value), UTC).isoformat(timespec="milliseconds")


def _print(answer: dict[str, Any], args: argparse.Namespace, human: Callable[[], None]) -> None:
    if args.json:
        print(json.dumps(answer, indent=2))
    else:
        human()


def cmd_start(args: argparse.Namespace) -> int:
    client, arns = _client(args)
    machine_arn = arns.state_machine(args.machine)
    if args.test_case is not None:
        machine_arn += f"#{args.test_case}"
    body: dict[str, Any] = {"stateMachineArn": machine_arn, "name": args.name}
    if args.input is not None:
        body["input"] = _read_input(args.input)
    if args.time_scale is not None:
        body["timeScale"] = args.time_scale
    answer = client.call("StartExecution", body)
    _print(
        answer,
        args,
        lambda: print(f"{answer['executionArn']}  started {_when(answer['startDate'])}"),
    )
    return EX_OK


def cmd_describe(args: argparse.Namespace) -> int:
    client, arns = _client(args)
    answer = client.call(
        "DescribeExecution", {"executionArn": arns.execution(args.machine, args.name)}
    )

    def human() -> None:
        for key in (
            "name",
            "status",
            "executionArn",
            "startDate",
            "stopDate",
            "input",
            "output",
            "error",
            "cause",
            "redriveCount",
            "redriveDate",
            "redriveStatus",
            "redriveStatusReason",
        ):
            if key in answer:
                value = _when(answer[key]) if key.endswith("Date") else answer[key]
                print(f"{key:>19}: {value}")
        extra = answer.get("stepd") or {}
        if "state" in extra:  # running
            print(f"{'state':>19}: {extra.get('state')}")
            print(f"{'next step at':>19}: {_when(extra.get('dueAt'))}")
        down = extra.get("hostDown")
        if down:  # why a step due in the past has not gone out
            print(
                f"{'waiting for host':>19}: {down['host']}, down since {_when(down['since'])} "
                f"({down['error']}); the call goes out when it answers again"
            )
        for key in ("timeScale", "testCase"):
            if key in extra:
                print(f"{key:>19}: {extra[key]}")

    _print(answer, args, human)
    return EX_OK


def cmd_list(args: argparse.Namespace) -> int:
    client, arns = _client(args)
    body: dict[str, Any] = {}
    if args.machine:
        body["stateMachineArn"] = arns.state_machine(args.machine)
    if args.status:
        body["statusFilter"] = args.status.upper()
    if args.next_token:
        body["nextToken"] = args.next_token
    executions, next_token = _list_executions(client, body, None if args.all else args.max)
    answer: dict[str, Any] = {"executions": executions}
    if next_token:
        answer["nextToken"] = next_token

    def human() -> None:
        print(f"{'STATUS':<10} {'STARTED':<30} {'MACHINE':<20} NAME")
        for item in executions:
            machine = item["stateMachineArn"].rsplit(":", 1)[-1]
            print(
                f"{item['status']:<10} {_when(item['startDate']):<30} {machine:<20} {item['name']}"
            )

    _print(answer, args, human)
    if next_token:
        sys.stdout.flush()  # the rows first, then what follows them
        more = "--next-token NEXTTOKEN goes on from here" if args.json else "use --max N or --all"
        _err(f"{len(executions)} executions listed; there are more: {more}")
    return EX_OK


def _list_executions(
    client: Client, body: dict[str, Any], limit: int | None
) -> tuple[list[dict[str, Any]], str | None]:
    """Up to `limit` executions (all for None), a page of ListExecutions at a time; and the
    nextToken that goes on from the last one, when there are more."""
    executions: list[dict[str, Any]] = []
    page = dict(body)
    while True:
        size = LIST_PAGE if limit is None else min(LIST_PAGE, limit - len(executions))
        answer = client.call("ListExecutions", page | {"maxResults": size})
        executions.extend(answer["executions"])
        next_token = answer.get("nextToken") or None
        if next_token is None or (limit is not None and len(executions) >= limit):
            return executions, next_token
        page["nextToken"] = next_token


def _history(client: Client, execution_arn: str) -> list[dict[str, Any]]:
    """Every event of an execution, oldest first, a page of GetExecutionHistory at a time."""
    events: list[dict[str, Any]] = []
    body: dict[str, Any] = {"executionArn": execution_arn, "maxResults": HISTORY_PAGE}
    while True:
        answer = client.call("GetExecutionHistory", body)
        events.extend(answer["events"])
        if not answer.get("nextToken"):
            return events
        body["nextToken"] = answer["nextToken"]


def cmd_history(args: argparse.Namespace) -> int:
    client, arns = _client(args)
    events = _history(client, arns.execution(args.machine, args.name))

    def human() -> None:
        for event in events:
            details: dict[str, Any] = next(
                (v for k, v in event.items() if k.endswith("EventDetails")), {}
            )
            summary = " ".join(
                f"{k}={v}"
                for k, v in details.items()
                if k in {"name", "error", "cause", "resource", "output", "updatedBy", "workerName"}
            )
            print(f"{event['id']:>4}  {_when(event['timestamp'])}  {event['type']:<22} {summary}")

    _print({"events": events}, args, human)
    return EX_OK


def cmd_stop(args: argparse.Namespace) -> int:
    client, arns = _client(args)
    body: dict[str, Any] = {"executionArn": arns.execution(args.machine, args.name)}
    if args.error:
        body["error"] = args.error
    if args.cause:
        body["cause"] = args.cause
    answer = client.call("StopExecution", body)
    _print(answer, args, lambda: print(f"stopped {_when(answer['stopDate'])}"))
    return EX_OK


def cmd_redrive(args: argparse.Namespace) -> int:
    client, arns = _client(args)
    answer = client.call(
        "RedriveExecution", {"executionArn": arns.execution(args.machine, args.name)}
    )
    _print(answer, args, lambda: print(f"redriven {_when(answer['redriveDate'])}"))
    return EX_OK


def cmd_task_success(args: argparse.Namespace) -> int:
    client, _ = _client(args)
    output = _read_input(args.output) if args.output is not None else "{}"
    answer = client.call("SendTaskSuccess", {"taskToken": args.token, "output": output})
    _print(answer, args, lambda: print("task succeeded"))
    return EX_OK


def cmd_task_failure(args: argparse.Namespace) -> int:
    client, _ = _client(args)
    body: dict[str, Any] = {"taskToken": args.token}
    if args.error is not None:
        body["error"] = args.error
    if args.cause is not None:
        body["cause"] = args.cause
    answer = client.call("SendTaskFailure", body)
    _print(answer, args, lambda: print("task failed"))
    return EX_OK


def cmd_task_heartbeat(args: argparse.Namespace) -> int:
    client, _ = _client(args)
    answer = client.call("SendTaskHeartbeat", {"taskToken": args.token})
    _print(answer, args, lambda: print("heartbeat sent"))
    return EX_OK


def _read_input(value: str) -> str:
    """--input's text: JSON as given, or read from stdin (`-`) or a file (`@FILE`,
    `file://FILE`). Raises InputError saying what could not be read."""
    try:
        if value == STDIN:
            return sys.stdin.buffer.read().decode("utf-8")
        for prefix in FILE_PREFIXES:
            if value.startswith(prefix):
                path = Path(value.removeprefix(prefix)).expanduser()
                return path.read_bytes().decode("utf-8")
    except OSError as exc:
        raise InputError(f"--input {value}: cannot read: {exc.strerror or exc}") from exc
    except UnicodeDecodeError as exc:
        raise InputError(f"--input {value}: not UTF-8 text: {exc.reason}") from exc
    return value


# -- update, apply, agenda: moved classes, timetables, the hour ahead --------------------


def cmd_update(args: argparse.Namespace) -> int:
    client, arns = _client(args)
    body: dict[str, Any] = {
        "executionArn": arns.execution(args.machine, args.name),
        "input": _read_input(args.input),
        "merge": args.merge,
    }
    answer = client.call("Stepd.UpdateExecution", body)

    def human() -> None:
        moved = ""
        if answer.get("previousDueAt") != answer.get("dueAt"):
            moved = f" (was {_when(answer.get('previousDueAt'))})"
        print(
            f"{answer['executionArn']}  updated; at {answer.get('state')}, next step at "
            f"{_when(answer.get('dueAt'))}{moved}"
        )

    _print(answer, args, human)
    return EX_OK


TIMETABLE_FORMATS = {".csv": "csv", ".jsonl": "jsonl", ".ndjson": "jsonl", ".json": "jsonl"}
SHOWN_PER_MINUTE = 5  # names `stepd agenda` prints on a minute's line


def _timetable(path: str, fmt: str | None) -> tuple[str, str]:
    """The text of the timetable at `path` (or - for stdin) and its format: as given, else by
    the file's extension, else by its first character ({ for JSON lines)."""
    try:
        if path == STDIN:
            text = sys.stdin.buffer.read().decode("utf-8")
        else:
            text = Path(path).expanduser().read_bytes().decode("utf-8")
    except OSError as exc:
        raise InputError(f"{path}: cannot read the timetable: {exc.strerror or exc}") from exc
    except UnicodeDecodeError as exc:
        raise InputError(f"{path}: the timetable is not UTF-8 text: {exc.reason}") from exc
    if fmt is None:
        fmt = TIMETABLE_FORMATS.get(Path(path).suffix.lower())
    if fmt is None:
        fmt = "jsonl" if text.lstrip().startswith("{") else "csv"
    return text, fmt


def cmd_apply(args: argparse.Namespace) -> int:
    client, arns = _client(args)
    text, fmt = _timetable(args.file, args.format)
    answer = client.call(
        "Stepd.ApplyTimetable",
        {
            "stateMachineArn": arns.state_machine(args.machine),
            "timetable": text,
            "format": fmt,
            "prune": args.prune,
            "dryRun": args.dry_run,
        },
    )
    plan = answer["plan"]

    def human() -> None:
        for item in plan["start"]:
            print(f"start   {item['name']}  {json.dumps(item['input'])}")
        for item in plan["update"]:
            changes = ", ".join(
                f"{k}: {json.dumps(c['from'])} -> {json.dumps(c['to'])}"
                for k, c in item["changes"].items()
            )
            print(f"update  {item['name']}  {changes}")
        for name in plan["stop"]:
            print(f"stop    {name}")
        print(
            f"{len(plan['start'])} to start, {len(plan['update'])} to update, "
            f"{len(plan['stop'])} to stop, {plan['unchanged']} unchanged"
            + (f", {len(plan['closed'])} closed (left alone)" if plan["closed"] else "")
            + (
                f", {len(plan['kept'])} running but not listed (--prune stops them)"
                if plan["kept"]
                else ""
            )
            + ("; dry run: nothing was changed" if args.dry_run else "; applied")
        )

    _print(answer, args, human)
    for failure in answer.get("failed", []):
        _err(f"{failure['name']}: {failure['error']}")
    return EX_FAILURE if answer.get("failed") else EX_OK


def _instant(value: str) -> float:
    """An instant on the command line: RFC 3339 (2027-01-15T08:00:00Z), unix seconds, or
    `now`/`+90m`/`+2h`/`-30s` from now."""
    now = datetime.now(UTC).timestamp()
    if value == "now":
        return now
    units = {"s": 1, "m": 60, "h": 3600, "d": 86400}
    if value[:1] in "+-" and value[-1:] in units:
        try:
            return now + float(value[:-1]) * units[value[-1]]
        except ValueError:
            pass
    try:
        return float(value)
    except ValueError:
        pass
    try:
        moment = datetime.fromisoformat(value)
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"expected a time such as 2027-01-15T08:00:00Z, +2h or now, got {value!r}"
        ) from None
    return (moment if moment.tzinfo else moment.replace(tzinfo=UTC)).timestamp()


def cmd_agenda(args: argparse.Namespace) -> int:
    client, arns = _client(args)
    body: dict[str, Any] = {}
    if args.start is not None:
        body["from"] = args.start
    if args.end is not None:
        body["to"] = args.end
    if args.machine:
        body["stateMachineArn"] = arns.state_machine(Arns.machine_of(args.machine))
    answer = client.call("Stepd.GetAgenda", body)

    def human() -> None:
        print(f"from {_when(answer['from'])} to {_when(answer['to'])}: {answer['total']} due")
        for minute in answer["minutes"]:
            names = [f"{e['machine']}/{e['name']}" for e in minute["executions"]]
            more = len(names) - SHOWN_PER_MINUTE
            shown = ", ".join(names[:SHOWN_PER_MINUTE]) + (f" (+{more})" if more > 0 else "")
            print(f"{_when(minute['minute'])[:16]}Z  {minute['count']:>6}  {shown}")

    _print(answer, args, human)
    return EX_OK


# -- graph -------------------------------------------------------------------------------


def cmd_graph(args: argparse.Namespace) -> int:
    """Print the diagram; 0 when drawn, 78 on a config problem, 1 when the API refuses."""
    machine = Arns.machine_of(args.machine)
    try:
        if args.api or args.execution:
            definition, events = _graph_from_api(args, machine)
        else:
            definition, events = _definition_from_config(args.config, machine), None
    except ConfigError as exc:
        _err(str(exc))
        return EX_CONFIG
    except DefinitionError as exc:
        _err(f"{exc.where}: {exc}")
        return EX_CONFIG
    except ApiClientError as exc:
        _err(str(exc))
        return EX_FAILURE
    title = f"{machine}: {args.execution}" if args.execution else machine
    sys.stdout.write(render(definition, args.format, events, title=title))
    return EX_OK


def _definition_from_config(config: Path, machine: str) -> Mapping[str, Any]:
    settings = load_settings(config)
    for entry in settings.machines:
        if entry.name == machine:
            return load_definition(entry.definition, entry.key).definition
    names = ", ".join(entry.name for entry in settings.machines) or "none"
    raise ConfigError(f"{config}: no state machine named {machine!r} (configured: {names})")


def _graph_from_api(
    args: argparse.Namespace, machine: str
) -> tuple[Mapping[str, Any], list[dict[str, Any]] | None]:
    """The machine's definition from DescribeStateMachine; with --execution, its history."""
    client, arns = _client(args)
    try:
        described = client.call("DescribeStateMachine", {"stateMachineArn": machine})
        definition = json.loads(described["definition"])
        if not isinstance(definition, Mapping):
            raise StepdError("the API answered a definition that is not a JSON object")
        if not args.execution:
            return definition, None
        return definition, _history(client, arns.execution(machine, args.execution))
    finally:
        client.close()


# -- parser ------------------------------------------------------------------------------


def _add_reload(
    commands: argparse._SubParsersAction[argparse.ArgumentParser],
    config_arg: Callable[[argparse.ArgumentParser], None],
) -> None:
    reload = commands.add_parser(
        "reload",
        help="make the running daemon re-read its config, and wait for the result",
        description="Make the daemon that runs the config file re-read it, and wait until it "
        "has applied it (exit 0) or rejected it (exit 78, the findings on stderr; the daemon "
        "keeps its previous configuration). The daemon is found from -c FILE, however it was "
        "started: its control socket is in $RUNTIME_DIRECTORY under systemd, else in "
        "$XDG_RUNTIME_DIR/stepd/, else in $TMPDIR/stepd-UID/ or /tmp/stepd-UID/ "
        "(its log says where, as daemon.ready's `control`); exit 69 when no daemon runs "
        "FILE. A SIGHUP reloads too; --status shows how the last reload went, whichever "
        "asked for it.",
    )
    config_arg(reload)
    reload.add_argument(
        "--socket",
        type=Path,
        metavar="PATH",
        help="the daemon's control socket, instead of finding it from -c FILE",
    )
    reload.add_argument(
        "--status",
        action="store_true",
        help="do not reload: show the outcome of the last reload (SIGHUP or stepd reload); "
        "exit 78 if it was rejected",
    )
    reload.add_argument("--json", action="store_true", help="print the outcome as JSON")
    reload.set_defaults(func=cmd_reload)


def _add_list_limits(listing: argparse.ArgumentParser) -> None:
    limits = listing.add_mutually_exclusive_group()
    limits.add_argument(
        "--max",
        type=_positive,
        default=DEFAULT_LIST_MAX,
        metavar="N",
        help=f"list at most N executions, newest first (default {DEFAULT_LIST_MAX}); when "
        "there are more, stderr says so and --json's answer carries a nextToken",
    )
    limits.add_argument("--all", action="store_true", help="list every execution")
    listing.add_argument(
        "--next-token", metavar="TOKEN", help="go on where a listing that had more stopped"
    )


def _positive(value: str) -> int:
    try:
        number = int(value)
    except ValueError:
        number = 0
    if number < 1:
        raise argparse.ArgumentTypeError(f"expected a whole number of at least 1, got {value!r}")
    return number


def _add_task_parsers(client_parser: Callable[..., argparse.ArgumentParser]) -> None:
    """task-success, task-failure, task-heartbeat: the callbacks of `.waitForTaskToken`."""
    success = client_parser(
        "task-success",
        "complete a waiting .waitForTaskToken task (SendTaskSuccess)",
        cmd_task_success,
        machine="none",
    )
    success.add_argument("token", help="the task's token ($$.Task.Token)")
    success.add_argument("--output", metavar="JSON|@FILE|-", help="the task's result (default: {})")
    failure = client_parser(
        "task-failure",
        "fail a waiting .waitForTaskToken task (SendTaskFailure)",
        cmd_task_failure,
        machine="none",
    )
    failure.add_argument("token", help="the task's token ($$.Task.Token)")
    failure.add_argument("--error")
    failure.add_argument("--cause")
    heartbeat = client_parser(
        "task-heartbeat",
        "tell a waiting .waitForTaskToken task its worker is alive (SendTaskHeartbeat)",
        cmd_task_heartbeat,
        machine="none",
    )
    heartbeat.add_argument("token", help="the task's token ($$.Task.Token)")


def _demo_arguments(demo: argparse.ArgumentParser) -> None:
    demo.add_argument("--keep", action="store_true", help="keep the demo's folder")
    demo.add_argument(
        "--nodes",
        type=int,
        default=1,
        metavar="N",
        help="run N nodes on a throwaway PostgreSQL (installed here) and kill one mid-class",
    )
    demo.set_defaults(func=cmd_demo)


def _add_timetable_parsers(client_parser: Callable[..., argparse.ArgumentParser]) -> None:
    """update, apply, agenda: stepd's own operations (Stepd.*)."""
    update = client_parser(
        "update",
        "replace (or --merge into) the input of a running execution: a class that moved",
        cmd_update,
    )
    update.add_argument("name")
    update.add_argument(
        "--input", required=True, metavar="JSON|@FILE|-", help="the new input (or fields)"
    )
    update.add_argument(
        "--merge", action="store_true", help="set only the given fields, keep the others"
    )
    apply = client_parser(
        "apply",
        "start, update and (--prune) stop executions to match a timetable file",
        cmd_apply,
    )
    apply.add_argument("file", metavar="FILE", help="CSV with a header, or JSON lines; - for stdin")
    apply.add_argument("--format", choices=("csv", "jsonl"), help="default: by the file's name")
    apply.add_argument("--dry-run", action="store_true", help="print the plan, change nothing")
    apply.add_argument(
        "--prune", action="store_true", help="stop running executions the file does not list"
    )
    agenda = client_parser(
        "agenda", "which executions fall due when, per minute", cmd_agenda, machine="none"
    )
    agenda.add_argument("--from", dest="start", type=_instant, metavar="T", help="default: now")
    agenda.add_argument(
        "--to", dest="end", type=_instant, metavar="T", help="default: an hour after --from"
    )
    agenda.add_argument("--machine", metavar="M", help="only this state machine's executions")


def _add_start_options(start: argparse.ArgumentParser) -> None:
    start.add_argument("name", help="execution name, e.g. the class id")
    start.add_argument(
        "--input",
        metavar="JSON|@FILE|-",
        help="execution input: JSON text, or @FILE (also file://FILE) to read it from a file, "
        "or - to read it from stdin (for inputs too long for a command line)",
    )
    start.add_argument(
        "--time-scale",
        type=float,
        metavar="N",
        help="testing only ([testing] enabled = true): every wait lasts 1/N of its time",
    )
    start.add_argument(
        "--test-case",
        metavar="NAME",
        help="testing only: answer the tasks from this test case of [testing] mock_config",
    )


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="stepd", description="Run Amazon States Language state machines durably."
    )
    parser.add_argument("--version", action="version", version=f"stepd {__version__}")
    commands = parser.add_subparsers(dest="command", required=True)

    def config_arg(p: argparse.ArgumentParser) -> None:
        p.add_argument(
            "-c",
            "--config",
            type=Path,
            default=_default_config(),
            help="config file (default: $STEPD_CONFIG or /etc/stepd/stepd.toml)",
        )

    run = commands.add_parser("run", help="run the daemon")
    config_arg(run)
    run.set_defaults(func=cmd_run)

    check = commands.add_parser("check", help="validate the config and its definitions")
    config_arg(check)
    check.add_argument("-q", "--quiet", action="store_true", help="print findings only")
    check.add_argument(
        "--offline",
        action="store_true",
        help="the config file and its definitions only: no store or database is read (what a"
        " reload of a running daemon applies; needs no database password)",
    )
    check.set_defaults(func=cmd_check)

    _add_reload(commands, config_arg)

    _demo_arguments(
        commands.add_parser("demo", help="record one classroom against a local stand-in")
    )

    _backup_arguments(
        commands.add_parser("backup", help="copy the store to a new file while it runs"),
        config_arg,
    )

    def client_parser(
        name: str,
        help_text: str,
        func: Callable[[argparse.Namespace], int],
        machine: str = "required",
    ) -> argparse.ArgumentParser:
        p = commands.add_parser(name, help=help_text)
        config_arg(p)
        p.add_argument("--api", help="API URL (http://HOST:PORT or unix:/PATH) instead of -c")
        p.add_argument("--json", action="store_true", help="print the API's JSON answer")
        if machine != "none":  # "required" or "optional"
            nargs = None if machine == "required" else "?"
            p.add_argument("machine", nargs=nargs, help="state machine name or ARN")
        p.set_defaults(func=func)
        return p

    start = client_parser("start", "start an execution", cmd_start)
    _add_start_options(start)
    describe = client_parser("describe", "describe an execution", cmd_describe)
    describe.add_argument("name")
    listing = client_parser("list", "list executions", cmd_list, machine="optional")
    listing.add_argument("--status", help="RUNNING, SUCCEEDED, FAILED, TIMED_OUT or ABORTED")
    _add_list_limits(listing)
    hist = client_parser("history", "show an execution's history", cmd_history)
    hist.add_argument("name")
    stop = client_parser("stop", "stop (abort) an execution", cmd_stop)
    stop.add_argument("name")
    stop.add_argument("--error")
    stop.add_argument("--cause")
    redrive = client_parser(
        "redrive",
        "take a FAILED, TIMED_OUT or ABORTED execution up again where it failed",
        cmd_redrive,
    )
    redrive.add_argument("name")
    _add_task_parsers(client_parser)
    _add_timetable_parsers(client_parser)

    graph = commands.add_parser(
        "graph",
        help="draw a state machine (and where an execution is) as mermaid, dot or svg",
        description="Print the diagram of MACHINE. Its definition comes from the config file, "
        "or from the API with --api or --execution; --execution colours the states the "
        "execution passed (done, failed, current).",
    )
    config_arg(graph)
    graph.add_argument("--api", help="API URL (http://HOST:PORT or unix:/PATH) instead of -c")
    graph.add_argument("machine", help="state machine name or ARN")
    graph.add_argument("--execution", metavar="NAME", help="colour the states NAME passed")
    graph.add_argument("--format", choices=FORMATS, default="mermaid", help="default: mermaid")
    graph.set_defaults(func=cmd_graph)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    try:
        try:
            return _main(argv)
        finally:
            sys.stdout.flush()  # a reader that went away shows here, not at exit
    except BrokenPipeError:
        return _stdout_closed()


def _main(argv: Sequence[str] | None) -> int:
    args = build_parser().parse_args(argv)
    try:
        if getattr(args, "machine", None):
            args.machine = Arns.machine_of(args.machine)
        code: int = args.func(args)
    except ApiClientError as exc:
        _err(str(exc))
        return EX_FAILURE
    except InputError as exc:
        _err(str(exc))
        return EX_USAGE
    except StepdError as exc:
        _err(str(exc))
        return EX_UNAVAILABLE
    return code


def _stdout_closed() -> int:
    """The reader of stdout went away (`stepd list | head -1`): stop quietly, as a command
    that SIGPIPE ends does. Python flushes stdout once more at exit; point it at /dev/null
    so that this flush has nowhere to fail (as the Python docs on SIGPIPE advise)."""
    devnull = os.open(os.devnull, os.O_WRONLY)
    os.dup2(devnull, sys.stdout.fileno())
    os.close(devnull)
    return EX_SIGPIPE


if __name__ == "__main__":
    sys.exit(main())
