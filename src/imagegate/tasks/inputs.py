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
import contextlib
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

from sqlalchemy import delete

from imagegate.db.models import StoredFile
from imagegate.errors import GatewayError, PayloadTooLargeError, ValidationError
from imagegate.gateway import Gateway
from imagegate.providers.base import SourceImage
from imagegate.storage import StorageNotFound, guard
from imagegate.storage.media import EXTENSIONS, validate_image


@dataclass(frozen=True)
class Upload:
    data: bytes
    content_type: str  # already checked by validate_image
    file_name: str | None = None
    width: int = 0
    height: int = 0


def data_url_type(url: str) -> str | None:
    """The media type a data: URL declares (``data:image/png;base64,...`` -> ``image/png``)."""
    header = url.partition(",")[0].removeprefix("data:")
    return header.split(";", 1)[0] or None


def decode_data_url(url: str, param: str) -> bytes:
    header, sep, payload = url.partition(",")
    if not sep or not header.startswith("data:") or not header.endswith(";base64"):
        raise ValidationError(f"{param} must be a base64 data: URL (data:image/png;base64,...)", param=param)
    try:
        return base64.b64decode(payload, validate=True)
    except (binascii.Error, ValueError):
        raise ValidationError(f"{param} is not valid base64", param=param) from None


async def check_upload(
    gw: Gateway, data: bytes, param: str, file_name: str | None = None, *, declared: str | None = None
) -> Upload:
    """Fully validated image bytes (type, size, integrity), checked in a thread."""
    info = await asyncio.to_thread(
        validate_image,
        data,
        max_bytes=gw.settings.max_upload_bytes,
        max_pixels=gw.settings.max_image_pixels,
        param=param,
        declared=declared,
    )
    return Upload(
        data=data, content_type=info.content_type, file_name=file_name, width=info.width, height=info.height
    )


def check_pixel_budget(gw: Gateway, images: Sequence[Upload | SourceImage], param: str) -> None:
    """Refuse a request whose source images and mask together exceed ``max_request_pixels``."""
    limit = gw.settings.max_request_pixels
    total = sum(image.width * image.height for image in images)
    if total > limit:
        raise PayloadTooLargeError(
            f"The request's images total {total} pixels; the limit is {limit} pixels per request "
            f"(for example {limit // (3840 * 2160)} images of 3840x2160). Send fewer or smaller images.",
            param=param,
        )


def _new_key(upload: Upload) -> str:
    return f"inputs/{uuid.uuid4()}.{EXTENSIONS.get(upload.content_type, 'bin')}"


async def hold(
    gw: Gateway,
    account_id: str,
    uploads: list[Upload],
    *,
    task_id: str | None,
    ttl: timedelta,
    ids: Sequence[str] | None = None,
) -> list[StoredFile]:
    """Keep input bytes in storage, recorded so they are deleted on time.

    The records commit before any byte is written: bytes left behind by a crash at any
    point are always named by a row that the sweeper deletes when it expires. A record
    with no bytes behind it (a crash between the two) is harmless: deleting it is a no-op.
    """
    if not uploads:
        return []
    now = gw.now()
    ids = ids or [str(uuid.uuid4()) for _ in uploads]  # a given id makes a second hold of it fail
    records = [
        StoredFile(
            id=file_id,
            account_id=account_id,
            task_id=task_id,
            key=_new_key(upload),
            file_name=upload.file_name,
            mime_type=upload.content_type,
            size_bytes=len(upload.data),
            created_at=now,
            expires_at=now + ttl,
        )
        for upload, file_id in zip(uploads, ids, strict=True)
    ]
    async with gw.db.transaction() as session:
        session.add_all(records)
    try:
        for record, upload in zip(records, uploads, strict=True):
            await gw.storage.put(record.key, upload.data, upload.content_type)
    except BaseException:
        await drop(gw, records)
        raise
    return records


async def drop(gw: Gateway, records: list[StoredFile]) -> None:
    """Delete held inputs that no task will use: their bytes, then their records."""
    if not records:
        return
    for record in records:
        with contextlib.suppress(Exception):  # kept by its record: the sweeper retries it
            await gw.storage.delete(record.key)
    async with gw.db.transaction() as session:
        await session.execute(delete(StoredFile).where(StoredFile.id.in_([r.id for r in records])))


async def classify(gw: Gateway, url: str, param: str) -> dict[str, Any] | Upload:
    """A reference for ``url``, or the checked bytes of a data: URL (to be held for the task)."""
    if url.startswith("data:"):
        return await check_upload(gw, decode_data_url(url, param), param, declared=data_url_type(url))
    ours = gw.signer.parse(url)
    if ours is not None:
        key, expires = ours
        if expires < gw.now().timestamp():
            raise ValidationError(f"{param}: this gateway's link has expired", param=param)
        return {"kind": "storage", "key": key}
    guard.precheck(url, gw.fetch_policy, param)
    return {"kind": "url", "url": url}


async def check_callback_url(gw: Gateway, url: str | None, param: str = "callback_url") -> str | None:
    """``url`` if a webhook could be delivered there as far as creation can tell (its scheme,
    and every address its host resolves to now), else a 400."""
    if url is not None:
        await guard.precheck_resolving(url, gw.fetch_policy, param)
    return url


async def load(gw: Gateway, ref: dict[str, Any], param: str) -> SourceImage:
    if ref["kind"] == "storage":
        try:
            data = await gw.storage.get(ref["key"])
        except StorageNotFound:
            raise ValidationError(f"{param}: the file is no longer stored", param=param) from None
        declared = None
    else:
        fetched = await guard.get(ref["url"], gw.fetch_policy, param=param)
        data, declared = fetched.content, fetched.content_type
    upload = await check_upload(gw, data, param, declared=declared)
    return SourceImage(
        data=upload.data, content_type=upload.content_type, width=upload.width, height=upload.height
    )


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
    # Foreign URLs and links to stored files are only measured here, once fetched.
    check_pixel_budget(gw, images, "source_image_urls")
    return images
