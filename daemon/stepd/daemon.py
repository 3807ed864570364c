"""The composition root: store, engine, timers and API, with signals, sd_notify and reload.

Lifecycle under a service manager (systemd.service(5) Type=notify):

- start: open the store, register the machines, start the run queue, the timers, the API and
  the control socket; only then READY=1.
- while running: WATCHDOG=1 from the event loop every WATCHDOG_USEC/2 (a blocked loop stops
  the pings and the manager restarts the process); STATUS= a one-line summary, refreshed.
- SIGHUP or `stepd reload`: RELOADING=1 (with MONOTONIC_USEC), read and validate the file off
  the loop, apply it or keep the running configuration, READY=1. The outcome (when, ok,
  findings) is kept: `/healthz` and `stepd reload --status` show the last one.
- the control socket is opened however the daemon was started (control.socket_places).
- SIGTERM or SIGINT: STOPPING=1; no new task call starts; calls in flight get
  DRAIN_TIMEOUT_SECONDS to finish (those that do not are sent again after the next start,
  with the same idempotency key); every write is committed; exit 0.
"""

from __future__ import annotations

import asyncio
import contextlib
import gc
import signal
import time
from collections.abc import Awaitable, Callable, Coroutine, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, TypeVar

from stepd import __version__, logs
from stepd.access import ApiAccess
from stepd.alerts import Alerts, Target
from stepd.api.server import ApiServer
from stepd.catalog import Catalog, build_catalog
from stepd.client import api_url
from stepd.cluster import Cluster, FencedCaller, published
from stepd.config import (
    SIGNING_CREDENTIAL,
    Settings,
    api_access,
    connection_names,
    load_settings,
    machine_specs,
    read_connections,
    read_notify,
    read_secret,
    store_password,
    test_runs,
)
from stepd.control import (
    TRIGGER_SIGNAL,
    TRIGGER_SOCKET,
    ControlServer,
    ReloadResult,
    listen,
    socket_places,
)
from stepd.engine.arns import Arns
from stepd.engine.executor import Engine
from stepd.engine.machines import Machine
from stepd.engine.testruns import TestRuns
from stepd.errors import (
    ControlError,
    StepdError,
    StoppedBeforeReady,
    StoreError,
    StoreTooNew,
    StoreUnreachable,
)
from stepd.metrics import Metrics
from stepd.notify import Notifier, watchdog_interval
from stepd.store.base import Store
from stepd.store.pg_nodes import NodeLeases
from stepd.store.postgres import PostgresStore, describe
from stepd.store.sqlite import SqliteStore, left_behind
from stepd.tasks.caller import DEFAULT_USER_AGENT, Caller, TaskCaller
from stepd.tasks.connections import Connections
from stepd.tasks.signing import secret_key
from stepd.timers import Timers
from stepd.tracing import Exporter, TracingCaller, TracingObserver

log = logs.get_logger("stepd.daemon")


def open_store(settings: Settings) -> Store:
    """The configured store, not yet open: PostgreSQL when [store] url is set, else the
    SQLite file at [store] path."""
    if settings.store.url is not None:
        return PostgresStore(settings.store.url, password=store_password(settings))
    return SqliteStore(settings.store.path)


def store_place(settings: Settings) -> str:
    """Where the store is, as logs and messages say it (never a password)."""
    if settings.store.url is not None:
        return describe(settings.store.url)
    return str(settings.store.path)


T = TypeVar("T")


# SIGTERM budget, within the unit's TimeoutStopSec=30s: the API lets its requests finish
# (api.server.SHUTDOWN_TIMEOUT_SECONDS, 5 s), then task calls in flight get this long.
DRAIN_TIMEOUT_SECONDS = 15.0
HEALTH_STORE_SECONDS = 2.0  # how long /healthz waits for the store's figures
STATUS_INTERVAL_SECONDS = 5.0  # how often STATUS= is recomputed (sent only when it changed)
RESTART_SECTIONS = ("store", "api", "tracing")  # settings read once at start
# A database that cannot be reached at start is tried again this often, said again this often
STORE_RETRY_SECONDS = 2.0
STORE_WAIT_LOG_SECONDS = 60.0
DAY = timedelta(days=1)  # the unit of [store] retention_days
# The cyclic garbage collector looks at the youngest objects once this many more were made
# than freed (Python's default, 700, is a few steps of a herd: 140 collections and a full one
# of every live object for 5,000 steps, about 33 µs of CPU per step)
GC_YOUNG_ALLOCATIONS = 20_000


