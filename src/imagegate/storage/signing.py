"""Signed, expiring download links: ``/files/{key}?expires=UNIX&sig=HMAC``.

The key is made on first start and kept in the data directory, so restarts
keep issued links valid.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import os
import secrets
import tempfile
from pathlib import Path
from urllib.parse import parse_qs, quote, urlsplit

FILES_PREFIX = "/files/"


def load_or_create_secret(path: Path) -> bytes:
    if path.exists():
        return base64.b64decode(path.read_text().strip())
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=".signing-")
    with os.fdopen(fd, "w") as handle:
        handle.write(base64.b64encode(secrets.token_bytes(32)).decode())
    # link() publishes the complete file or fails if another process won: all agree on one key.
    try:
        os.link(tmp, path)
    except FileExistsError:
        pass
    finally:
        os.unlink(tmp)
    return base64.b64decode(path.read_text().strip())


PATHS_KEPT = 4096  # signed paths remembered: a polled task's links are signed once, not per GET


class UrlSigner:
    def __init__(self, secret: bytes) -> None:
        self._secret = secret
        self._paths: dict[tuple[str, int], str] = {}

    def signature(self, key: str, expires: int) -> str:
        mac = hmac.new(self._secret, f"{key}\n{expires}".encode(), hashlib.sha256).digest()
        return base64.urlsafe_b64encode(mac[:24]).decode().rstrip("=")

    def path(self, key: str, expires: int) -> str:
        found = self._paths.get((key, expires))
        if found is None:
            if len(self._paths) >= PATHS_KEPT:
                self._paths.clear()
            found = f"{FILES_PREFIX}{quote(key)}?expires={expires}&sig={self.signature(key, expires)}"
            self._paths[key, expires] = found
        return found

    def verify(self, key: str, expires: int, sig: str) -> bool:
        # Bytes, not str: compare_digest refuses non-ASCII str, and a link's sig is user input.
        return hmac.compare_digest(self.signature(key, expires).encode(), sig.encode("utf-8", "replace"))

    def parse(self, url: str) -> tuple[str, int] | None:
        """(key, expires) if ``url`` is a correctly signed link of ours, whatever host it names."""
        parts = urlsplit(url)
        if not parts.path.startswith(FILES_PREFIX):
            return None
        key = parts.path[len(FILES_PREFIX) :]
        query = parse_qs(parts.query)
        try:
            expires = int(query["expires"][0])
            sig = query["sig"][0]
        except (KeyError, ValueError, IndexError):
            return None
        if not self.verify(key, expires, sig):
            return None
        return key, expires
