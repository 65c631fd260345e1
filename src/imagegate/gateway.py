"""The composition root: every long-lived part of a running gateway, built from Settings."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date, datetime

from imagegate.accounts.cache import PrincipalCache
from imagegate.accounts.store import Principal
from imagegate.catalog import Catalog, ModelSpec, load_catalog
from imagegate.clock import SYSTEM_CLOCK, Clock
from imagegate.db.migrate import upgrade_async
from imagegate.db.session import Database
from imagegate.limits import RateLimiter, Tier, tier_for
from imagegate.providers.registry import Providers
from imagegate.settings import Settings
from imagegate.storage import Storage, UrlSigner, guard, open_storage
from imagegate.storage.signing import load_or_create_secret
from imagegate.tasks.notify import Notifier


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
        for model in catalog.models.values():
            route = route_of(model, providers.default)
            served = ", then ".join(f"{name} ({providers.get(name).label})" for name in route)
            lines.append(f"{model.id} served by {served}")
        return lines
    finally:
        await providers.aclose()


@dataclass
class Gateway:
    settings: Settings
    db: Database
    catalog: Catalog
    storage: Storage
    signer: UrlSigner
    limiter: RateLimiter
    providers: Providers = field(default_factory=Providers)
    notifier: Notifier = field(default_factory=Notifier)
    clock: Clock = SYSTEM_CLOCK
    principals: PrincipalCache = field(default_factory=lambda: PrincipalCache(ttl_s=0))

    @classmethod
    async def open(cls, settings: Settings, clock: Clock = SYSTEM_CLOCK) -> Gateway:
        settings.data_dir.mkdir(parents=True, exist_ok=True)
        await upgrade_async(settings.resolved_database_url)
        catalog = load_catalog(settings.catalog_file)
        return cls(
            settings=settings,
            db=Database(settings.resolved_database_url),
            catalog=catalog,
            storage=open_storage(settings.resolved_storage_url),
            signer=UrlSigner(load_or_create_secret(settings.data_dir / "signing.key")),
            limiter=RateLimiter(settings.rate_limit_storage_url, settings.rate_window_s, clock),
            providers=build_providers(settings, catalog, clock),
            clock=clock,
            principals=PrincipalCache(ttl_s=settings.key_cache_s),
        )

    async def close(self) -> None:
        await self.providers.aclose()
        await self.db.dispose()

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
