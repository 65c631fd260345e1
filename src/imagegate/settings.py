"""One settings object for the whole gateway.

Every field is an ``IMAGEGATE_*`` environment variable; an optional TOML file
(``IMAGEGATE_CONFIG``) supplies values the environment does not. The field
descriptions are the settings table that the CLI and docs print.
"""

from __future__ import annotations

import json
import os
from datetime import date
from functools import cached_property
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import Field, SecretStr, field_validator
from pydantic_settings import (
    BaseSettings,
    NoDecode,
    PydanticBaseSettingsSource,
    SettingsConfigDict,
    TomlConfigSettingsSource,
)

from imagegate.limits.tiers import Tier, default_tiers
from imagegate.providers.config import ProviderConfig
from imagegate.storage.urls import parse_allow_entry

MiB = 1024 * 1024


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="IMAGEGATE_", extra="ignore")

    host: str = Field("127.0.0.1", description="Address the HTTP server binds to.")
    port: int = Field(8000, description="Port the HTTP server listens on (0 picks a free one).")
    data_dir: Path = Field(
        Path(".imagegate"), description="Directory for the SQLite file, stored files and the signing key."
    )
    database_url: str | None = Field(
        None,
        description="SQLAlchemy async URL; default: SQLite file in the data directory. PostgreSQL: "
        "postgresql://user:password@host:port/db (driven by psycopg 3; install imagegate[postgres]).",
    )
    storage_url: str | None = Field(
        None,
        description="Where image bytes live; default: file:// directory in the data directory. "
        "s3://bucket/prefix: an S3-compatible bucket, outputs downloaded by presigned URLs.",
    )
    s3_endpoint_url: str | None = Field(
        None,
        description="S3 endpoint for s3:// storage (MinIO, SeaweedFS...); default: AWS_ENDPOINT_URL or AWS.",
    )
    s3_region: str | None = Field(
        None, description="S3 region; default: AWS_REGION or AWS_DEFAULT_REGION, else us-east-1."
    )
    s3_access_key_id: str | None = Field(None, description="S3 access key; default: AWS_ACCESS_KEY_ID.")
    s3_secret_access_key: SecretStr | None = Field(
        None, description="S3 secret key; default: AWS_SECRET_ACCESS_KEY."
    )
    redis_url: str | None = Field(
        None,
        description="Redis shared by every replica (redis://host:port/db): rate-limit counters, task events "
        "(progress, partial images, ends: streams and waiters on any replica) and cancel requests.",
    )
    signing_key: SecretStr | None = Field(
        None,
        description="Key that signs download links and upload tokens, shared by every replica; default: "
        "made once and kept in the database (PostgreSQL) or in the data directory (SQLite).",
    )
    public_url: str | None = Field(
        None, description="Base URL clients use to reach this server; default: taken from each request."
    )
    admin_token: str | None = Field(
        None, description="Bearer token for the /admin/ routes; unset turns those routes off."
    )
    config: Path | None = Field(None, description="Optional TOML file with any of these settings.")
    catalog_file: Path | None = Field(
        None, description="TOML file that overrides prices and lifecycle or adds models to the catalog."
    )
    default_provider: str | None = Field(
        None,
        description="Provider that serves catalog models that name none; default: openai when "
        "OPENAI_API_KEY is set, else offline.",
    )
    providers: list[ProviderConfig] = Field(
        default_factory=list,
        description="Upstream providers as JSON (or [[providers]] tables in the TOML file): name, kind "
        "(openai, runapi, diffusers, offline, fake), api_key_env (the NAME of the variable holding the key), "
        "base_url, timeout_s, max_concurrent, max_retries, retry_base_s, retry_cap_s, poll_interval_s; "
        "diffusers: model_path, device, dtype, preview_every.",
    )
    breaker_failures: int = Field(
        5, ge=1, description="Consecutive retryable failures after which a provider is skipped."
    )
    breaker_reset_s: float = Field(
        30.0, gt=0, description="How long a skipped provider rests before one trial call is let through."
    )
    openai_default_model: str = Field(
        "gpt-image-2", description="Model the OpenAI-compatible routes use when a request names none."
    )
    catalog_date: date | None = Field(
        None,
        description="Judge model lifecycles as of this date instead of today (rehearse a retirement).",
    )
    retired_models: Literal["successor", "refuse"] = Field(
        "successor",
        description="After a model's shutdown date: serve its successor, or refuse with 410 model_retired.",
    )
    support_url: str | None = Field(
        None, description="Where users report issues (an issue tracker or help page), shown in the FAQ."
    )
    support_email: str | None = Field(
        None, description="Support email address shown in the catalog FAQ; unset: none is shown."
    )
    workers: int = Field(4, ge=1, le=4096, description="Tasks the in-process worker pool runs at once.")
    job_queue: Literal["local", "postgres"] = Field(
        "local",
        description="Who runs tasks: local (a worker pool in each server process) or postgres (jobs in "
        "PostgreSQL, run by `imagegate worker` processes; install imagegate[postgres]).",
    )
    task_timeout_s: float = Field(600.0, gt=0, description="A task running longer than this fails.")
    lease_s: float = Field(
        30.0,
        gt=0,
        description="How long a worker's claim on a running task lasts unless renewed (it renews every "
        "third of it); a crashed worker's tasks are taken up again after this.",
    )
    max_attempts: int = Field(
        2, ge=1, description="Runs a task gets when a worker dies under it before it is failed."
    )
    sync_timeout_s: float = Field(
        300.0, gt=0, description="How long the synchronous OpenAI routes wait for their task."
    )
    output_retention_s: int = Field(7 * 24 * 3600, gt=0, description="How long output images are kept.")
    partial_retention_s: int = Field(
        3600, gt=0, description="How long partial (preview) images of a streamed task are kept."
    )
    sse_heartbeat_s: float = Field(
        15.0, gt=0, description="Seconds between heartbeat comments on an open task event stream."
    )
    upload_retention_s: int = Field(3600, gt=0, description="How long files posted to /api/v1/files live.")
    sweep_interval_s: float = Field(
        30.0, gt=0, description="How often expired files and stuck tasks are looked for."
    )
    max_upload_bytes: int = Field(25 * MiB, gt=0, description="Largest image accepted, per file, in bytes.")
    max_image_pixels: int = Field(
        64_000_000, gt=0, description="Largest decoded image accepted (width x height): bomb guard."
    )
    max_request_bytes: int = Field(
        64 * MiB,
        gt=0,
        description="Largest multipart request body (all files and fields), counted as it streams in.",
    )
    max_request_pixels: int = Field(
        16 * 3840 * 2160,
        gt=0,
        description="Pixels allowed per request across all source images and the mask "
        "(default: 16 images of 3840x2160).",
    )
    fetch_timeout_s: float = Field(15.0, gt=0, description="Time limit for fetching a source image URL.")
    # NoDecode: the environment gives "a,b" (the documented form), not JSON; _split_hosts parses it.
    fetch_allow_hosts: Annotated[list[str], NoDecode] = Field(
        default_factory=list,
        description="Comma-separated host or host:port entries ([::1]:8080 for IPv6) that requests made "
        "for users (source images, webhooks) may reach even if private, e.g. 127.0.0.1.",
    )
    webhook_timeout_s: float = Field(
        10.0, gt=0, description="Time limit for one webhook delivery attempt (connect, send, answer)."
    )
    webhook_retry_base_s: float = Field(
        10.0, gt=0, description="Wait before a failed webhook's first retry; doubled on each retry."
    )
    webhook_retry_max_s: float = Field(
        3 * 3600.0, gt=0, description="Longest wait between two webhook attempts (before jitter)."
    )
    webhook_retry_window_s: float = Field(
        24 * 3600.0,
        gt=0,
        description="How long after a task's end its webhook is retried; after that the delivery fails.",
    )
    webhook_poll_s: float = Field(
        1.0,
        gt=0,
        description="How often webhook attempts that are due are looked for (the in-process sender; with "
        "IMAGEGATE_JOB_QUEUE=postgres, a periodic job on the workers, at least a second apart).",
    )
    webhook_listen_poll_s: float = Field(
        1.0, gt=0, description="How often an `imagegate listen` stream looks for new task-end events."
    )
    webhook_retention_s: int = Field(
        7 * 24 * 3600,
        gt=0,
        description="How long finished webhook deliveries and their attempts are kept.",
    )
    webhook_secret_grace_s: int = Field(
        24 * 3600,
        ge=0,
        description="After a secret rotation, webhooks are signed with the old secret too for this long.",
    )
    demo_account: bool = Field(
        True, description="Create a demo account and print its key on the first start."
    )
    demo_grant_usd: str = Field(
        "5", description="Credits (USD) granted to the demo account, pinned to tier2."
    )
    billing_enabled: bool = Field(
        True, description="Hold and charge credits per call; off: calls are free and no ledger is kept."
    )
    rate_limits_enabled: bool = Field(
        True, description="Enforce the tiers' request-rate and concurrency limits."
    )
    free_calls_per_variant: int = Field(
        3, ge=0, description="Free first calls each new account gets on every variant (0 turns them off)."
    )
    tiers: list[Tier] = Field(
        default_factory=default_tiers,
        description="Usage tiers as JSON: name, creates_per_minute, reads_per_minute, max_concurrent, "
        "paid_spend_threshold_micro.",
    )
    rate_limit_storage_url: str = Field(
        "memory://",
        description="Where rate-limit counters live (memory://, or redis://host:port); IMAGEGATE_REDIS_URL, "
        "when set, takes the place of memory://.",
    )
    rate_window_s: int = Field(
        60, gt=0, description="Length of the rate-limit window; tiers' per-minute figures apply per window."
    )
    key_cache_s: float = Field(
        5.0,
        ge=0,
        description="How long a server keeps an authenticated key in memory; a revocation or tier change "
        "made by another process (the CLI, another replica) applies after at most this. 0 turns it off.",
    )
    log_level: str = Field("info", description="Log level for the server.")

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        sources: list[PydanticBaseSettingsSource] = [init_settings, env_settings]
        config_path = os.environ.get("IMAGEGATE_CONFIG")
        if config_path:
            sources.append(TomlConfigSettingsSource(settings_cls, toml_file=config_path))
        return tuple(sources)

    @field_validator("fetch_allow_hosts", mode="before")
    @classmethod
    def _split_hosts(cls, value: Any) -> Any:
        if isinstance(value, str):
            text = value.strip()
            if text.startswith('["'):  # the JSON list form, which worked before the comma form did
                return json.loads(text)
            return [part.strip() for part in text.split(",") if part.strip()]
        return value

    @field_validator("fetch_allow_hosts")
    @classmethod
    def _check_hosts(cls, value: list[str]) -> list[str]:
        """Each entry in its canonical spelling; a malformed one stops the start with its reason."""
        return [str(parse_allow_entry(entry)) for entry in value]

    @cached_property
    def resolved_database_url(self) -> str:
        if self.database_url:
            return async_database_url(self.database_url)
        return f"sqlite+aiosqlite:///{self.data_dir.resolve() / 'imagegate.db'}"

    @cached_property
    def resolved_storage_url(self) -> str:
        if self.storage_url:
            return self.storage_url
        return (self.data_dir.resolve() / "files").as_uri()


def async_database_url(url: str) -> str:
    """PostgreSQL URLs without a driver get psycopg 3 (async, and shareable with a job queue)."""
    for plain in ("postgresql://", "postgres://"):
        if url.startswith(plain):
            return "postgresql+psycopg://" + url.removeprefix(plain)
    return url


def settings_table() -> list[tuple[str, str, str]]:
    """(environment variable, default, help) for every setting."""
    rows = []
    for name, field in Settings.model_fields.items():
        default = field.get_default(call_default_factory=True)
        if isinstance(default, list) and default and hasattr(default[0], "model_dump"):
            default = json.dumps([item.model_dump() for item in default])
        rows.append(
            (f"IMAGEGATE_{name.upper()}", "" if default is None else str(default), field.description or "")
        )
    return rows
