"""The composition root: every long-lived part of a running gateway, built from Settings."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date, datetime

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

    @classmethod
    async def open(cls, settings: Settings, clock: Clock = SYSTEM_CLOCK) -> Gateway:
        settings.data_dir.mkdir(parents=True, exist_ok=True)
        await upgrade_async(settings.resolved_database_url)
        return cls(
            settings=settings,
            db=Database(settings.resolved_database_url),
            catalog=load_catalog(settings.catalog_file),
            storage=open_storage(settings.resolved_storage_url),
            signer=UrlSigner(load_or_create_secret(settings.data_dir / "signing.key")),
            limiter=RateLimiter(settings.rate_limit_storage_url, settings.rate_window_s, clock),
            clock=clock,
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
        return model.provider or self.settings.default_provider

    def now(self) -> datetime:
        return self.clock.now()

    def today(self) -> date:
        """Today on the real calendar: billing days, usage windows."""
        return self.clock.today()

    def lifecycle_date(self) -> date:
        """The date model lifecycles are judged by: ``catalog_date`` if set, else today."""
        return self.settings.catalog_date or self.clock.today()
