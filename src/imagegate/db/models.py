"""SQLAlchemy tables: accounts, API keys, tasks, stored input files."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from sqlalchemy import (
    JSON,
    BigInteger,
    Boolean,
    CheckConstraint,
    DateTime,
    ForeignKey,
    Index,
    Integer,
    String,
    Text,
    TypeDecorator,
    UniqueConstraint,
    false,
)
from sqlalchemy.engine import Dialect
from sqlalchemy.ext.compiler import compiles
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column
from sqlalchemy.sql.compiler import SQLCompiler
from sqlalchemy.sql.functions import FunctionElement


def utcnow() -> datetime:
    return datetime.now(UTC)


class UTCDateTime(TypeDecorator[datetime]):
    """Timezone-aware UTC datetimes on every backend (SQLite drops the offset)."""

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError("naive datetime")
        return value.astimezone(UTC)

    def process_result_value(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is not None and value.tzinfo is None:
            return value.replace(tzinfo=UTC)
        return value


class utc_day(FunctionElement[Any]):
    """The UTC calendar day of a ``UTCDateTime`` column, computed by the database (for GROUP BY).
    SQLite keeps the UTC text, PostgreSQL a timestamptz read in the session's time zone."""

    inherit_cache = True
    name = "utc_day"


@compiles(utc_day, "sqlite")
def _utc_day_sqlite(element: utc_day, compiler: SQLCompiler, **kw: Any) -> str:
    return f"date({compiler.process(element.clauses, **kw)})"


@compiles(utc_day, "postgresql")
def _utc_day_postgresql(element: utc_day, compiler: SQLCompiler, **kw: Any) -> str:
    return f"CAST(({compiler.process(element.clauses, **kw)}) AT TIME ZONE 'UTC' AS DATE)"


class Base(DeclarativeBase):
    type_annotation_map = {datetime: UTCDateTime, dict[str, Any]: JSON, list[Any]: JSON}


class Account(Base):
    __tablename__ = "accounts"

    id: Mapped[str] = mapped_column(String(36), primary_key=True)
    name: Mapped[str] = mapped_column(String(200), unique=True)
    email: Mapped[str | None] = mapped_column(String(320))  # optional contact; RunAPI's /me carries it
    tier_pinned: Mapped[str | None] = mapped_column(String(64))  # None: by paid spend
    created_at: Mapped[datetime] = mapped_column(default=utcnow)


class ApiKey(Base):
    __tablename__ = "api_keys"

    id: Mapped[str] = mapped_column(String(36), primary_key=True)
    account_id: Mapped[str] = mapped_column(ForeignKey("accounts.id", ondelete="CASCADE"), index=True)
    prefix: Mapped[str] = mapped_column(String(16), unique=True)  # shown to humans, e.g. ig_AbC123xY
    secret_hash: Mapped[str] = mapped_column(String(64), unique=True)  # SHA-256 hex of the whole key
    name: Mapped[str | None] = mapped_column(String(200))
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    last_used_at: Mapped[datetime | None]
    revoked_at: Mapped[datetime | None]


