"""SQL for tasks and stored input files. Functions take the session (or, on the hot path, the
write transaction ``db.writer.Tx``) first and never commit."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import ColumnElement, ScalarSelect, and_, bindparam, delete, func, insert, or_, select, update
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import configure_mappers

from imagegate.db.models import Base, StoredFile, Task
from imagegate.db.session import Database
from imagegate.db.writer import Tx
from imagegate.errors import NotFoundError
from imagegate.tasks import cursor
from imagegate.tasks.status import ACTIVE, TaskStatus

_TASKS = Base.metadata.tables["tasks"]  # Core, for inserts without the unit of work


async def get_for_account(session: AsyncSession, account_id: str, task_id: str) -> Task:
    task = await session.get(Task, task_id)
    # Another account's task answers exactly like a missing one: no existence oracle.
    if task is None or task.account_id != account_id:
        raise NotFoundError(f"No task {task_id!r}.", param="id")
    return task


_BY_ID = select(_TASKS).where(_TASKS.c.id == bindparam("task_id"))
_INSERT_TASK = insert(_TASKS)
_NEW_TASK = Task.__mapper__.class_manager.new_instance
_CONFIGURED = False


def _configure() -> None:
    global _CONFIGURED
    configure_mappers()
    _CONFIGURED = True


async def read_for_account(db: Database, account_id: str, task_id: str) -> Task:
    """The task for a reader (GET, long polls): one Core SELECT outside any session, read into
    a detached Task (no identity map, no unit of work); 404 like ``get_for_account``."""
    row = await db.read_one(_BY_ID, {"task_id": task_id})
    if row is None or row["account_id"] != account_id:
        raise NotFoundError(f"No task {task_id!r}.", param="id")
    return detached(row)


# What a task's view, its ETag and its headers read (tasks/views.py, api/runapi.py): a poll
# neither reads nor decodes the request's parameters, render settings and inputs.
_VIEWED = [
    "id",
    "account_id",
    "status",
    "service",
    "action",
    "model",
    "model_served",
    "variant",
    "provider",
    "images",
    "usage",
    "provider_attempts",
    "error",
    "error_code",
    "client_request_id",
    "price_micro",
    "charge_micro",
    "free_call",
    "hold_state",
    "refunded_at",
    "created_at",
    "started_at",
    "completed_at",
    "outputs_expire_at",
    "outputs_deleted_at",
]
_VIEW_BY_ID = select(*(_TASKS.c[name] for name in _VIEWED)).where(_TASKS.c.id == bindparam("task_id"))


async def read_view_for_account(db: Database, account_id: str, task_id: str) -> Task:
    """``read_for_account`` with only the columns of the task's view (the other attributes of
    the detached Task read as None): for polls, which only answer with the view."""
    row = await db.read_one(_VIEW_BY_ID, {"task_id": task_id})
    if row is None or row["account_id"] != account_id:
        raise NotFoundError(f"No task {task_id!r}.", param="id")
    return detached(row)


async def read_in(tx: Tx, account_id: str, task_id: str) -> Task:
    """``read_for_account`` inside a write transaction."""
    row = await tx.first_mapping(_BY_ID, {"task_id": task_id})
    if row is None or row["account_id"] != account_id:
        raise NotFoundError(f"No task {task_id!r}.", param="id")
    return detached(row)


def detached(row: dict[str, Any]) -> Task:
    """A row of the tasks table as a detached Task (no identity map, no unit of work)."""
    if not _CONFIGURED:  # attributes of an instance made outside any session need the mapping done
        _configure()
    task: Task = _NEW_TASK()  # the mapped class without its __init__: a plain detached instance
    task.__dict__.update(row)
    return task


def encode_cursor(task: Task) -> str:
    return cursor.encode(task)


async def list_for_account(
    session: AsyncSession, account_id: str, *, limit: int, after: str | None, status: str | None
) -> tuple[list[Task], bool]:
    """Newest first; ``after`` is the cursor of the last task of the previous page."""
    query = select(Task).where(Task.account_id == account_id)
    if status is not None:
        query = query.where(Task.status == status)
    if after is not None:
        created, task_id = cursor.decode(after)
        query = query.where(
            or_(Task.created_at < created, and_(Task.created_at == created, Task.id < task_id))
        )
    query = query.order_by(Task.created_at.desc(), Task.id.desc()).limit(limit + 1)
    rows = list(await session.scalars(query))
    return rows[:limit], len(rows) > limit


# The claim, built once (a statement built per call costs more than running it): Core, so no
# ORM bulk-update layers; its row becomes a detached Task as the reads' rows do.
_CLAIM = (
    update(_TASKS)
    .where(
        _TASKS.c.id == bindparam("task_id"),
        or_(
            _TASKS.c.status == TaskStatus.PENDING,
            and_(_TASKS.c.status == TaskStatus.PROCESSING, _TASKS.c.lease_until < bindparam("now")),
        ),
    )
    .values(
        status=TaskStatus.PROCESSING,
        attempts=_TASKS.c.attempts + 1,
        lease_until=bindparam("until"),
        started_at=func.coalesce(_TASKS.c.started_at, bindparam("now")),
    )
    .returning(*_TASKS.c)
)


async def claim(tx: Tx, task_id: str, now: datetime, lease: timedelta) -> Task | None:
    """Take a pending task, or one whose worker's lease ran out, and read it in the same
    statement: its ``attempts`` is this worker's attempt number (the fence every later write
    of the run checks). None when another worker has it."""
    row = await tx.first_mapping(_CLAIM, {"task_id": task_id, "now": now, "until": now + lease})
    return detached(row) if row is not None else None


def _held_by(task_id: str, attempt: int) -> Any:
    return and_(Task.id == task_id, Task.status == TaskStatus.PROCESSING, Task.attempts == attempt)


# A lease renewal: every running task makes one per third of a lease, so it is built once.
_RENEW = (
    update(_TASKS)
    .where(
        _TASKS.c.id == bindparam("task_id"),
        _TASKS.c.status == TaskStatus.PROCESSING,
        _TASKS.c.attempts == bindparam("attempt"),
    )
    .values(lease_until=bindparam("until"))
)


async def renew(tx: Tx, task_id: str, attempt: int, until: datetime) -> bool:
    """Extend a running attempt's lease; False when the task is no longer this attempt's."""
    return await tx.run(_RENEW, {"task_id": task_id, "attempt": attempt, "until": until}) == 1


async def release_lease(
    session: AsyncSession,
    task_id: str,
    attempt: int,
    now: datetime,
    provider_attempts: list[dict[str, Any]] | None = None,
) -> None:
    """Give a running task back for another attempt (a retryable provider failure), keeping
    the provider calls made so far."""
    kept = {} if provider_attempts is None else {"provider_attempts": list(provider_attempts)}
    await session.execute(
        update(Task)
        .where(_held_by(task_id, attempt))
        .values(lease_until=now, **kept)
        .execution_options(synchronize_session=False)
    )


async def hand_back(session: AsyncSession, task_id: str, attempt: int, now: datetime) -> bool:
    """Return a task cut off by a graceful stop without spending the attempt it was on."""
    result = await session.execute(
        update(Task)
        .where(_held_by(task_id, attempt))
        .values(lease_until=now, attempts=Task.attempts - 1)
        .execution_options(synchronize_session=False)
    )
    return bool(result.rowcount == 1)  # type: ignore[attr-defined]


async def end(
    tx: Tx,
    task_id: str,
    status: TaskStatus,
    values: dict[str, Any],
    *,
    account_id: str | None = None,
    attempt: int | None = None,
    lease_expired_at: datetime | None = None,
) -> Task | None:
    """Move an active task to a terminal status and read it in the same statement; None if it
    had already ended or the fence (the caller's account, the worker's attempt, an expired
    lease) does not match."""
    statement = _end_statement(
        account_id is not None, attempt is not None, lease_expired_at is not None, values
    )
    # Bind names that are no column's: Core would take such a key as one more column to SET.
    params = {f"v_{name}": value for name, value in values.items()}
    params.update(task_id=task_id, status=status)
    fences = {"fence_account": account_id, "fence_attempt": attempt, "fence_expired": lease_expired_at}
    params.update((name, value) for name, value in fences.items() if value is not None)
    row = await tx.first_mapping(statement, params)
    return detached(row) if row is not None else None


# The end's statements, one per shape (which fences, which columns), each built once: Core,
# without the ORM bulk-update layers, their rows read into detached Tasks as the claim's are.
_ENDS: dict[tuple[bool, bool, bool, frozenset[str]], Any] = {}


def _end_statement(by_account: bool, by_attempt: bool, by_lease: bool, values: dict[str, Any]) -> Any:
    shape = (by_account, by_attempt, by_lease, frozenset(values))
    statement = _ENDS.get(shape)
    if statement is not None:
        return statement
    c = _TASKS.c
    conditions = [c.id == bindparam("task_id"), c.status.in_(list(ACTIVE))]
    if by_account:
        conditions.append(c.account_id == bindparam("fence_account"))
    if by_attempt:
        conditions += [c.status == TaskStatus.PROCESSING, c.attempts == bindparam("fence_attempt")]
    if by_lease:
        conditions += [c.status == TaskStatus.PROCESSING, c.lease_until < bindparam("fence_expired")]
    written = {name: bindparam(f"v_{name}", type_=c[name].type) for name in sorted(values)}
    statement = (
        update(_TASKS)
        .where(*conditions)
        .values(status=bindparam("status"), lease_until=None, **written)
        .returning(*c)
    )
    _ENDS[shape] = statement
    return statement


def active_of(account_id: str | ColumnElement[str]) -> ScalarSelect[int]:
    """The account's pending and processing tasks, counted on the (account, status) index:
    O(active), whatever the account's history (to read under the balance lock)."""
    return (
        select(func.count())
        .select_from(_TASKS)
        .where(_TASKS.c.account_id == account_id, _TASKS.c.status.in_(list(ACTIVE)))
        .scalar_subquery()
    )


