"""The two deployment profiles the suite runs on, and what a gateway under test is given.

- embedded: SQLite in the data directory, in-memory rate-limit counters, files on disk;
- scale: PostgreSQL (a database of its own per gateway), Redis, an S3 bucket (a prefix of its
  own per gateway), all real servers started by tests/services.py.

The integration suite runs once per profile (``[embedded]`` / ``[scale]`` in its ids), as do
tests elsewhere marked ``scale``; a module marked ``one_profile`` is about one engine or none. The
others run on embedded only. Whatever starts a gateway (``start_gateway``, ``imagegate serve``, the
admin CLI) takes its settings from ``current()``, keyed by the gateway's data directory, so a
restart finds its own database again.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from sqlalchemy import create_engine, inspect, text
from sqlalchemy.engine import make_url

from tests.services import Services

EMBEDDED, SCALE = "embedded", "scale"


@dataclass(frozen=True)
class Profile:
    name: str
    services: Services | None = None

    def settings(self, data_dir: Path) -> dict[str, Any]:
        """Settings (field names) that put a gateway with this data directory on this profile."""
        if self.services is None:
            return {}
        return dict(self.services.settings_for(data_dir))

    def env(self, data_dir: Path) -> dict[str, str]:
        return {f"IMAGEGATE_{name.upper()}": str(value) for name, value in self.settings(data_dir).items()}

    def database_url(self, data_dir: Path) -> str:
        if self.services is None:
            return f"sqlite:///{data_dir.resolve() / 'imagegate.db'}"
        return self.services.database_for(data_dir)


_current = Profile(EMBEDDED)


def current() -> Profile:
    return _current


def use(profile: Profile) -> None:
    global _current
    _current = profile


def gateway_env(data_dir: Path, **env_vars: str) -> dict[str, str]:
    """The environment of an ``imagegate`` subprocess serving ``data_dir`` on the current profile:
    the caller's IMAGEGATE_* variables dropped, the profile's and then ``env_vars`` added."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("IMAGEGATE_")}
    env.update(current().env(Path(env_vars.get("IMAGEGATE_DATA_DIR", data_dir))))
    env["IMAGEGATE_DATA_DIR"] = str(data_dir)
    env.update(env_vars)
    return env


def stored_keys(data_dir: Path, prefix: str) -> list[str]:
    """Keys of the objects that gateway keeps under ``prefix`` (a folder on disk, or the bucket)."""
    settings = current().settings(data_dir)
    if "storage_url" not in settings:
        root = data_dir / "files"
        return sorted(str(path.relative_to(root)) for path in (root / prefix).rglob("*") if path.is_file())
    import obstore
    from obstore.store import S3Store

    parts = urlsplit(settings["storage_url"])
    store = S3Store(
        parts.netloc,
        prefix=parts.path.strip("/"),
        endpoint=settings["s3_endpoint_url"],
        access_key_id=settings["s3_access_key_id"],
        secret_access_key=settings["s3_secret_access_key"],
        region=settings["s3_region"],
        client_options={"allow_http": True},
        virtual_hosted_style_request=False,
    )
    return sorted(meta["path"] for batch in obstore.list(store, prefix=prefix) for meta in batch)


def _sync_url(url: str) -> str:
    """The same database through a blocking driver (tests read it outside any event loop)."""
    parsed = make_url(url)
    if parsed.get_backend_name() == "sqlite":
        parsed = parsed.set(drivername="sqlite")
    elif parsed.get_backend_name() == "postgresql":
        parsed = parsed.set(drivername="postgresql+psycopg")  # psycopg 3 is sync and async
    return parsed.render_as_string(hide_password=False)


def sql(data_dir: Path, statement: str, *args: Any) -> list[tuple[Any, ...]]:
    """Run one statement on the database of the gateway serving ``data_dir``, behind its back.
    ``?`` placeholders, as in the DB-API."""
    counter = iter(range(len(args)))
    named = re.sub(r"\?", lambda _: f":p{next(counter)}", statement)
    engine = create_engine(_sync_url(current().database_url(data_dir)))
    try:
        with engine.begin() as conn:
            result = conn.execute(text(named), {f"p{i}": arg for i, arg in enumerate(args)})
            return [tuple(row) for row in result] if result.returns_rows else []
    finally:
        engine.dispose()


def database_cells(data_dir: Path) -> list[str]:
    """Every non-null value in every table of that gateway's database, as text."""
    engine = create_engine(_sync_url(current().database_url(data_dir)))
    try:
        with engine.connect() as conn:
            tables = inspect(conn).get_table_names()
            return [
                str(value)
                for table in tables
                for row in conn.execute(text(f'SELECT * FROM "{table}"'))
                for value in row
                if value is not None
            ]
    finally:
        engine.dispose()
