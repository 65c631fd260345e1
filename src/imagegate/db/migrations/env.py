import asyncio

from alembic import context
from sqlalchemy import text
from sqlalchemy.engine import Connection

from imagegate.db.models import Base
from imagegate.db.session import make_engine

target_metadata = Base.metadata
MIGRATION_LOCK = 0x1A6E6A7E  # any constant, the same in every replica


def _ours(obj: object, name: str | None, type_: str, reflected: bool, compare_to: object) -> bool:
    """Autogenerate leaves the job queue's tables (procrastinate makes and migrates its own) alone."""
    return not (
        type_ == "table" and reflected and compare_to is None and (name or "").startswith("procrastinate_")
    )


def _run(connection: Connection) -> None:
    context.configure(
        connection=connection,
        target_metadata=target_metadata,
        include_object=_ours,
        render_as_batch=connection.dialect.name == "sqlite",
        compare_type=True,
    )
    with context.begin_transaction():
        if connection.dialect.name == "postgresql":
            # Replicas starting together migrate one at a time; the others then find the schema
            # current. A transaction lock: PostgreSQL's DDL commits with the version row.
            connection.execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": MIGRATION_LOCK})
        context.run_migrations()


async def _run_async() -> None:
    engine = make_engine(context.config.get_main_option("sqlalchemy.url") or "")
    async with engine.connect() as connection:
        await connection.run_sync(_run)
        await connection.commit()
    await engine.dispose()


if context.is_offline_mode():
    context.configure(url=context.config.get_main_option("sqlalchemy.url"), target_metadata=target_metadata)
    with context.begin_transaction():
        context.run_migrations()
else:
    asyncio.run(_run_async())