async def count_active(session: AsyncSession, account_id: str) -> int:
    return int(await session.scalar(select(active_of(account_id))) or 0)


async def add(tx: Tx, row: dict[str, Any]) -> None:
    """Insert a new task from its column values (one Core INSERT, no ORM object)."""
    await tx.run(_INSERT_TASK, row)


async def active_before(session: AsyncSession, created_before: datetime) -> Sequence[Task]:
    query = select(Task).where(Task.status.in_(ACTIVE), Task.created_at < created_before)
    return list(await session.scalars(query))


async def pending_ids(session: AsyncSession, created_before: datetime | None = None) -> Sequence[str]:
    query = select(Task.id).where(Task.status == TaskStatus.PENDING)
    if created_before is not None:
        query = query.where(Task.created_at < created_before)
    return list(await session.scalars(query.order_by(Task.created_at)))


async def lease_expired(session: AsyncSession, now: datetime) -> Sequence[Task]:
    """Processing tasks whose worker stopped renewing its lease: crashed, or cut off."""
    query = select(Task).where(Task.status == TaskStatus.PROCESSING, Task.lease_until < now)
    return list(await session.scalars(query))


async def expired_outputs(session: AsyncSession, now: datetime, limit: int = 500) -> Sequence[Task]:
    query = select(Task).where(Task.outputs_expire_at < now, Task.outputs_deleted_at.is_(None)).limit(limit)
    return list(await session.scalars(query))


