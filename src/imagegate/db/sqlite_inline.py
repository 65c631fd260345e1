"""SQLite statements on the event loop's own thread: no thread round trip per statement.

aiosqlite runs every statement on a helper thread; each SQLAlchemy statement is several
round trips to it, and waking that thread on the other core fights the event loop for
the GIL. A local WAL-mode statement takes microseconds, so this dialect runs the stdlib
``sqlite3`` driver directly inside SQLAlchemy's async greenlet. The one thing that could
block the loop, waiting for another process's write lock, is not left to SQLite's busy
handler (which sleeps the thread): the busy timeout is zero and a locked statement is
retried with ``asyncio.sleep``, so other requests keep running meanwhile.

``sqlite+aiosqlite`` URLs are served by this dialect (see ``db.session.make_engine``).
"""

from __future__ import annotations

import asyncio
import sqlite3
import time
from collections.abc import Callable
from types import SimpleNamespace
from typing import Any, TypeVar

from sqlalchemy import pool
from sqlalchemy.dialects.sqlite.pysqlite import SQLiteDialect_pysqlite
from sqlalchemy.engine.url import URL
from sqlalchemy.util.concurrency import await_

T = TypeVar("T")

BUSY_WAIT_S = 30.0  # how long a statement waits for another process's write lock
FIRST_BACKOFF_S = 0.001
MAX_BACKOFF_S = 0.05


def is_busy(exc: sqlite3.OperationalError) -> bool:
    """SQLite's answer when another connection holds the lock (worth another try)."""
    return "locked" in str(exc) or "busy" in str(exc)


def _retrying(call: Callable[[], T]) -> T:
    """Run ``call``; while SQLite says another connection holds the lock, wait without
    blocking the loop (``await_`` suspends this greenlet) and try again."""
    deadline = time.monotonic() + BUSY_WAIT_S
    backoff = FIRST_BACKOFF_S
    while True:
        try:
            return call()
        except sqlite3.OperationalError as exc:
            if not is_busy(exc) or time.monotonic() > deadline:
                raise
        await_(asyncio.sleep(backoff))
        backoff = min(backoff * 2, MAX_BACKOFF_S)


class _Cursor:
    def __init__(self, cursor: sqlite3.Cursor) -> None:
        self._cursor = cursor

    def execute(self, statement: str, parameters: Any = ()) -> _Cursor:
        _retrying(lambda: self._cursor.execute(statement, parameters))
        return self

    def executemany(self, statement: str, parameters: Any) -> _Cursor:
        _retrying(lambda: self._cursor.executemany(statement, parameters))
        return self

    async def _async_soft_close(self) -> None:
        """Called by SQLAlchemy's async results once a Core result is built: the rows stay
        readable from the stdlib cursor without any await, so there is nothing to do."""

    def __getattr__(self, name: str) -> Any:  # fetch*, description, rowcount, lastrowid, close...
        return getattr(self._cursor, name)


class _Connection:
    def __init__(self, connection: sqlite3.Connection) -> None:
        object.__setattr__(self, "_connection", connection)

    def cursor(self) -> _Cursor:
        return _Cursor(self._connection.cursor())

    def commit(self) -> None:
        _retrying(self._connection.commit)

    def __getattr__(self, name: str) -> Any:  # rollback, close, create_function, isolation_level...
        return getattr(self._connection, name)

    def __setattr__(self, name: str, value: Any) -> None:  # isolation_level
        setattr(self._connection, name, value)


def _connect(*args: Any, **kwargs: Any) -> _Connection:
    kwargs["timeout"] = 0  # never sleep the loop's thread in SQLite's own busy handler
    kwargs["check_same_thread"] = False  # the pool may close a connection from another thread
    return _Connection(sqlite3.connect(*args, **kwargs))


def _dbapi() -> Any:
    names = [name for name in dir(sqlite3) if not name.startswith("_")]
    module = SimpleNamespace(**{name: getattr(sqlite3, name) for name in names})
    module.connect = _connect
    return module


class SQLiteDialect_inline(SQLiteDialect_pysqlite):
    driver = "inline"
    is_async = True
    supports_statement_cache = True

    @classmethod
    def import_dbapi(cls) -> Any:
        return _dbapi()

    @classmethod
    def get_pool_class(cls, url: URL) -> type[pool.Pool]:
        if cls._is_url_file_db(url):
            return pool.AsyncAdaptedQueuePool
        return pool.StaticPool


dialect = SQLiteDialect_inline
