"""RunAPI's direct upload of a local file: prepare, PUT the bytes, confirm.

``files.create(file=path)`` in RunAPI's SDKs asks ``/api/v1/files/prepare`` for a
pre-authorized target, PUTs the raw bytes there with exactly the headers it was given and
no API key, then posts the ``signed_id`` to ``/api/v1/files/confirm`` for the file's URL.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import uuid
from datetime import timedelta
from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import Response

from imagegate.api.deps import BaseUrlDep, GatewayDep, JsonBody, PrincipalDep
from imagegate.api.files import file_view
from imagegate.api.models import (
    FileObject,
    PreparedUpload,
    PrepareUploadRequest,
    SignedIdRequest,
    error_responses,
    request_body,
)
from imagegate.errors import ConflictError, GoneError, NotFoundError, PayloadTooLargeError, ValidationError
from imagegate.gateway import Gateway
from imagegate.storage import upload_tokens
from imagegate.storage.upload_tokens import UploadGrant
from imagegate.tasks import held_files, inputs

router = APIRouter(tags=["files"])
GRANT_TTL_S = 900  # a prepared upload URL is for this upload, now: it is not a storage link
DIRECT_PATH = "/api/v1/files/direct/"


def _grant(gw: Gateway, token: str) -> UploadGrant:
    grant = upload_tokens.read(gw.signer, token)
    if grant is None:
        raise NotFoundError(
            "No such upload (the signed_id is not one this gateway issued).", param="signed_id"
        )
    return grant


def _string(body: dict[str, Any], name: str) -> str:
    value = body.get(name)
    if not isinstance(value, str) or not value.strip():
        raise ValidationError(f"{name} is required", param=name)
    return value.strip()


@router.post(
    "/api/v1/files/prepare",
    responses=error_responses(400, 401, 413),
    openapi_extra=request_body(PrepareUploadRequest),
)
async def prepare(gw: GatewayDep, who: PrincipalDep, base: BaseUrlDep, body: JsonBody) -> PreparedUpload:
    file_name = _string(body, "filename")[:300]
    size = body.get("byte_size")
    if not isinstance(size, int) or isinstance(size, bool) or size < 1:
        raise ValidationError("byte_size must be a positive integer", param="byte_size")
    limit = gw.settings.max_upload_bytes
    if size > limit:
        raise PayloadTooLargeError(
            f"byte_size {size} is over the upload limit of {limit} bytes.", param="byte_size"
        )
    checksum = _string(body, "checksum")
    try:
        if len(base64.b64decode(checksum, validate=True)) != 16:
            raise ValueError
    except (binascii.Error, ValueError):
        raise ValidationError(
            "checksum must be the base64 MD5 digest of the bytes", param="checksum"
        ) from None
    content_type = body.get("content_type")
    if content_type is not None and not isinstance(content_type, str):
        raise ValidationError("content_type must be a string", param="content_type")
    grant = UploadGrant(
        account_id=who.account_id,
        file_id=str(uuid.uuid4()),
        file_name=file_name,
        byte_size=size,
        checksum=checksum,
        content_type=content_type or None,
        expires=int(gw.now().timestamp()) + GRANT_TTL_S,
    )
    token = upload_tokens.issue(gw.signer, grant)
    headers = {"Content-Type": grant.content_type or "application/octet-stream", "Content-MD5": checksum}
    return PreparedUpload(signed_id=token, upload_url=base + DIRECT_PATH + token, headers=headers)


async def _read_exactly(request: Request, size: int) -> bytes:
    declared = request.headers.get("content-length")
    if declared and declared.isdigit() and int(declared) > size:
        raise PayloadTooLargeError(f"The body is larger than the {size} bytes prepared for it.")
    data = bytearray()
    async for chunk in request.stream():
        data.extend(chunk)
        if len(data) > size:
            raise PayloadTooLargeError(f"The body is larger than the {size} bytes prepared for it.")
    if len(data) != size:
        raise ValidationError(f"The body has {len(data)} bytes; {size} were prepared.", param="byte_size")
    return bytes(data)


@router.put(
    DIRECT_PATH + "{signed_id}",
    status_code=204,
    response_class=Response,
    responses=error_responses(400, 404, 409, 410, 413, 415),
)
async def put_bytes(signed_id: str, request: Request, gw: GatewayDep) -> Response:
    """The bytes of a prepared upload; the signed URL is the credential (no API key)."""
    grant = _grant(gw, signed_id)
    if grant.expires < gw.now().timestamp():
        raise GoneError("This upload URL has expired; prepare another.")
    data = await _read_exactly(request, grant.byte_size)
    if base64.b64encode(hashlib.md5(data).digest()).decode() != grant.checksum:
        raise ValidationError("The bytes do not match the prepared checksum (MD5).", param="checksum")
    upload = await inputs.check_upload(gw, data, "file", grant.file_name, declared=grant.content_type)
    ttl = timedelta(seconds=gw.settings.upload_retention_s)
    await held_files.hold_once(gw, grant.account_id, upload, grant.file_id, ttl)
    return Response(status_code=204)


@router.post(
    "/api/v1/files/confirm",
    responses=error_responses(400, 401, 404, 409),
    openapi_extra=request_body(SignedIdRequest),
)
async def confirm(gw: GatewayDep, who: PrincipalDep, base: BaseUrlDep, body: JsonBody) -> FileObject:
    grant = _grant(gw, _string(body, "signed_id"))
    if grant.account_id != who.account_id:
        raise NotFoundError("No such upload.", param="signed_id")  # another account's grant
    async with gw.db.sessions() as session:
        record = await held_files.find(session, who.account_id, grant.file_id, gw.now())
    if record is None:
        raise ConflictError("The bytes of this upload have not arrived: PUT them to upload_url first.")
    return file_view(gw, base, record)


@router.api_route("/v1/uploads{rest:path}", methods=["GET", "POST", "PUT", "DELETE"], include_in_schema=False)
async def no_multipart_uploads(rest: str) -> None:
    raise NotFoundError(
        "Multipart Uploads (/v1/uploads) are not offered by this gateway: upload an input image "
        "with POST /api/v1/files (JSON source or multipart) or /api/v1/files/prepare, or use /v1/files."
    )