async def files_of_task(session: AsyncSession, task_id: str) -> Sequence[StoredFile]:
    return list(await session.scalars(select(StoredFile).where(StoredFile.task_id == task_id)))


async def expired_files(session: AsyncSession, now: datetime, limit: int = 500) -> Sequence[StoredFile]:
    return list(await session.scalars(select(StoredFile).where(StoredFile.expires_at < now).limit(limit)))


_STORED_FILES = Base.metadata.tables["files"]
_FORGET_TASK_FILES = (
    delete(_STORED_FILES)
    .where(_STORED_FILES.c.task_id == bindparam("files_task"))
    .returning(_STORED_FILES.c.key)
)


async def forget_files_of_task(tx: Tx, task_id: str) -> list[str]:
    """Remove the records of a task's stored inputs; the keys of their bytes, to delete."""
    return [str(row[0]) for row in await tx.rows(_FORGET_TASK_FILES, {"files_task": task_id})]


async def forget_files(session: AsyncSession, ids: Sequence[str]) -> int:
    """Remove file records; how many were still there (another sweeper may have been first)."""
    if not ids:
        return 0
    result = await session.execute(delete(StoredFile).where(StoredFile.id.in_(ids)))
    return int(result.rowcount)  # type: ignore[attr-defined]


async def mark_outputs_deleted(session: AsyncSession, task_id: str, now: datetime) -> bool:
    """Record that a task's outputs are gone; False when another sweeper recorded it first."""
    result = await session.execute(
        update(Task)
        .where(Task.id == task_id, Task.outputs_deleted_at.is_(None))
        .values(outputs_deleted_at=now)
        .execution_options(synchronize_session=False)
    )
    return bool(result.rowcount == 1)  # type: ignore[attr-defined]


async def file_by_key(session: AsyncSession, key: str) -> StoredFile | None:
    return await session.scalar(select(StoredFile).where(StoredFile.key == key))
