"""The storage interface and the factory that picks a backend from a URL."""

from __future__ import annotations

from pathlib import Path
from typing import Protocol
from urllib.parse import unquote, urlsplit


class StorageNotFound(KeyError):
    """No object under that key (never stored, expired, or deleted)."""


class Storage(Protocol):
    async def put(self, key: str, data: bytes, content_type: str) -> None: ...

    async def get(self, key: str) -> bytes: ...

    async def delete(self, key: str) -> None: ...

    async def exists(self, key: str) -> bool: ...

    def local_path(self, key: str) -> Path | None:
        """A filesystem path for zero-copy serving, where the backend has one."""
        ...


def open_storage(url: str) -> Storage:
    parts = urlsplit(url)
    if parts.scheme == "file":
        from imagegate.storage.local import LocalStorage

        return LocalStorage(Path(unquote(parts.path)))
    raise ValueError(f"unsupported storage URL scheme {parts.scheme!r} (supported: file://)")