class Task(Base):
    __tablename__ = "tasks"
    __table_args__ = (
        Index("ix_tasks_account_created", "account_id", "created_at", "id"),
        Index("ix_tasks_status_lease", "status", "lease_until"),
        Index("ix_tasks_account_status", "account_id", "status"),  # the concurrency count
        Index("ix_tasks_account_completed", "account_id", "completed_at", "id"),  # `listen` tails ends
    )

    id: Mapped[str] = mapped_column(String(36), primary_key=True)
    account_id: Mapped[str] = mapped_column(ForeignKey("accounts.id", ondelete="CASCADE"))
    api_key_id: Mapped[str | None] = mapped_column(ForeignKey("api_keys.id", ondelete="SET NULL"))
    face: Mapped[str] = mapped_column(String(16))  # runapi | openai
    service: Mapped[str] = mapped_column(String(64))
    action: Mapped[str] = mapped_column(String(32))
    model: Mapped[str] = mapped_column(String(128))  # as requested (canonical id)
    model_served: Mapped[str] = mapped_column(String(128))  # after lifecycle resolution
    variant: Mapped[str] = mapped_column(String(160))
    provider: Mapped[str] = mapped_column(String(32))
    status: Mapped[str] = mapped_column(String(16), index=True)
    params: Mapped[dict[str, Any]]  # contract parameters, as requested
    render: Mapped[dict[str, Any]]  # what the provider gets: size, n, format, served params
    inputs: Mapped[list[Any]]  # source references: [{"kind": "url"|"storage", "ref": ...}]
    images: Mapped[list[Any]] = mapped_column(default=list)  # [{key, width, height, content_type, bytes}]
    usage: Mapped[dict[str, Any] | None]
    # Each provider call of every run: [{provider, started_at, ended_at, error_code}], written at the end.
    provider_attempts: Mapped[list[Any] | None]
    # What the upstream charged us for it (its token usage at the catalog's token prices).
    upstream_cost_micro: Mapped[int] = mapped_column(BigInteger, default=0, server_default="0")
    error: Mapped[str | None] = mapped_column(Text)
    error_code: Mapped[str | None] = mapped_column(String(64))
    callback_url: Mapped[str | None] = mapped_column(Text)
    client_request_id: Mapped[str | None] = mapped_column(String(512))
    idempotency_key: Mapped[str | None] = mapped_column(String(512))
    # Billing: the price held at creation (the requested variant's, even when a successor runs).
    price_micro: Mapped[int] = mapped_column(BigInteger, default=0, server_default="0")  # list price
    charge_micro: Mapped[int] = mapped_column(BigInteger, default=0, server_default="0")  # held: 0 if free
    hold_bonus_micro: Mapped[int] = mapped_column(BigInteger, default=0, server_default="0")
    free_call: Mapped[bool] = mapped_column(Boolean, default=False, server_default=false())
    # held | captured | released; "none" for tasks from before billing existed.
    hold_state: Mapped[str] = mapped_column(String(16), default="held", server_default="none")
    settled_at: Mapped[datetime | None]
    refunded_at: Mapped[datetime | None]
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    lease_until: Mapped[datetime | None]
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    started_at: Mapped[datetime | None]
    completed_at: Mapped[datetime | None]
    outputs_expire_at: Mapped[datetime | None]
    outputs_deleted_at: Mapped[datetime | None]


class StoredFile(Base):
    """Input bytes held in storage for a while: uploads, and data: URLs of a task."""

    __tablename__ = "files"

    id: Mapped[str] = mapped_column(String(36), primary_key=True)
    account_id: Mapped[str] = mapped_column(ForeignKey("accounts.id", ondelete="CASCADE"), index=True)
    task_id: Mapped[str | None] = mapped_column(String(36), index=True)  # set: deleted when the task ends
    key: Mapped[str] = mapped_column(String(300), unique=True)
    file_name: Mapped[str | None] = mapped_column(String(300))
    mime_type: Mapped[str] = mapped_column(String(64))
    size_bytes: Mapped[int] = mapped_column(Integer)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    expires_at: Mapped[datetime] = mapped_column(index=True)


class Balance(Base):
    """Running totals of an account's ledger, so a balance reads in O(1); rebuildable from it."""

    __tablename__ = "balances"
    __table_args__ = (
        CheckConstraint("paid_micro >= 0", name="paid_not_negative"),
        CheckConstraint("bonus_micro >= 0", name="bonus_not_negative"),
        CheckConstraint("held_micro >= 0", name="held_not_negative"),
    )

    account_id: Mapped[str] = mapped_column(ForeignKey("accounts.id", ondelete="CASCADE"), primary_key=True)
    paid_micro: Mapped[int] = mapped_column(BigInteger, default=0)  # spendable, bought
    bonus_micro: Mapped[int] = mapped_column(BigInteger, default=0)  # spendable, granted free
    held_micro: Mapped[int] = mapped_column(BigInteger, default=0)  # reserved by running tasks
    spent_paid_micro: Mapped[int] = mapped_column(BigInteger, default=0)
    spent_bonus_micro: Mapped[int] = mapped_column(BigInteger, default=0)
    version: Mapped[int] = mapped_column(BigInteger, default=0)  # bumped to take the row lock


