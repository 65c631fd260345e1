"""Objects as files under one directory; writes are atomic (temp file, then rename)."""

from __future__ import annotations

import asyncio
import contextlib
import os
import re
import secrets
from datetime import timedelta
from pathlib import Path

from imagegate.storage.base import StorageNotFound, StorageUnavailable

_KEY = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,199}(/[A-Za-z0-9][A-Za-z0-9._-]{0,199})*$")
MAX_KEY_CHARS = 512  # ours are under 100; file systems refuse names over 255 bytes and paths over 4096


def valid_key(key: str) -> bool:
    """A key this storage could have made: relative, plain segments, no '..', a sane length."""
    return len(key) <= MAX_KEY_CHARS and _KEY.match(key) is not None and ".." not in key


class LocalStorage:
    def __init__(self, root: Path) -> None:
        self.root = root
        root.mkdir(parents=True, exist_ok=True)

    def _path(self, key: str) -> Path:
        # Keys come from our own code, but a signed URL echoes one back: refuse anything odd.
        if not valid_key(key):
            raise StorageNotFound(key)
        return self.root / key

    @staticmethod
    def _write(path: str, data: bytes) -> None:
        # Plain os calls on str paths: tempfile and pathlib cost more Python than the write itself.
        directory = os.path.dirname(path)
        tmp = f"{directory}/.tmp-{secrets.token_hex(8)}"
        flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC
        try:
            fd = os.open(tmp, flags, 0o600)
        except FileNotFoundError:  # the object's folder does not exist yet
            os.makedirs(directory, exist_ok=True)
            fd = os.open(tmp, flags, 0o600)
        try:
            with memoryview(data) as rest:
                while rest:
                    rest = rest[os.write(fd, rest) :]
            os.close(fd)
            fd = -1
            os.replace(tmp, path)
        except BaseException:
            if fd >= 0:
                os.close(fd)
            with contextlib.suppress(FileNotFoundError):
                os.unlink(tmp)
            raise

    async def put(self, key: str, data: bytes, content_type: str) -> None:
        await asyncio.to_thread(self._write, str(self._path(key)), data)

    async def get(self, key: str) -> bytes:
        path = self._path(key)
        try:
            return await asyncio.to_thread(path.read_bytes)
        except FileNotFoundError:
            raise StorageNotFound(key) from None

    async def delete(self, key: str) -> None:
        path = self._path(key)
        await asyncio.to_thread(path.unlink, True)

    async def exists(self, key: str) -> bool:
        return self._path(key).is_file()

    async def check(self) -> None:
        if not os.access(self.root, os.W_OK | os.X_OK):
            raise StorageUnavailable(f"storage directory {self.root} is not writable by this user")

    def local_path(self, key: str) -> Path | None:
        path = self._path(key)
        return path if path.is_file() else None

    async def presigned_get(self, key: str, expires_in: timedelta) -> str | None:
        return None  # served from local_path by the gateway
