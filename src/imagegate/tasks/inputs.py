"""Source images: classify what a request names, hold transient bytes, load them for a worker.

A reference is stored on the task as JSON:
``{"kind": "storage", "key": ...}`` for bytes we hold (uploads, data: URLs, our outputs), or
``{"kind": "url", "url": ...}`` for a foreign URL fetched when the task runs. A foreign URL
is parsed and, when it names an address literally, judged at creation, so a request the
guard would refuse anyway never takes a hold or becomes a task.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import uuid
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession

from imagegate.db.models import StoredFile
from imagegate.errors import GatewayError, ValidationError
from imagegate.gateway import Gateway
from imagegate.providers.base import SourceImage
from imagegate.storage import StorageNotFound, guard
from imagegate.storage.media import EXTENSIONS, inspect_image


@dataclass(frozen=True)
class Upload:
    data: bytes
    content_type: str  # already checked by inspect_image
    file_name: str | None = None


def decode_data_url(url: str, param: str) -> bytes:
    header, sep, payload = url.partition(",")
    if not sep or not header.startswith("data:") or not header.endswith(";base64"):
        raise ValidationError(f"{param} must be a base64 data: URL (data:image/png;base64,...)", param=param)
    try:
        return base64.b64decode(payload, validate=True)
    except (binascii.Error, ValueError):
        raise ValidationError(f"{param} is not valid base64", param=param) from None


async def check_upload(gw: Gateway, data: bytes, param: str, file_name: str | None = None) -> Upload:
    info = await asyncio.to_thread(
        inspect_image,
        data,
        max_bytes=gw.settings.max_upload_bytes,
        max_pixels=gw.settings.max_image_pixels,
        param=param,
    )
    return Upload(data=data, content_type=info.content_type, file_name=file_name)


async def put_bytes(gw: Gateway, upload: Upload) -> str:
    """Store input bytes under a new key. Done before the task's transaction, which stays short."""
    key = f"inputs/{uuid.uuid4()}.{EXTENSIONS.get(upload.content_type, 'bin')}"
    await gw.storage.put(key, upload.data, upload.content_type)
    return key


def file_record(
    gw: Gateway, account_id: str, upload: Upload, key: str, *, task_id: str | None, ttl: timedelta
) -> StoredFile:
    """The row that gets ``key`` deleted on time (when its task ends, or at ``ttl``)."""
    now = gw.now()
    return StoredFile(
        id=str(uuid.uuid4()),
        account_id=account_id,
        task_id=task_id,
        key=key,
        file_name=upload.file_name,
        mime_type=upload.content_type,
        size_bytes=len(upload.data),
        created_at=now,
        expires_at=now + ttl,
    )


async def hold(
    gw: Gateway,
    session: AsyncSession,
    account_id: str,
    upload: Upload,
    *,
    task_id: str | None,
    ttl: timedelta,
) -> StoredFile:
    """Put input bytes in storage and record them so they are deleted on time."""
    record = file_record(gw, account_id, upload, await put_bytes(gw, upload), task_id=task_id, ttl=ttl)
    session.add(record)
    return record


async def classify(gw: Gateway, url: str, param: str) -> dict[str, Any] | Upload:
    """A reference for ``url``, or the checked bytes of a data: URL (to be held for the task)."""
    if url.startswith("data:"):
        return await check_upload(gw, decode_data_url(url, param), param)
    ours = gw.signer.parse(url)
    if ours is not None:
        key, expires = ours
        if expires < gw.now().timestamp():
            raise ValidationError(f"{param}: this gateway's link has expired", param=param)
        return {"kind": "storage", "key": key}
    guard.precheck(url, gw.fetch_policy, param)
    return {"kind": "url", "url": url}


def check_callback_url(gw: Gateway, url: str | None, param: str = "callback_url") -> str | None:
    """``url`` if a webhook could be delivered there as far as creation can tell, else a 400."""
    if url is not None:
        guard.precheck(url, gw.fetch_policy, param)
    return url


async def load(gw: Gateway, ref: dict[str, Any], param: str) -> SourceImage:
    if ref["kind"] == "storage":
        try:
            data = await gw.storage.get(ref["key"])
        except StorageNotFound:
            raise ValidationError(f"{param}: the file is no longer stored", param=param) from None
    else:
        data = (await guard.get(ref["url"], gw.fetch_policy, param=param)).content
    upload = await check_upload(gw, data, param)
    return SourceImage(data=upload.data, content_type=upload.content_type)


async def load_all(gw: Gateway, refs: list[dict[str, Any]]) -> list[SourceImage]:
    results = await asyncio.gather(
        *(load(gw, ref, f"source_image_urls[{i}]") for i, ref in enumerate(refs)), return_exceptions=True
    )
    images: list[SourceImage] = []
    for result in results:
        if isinstance(result, GatewayError):
            raise result
        if isinstance(result, BaseException):
            raise result
        images.append(result)
    return images
