"""SQL for the uploaded files an account holds (``files`` rows with no task): find, list, delete.

Holding them is ``inputs.hold``; the sweeper deletes them when they expire.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import ColumnElement, and_, or_, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from imagegate.db.models import StoredFile
from imagegate.errors import ConflictError, NotFoundError
from imagegate.gateway import Gateway
from imagegate.tasks import inputs
from imagegate.tasks.inputs import Upload
from imagegate.tasks.publish import PARTIALS_PREFIX


@dataclass(frozen=True)
class Page:
    files: list[StoredFile]
    has_more: bool


def _live(account_id: str, now: datetime) -> ColumnElement[bool]:
    return and_(
        StoredFile.account_id == account_id,
        StoredFile.task_id.is_(None),
        StoredFile.expires_at > now,
        ~StoredFile.key.startswith(PARTIALS_PREFIX),  # previews a task streamed: not uploads
    )


async def find(session: AsyncSession, account_id: str, file_id: str, now: datetime) -> StoredFile | None:
    query = select(StoredFile).where(StoredFile.id == file_id, _live(account_id, now))
    found: StoredFile | None = await session.scalar(query)
    return found


async def get(session: AsyncSession, account_id: str, file_id: str, now: datetime) -> StoredFile:
    """The caller's live upload, or a 404 (another account's file reads as absent)."""
    found = await find(session, account_id, file_id, now)
    if found is None:
        raise NotFoundError(f"No file {file_id!r}.", param="file_id")
    return found


async def page(
    session: AsyncSession,
    account_id: str,
    now: datetime,
    *,
    limit: int,
    after: str | None = None,
    newest_first: bool = True,
) -> Page:
    """One page of the caller's live uploads, ordered by (created_at, id); ``after`` is a file id."""
    query = select(StoredFile).where(_live(account_id, now))
    if after is not None:
        anchor = await get(session, account_id, after, now)
        if newest_first:
            query = query.where(
                or_(
                    StoredFile.created_at < anchor.created_at,
                    and_(StoredFile.created_at == anchor.created_at, StoredFile.id < anchor.id),
                )
            )
        else:
            query = query.where(
                or_(
                    StoredFile.created_at > anchor.created_at,
                    and_(StoredFile.created_at == anchor.created_at, StoredFile.id > anchor.id),
                )
            )
    if newest_first:
        query = query.order_by(StoredFile.created_at.desc(), StoredFile.id.desc())
    else:
        query = query.order_by(StoredFile.created_at, StoredFile.id)
    rows = list(await session.scalars(query.limit(limit + 1)))
    return Page(files=rows[:limit], has_more=len(rows) > limit)


async def hold_once(gw: Gateway, account_id: str, upload: Upload, file_id: str, ttl: timedelta) -> StoredFile:
    """Hold ``upload`` as file ``file_id``; a 409 if that id is held already (a grant used twice)."""
    try:
        (record,) = await inputs.hold(gw, account_id, [upload], task_id=None, ttl=ttl, ids=[file_id])
    except IntegrityError:
        raise ConflictError("This upload URL has been used already; prepare another.") from None
    return record


async def forget(gw: Gateway, record: StoredFile) -> None:
    """Delete an upload before it expires: its bytes, then its record."""
    await inputs.drop(gw, [record])
