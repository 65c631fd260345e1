"""The storage interface and the factory that picks a backend from a URL."""

from __future__ import annotations

import os
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path
from typing import Protocol
from urllib.parse import unquote, urlsplit


class StorageNotFound(KeyError):
    """No object under that key (never stored, expired, or deleted)."""


class StorageUnavailable(RuntimeError):
    """The store cannot be used (no such bucket, credentials refused, endpoint unreachable). The
    message names the bucket and endpoint, never a credential."""


@dataclass(frozen=True)
class S3Options:
    """Where the bucket is and who we are; unset values come from the standard AWS variables."""

    endpoint_url: str | None = None
    region: str | None = None
    access_key_id: str | None = None
    secret_access_key: str | None = None

    def resolved(self) -> S3Options:
        env = os.environ
        return S3Options(
            endpoint_url=self.endpoint_url or env.get("AWS_ENDPOINT_URL_S3") or env.get("AWS_ENDPOINT_URL"),
            region=self.region or env.get("AWS_REGION") or env.get("AWS_DEFAULT_REGION") or "us-east-1",
            access_key_id=self.access_key_id or env.get("AWS_ACCESS_KEY_ID"),
            secret_access_key=self.secret_access_key or env.get("AWS_SECRET_ACCESS_KEY"),
        )


class Storage(Protocol):
    async def put(self, key: str, data: bytes, content_type: str) -> None: ...

    async def get(self, key: str) -> bytes: ...

    async def delete(self, key: str) -> None: ...

    async def exists(self, key: str) -> bool: ...

    async def check(self) -> None:
        """At start: raise StorageUnavailable unless the store answers with our credentials."""
        ...

    def local_path(self, key: str) -> Path | None:
        """A filesystem path for zero-copy serving, where the backend has one."""
        ...

    async def presigned_get(self, key: str, expires_in: timedelta) -> str | None:
        """A URL that serves the bytes without the gateway (object stores), else None."""
        ...


def open_storage(url: str, s3: S3Options | None = None) -> Storage:
    parts = urlsplit(url)
    if parts.scheme == "file":
        from imagegate.storage.local import LocalStorage

        return LocalStorage(Path(unquote(parts.path)))
    if parts.scheme == "s3":
        try:
            from imagegate.storage.s3 import S3Storage
        except ImportError:
            raise ValueError("s3:// storage needs obstore: pip install 'imagegate[s3]'") from None

        return S3Storage(url, s3 or S3Options())
    raise ValueError(f"unsupported storage URL scheme {parts.scheme!r} (supported: file://, s3://)")
