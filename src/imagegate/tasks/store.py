"""SQL for tasks and stored input files. Functions take the session first and never commit."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import and_, delete, func, or_, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from imagegate.db.models import StoredFile, Task
from imagegate.errors import NotFoundError
from imagegate.tasks import cursor
from imagegate.tasks.status import ACTIVE, TaskStatus


async def get_for_account(session: AsyncSession, account_id: str, task_id: str) -> Task:
    task = await session.get(Task, task_id)
    # Another account's task answers exactly like a missing one: no existence oracle.
    if task is None or task.account_id != account_id:
        raise NotFoundError(f"No task {task_id!r}.", param="id")
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


async def claim(session: AsyncSession, task_id: str, now: datetime, lease: timedelta) -> bool:
    """Take a pending task, or one whose worker's lease ran out. True if this worker got it."""
    result = await session.execute(
        update(Task)
        .where(
            Task.id == task_id,
            or_(
                Task.status == TaskStatus.PENDING,
                and_(Task.status == TaskStatus.PROCESSING, Task.lease_until < now),
            ),
        )
        .values(status=TaskStatus.PROCESSING, attempts=Task.attempts + 1, lease_until=now + lease)
        .execution_options(synchronize_session=False)
    )
    if result.rowcount != 1:  # type: ignore[attr-defined]
        return False
    await session.execute(
        update(Task).where(Task.id == task_id, Task.started_at.is_(None)).values(started_at=now)
    )
    return True


async def finish(session: AsyncSession, task_id: str, status: TaskStatus, values: dict[str, Any]) -> bool:
    """Move a processing task to a terminal status; False if it already left processing."""
    result = await session.execute(
        update(Task)
        .where(Task.id == task_id, Task.status == TaskStatus.PROCESSING)
        .values(status=status, lease_until=None, **values)
        .execution_options(synchronize_session=False)
    )
    return bool(result.rowcount == 1)  # type: ignore[attr-defined]


async def release_lease(session: AsyncSession, task_id: str, now: datetime) -> None:
    """Give a processing task back to the queue for another attempt."""
    await session.execute(
        update(Task).where(Task.id == task_id, Task.status == TaskStatus.PROCESSING).values(lease_until=now)
    )


async def cancel(session: AsyncSession, task: Task, now: datetime) -> bool:
    result = await session.execute(
        update(Task)
        .where(Task.id == task.id, Task.status.in_(ACTIVE))
        .values(status=TaskStatus.CANCELED, completed_at=now, lease_until=None)
        .execution_options(synchronize_session=False)
    )
    return bool(result.rowcount == 1)  # type: ignore[attr-defined]


async def count_active(session: AsyncSession, account_id: str) -> int:
    total = await session.scalar(
        select(func.count()).select_from(Task).where(Task.account_id == account_id, Task.status.in_(ACTIVE))
    )
    return int(total or 0)


async def active_before(session: AsyncSession, created_before: datetime) -> Sequence[Task]:
    query = select(Task).where(Task.status.in_(ACTIVE), Task.created_at < created_before)
    return list(await session.scalars(query))


async def fail_active(session: AsyncSession, task_id: str, values: dict[str, Any]) -> bool:
    result = await session.execute(
        update(Task)
        .where(Task.id == task_id, Task.status.in_(ACTIVE))
        .values(status=TaskStatus.FAILED, lease_until=None, **values)
        .execution_options(synchronize_session=False)
    )
    return bool(result.rowcount == 1)  # type: ignore[attr-defined]


async def pending_ids(session: AsyncSession) -> Sequence[str]:
    query = select(Task.id).where(Task.status == TaskStatus.PENDING).order_by(Task.created_at)
    return list(await session.scalars(query))


async def orphaned(session: AsyncSession, now: datetime | None) -> Sequence[Task]:
    """Processing tasks whose worker is gone: all of them (now=None), or those past their lease."""
    query = select(Task).where(Task.status == TaskStatus.PROCESSING)
    if now is not None:
        query = query.where(Task.lease_until < now)
    return list(await session.scalars(query))


async def expired_outputs(session: AsyncSession, now: datetime, limit: int = 500) -> Sequence[Task]:
    query = select(Task).where(Task.outputs_expire_at < now, Task.outputs_deleted_at.is_(None)).limit(limit)
    return list(await session.scalars(query))


async def files_of_task(session: AsyncSession, task_id: str) -> Sequence[StoredFile]:
    return list(await session.scalars(select(StoredFile).where(StoredFile.task_id == task_id)))


async def expired_files(session: AsyncSession, now: datetime, limit: int = 500) -> Sequence[StoredFile]:
    return list(await session.scalars(select(StoredFile).where(StoredFile.expires_at < now).limit(limit)))


async def forget_files(session: AsyncSession, ids: Sequence[str]) -> None:
    if ids:
        await session.execute(delete(StoredFile).where(StoredFile.id.in_(ids)))


async def file_by_key(session: AsyncSession, key: str) -> StoredFile | None:
    return await session.scalar(select(StoredFile).where(StoredFile.key == key))