@dataclass(frozen=True, kw_only=True)
class LoadedConfig:
    """A configuration file read and validated, ready to apply."""

    settings: Settings
    catalog: Catalog
    signing_secret: str | None
    access: ApiAccess
    connections: Connections = field(default_factory=Connections, repr=False)
    notify: tuple[Target, ...] = field(default=(), repr=False)
    tests: TestRuns = field(default_factory=TestRuns, repr=False)


def load_config(path: Path) -> LoadedConfig:
    """Read and check everything a reload would apply. Blocking: run it off the loop.

    Raises StepdError (ConfigError) naming where the problem is, never a secret's value.
    """
    settings = load_settings(path)
    catalog = build_catalog(
        machine_specs(settings),
        base_url=settings.http.base_url,
        config_source=str(path),
        connections=connection_names(settings),
    )
    secret = read_secret(settings.http.signing_secret_file, SIGNING_CREDENTIAL)
    if secret is not None:
        secret_key(secret)
    return LoadedConfig(
        settings=settings,
        catalog=catalog,
        signing_secret=secret,
        access=api_access(settings),
        connections=read_connections(settings),
        notify=read_notify(settings, secret),
        tests=test_runs(settings),
    )


def _restart_part(settings: Settings, section: str) -> object:
    """What of `section` only a restart applies: all of it, but the `[api]` files of secrets
    (a reload reads them again)."""
    if section == "api":
        return settings.api.model_copy(
            update={"credentials_file": None, "metrics_token_file": None}
        )
    return getattr(settings, section)


