"""The composition root: store, engine, timers and API, with signals and sd_notify."""

from __future__ import annotations

import asyncio
import contextlib
import signal
import time
from pathlib import Path
from typing import Any

import structlog

from stepd import __version__
from stepd.api.server import ApiServer
from stepd.catalog import Catalog, build_catalog
from stepd.config import Settings, load_settings, read_secret
from stepd.engine.arns import Arns
from stepd.engine.executor import Engine
from stepd.errors import StepdError
from stepd.notify import Notifier, watchdog_interval
from stepd.store.sqlite import SqliteStore
from stepd.tasks.caller import TaskCaller
from stepd.timers import Timers

log = structlog.get_logger("stepd.daemon")

DRAIN_TIMEOUT_SECONDS = 20.0  # in-flight calls get this long to finish on SIGTERM
SIGNING_CREDENTIAL = "signing_secret"


class Daemon:
    def __init__(self, config_path: Path, settings: Settings, catalog: Catalog) -> None:
        self.config_path = config_path
        self.settings = settings
        self.catalog = catalog
        self.notifier = Notifier()
        self._stop = asyncio.Event()
        self._reload_task: asyncio.Task[bool] | None = None
        self.engine: Engine | None = None
        self.timers: Timers | None = None

    async def run(self) -> int:
        started = time.monotonic()
        settings = self.settings
        store = SqliteStore(settings.store.path)
        await store.open()
        caller = TaskCaller(
            user_agent=f"stepd/{__version__}",
            signing_secret=read_secret(settings.http.signing_secret_file, SIGNING_CREDENTIAL),
            max_connections=settings.http.max_concurrency,
        )
        engine = Engine(
            store=store,
            caller=caller,
            machines={},
            arns=Arns(region=settings.api.region, account=settings.api.account),
            task_timeout_seconds=settings.http.timeout_seconds,
            workers=settings.http.max_concurrency,
        )
        self.engine = engine
        await engine.register(self.catalog.machines)
        timers = Timers(on_due=engine.dispatch, load_due=store.due)
        self.timers = timers
        engine.set_timer(timers.arm)
        engine.queue.start()
        await timers.start()
        api = ApiServer(engine, settings.api.listen, self.health)
        try:
            await api.start()
        except OSError as exc:
            await self._shutdown(api, engine, timers, caller, store)
            raise StepdError(f"api.listen {settings.api.listen}: {exc.strerror or exc}") from exc
        self._install_signals()
        watchdog = self._start_watchdog()
        log.info(
            "daemon.ready",
            version=__version__,
            machines=sorted(engine.machines),
            api=api.url,
            store=str(settings.store.path),
            startup_ms=round((time.monotonic() - started) * 1000, 1),
        )
        self.notifier.ready(await self._status())
        await self._stop.wait()
        self.notifier.stopping()
        log.info("daemon.stopping")
        if watchdog is not None:
            watchdog.cancel()
        await self._shutdown(api, engine, timers, caller, store)
        log.info("daemon.stopped")
        return 0

    async def _shutdown(
        self, api: ApiServer, engine: Engine, timers: Timers, caller: TaskCaller, store: SqliteStore
    ) -> None:
        timers.shutdown()
        await api.stop()
        await engine.queue.stop(timeout=DRAIN_TIMEOUT_SECONDS)
        await caller.aclose()
        await store.close()

    def stop(self) -> None:
        self._stop.set()

    def _install_signals(self) -> None:
        loop = asyncio.get_running_loop()
        loop.add_signal_handler(signal.SIGTERM, self.stop)
        loop.add_signal_handler(signal.SIGINT, self.stop)
        loop.add_signal_handler(signal.SIGHUP, self._on_hup)

    def _start_watchdog(self) -> asyncio.Task[None] | None:
        interval = watchdog_interval()
        if interval is None or not self.notifier.enabled:
            return None

        async def ping() -> None:
            while True:
                self.notifier.watchdog()
                await asyncio.sleep(interval)

        return asyncio.create_task(ping(), name="stepd-watchdog")

    def _on_hup(self) -> None:
        if self._reload_task is None or self._reload_task.done():
            self._reload_task = asyncio.create_task(self.reload(), name="stepd-reload")

    async def reload(self) -> bool:
        """Re-read the config; apply it if it is clean, else keep the running one."""
        self.notifier.reloading()
        try:
            settings = await asyncio.to_thread(load_settings, self.config_path)
            catalog = await asyncio.to_thread(build_catalog, settings, str(self.config_path))
        except StepdError as exc:
            log.error("config.reload_rejected", error=str(exc))  # noqa: TRY400
            self.notifier.ready(f"reload rejected: {exc}"[:200])
            return False
        if catalog.errors:
            for report in catalog.errors:
                log.error("config.reload_rejected", finding=str(report))
            self.notifier.ready(f"reload rejected: {len(catalog.errors)} errors")
            return False
        engine = self.engine
        assert engine is not None
        await engine.register(catalog.machines)
        engine.task_timeout_seconds = settings.http.timeout_seconds
        restart_needed = [
            section
            for section in ("store", "api")
            if getattr(settings, section) != getattr(self.settings, section)
        ]
        if restart_needed:
            log.warning("config.restart_needed", sections=restart_needed)
        self.settings, self.catalog = settings, catalog
        log.info("config.reloaded", machines=sorted(catalog.machines))
        self.notifier.ready(await self._status())
        return True

    async def health(self) -> dict[str, Any]:
        engine = self.engine
        assert engine is not None
        counts = await engine.store.count_by_status()
        return {
            "status": "ok",
            "version": __version__,
            "executions": counts,
            "timers_armed": self.timers.armed if self.timers else 0,
            "queued": len(engine.queue),
            "in_flight": engine.stats.in_flight,
            "steps_late": engine.stats.steps_late,
        }

    async def _status(self) -> str:
        counts = await self.engine.store.count_by_status() if self.engine else {}
        armed = self.timers.armed if self.timers else 0
        return f"{counts.get('RUNNING', 0)} running, {armed} timers armed"


def run_daemon(config_path: Path, settings: Settings, catalog: Catalog) -> int:
    daemon = Daemon(config_path, settings, catalog)
    with contextlib.suppress(KeyboardInterrupt):
        return asyncio.run(daemon.run())
    return 0
