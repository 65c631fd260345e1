"""Engine and sessions. SQLite gets WAL and a busy timeout so readers never block the writer."""

from __future__ import annotations

import asyncio
import contextlib
import sqlite3
import time
from collections.abc import AsyncIterator, Callable, Mapping
from contextlib import asynccontextmanager
from typing import Any, TypeVar

from sqlalchemy import Select, event
from sqlalchemy.dialects import registry
from sqlalchemy.engine import make_url
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker, create_async_engine

from imagegate.db.sqlite_inline import FIRST_BACKOFF_S, MAX_BACKOFF_S, is_busy
from imagegate.db.writer import Prepared, SessionTx, SQLiteTx, Tx

registry.register("sqlite.inline", "imagegate.db.sqlite_inline", "SQLiteDialect_inline")


T = TypeVar("T")
PG_POOL_SIZE = 15  # PostgreSQL connections per process, all kept open (docs/deploy.md sizes on it)


def make_engine(url: str) -> AsyncEngine:
    parsed = make_url(url)
    if parsed.drivername in ("sqlite", "sqlite+aiosqlite"):
        parsed = parsed.set(drivername="sqlite+inline")  # statements on the loop (db/sqlite_inline.py)
    if parsed.get_backend_name() == "postgresql":
        # The default pool (5 kept, 10 more closed on return) opened and closed a PostgreSQL
        # backend (a fork and its catalog warm-up) for most requests under load: 115 extra
        # backends for 200 tasks at 10 clients. The same 15 at most, all kept.
        engine = create_async_engine(parsed, pool_size=PG_POOL_SIZE, max_overflow=0)
    else:
        engine = create_async_engine(parsed)
    if engine.dialect.name == "sqlite":

        @event.listens_for(engine.sync_engine, "connect")
        def _sqlite_pragmas(dbapi_connection: Any, _record: Any) -> None:
            cursor = dbapi_connection.cursor()
            cursor.execute("PRAGMA journal_mode=WAL")
            cursor.execute("PRAGMA synchronous=NORMAL")
            cursor.execute("PRAGMA foreign_keys=ON")
            cursor.execute("PRAGMA wal_autocheckpoint=0")  # Database checkpoints off the loop
            cursor.close()

    return engine


READ_BUSY_WAIT_S = 30.0  # a WAL reader waits only in rare cases (another process recovering the WAL)


async def _retry_busy(call: Callable[[], T], wait_s: float) -> T:
    """``call``, again after a short ``asyncio.sleep`` while another process holds the lock
    (as ``sqlite_inline`` does inside SQLAlchemy), for at most ``wait_s``."""
    deadline = time.monotonic() + wait_s
    backoff = FIRST_BACKOFF_S
    while True:
        try:
            return call()
        except sqlite3.OperationalError as exc:
            if not is_busy(exc) or time.monotonic() > deadline:
                raise
        await asyncio.sleep(backoff)
        backoff = min(backoff * 2, MAX_BACKOFF_S)


WRITE_BUSY_WAIT_S = 30.0  # how long a write waits for another process's write lock
# SQLite checkpoints the WAL inside a COMMIT once it passes 1,000 pages, and a checkpoint
# fsyncs the database file: on ext4 that flushes every dirty output file too, and the loop
# stopped for 0.3-2 s every few hundred tasks. The loop's connections never checkpoint; this
# process copies the WAL back on a thread of its own every so many commits instead.
CHECKPOINT_EVERY = 100  # commits


