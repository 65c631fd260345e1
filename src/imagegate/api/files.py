"""Input uploads (``POST /api/v1/files``) and signed downloads (``GET /files/...``)."""

from __future__ import annotations

import base64
import binascii
import mimetypes
from datetime import timedelta
from typing import Any
from urllib.parse import unquote

from fastapi import APIRouter, Request
from fastapi.responses import FileResponse, RedirectResponse, Response

from imagegate.api import uploads
from imagegate.api.deps import BaseUrlDep, GatewayDep, PrincipalDep, json_body
from imagegate.api.models import FILES_BODY, FileObject, error_responses
from imagegate.db.models import StoredFile
from imagegate.errors import ExpiredError, GoneError, NotFoundError, ValidationError
from imagegate.gateway import Gateway
from imagegate.storage import StorageNotFound, guard
from imagegate.storage.local import valid_key
from imagegate.tasks import inputs
from imagegate.tasks.inputs import data_url_type, decode_data_url
from imagegate.tasks.views import iso

router = APIRouter(tags=["files"])
PRESIGNED_FOR = timedelta(hours=1)  # an object store's own link, handed out by a redirect
DOWNLOAD_TYPES = ("image/png", "image/jpeg", "image/webp", "image/gif", "application/octet-stream")


async def _source_bytes(gw: Gateway, url: str) -> tuple[bytes, str | None]:
    """The bytes ``source.url`` names: this gateway's own output and file links are read from
    storage (never fetched over HTTP, which the loopback guard would refuse anyway), others
    fetched through the outbound guard."""
    try:
        ref = await inputs.classify(gw, url, "source.url")
    except ValueError:  # urlsplit's (a bracket left open); the guard names it the same way
        raise ValidationError(
            "source.url: not a valid URL (broken IPv6 brackets?)", param="source.url"
        ) from None
    if isinstance(ref, inputs.Upload):  # a data: URL
        return ref.data, ref.content_type
    if ref["kind"] == "storage":
        try:
            return await gw.storage.get(ref["key"]), None
        except StorageNotFound:
            raise GoneError("source.url: this file is no longer stored.", param="source.url") from None
    fetched = await guard.get(url, gw.fetch_policy, param="source.url")
    return fetched.content, fetched.content_type


async def _from_json(request: Request, gw: GatewayDep) -> tuple[bytes, str | None, str | None]:
    """(bytes, file name, the media type the source declared) of a JSON upload."""
    body = await json_body(request, gw)
    declared: str | None = None
    source = body.get("source")
    if not isinstance(source, dict):
        raise ValidationError("source is required: {type: url|base64, ...}", param="source")
    kind = source.get("type")
    if kind == "url":
        url = source.get("url")
        if not isinstance(url, str) or not url:
            raise ValidationError("source.url is required", param="source.url")
        data, declared = await _source_bytes(gw, url)
    elif kind == "base64":
        raw = source.get("data")
        if not isinstance(raw, str) or not raw:
            raise ValidationError("source.data is required", param="source.data")
        if raw.startswith("data:"):
            data, declared = decode_data_url(raw, "source.data"), data_url_type(raw)
        else:
            try:
                data = base64.b64decode(raw, validate=True)
            except (binascii.Error, ValueError):
                raise ValidationError("source.data is not valid base64", param="source.data") from None
    else:
        raise ValidationError("source.type must be one of: url, base64", param="source.type")
    name = body.get("file_name")
    return data, name if isinstance(name, str) else None, declared


@router.post("/api/v1/files", responses=error_responses(400, 401, 413, 415), openapi_extra=FILES_BODY)
async def create_file(request: Request, gw: GatewayDep, who: PrincipalDep, base: BaseUrlDep) -> FileObject:
    content_type = request.headers.get("content-type", "")
    if content_type.startswith("multipart/form-data"):
        form = await uploads.read_form(request, uploads.Limits.of(gw, max_files=1))
        parts = form.files_named("file")
        if not parts:
            raise ValidationError("multipart field 'file' is required", param="file")
        name_field = form.field("file_name")
        data, declared = parts[0].data, parts[0].content_type
        file_name = name_field if name_field is not None else parts[0].filename
    else:
        data, file_name, declared = await _from_json(request, gw)
    upload = await inputs.check_upload(gw, data, "file", file_name, declared=declared)
    ttl = timedelta(seconds=gw.settings.upload_retention_s)
    (record,) = await inputs.hold(gw, who.account_id, [upload], task_id=None, ttl=ttl)
    return file_view(gw, base, record)


def file_link(gw: Gateway, base: str, record: StoredFile) -> str:
    return base + gw.signer.path(record.key, int(record.expires_at.timestamp()))


def file_view(gw: Gateway, base: str, record: StoredFile) -> FileObject:
    return FileObject(
        id=record.id,
        file_name=record.file_name,
        url=file_link(gw, base, record),
        size_bytes=record.size_bytes,
        mime_type=record.mime_type,
        created_at=iso(record.created_at),
        expires_at=iso(record.expires_at),
    )


_DOWNLOAD: dict[int | str, dict[str, Any]] = {
    200: {
        "description": "The stored bytes.",
        "content": {t: {"schema": {"type": "string", "format": "binary"}} for t in DOWNLOAD_TYPES},
    },
    307: {"description": "Served by the object store: a presigned URL to GET instead."},
    **error_responses(400, 404, 410),
}


@router.get("/files/{key:path}", response_class=Response, responses=_DOWNLOAD)
async def download(key: str, expires: int, sig: str, gw: GatewayDep) -> Response:
    key = unquote(key)
    # Refused before the signature or the disk sees it: odd keys (absolute, NUL, '..', very
    # long) are never ours, and some of them make the file system raise.
    if not valid_key(key) or not gw.signer.verify(key, expires, sig):
        raise NotFoundError("No such file (the link's signature does not match).")
    if expires < gw.now().timestamp():
        raise ExpiredError("This link has expired: what it pointed to is past its retention.")
    media_type = mimetypes.guess_type(key)[0] or "application/octet-stream"
    headers = {"Cache-Control": "private, max-age=3600", "X-Content-Type-Options": "nosniff"}
    path = gw.storage.local_path(key)
    if path is not None:
        return FileResponse(path, media_type=media_type, headers=headers)
    # An object store serves the bytes itself; its link lasts no longer than ours (at most an hour).
    ttl = min(PRESIGNED_FOR, timedelta(seconds=max(1, expires - int(gw.now().timestamp()))))
    presigned = await gw.storage.presigned_get(key, ttl)
    if presigned is not None:
        if not await gw.storage.exists(key):
            raise GoneError("This file is no longer stored.")
        cache = f"private, max-age={min(300, int(ttl.total_seconds()))}"
        return RedirectResponse(presigned, status_code=307, headers={"Cache-Control": cache})
    try:
        data = await gw.storage.get(key)
    except StorageNotFound:
        raise GoneError("This file is no longer stored.") from None
    return Response(data, media_type=media_type, headers=headers)