def _iso(ts: float) -> str:
    return datetime.fromtimestamp(ts, UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def _clock_text() -> str:
    return datetime.now(UTC).strftime("%H:%M:%SZ")


def _timestamp() -> str:
    return datetime.now(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


class Daemon:
    def __init__(self, config_path: Path, settings: Settings, catalog: Catalog) -> None:
        self.config_path = config_path
        self.settings = settings
        self.catalog = catalog
        # what a restart applies runs as it was at the start, whatever reloads said since
        self._started, self._started_routes = settings, _http_routes(catalog.machines)
        self.notifier = Notifier()
        self.engine: Engine | None = None
        self.timers: Timers | None = None
        self.cluster: Cluster | None = None
        self.api: ApiServer | None = None
        self.alerts: Alerts | None = None
        self._access = ApiAccess()
        self._stop = asyncio.Event()
        self._exit_error: StepdError | None = None  # why the daemon stops on its own
        self._stopping = False
        self._ready = False
        self._signing_secret: str | None = None
        self._connections = Connections()
        self._retired_callers: list[Caller] = []
        self._exporter: Exporter | None = None  # tracing's, when [tracing] otlp_endpoint is set
        self._reload_lock = asyncio.Lock()
        self._queued_reload: asyncio.Task[ReloadResult] | None = None
        self._config_note = f"config loaded at {_clock_text()}"
        self.last_reload: ReloadResult | None = None  # the latest reload's outcome
        self._last_status = ""
        self._background: set[asyncio.Task[Any]] = set()
        self._side_tasks: list[asyncio.Task[Any]] = []

    # -- lifecycle -------------------------------------------------------------------

    async def run(self) -> int:
        self._install_signals()
        try:
            async with contextlib.AsyncExitStack() as stack:
                await self._start(stack)
                await self._stop.wait()
                self._stopping = True
                self.notifier.stopping()
                engine = self.engine
                assert engine is not None
                engine.close()  # from here on no new task call starts
                if self.cluster is not None:
                    self.cluster.closing = True  # nor is anything claimed
                log.info(
                    "daemon.stopping",
                    in_flight=engine.status().in_flight,
                    drain_timeout_seconds=DRAIN_TIMEOUT_SECONDS,
                )
                async with self._reload_lock:  # a reload under way finishes first
                    pass
        except StoppedBeforeReady:
            pass
        except StepdError as exc:
            log.error("daemon.failed", error=str(exc))  # noqa: TRY400 - the message says it all
            raise
        finally:
            self._remove_signals()
        log.info("daemon.stopped")
        if self._exit_error is not None:
            raise self._exit_error
        return 0

    async def _open_store(self, store: Store) -> None:
        """Open the store. A database that cannot be reached yet (down, starting up, its
        network) is waited for, and said so (a warning, the service's status), until it
        answers or the daemon is told to stop; one that refuses this node stops it (exit 78)."""
        settings = self.settings
        if settings.store.url is not None:
            held = await asyncio.to_thread(left_behind, settings.store.path)
            if held is not None:
                log.warning(
                    "store.path_unused",
                    path=str(settings.store.path),
                    executions=held,
                    note="[store] url is set: the SQLite store at path is not used",
                )
        since = logged = 0.0
        while True:
            try:
                await store.open()
            except StoreUnreachable as exc:
                now = time.monotonic()
                if not since:
                    since = logged = now
                    log.warning("store.waiting", error=str(exc), retry_seconds=STORE_RETRY_SECONDS)
                elif now - logged >= STORE_WAIT_LOG_SECONDS:
                    logged = now
                    log.warning("store.still_waiting", error=str(exc), seconds=round(now - since))
                self.notifier.send(  # systemd: starting still, not hung
                    status=f"waiting for the database: {exc}",
                    extend_timeout_usec=int(4 * STORE_RETRY_SECONDS * 1_000_000),
                )
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._stop.wait(), STORE_RETRY_SECONDS)
                if self._stop.is_set():
                    raise StoppedBeforeReady from None
                continue
            if since:
                log.info("store.reached", seconds_waited=round(time.monotonic() - since, 1))
            return

    async def _start(self, stack: contextlib.AsyncExitStack) -> None:
        """Bring everything up; each part's shutdown goes on `stack`, run in reverse order."""
        started = time.monotonic()
        settings = self.settings
        stack.push_async_callback(self._stop_side_tasks)  # last out: pings go on while draining
        access = api_access(settings)
        self._access = access
        store = open_store(settings)
        await self._open_store(store)
        stack.push_async_callback(store.close)
        self._signing_secret = read_secret(settings.http.signing_secret_file, SIGNING_CREDENTIAL)
        self._connections = read_connections(settings)
        cluster = await self._join(store, stack)
        self._start_tracing(stack)
        caller = self._task_caller(
            self._signing_secret, settings.http.max_concurrency, self._connections
        )
        stack.push_async_callback(self._close_callers)
        engine = Engine(
            store=store,
            caller=caller,
            machines={},
            arns=Arns(region=settings.api.region, account=settings.api.account),
            task_timeout_seconds=settings.http.timeout_seconds,
            workers=settings.http.max_concurrency,
            tests=test_runs(settings),
        )
        self.engine = engine
        engine.base_url = settings.http.base_url or ""
        await engine.register(self.catalog.machines)
        await self._publish_definitions(engine)
        timers = Timers(
            on_due=engine.dispatch if cluster is None else cluster.on_due,
            on_overdue=engine.overdue if cluster is None else cluster.on_overdue,
            load_due=store.due if cluster is None else cluster.load_due,
            housekeeping=self._housekeeping,
        )
        self.timers = timers
        if cluster is not None:
            cluster.attach(
                dispatch=engine.dispatch,
                overdue=engine.overdue,
                load_window=timers.load_window,
                in_hand=engine.in_hand,
                backlog=engine.backlog,
                workers=settings.http.max_concurrency,
            )
        engine.set_timer(timers.arm)
        engine.start()
        stack.push_async_callback(self._drain, engine)
        await timers.start()
        stack.callback(timers.shutdown)
        metrics = self._metrics(engine, timers)
        if self._exporter is not None:
            engine.observe(TracingObserver(self._exporter, metrics))
        api = ApiServer(
            engine,
            settings.api.listen,
            self.health,
            access=access,
            metrics=metrics,
            nodes=None if self.cluster is None else self.cluster.status,
        )
        try:
            await api.start()
        except OSError as exc:
            raise StepdError(f"api.listen {settings.api.listen}: {exc.strerror or exc}") from exc
        stack.push_async_callback(api.stop)
        self.api = api
        self._start_alerts(stack, store, engine)
        control = await self._listen_control(stack)
        self._start_side_tasks()
        log.info(
            "daemon.ready",
            version=__version__,
            machines=sorted(engine.machines),
            api=api.url,
            store=store_place(settings),
            control=str(control.path) if control is not None else None,
            startup_ms=round((time.monotonic() - started) * 1000, 1),
        )
        self._ready = True
        gc.freeze()  # what startup made lives as long as the daemon: no collection looks at it
        status = await self._status()
        self._last_status = status
        self.notifier.ready(status)

    async def _listen_control(self, stack: contextlib.AsyncExitStack) -> ControlServer | None:
        """The control socket `stepd reload` talks to; None when it cannot listen."""
        try:
            control = await listen(
                socket_places(self.config_path),
                self.reload,
                lambda: self.last_reload,
                config=str(self.config_path.resolve()),
            )
        except ControlError as exc:  # SIGHUP still reloads; only `stepd reload` cannot
            log.warning("control.unavailable", reason=str(exc), reload="SIGHUP")
            return None
        stack.push_async_callback(control.stop)
        return control

    def _metrics(self, engine: Engine, timers: Timers) -> Metrics:
        metrics = Metrics(engine, timers)
        if self.cluster is not None:
            metrics.observe_node(self.cluster)
        return metrics

    async def _join(self, store: Store, stack: contextlib.AsyncExitStack) -> Cluster | None:
        """On a PostgreSQL store, join the nodes sharing it (a lease); None on SQLite. Leaving
        (handing everything over) comes after the calls in flight are drained."""
        if not isinstance(store, PostgresStore):
            return None
        leases = NodeLeases(
            store.url, password=store_password(self.settings), api=self.settings.api.listen
        )
        store.notify = self.settings.store.notify
        cluster = Cluster(
            store,
            leases,
            password=store_password(self.settings),
            watch_seconds=self.settings.store.watch_seconds,
            listening=self.settings.store.notify,
        )
        cluster.on_store_too_new = self._store_too_new
        await cluster.start()
        stack.push_async_callback(cluster.stop)
        self.cluster = cluster
        return cluster

    def _start_tracing(self, stack: contextlib.AsyncExitStack) -> None:
        tracing = self.settings.tracing
        if tracing.otlp_endpoint is None:
            return
        self._exporter = Exporter(tracing.otlp_endpoint, service_name=tracing.service_name)
        self._exporter.start()
        stack.push_async_callback(self._exporter.close)  # after the engine drained

    def _start_alerts(self, stack: contextlib.AsyncExitStack, store: Store, engine: Engine) -> None:
        settings = self.settings
        alerts = Alerts(
            store,
            read_notify(settings, self._signing_secret),
            arns=engine.arns,
            page_base=settings.api.public_url or api_url(settings.api.listen),
        )
        alerts.start()
        stack.push_async_callback(alerts.stop)
        self.alerts = alerts

    async def _drain(self, engine: Engine) -> None:
        started = time.monotonic()
        cancelled = await engine.drain(DRAIN_TIMEOUT_SECONDS)
        if cancelled:
            log.warning(
                "daemon.drain_timeout",
                cancelled=cancelled,
                timeout_seconds=DRAIN_TIMEOUT_SECONDS,
                note="calls in flight are sent again, with the same key, after the next start",
            )
        log.info("daemon.drained", drain_ms=round((time.monotonic() - started) * 1000, 1))

    def _task_caller(
        self, signing_secret: str | None, max_connections: int, connections: Connections
    ) -> Caller:
        """The HTTP task caller; each call is a span when tracing is on; on several nodes,
        one that sends only while the lease is fresh."""
        caller: Caller = TaskCaller(
            user_agent=DEFAULT_USER_AGENT,
            signing_secret=signing_secret,
            max_connections=max_connections,
            connections=connections,
        )
        if self._exporter is not None:
            caller = TracingCaller(caller, self._exporter)
        return caller if self.cluster is None else FencedCaller(caller, self.cluster)

    async def _close_callers(self) -> None:
        for caller in self._retired_callers:
            await caller.aclose()
        if self.engine is not None:
            await self.engine.aclose()

    def stop(self) -> None:
        self._stop.set()

    def _store_too_new(self, reason: str) -> None:
        """A newer release migrated the store while this node ran: hand the work over and
        stop, as this release refuses to start on such a store (exit 78: upgrade it)."""
        self._exit_error = StoreTooNew(reason)
        self.stop()

    # -- signals and side tasks ------------------------------------------------------

    def _install_signals(self) -> None:
        loop = asyncio.get_running_loop()
        loop.add_signal_handler(signal.SIGTERM, self.stop)
        loop.add_signal_handler(signal.SIGINT, self.stop)
        loop.add_signal_handler(signal.SIGHUP, self._on_hup)

    def _remove_signals(self) -> None:
        loop = asyncio.get_running_loop()
        for signum in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP):
            loop.remove_signal_handler(signum)

    def _on_hup(self) -> None:
        if not self._ready:
            log.warning("config.reload_ignored", reason="the daemon is still starting")
            return
        self._request_reload(TRIGGER_SIGNAL)

    def _spawn(self, work: Coroutine[Any, Any, T], name: str) -> asyncio.Task[T]:
        """A named task, kept referenced until it is done."""
        task = asyncio.create_task(work, name=name)
        self._background.add(task)
        task.add_done_callback(self._background.discard)
        return task

    def _start_side_tasks(self) -> None:
        interval = watchdog_interval()
        if interval is not None and self.notifier.enabled:
            self._side_tasks.append(self._spawn(self._ping(interval), "stepd-watchdog"))
            log.info("watchdog.enabled", interval_seconds=interval)
        if self.notifier.enabled:
            self._side_tasks.append(self._spawn(self._refresh_status(), "stepd-status"))

    async def _stop_side_tasks(self) -> None:
        for task in self._side_tasks:
            task.cancel()
        for task in self._side_tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await task
        self._side_tasks.clear()

    async def _ping(self, interval: float) -> None:
        while True:
            self.notifier.watchdog()
            await asyncio.sleep(interval)

    async def _refresh_status(self) -> None:
        while not self._stopping:
            await asyncio.sleep(STATUS_INTERVAL_SECONDS)
            try:
                status = await self._status()
            except Exception:
                log.exception("status.failed")
                continue
            if status != self._last_status and not self._stopping:
                self._last_status = status
                self.notifier.status(status)

    # -- reload ----------------------------------------------------------------------

    async def reload(self) -> ReloadResult:
        """Re-read the config file; apply it if it is clean, else keep the running one.

        Reloads run one at a time; a request made while one is waiting to start shares it
        (both would read the same file).
        """
        return await asyncio.shield(self._request_reload(TRIGGER_SOCKET))

    def _request_reload(self, trigger: str) -> asyncio.Task[ReloadResult]:
        if self._queued_reload is None:
            self._queued_reload = self._spawn(self._reload_in_turn(trigger), "stepd-reload")
        return self._queued_reload

    async def _reload_in_turn(self, trigger: str) -> ReloadResult:
        async with self._reload_lock:
            self._queued_reload = None
            if self._stopping:
                return ReloadResult(ok=False, findings=("the daemon is stopping",))
            self.notifier.reloading()
            log.info("config.reloading", path=str(self.config_path), trigger=trigger)
            try:
                result = await self._reload_now()
            finally:
                status = await self._status()
                self._last_status = status
                self.notifier.ready(status)
            self.last_reload = ReloadResult(
                ok=result.ok,
                findings=result.findings,
                restart_needed=result.restart_needed,
                status=status,
                at=_timestamp(),
                trigger=trigger,
            )
            return self.last_reload

    async def _reload_now(self) -> ReloadResult:
        try:
            loaded = await asyncio.to_thread(load_config, self.config_path)
        except StepdError as exc:
            return self._rejected((str(exc),))
        except Exception as exc:  # a bug: the running configuration stays, the reload fails
            log.exception("config.reload_failed", path=str(self.config_path))
            return self._rejected((f"{self.config_path}: {type(exc).__name__}: {exc}",))
        for report in loaded.catalog.reports:
            if report.severity != "error":
                log.warning("config.finding", finding=str(report))
        if loaded.catalog.errors:
            return self._rejected(tuple(str(r) for r in loaded.catalog.errors))
        try:
            restart_needed = await self._apply(loaded)
        except StepdError as exc:
            return self._rejected((f"cannot apply: {exc}",))
        except Exception as exc:
            log.exception("config.apply_failed")
            return self._rejected((f"cannot apply: {type(exc).__name__}: {exc}",))
        self._config_note = f"config reloaded at {_clock_text()}"
        log.info(
            "config.reloaded",
            machines=sorted(loaded.catalog.machines),
            restart_needed=list(restart_needed),
        )
        return ReloadResult(ok=True, restart_needed=restart_needed)

    def _rejected(self, findings: tuple[str, ...]) -> ReloadResult:
        for finding in findings:
            log.error("config.reload_rejected", finding=finding)
        self._config_note = f"reload rejected at {_clock_text()}, previous config kept"
        return ReloadResult(ok=False, findings=findings)

    async def _apply(self, loaded: LoadedConfig) -> tuple[str, ...]:
        """Switch to `loaded`; the settings that only a restart applies, by name."""
        engine = self.engine
        assert engine is not None
        old, new, started = self.settings, loaded.settings, self._started
        caller: Caller | None = None
        if loaded.signing_secret != self._signing_secret or loaded.connections != self._connections:
            caller = self._task_caller(
                loaded.signing_secret, started.http.max_concurrency, loaded.connections
            )
        engine.tests.take_config(loaded.tests)
        engine.base_url = new.http.base_url or ""
        retired = await engine.reconfigure(
            loaded.catalog.machines,
            task_timeout_seconds=new.http.timeout_seconds,
            caller=caller,
        )
        if retired is not None:
            self._retired_callers.append(retired)
            if loaded.signing_secret != self._signing_secret:
                log.info("config.signing_secret_changed")
            if loaded.connections != self._connections:
                log.info("config.connections_changed")
            self._signing_secret = loaded.signing_secret
            self._connections = loaded.connections
        self._apply_notify(loaded.notify)
        if new.log != old.log:
            logs.configure(new.log.level, new.log.format)
        for name in sorted(set(self.catalog.machines) - set(loaded.catalog.machines)):
            log.warning(
                "config.machine_removed",
                machine=name,
                note="no new executions; running ones finish with their old endpoints",
            )
        # against what runs: a change taken back needs no restart any more
        restart_needed = [
            s for s in RESTART_SECTIONS if _restart_part(new, s) != _restart_part(started, s)
        ]
        restart_needed.extend(self._apply_access(loaded.access))
        if new.http.max_concurrency != started.http.max_concurrency:
            restart_needed.append("http.max_concurrency")
        if _http_routes(loaded.catalog.machines) != self._started_routes:
            restart_needed.append("machines (serverless http events)")
        for setting in restart_needed:
            log.warning("config.restart_needed", setting=setting)
        self.settings, self.catalog = new, loaded.catalog
        await self._publish_definitions(engine)
        return tuple(restart_needed)

    async def _publish_definitions(self, engine: Engine) -> None:
        """On several nodes, record with this node's lease the definitions it serves."""
        if self.cluster is not None:
            api = self.settings.api
            await self.cluster.publish(
                published(engine.machines, region=api.region, account=api.account)
            )

    def _apply_notify(self, targets: tuple[Target, ...]) -> None:
        if self.alerts is not None and self.alerts.targets != targets:
            self.alerts.targets = targets
            log.info("config.notify_applied", targets=[t.url for t in targets])

    def _apply_access(self, access: ApiAccess) -> list[str]:
        """Serve the API with the key pairs (and metrics token) just read; what needs a restart.

        A key pair removed or given a new secret stops working at once, and so do the browser
        sessions signed in with it. Turning authentication on or off needs a restart.
        """
        old, api = self._access, self.api
        if api is None or access == old:
            return []
        if not api.set_access(access):
            return ["api credentials (turning authentication on or off)"]
        self._access = access
        old_keys = {k.access_key_id: k for k in old.keys}
        new_keys = {k.access_key_id: k for k in access.keys}
        log.info(
            "config.api_keys_applied",
            added=sorted(new_keys.keys() - old_keys.keys()),
            removed=sorted(old_keys.keys() - new_keys.keys()),
            changed=sorted(
                k for k in new_keys.keys() & old_keys.keys() if new_keys[k] != old_keys[k]
            ),
            metrics_token_changed=access.metrics_token != old.metrics_token,
        )
        return []

    # -- reports ---------------------------------------------------------------------

    async def _housekeeping(self) -> None:
        engine = self.engine
        if engine is None:
            return
        try:
            retention_seconds = self.settings.store.retention_days * DAY.total_seconds()
            await engine.purge(retention_seconds)
        except StepdError as exc:
            log.warning("executions.purge_failed", error=str(exc))

    async def health(self) -> dict[str, Any]:
        engine = self.engine
        assert engine is not None
        cluster = self.cluster
        # both asked at once: with the database away, the answer comes within one wait
        node_read, counts_read = await asyncio.gather(
            _within(cluster.status(), HEALTH_STORE_SECONDS) if cluster else _nothing(),
            _within(engine.count_by_status(), HEALTH_STORE_SECONDS),
            return_exceptions=True,
        )
        node: dict[str, Any] | None
        if isinstance(node_read, StoreError) and cluster is not None:
            node = {**cluster.local_status(), "nodes": [{"error": str(node_read)}]}
        else:
            node = _read(node_read)
        if isinstance(counts_read, StoreError):  # this node's own state is what an outage needs
            error = str(counts_read)
            return {"status": "unavailable", "error": error, **({"node": node} if node else {})}
        counts = _read(counts_read)
        now = engine.status()
        degraded = bool(now.down) or bool(node and node["problems"])
        return {
            "status": "degraded" if degraded else "ok",
            "version": __version__,
            "executions": counts,
            "timers_armed": self.timers.armed if self.timers else 0,
            "queued": now.queued,
            "in_flight": now.in_flight,
            "waiting_for_host": now.waiting_for_host,
            "hosts_down": now.hosts_down,
            "down": [
                {
                    "host": down.host,
                    "error": down.error,
                    "since": _iso(down.since),
                    "waiting": down.waiting,
                }
                for down in now.down
            ],
            "steps_late": now.steps_late,
            "last_reload": None if self.last_reload is None else self.last_reload.outcome(),
            **({} if node is None else {"node": node}),
        }

    async def _status(self) -> str:
        """The STATUS= line: what runs, what is armed, how the config stands."""
        engine = self.engine
        running: int | str = "?"
        if engine is not None:
            try:
                running = (await engine.count_by_status()).get("RUNNING", 0)
            except StepdError as exc:
                log.warning("status.store_unavailable", error=str(exc))
        armed = self.timers.armed if self.timers else 0
        in_flight = engine.status().in_flight if engine else 0
        return (
            f"{running} running, {armed} timers armed, {in_flight} calls in flight; "
            f"{self._config_note}"
        )