class LedgerEntry(Base):
    """Append-only. Amounts are non-negative; the kind says which way money moves."""

    __tablename__ = "ledger_entries"
    __table_args__ = (
        UniqueConstraint("task_id", "kind", name="one_entry_per_task_and_kind"),
        CheckConstraint("amount_micro >= 0 AND bonus_micro >= 0 AND bonus_micro <= amount_micro"),
        Index("ix_ledger_account_created", "account_id", "created_at"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    account_id: Mapped[str] = mapped_column(ForeignKey("accounts.id", ondelete="CASCADE"))
    kind: Mapped[str] = mapped_column(String(16))  # grant | hold | capture | release
    amount_micro: Mapped[int] = mapped_column(BigInteger)
    bonus_micro: Mapped[int] = mapped_column(BigInteger, default=0)  # the part in the bonus bucket
    task_id: Mapped[str | None] = mapped_column(String(36))
    note: Mapped[str | None] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)


class FreeCallUsage(Base):
    __tablename__ = "free_call_usage"

    account_id: Mapped[str] = mapped_column(ForeignKey("accounts.id", ondelete="CASCADE"), primary_key=True)
    variant: Mapped[str] = mapped_column(String(160), primary_key=True)
    used: Mapped[int] = mapped_column(Integer, default=0)


class IdempotencyRecord(Base):
    """One row per (account, Idempotency-Key): the unique key is what makes replays safe."""

    __tablename__ = "idempotency_keys"

    account_id: Mapped[str] = mapped_column(ForeignKey("accounts.id", ondelete="CASCADE"), primary_key=True)
    key: Mapped[str] = mapped_column(String(512), primary_key=True)
    request_hash: Mapped[str] = mapped_column(String(64))
    task_id: Mapped[str] = mapped_column(String(36))
    created_at: Mapped[datetime] = mapped_column(default=utcnow, index=True)


class WebhookSecret(Base):
    """An account's Standard Webhooks signing key (``whsec_...``): kept readable, it signs."""

    __tablename__ = "webhook_secrets"

    account_id: Mapped[str] = mapped_column(ForeignKey("accounts.id", ondelete="CASCADE"), primary_key=True)
    secret: Mapped[str] = mapped_column(String(100))
    previous_secret: Mapped[str | None] = mapped_column(String(100))  # still signs until previous_until
    previous_until: Mapped[datetime | None]
    created_at: Mapped[datetime] = mapped_column(default=utcnow)  # of the current secret


class WebhookDelivery(Base):
    """The outbox: one task end to send to one URL, retried until it succeeds or runs out."""

    __tablename__ = "webhook_deliveries"
    __table_args__ = (Index("ix_webhook_deliveries_due", "state", "next_attempt_at"),)

    id: Mapped[str] = mapped_column(String(36), primary_key=True)
    account_id: Mapped[str] = mapped_column(String(36))
    task_id: Mapped[str] = mapped_column(String(36), index=True)
    message_id: Mapped[str] = mapped_column(String(64))  # webhook-id: the same for every redelivery
    type: Mapped[str] = mapped_column(String(32))
    url: Mapped[str] = mapped_column(Text)
    state: Mapped[str] = mapped_column(String(16))  # pending | succeeded | failed
    attempts: Mapped[int] = mapped_column(Integer, default=0)  # claimed so far: the fence of the next
    next_attempt_at: Mapped[datetime | None]
    lease_until: Mapped[datetime | None]
    created_at: Mapped[datetime]
    finished_at: Mapped[datetime | None]


class WebhookAttempt(Base):
    """Every attempt of a delivery, with what came of it."""

    __tablename__ = "webhook_attempts"
    __table_args__ = (UniqueConstraint("delivery_id", "number", name="one_row_per_attempt"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    delivery_id: Mapped[str] = mapped_column(ForeignKey("webhook_deliveries.id", ondelete="CASCADE"))
    number: Mapped[int] = mapped_column(Integer)
    started_at: Mapped[datetime]
    status_code: Mapped[int | None] = mapped_column(Integer)
    latency_ms: Mapped[int] = mapped_column(Integer)
    error: Mapped[str | None] = mapped_column(Text)


class GatewaySecret(Base):
    """A secret every replica must share (the URL-signing key): the first to start writes it."""

    __tablename__ = "gateway_secrets"

    name: Mapped[str] = mapped_column(String(64), primary_key=True)
    value: Mapped[str] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