class Database:
    def __init__(self, url: str) -> None:
        self.url = url
        self.engine = make_engine(url)
        self.sessions = async_sessionmaker(self.engine, expire_on_commit=False)
        # One SELECT needs no transaction: in autocommit it is one round trip, not BEGIN, the
        # statement and the ROLLBACK of a session's close (a task poll's whole database cost).
        self._autocommit = self.engine.execution_options(isolation_level="AUTOCOMMIT")
        self._write_lock = asyncio.Lock() if self.engine.dialect.name == "sqlite" else None
        self._reader: sqlite3.Connection | None = None
        self._writer: sqlite3.Connection | None = None
        self._prepared: dict[int, Prepared] = {}
        self._written: dict[Any, Prepared] = {}
        self._trace: Callable[[str], None] | None = None
        self._commits = 0
        self._checkpointer: sqlite3.Connection | None = None
        self._checkpoint: asyncio.Future[None] | None = None
        database = self.engine.url.database
        if self.engine.dialect.name == "sqlite" and database and database != ":memory:":
            self._reader_path: str | None = database
        else:
            self._reader_path = None

    async def read_one(self, statement: Select[Any], values: Mapping[str, Any]) -> dict[str, Any] | None:
        """The first row of ``statement`` (a module-level Core SELECT with bind parameters),
        as column key -> value, typed as SQLAlchemy would.

        On a SQLite file this is one stdlib call on a read-only connection kept for it: no
        session, pool or transaction, which cost far more than the statement (a WAL reader sees
        the last commit and never waits for a writer). On PostgreSQL it runs alone in
        autocommit (no transaction); elsewhere, in a session.
        """
        if self.engine.dialect.name == "postgresql":
            async with self._autocommit.connect() as connection:
                found = (await connection.execute(statement, dict(values))).mappings().first()
            return dict(found) if found is not None else None
        if self._reader_path is None:
            async with self.sessions() as session:
                found = (await session.execute(statement, dict(values))).mappings().first()
            return dict(found) if found is not None else None
        prepared = self._prepared.get(id(statement))
        if prepared is None or prepared.statement is not statement:
            prepared = self._prepared[id(statement)] = Prepared(statement, self.engine.dialect)
        reader = self._reader or self._open_reader(self._reader_path)
        parameters = prepared.parameters(values)
        raw = await _retry_busy(lambda: reader.execute(prepared.sql, parameters).fetchone(), READ_BUSY_WAIT_S)
        return prepared.mapping(raw) if raw is not None else None

    def _open_reader(self, path: str) -> sqlite3.Connection:
        reader = sqlite3.connect(path, timeout=0, isolation_level=None, check_same_thread=False)
        reader.execute("PRAGMA query_only=ON")
        self._reader = reader
        return reader

    @asynccontextmanager
    async def write(self) -> AsyncIterator[Tx]:
        """A write transaction for Core statements (``db.writer``): commits on success, rolls
        back on any error.

        On a SQLite file the statements run on a stdlib connection kept for it, in a BEGIN
        IMMEDIATE taken under this process's write lock (another process's write lock is
        waited for with ``asyncio.sleep``, never by sleeping the loop's thread). Elsewhere it
        is ``transaction()``'s session.
        """
        if self._reader_path is None or self._write_lock is None:
            async with self.transaction() as session:
                yield SessionTx(session)
            return
        async with self._write_lock:
            writer = self._writer or self._open_writer(self._reader_path)
            await _retry_busy(lambda: writer.execute("BEGIN IMMEDIATE"), WRITE_BUSY_WAIT_S)
            try:
                yield SQLiteTx(writer, self._prepare_write)
                await _retry_busy(lambda: writer.execute("COMMIT"), WRITE_BUSY_WAIT_S)
            except BaseException:
                if writer.in_transaction:  # SQLite may have rolled back already (a full disk)
                    writer.execute("ROLLBACK")
                raise
        self._committed()

    def _committed(self) -> None:
        """Count a commit on a SQLite file; every ``CHECKPOINT_EVERY``, checkpoint on a thread."""
        if self._reader_path is None:
            return
        self._commits += 1
        if self._commits < CHECKPOINT_EVERY or (self._checkpoint is not None and not self._checkpoint.done()):
            return
        self._commits = 0
        self._checkpoint = asyncio.ensure_future(asyncio.to_thread(self._copy_back, self._reader_path))

    def _copy_back(self, path: str) -> None:
        # PASSIVE: copies what no reader still needs, never waits for a lock nor blocks a writer.
        if self._checkpointer is None:
            self._checkpointer = sqlite3.connect(
                path, timeout=0, isolation_level=None, check_same_thread=False
            )
        with contextlib.suppress(sqlite3.OperationalError):  # busy: the next one catches up
            self._checkpointer.execute("PRAGMA wal_checkpoint(PASSIVE)").fetchall()

    def _prepare_write(self, statement: Any, values: Mapping[str, Any]) -> Prepared:
        key: Any = (id(statement), frozenset(values)) if statement.is_insert else id(statement)
        prepared = self._written.get(key)
        if prepared is None or prepared.statement is not statement:
            columns = list(values) if statement.is_insert else None
            prepared = self._written[key] = Prepared(statement, self.engine.dialect, columns)
        return prepared

    def _open_writer(self, path: str) -> sqlite3.Connection:
        writer = sqlite3.connect(path, timeout=0, isolation_level=None, check_same_thread=False)
        writer.execute("PRAGMA synchronous=NORMAL")
        writer.execute("PRAGMA foreign_keys=ON")
        writer.execute("PRAGMA wal_autocheckpoint=0")  # checkpoints run off the loop: _committed
        writer.set_trace_callback(self._trace)
        self._writer = writer
        return writer

    def trace_writes(self, callback: Callable[[str], None] | None) -> None:
        """Call ``callback`` with each SQL text the SQLite write connection runs (tests and
        benchmarks count statements with it; the engine's events do not see that connection)."""
        self._trace = callback
        if self._writer is not None:
            self._writer.set_trace_callback(callback)

    @asynccontextmanager
    async def transaction(self) -> AsyncIterator[AsyncSession]:
        """A session that commits on success and rolls back on any error.

        SQLite has one writer at a time and its busy handler waits by sleeping with back-off,
        which turned 10 concurrent creates into a 2.4 s p99 (bench/create_path.py). Writers in
        this process therefore queue on an asyncio lock instead; other processes still meet
        the busy timeout.
        """
        if self._write_lock is None:
            async with self.sessions() as session, session.begin():
                yield session
            return
        async with self._write_lock, self.sessions() as session, session.begin():
            yield session
        self._committed()

    async def dispose(self) -> None:
        if self._checkpoint is not None:
            await asyncio.gather(self._checkpoint, return_exceptions=True)
        for connection in (self._reader, self._writer, self._checkpointer):
            if connection is not None:
                connection.close()
        self._reader = self._writer = self._checkpointer = None
        await self.engine.dispose()
