"""Run Alembic migrations from code, at start-up and from the CLI."""

from __future__ import annotations

import asyncio
import contextlib
import os
from importlib import resources

from alembic import command
from alembic.config import Config
from sqlalchemy.engine import make_url


def alembic_config(database_url: str) -> Config:
    script_location = str(resources.files("imagegate.db").joinpath("migrations"))
    config = Config()
    config.set_main_option("script_location", script_location)
    config.set_main_option("sqlalchemy.url", database_url)
    config.attributes["configure_logger"] = False
    return config


def create_private_sqlite_file(database_url: str) -> None:
    """Create a new SQLite file owner-only (0600) before SQLite makes it with the umask's mode;
    its -wal and -shm files take the same mode. It holds key hashes and the ledger."""
    url = make_url(database_url)
    if url.get_backend_name() != "sqlite" or not url.database or url.database == ":memory:":
        return
    with contextlib.suppress(FileExistsError):
        os.close(os.open(url.database, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o600))


def upgrade(database_url: str) -> None:
    create_private_sqlite_file(database_url)
    command.upgrade(alembic_config(database_url), "head")


async def upgrade_async(database_url: str) -> None:
    # env.py drives an async engine with asyncio.run: give it a thread with no running loop.
    await asyncio.to_thread(upgrade, database_url)
