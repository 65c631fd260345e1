"""The FastAPI application: lifespan wiring, routers, error handling."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from types import FrameType
from typing import Any

import uvicorn
from fastapi import FastAPI
from starlette.types import Receive, Scope, Send

from imagegate import __version__
from imagegate.api import (
    admin,
    billing,
    catalog,
    errors,
    events,
    file_uploads,
    files,
    openai,
    runapi,
    stored_files,
)
from imagegate.api import webhooks as webhook_routes
from imagegate.api.mcp_http import mount as mount_mcp
from imagegate.api.models import Health
from imagegate.api.openapi import install as install_openapi
from imagegate.api.polled import PolledTask
from imagegate.clock import SYSTEM_CLOCK, Clock
from imagegate.gateway import Gateway
from imagegate.queue import LocalQueue, Queue
from imagegate.settings import Settings


class GatewayApp(FastAPI):
    """FastAPI with the plain poll answered in front of its whole stack (api/polled.py)."""

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self._front = PolledTask(super().__call__)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        scope["app"] = self  # as Starlette does: request.app is this app on the fast path too
        await self._front(scope, receive, send)


def create_app(
    settings: Settings | None = None, *, clock: Clock = SYSTEM_CLOCK, run_workers: bool = True
) -> FastAPI:
    """``run_workers=False`` (``serve --no-worker``): this process only defers jobs to workers."""
    settings = settings or Settings()

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        gw = await Gateway.open(settings, clock)
        queue: Queue
        if settings.job_queue == "postgres":
            from imagegate.queue.jobs import JobQueue  # procrastinate: the postgres extra

            queue = JobQueue(gw, work=run_workers, concurrency=settings.workers)
        else:
            queue = LocalQueue(gw, settings.workers)
        app.state.gateway = gw
        app.state.queue = queue
        await queue.start()
        try:
            async with mcp_sessions.run():  # /mcp answers only while its session manager runs
                yield
        finally:
            await queue.stop()
            await gw.close()

    app = GatewayApp(
        title="imagegate",
        version=__version__,
        summary="Self-hostable image-generation API gateway.",
        lifespan=lifespan,
    )
    errors.install(app)
    app.add_middleware(errors.RequestIdMiddleware)

    @app.get("/healthz", tags=["ops"])
    async def healthz() -> Health:
        return Health(status="ok", version=__version__)

    app.include_router(runapi.polled)  # first: the route every poller calls (matched in order)
    app.include_router(catalog.router)
    app.include_router(files.router)
    app.include_router(file_uploads.router)
    app.include_router(stored_files.router)
    app.include_router(openai.router)
    app.include_router(admin.router)
    app.include_router(billing.router)
    app.include_router(webhook_routes.router)  # before runapi's /{service}/{id} patterns
    app.include_router(events.router)  # before runapi's /{service}/{action}/{id}, which would match
    mcp_sessions = mount_mcp(app, settings)
    app.include_router(runapi.router)  # last: its /{service}/{id} patterns are the broadest
    install_openapi(app)
    return app


STOP_GRACE_S = 8  # a graceful stop returns within 10 s: open requests get this long to finish


class GatewayServer(uvicorn.Server):
    """uvicorn that tells the gateway a stop has begun before it waits for open requests,
    so synchronous calls still waiting on their task answer 503 at once instead of holding
    the stop for minutes; their tasks are handed back and go on after the restart."""

    def __init__(self, config: uvicorn.Config) -> None:
        config.timeout_graceful_shutdown = config.timeout_graceful_shutdown or STOP_GRACE_S
        super().__init__(config)
        self.loop: asyncio.AbstractEventLoop | None = None

    async def serve(self, sockets: Any = None) -> None:
        self.loop = asyncio.get_running_loop()
        await super().serve(sockets)

    async def startup(self, sockets: Any = None) -> None:
        await super().startup(sockets)
        gw = getattr(getattr(self.config.app, "state", None), "gateway", None)
        listening = [s.getsockname() for server in self.servers for s in server.sockets or ()]
        if gw is not None and listening:  # where links in webhooks point when public_url is unset
            host, port = listening[0][:2]
            gw.listening_url = f"http://{'[' + host + ']' if ':' in host else host}:{port}"

    def handle_exit(self, sig: int, frame: FrameType | None) -> None:
        super().handle_exit(sig, frame)
        gw = getattr(getattr(self.config.app, "state", None), "gateway", None)  # set by the lifespan
        if gw is not None and self.loop is not None:
            self.loop.call_soon_threadsafe(gw.bus.close)
