"""The FastAPI application: lifespan wiring, routers, error handling."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import FastAPI

from imagegate import __version__
from imagegate.api import admin, billing, catalog, errors, files, openai, runapi
from imagegate.api.models import Health
from imagegate.api.openapi import install as install_openapi
from imagegate.clock import SYSTEM_CLOCK, Clock
from imagegate.gateway import Gateway
from imagegate.queue import LocalQueue
from imagegate.settings import Settings


def create_app(settings: Settings | None = None, *, clock: Clock = SYSTEM_CLOCK) -> FastAPI:
    settings = settings or Settings()

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        gw = await Gateway.open(settings, clock)
        queue = LocalQueue(gw, settings.workers)
        app.state.gateway = gw
        app.state.queue = queue
        await queue.start()
        try:
            yield
        finally:
            await queue.stop()
            await gw.close()

    app = FastAPI(
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

    app.include_router(catalog.router)
    app.include_router(files.router)
    app.include_router(openai.router)
    app.include_router(admin.router)
    app.include_router(billing.router)
    app.include_router(runapi.router)  # last: its /{service}/{id} patterns are the broadest
    install_openapi(app)
    return app
