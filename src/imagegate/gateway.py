"""The composition root: every long-lived part of a running gateway, built from Settings."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from datetime import date, datetime
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession

from imagegate.accounts.cache import PrincipalCache
from imagegate.accounts.store import Principal
from imagegate.catalog import Catalog, ModelSpec, load_catalog
from imagegate.catalog.lifecycle import serving_model
from imagegate.clock import SYSTEM_CLOCK, Clock
from imagegate.db.migrate import upgrade_async
from imagegate.db.secrets import shared_secret
from imagegate.db.session import Database
from imagegate.events import Bus, LocalBus
from imagegate.limits import RateLimiter, Tier, tier_for
from imagegate.providers.registry import Providers
from imagegate.settings import Settings
from imagegate.storage import Storage, UrlSigner, guard, open_storage
from imagegate.storage.base import S3Options
from imagegate.storage.relay import Relay
from imagegate.storage.signing import load_or_create_secret


def route_of(model: ModelSpec, default: str) -> list[str]:
    return list(model.route) or [model.provider or default]


def build_providers(settings: Settings, catalog: Catalog, clock: Clock = SYSTEM_CLOCK) -> Providers:
    """The configured providers; a route naming an unknown one stops the start."""
    providers = Providers(
        settings.providers,
        default=settings.default_provider,
        breaker_failures=settings.breaker_failures,
        breaker_reset_s=settings.breaker_reset_s,
        now=clock.timestamp,
    )
    for model in catalog.models.values():
        providers.check_names(route_of(model, providers.default))
    return providers


async def describe_routes(settings: Settings) -> list[str]:
    """One line per catalog model: which provider serves it (and its fallbacks), said plainly."""
    catalog = load_catalog(settings.catalog_file)
    providers = build_providers(settings, catalog)
    try:
        lines = []
        on = settings.catalog_date or SYSTEM_CLOCK.today()
        for model in catalog.models.values():
            # A retired model runs on its serving successor's route, exactly as tasks do.
            serving = serving_model(catalog, model, on, settings.retired_models)
            if serving is None:
                lines.append(f"{model.id} retired on {model.lifecycle.shutdown_date}: refused (410)")
                continue
            route = route_of(serving, providers.default)
            served = ", then ".join(f"{name} ({providers.get(name).label})" for name in route)
            via = (
                f" (retired on {model.lifecycle.shutdown_date}: as {serving.id})"
                if serving is not model
                else ""
            )
            lines.append(f"{model.id}{via} served by {served}")
        return lines
    finally:
        await providers.aclose()


def s3_options(settings: Settings) -> S3Options:
    secret = settings.s3_secret_access_key
    return S3Options(
        endpoint_url=settings.s3_endpoint_url,
        region=settings.s3_region,
        access_key_id=settings.s3_access_key_id,
        secret_access_key=secret.get_secret_value() if secret else None,
    )


async def check_storage(settings: Settings) -> None:
    """The store's start-up check alone: ``serve`` runs it before binding its port."""
    await open_storage(settings.resolved_storage_url, s3_options(settings)).check()


async def signing_secret(settings: Settings, db: Database) -> bytes:
    """The URL-signing key: from settings, else the database every replica shares; SQLite (one
    host) keeps the file in the data directory that earlier versions made."""
    if settings.signing_key is not None:
        return settings.signing_key.get_secret_value().encode()
    if db.engine.dialect.name == "sqlite":
        return load_or_create_secret(settings.data_dir / "signing.key")
    return await shared_secret(db, "url_signing_key")


REDIS_MAX_CONNECTIONS = 100  # per process; every command holds one only while it runs
REDIS_WAIT_S = 30.0  # how long a command waits for a free connection before it fails


def open_redis(settings: Settings) -> Any:
    """One redis-py client for the process (rate limits share its pool), or None."""
    if not settings.redis_url:
        return None
    try:
        from redis.asyncio import BlockingConnectionPool, Redis
    except ImportError:
        raise ValueError("IMAGEGATE_REDIS_URL needs redis-py: pip install 'imagegate[redis]'") from None
    # redis-py's default pool refuses a command past 100 connections in use ("Too many
    # connections", a 500 under load): a blocking pool makes the 101st request wait for one.
    pool = BlockingConnectionPool.from_url(
        settings.redis_url, max_connections=REDIS_MAX_CONNECTIONS, timeout=REDIS_WAIT_S
    )
    return Redis.from_pool(pool)  # the client owns the pool: closing it closes the pool


