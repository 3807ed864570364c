"""The quick way people do it, for comparison: APScheduler 3 with its SQLAlchemy job store
(SQLite), one date job per step, httpx for the POSTs. Run by bench/run.py in the same run as
stepd, on the same herd and intake, against the same stand-in classroom server.

It is a faithful small version of the common recipe, with the settings people use
(misfire_grace_time=None so late jobs still run, coalesce, a shared httpx.AsyncClient).
"""

from __future__ import annotations

import asyncio
import sys
from datetime import UTC, datetime
from pathlib import Path

import httpx
from aiohttp import web
from apscheduler.jobstores.sqlalchemy import SQLAlchemyJobStore
from apscheduler.schedulers.asyncio import AsyncIOScheduler

PING_AFTER_SECONDS = 60
CLIENT: httpx.AsyncClient | None = None
BASE_URL = ""


async def post_step(classroom: str, step: str) -> None:
    assert CLIENT is not None
    await CLIENT.post(
        f"{BASE_URL}/{step}",
        json={"classroom": classroom},
        headers={"Idempotency-Key": f"baseline/{classroom}/{step}"},
    )


async def main(db: Path, port: int, base_url: str) -> None:
    global CLIENT, BASE_URL  # noqa: PLW0603 - jobs must be importable module functions
    BASE_URL = base_url
    CLIENT = httpx.AsyncClient(timeout=10)
    scheduler = AsyncIOScheduler(
        jobstores={"default": SQLAlchemyJobStore(url=f"sqlite:///{db}")},
        timezone=UTC,
        job_defaults={"misfire_grace_time": None, "coalesce": True},
    )
    scheduler.start()

    async def create(request: web.Request) -> web.Response:
        body = await request.json()
        name = body["name"]
        start = datetime.fromisoformat(body["start"])
        end = datetime.fromisoformat(body["end"])
        for step, when in (
            ("recording/start", start),
            ("recording/ping", datetime.fromtimestamp(start.timestamp() + PING_AFTER_SECONDS, UTC)),
            ("recording/stop", end),
        ):
            scheduler.add_job(
                post_step, "date", run_date=when, args=(name, step), id=f"{name}:{step}"
            )
        return web.json_response({"ok": True})

    app = web.Application()
    app.router.add_post("/classroom", create)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    await web.TCPSite(runner, "127.0.0.1", port).start()
    print("ready", flush=True)
    await asyncio.Event().wait()


if __name__ == "__main__":
    asyncio.run(main(Path(sys.argv[1]), int(sys.argv[2]), sys.argv[3]))
