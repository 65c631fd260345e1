"""Run Alembic migrations from code, at start-up and from the CLI."""

from __future__ import annotations

import asyncio
from importlib import resources

from alembic import command
from alembic.config import Config


def alembic_config(database_url: str) -> Config:
    script_location = str(resources.files("imagegate.db").joinpath("migrations"))
    config = Config()
    config.set_main_option("script_location", script_location)
    config.set_main_option("sqlalchemy.url", database_url)
    config.attributes["configure_logger"] = False
    return config


def upgrade(database_url: str) -> None:
    command.upgrade(alembic_config(database_url), "head")


async def upgrade_async(database_url: str) -> None:
    # env.py drives an async engine with asyncio.run: give it a thread with no running loop.
    await asyncio.to_thread(upgrade, database_url)