@dataclass
class Gateway:
    settings: Settings
    db: Database
    catalog: Catalog
    storage: Storage
    signer: UrlSigner
    limiter: RateLimiter
    providers: Providers = field(default_factory=Providers)
    bus: Bus = field(default_factory=LocalBus)  # events/redis.py's when IMAGEGATE_REDIS_URL is set
    relay: Relay = field(default_factory=Relay)  # finished images for the OpenAI face in this process
    clock: Clock = SYSTEM_CLOCK
    listening_url: str | None = None  # set once the server is bound: links in webhooks without public_url
    redis: Any = None  # redis.asyncio.Redis when IMAGEGATE_REDIS_URL is set; closed by close()
    # Set by a queue that defers a task's job in the task's own transaction (queue/jobs.py):
    # called with the session, the task id and its provider, just before the commit.
    defer_in_transaction: Callable[[AsyncSession, str, str], Awaitable[None]] | None = None
    principals: PrincipalCache = field(default_factory=lambda: PrincipalCache(ttl_s=0))

    @classmethod
    async def open(cls, settings: Settings, clock: Clock = SYSTEM_CLOCK) -> Gateway:
        settings.data_dir.mkdir(parents=True, exist_ok=True)
        await upgrade_async(settings.resolved_database_url)
        catalog = load_catalog(settings.catalog_file)
        db = Database(settings.resolved_database_url)
        redis = open_redis(settings)
        bus: Bus | None = None
        try:
            storage = open_storage(settings.resolved_storage_url, s3_options(settings))
            await storage.check()  # a missing bucket or refused key stops the start, not a task
            signer = UrlSigner(await signing_secret(settings, db))
            if redis is not None:  # events and cancels cross processes through the same client
                from imagegate.events.redis import RedisBus

                bus = await RedisBus.open(redis)
        except BaseException:
            await db.dispose()
            if redis is not None:
                await redis.aclose()
            raise
        limits_url = settings.rate_limit_storage_url
        if redis is not None and limits_url == "memory://":
            limits_url = settings.redis_url or limits_url
        # The limiter counts through our client's pool when it counts on the same Redis.
        pool = redis.connection_pool if redis is not None and limits_url == settings.redis_url else None
        return cls(
            settings=settings,
            db=db,
            catalog=catalog,
            storage=storage,
            signer=signer,
            limiter=RateLimiter(limits_url, settings.rate_window_s, clock, redis_pool=pool),
            providers=build_providers(settings, catalog, clock),
            clock=clock,
            redis=redis,
            principals=PrincipalCache(ttl_s=settings.key_cache_s),
            bus=bus or LocalBus(),
        )

    async def close(self) -> None:
        await self.bus.aclose()
        await self.providers.aclose()
        await self.db.dispose()
        if self.redis is not None:
            await self.redis.aclose()

    @property
    def fetch_policy(self) -> guard.Policy:
        """What requests made for a user (source images, webhooks) may reach."""
        return guard.Policy.from_hosts(
            self.settings.fetch_allow_hosts,
            timeout_s=self.settings.fetch_timeout_s,
            max_bytes=self.settings.max_upload_bytes,
        )

    def tier(self, who: Principal) -> Tier:
        return tier_for(self.settings.tiers, who.paid_spend_micro, who.tier_pinned)

    def provider_name(self, model: ModelSpec) -> str:
        """The provider a new task of this model goes to first."""
        return self.route(model)[0]

    def route(self, model: ModelSpec) -> list[str]:
        """Providers to try in order: the catalog's ``route``, else the model's provider."""
        return route_of(model, self.providers.default)

    def now(self) -> datetime:
        return self.clock.now()

    def today(self) -> date:
        """Today on the real calendar: billing days, usage windows."""
        return self.clock.today()

    def lifecycle_date(self) -> date:
        """The date model lifecycles are judged by: ``catalog_date`` if set, else today."""
        return self.settings.catalog_date or self.clock.today()