async def _nothing() -> None:
    return None


def _read(result: T | BaseException) -> T:
    """What a gathered read gave; what it raised, raised again."""
    if isinstance(result, BaseException):
        raise result
    return result


async def _within(work: Awaitable[T], seconds: float) -> T:
    """`work`, or StoreError when the store has not answered within `seconds`."""
    try:
        return await asyncio.wait_for(work, seconds)
    except TimeoutError:
        raise StoreError(f"the store did not answer within {seconds:g} s") from None


def _http_routes(machines: Mapping[str, Machine]) -> set[tuple[str, str, str, str]]:
    return {
        (name, event.method, event.path, event.action)
        for name, machine in machines.items()
        for event in machine.http_events
    }


def run_daemon(config_path: Path, settings: Settings, catalog: Catalog) -> int:
    daemon = Daemon(config_path, settings, catalog)
    gc.set_threshold(GC_YOUNG_ALLOCATIONS, *gc.get_threshold()[1:])
    with (
        contextlib.suppress(KeyboardInterrupt),
        asyncio.Runner(loop_factory=loop_factory()) as runner,
    ):
        return runner.run(daemon.run())
    return 0


def loop_factory() -> Callable[[], asyncio.AbstractEventLoop] | None:
    """uvloop's event loop when it is installed (a dependency of stepd: it takes about a
    sixth off the daemon's CPU per step in a herd), else asyncio's own."""
    try:
        import uvloop  # noqa: PLC0415 - optional at run time
    except ImportError:
        return None
    return uvloop.new_event_loop
