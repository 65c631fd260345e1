"""The statements of one write transaction on the hot path (create, claim, end), without the ORM.

A ``Tx`` runs Core statements built once at import. On a SQLite file (``SQLiteTx``) each is
compiled once and then run straight on a stdlib connection kept for writes, on the loop's
thread: no session, unit of work, result machinery or greenlet per statement, which cost
several times the statement itself. Anywhere else (PostgreSQL) ``SessionTx`` runs the same
statements through an ``AsyncSession``, so both engines run the same SQL.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Callable, Mapping, Sequence
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import ColumnDefault, Executable
from sqlalchemy.engine import Dialect
from sqlalchemy.ext.asyncio import AsyncSession

from imagegate.db.models import UTCDateTime

Row = tuple[Any, ...]


class Prepared:
    """A Core statement compiled once for a dialect: its SQL, how to bind its parameters and
    how to read its rows (for SELECT and for INSERT/UPDATE/DELETE, with or without RETURNING).

    Constant IN lists are expanded at compile time (they never change between calls); an
    INSERT's columns are the keys it is first called with (``column_keys``), and the columns
    it leaves out take their Python-side defaults, as SQLAlchemy's own execution does.
    """

    def __init__(self, statement: Any, dialect: Dialect, column_keys: Sequence[str] | None = None) -> None:
        self.statement = statement  # held, so its id() is never reused while this is cached
        compiled = statement.compile(dialect=dialect, column_keys=list(column_keys or []) or None)
        # The constants (literal values, expanded IN lists) and the bind processors, by final name.
        expanded = compiled._process_parameters_for_postcompile(compiled.construct_params(_check=False))
        self.sql: str = expanded.statement
        names: list[str] = list(expanded.positiontup or [])
        required = {name for name, bind in compiled.binds.items() if bind.required}
        constants: dict[str, Any] = dict(expanded.parameters)
        processors: Mapping[str, Callable[[Any], Any]] = {**compiled._bind_processors, **expanded.processors}
        defaults: dict[str, ColumnDefault] = {
            column.key: column.default for column in getattr(compiled, "insert_prefetch", ()) or ()
        }
        self.binders: list[tuple[str, bool, Any, ColumnDefault | None, Callable[[Any], Any] | None]] = [
            (name, name in required, constants.get(name), defaults.get(name), processors.get(name))
            for name in names
        ]
        columns = list(statement.exported_columns) if _returns_rows(statement) else []
        self.keys = [str(column.key) for column in columns]
        readers = [_reader(column.type, dialect) for column in columns]
        # Only the columns whose values need converting are visited per row; the rest go by zip.
        self.converted = [(i, read) for i, read in enumerate(readers) if read is not None]
        self.converted_keys = [(self.keys[i], read) for i, read in self.converted]

    def parameters(self, values: Mapping[str, Any]) -> tuple[Any, ...]:
        bound: list[Any] = []
        for name, required, constant, default, process in self.binders:
            if name in values:
                value = values[name]
            elif required and default is None:
                raise KeyError(f"no value for the bind parameter {name!r}")
            elif default is not None:
                value = default.arg(None) if default.is_callable else default.arg
            else:
                value = constant
            bound.append(process(value) if process is not None else value)
        return tuple(bound)

    def row(self, raw: Row) -> Row:
        if not self.converted:
            return raw
        row = list(raw)
        for index, read in self.converted:
            value = row[index]
            if value is not None:
                row[index] = read(value)
        return tuple(row)

    def mapping(self, raw: Row) -> dict[str, Any]:
        row = dict(zip(self.keys, raw, strict=True))
        for key, read in self.converted_keys:
            value = row[key]
            if value is not None:
                row[key] = read(value)
        return row


def _utc_from_sqlite(value: str) -> datetime:
    parsed = datetime.fromisoformat(value)
    return parsed.replace(tzinfo=UTC) if parsed.tzinfo is None else parsed


def _reader(type_: Any, dialect: Dialect) -> Callable[[Any], Any] | None:
    """How a column's values are read. SQLite keeps datetimes as ISO text, which SQLAlchemy
    parses with a regular expression; ``fromisoformat`` reads the same text about eight times
    faster, then UTC is set on naive values as ``models.UTCDateTime`` does."""
    if dialect.name == "sqlite" and isinstance(type_, UTCDateTime):
        return _utc_from_sqlite
    reader: Callable[[Any], Any] | None = type_._cached_result_processor(dialect, None)
    return reader


def _returns_rows(statement: Any) -> bool:
    return bool(getattr(statement, "_returning", ())) or hasattr(statement, "selected_columns")


class Tx:
    """One transaction's statements. ``first``/``first_mapping`` read the first row (of a
    SELECT or a RETURNING), ``run`` answers the number of rows an INSERT/UPDATE/DELETE touched."""

    dialect: str
    session: AsyncSession | None  # set where the transaction is a session's (not the SQLite writer)

    async def rows(self, statement: Executable, values: Mapping[str, Any]) -> list[Row]:
        raise NotImplementedError

    async def first_mapping(self, statement: Executable, values: Mapping[str, Any]) -> dict[str, Any] | None:
        raise NotImplementedError

    async def run(self, statement: Executable, values: Mapping[str, Any]) -> int:
        raise NotImplementedError

    async def first(self, statement: Executable, values: Mapping[str, Any]) -> Row | None:
        rows = await self.rows(statement, values)
        return rows[0] if rows else None


class SessionTx(Tx):
    """The statements run by an ``AsyncSession`` (PostgreSQL, and callers holding a session)."""

    def __init__(self, session: AsyncSession) -> None:
        self.session = self._session = session
        self.dialect = session.get_bind().dialect.name

    async def rows(self, statement: Executable, values: Mapping[str, Any]) -> list[Row]:
        return [tuple(row) for row in await self._session.execute(statement, dict(values))]

    async def first_mapping(self, statement: Executable, values: Mapping[str, Any]) -> dict[str, Any] | None:
        found = (await self._session.execute(statement, dict(values))).mappings().first()
        return dict(found) if found is not None else None

    async def run(self, statement: Executable, values: Mapping[str, Any]) -> int:
        result: Any = await self._session.execute(statement, dict(values))
        return int(result.rowcount)


class SQLiteTx(Tx):
    """The statements run on the SQLite write connection, inside its BEGIN IMMEDIATE: the write
    lock is already this connection's, so no statement here waits for another process."""

    dialect = "sqlite"
    session = None

    def __init__(self, connection: sqlite3.Connection, prepare: Callable[..., Prepared]) -> None:
        self._connection = connection
        self._prepare = prepare

    def _execute(self, statement: Executable, values: Mapping[str, Any]) -> tuple[Prepared, sqlite3.Cursor]:
        prepared = self._prepare(statement, values)
        return prepared, self._connection.execute(prepared.sql, prepared.parameters(values))

    async def rows(self, statement: Executable, values: Mapping[str, Any]) -> list[Row]:
        prepared, cursor = self._execute(statement, values)
        return [prepared.row(raw) for raw in cursor.fetchall()]

    async def first_mapping(self, statement: Executable, values: Mapping[str, Any]) -> dict[str, Any] | None:
        prepared, cursor = self._execute(statement, values)
        raws = cursor.fetchall()  # all of them: a RETURNING statement completes when read to the end
        return prepared.mapping(raws[0]) if raws else None

    async def run(self, statement: Executable, values: Mapping[str, Any]) -> int:
        _, cursor = self._execute(statement, values)
        if cursor.description is not None:
            return len(cursor.fetchall())
        return int(cursor.rowcount)


__all__ = ["Prepared", "Row", "SQLiteTx", "SessionTx", "Tx"]
