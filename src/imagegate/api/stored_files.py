"""``/v1/files``: the caller's uploads as OpenAI-shaped File objects (RunAPI's ``files.list``,
``create_file``, ``retrieve``, ``content``, ``delete_file``).

These are the same uploads ``POST /api/v1/files`` makes: transient inputs that expire after
``IMAGEGATE_UPLOAD_RETENTION_S``, listed only while they live, never another account's.
"""

from __future__ import annotations

from datetime import timedelta
from typing import Annotated, Literal

from fastapi import APIRouter, Query, Request
from fastapi.responses import Response

from imagegate.api import uploads
from imagegate.api.deps import BaseUrlDep, GatewayDep, PrincipalDep
from imagegate.api.files import file_link
from imagegate.api.models import DeletedFile, StoredFileList, StoredFileView, error_responses
from imagegate.db.models import StoredFile
from imagegate.errors import GoneError, ValidationError
from imagegate.gateway import Gateway
from imagegate.storage import StorageNotFound
from imagegate.tasks import held_files, inputs

router = APIRouter(prefix="/v1/files", tags=["files"], responses=error_responses(400, 401, 404))
PURPOSE = "user_data"  # the one purpose these files serve: inputs of image tasks
_UPLOAD_BODY = {
    "requestBody": {
        "required": True,
        "content": {
            "multipart/form-data": {
                "schema": {
                    "type": "object",
                    "required": ["file"],
                    "properties": {
                        "file": {"type": "string", "format": "binary"},
                        "purpose": {"type": "string", "enum": [PURPOSE]},
                    },
                }
            }
        },
    }
}


def view(gw: Gateway, base: str, record: StoredFile) -> StoredFileView:
    return StoredFileView(
        id=record.id,
        bytes=record.size_bytes,
        created_at=int(record.created_at.timestamp()),
        expires_at=int(record.expires_at.timestamp()),
        filename=record.file_name or record.key.rsplit("/", 1)[-1],
        purpose=PURPOSE,
        mime_type=record.mime_type,
        url=file_link(gw, base, record),
    )


@router.post("", responses=error_responses(413, 415), openapi_extra=_UPLOAD_BODY)
async def create(request: Request, gw: GatewayDep, who: PrincipalDep, base: BaseUrlDep) -> StoredFileView:
    form = await uploads.read_form(request, uploads.Limits.of(gw, max_files=1))
    purpose = form.field("purpose") or PURPOSE
    if purpose != PURPOSE:
        raise ValidationError(f"purpose must be {PURPOSE!r}", param="purpose")
    parts = form.files_named("file")
    if not parts:
        raise ValidationError("multipart field 'file' is required", param="file")
    part = parts[0]
    upload = await inputs.check_upload(gw, part.data, "file", part.filename, declared=part.content_type)
    ttl = timedelta(seconds=gw.settings.upload_retention_s)
    (record,) = await inputs.hold(gw, who.account_id, [upload], task_id=None, ttl=ttl)
    return view(gw, base, record)


@router.get("")
async def list_files(
    gw: GatewayDep,
    who: PrincipalDep,
    base: BaseUrlDep,
    limit: Annotated[int, Query(ge=1, le=10_000)] = 100,
    after: str | None = None,
    order: Literal["asc", "desc"] = "desc",
    purpose: str | None = None,
) -> StoredFileList:
    if purpose is not None and purpose != PURPOSE:
        return StoredFileList(data=[], first_id=None, last_id=None, has_more=False)
    async with gw.db.sessions() as session:
        page = await held_files.page(
            session, who.account_id, gw.now(), limit=limit, after=after, newest_first=order == "desc"
        )
    data = [view(gw, base, record) for record in page.files]
    return StoredFileList(
        data=data,
        first_id=data[0].id if data else None,
        last_id=data[-1].id if data else None,
        has_more=page.has_more,
    )


@router.get("/{file_id}")
async def retrieve(file_id: str, gw: GatewayDep, who: PrincipalDep, base: BaseUrlDep) -> StoredFileView:
    async with gw.db.sessions() as session:
        record = await held_files.get(session, who.account_id, file_id, gw.now())
    return view(gw, base, record)


@router.get(
    "/{file_id}/content",
    response_class=Response,
    responses={200: {"content": {"application/octet-stream": {}}}, **error_responses(410)},
)
async def content(file_id: str, gw: GatewayDep, who: PrincipalDep) -> Response:
    async with gw.db.sessions() as session:
        record = await held_files.get(session, who.account_id, file_id, gw.now())
    try:
        data = await gw.storage.get(record.key)
    except StorageNotFound:
        raise GoneError("This file is no longer stored.") from None
    return Response(data, media_type=record.mime_type, headers={"X-Content-Type-Options": "nosniff"})


@router.delete("/{file_id}")
async def delete(file_id: str, gw: GatewayDep, who: PrincipalDep) -> DeletedFile:
    async with gw.db.sessions() as session:
        record = await held_files.get(session, who.account_id, file_id, gw.now())
    await held_files.forget(gw, record)
    return DeletedFile(id=record.id, deleted=True)
